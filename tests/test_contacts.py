"""The contacts stream end to end: the tap's command against the fake over HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest

from fake_smartflo import IST, FakeSmartflo
from scripts.catalog import deselect_properties
from tests.configs import base_config
from tests.messages import RFC3339_UTC

TIME_FIELDS = ("created_at", "updated_at", "deleted_at")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_full_sync_emits_every_contact_exactly_once(tap):
    with FakeSmartflo(contacts=2345) as api:
        run = tap(base_config(api.url))
    assert run.returncode == 0, run.stderr
    ids = [record["id"] for record in run.records()]
    assert sorted(ids) == sorted(api.store)
    assert len(ids) == len(set(ids))
    assert next(m["type"] for m in run.messages) == "SCHEMA"


def test_every_record_is_valid_against_the_announced_schema(tap):
    with FakeSmartflo(contacts=300, ids_as_strings="mixed") as api:
        api.soft_delete(next(iter(api.store)))
        run = tap(base_config(api.url))
    schema = run.schema()["schema"]
    validator = jsonschema.Draft7Validator(schema)
    for record in run.records():
        assert not list(validator.iter_errors(record)), record
        assert set(record) == set(schema["properties"])
    assert run.schema()["key_properties"] == ["id"]
    assert run.schema()["bookmark_properties"] == ["updated_at"]


def test_bookmark_is_the_newest_updated_at(tap, api):
    run = tap(base_config(api.url))
    assert utc(run.bookmark()) == api.newest_updated_at
    assert RFC3339_UTC.match(run.bookmark())


def assert_pages_read_once(api: FakeSmartflo, needed: int, ahead: int) -> None:
    """Pages 1..needed were each read once; at most ``ahead`` more were tried."""
    pages = [int(r.params["page"]) for r in api.requests_to("/v1/contacts")]
    assert len(pages) == len(set(pages)), "a page was fetched twice"
    assert set(range(1, needed + 1)) <= set(pages)
    assert len(pages) - needed <= ahead


@pytest.mark.parametrize("page_cap", [30, 100])
def test_server_page_cap_loses_nothing(tap, page_cap):
    with FakeSmartflo(contacts=250, page_cap=page_cap) as api:
        run = tap(base_config(api.url, page_size=100, max_concurrent_requests=4))
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    # The last page is short by the *server's* limit: that is the end.
    assert_pages_read_once(api, needed=-(-250 // page_cap), ahead=3)
    # (Endpoints that do not page get no parameters at all; scheduled callbacks
    # their dates, and no limit.)
    callbacks = api.requests_to("/v1/dialer/schedule_call")
    assert {tuple(sorted(r.params)) for r in callbacks} == {("from_date", "to_date")}
    pages = [r for r in api.requests if r.params and r not in callbacks]
    assert {r.params["limit"] for r in pages} == {"100"}


@pytest.mark.parametrize("page_cap", [30, 100])
def test_one_page_at_a_time_makes_no_request_beyond_the_end(tap, page_cap):
    with FakeSmartflo(contacts=250, page_cap=page_cap) as api:
        run = tap(base_config(api.url, page_size=100, max_concurrent_requests=1))
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    pages = [r.params["page"] for r in api.requests_to("/v1/contacts")]
    assert pages == [str(n) for n in range(1, -(-250 // page_cap) + 1)]


def test_data_ending_on_a_full_page_ends_at_the_empty_page(tap):
    with FakeSmartflo(contacts=200) as api:
        run = tap(base_config(api.url, page_size=50, max_concurrent_requests=4))
    assert len(run.records()) == 200
    assert_pages_read_once(api, needed=5, ahead=3)


def test_server_that_ignores_page_stops_with_a_clear_error(tap):
    with FakeSmartflo(contacts=250, ignore_page=True) as api:
        run = tap(base_config(api.url, page_size=100, max_concurrent_requests=4))
    assert run.returncode == 1
    assert "ignore the 'page' parameter" in run.stderr
    assert "Traceback" not in run.stderr
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids)) == 100
    # page 2 gave it away; a page or two was in flight
    assert len(api.requests_to("/v1/contacts")) <= 4


def test_numeric_string_ids_become_integers(tap):
    with FakeSmartflo(contacts=50, ids_as_strings=True) as api:
        run = tap(base_config(api.url))
    records = run.records()
    assert records
    assert all(
        type(r["id"]) is int and type(r["contact_group_id"]) is int for r in records
    )
    assert sorted(r["id"] for r in records) == sorted(api.store)


def test_every_timestamp_is_utc_rfc3339_and_the_same_instant(tap):
    with FakeSmartflo(contacts=120) as api:
        victim = next(c for c in api.store.values() if c.ist_offsets)
        api.soft_delete(victim.id)
        run = tap(base_config(api.url))
    assert any(c.ist_offsets for c in api.store.values())
    by_id = {r["id"]: r for r in run.records()}
    for contact_id, contact in api.store.items():
        record = by_id[contact_id]
        for name in TIME_FIELDS:
            expected = getattr(contact, name)
            if expected is None:
                assert record[name] is None
            else:
                assert RFC3339_UTC.match(record[name]), record[name]
                assert utc(record[name]) == expected
    assert by_id[victim.id]["deleted_at"] is not None


def test_custom_field_values_are_text_or_null(tap, api):
    run = tap(base_config(api.url))
    values = [f["value"] for r in run.records() for f in r["custom_fields"]]
    assert None in values
    assert "42" in values  # a number in the API becomes text: one type per field
    assert all(v is None or isinstance(v, str) for v in values)


def test_updated_after_is_absent_on_a_full_first_sync(tap, api):
    tap(base_config(api.url, start_date=None))
    assert all("updated_after" not in r.params for r in api.requests)


def test_start_date_is_sent_as_updated_after_and_bounds_the_records(tap, api):
    contacts = sorted(api.store.values(), key=lambda c: c.updated_at)
    start = contacts[100].updated_at
    run = tap(base_config(api.url, start_date=start.isoformat()))
    expected = {c.id for c in contacts if c.updated_at >= start}
    assert {r["id"] for r in run.records()} == expected
    sent = {r.params["updated_after"] for r in api.requests_to("/v1/contacts")}
    # One format, in one place: UTC wall-clock time, a second early.
    assert sent == {(start - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")}


def test_start_date_without_offset_is_utc(tap, api):
    start = sorted(c.updated_at for c in api.store.values())[50]
    run = tap(base_config(api.url, start_date=start.strftime("%Y-%m-%dT%H:%M:%S")))
    assert min(utc(r["updated_at"]) for r in run.records()) == start


@pytest.mark.parametrize("server_zone", [IST, timezone.utc], ids=["IST", "UTC"])
def test_incremental_run_emits_the_changes_and_rereads_the_overlap(tap, server_zone):
    # A server that reads updated_after as IST sends 5.5 hours more: the tap asks
    # for more, never less, and emits only what it meant to ask for.
    with FakeSmartflo(contacts=1500, naive_tz=server_zone) as api:
        first = tap(base_config(api.url, lookback_minutes=5))
        changed, deleted, added = api.change_some_contacts()
        api.requests.clear()
        second = tap(base_config(api.url, lookback_minutes=5), state=first.final_state)
    assert second.returncode == 0, second.stderr
    old_bookmark = utc(first.bookmark())
    # The request reaches 5 minutes back, but what the first run emitted there is
    # not emitted again: only the changes leave.
    sent = api.requests_to("/v1/contacts")[0].params["updated_after"]
    lookback = old_bookmark - timedelta(minutes=5, seconds=1)
    assert sent == lookback.strftime("%Y-%m-%d %H:%M:%S")
    emitted = [r["id"] for r in second.records()]
    assert sorted(emitted) == sorted({*changed, deleted, *added})
    by_id = {r["id"]: r for r in second.records()}
    assert by_id[changed[0]]["name"] == "Renamed"
    assert by_id[deleted]["deleted_at"] is not None
    assert utc(second.bookmark()) == api.newest_updated_at
    assert all("updated_after" in r.params for r in api.requests_to("/v1/contacts"))
    if server_zone == timezone.utc:
        assert len(api.requests_to("/v1/contacts")) == 1


def test_overlap_emits_a_record_committed_late_but_not_what_was_emitted(tap):
    # Every contact is recent (the lookback covers them all), as on a fresh server.
    with FakeSmartflo(contacts=300) as api:
        config = base_config(api.url, lookback_minutes=24 * 60)
        first = tap(config)
        late = api.add_contacts(1)[0]
        # Committed late: its updated_at lies before the first run's bookmark.
        api.store[late].updated_at = utc(first.bookmark()) - timedelta(minutes=3)
        changed = next(iter(api.store))
        api.touch(changed, name="Changed")
        second = tap(config, state=first.final_state)
        third = tap(config, state=second.final_state)
    assert sorted(r["id"] for r in second.records()) == sorted([late, changed])
    assert third.records() == []
    remembered = second.final_state["bookmarks"]["contacts"]["emitted_near_bookmark"]
    assert len(remembered) == len(api.store)  # all within a day of the bookmark


def test_a_second_edit_within_the_same_second_is_emitted(tap):
    # updated_at has whole seconds: a contact edited twice in one second, the
    # second edit committed after a run read the first, has the same updated_at
    # but other content. The next run re-reads it in its lookback and emits it.
    with FakeSmartflo(contacts=50) as api:
        config = base_config(api.url)
        first = tap(config)
        api.tick(60)
        edited = min(api.store)
        api.touch(edited, name="First edit")
        second = tap(config, state=first.final_state)
        with api.lock:
            api.store[edited].name = "Second edit"  # updated_at unchanged
            api.version += 1
        third = tap(config, state=second.final_state)
        fourth = tap(config, state=third.final_state)
    assert [r["name"] for r in second.records()] == ["First edit"]
    assert [r["name"] for r in third.records()] == ["Second edit"]
    assert fourth.records() == []  # and that version is not emitted again


def test_remembered_versions_stay_few_whatever_the_data(tap):
    with FakeSmartflo(contacts=1500) as api:
        run = tap(base_config(api.url, lookback_minutes=365 * 24 * 60))
    remembered = run.final_state["bookmarks"]["contacts"]["emitted_near_bookmark"]
    assert len(remembered) == 1000
    newest = sorted(api.store.values(), key=lambda c: c.updated_at)[-1000:]
    assert set(remembered) == {str(c.id) for c in newest}


def bookmark_state(value: str) -> dict:
    return {
        "bookmarks": {
            "contacts": {
                "replication_key": "updated_at",
                "replication_key_value": value,
            }
        }
    }


def test_bookmark_never_moves_backwards_when_the_overlap_sees_only_older_records(
    tap, api
):
    bookmark = (api.newest_updated_at + timedelta(minutes=2)).isoformat()
    run = tap(base_config(api.url, lookback_minutes=30), state=bookmark_state(bookmark))
    assert run.records(), "the overlap should re-read the last half hour"
    assert all(r["updated_at"] < bookmark for r in run.records())
    assert run.bookmark() == bookmark


def test_bookmark_stays_when_nothing_changed(tap, api):
    bookmark = (api.newest_updated_at + timedelta(days=1)).isoformat()
    run = tap(base_config(api.url), state=bookmark_state(bookmark))
    assert run.records() == []
    assert run.bookmark() == bookmark


def test_properties_deselected_in_the_catalog_are_left_out(tap, api):
    catalog = json.loads(tap(base_config(api.url), args=["--discover"]).stdout)
    deselect_properties(catalog, "contacts", ["address", "email_id"])
    run = tap(base_config(api.url), catalog=catalog)
    assert run.returncode == 0, run.stderr
    records = run.records()
    assert len(records) == len(api.store)
    assert all("address" not in r and "email_id" not in r for r in records)
    assert all("name" in r and "updated_at" in r for r in records)
    validator = jsonschema.Draft7Validator(run.schema()["schema"])
    assert all(not list(validator.iter_errors(r)) for r in records)


def test_stream_maps_still_apply(tap, api):
    maps = {"contacts": {"email_id": "__NULL__", "label": "name.upper()"}}
    run = tap(base_config(api.url, stream_maps=maps))
    assert run.returncode == 0, run.stderr
    records = run.records()
    assert all("email_id" not in r for r in records)
    assert {r["label"] for r in records} == {c.name.upper() for c in api.store.values()}
