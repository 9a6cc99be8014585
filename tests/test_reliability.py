"""Reliability and security: transient faults lose nothing, permanent ones end the run.

Every test runs the tap's command against the fake Smartflo over real HTTP, with faults
injected by the server. Backoff waits are made short through the tap's own settings.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from fake_smartflo import (
    FAULT_KINDS,
    LOGIN_THROTTLED,
    TOKEN,
    FakeSmartflo,
    Fault,
)
from scripts.environment import clean_env
from tap_smartflo import redact
from tests.configs import (
    EMAIL,
    FAST_RETRIES,
    PASSWORD,
    REFUSED_TOKEN,
    STREAM_PATHS,
    base_config,
    login_config,
)
from tests.messages import assert_no_secret, assert_one_clear_line
from tests.running import discovered_catalog

CONTACTS = "/v1/contacts"
#: A made-up token the fake API refuses (it is no credential of anything).
#: Tests about one endpoint's faults sync that stream alone, so that other
#: streams' requests neither slow them down nor dilute the injected faults.
CONTACTS_STREAM = "contacts"


# Login


def test_login_with_email_and_password_extracts_everything(tap):
    with FakeSmartflo(contacts=300, logins={EMAIL: PASSWORD}) as api:
        run = tap(login_config(api.url))
    assert run.returncode == 0, run.stderr
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    logins = api.requests_to("/v1/auth/login")
    assert len(logins) == 1
    assert all(r.authorized for r in api.requests_to(CONTACTS))
    assert_no_secret(run, PASSWORD, "eyJ.login")


@pytest.mark.parametrize("expired_status", [401, 403])
def test_short_lived_tokens_are_renewed_through_a_long_run(tap, expired_status):
    # Tokens live 0.1 s; the run (four pages at a time) lasts many lifetimes.
    with FakeSmartflo(
        contacts=1000,
        logins={EMAIL: PASSWORD},
        token_ttl=0.1,
        latency=0.03,
        expired_status=expired_status,
    ) as api:
        run = tap(
            login_config(api.url, page_size=25, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
        )
    assert run.returncode == 0, run.stderr
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    assert len(api.requests_to("/v1/auth/login")) >= 3
    assert_no_secret(run, PASSWORD, "eyJ.login")


def test_an_expired_token_is_renewed_once_on_refusal(tap):
    # The token dies sooner than expires_in says: the 401 triggers one new login.
    with FakeSmartflo(contacts=500, logins={EMAIL: PASSWORD}) as api:
        api.token_ttl = 0.0
        real_login = api.login

        def login_lying_about_lifetime(body: bytes):
            status, payload = real_login(body)
            payload["expires_in"] = 3600
            return status, payload

        api.login = login_lying_about_lifetime  # type: ignore[method-assign]
        run = tap(login_config(api.url, **FAST_RETRIES))
    # Each token works for no request, so the tap must give up, not loop.
    assert_one_clear_line(run, "refused the credentials")
    assert "email and password" in run.stderr
    assert len(api.requests_to("/v1/auth/login")) == 1


@pytest.mark.parametrize("status", [200, 401, 422])
def test_a_refused_login_fails_at_once_without_retry(tap, status):
    with FakeSmartflo(
        contacts=50, logins={EMAIL: "another"}, login_failure_status=status
    ) as api:
        run = tap(login_config(api.url, **FAST_RETRIES))
    assert_one_clear_line(run, f"refused the login for {EMAIL}")
    assert "The username or password is incorrect." in run.stderr
    assert len(api.requests_to("/v1/auth/login")) == 1
    assert api.requests_to(CONTACTS) == []
    assert run.records() == []
    assert_no_secret(run, PASSWORD)


def test_login_survives_a_transient_server_error(tap):
    with FakeSmartflo(contacts=50, logins={EMAIL: PASSWORD}) as api:
        api.faults.append(Fault("503", "/v1/auth/login"))
        run = tap(login_config(api.url, **FAST_RETRIES))
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == 50
    assert len(api.requests_to("/v1/auth/login")) == 2


# Refused tokens and wrong paths


def test_a_refused_api_token_ends_the_run_fast_with_a_sentence(tap, api):
    run = tap(base_config(api.url, api_token="not-the-token-value", **FAST_RETRIES))
    assert_one_clear_line(run, "check that api_token is valid")
    assert "refused" in run.stderr
    # Discovery's (its columns are skipped with a warning), then the sync's: the
    # run ends at the sync's first refusal, nothing retried.
    assert len(api.requests) == 2
    assert_no_secret(run, "not-the-token-value")


def test_403_names_both_causes(tap, api):
    run = tap(base_config(api.url + "/wrong", **FAST_RETRIES))
    assert_one_clear_line(run, "HTTP 403")
    assert "no permission" in run.stderr
    assert "api_url or the path is wrong" in run.stderr
    # Discovery's request, then each stream's once (broadcast leads need a list
    # first, user details a user), none retried.
    assert len(api.requests) == 1 + len(STREAM_PATHS) - 2


def test_a_refused_endpoint_skips_its_stream_and_the_others_are_extracted(tap, api):
    # A token without permission for call records, or a server without them.
    real_routes = api.routes

    def routes_without_calls_or_users():
        return {
            key: route
            for key, route in real_routes().items()
            if key[1] not in {"/v1/call/records", "/v1/users"}
        }

    api.routes = routes_without_calls_or_users  # type: ignore[method-assign]
    run = tap(base_config(api.url, **FAST_RETRIES))
    assert run.returncode == 0, run.stderr
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    assert "Skipping stream 'call_records'" in run.stderr
    assert "Skipping stream 'users'" in run.stderr
    assert "HTTP 403 on /v1/call/records" in run.stderr
    assert run.records("call_records") == []
    assert len(api.requests_to("/v1/call/records")) == 1


def without_paths(api: FakeSmartflo, *paths: str) -> None:
    """From now on, the fake answers ``paths`` as a token without access would."""
    real_routes = api.routes

    def routes():
        return {key: r for key, r in real_routes().items() if key[1] not in paths}

    api.routes = routes  # type: ignore[method-assign]


def test_a_stream_that_loses_access_fails_the_run_after_the_others_are_extracted(
    tap,
):
    with FakeSmartflo(contacts=300, calls=40, users=30) as api:
        config = base_config(api.url, **FAST_RETRIES)
        first = tap(config)
        assert first.returncode == 0, first.stderr
        api.change_some_contacts()
        without_paths(api, "/v1/call/records", "/v1/users")
        second = tap(config, state=first.final_state)
    assert second.returncode == 1
    # Everything else was extracted, and its STATE emitted: nothing is re-read.
    assert len(second.records()) == 6
    assert second.bookmark("contacts") > first.bookmark("contacts")
    # The refused streams keep their place for when access comes back.
    lost = second.final_state["bookmarks"]
    assert lost["call_records"] == first.final_state["bookmarks"]["call_records"]
    errors = [line for line in second.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 3, errors
    # User details are read per user: refused with users, their parent.
    for stream, path in (
        ("call_records", "/v1/call/records"),
        ("users", "/v1/users"),
        ("user_details", "/v1/users"),
    ):
        line = next(line for line in errors if f"'{stream}'" in line)
        assert f"HTTP 403 on {path}" in line
        assert "was extracted before" in line
        assert f"meltano select tap-smartflo --exclude {stream}" in line
    assert "Traceback" not in second.stderr


def test_a_stream_refused_on_its_first_run_is_skipped_on_later_runs_too(tap):
    with FakeSmartflo(contacts=30) as api:
        without_paths(api, "/v1/users")
        config = base_config(api.url, **FAST_RETRIES)
        first = tap(config)
        second = tap(config, state=first.final_state)
    for run in (first, second):
        assert run.returncode == 0, run.stderr
        assert "Skipping stream 'users'" in run.stderr


# Transient faults


def clean_records(api: FakeSmartflo, tap, page_size: int) -> list[dict]:
    run = tap(base_config(api.url, page_size=page_size), streams=[CONTACTS_STREAM])
    assert run.returncode == 0, run.stderr
    return run.records()


#: What the log says of a wait the server asked for (Retry-After: 1).
TOLD_TO_WAIT = {"429-retry-after": "retry 1 in 1.0 s"}


@pytest.mark.parametrize("kind", [k for k in FAULT_KINDS if k != "hang"])
def test_each_transient_fault_is_retried_and_loses_nothing(tap, kind):
    # Three pages: after two 429s the pace starts low, and each page waits for it.
    with FakeSmartflo(contacts=260) as api:
        expected = clean_records(api, tap, page_size=100)
        api.requests.clear()
        api.faults.extend([Fault(kind, CONTACTS), Fault(kind, CONTACTS)])
        run = tap(
            base_config(api.url, page_size=100, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
        )
    assert run.returncode == 0, run.stderr
    assert run.records() == expected
    assert [r.fault for r in api.requests].count(kind) == 2
    assert "retry" in run.stderr
    # Retry-After is honoured: the wait is the server's, not the backoff's.
    assert TOLD_TO_WAIT.get(kind, "retry") in run.stderr


def test_a_hanging_request_is_abandoned_after_request_timeout(tap):
    with FakeSmartflo(contacts=120, hang_seconds=60) as api:
        api.faults.append(Fault("hang", CONTACTS))
        run = tap(
            base_config(api.url, page_size=50, request_timeout=0.5, **FAST_RETRIES),
            timeout=30,
        )
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == 120
    assert "ReadTimeout" in run.stderr


def test_a_storm_of_faults_emits_every_record_exactly_as_a_clean_run(tap):
    # With the fake's seed, 30% of requests failing brings every kind of fault,
    # 429s among them.
    with FakeSmartflo(contacts=3000) as api:
        expected = clean_records(api, tap, page_size=50)
        api.requests.clear()
        api.fault_rate = 0.3
        api.fault_kinds = tuple(k for k in FAULT_KINDS if k != "hang")
        run = tap(
            base_config(api.url, page_size=50, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
        )
    assert run.returncode == 0, run.stderr
    assert run.records() == expected
    faults = [r.fault for r in api.requests if r.fault]
    assert len(set(faults)) >= 5, faults
    assert {"429", "429-retry-after"} & set(faults), faults


def test_endless_failure_gives_up_within_the_budget_with_a_clear_error(tap):
    with FakeSmartflo(contacts=60, fault_rate=1.0, fault_kinds=("503",)) as api:
        run = tap(
            base_config(api.url, retry_initial_seconds=0.05, retry_max_seconds=0.5)
        )
    assert_one_clear_line(run, "kept failing")
    assert "retry_max_seconds" in run.stderr
    assert 3 <= len(api.requests) < 40


def test_an_unreachable_api_fails_with_a_clear_error(tap):
    with FakeSmartflo() as api:
        url = api.url
    run = tap(base_config(url, retry_initial_seconds=0.05, retry_max_seconds=0.5))
    assert_one_clear_line(run, "kept failing")
    assert "ConnectionError" in run.stderr


# Bad input


def test_a_state_file_that_is_not_json_is_a_clear_error(tap, api, tmp_path):
    bad = tmp_path / "state.txt"
    bad.write_text("{not json")
    run = tap(base_config(api.url), args=["--state", str(bad)])
    assert_one_clear_line(run, "--state file")
    assert "is not valid JSON" in run.stderr
    assert api.requests == []


def test_an_unknown_stream_in_the_catalog_is_a_clear_error(tap, api):
    catalog = discovered_catalog()
    typo = json.loads(json.dumps(catalog["streams"][0]))
    typo["tap_stream_id"] = typo["stream"] = "contactz"
    catalog["streams"].append(typo)
    run = tap(base_config(api.url), catalog=catalog)
    assert_one_clear_line(run, "contactz")
    assert "does not have" in run.stderr
    assert api.requests == []


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda body: {"page": 1, "data": []}, "without a 'results' list"),
        (lambda body: [body], "without a 'results' list"),
        (
            lambda body: {**body, "results": [{"name": "no id"}, *body["results"]]},
            "has no id",
        ),
        (
            lambda body: {**body, "results": [{**body["results"][0], "id": "x1"}]},
            "field 'id'",
        ),
    ],
    ids=["no-results", "not-an-object", "record-without-id", "non-numeric-id"],
)
def test_a_malformed_response_ends_the_run_with_a_clear_error(tap, mangle, words):
    with FakeSmartflo(contacts=30, body_filter=mangle) as api:
        # Contacts only: the mangled bodies are contacts pages.
        run = tap(base_config(api.url, **FAST_RETRIES), streams=[CONTACTS_STREAM])
    assert_one_clear_line(run, words)
    assert len(api.requests) == 1


# Secrets


@pytest.mark.parametrize("mode", ["token", "login"])
def test_no_secret_appears_at_any_log_level(tap, mode):
    with FakeSmartflo(contacts=200, logins={EMAIL: PASSWORD}, token_ttl=0.2) as api:
        api.faults.extend(
            [Fault("500", CONTACTS), Fault("429", CONTACTS), Fault("reset", CONTACTS)]
        )
        config = (
            base_config(api.url, page_size=50, **FAST_RETRIES)
            if mode == "token"
            else login_config(api.url, page_size=50, **FAST_RETRIES)
        )
        run = tap(config, env=clean_env(LOGLEVEL="DEBUG"))
        issued = [t for t in api.tokens if t.startswith("eyJ")]
    assert run.returncode == 0, run.stderr
    assert "DEBUG" in run.stderr
    # The DEBUG line for each request shows its headers, the token masked.
    assert "'Authorization': 'Bearer ***'" in run.stderr
    # Not even a part of the token: STATE and logs hold none of it.
    assert_no_secret(run, TOKEN, TOKEN[:14], PASSWORD, *issued)


# Secrets and throttled logins


def test_a_401_body_that_echoes_the_token_is_reported_without_it(tap):
    # The API's own message is worth showing ("Token has expired"); this one
    # quotes the refused token, so only masking keeps it out of the error line.
    with FakeSmartflo(contacts=20, echo_token_on_refusal=True) as api:
        run = tap(base_config(api.url, api_token=REFUSED_TOKEN))
    assert_one_clear_line(run, "is not valid")
    assert "Token *** is not valid" in run.stderr
    assert_no_secret(run, REFUSED_TOKEN)


def test_recording_urls_reach_the_target_but_never_a_log_line(tap):
    secret = "rec-token-abcdefghijklmnop"
    with FakeSmartflo(calls=60, recording_token=secret) as api:
        config = base_config(api.url, page_size=20)
        clean = tap(config, streams=["call_records"], env=clean_env(LOGLEVEL="DEBUG"))
        # A malformed record (no id): the error quotes it, recording_url and all.
        api.body_filter = lambda body: {
            **body,
            "results": [
                {"call_id": r["call_id"], "recording_url": r["recording_url"]}
                for r in body["results"]
                if r["recording_url"]
            ],
        }
        broken = tap(config, streams=["call_records"])
    assert clean.returncode == 0, clean.stderr
    urls = [r["recording_url"] for r in clean.records("call_records")]
    assert any(f"token={secret}" in (url or "") for url in urls)
    assert secret not in clean.stderr
    assert_one_clear_line(broken, "has no id")
    assert "recording_url" in broken.stderr
    assert "token=***" in broken.stderr
    assert secret not in broken.stderr


def test_a_login_throttled_with_retry_after_in_the_body_waits_as_told(tap):
    throttled = FakeSmartflo(contacts=20, logins={EMAIL: PASSWORD}, login_retry_after=2)
    with throttled as api:
        api.faults.append(Fault(LOGIN_THROTTLED, "/v1/auth/login"))
        run = tap(
            login_config(api.url, retry_initial_seconds=0.01, retry_max_seconds=30),
            streams=[CONTACTS_STREAM],
        )
    assert run.returncode == 0, run.stderr
    logins = api.requests_to("/v1/auth/login")
    assert [r.status for r in logins] == [429, 200]
    # retry_after is whole seconds (IST wall-clock), 1 to 2 s after the refusal:
    # the first retry would otherwise come after 0.01 s.
    assert logins[1].at - logins[0].at >= 0.9
    assert len(run.records()) == 20


def test_a_login_told_to_wait_beyond_the_retry_budget_stops_with_a_sentence(tap):
    with FakeSmartflo(logins={EMAIL: PASSWORD}, login_retry_after=600) as api:
        api.faults.append(Fault(LOGIN_THROTTLED, "/v1/auth/login"))
        run = tap(
            login_config(api.url, retry_max_seconds=30), streams=[CONTACTS_STREAM]
        )
    assert_one_clear_line(run, "asks to wait")
    assert len(api.requests_to("/v1/auth/login")) == 1
    assert_no_secret(run, PASSWORD)


def test_masking_is_safe_while_another_thread_adds_a_renewed_token():
    # A fetch-ahead worker logs in (and hides the new token) while the main
    # thread writes a log line: masking must not fail with "Set changed size".
    errors: list[BaseException] = []
    done = threading.Event()
    redactor = redact.Redactor()

    def log_all_the_time():
        try:
            while not done.is_set():
                redactor.mask("a log line without a secret")
        except RuntimeError as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    worker = threading.Thread(target=log_all_the_time)
    worker.start()
    try:
        for n in range(3000):
            redactor.hide(f"renewed-token-{n:06d}-abcdef")
            if errors:
                break
    finally:
        done.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert errors == []
    assert redactor.mask("Bearer renewed-token-002999-abcdef") == "Bearer ***"


def test_a_secret_logged_by_any_logger_is_masked(caplog):
    with redact.Redactor() as redactor:
        redactor.hide("a-very-secret-value")
        logging.getLogger("urllib3.somewhere").warning("sent %s", "a-very-secret-value")
    assert "a-very-secret-value" not in caplog.text
    assert "sent ***" in caplog.text


def test_a_token_pasted_with_a_newline_works_and_stays_secret(tap, api):
    run = tap(base_config(api.url, api_token=TOKEN + "\n"))
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == len(api.store)
    assert_no_secret(run, TOKEN)


def test_a_login_answered_with_429_backs_off(tap):
    with FakeSmartflo(contacts=20, logins={EMAIL: PASSWORD}) as api:
        api.faults.extend([Fault("429", "/v1/auth/login")] * 3)
        run = tap(
            login_config(api.url, retry_initial_seconds=0.2, retry_max_seconds=20)
        )
    assert run.returncode == 0, run.stderr
    assert len(api.requests_to("/v1/auth/login")) == 4
    assert "in 0.0 s" not in run.stderr  # backed off, not hammered


def test_an_exception_text_holding_a_secret_is_masked(caplog):
    with redact.Redactor() as redactor:
        redactor.hide("another-secret-value")
        try:
            {}["header b'Bearer another-secret-value' is invalid"]
        except KeyError:
            logging.getLogger("tap-smartflo").exception("failed")
    assert "another-secret-value" not in caplog.text
    assert "KeyError" in caplog.text


@pytest.mark.parametrize("pace", [None, 10], ids=["unpaced", "paced"])
def test_a_retry_after_already_past_is_not_a_reason_to_hammer(tap, pace):
    # The server's clock runs behind ours (or it wrote UTC, not IST): the moment it
    # names is already past. That is no hint at all: back off as for any 429. A
    # login backs off even when the data requests have a pace (which is for them).
    settings = {"retry_initial_seconds": 0.2, "retry_max_seconds": 2}
    if pace:
        settings["max_requests_per_second"] = pace
    with FakeSmartflo(logins={EMAIL: PASSWORD}, login_retry_after=-10) as api:
        api.faults.extend([Fault(LOGIN_THROTTLED, "/v1/auth/login")] * 10_000)
        run = tap(login_config(api.url, **settings), streams=[CONTACTS_STREAM])
    assert_one_clear_line(run, "kept failing")
    # Backoff from 0.2 s doubling: at most a handful of tries in 2 s, not hundreds.
    assert len(api.requests_to("/v1/auth/login")) <= 6
    assert "in 0.0 s" not in run.stderr


def test_a_traceback_with_a_percent_sign_logs_whole(caplog):
    # The traceback joins the message; the arguments were already used, and a
    # "%" in the traceback (an encoded URL) must not be read as a placeholder.
    with redact.Redactor():
        try:
            int("100%s")
        except ValueError:
            logging.getLogger("tap-smartflo").exception("%s failed", "the page")
    assert "the page failed" in caplog.text
    assert "invalid literal for int() with base 10: '100%s'" in caplog.text


@pytest.mark.parametrize("credentials", ["api_token", "login"])
def test_a_redirect_is_not_followed_so_credentials_stay_at_api_url(tap, credentials):
    # A redirect would carry the token or the password to an address nobody
    # configured: the tap stops and names the new address instead.
    with (
        FakeSmartflo(logins={EMAIL: PASSWORD}) as elsewhere,
        FakeSmartflo(logins={EMAIL: PASSWORD}, moved_to=elsewhere.url) as api,
    ):
        config = (
            base_config(api.url)
            if credentials == "api_token"
            else login_config(api.url)
        )
        run = tap(config, streams=[CONTACTS_STREAM])
        new_address = elsewhere.url
    assert_one_clear_line(run, "redirects")
    assert f"redirects to {new_address}/v1/" in run.stderr
    assert "api_url" in run.stderr
    assert elsewhere.requests == []
    assert len(api.requests) == 1  # not retried: a redirect is not transient
    assert_no_secret(run, TOKEN)
    assert_no_secret(run, PASSWORD)
