"""Bookmark rules without HTTP: where a run starts, and the overlap it re-reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tap_smartflo.call_windows import (
    CALL_HISTORY_START,
    CALL_WINDOW_END_MARGIN,
    CallLedger,
    call_windows,
)
from tap_smartflo.incremental import Overlap, is_after, replicate_from, version_of

T0 = datetime(2024, 5, 8, 12, 0, tzinfo=timezone.utc)
TEN_MINUTES = timedelta(minutes=10)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def test_a_run_starts_a_lookback_before_the_bookmark_never_before_start_date():
    lookback = TEN_MINUTES
    assert replicate_from(start_date=None, bookmark=None, lookback=lookback) is None
    assert replicate_from(start_date=T0, bookmark=None, lookback=lookback) == T0
    later = T0 + timedelta(days=1)
    assert (
        replicate_from(start_date=T0, bookmark=later, lookback=lookback)
        == later - lookback
    )
    # A bookmark just after start_date: the lookback does not reach before it.
    assert (
        replicate_from(
            start_date=T0, bookmark=T0 + timedelta(minutes=3), lookback=lookback
        )
        == T0
    )


def test_a_bookmark_only_moves_forward():
    assert is_after(T0, None)
    assert is_after(T0, at(-1))
    assert not is_after(T0, at(0))
    assert not is_after(T0, at(1))
    # The same instant written with another offset is not "after".
    assert not is_after(T0, "2024-05-08T17:30:00+05:30")


def record(identity: str, updated_at: str, name: str = "Ravi") -> dict[str, str]:
    return {"id": identity, "name": name, "updated_at": updated_at}


def admit(overlap: Overlap, identity: str, updated_at: str | None, **fields) -> bool:
    return overlap.admit(identity, updated_at, {**record(identity, "x"), **fields})


def version(identity: str, updated_at: str, **fields) -> str:
    return version_of(updated_at, {**record(identity, "x"), **fields})


def test_the_overlap_emits_only_what_the_last_run_did_not():
    before = {"1": version("1", at(-2)), "2": version("2", at(-1))}
    overlap = Overlap(before, floor=at(-10), lookback=TEN_MINUTES)
    assert not admit(overlap, "1", at(-2))  # the very version emitted last time
    assert admit(overlap, "2", at(3))  # changed since
    assert admit(overlap, "3", at(-5))  # committed late, inside the lookback
    assert not admit(overlap, "4", at(-11))  # before what this run asked for
    assert admit(overlap, "5", None)  # no version: always emitted
    remembered = overlap.remembered(bookmark=at(0))
    assert remembered == {
        "2": version("2", at(3)),
        "3": version("3", at(-5)),
        "1": version("1", at(-2)),
    }


def test_a_change_within_the_same_second_is_another_version():
    before = {"1": version("1", at(-2), name="First edit")}
    overlap = Overlap(before, floor=at(-10), lookback=TEN_MINUTES)
    assert admit(overlap, "1", at(-2), name="Second edit")
    assert overlap.remembered(bookmark=at(0)) == {
        "1": version("1", at(-2), name="Second edit")
    }
    # A state from before versions had a digest matches nothing: emitted again.
    assert admit(Overlap({"1": at(-2)}, floor=None, lookback=TEN_MINUTES), "1", at(-2))


def test_a_version_sorts_by_time_whatever_its_digest():
    versions = [version(str(n), at(n), name=f"n{n}") for n in (-3, 7, 12)]
    assert sorted(versions, reverse=True) == versions[::-1]


def test_the_overlap_remembers_only_the_newest_near_the_bookmark():
    overlap = Overlap(None, floor=None, lookback=TEN_MINUTES, at_most=3)
    for n in range(20):
        assert admit(overlap, str(n), at(n))
    # Within ten minutes of the newest (19), the newest three.
    assert overlap.remembered(bookmark=None) == {
        "19": version("19", at(19)),
        "18": version("18", at(18)),
        "17": version("17", at(17)),
    }


def test_a_run_that_emits_nothing_keeps_what_was_remembered():
    before = {"1": version("1", at(-2))}
    overlap = Overlap(before, floor=at(-10), lookback=TEN_MINUTES)
    assert not admit(overlap, "1", at(-2))
    assert overlap.remembered(bookmark=at(0)) == before
    assert Overlap({}, floor=None, lookback=TEN_MINUTES).remembered(None) is None


def test_call_windows_are_closed_whole_seconds_ending_before_the_run():
    run_started = T0 + timedelta(days=45, microseconds=700)
    windows = call_windows(T0 + timedelta(microseconds=300), run_started, days=30)
    assert windows[0][0] == T0
    assert windows[-1][1] == (run_started - CALL_WINDOW_END_MARGIN).replace(
        microsecond=0
    )
    assert windows[0][1] - windows[0][0] == timedelta(days=30)
    assert call_windows(None, T0, days=30)[0][0] == CALL_HISTORY_START


def test_a_call_is_emitted_once_across_windows_and_far_strays_are_refused():
    ledger = CallLedger()
    start, end = T0, T0 + timedelta(days=1)
    assert ledger.near(at(5), start, end)
    assert ledger.near(at(-60 * 23), start, end)  # a near miss: another zone
    assert not ledger.near(at(-60 * 25), start, end)  # the server ignores dates
    assert ledger.near(None, start, end)
    assert ledger.first_time("a", at(5))
    assert not ledger.first_time("a", at(5))
    ledger.window_done(end)
    assert not ledger.first_time("a", at(5))  # still near the next window
    ledger.window_done(end + timedelta(days=2))
    assert ledger.first_time("a", at(5))  # forgotten: no window returns it now
