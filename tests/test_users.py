"""Users end to end: last_seen_id keyset pages to has_more=false, full table."""

from __future__ import annotations

import pytest

from fake_smartflo import FakeSmartflo
from tests.configs import base_config

PATH = "/v1/users"


@pytest.mark.parametrize(("users", "pages"), [(230, 3), (200, 2), (0, 1)])
def test_users_are_read_in_keyset_pages_until_has_more_is_false(tap, users, pages):
    with FakeSmartflo(users=users, ids_as_strings="mixed") as api:
        run = tap(base_config(api.url, page_size=100))
    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records("users")]
    assert ids == sorted(api.user_store)
    requests = api.requests_to(PATH)
    assert len(requests) == pages
    ordered = sorted(api.user_store)
    expected = [None] + [str(ordered[n * 100 - 1]) for n in range(1, pages)]
    assert [r.params.get("last_seen_id") for r in requests] == expected


def test_users_keep_their_agent_and_role_and_validate(tap):
    with FakeSmartflo(users=60, ids_as_strings=True) as api:
        run = tap(base_config(api.url))
    assert run.schema_errors("users") == []
    by_id = {r["id"]: r for r in run.records("users")}
    for user in api.user_store.values():
        record = by_id[user.id]
        if user.agent_id is None:
            assert record["agent"] is None
        else:
            assert record["agent"]["id"] == user.agent_id
            assert record["agent"]["status"] == 1
        assert record["user_role"] == {"id": user.role_id, "name": "Agent"}
        assert record["extension"] == str(user.extension)
    assert any(r["agent"] is None for r in by_id.values())


def test_users_are_a_full_table_without_a_bookmark(tap):
    with FakeSmartflo(users=30) as api:
        first = tap(base_config(api.url))
        second = tap(base_config(api.url), state=first.final_state)
    assert "replication_key" not in first.final_state["bookmarks"].get("users", {})
    assert len(second.records("users")) == 30
