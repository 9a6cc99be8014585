"""Every stream together: one run, the catalog's selection, separate bookmarks."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

from fake_smartflo import IST, FakeSmartflo
from scripts.catalog import select_streams
from tests.configs import (
    EMAIL,
    LINKED_STREAMS,
    PASSWORD,
    STREAM_PATHS,
    base_config,
    login_config,
    stream_of,
)

START = (datetime.now(timezone.utc) - timedelta(days=4)).replace(microsecond=0)


def full_api(**quirks) -> FakeSmartflo:
    return FakeSmartflo(
        contacts=450,
        contact_groups=130,
        calls=420,
        # Two pages of users at the fake's cap of 100 (three at page_size 40);
        # each user's details cost a request of its own.
        users=120,
        departments=4,
        ivrs=2,
        numbers=3,
        broadcast_lists=2,
        leads_per_list=3,
        broadcasts=120,
        dialer_campaigns=2,
        dnd_lists=3,
        dnd_leads_per_list=3,
        callbacks=20,
        **quirks,
    )


def expected_ids(api: FakeSmartflo) -> dict[str, list]:
    return {
        "contacts": sorted(api.store),
        "contact_groups": sorted(api.group_store),
        "call_records": sorted(str(i) for i in api.call_store),
        "users": sorted(api.user_store),
        "departments": sorted(api.department_store),
        "ivrs": sorted(api.ivr_store),
        "my_numbers": sorted(str(i) for i in api.number_store),
        "broadcast_lists": sorted(api.list_store),
        "broadcast_leads": sorted(
            lead.id for leads in api.lead_store.values() for lead in leads
        ),
        "broadcasts": sorted(api.broadcast_store),
        "dialer_campaigns": sorted(str(i) for i in api.campaign_store),
        "user_details": sorted(api.user_store),
        "dnd_lists": sorted(api.dnd_list_store),
        "dnd_leads": sorted(api.dnd_lead_store),
        "scheduled_callbacks": sorted(api.callback_store),
    }


def test_every_stream_in_one_run_is_complete_once_and_valid(tap):
    with full_api(ids_as_strings="mixed", call_ids="mixed") as api:
        run = tap(base_config(api.url, start_date="2024-01-01T00:00:00Z", page_size=40))
    assert run.returncode == 0, run.stderr
    expected = expected_ids(api)
    for stream in STREAM_PATHS:
        ids = [r["id"] for r in run.records(stream)]
        assert sorted(ids) == expected[stream], stream
        assert run.schema_errors(stream) == [], stream
        schema = run.schema(stream)["schema"]
        assert all(set(r) == set(schema["properties"]) for r in run.records(stream))
    assert "Traceback" not in run.stderr


def test_a_stream_deselected_in_the_catalog_is_neither_requested_nor_emitted(tap):
    with full_api() as api:
        config = base_config(api.url, start_date=START.isoformat())
        catalog = json.loads(tap(config, args=["--discover"]).stdout)
        assert {s["tap_stream_id"] for s in catalog["streams"]} == {
            *STREAM_PATHS,
            *LINKED_STREAMS,
        }
        run = tap(config, catalog=select_streams(catalog, ["contact_groups", "users"]))
    assert run.returncode == 0, run.stderr
    emitted = {m["stream"] for m in run.messages if m["type"] in {"SCHEMA", "RECORD"}}
    assert emitted == {"contact_groups", "users"}
    assert {r.path for r in api.requests} == {"/v1/contact/groups", "/v1/users"}
    assert len(run.records("users")) == 120


def test_each_stream_keeps_its_own_bookmark(tap):
    with full_api() as api:
        config = base_config(api.url, start_date="2024-01-01", lookback_minutes=0)
        first = tap(config)
        api.tick(3600)
        api.touch(next(iter(api.store)), name="Renamed")
        api.requests.clear()
        second = tap(config, state=first.final_state)
    bookmarks = first.final_state["bookmarks"]
    assert bookmarks["contacts"]["replication_key"] == "updated_at"
    assert bookmarks["contact_groups"]["replication_key"] == "updated_at"
    assert bookmarks["call_records"]["replication_key"] == "started_at"
    assert "replication_key" not in bookmarks["users"]
    assert (
        len({first.bookmark(s) for s in ("contacts", "contact_groups", "call_records")})
        == 3
    )

    def updated_after(path: str) -> str:
        # The stream's own request (discovery reads every group before it).
        return api.requests_to(path)[-1].params["updated_after"]

    for stream in ("contacts", "contact_groups"):
        sent = datetime.fromisoformat(first.bookmark(stream)) - timedelta(seconds=1)
        assert updated_after(STREAM_PATHS[stream]) == sent.strftime("%Y-%m-%d %H:%M:%S")
    # Call records start a lookback (24 hours) before their own bookmark.
    calls_from = datetime.fromisoformat(first.bookmark("call_records"))
    first_window = api.requests_to(STREAM_PATHS["call_records"])[0].params["from_date"]
    sent_from = datetime.strptime(first_window, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    assert sent_from == calls_from - timedelta(hours=24, seconds=1)
    # Only the changed contact moved its stream's bookmark.
    assert second.bookmark("contacts") > first.bookmark("contacts")
    assert second.bookmark("contact_groups") == first.bookmark("contact_groups")
    assert second.bookmark("call_records") >= first.bookmark("call_records")


def test_a_full_run_touches_only_the_documented_read_paths(tap):
    # Some Smartflo GET paths start or stop a campaign: the tap must call only the
    # read paths it names, and nothing else (the fake serves those others as the
    # changes they are, and records them).
    with full_api(logins={EMAIL: PASSWORD}) as api:
        config = login_config(api.url, start_date=START.isoformat())
        run = tap(config)
        checked = tap(config, args=["--test"])
    touched = {(r.method, r.path) for r in api.requests}
    others = {
        (method, path)
        for method, path in touched
        if not (method == "GET" and stream_of(path))
        and (method, path) != ("POST", "/v1/auth/login")
    }
    assert others == set()
    assert api.broadcast_actions == []
    assert run.returncode == checked.returncode == 0, run.stderr
    # ... and every stream was read, each list's leads among them.
    assert {stream_of(path) for _, path in touched} - {None} == set(STREAM_PATHS)
    assert {p for _, p in touched if stream_of(p) == "broadcast_leads"} == {
        f"/v1/broadcast/leads/{list_id}" for list_id in api.list_store
    }


def test_new_streams_cost_a_request_per_endpoint_per_list_and_per_100_broadcasts(tap):
    older = {"contacts", "contact_groups", "users", "call_records"}
    # What the DND, callback and user-details streams cost: test_more_streams.py.
    later = {"user_details", "dnd_lists", "dnd_leads", "scheduled_callbacks"}
    streams = [stream for stream in STREAM_PATHS if stream not in older | later]
    with FakeSmartflo(
        departments=3,
        ivrs=2,
        numbers=2,
        broadcast_lists=3,
        leads_per_list=2,
        broadcasts=250,
        dialer_campaigns=2,
    ) as api:
        # One page at a time: read-ahead may otherwise ask for a page past the end.
        run = tap(base_config(api.url, max_concurrent_requests=1), streams=streams)
    assert run.returncode == 0, run.stderr
    assert Counter(stream_of(r.path) for r in api.requests) == {
        "departments": 1,
        "ivrs": 1,
        "my_numbers": 1,
        "broadcast_lists": 1,
        "broadcast_leads": 3,  # one per list
        "broadcasts": 3,  # 250 broadcasts, 100 a page
        "dialer_campaigns": 1,
    }
