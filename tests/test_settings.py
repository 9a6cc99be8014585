"""Settings: one clear line on bad input, before any request; docs match --about."""

from __future__ import annotations

import contextlib
import re
import socket
import typing as t

import pytest

from fake_smartflo import TOKEN
from scripts.environment import clean_env
from tests.configs import FAKE_ACCOUNT_ENV, REPO, base_config

if t.TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def closed_port(host: str) -> Iterator[int]:
    """A port on ``host`` that refuses connections: bound (by the system, so free)
    and never listened on, for as long as the test runs."""
    address = (
        "::1"
        if host == "[::1]"
        else "127.0.0.1"
        if host.lower() == "localhost"
        else host
    )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        yield sock.getsockname()[1]


README = REPO / "README.md"


def test_missing_credentials_fail_before_any_request(tap, api):
    run = tap({"api_url": api.url})
    assert run.returncode != 0
    assert "set api_token, or both email and password" in run.stderr
    assert "Traceback" not in run.stderr
    assert api.requests == []
    assert run.stdout == ""


def test_email_without_password_is_not_enough(tap, api):
    run = tap({"api_url": api.url, "email": "ops@example.com"})
    assert run.returncode != 0
    assert "both email and password" in run.stderr
    assert api.requests == []


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (
            {"start_date": "last tuesday"},
            "start_date 'last tuesday' is not an ISO 8601",
        ),
        ({"page_size": 0}, "page_size must be positive"),
        ({"page_size": -5}, "page_size must be positive"),
        ({"request_timeout": 0}, "request_timeout must be positive"),
        ({"api_url": "api-smartflo.tatateleservices.com"}, "is not an http(s) URL"),
        ({"lookback_minutes": -1}, "lookback_minutes must be zero or more"),
        (
            {"call_records_lookback_hours": -1},
            "call_records_lookback_hours must be zero or more",
        ),
        ({"call_records_window_days": 0}, "call_records_window_days must be 1 to 30"),
        ({"call_records_window_days": 31}, "call_records_window_days must be 1 to 30"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(tap, api, settings, words):
    run = tap({**base_config(api.url), **settings})
    assert run.returncode != 0
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    assert api.requests == []
    assert TOKEN not in run.stderr


def test_a_secret_of_the_wrong_type_is_not_echoed(tap, api):
    run = tap({"api_url": api.url, "api_token": 123456789012345})
    assert run.returncode != 0
    assert "123456789012345" not in run.stderr


def test_settings_come_from_the_environment(tap, api):
    env = clean_env(
        TAP_SMARTFLO_API_URL=api.url, TAP_SMARTFLO_API_TOKEN=TOKEN, **FAKE_ACCOUNT_ENV
    )
    run = tap(None, args=["--config", "ENV"], env=env)
    assert run.returncode == 0, run.stderr
    assert len(run.records()) == len(api.store)


def test_readme_settings_table_matches_about(tap):
    run = tap(None, args=["--about", "--format=markdown"])
    about = run.stdout
    table = re.search(r"## Settings\n\n(.*?)\n\n", about, re.DOTALL)
    assert table, about
    assert table.group(1) in README.read_text()


@pytest.mark.parametrize(
    "api_url",
    [
        "http://api-smartflo.tatateleservices.com",
        "http://api.servetel.in/",
        "HTTP://api.acefone.in",
        "http://10.1.2.3:8080",
        "http://[2001:db8::1]",
        "http://localhost.example.com",
    ],
)
def test_a_plain_http_api_url_is_refused_before_any_connection(tap, api, api_url):
    # Were the request sent, it would go through this proxy (the fake server),
    # as a token typed into a plain-http URL goes through any proxy on the way.
    env = clean_env(HTTP_PROXY=api.url, http_proxy=api.url, NO_PROXY="", no_proxy="")
    run = tap(base_config(api_url), env=env)
    assert run.returncode == 1
    assert "api_url" in run.stderr
    assert "use https://" in run.stderr
    assert "Traceback" not in run.stderr
    assert api.requests == []
    assert TOKEN not in run.stderr


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.10.0.1", "localhost", "LocalHost", "[::1]"]
)
def test_plain_http_is_allowed_for_a_server_on_this_machine(tap, host):
    # Discovery tries the server (nothing listens there) once, for contacts'
    # custom-field columns, and does without them.
    with closed_port(host) as port:
        config = base_config(f"http://{host}:{port}", retry_max_seconds=0)
        run = tap(config, args=["--discover"])
    assert run.returncode == 0, run.stderr
    assert "contacts" in run.stdout
    assert "unencrypted" not in run.stderr
    assert "last: ConnectionError" in run.stderr
