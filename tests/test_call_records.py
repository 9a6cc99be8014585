"""Call records end to end: closed windows, count, lookback, one type per field."""

from __future__ import annotations

import copy
import itertools
import math
import re
from datetime import datetime, timedelta, timezone

import pytest

from fake_smartflo import IST, FakeSmartflo
from scripts.catalog import deselect_properties
from tests.configs import base_config
from tests.messages import RFC3339_UTC
from tests.running import catalog_selecting

UTC = timezone.utc
PATH = "/v1/call/records"
NESTED = {
    "notes": list,
    "contact_details": dict,
    "missed_agents": list,
    "agent_hangup_data": list,
    "circle": dict,
    "call_flow": list,
    "dialer_call_details": dict,
    "custom_status": dict,
}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def config(api, start: datetime, **settings):
    return base_config(api.url, start_date=start.isoformat(), **settings)


def emitted_id(call_id: str | int) -> str:
    return str(call_id)


def started_between(api, low: datetime, high: datetime) -> set[str]:
    return {
        emitted_id(c.id) for c in api.call_store.values() if low <= c.started_at < high
    }


def ist(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)


def windows_asked(api) -> list[tuple[datetime, datetime]]:
    """The distinct (from_date, to_date) the tap asked for, in order."""
    seen: list[tuple[datetime, datetime]] = []
    for request in api.requests_to(PATH):
        window = (ist(request.params["from_date"]), ist(request.params["to_date"]))
        if window not in seen:
            seen.append(window)
    return seen


def test_every_call_is_emitted_once_and_valid_with_one_type_per_field(tap):
    with FakeSmartflo(calls=400, call_ids="mixed") as api:
        run = tap(config(api, now() - timedelta(days=4), page_size=30))
    assert run.returncode == 0, run.stderr
    records = run.records("call_records")
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == {emitted_id(i) for i in api.call_store}
    assert run.schema_errors("call_records") == []
    schema = run.schema("call_records")
    assert schema["key_properties"] == ["id"]
    assert schema["bookmark_properties"] == ["started_at"]
    for name, kind in NESTED.items():
        assert {type(r[name]) for r in records} <= {kind, type(None)}, name
        assert any(isinstance(r[name], kind) for r in records), name


def test_started_at_is_the_utc_start_and_the_original_fields_are_kept(tap):
    with FakeSmartflo(calls=50) as api:
        run = tap(config(api, now() - timedelta(days=4)))
    by_id = {r["id"]: r for r in run.records("call_records")}
    for call in api.call_store.values():
        record = by_id[emitted_id(call.id)]
        assert RFC3339_UTC.match(record["started_at"])
        assert datetime.fromisoformat(record["started_at"]) == call.started_at
        local = call.started_at.astimezone(IST)
        assert record["date"] == local.strftime("%Y-%m-%d")
        assert record["time"] == local.strftime("%H:%M:%S")
        ended = call.started_at + timedelta(seconds=call.duration)
        assert datetime.fromisoformat(record["end_stamp"]) == ended


def test_ids_are_text_whatever_the_account_sends(tap):
    with FakeSmartflo(calls=40, call_ids="mixed") as api:
        run = tap(config(api, now() - timedelta(days=4)))
    ids = {r["id"] for r in run.records("call_records")}
    assert all(isinstance(i, str) for i in ids)
    assert any(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert any(i.isdigit() for i in ids)  # an older account's integer, as text
    assert all(isinstance(r["call_id"], str) for r in run.records("call_records"))


def test_quirky_values_become_numbers_or_null(tap):
    with FakeSmartflo(calls=80) as api:
        run = tap(config(api, now() - timedelta(days=4)))
    by_id = {r["id"]: r for r in run.records("call_records")}
    for call in api.call_store.values():
        record = by_id[emitted_id(call.id)]
        raw = api.render_call(call)
        assert record["call_duration"] == call.duration
        assert record["answered_seconds"] == int(raw["answered_seconds"])
        assert isinstance(record["charges"], int | float)
        if raw["agent_ring_time"] == "N.A.":
            assert record["agent_ring_time"] is None
        else:
            assert record["agent_ring_time"] == int(raw["agent_ring_time"])
    assert any(r["agent_ring_time"] is None for r in by_id.values())


def test_windows_are_closed_contiguous_and_at_most_the_configured_days(tap):
    start = now() - timedelta(days=10, hours=3)
    with FakeSmartflo(calls=200, call_history=timedelta(days=9)) as api:
        before = now()
        run = tap(config(api, start, call_records_window_days=3))
    assert run.returncode == 0, run.stderr
    windows = windows_asked(api)
    assert len(windows) == 4
    assert windows[0][0] == start - timedelta(seconds=1)
    for (low, high), (next_low, _) in itertools.pairwise(windows):
        assert high - low <= timedelta(days=3, seconds=1)
        assert next_low == high - timedelta(seconds=1)
    # The last window ends a minute before the run, never in the future.
    assert (
        before - timedelta(minutes=2) < windows[-1][1] <= before - timedelta(seconds=59)
    )
    assert datetime.fromisoformat(run.bookmark("call_records")) == windows[-1][1]
    assert started_between(api, start, windows[-1][1]) == {
        r["id"] for r in run.records("call_records")
    }


def test_first_sync_over_years_of_empty_history_costs_one_request_per_window(tap):
    start = now() - timedelta(days=3 * 365)
    with FakeSmartflo(calls=60) as api:
        run = tap(config(api, start))
    assert run.returncode == 0, run.stderr
    assert len(run.records("call_records")) == 60
    requests = api.requests_to(PATH)
    # 30-day windows: 12 requests a year of empty history, one per window.
    assert len(requests) == math.ceil((now() - start) / timedelta(days=30))
    assert len(requests) == len(windows_asked(api))


def test_first_sync_without_start_date_starts_in_2015(tap):
    with FakeSmartflo(calls=5) as api:
        run = tap(base_config(api.url, start_date=None))
    assert run.returncode == 0, run.stderr
    assert len(run.records("call_records")) == 5
    first = windows_asked(api)[0][0]
    assert first == datetime(2015, 1, 1, tzinfo=UTC) - timedelta(seconds=1)


@pytest.mark.parametrize("exclusive", [False, True], ids=["inclusive", "exclusive"])
def test_a_call_on_a_window_edge_is_emitted_once(tap, exclusive):
    start = now() - timedelta(days=3)
    with FakeSmartflo(calls=30, exclusive_call_dates=exclusive) as api:
        edges = [start, start + timedelta(days=1), start + timedelta(days=2)]
        edge_ids = {emitted_id(api.add_call(moment)) for moment in edges}
        run = tap(config(api, start, call_records_window_days=1))
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids))
    assert edge_ids <= set(ids)
    assert set(ids) == {emitted_id(i) for i in api.call_store}


def test_count_ends_a_window_without_an_extra_request(tap):
    with FakeSmartflo(calls=60) as api:
        run = tap(config(api, now() - timedelta(days=4), page_size=20))
    assert len(run.records("call_records")) == 60
    # Pages 2 and 3 may be fetched ahead, in either order; none beyond the count.
    assert sorted(r.params["page"] for r in api.requests_to(PATH)) == ["1", "2", "3"]


def claims_the_asked_limit(body):
    """A server that caps ``limit`` at 50 but echoes 100, the limit asked for."""
    return {**body, "limit": 100} if "count" in body else body


def test_a_server_capping_limit_without_saying_so_loses_no_call(tap):
    # Pages of 50 that claim a limit of 100 look like last pages; count says 300.
    start = now() - timedelta(days=3)
    with FakeSmartflo(calls=0, page_cap=50, body_filter=claims_the_asked_limit) as api:
        for minute in range(300):
            api.add_call(start + timedelta(minutes=5 * minute))
        run = tap(config(api, start, page_size=100))
    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids)) == 300
    assert "reading the window again" not in run.stderr


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_ties_split_across_pages_of_a_silently_capped_limit_are_all_read(tap, seed):
    # Pages of 50 claiming 100: the boundaries where ties split are at 50, 150,
    # ..., not where the claimed limit would put them (100, 200).
    start = now() - timedelta(days=2)
    with FakeSmartflo(
        calls=0,
        page_cap=50,
        shuffle_call_ties=True,
        seed=seed,
        body_filter=claims_the_asked_limit,
    ) as api:
        for k in range(240):  # 20 calls in each of 12 seconds
            api.add_call(start + timedelta(hours=1, seconds=k // 20))
        run = tap(config(api, start, page_size=100, max_concurrent_requests=1))
    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids))
    assert set(ids) == {emitted_id(i) for i in api.call_store}


def test_a_window_still_short_of_its_count_is_named_in_a_warning(tap):
    # A count the server never makes good (it counts calls it does not return):
    # nothing more can be read, so the bookmark moves on, and the log says so.
    start = now() - timedelta(days=3)

    def overcounts(body):
        return {**body, "count": body["count"] + 5} if "count" in body else body

    with FakeSmartflo(calls=0, body_filter=overcounts) as api:
        for minute in range(30):
            api.add_call(start + timedelta(minutes=5 * minute))
        run = tap(config(api, start, page_size=100))
    assert run.returncode == 0, run.stderr
    assert len(run.records("call_records")) == 30
    (line,) = [line for line in run.stderr.splitlines() if "moves past" in line]
    assert "35 calls" in line
    assert "30 were returned" in line


def test_pages_shifted_by_calls_arriving_mid_read_lose_and_duplicate_nothing(tap):
    start = now() - timedelta(days=4)
    with FakeSmartflo(calls=100, late_calls_during_read=3) as api:
        first = tap(config(api, start, page_size=20))
        originals = {emitted_id(i) for i in api.call_store} - {
            emitted_id(i) for i in api.late_arrivals
        }
        second = tap(config(api, start, page_size=20), state=first.final_state)
    ids = [r["id"] for r in first.records("call_records")]
    assert len(ids) == len(set(ids))
    late = {emitted_id(i) for i in api.late_arrivals}
    # The window's count grew as they arrived: the window is read again, and
    # the late calls come in the same run (or, at the latest, the next).
    assert originals <= set(ids) <= originals | late
    assert late <= set(ids) | {r["id"] for r in second.records("call_records")}


def test_a_window_short_of_its_count_is_read_again(tap):
    # Calls started in the same second come back in a different order on every
    # page (LIMIT/OFFSET without a unique sort): one reading misses some.
    start = now() - timedelta(days=2)
    with FakeSmartflo(calls=0, shuffle_call_ties=True) as api:
        for second in range(30):
            for _ in range(10):
                api.add_call(start + timedelta(hours=1, seconds=second))
        # One page at a time: the fake draws each page's order from one seeded
        # sequence, so pages fetched ahead would get orders that depend on which
        # request arrives first. In turn, the run sees the same orders every time.
        run = tap(config(api, start, page_size=25, max_concurrent_requests=1))
    assert run.stderr.count("reading the window again") == 2
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids))
    assert set(ids) == {emitted_id(i) for i in api.call_store}


@pytest.mark.parametrize("seed", range(1, 7))
def test_calls_of_one_second_split_across_pages_are_all_read(tap, seed):
    # Ties in started_at come in a new order on every request: re-reading the
    # window is a lottery. The seconds whose calls straddle a page boundary are
    # then read alone, where one page holds them all.
    start = now() - timedelta(days=2)
    with FakeSmartflo(calls=0, shuffle_call_ties=True, seed=seed) as api:
        for second in range(30):
            for _ in range(10):
                api.add_call(start + timedelta(hours=1, seconds=second))
        run = tap(config(api, start, page_size=25))
    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids))
    assert set(ids) == {emitted_id(i) for i in api.call_store}


def test_a_server_reading_the_dates_as_utc_loses_no_call(tap):
    start = now() - timedelta(days=5)
    with FakeSmartflo(calls=400, call_dates_tz=UTC) as api:
        run = tap(config(api, start, call_records_window_days=1))
    ids = [r["id"] for r in run.records("call_records")]
    assert len(ids) == len(set(ids))
    assert set(ids) == {emitted_id(i) for i in api.call_store}


def test_call_records_window_is_complete_before_bookmark_moves(tap):
    start = now() - timedelta(days=4)
    with FakeSmartflo(calls=300) as api:
        run = tap(config(api, start, page_size=20, call_records_window_days=1))
    assert run.returncode == 0, run.stderr
    emitted: set[str] = set()
    bookmarks = []
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "call_records":
            emitted.add(message["record"]["id"])
        elif message["type"] == "STATE":
            state = message["value"]["bookmarks"].get("call_records", {})
            if bookmark := state.get("replication_key_value"):
                # Every call before the bookmark has left before the bookmark did.
                assert (
                    started_between(api, start, datetime.fromisoformat(bookmark))
                    <= emitted
                )
                bookmarks.append(bookmark)
    window_ends = [high for _, high in windows_asked(api)]
    assert sorted(set(bookmarks)) == [
        end.astimezone(UTC).isoformat() for end in window_ends
    ]


def test_a_failed_window_keeps_the_bookmark_at_the_last_complete_window(tap):
    start = now() - timedelta(days=4)
    settings = {"page_size": 20, "call_records_window_days": 1}
    with FakeSmartflo(calls=300) as api:
        tap(config(api, start, **settings))
        third_window = sorted({r.params["from_date"] for r in api.requests_to(PATH)})[2]
        api.broken_call_page = (third_window, "2")
        failed = tap(config(api, start, **settings))
        api.broken_call_page = None
        resumed = tap(config(api, start, **settings), state=failed.states[-1])
    assert failed.returncode == 1
    assert "answered an error instead of a 'results' list: Something" in failed.stderr
    bookmark = datetime.fromisoformat(
        failed.states[-1]["bookmarks"]["call_records"]["replication_key_value"]
    )
    assert bookmark == ist(third_window) + timedelta(seconds=1)
    assert started_between(api, start, bookmark) <= {
        r["id"] for r in failed.records("call_records")
    }
    assert resumed.returncode == 0, resumed.stderr
    everything = {r["id"] for r in failed.records("call_records")} | {
        r["id"] for r in resumed.records("call_records")
    }
    assert everything == {emitted_id(i) for i in api.call_store}


def test_incremental_run_reads_new_calls_and_rereads_the_lookback(tap):
    start = now() - timedelta(days=4)
    with FakeSmartflo(calls=300) as api:
        first = tap(config(api, start))
        # As if the first run had been ten seconds earlier: its last window ended
        # ten seconds sooner, and no call started in those seconds (the fake's
        # start an hour ago at the latest). So the second run, a minute before its
        # own start, reads past calls that start after the bookmark without
        # waiting for the clock to move on.
        bookmark = datetime.fromisoformat(first.bookmark("call_records"))
        bookmark -= timedelta(seconds=10)
        state = copy.deepcopy(first.final_state)
        state["bookmarks"]["call_records"]["replication_key_value"] = (
            bookmark.isoformat()
        )
        assert not started_between(api, bookmark, bookmark + timedelta(seconds=10))
        calls = sorted(api.call_store.values(), key=lambda c: c.started_at)
        # A recording that arrives late, for a call inside the lookback ...
        recent = next(c for c in reversed(calls) if c.recording_url is None)
        assert recent.started_at > bookmark - timedelta(hours=24)
        api.touch_call(recent.id, recording_url="https://recordings.example.com/late")
        # ... and one for a call older than the lookback, which is not re-read.
        old = next(c for c in calls if c.started_at < bookmark - timedelta(hours=30))
        api.touch_call(old.id, recording_url="https://recordings.example.com/old")
        # A long call, written when it ended, after the first run.
        long_call = emitted_id(api.add_call(bookmark - timedelta(hours=2)))
        # Calls that started after the first run read.
        new = {emitted_id(api.add_call(bookmark + timedelta(seconds=1))) for _ in "ab"}
        api.requests.clear()
        second = tap(config(api, start), state=state)
    assert second.returncode == 0, second.stderr
    new_bookmark = datetime.fromisoformat(second.bookmark("call_records"))
    assert new_bookmark > bookmark + timedelta(seconds=1)
    by_id = {r["id"]: r for r in second.records("call_records")}
    assert set(by_id) == started_between(
        api, bookmark - timedelta(hours=24), new_bookmark
    )
    assert new | {long_call, emitted_id(recent.id)} <= set(by_id)
    assert by_id[emitted_id(recent.id)]["recording_url"].endswith("/late")
    assert emitted_id(old.id) not in by_id
    low, _ = windows_asked(api)[0]
    assert low == bookmark - timedelta(hours=24, seconds=1)


def test_a_server_that_ignores_the_dates_costs_more_but_loses_nothing(tap):
    start = now() - timedelta(days=4)
    with FakeSmartflo(calls=50, ignore_call_dates=True) as api:
        run = tap(config(api, start, call_records_window_days=1))
    ids = [r["id"] for r in run.records("call_records")]
    assert sorted(ids) == sorted(emitted_id(i) for i in api.call_store)
    assert run.stderr.count("does not filter by these dates") == 1


def test_started_at_survives_deselecting_date_and_time(tap):
    with FakeSmartflo(calls=20) as api:
        config_ = config(api, now() - timedelta(days=4))
        catalog = catalog_selecting(["call_records"])
        deselect_properties(catalog, "call_records", ["date", "time"])
        run = tap(config_, catalog=catalog)
    assert run.returncode == 0, run.stderr
    records = run.records("call_records")
    assert len(records) == 20
    assert all("date" not in r and "time" not in r for r in records)
    starts = {str(c.id): c.started_at for c in api.call_store.values()}
    assert all(
        datetime.fromisoformat(r["started_at"]) == starts[r["id"]] for r in records
    )
