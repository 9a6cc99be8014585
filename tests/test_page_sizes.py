"""Pages as large as the server serves: each way a server answers a large ``limit``.

The tap asks for ``page_size`` (1000 by default) and learns from what comes back
how many records a page really holds: a server may cap silently and say so, cap
and echo the limit it was asked for, or refuse the limit with a 422. Whatever it
does, nothing is lost, and the size learned is remembered for the next run.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta, timezone

import pytest

from fake_smartflo import FakeSmartflo
from tests.configs import base_config

if t.TYPE_CHECKING:
    from tests.messages import TapRun

CONTACTS, CALLS, GROUPS, USERS = (
    "/v1/contacts",
    "/v1/call/records",
    "/v1/contact/groups",
    "/v1/users",
)


def four_days_ago() -> str:
    return (datetime.now(timezone.utc) - timedelta(days=4)).isoformat()


def contact_ids(run) -> list[int]:
    return [r["id"] for r in run.records("contacts")]


def limits_asked(api: FakeSmartflo, path: str) -> list[str]:
    return [r.params["limit"] for r in api.requests_to(path)]


def refusals(run, path: str) -> list[str]:
    """The log lines that say ``path`` refused the limit asked for."""
    return [line for line in run.stderr.splitlines() if f"{path} refused" in line]


def rerun_after_changes(tap, api, config, first) -> tuple[TapRun, list]:
    """Change three contacts a minute later; run again from ``first``'s STATE.

    Returns the second run and the contacts changed (only its requests in the log).
    """
    api.requests.clear()
    api.tick(60)
    changed = sorted(api.store)[:3]
    for contact_id in changed:
        api.touch(contact_id, name="Changed")
    return tap(config, streams=["contacts"], state=first.final_state), changed


def test_a_server_capping_at_500_and_echoing_the_asked_limit_loses_nothing(tap):
    with FakeSmartflo(
        contacts=20_000, calls=3_000, page_cap=500, echo_asked_limit=True
    ) as api:
        run = tap(base_config(api.url), streams=["contacts"])
        calls = tap(
            base_config(api.url, start_date=four_days_ago()), streams=["call_records"]
        )
    assert run.returncode == calls.returncode == 0, run.stderr + calls.stderr
    ids = contact_ids(run)
    assert len(ids) == len(set(ids)) == 20_000
    # 40 full pages of 500 and the empty page that ends them (and read-ahead).
    assert len(api.requests_to(CONTACTS)) <= 44
    assert set(limits_asked(api, CONTACTS)) == {"1000"}
    call_ids = [r["id"] for r in calls.records("call_records")]
    assert len(call_ids) == len(set(call_ids)) == 3_000
    assert "reading the window again" not in calls.stderr


@pytest.mark.parametrize("page_size", [100, None])
def test_a_server_serving_37_and_echoing_the_asked_limit_loses_nothing(tap, page_size):
    # Every page says "limit": 100 (or 1000) and holds 37: a short page is no end.
    settings = {} if page_size is None else {"page_size": page_size}
    with FakeSmartflo(contacts=1_000, page_cap=37, echo_asked_limit=True) as api:
        run = tap(base_config(api.url, **settings), streams=["contacts"])
    assert run.returncode == 0, run.stderr
    ids = contact_ids(run)
    assert sorted(ids) == sorted(api.store)
    assert len(ids) == len(set(ids))
    # The bookmark is the newest contact's: it passes no contact left unread.
    assert datetime.fromisoformat(run.bookmark()) == api.newest_updated_at
    # 27 pages of 37 and one of 1 (shorter than 37: the end), and at most 7 fetched
    # ahead (8 in flight by default).
    pages = sorted(int(r.params["page"]) for r in api.requests_to(CONTACTS))
    assert pages[:28] == list(range(1, 29))
    assert len(pages) <= 28 + 7


def test_a_server_capping_silently_and_reporting_it_loses_nothing(tap):
    with FakeSmartflo(contacts=1_000, page_cap=37) as api:
        run = tap(base_config(api.url, max_concurrent_requests=1))
    assert run.returncode == 0, run.stderr
    assert sorted(contact_ids(run)) == sorted(api.store)
    pages = [int(r.params["page"]) for r in api.requests_to(CONTACTS)]
    assert pages == list(range(1, 29))


def test_a_page_shorter_than_asked_proves_nothing_until_a_next_page_does(tap):
    # 30 contacts, a first page of 30 for 1000 asked: the data may go on. The
    # empty page ends it; nothing is remembered, since nothing was proven.
    with FakeSmartflo(contacts=30, page_cap=500, echo_asked_limit=True) as api:
        run = tap(base_config(api.url), streams=["contacts"])
    assert sorted(contact_ids(run)) == sorted(api.store)
    assert [r.params["page"] for r in api.requests_to(CONTACTS)] == ["1", "2"]
    assert "page_sizes" not in run.final_state.get("account", {})


def test_a_server_refusing_limits_above_100_steps_down_with_one_warning(tap):
    with FakeSmartflo(
        contacts=3_000, contact_groups=12, calls=300, users=150, refuse_limit_above=100
    ) as api:
        # At most 2 pages past the end, if the tap reads ahead (8 by default, and
        # then up to 7: the 34 is 32 and 2 ahead).
        config = base_config(api.url, max_concurrent_requests=3)
        run = tap(config, streams=["contacts", "contact_groups", "users"])
        calls = tap(
            base_config(api.url, start_date=four_days_ago()), streams=["call_records"]
        )
    assert run.returncode == calls.returncode == 0, run.stderr + calls.stderr
    assert sorted(contact_ids(run)) == sorted(api.store)
    assert len(run.records("contact_groups")) == 12
    assert len({r["id"] for r in calls.records("call_records")}) == 300
    assert len({r["id"] for r in run.records("users")}) == 150
    # One refused request, then 30 pages of 100 and the empty one (and read-ahead).
    assert limits_asked(api, CONTACTS)[0] == "1000"
    assert set(limits_asked(api, CONTACTS)[1:]) == {"100"}
    assert len(api.requests_to(CONTACTS)) <= 34
    # Contact groups ask the documented 100: never refused.
    assert {r.status for r in api.requests_to(GROUPS)} == {200}
    for path, logged in ((CONTACTS, run), (USERS, run), (CALLS, calls)):
        (line,) = refusals(logged, path)
        assert "limit=1000" in line
        assert "The limit may not be greater than 100" in line
        assert "asks for 100 records a page" in line
    assert "Traceback" not in run.stderr + calls.stderr


def test_a_refusal_naming_another_limit_steps_down_to_it(tap):
    with FakeSmartflo(contacts=1_200, page_cap=250, refuse_limit_above=250) as api:
        run = tap(base_config(api.url), streams=["contacts"])
    assert run.returncode == 0, run.stderr
    assert sorted(contact_ids(run)) == sorted(api.store)
    assert limits_asked(api, CONTACTS)[:2] == ["1000", "250"]
    assert run.final_state["account"]["page_sizes"] == {CONTACTS: 250}


def test_a_refusal_below_the_documented_limit_steps_down_to_the_limit_named(tap):
    # Contact groups ask for the documented 100; this server takes 50 at most.
    with FakeSmartflo(contact_groups=120, refuse_limit_above=50) as api:
        run = tap(base_config(api.url), streams=["contact_groups"])
    assert run.returncode == 0, run.stderr
    assert len(run.records("contact_groups")) == 120
    assert limits_asked(api, GROUPS) == ["100", "50", "50", "50"]
    assert len(refusals(run, GROUPS)) == 1


def test_the_learned_size_is_asked_from_the_first_request_of_the_next_run(tap):
    # The server reads updated_after as UTC, as the tap sends it: the second run
    # asks for what changed, not five and a half hours more.
    with FakeSmartflo(
        contacts=2_000, page_cap=500, echo_asked_limit=True, naive_tz=timezone.utc
    ) as api:
        # No start_date: the first run (a full sync) sends no updated_after, which
        # tells its requests from the second run's below.
        config = base_config(api.url, start_date=None)
        first = tap(config, streams=["contacts"])
        assert first.final_state["account"]["page_sizes"] == {CONTACTS: 500}
        second, changed = rerun_after_changes(tap, api, config, first)
    assert second.returncode == 0, second.stderr
    assert sorted(contact_ids(second)) == changed
    # Asked for 500 at once; the short page ends the data (500 is proven). (A page
    # the first run fetched ahead may reach the server late: only the second
    # run's requests ask for updated_after.)
    asked = [r.params for r in api.requests if "updated_after" in r.params]
    assert [(p["page"], p["limit"]) for p in asked] == [("1", "500")]
    assert second.final_state["account"]["page_sizes"] == {CONTACTS: 500}


def test_a_refused_limit_is_not_asked_again_in_the_next_run(tap):
    with FakeSmartflo(contacts=300, refuse_limit_above=100) as api:
        # No start_date: only the second run's requests carry updated_after.
        config = base_config(api.url, start_date=None)
        first = tap(config, streams=["contacts"])
        assert len(refusals(first, CONTACTS)) == 1
        second, changed = rerun_after_changes(tap, api, config, first)
    assert second.returncode == 0, second.stderr
    assert sorted(contact_ids(second)) == changed
    assert refusals(second, CONTACTS) == []
    asked = [r for r in api.requests if "updated_after" in r.params]
    assert {(r.params["limit"], r.status) for r in asked} == {("100", 200)}


def test_a_remembered_size_the_server_no_longer_serves_loses_nothing(tap):
    # Remembered 500; the server now serves 100 and says so: 100 is proven anew.
    state = {"account": {"page_sizes": {CONTACTS: 500}}}
    with FakeSmartflo(contacts=1_000, page_cap=100) as api:
        run = tap(base_config(api.url), streams=["contacts"], state=state)
    assert run.returncode == 0, run.stderr
    assert sorted(contact_ids(run)) == sorted(api.store)
    assert limits_asked(api, CONTACTS)[0] == "500"
    assert run.final_state["account"]["page_sizes"] == {CONTACTS: 100}


def test_a_malformed_remembered_size_is_ignored_with_a_warning(tap):
    state = {"account": {"page_sizes": {CONTACTS: "lots"}}}
    with FakeSmartflo(contacts=250) as api:
        run = tap(base_config(api.url), streams=["contacts"], state=state)
    assert run.returncode == 0, run.stderr
    assert sorted(contact_ids(run)) == sorted(api.store)
    assert "remembered page size for /v1/contacts ('lots') is malformed" in run.stderr
    assert limits_asked(api, CONTACTS)[0] == "1000"
    assert run.final_state["account"]["page_sizes"] == {CONTACTS: 100}


def test_a_server_ignoring_page_still_stops_with_a_clear_error(tap):
    with FakeSmartflo(
        contacts=2_000, page_cap=500, echo_asked_limit=True, ignore_page=True
    ) as api:
        run = tap(base_config(api.url), streams=["contacts"])
    assert run.returncode == 1
    assert "ignore the 'page' parameter" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(contact_ids(run)) == len(set(contact_ids(run))) == 500


def without_has_more(body):
    return {k: v for k, v in body.items() if k != "has_more"}


def test_users_ask_for_large_pages_and_end_at_a_page_shorter_than_proven(tap):
    # No has_more: pages of 100 for 1000 asked; the page of 50 after two of 100
    # ends the data without an empty page.
    with FakeSmartflo(users=250, body_filter=without_has_more) as api:
        run = tap(base_config(api.url), streams=["users"])
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records("users")] == sorted(api.user_store)
    assert limits_asked(api, USERS) == ["1000", "1000", "1000"]
    assert run.final_state["account"]["page_sizes"] == {USERS: 100}


def test_a_limit_refused_after_pages_were_read_fails_the_run_and_loses_nothing(tap):
    # The server starts refusing the limit it served page 1 with: where the query
    # stands is fixed by the records already out, so the tap stops rather than
    # guess, and no bookmark passes a contact it did not read.
    api = FakeSmartflo(contacts=1_000)

    def refuse_after_the_first_page(body):
        api.refuse_limit_above = 50
        return body

    api.body_filter = refuse_after_the_first_page
    with api:
        run = tap(base_config(api.url, max_concurrent_requests=1), streams=["contacts"])
    assert run.returncode == 1
    assert "HTTP 422 on /v1/contacts" in run.stderr
    assert "Traceback" not in run.stderr
    emitted = run.records()
    assert len(emitted) == 100
    newest_read = max(r["updated_at"] for r in emitted)
    for state in run.states:
        bookmark = state["bookmarks"].get("contacts", {}).get("replication_key_value")
        assert bookmark is None or bookmark <= newest_read
