"""Pace and request economy: finding the account's rate limit, fetching ahead safely.

Speed itself is measured by benchmarks/bench.py, never here: these tests check
behaviour (what was requested, what was refused, what came out).
"""

from __future__ import annotations

import itertools
import time

import pytest

from fake_smartflo import FakeSmartflo
from tap_smartflo.pacing import CUT, FAST_RAISE, RAISE, SETTLE, Pacer
from tests.helpers import FAST_RETRIES, base_config

#: Tests of the pace over contacts pages sync that stream alone: other streams'
#: requests (empty call-record windows) would only make them slower.
CONTACTS_ONLY = ["contacts"]


def test_an_unpinned_pacer_does_not_slow_anything_until_a_429():
    pacer = Pacer()
    for _ in range(50):
        pacer.succeeded(pacer.wait())
    assert pacer.rate is None
    assert pacer.interval == 0.0


def test_the_first_429_settles_just_under_what_got_through():
    pacer = Pacer()
    for _ in range(8):
        pacer.succeeded(pacer.wait())
    pacer.throttled(pacer.wait())
    assert pacer.rate == 8 * SETTLE


def test_429s_of_requests_already_in_flight_cut_the_pace_once():
    pacer = Pacer()
    for _ in range(4):
        pacer.succeeded(pacer.wait())
    in_flight = [time.monotonic() for _ in range(3)]
    for started in in_flight:
        pacer.throttled(started)
    assert pacer.rate == 4 * SETTLE
    pacer.throttled(time.monotonic() + 0.001)  # sent after the cut
    assert pacer.rate == 4 * SETTLE * CUT


def test_a_low_first_guess_recovers_fast_then_probes_slowly():
    # A 429 on the first request (another client used the last second): the
    # pacer guesses low, climbs fast until the next 429, then creeps.
    pacer = Pacer()
    pacer.throttled(time.monotonic())
    assert pacer.rate == 1.0
    for _ in range(5):
        pacer.succeeded(time.monotonic())
    assert pacer.rate == pytest.approx(FAST_RAISE**5)
    before = pacer.rate
    pacer.throttled(time.monotonic())
    assert pacer.rate == pytest.approx(before * CUT)
    cut = pacer.rate
    pacer.succeeded(time.monotonic())
    assert pacer.rate == pytest.approx(cut * RAISE)


def test_the_pace_stays_near_what_is_really_sent():
    pacer = Pacer()
    pacer.throttled(time.monotonic())
    start = time.monotonic()
    for i in range(200):
        pacer.succeeded(start - 10 + i * 0.5)  # two a second, spread out
    assert pacer.rate < 6  # without the cap: 1.1 ** 200 requests a second


def test_a_pinned_pace_is_a_ceiling_that_429s_can_still_lower():
    pacer = Pacer(ceiling=5)
    for _ in range(100):
        pacer.succeeded(time.monotonic())
    assert pacer.rate == 5
    pacer.throttled(time.monotonic())
    assert pacer.rate == 5 * CUT
    for _ in range(100):
        pacer.succeeded(time.monotonic())
    assert pacer.rate == 5


def test_a_rate_limited_account_loses_nothing_and_few_requests_are_refused(tap):
    with FakeSmartflo(contacts=700, rate_limit=25) as api:
        run = tap(
            base_config(api.url, page_size=20, **FAST_RETRIES), streams=CONTACTS_ONLY
        )
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records()] == sorted(api.store)
    refused = sum(1 for r in api.requests if r.status == 429)
    assert refused >= 1, "the test should reach the limit"
    assert refused <= len(api.requests) / 4


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
    assert paths == sorted(
        ["/v1/contacts", "/v1/contact/groups", "/v1/call/records", "/v1/users"]
    )
