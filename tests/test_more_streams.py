"""DND lists and their numbers, scheduled callbacks and user details (#22).

Through real HTTP against the fake, which serves these endpoints with the quirks the
API documents: keyset pages (``cursor``, ``last_seen_id``, camelCase ``hasMore``),
required ``from_date``/``to_date`` of at most 31 days in naive IST, and a 4xx for a
user id the API does not know.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing as t
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from fake_smartflo import IST, FakeSmartflo
from fake_smartflo.more import DONE, IN_PROGRESS, PENDING
from tap_smartflo.callbacks import CallbackDigests, callback_windows
from tests.configs import FAST_RETRIES, base_config
from tests.messages import RFC3339_UTC, assert_one_clear_line
from tests.running import run_tap

if t.TYPE_CHECKING:
    from tests.messages import TapRun

STREAMS = ("user_details", "dnd_lists", "dnd_leads", "scheduled_callbacks")
DND_LISTS, DND_LEADS = "/v1/broadcast/dnd/lists", "/v1/broadcast/dnd/leads"
CALLBACKS = "/v1/dialer/schedule_call"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
#: Callbacks are read from here (the fake schedules them from 60 days ago).
START = NOW - timedelta(days=90)
QUERY_TIME = "%Y-%m-%d %H:%M:%S"


def account(**options: t.Any) -> FakeSmartflo:
    """An account with some of each, DND lists updated in the last weeks."""
    settings: dict[str, t.Any] = {
        "users": 7,
        "dnd_lists": 5,
        "dnd_leads_per_list": 4,
        "callbacks": 120,
        "base_time": NOW - timedelta(days=20),
        **options,
    }
    return FakeSmartflo(**settings)


#: One account for the tests that only read it.
API = account(dnd_lists=130, dnd_leads_per_list=2, callbacks=150).start()


def config(api: FakeSmartflo, **settings: t.Any) -> dict[str, t.Any]:
    return base_config(api.url, start_date=START.isoformat(), **settings)


def by_id(run: TapRun, stream: str) -> dict[t.Any, dict[str, t.Any]]:
    records = run.records(stream)
    found = {record["id"]: record for record in records}
    assert len(found) == len(records), f"{stream}: a record emitted twice"
    return found


def times_of(run: TapRun, stream: str) -> list[str]:
    """Every date-time value of ``stream``'s records (nested ones too)."""
    schema = run.schema(stream)["schema"]["properties"]
    found = []
    for record in run.records(stream):
        for name, prop in schema.items():
            if prop.get("format") == "date-time" and record[name] is not None:
                found.append(record[name])
    return found


def window_of(params: dict[str, str]) -> tuple[datetime, datetime]:
    low = datetime.strptime(params["from_date"], QUERY_TIME).replace(tzinfo=IST)
    high = datetime.strptime(params["to_date"], QUERY_TIME).replace(tzinfo=IST)
    return low, high


@pytest.fixture(scope="module")
def full_read(tmp_path_factory: pytest.TempPathFactory) -> TapRun:
    """One run of the four streams over the shared account, for the tests to read."""
    API.requests.clear()
    workdir = tmp_path_factory.mktemp("full_read")
    run = run_tap(config(API), workdir=workdir, streams=STREAMS)
    assert run.returncode == 0, run.stderr
    return run


def test_every_record_arrives_once_with_one_type_per_field_and_utc_times(full_read):
    for stream in STREAMS:
        assert full_read.schema_errors(stream) == [], stream
        schema = full_read.schema(stream)["schema"]
        assert all(
            set(r) == set(schema["properties"]) for r in full_read.records(stream)
        )
        assert all(RFC3339_UTC.match(value) for value in times_of(full_read, stream))
    expected = {
        "user_details": API.user_store,
        "dnd_lists": API.dnd_list_store,
        "dnd_leads": API.dnd_lead_store,
        "scheduled_callbacks": API.callback_store,
    }
    for stream, store in expected.items():
        assert sorted(by_id(full_read, stream)) == sorted(store), stream


def test_user_details_hold_each_users_number_team_member_and_agent(full_read):
    users = by_id(full_read, "user_details")
    for user_id, record in users.items():
        assert record["number"] == f"+9198{user_id:08d}"
        assert record["team_member"]["email"] == f"user{user_id}@example.com"
        if record["agent"] is not None:
            # An integer in the API, text as users.extension is.
            assert record["agent"]["extension"] == str(
                API.user_store[user_id].extension
            )
    assert sum(r["agent"] is None for r in users.values()) == sum(
        u.agent_id is None for u in API.user_store.values()
    )
    # One request per user.
    asked = sorted(r.path for r in API.requests if r.path.startswith("/v1/user/"))
    assert asked == sorted(f"/v1/user/{user_id}" for user_id in API.user_store)


def test_dnd_lists_and_leads_come_whole_in_keyset_pages_of_100(full_read):
    for list_id, record in by_id(full_read, "dnd_lists").items():
        stored = API.dnd_list_store[list_id]
        assert record["name"] == stored.name
        assert record["updated_at"] == stored.updated_at.isoformat()  # +0530 in the API
    for lead_id, record in by_id(full_read, "dnd_leads").items():
        stored = API.dnd_lead_store[lead_id]
        assert (record["list_id"], record["number"]) == (stored.list_id, stored.number)
        assert record["created_at"] == stored.created_at.isoformat()
    # Each page after the last id of the one before, at the documented limit.
    pages = API.requests_to(DND_LISTS)
    assert [r.params.get("cursor") for r in pages] == [None, "900"]
    assert all(r.params["limit"] == "100" for r in pages)
    assert all(r.params["sort_dir"] == "asc" for r in pages)
    pages = API.requests_to(DND_LEADS)
    ordered = sorted(API.dnd_lead_store)
    assert [r.params.get("last_seen_id") for r in pages] == [
        None,
        ordered[99],
        ordered[199],
    ]
    assert all(r.params["limit"] == "100" for r in pages)
    # Full tables say which rows are gone; dnd_lists is incremental.
    activated = {
        m["stream"] for m in full_read.messages if m["type"] == "ACTIVATE_VERSION"
    }
    assert activated == {"user_details", "dnd_leads"}


def test_callbacks_come_in_utc_from_windows_the_api_accepts(full_read):
    for callback_id, record in by_id(full_read, "scheduled_callbacks").items():
        stored = API.callback_store[callback_id]
        # Naive IST and 2025-01-22T03:03:49.000Z in the API: both UTC here.
        assert record["schedule_date_time"] == stored.scheduled_at.isoformat()
        assert record["updated_at"] == stored.updated_at.isoformat()
        end = stored.call_end_time
        assert record["call_end_time"] == (end and end.isoformat())
        assert record["status"] == stored.status
    # Both dates, never more than 31 days apart, tiling start_date to 30 days
    # ahead: the API never had reason to answer 422.
    windows = [window_of(r.params) for r in API.requests_to(CALLBACKS)]
    assert all(r.status == 200 for r in API.requests)
    assert all(high - low <= timedelta(days=31) for low, high in windows)
    assert windows[0][0] == START - timedelta(seconds=1)
    assert windows[-1][1] >= NOW + timedelta(days=30)
    assert all(a[1] >= b[0] for a, b in itertools.pairwise(windows))


def test_their_requests_are_counted_by_the_paced_transport(full_read):
    # The transport waits on the pacer before it counts a request as sent.
    sent = Counter(
        "user_details" if r.path.startswith("/v1/user/") else r.path
        for r in API.requests
    )
    assert f"Summary: user_details: 7 records, {sent['user_details']} requests" in (
        full_read.stderr
    )
    assert (
        f"Summary: scheduled_callbacks: 150 records, {sent[CALLBACKS]} requests"
        in full_read.stderr
    )
    assert f"Summary: dnd_leads: 260 records, {sent[DND_LEADS]} requests" in (
        full_read.stderr
    )


class Warehouse:
    """An upserting target that honours ACTIVATE_VERSION: rows of older versions go."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[t.Any, tuple[int | None, dict[str, t.Any]]]] = {}

    def load(self, run: TapRun) -> None:
        for message in run.messages:
            table = self.tables.setdefault(message.get("stream", ""), {})
            if message["type"] == "RECORD":
                record = message["record"]
                table[record["id"]] = (message.get("version"), record)
            elif message["type"] == "ACTIVATE_VERSION":
                version = message["version"]
                for key, (row_version, _) in list(table.items()):
                    if row_version is None or row_version < version:
                        del table[key]

    def rows(self, stream: str) -> dict[t.Any, dict[str, t.Any]]:
        return {key: row for key, (_, row) in self.tables.get(stream, {}).items()}


def test_two_scheduled_runs_leave_the_warehouse_equal_to_the_account(tap):
    with account() as api:
        three_days_ago = NOW - timedelta(days=3)
        (late,) = api.schedule_callbacks(
            1, between=(three_days_ago, three_days_ago), pending=True
        )
        first = tap(config(api), streams=STREAMS)
        # Between the runs: callbacks made (one late, one due now) and one started,
        # new ones scheduled three days ahead, DND lists renamed, numbers taken off.
        due = sorted(
            (c for c in api.callback_store.values() if c.scheduled_at > NOW),
            key=lambda c: c.scheduled_at,
        )
        # Made three days late (due before the first run: only the lookback
        # re-reads it), made when due, and one started.
        made = [late, due[0].id, due[1].id]
        for callback_id in made[:2]:
            api.make_callback(callback_id)
        api.make_callback(made[2], status=IN_PROGRESS)
        ahead = NOW + timedelta(days=3)
        new = api.schedule_callbacks(4, between=(ahead, ahead + timedelta(hours=2)))
        renamed = sorted(api.dnd_list_store)[1:3]
        for list_id in renamed:
            api.rename_dnd_list(list_id, f"Renamed {list_id}")
        removed = sorted(api.dnd_lead_store)[::6]
        for lead_id in removed:
            api.remove_dnd_lead(lead_id)
        api.requests.clear()
        second = tap(config(api), streams=STREAMS, state=first.final_state)
        reread = [window_of(r.params) for r in api.requests_to(CALLBACKS)]
        fresh = tap(config(api), streams=STREAMS)
    assert first.returncode == second.returncode == fresh.returncode == 0, second.stderr
    warehouse = Warehouse()
    warehouse.load(first)
    warehouse.load(second)
    # Exactly what a fresh read of the account gives, nothing more, nothing less.
    for stream in STREAMS:
        assert warehouse.rows(stream) == by_id(fresh, stream), stream
    callbacks = warehouse.rows("scheduled_callbacks")
    assert sorted(callbacks) == sorted(api.callback_store)
    before = by_id(first, "scheduled_callbacks")
    assert {before[c]["status"] for c in made} == {PENDING}
    assert {c: callbacks[c]["status"] for c in made} == {
        made[0]: DONE,
        made[1]: DONE,
        made[2]: IN_PROGRESS,
    }
    lists = warehouse.rows("dnd_lists")
    assert {lists[i]["name"] for i in renamed} == {f"Renamed {i}" for i in renamed}
    leads = warehouse.rows("dnd_leads")
    assert sorted(leads) == sorted(api.dnd_lead_store)
    assert not set(removed) & set(leads)

    # The second run emitted the callbacks that changed, not the weeks it re-read
    # (at most a few times as many as changed: here, exactly those).
    emitted = [r["id"] for r in second.records("scheduled_callbacks")]
    assert sorted(emitted) == sorted([*made, *new])
    assert len(first.records("scheduled_callbacks")) == len(api.callback_store) - 4
    # What it re-read: the lookback (7 days) before the first run's start, to 30
    # days ahead, in two windows.
    bookmark = datetime.fromisoformat(first.bookmark("scheduled_callbacks"))
    assert len(reread) == 2
    assert reread[0][0] == bookmark - timedelta(days=7, seconds=1)
    assert reread[-1][1] >= NOW + timedelta(days=30)
    assert len(second.records("dnd_lists")) == len(renamed)


def test_a_third_run_with_nothing_changed_emits_no_callback_and_keeps_a_small_state(
    tap,
):
    with account(callbacks=300) as api:
        first = tap(config(api), streams=["scheduled_callbacks"])
        api.requests.clear()
        second = tap(
            config(api), streams=["scheduled_callbacks"], state=first.final_state
        )
    assert second.returncode == 0, second.stderr
    assert second.records("scheduled_callbacks") == []
    # Two windows: 7 days back from the first run's start, 30 days ahead.
    (early, late) = [window_of(r.params) for r in api.requests]
    bookmark = datetime.fromisoformat(first.bookmark("scheduled_callbacks"))
    assert early[0] == bookmark - timedelta(days=7, seconds=1)
    assert late[1] >= NOW + timedelta(days=30)
    # The state remembers the callbacks still to re-read, not the history.
    state = second.final_state["bookmarks"]["scheduled_callbacks"]
    remembered = state["emitted_near_bookmark"]
    due = {
        c.id
        for c in api.callback_store.values()
        if c.scheduled_at >= bookmark - timedelta(days=7)
    }
    assert sorted(int(k) for k in remembered) == sorted(due)
    assert len(due) < len(api.callback_store) / 2
    # Nor while the first run read the history: every STATE it wrote remembers
    # only callbacks a run resuming from it would read again.
    for written in first.states:
        stream = written["bookmarks"].get("scheduled_callbacks", {})
        if "replication_key_value" not in stream:
            continue
        resumes = datetime.fromisoformat(stream["replication_key_value"])
        remembered = stream.get("emitted_near_bookmark", {})
        assert all(
            api.callback_store[int(k)].scheduled_at >= resumes - timedelta(days=7 + 1)
            for k in remembered
        )
    assert (
        max(
            len(s["bookmarks"]["scheduled_callbacks"].get("emitted_near_bookmark", {}))
            for s in first.states
            if "scheduled_callbacks" in s.get("bookmarks", {})
        )
        < len(api.callback_store) / 2
    )
    assert second.bookmark("scheduled_callbacks") >= first.bookmark(
        "scheduled_callbacks"
    )


def test_a_run_that_fails_midway_leaves_a_state_true_to_what_it_emitted(tap):
    with account() as api:
        first = tap(config(api), streams=["scheduled_callbacks"])
        # Due tomorrow: in the second run's first window (the lookback onward).
        callback = min(
            (c for c in api.callback_store.values() if c.scheduled_at > NOW),
            key=lambda c: c.scheduled_at,
        )
        original = dataclasses.replace(callback)
        api.make_callback(callback.id)
        windows = 0

        def second_window_fails(body: t.Any) -> t.Any:
            nonlocal windows
            windows += "ok" in body
            return {"ok": False, "message": "Server busy"} if windows == 2 else body

        api.body_filter = second_window_fails
        failed = tap(
            config(api), streams=["scheduled_callbacks"], state=first.final_state
        )
        api.body_filter = None
        # Exactly as it was before (undone): the target now holds the made one.
        api.callback_store[callback.id] = original
        third = tap(
            config(api), streams=["scheduled_callbacks"], state=failed.final_state
        )
        fresh = tap(config(api), streams=["scheduled_callbacks"])
    assert failed.returncode == 1
    assert [r["status"] for r in failed.records("scheduled_callbacks")] == [DONE]
    assert third.returncode == 0, third.stderr
    assert [r["id"] for r in third.records("scheduled_callbacks")] == [callback.id]
    warehouse = Warehouse()
    for run in (first, failed, third):
        warehouse.load(run)
    assert warehouse.rows("scheduled_callbacks") == by_id(fresh, "scheduled_callbacks")


def test_a_server_that_ignores_the_dates_gives_each_callback_once(tap):
    with account(ignore_callback_dates=True) as api:
        first = tap(config(api), streams=["scheduled_callbacks"])
        made = min(
            (c for c in api.callback_store.values() if c.scheduled_at > NOW),
            key=lambda c: c.scheduled_at,
        ).id
        api.make_callback(made)
        second = tap(
            config(api), streams=["scheduled_callbacks"], state=first.final_state
        )
    assert first.returncode == second.returncode == 0, first.stderr
    assert sorted(by_id(first, "scheduled_callbacks")) == sorted(api.callback_store)
    # Every callback came back in each window; only the one made is emitted.
    assert [r["id"] for r in second.records("scheduled_callbacks")] == [made]
    warned = [line for line in first.stderr.splitlines() if "outside" in line]
    assert len(warned) == 1
    assert "does not filter by these dates" in warned[0]


@pytest.mark.parametrize("status", [200, 400, 404, 422])
def test_a_user_id_answered_with_an_error_is_skipped_with_one_warning(tap, status):
    with account(
        users=5,
        broken_user_details=frozenset({370704}),
        user_details_error_status=status,
    ) as api:
        run = tap(config(api, **FAST_RETRIES), streams=["user_details", "dnd_leads"])
    assert run.returncode == 0, run.stderr
    assert sorted(by_id(run, "user_details")) == sorted(set(api.user_store) - {370704})
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "skipped user_id 370704" in warnings[0]
    assert "No user found with id 370704" in warnings[0]
    # Asked once (an answer, not a fault to retry or a limit to step down from),
    # and the run went on.
    assert len(api.requests_to("/v1/user/370704")) == 1
    assert len(run.records("dnd_leads")) == len(api.dnd_lead_store)
    activated = {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}
    assert activated == {"user_details", "dnd_leads"}


def test_a_refused_callback_window_names_the_window_and_why(tap):
    with account(callback_window_days=10) as api:
        run = tap(config(api, **FAST_RETRIES), streams=["scheduled_callbacks"])
    assert_one_clear_line(run, "The date range may not be more than 10 days")
    line = run.stderr.splitlines()[-1]
    (request,) = api.requests_to(CALLBACKS)  # not retried, no limit stepped down
    assert request.status == 422
    assert f"from_date={request.params['from_date']}" in line
    assert f"to_date={request.params['to_date']}" in line
    assert "HTTP 422" in line
    assert run.records("scheduled_callbacks") == []


def test_a_server_that_ignores_updated_after_loses_and_repeats_no_dnd_list(tap):
    with account(dnd_lists=0, ignore_dnd_updated_after=True) as api:
        for _ in range(12):  # updated hours apart, most long before the bookmark
            api.add_dnd_list()
            api.tick(3600)
        first = tap(config(api), streams=["dnd_lists"])
        api.rename_dnd_list(805, "Renamed")
        second = tap(config(api), streams=["dnd_lists"], state=first.final_state)
    assert first.returncode == second.returncode == 0, second.stderr
    assert sorted(by_id(first, "dnd_lists")) == sorted(api.dnd_list_store)
    # Every list came back, but only the renamed one had changed since.
    assert list(by_id(second, "dnd_lists")) == [805]
    assert by_id(second, "dnd_lists")[805]["name"] == "Renamed"


def test_a_server_that_ignores_last_seen_id_stops_the_run_rather_than_loop(tap):
    with account(
        dnd_lists=60, dnd_leads_per_list=4, ignore_dnd_last_seen_id=True
    ) as api:
        run = tap(config(api, **FAST_RETRIES), streams=["dnd_leads"], timeout=30)
    assert_one_clear_line(run, "would repeat a page")
    assert len(api.requests_to(DND_LEADS)) == 2
    # Nothing emitted twice, and the partial read removes nothing from the target.
    by_id(run, "dnd_leads")
    assert not [m for m in run.messages if m["type"] == "ACTIVATE_VERSION"]


# The pure rules behind the callbacks stream


def test_callback_windows_tile_the_range_in_30_days_at_most():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    run_started = datetime(2024, 6, 1, 12, 0, 0, 500, tzinfo=timezone.utc)
    windows = callback_windows(start, run_started, 30)
    assert windows[0][0] == start
    assert windows[-1][1] == datetime(2024, 7, 1, 12, tzinfo=timezone.utc)
    assert all(b - a <= timedelta(days=30) for a, b in windows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))


def test_digests_emit_what_changed_and_forget_what_settled():
    digests = CallbackDigests({"1": "old", "2": "x"}, keep_from="2024-06-01T00:00:00")
    same = {"id": 3, "status": 0}
    assert digests.admit("3", "2024-06-02T00:00:00+00:00", same)  # new
    assert not digests.admit("3", "2024-06-02T00:00:00+00:00", same)  # seen again
    assert digests.admit("1", "2024-05-01T00:00:00+00:00", {"id": 1})  # changed
    during = digests.during()
    assert set(during) == {"1", "2", "3"}  # what the target holds, so far
    # After a whole run: only what the next run re-reads (due from keep_from on);
    # "2" was not returned again, "1" is settled.
    kept = digests.after()
    assert set(kept) == {"3"}
    again = CallbackDigests(kept, keep_from="2024-06-01T00:00:00")
    assert not again.admit("3", "2024-06-02T00:00:00+00:00", same)
    # Read callbacks due before a window's resumption point are forgotten at once.
    digests.settled("2024-06-03T00:00:00+00:00")
    assert set(digests.during()) == {"1", "2"}  # the last run's, as they were
    assert digests.after() == {}
