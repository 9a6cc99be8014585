"""A hostile server, bad STATE, bad config: one clear line, nothing lost, no secret out.

Each test starts a server of its own on a free port (port 0): the fake Smartflo with
one behaviour changed, or a bare HTTP server that answers exactly the bytes a test
wants. Secrets are checked whole and in part: no 8 consecutive characters of one
(as written, JSON-escaped or as repr shows it) may appear in any output, at INFO and
at DEBUG.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
import typing as t
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from fake_smartflo import FakeSmartflo, LocalServer
from scripts.environment import clean_env
from tap_smartflo.retry import persistent
from tests.configs import (
    EMAIL,
    FAST_RETRIES,
    REFUSED_TOKEN,
    base_config,
    login_config,
)
from tests.messages import assert_one_clear_line

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.messages import TapRun

CONTACTS = "/v1/contacts"
CONTACTS_STREAM = "contacts"
#: Where error texts are cut (errors.server_message): secrets placed across it.
CUT = 200
#: Secrets with quotes, backslashes and non-ASCII letters, of lengths around CUT.
SECRETS = [
    'Secret"Pass\\123-x',
    "Päss-wörd-ßecret-9",
    "tok'en\"with\\all-of-them-ä",
    "k" + "0123456789abcdef" * 12 + '"\\ä',  # ~200 characters
    "L" + "fedcba9876543210" * 13,  # over 200 characters
]
LEVELS = ["INFO", "DEBUG"]


def spellings(secret: str) -> set[str]:
    """How a secret may be written in a line: as it is, JSON-escaped, as repr."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


def assert_no_part_of(run: TapRun, secret: str, width: int = 8) -> None:
    """No ``width`` consecutive characters of any spelling of ``secret`` are out."""
    output = run.stdout + run.stderr
    for spelling in spellings(secret):
        for start in range(max(1, len(spelling) - width + 1)):
            part = spelling[start : start + width]
            assert part not in output, f"{part!r} of a secret is in the output"


class _Hostile(BaseHTTPRequestHandler):
    """Answers every request as the test's ``respond`` says."""

    protocol_version = "HTTP/1.1"
    respond: Callable[[_Hostile], None]
    seen: list[str]

    def log_message(self, *args: object) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Answer a GET."""
        self.seen.append(self.path)
        type(self).respond(self)

    def do_POST(self) -> None:
        """Answer a POST."""
        self.do_GET()

    def answer(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Send ``body`` whole."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def hostile(respond: Callable[[_Hostile], None]) -> Iterator[tuple[str, list[str]]]:
    """A server on a free port answering with ``respond``: (its URL, paths asked)."""
    seen: list[str] = []
    handler = type("Handler", (_Hostile,), {"respond": respond, "seen": seen})
    server = LocalServer(handler)
    try:
        yield server.url, seen
    finally:
        server.close()


# Masking: on the raw value, before any escaping or cut


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("password", SECRETS)
def test_a_login_refusal_echoing_the_request_shows_no_part_of_the_password(
    tap, password, level
):
    # The refusal quotes the request body: the password JSON-escaped.
    with FakeSmartflo(contacts=5, logins={EMAIL: "another"}) as api:
        api.login = lambda body: (  # type: ignore[method-assign]
            401,
            {"success": False, "message": f"Bad login {body.decode()}"},
        )
        run = tap(
            login_config(api.url, password=password, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
            env=clean_env(LOGLEVEL=level),
        )
    assert_one_clear_line(run, f"refused the login for {EMAIL}")
    assert_no_part_of(run, password)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("token", SECRETS)
def test_an_error_message_quoting_the_token_across_the_cut_shows_no_part_of_it(
    tap, token, status, level
):
    # The token sits where the message is cut: a cut before masking leaves a part.
    for offset in (CUT - 20, CUT - 12, CUT - 5):

        def respond_at(handler: _Hostile, offset: int = offset) -> None:
            sent = str(handler.headers.get("Authorization"))
            message = "x" * (offset - len("Bearer ")) + sent
            handler.answer(status, json.dumps({"message": message}).encode())

        with hostile(respond_at) as (url, _):
            run = tap(
                base_config(
                    url,
                    api_token=token,
                    retry_initial_seconds=0.01,
                    retry_max_seconds=0.1,
                ),
                streams=[CONTACTS_STREAM],
                env=clean_env(LOGLEVEL=level),
            )
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert_no_part_of(run, token)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("password", SECRETS[:3])
def test_an_api_url_with_a_password_in_it_is_refused_without_showing_it(
    tap, password, level
):
    with FakeSmartflo(contacts=5) as api:
        url = api.url.replace("://", f"://user:{password}@")
        run = tap(
            base_config(url), streams=[CONTACTS_STREAM], env=clean_env(LOGLEVEL=level)
        )
        discovered = tap(base_config(url), args=["--discover"])
    assert run.returncode == 1, run.stderr
    assert "api_url" in run.stderr
    assert "user name or password" in run.stderr
    assert "Traceback" not in run.stderr
    assert api.requests == []
    assert_no_part_of(run, password)
    assert_no_part_of(discovered, password)


# STATE is input: a value of the wrong shape is ignored with one warning


def tap_warnings(run: TapRun) -> list[str]:
    """The tap's warnings (not the SDK's, such as "assumed to be unsorted")."""
    return [
        line
        for line in run.stderr.splitlines()
        if "WARNING" in line and "| tap-smartflo " in line
    ]


UPDATED_AT = {"replication_key": "updated_at"}


@pytest.mark.parametrize(
    ("state", "named"),
    [
        ([1, 2], "The state is not an object"),
        ({"bookmarks": "oops"}, "'bookmarks'"),
        ({"bookmarks": {"contacts": "oops"}}, "'contacts'"),
        (
            {"bookmarks": {"contacts": {**UPDATED_AT, "replication_key_value": 12345}}},
            "'contacts'",
        ),
        (
            {
                "bookmarks": {
                    "contacts": {**UPDATED_AT, "replication_key_value": "soon"}
                }
            },
            "'contacts'",
        ),
        (
            {
                "bookmarks": {
                    "contacts": {
                        **UPDATED_AT,
                        "replication_key_value": "2024-01-01T00:00:00+00:00",
                        "emitted_near_bookmark": [1, 2],
                    }
                }
            },
            "'contacts'",
        ),
        ({"bookmarks": {"contacts": {"progress_markers": "x"}}}, "'contacts'"),
        (
            {"bookmarks": {"broadcast_leads": {"partitions": "x"}}},
            "'broadcast_leads'",
        ),
    ],
    ids=[
        "a-list",
        "bookmarks-text",
        "stream-text",
        "bookmark-integer",
        "bookmark-not-a-time",
        "emitted-a-list",
        "markers-text",
        "partitions-text",
    ],
)
def test_a_state_of_the_wrong_shape_is_ignored_with_one_warning(tap, state, named):
    with FakeSmartflo(contacts=40) as api:
        config = base_config(api.url, start_date="2024-01-01T00:00:00Z")
        run = tap(config, state=state)
        again = tap(config, state=run.final_state)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    warnings = tap_warnings(run)
    assert len(warnings) == 1, warnings
    assert named in warnings[0]
    assert "ignored" in warnings[0]
    assert sorted(r["id"] for r in run.records()) == sorted(api.store)
    assert isinstance(run.bookmark("contacts"), str)
    # The STATE the run wrote is sound: the next run reads it without a word.
    assert again.returncode == 0, again.stderr
    assert tap_warnings(again) == []


def test_an_integer_bookmark_starts_the_stream_from_start_date(tap):
    state = {"bookmarks": {"contacts": {**UPDATED_AT, "replication_key_value": 7}}}
    with FakeSmartflo(contacts=40) as api:
        run = tap(
            base_config(api.url, start_date="2024-01-01T00:00:00Z"),
            state=state,
            streams=[CONTACTS_STREAM],
        )
    assert run.returncode == 0, run.stderr
    assert "start_date" in run.stderr
    assert len(run.records()) == 40


@pytest.mark.parametrize("stream", ["contacts", "call_records"])
def test_a_bookmark_in_the_future_is_kept_with_a_warning(tap, stream):
    future = "2999-01-01T00:00:00+00:00"
    key = "updated_at" if stream == "contacts" else "started_at"
    with FakeSmartflo(contacts=40, calls=40) as api:
        run = tap(
            base_config(api.url),
            state={
                "bookmarks": {
                    stream: {"replication_key": key, "replication_key_value": future}
                }
            },
            streams=[stream],
        )
    assert run.returncode == 0, run.stderr
    warnings = tap_warnings(run)
    assert len(warnings) == 1, warnings
    assert "future" in warnings[0]
    assert f"'{stream}'" in warnings[0]
    assert run.records(stream) == []
    assert run.bookmark(stream) == future


# Config: a token no header can carry is refused before any request


@pytest.mark.parametrize(
    "token",
    [
        "abc-token\r\nX-Injected: 1-value",
        "   ",
        "tab\tinside-the-token",
        "nul\x00-token",
    ],
    ids=["crlf", "spaces", "tab", "nul"],
)
def test_a_token_with_control_characters_or_only_spaces_is_refused_first(tap, token):
    with FakeSmartflo(contacts=5) as api:
        run = tap(base_config(api.url, api_token=token), streams=[CONTACTS_STREAM])
    assert_one_clear_line(run, "api_token")
    errors = [line for line in run.stderr.splitlines() if "api_token" in line]
    assert len(errors) == 1, errors
    assert api.requests == []
    if token.strip():
        assert_no_part_of(run, token)


# Content errors are not outages: one retry at most, then one line


NESTED = b'{"page": 1, "results": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"


@pytest.mark.parametrize(
    "body",
    [
        b'{"page": 1, "size": 1, "results": [{"id": 1, "name": "\xff\xfe"}]}',
        b'\xef\xbb\xbf{"page": 1, "size": 0, "results": []}',
        b'{"page": 1, "size": 1, "results": [{"id": NaN}]}',
        NESTED,
    ],
    ids=["invalid-utf-8", "bom", "nan", "nested-too-deep"],
)
def test_a_body_that_is_broken_json_ends_the_run_fast_naming_the_page(tap, body):
    with hostile(lambda handler: handler.answer(200, body)) as (url, seen):
        run = tap(
            # The default budget (300 s): a content error must not spend it.
            base_config(url, retry_initial_seconds=0.01),
            streams=[CONTACTS_STREAM],
            timeout=60,
        )
    assert_one_clear_line(run, "/v1/contacts (page 1)")
    # The SDK's "An unhandled error occurred while syncing" aside (its logger is
    # the stream's), one line.
    errors = [
        line for line in run.stderr.splitlines() if "ERROR    | tap-smartflo " in line
    ]
    assert len(errors) == 1, errors
    assert "not valid JSON" in errors[0]
    assert "may be down" not in run.stderr
    assert len(seen) <= 2  # one retry at most


@pytest.mark.parametrize("status", [429, 500])
def test_an_error_body_nested_too_deep_is_no_traceback(tap, status):
    with hostile(lambda handler: handler.answer(status, NESTED)) as (url, _):
        run = tap(
            base_config(url, retry_initial_seconds=0.01, retry_max_seconds=0.2),
            streams=[CONTACTS_STREAM],
        )
    assert_one_clear_line(run, "kept failing")


def test_an_https_api_url_whose_server_speaks_http_is_reported_as_tls_fast(tap):
    with FakeSmartflo(contacts=5) as api:
        url = api.url.replace("http://", "https://")
        run = tap(
            base_config(url, retry_initial_seconds=0.01),
            streams=[CONTACTS_STREAM],
            timeout=60,
        )
    assert_one_clear_line(run, "TLS")
    assert "api_url" in run.stderr
    assert "WRONG_VERSION_NUMBER" in run.stderr
    assert "may be down" not in run.stderr


# Pagination: a page seen before stops the run; a record seen before is not emitted


def test_pages_that_cycle_stop_with_a_clear_error_and_no_record_twice(tap):
    # Page 3 is page 1 again, page 4 page 2, and so on for ever.
    with FakeSmartflo(contacts=300) as api:
        real = api.list_contacts

        def cycling(params):
            page = (int(params.get("page", 1)) - 1) % 2 + 1
            return real({**params, "page": str(page)})

        api.list_contacts = cycling  # type: ignore[method-assign]
        run = tap(
            base_config(api.url, page_size=100, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
            timeout=60,
        )
    assert_one_clear_line(run, "returned the same records as page 1")
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids)) == 200


def test_a_page_overlapping_the_one_before_emits_each_record_once(tap):
    # Page 2 starts 50 records early (records shifted while the pages were read).
    with FakeSmartflo(contacts=300) as api:
        real = api.list_contacts

        def overlapping(params):
            page = int(params.get("page", 1))
            if page == 1:
                return real(params)
            halves = [
                real({**params, "limit": "50", "page": str(n)})
                for n in (2 * page - 2, 2 * page - 1)
            ]
            results = halves[0]["results"] + halves[1]["results"]
            return {**halves[0], "size": len(results), "limit": 100, "results": results}

        api.list_contacts = overlapping  # type: ignore[method-assign]
        run = tap(base_config(api.url, page_size=100), streams=[CONTACTS_STREAM])
    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(api.store)
    assert "already emitted" in run.stderr


# Every request has a deadline for the whole exchange, and a size cap


#: A deadline of 1 s a request (twice request_timeout), within 2 s of retries.
TRICKLE_SETTINGS = {
    "request_timeout": 0.5,
    "retry_initial_seconds": 0.01,
    "retry_max_seconds": 2,
}


def assert_abandoned_at_the_deadline(seen: list[str], took: float) -> None:
    """Each try was cut at its deadline and tried again, until the budget ran out.

    The trickled body takes 100 s: a try that waited for it would outlast the run.
    """
    assert len(seen) >= 2  # the first try was abandoned, then retried
    # The budget (2 s) and the last try's deadline (1 s), plus start-up.
    assert took < 2 + 1 + 2


def trickling(body: bytes) -> t.Callable[[_Hostile], None]:
    """A handler that answers 200 with ``body``, a byte every 0.05 s.

    Every read comes well within request_timeout; the whole never does. A request's
    own body (a login's) is read first.
    """
    body += b" " * 2000  # 2000 more seconds at this pace: never waited for

    def trickle(handler: _Hostile) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)

    return trickle


def test_a_server_that_trickles_a_body_is_abandoned_at_the_deadline(tap):
    trickle = trickling(
        json.dumps({"page": 1, "size": 0, "limit": 10, "results": []}).encode()
    )

    with hostile(trickle) as (url, seen):
        began = time.monotonic()
        run = tap(
            base_config(url, **TRICKLE_SETTINGS), streams=[CONTACTS_STREAM], timeout=30
        )
        took = time.monotonic() - began
    assert_one_clear_line(run, "kept failing")
    assert "took more than 2 times request_timeout" in run.stderr
    assert_abandoned_at_the_deadline(seen, took)


def oversize(handler: _Hostile, *, gzipped: bool, declared: bool) -> None:
    """A JSON page of 8 MB of spaces (gzipped: 8 KB on the wire)."""
    page = b'{"page": 1, "results": []' + b" " * (8 << 20) + b"}"
    payload = gzip.compress(page) if gzipped else page
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if gzipped:
        handler.send_header("Content-Encoding", "gzip")
    if declared:
        handler.send_header("Content-Length", str(len(payload)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    with contextlib.suppress(OSError):
        handler.wfile.write(payload)


@pytest.mark.parametrize(
    ("gzipped", "declared"),
    [(True, True), (False, True), (False, False)],
    ids=["gzip-bomb", "declared-length", "unknown-length"],
)
def test_a_body_over_the_size_cap_ends_the_run_naming_the_endpoint(
    tap, gzipped, declared
):
    def respond(handler: _Hostile) -> None:
        oversize(handler, gzipped=gzipped, declared=declared)

    with hostile(respond) as (url, seen):
        run = tap(
            base_config(url, max_response_megabytes=1, **FAST_RETRIES),
            streams=[CONTACTS_STREAM],
        )
    assert_one_clear_line(run, "/v1/contacts answered more than 1 MB")
    assert "max_response_megabytes" in run.stderr
    assert len(seen) == 1  # not retried: the same page would be as large again


# Discovery with refused credentials fails as a sync would


@pytest.mark.parametrize("credentials", ["api_token", "login"])
def test_discovery_with_refused_credentials_fails_with_the_sync_line(tap, credentials):
    with FakeSmartflo(contacts=5, logins={EMAIL: "another"}) as api:
        config = (
            base_config(api.url, api_token=REFUSED_TOKEN)
            if credentials == "api_token"
            else login_config(api.url)
        )
        discovered = tap(config, args=["--discover"])
        synced = tap(config, streams=[CONTACTS_STREAM])
    words = (
        "check that api_token is valid"
        if credentials == "api_token"
        else f"refused the login for {EMAIL}"
    )
    assert_one_clear_line(discovered, words)
    assert_one_clear_line(synced, words)
    assert discovered.stdout == ""


def test_discovery_without_credentials_still_works(tap):
    with FakeSmartflo(contacts=5) as api:
        run = tap({"api_url": api.url}, args=["--discover"])
    assert run.returncode == 0, run.stderr
    assert "contacts" in json.loads(run.stdout)["streams"][0]["tap_stream_id"]
    assert api.requests == []


def test_a_tls_connection_cut_short_stays_a_passing_fault():
    # An EOF in the handshake is a network hiccup (a proxy, a reset), not a
    # certificate or a protocol: it keeps the whole retry budget.
    cut = requests.exceptions.SSLError(
        "Max retries exceeded (Caused by SSLError(SSLEOFError(8, '[SSL: "
        "UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol "
        "(_ssl.c:1000)')))"
    )
    wrong = requests.exceptions.SSLError(
        "Max retries exceeded (Caused by SSLError(SSLError(1, '[SSL: "
        "WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)')))"
    )
    assert persistent(cut) is None
    assert persistent(wrong) is not None


def test_a_login_answer_trickled_is_abandoned_at_the_deadline(tap):
    trickle = trickling(
        json.dumps({"success": True, "access_token": "eyJ.trickled"}).encode()
    )

    with hostile(trickle) as (url, seen):
        began = time.monotonic()
        run = tap(
            login_config(url, **TRICKLE_SETTINGS), streams=[CONTACTS_STREAM], timeout=30
        )
        took = time.monotonic() - began
    assert_one_clear_line(run, "Logging in to Smartflo kept failing")
    assert "took more than 2 times request_timeout" in run.stderr
    assert_abandoned_at_the_deadline(seen, took)
