"""A hostile server, bad STATE, bad config: one clear line, nothing lost, no secret out.

Each test starts a server of its own on a free port (port 0): the fake Smartflo with
one behaviour changed, or a bare HTTP server that answers exactly the bytes a test
wants. Secrets are checked whole and in part: no 8 consecutive characters of one
(as written, JSON-escaped or as repr shows it) may appear in any output, at INFO and
at DEBUG.
"""

from __future__ import annotations

import contextlib
import json
import typing as t
from http.server import BaseHTTPRequestHandler

import pytest

from fake_smartflo import FakeSmartflo, LocalServer
from tests.helpers import (
    EMAIL,
    FAST_RETRIES,
    assert_one_clear_line,
    base_config,
    clean_env,
    login_config,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.helpers import TapRun

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
