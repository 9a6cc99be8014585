"""Contact groups end to end: every group once, UTC times, at most 100 a page."""

from __future__ import annotations

from datetime import datetime, timedelta

from fake_smartflo import FakeSmartflo
from tests.configs import base_config

PATH = "/v1/contact/groups"


def test_every_group_is_emitted_once_valid_and_with_utc_times(tap):
    with FakeSmartflo(contact_groups=230, ids_as_strings="mixed") as api:
        api.touch_group(39664, deleted_at=api.tick(1))
        run = tap(base_config(api.url))
    assert run.returncode == 0, run.stderr
    records = run.records("contact_groups")
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(api.group_store)
    assert all(type(i) is int for i in ids)
    assert run.schema_errors("contact_groups") == []
    schema = run.schema("contact_groups")
    assert set(records[0]) == set(schema["schema"]["properties"])
    by_id = {r["id"]: r for r in records}
    for group in api.group_store.values():
        record = by_id[group.id]
        for name in ("created_at", "updated_at", "deleted_at"):
            expected = getattr(group, name)
            if expected is None:
                assert record[name] is None
            else:
                assert record[name].endswith("+00:00")  # the API sent +0530
                assert datetime.fromisoformat(record[name]) == expected
        assert record["field_map"] == group.field_map
    assert by_id[39664]["deleted_at"] is not None
    # visible_to keeps one type: a number in it becomes text.
    assert ["Sales", "12"] in [r["visible_to"] for r in records]


def test_contact_groups_never_ask_for_more_than_100_a_page(tap):
    # With a catalog, so that only the stream reads the groups (discovery's pages
    # are tests/test_custom_columns.py's).
    with FakeSmartflo(contact_groups=230, contacts=250) as api:
        run = tap(
            base_config(api.url, page_size=500),
            streams=["contacts", "contact_groups"],
        )
    assert len(run.records("contact_groups")) == 230
    requests = api.requests_to(PATH)
    assert {r.params["limit"] for r in requests} == {"100"}
    pages = [r.params["page"] for r in requests]
    # Pages 1 to 3 once each (a page or two more may have been fetched ahead).
    assert len(pages) == len(set(pages))
    assert {"1", "2", "3"} <= set(pages)
    # The cap is the endpoint's own: contacts still ask for what was set.
    assert {r.params["limit"] for r in api.requests_to("/v1/contacts")} == {"500"}


def test_a_changed_group_is_read_again_from_its_own_bookmark(tap):
    with FakeSmartflo(contact_groups=40) as api:
        first = tap(base_config(api.url, lookback_minutes=0))
        api.tick(3600)
        api.touch_group(39665, name="Renamed")
        api.requests.clear()
        second = tap(base_config(api.url, lookback_minutes=0), state=first.final_state)
    bookmark = datetime.fromisoformat(first.bookmark("contact_groups"))
    # The bookmark's own second is read again (the server may compare exclusively),
    # but what the first run emitted there is not emitted again.
    by_id = {r["id"]: r for r in second.records("contact_groups")}
    assert set(by_id) == {39665}
    assert by_id[39665]["name"] == "Renamed"
    # The stream's own request, after discovery's (which reads every group).
    sent = api.requests_to(PATH)[-1].params["updated_after"]
    assert sent == (bookmark - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
