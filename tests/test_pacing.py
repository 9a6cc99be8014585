"""Pace and request economy: finding the account's rate limit, fetching ahead safely.

Speed itself is measured by benchmarks/bench.py, never here: these tests check
behaviour (what was requested, what was refused, what came out).
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from dataclasses import dataclass, field

import pytest

from fake_smartflo import FakeSmartflo
from tap_smartflo.pacing import (
    CLEAR,
    MEMORY,
    PROBE_AFTER,
    RECOVER,
    SLOWEST,
    Pacer,
)
from tests.helpers import FAST_RETRIES, STREAM_PATHS, base_config

#: Tests of the pace over contacts pages sync that stream alone: other streams'
#: requests (empty call-record windows) would only make them slower.
CONTACTS_ONLY = ["contacts"]


class Clock:
    """A fake monotonic clock: sleeping moves it on, nothing else does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Account:
    """Smartflo's rule on a fake clock: ``limit`` requests in any one-second window.

    Every ``refuse_every``-th request is refused whatever the pace (others bursting);
    a refused request takes no slot.
    """

    clock: Clock
    limit: int
    refuse_every: int = 0
    #: Count in fixed windows (each clock second) rather than any one second.
    fixed: bool = False
    received: int = 0
    accepted: deque[float] = field(default_factory=deque)

    def accepts(self) -> bool:
        now = self.clock.now
        self.received += 1
        if self.refuse_every and self.received % self.refuse_every == 0:
            return False
        if self.fixed:
            while self.accepted and int(self.accepted[0]) != int(now):
                self.accepted.popleft()
        while self.accepted and now - self.accepted[0] >= 1.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            return False
        self.accepted.append(now)
        return True


def paced(clock: Clock, ceiling: float | None = None) -> Pacer:
    return Pacer(ceiling, clock=clock, sleep=clock.sleep)


def send(pacer: Pacer, account: Account, count: int) -> list[tuple[float, bool]]:
    """``count`` requests in turn, 20 ms each: (start, accepted) for each."""
    sent = []
    for _ in range(count):
        started = pacer.wait()
        accepted = account.accepts()
        account.clock.sleep(0.02)
        if accepted:
            pacer.succeeded(started)
        else:
            pacer.throttled(started)
        sent.append((started, accepted))
    return sent


def settled(limit: int) -> tuple[Clock, Account, Pacer]:
    """A pacer that met its first 429 at ``limit`` and has held that pace since."""
    clock = Clock()
    account = Account(clock, limit)
    pacer = paced(clock)
    send(pacer, account, 3 * limit)
    assert pacer.level == pacer.good == pacer.proven == limit
    return clock, account, pacer


def test_an_unpinned_pacer_does_not_slow_anything_until_a_429():
    clock = Clock()
    pacer = paced(clock)
    send(pacer, Account(clock, limit=1000), 50)
    assert pacer.rate is None
    assert pacer.interval == 0.0
    assert clock.now == pytest.approx(1000.0 + 50 * 0.02)


def test_a_first_429_beyond_the_proof_is_forgiven_a_second_sets_the_pace():
    clock = Clock()
    pacer = paced(clock)
    account = Account(clock, limit=8)
    sent = send(pacer, account, 9)
    assert [accepted for _, accepted in sent] == [True] * 8 + [False]
    assert pacer.level is None
    sent += send(pacer, account, 1)
    assert pacer.level == 8
    assert pacer.rate == 8 / CLEAR
    # That second was full: the next request waits for its first to leave it.
    assert pacer.wait() >= sent[0][0] + CLEAR


def test_429s_of_requests_already_in_flight_cut_once():
    clock = Clock()
    pacer = paced(clock)
    for _ in range(4):
        pacer.succeeded(pacer.wait())
    in_flight = [pacer.wait() for _ in range(3)]
    for started in in_flight:
        pacer.throttled(started)
    assert pacer.level == pacer.good == 4


def test_a_foreign_429_under_the_proven_pace_does_not_cut():
    _, _, pacer = settled(limit=5)
    rate = pacer.rate
    pacer.throttled(pacer.wait())  # someone else filled this second
    assert pacer.level == pacer.good == 5
    assert pacer.rate == rate


def test_repeated_foreign_429s_never_drive_the_pace_toward_the_floor():
    clock = Clock()
    account = Account(clock, limit=5, refuse_every=6)
    pacer = paced(clock)
    send(pacer, account, 600)  # about two minutes
    began = clock.now
    sent = send(pacer, account, 120)
    assert pacer.level is not None
    assert pacer.level >= 5
    # The last 120 requests: 5 a CLEAR window at least (a floor would take hours).
    assert clock.now - began <= 120 / 5 * CLEAR
    refused = sum(1 for _, accepted in sent if not accepted)
    assert refused <= 120 / 6 + 2  # others' refusals, and at most a probe or two


def test_a_limit_counted_in_fixed_windows_settles_at_the_limit_with_few_refusals():
    # Fixed windows accept up to twice the limit within a second that straddles a
    # boundary: proofs then overstate the limit, and pacing at them has a third or
    # more of the requests refused. The pacer notices and keeps to the limit.
    clock = Clock()
    account = Account(clock, limit=5, fixed=True)
    pacer = paced(clock)
    send(pacer, account, 300)  # about a minute
    began = clock.now
    sent = send(pacer, account, 300)
    refused = sum(1 for _, accepted in sent if not accepted)
    assert refused <= 300 * 0.05  # paced at the overstated proofs: a tenth or more
    assert (300 - refused) / (clock.now - began) >= 5 * 0.9  # at the limit, or near


def test_foreign_429s_do_not_keep_the_pacer_from_a_limit_that_grew():
    _, account, pacer = settled(limit=5)
    account.limit = 20  # a neighbour left,
    account.refuse_every = 6  # while others still burst
    send(pacer, account, 300)  # about 20 seconds
    assert pacer.level is not None
    assert pacer.level >= 15


def test_a_genuine_over_limit_429_still_cuts():
    # Probes above the limit are refused and fall back to the proven pace.
    _, account, pacer = settled(limit=5)
    outcomes = []
    for _ in range(300):  # about a minute
        [(_, accepted)] = send(pacer, account, 1)
        outcomes.append((accepted, pacer.level))
    assert max(level for _, level in outcomes) == 6  # it probed
    refused = [level for accepted, level in outcomes if not accepted]
    assert refused[1::2] == [5] * (len(refused) // 2)  # the second refusal cuts
    assert len(refused) <= 2 * 4  # probes after 4, 8, 16 and 32 seconds


def test_a_neighbour_who_stays_lowers_the_pace_within_seconds():
    _, account, pacer = settled(limit=6)
    account.limit = 2  # another integration now takes 4 of the 6, for good
    send(pacer, account, 120)
    sent = send(pacer, account, 40)
    assert pacer.good <= 3
    refused = sum(1 for _, accepted in sent if not accepted)
    assert refused <= 40 / 5


def test_a_pinned_ceiling_above_the_limit_is_lowered_by_the_limit():
    clock = Clock()
    account = Account(clock, limit=4)
    pacer = paced(clock, ceiling=10)
    send(pacer, account, 100)
    assert pacer.rate is not None
    assert pacer.rate <= 5 / CLEAR


def test_a_pinned_ceiling_holds_however_much_the_account_allows():
    clock = Clock()
    pacer = paced(clock, ceiling=5)
    sent = send(pacer, Account(clock, limit=50), 200)
    starts = [started for started, _ in sent]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 1 / 5 - 1e-9
    assert all(accepted for _, accepted in sent)
    assert pacer.rate == 5


def test_a_pinned_ceiling_lowered_by_429s_comes_back_to_the_pin_not_above():
    clock = Clock()
    account = Account(clock, limit=3)
    pacer = paced(clock, ceiling=5)
    send(pacer, account, 100)
    assert pacer.rate is not None
    assert pacer.rate < 5
    account.limit = 50  # the neighbour left
    sent = send(pacer, account, 300)
    starts = [started for started, _ in sent]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 1 / 5 - 1e-9
    assert pacer.rate == 5


def test_recovery_toward_the_last_good_pace_happens_with_time_not_per_success():
    clock, _, pacer = settled(limit=5)
    before = [pacer.wait() for _ in range(3)]
    clock.sleep(MEMORY)  # a quiet spell: the proof of 5 lapses
    pacer.throttled(pacer.wait())  # the first request after it is refused:
    assert pacer.level == 5  # that may be someone else,
    pacer.throttled(pacer.wait())  # but not twice
    assert pacer.level == 1
    assert pacer.good == 4
    for started in before:  # successes arriving do not raise the pace
        pacer.succeeded(started)
    assert pacer.level == 1
    levels = []
    for _ in range(3):
        clock.sleep(RECOVER)
        pacer.wait()
        levels.append(pacer.level)
    assert levels == [3, 4, 4]  # half the way back each RECOVER seconds


def test_the_floor_is_one_request_a_window_and_the_pace_returns_after():
    clock, account, pacer = settled(limit=5)
    account.limit = 0  # others take the whole account for two minutes
    send(pacer, account, 60)
    began = clock.now
    send(pacer, account, 30)
    assert pacer.rate == SLOWEST
    assert clock.now - began >= 29 * CLEAR  # no faster than the floor
    account.limit = 5
    send(pacer, account, 150)
    assert pacer.level is not None
    assert pacer.level >= 4


def test_a_pace_set_by_refusals_at_the_start_doubles_back_until_a_probe_is_refused():
    # Others filled the account as the run began: the first two requests were
    # refused, before anything proved a pace, so the pace fell to the floor. The
    # account really allows 40 a second: the pace doubles back (slow start), then
    # creeps once a probe has been refused.
    clock = Clock()
    account = Account(clock, limit=0)
    pacer = paced(clock)
    send(pacer, account, 2)
    assert pacer.level == 1
    account.limit = 40
    began = clock.now
    while (pacer.level or 0) < 32:
        send(pacer, account, 1)
        assert clock.now - began < 12, f"level {pacer.level} after 12 s"
    send(pacer, account, 400)
    assert 30 <= pacer.level <= 42


def test_the_pace_probes_only_while_it_holds_the_tap_back():
    clock, account, pacer = settled(limit=4)
    for _ in range(30):  # a slow stretch: one request every two seconds
        clock.sleep(2)
        send(pacer, account, 1)
    assert pacer.level == 4
    assert PROBE_AFTER < 30 * 2  # time enough to probe, had the pace held it back


def test_the_fake_neighbour_leaves_the_rest_of_the_limit():
    api = FakeSmartflo(rate_limit=6, background_rate=3)
    assert [api.over_rate_limit() for _ in range(5)] == [False] * 3 + [True] * 2


@pytest.mark.parametrize("fixed_windows", [False, True], ids=["sliding", "fixed"])
def test_a_rate_limited_account_loses_nothing_and_few_requests_are_refused(
    tap, fixed_windows
):
    # In fixed windows (a limit per clock second) 35 pages may straddle a boundary
    # as 20 + 15, so the limit there is lower. A run of seconds is then mostly the
    # pacer finding the limit, and its share of refusals swings between runs (5%
    # or 45%): this run checks that nothing is lost; where the pacer settles is
    # test_a_limit_counted_in_fixed_windows_settles_at_the_limit_with_few_refusals.
    limit = 10 if fixed_windows else 25
    with FakeSmartflo(
        contacts=700, rate_limit=limit, fixed_windows=fixed_windows
    ) as api:
        run = tap(
            base_config(api.url, page_size=20, **FAST_RETRIES), streams=CONTACTS_ONLY
        )
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records()] == sorted(api.store)
    refused = sum(1 for r in api.requests if r.status == 429)
    assert refused >= 1, "the test should reach the limit"
    if not fixed_windows:
        assert refused <= len(api.requests) / 4


def test_others_refusing_every_sixth_request_lose_nothing_nor_the_pace(tap):
    # The old pacer cut a quarter per 429: by the end it waited seconds a request.
    with FakeSmartflo(contacts=1600, rate_limit=20, refuse_every=6) as api:
        run = tap(
            base_config(api.url, page_size=20, **FAST_RETRIES), streams=CONTACTS_ONLY
        )
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records()] == sorted(api.store)
    sent = api.requests_to("/v1/contacts")
    assert sum(1 for r in sent if r.fault == "rate-limit-others") == len(sent) // 6
    assert sum(1 for r in sent if r.fault == "rate-limit") <= 6  # probes, the first
    arrivals = [r.at for r in sent[-13:]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert statistics.median(gaps) < 0.5  # at the limit: 1/20 s


def test_a_pinned_pace_under_the_limit_is_never_refused(tap):
    with FakeSmartflo(contacts=400, rate_limit=30) as api:
        run = tap(
            base_config(
                api.url, page_size=20, max_requests_per_second=20, **FAST_RETRIES
            ),
            streams=CONTACTS_ONLY,
        )
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == 400
    assert all(r.status == 200 for r in api.requests)


def test_fetching_ahead_never_reads_a_page_twice_and_keeps_page_order(tap):
    latency = 0.01
    with FakeSmartflo(contacts=1000, latency=latency) as api:
        run = tap(
            base_config(api.url, page_size=20, max_concurrent_requests=8),
            streams=CONTACTS_ONLY,
        )
    assert [r["id"] for r in run.records()] == sorted(api.store)
    requests = api.requests_to("/v1/contacts")
    pages = [int(r.params["page"]) for r in requests]
    assert len(pages) == len(set(pages))
    assert len(pages) - 51 <= 7  # 50 full pages, the empty one, and guesses past it
    # Pages were fetched ahead: some arrived while another was being answered.
    arrivals = sorted(r.at for r in requests)
    assert min(b - a for a, b in itertools.pairwise(arrivals)) < latency / 2


def test_a_small_incremental_run_costs_one_request_per_stream(tap):
    with FakeSmartflo(contacts=3000, naive_tz=FakeSmartflo.base_time.tzinfo) as api:
        first = tap(base_config(api.url))
        api.touch(next(iter(api.store)), name="changed")
        api.requests.clear()
        second = tap(base_config(api.url), state=first.final_state)
    assert "changed" in [r["name"] for r in second.records()]
    assert len(second.records()) < 100  # the change and the lookback overlap
    paths = sorted(r.path for r in api.requests)
    # Without a catalog the tap discovers in-process: one more request, for the
    # contact groups' custom-field labels. Broadcast leads: one request per
    # broadcast list, and this account has none.
    assert paths == sorted(
        [
            "/v1/contact/groups",
            *(path for s, path in STREAM_PATHS.items() if s != "broadcast_leads"),
        ]
    )
