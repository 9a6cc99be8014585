"""Running it unattended: progress and summary lines, and the connection test."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest

from fake_smartflo import TOKEN, FakeSmartflo, Fault
from tap_smartflo import tap as tap_module
from tests.configs import (
    EMAIL,
    FAST_RETRIES,
    PASSWORD,
    STREAM_PATHS,
    base_config,
    login_config,
    stream_of,
)
from tests.messages import assert_one_clear_line

SUMMARY = re.compile(
    r"Summary: (?P<stream>\w+): (?P<records>[\d,]+) records?, (?P<requests>[\d,]+) "
    r"requests?, (?P<retries>[\d,]+) retr(?:y|ies), (?P<throttled>[\d,]+) throttled "
    r"\(429\), [\d.]+ s; (?P<where>.*)$"
)


def summaries(stderr: str) -> dict[str, dict[str, str]]:
    lines = [SUMMARY.search(line) for line in stderr.splitlines()]
    return {m["stream"]: m.groupdict() for m in lines if m}


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_summary_counts_are_the_real_counts(tap):
    start = "2024-01-01T00:00:00+00:00"  # the fake's contacts are from May 2024
    with FakeSmartflo(
        contacts=700,
        contact_groups=12,
        calls=90,
        users=30,
        departments=3,
        broadcast_lists=2,
        leads_per_list=2,
        broadcasts=5,
        logins={EMAIL: PASSWORD},
    ) as api:
        api.faults.extend(
            [
                Fault("429", "/v1/contacts"),
                Fault("500", "/v1/contacts"),
                Fault("reset", "/v1/users"),
            ]
        )
        config = login_config(api.url, start_date=start, page_size=50, **FAST_RETRIES)
        run = tap(config)
    assert run.returncode == 0, run.stderr
    found = summaries(run.stderr)
    assert list(found) == list(STREAM_PATHS)  # one line per stream, in the tap's order
    records = Counter(m["stream"] for m in run.messages if m["type"] == "RECORD")
    # Discovery's requests (no catalog: the tap discovers in-process) are the
    # run's, not the contact_groups stream's: they ask for no updated_after.
    discovery = [
        r
        for r in api.requests_to("/v1/contact/groups")
        if not r.params.get("updated_after")
    ]
    by_stream = Counter(stream_of(r.path) for r in api.requests if r not in discovery)
    faults = Counter((stream_of(r.path), r.fault) for r in api.requests if r.fault)
    for stream in STREAM_PATHS:
        line = found[stream]
        assert number(line["records"]) == records[stream], stream
        assert number(line["requests"]) == by_stream[stream], stream
        assert number(line["retries"]) == sum(
            n for (s, _), n in faults.items() if s == stream
        )
        assert number(line["throttled"]) == faults.get((stream, "429"), 0)
    state = run.final_state["bookmarks"]
    assert found["contacts"]["where"] == (
        f"bookmark {state['contacts']['replication_key_value']}"
    )
    assert found["users"]["where"] == "full table"
    run_line = next(line for line in run.stderr.splitlines() if "Run succeeded" in line)
    assert f"{sum(records.values()):,} records" in run_line
    logins = len(api.requests_to("/v1/auth/login"))
    data_requests = len(api.requests) - logins - len(discovery)
    assert len(discovery) == 1
    assert (
        f"{data_requests:,} requests (and {logins} login, 1 discovery request)"
        in run_line
    )
    assert f"{len(STREAM_PATHS)} streams" in run_line
    # Nothing but Singer messages on stdout.
    assert all(json.loads(line)["type"] for line in run.stdout.splitlines())
    assert PASSWORD not in run.stderr


def test_progress_lines_tell_how_far_each_stream_has_come(tap):
    start = "2024-05-01T00:00:00+00:00"  # the fake's contacts are from May 2024
    with FakeSmartflo(contacts=600, calls=50, latency=0.01) as api:
        config = base_config(
            api.url, start_date=start, page_size=20, progress_interval_seconds=0.05
        )
        run = tap(config, streams=["contacts", "call_records"])
    assert run.returncode == 0, run.stderr
    progress = [line for line in run.stderr.splitlines() if "Progress: " in line]
    contacts = [line for line in progress if "Progress: contacts: " in line]
    assert len(contacts) >= 2
    counts = [number(re.search(r"contacts: ([\d,]+) records", c)[1]) for c in contacts]
    assert counts == sorted(counts)
    assert all(re.search(r"\d+ requests? \([\d.]+/s\)", line) for line in contacts)
    first_day = start[:10]
    calls = [line for line in progress if "Progress: call_records: " in line]
    assert calls
    assert all(f"% of {first_day} to " in line for line in calls)
    assert any("left" in line for line in calls)
    assert all(len(line.split(" | ")[-1]) < 200 for line in progress)


def test_a_failed_run_ends_with_its_summary_then_the_one_line_error(tap):
    with FakeSmartflo(contacts=250, ignore_page=True) as api:
        run = tap(base_config(api.url, page_size=100), streams=["contacts"])
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "ignore the 'page' parameter" in lines[-1]
    assert "Run failed in" in lines[-2]
    assert "Summary: contacts: 100 records" in run.stderr


def test_the_summary_names_a_skipped_stream(tap):
    with FakeSmartflo(contacts=20) as api:
        real_routes = api.routes
        api.routes = lambda: {  # type: ignore[method-assign]
            k: r for k, r in real_routes().items() if k[1] != "/v1/users"
        }
        run = tap(base_config(api.url))
    assert run.returncode == 0, run.stderr
    assert summaries(run.stderr)["users"]["where"] == "skipped: HTTP 403"


# The connection test


def test_the_connection_test_makes_one_request_and_says_so(tap):
    with FakeSmartflo(contacts=20, calls=10) as api:
        run = tap(base_config(api.url), args=["--test"])
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert [r.path for r in api.requests] == ["/v1/contacts"]
    assert api.requests[0].params["limit"] == "1"
    assert "Connection test passed" in run.stderr.splitlines()[-1]
    assert "ERROR" not in run.stderr


def test_the_connection_test_fails_as_a_run_would(tap):
    with FakeSmartflo(contacts=20) as api:
        wrong = base_config(api.url, api_token="not-the-token-value")
        test = tap(wrong, args=["--test"])
        run = tap(wrong)
    assert test.returncode == run.returncode == 1
    error = test.stderr.strip().splitlines()[-1]
    assert "refused the credentials" in error
    assert (
        error.split(" | ")[-1] == run.stderr.strip().splitlines()[-1].split(" | ")[-1]
    )
    assert "Traceback" not in test.stderr
    assert "not-the-token-value" not in test.stderr


def test_the_connection_test_checks_settings_before_any_request(tap):
    with FakeSmartflo() as api:
        run = tap(base_config(api.url, page_size=0), args=["--test"])
    assert run.returncode == 1
    assert "page_size must be positive" in run.stderr
    assert "Traceback" not in run.stderr
    assert api.requests == []


def test_the_connection_test_tries_the_next_stream_when_one_is_refused(tap):
    with FakeSmartflo(contacts=20, contact_groups=2) as api:
        real_routes = api.routes
        api.routes = lambda: {  # type: ignore[method-assign]
            k: r for k, r in real_routes().items() if k[1] != "/v1/contacts"
        }
        run = tap(base_config(api.url), args=["--test"])
    assert run.returncode == 0, run.stderr
    assert [r.path for r in api.requests] == ["/v1/contacts", "/v1/contact/groups"]


def test_the_connection_test_logs_in_with_email_and_password(tap):
    with FakeSmartflo(contacts=5, logins={EMAIL: PASSWORD}) as api:
        config = login_config(api.url)
        run = tap(config, args=["--test"])
    assert run.returncode == 0, run.stderr
    assert [r.path for r in api.requests] == ["/v1/auth/login", "/v1/contacts"]
    assert "accepted the email and password" in run.stderr
    assert PASSWORD not in run.stderr
    assert TOKEN not in run.stderr


@pytest.mark.parametrize("credentials", ["api_token", "login"])
def test_the_connection_test_gives_up_on_an_unreachable_api_within_its_own_budget(
    tap, monkeypatch, credentials
):
    # A connection test answers in seconds, whatever retry_max_seconds a long run
    # may need (300 s by default), and says what to check.
    monkeypatch.setattr(tap_module, "CONNECTION_TEST_SECONDS", 1.0)
    with FakeSmartflo() as api:
        url = api.url  # nothing listens there once the server stops
    started = time.monotonic()
    settings = {"retry_initial_seconds": 0.1}
    config = (
        base_config(url, **settings)
        if credentials == "api_token"
        else login_config(url, **settings)  # the login too keeps to the budget
    )
    run = tap(config, args=["--test"])
    assert time.monotonic() - started < 10
    assert_one_clear_line(run, "ConnectionError")
    error = run.stderr.strip().splitlines()[-1]
    assert "check api_url" in error
    assert "retry_max_seconds" not in error
