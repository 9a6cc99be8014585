"""The few places the tap relies on the SDK beyond its public API: each is still used.

An SDK upgrade that renames an internal the tap overrides would otherwise leave every
end-to-end test green (the output looks the same) while the override silently stops
working. Each test here fails if the SDK stops calling what the tap provides.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import typing as t

import pytest
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError

from fake_smartflo import FakeSmartflo
from tap_smartflo.client import SmartfloStream
from tap_smartflo.tap import TapSmartflo
from tests.configs import base_config

if t.TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def api() -> Iterator[FakeSmartflo]:
    with FakeSmartflo(contacts=120, contact_groups=4, calls=30, users=25) as server:
        yield server


def sync(tap: TapSmartflo) -> list[bytes]:
    """Run ``tap.sync_all()`` with stdout captured; the Singer lines it wrote."""
    out = io.TextIOWrapper(io.BytesIO(), write_through=True)
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    return out.buffer.getvalue().splitlines()  # type: ignore[attr-defined]


def new_tap(api: FakeSmartflo, **settings: t.Any) -> TapSmartflo:
    config = {**base_config(api.url), **settings}
    return TapSmartflo(config=config, parse_env_config=False)


def test_records_leave_through_the_taps_record_message_override(api, monkeypatch):
    # SmartfloStream._generate_record_messages replaces the SDK's per-record pruning
    # and type conformance (see client.py).
    calls = []
    # The tap's own method (not one inherited from the SDK), as the SDK calls it.
    override = vars(SmartfloStream).get("_generate_record_messages")
    assert override is not None, "SmartfloStream no longer overrides it"

    def counted(self, record):
        calls.append(self.name)
        return override(self, record)

    monkeypatch.setattr(SmartfloStream, "_generate_record_messages", counted)
    lines = sync(new_tap(api))
    records = [line for line in lines if line.startswith(b'{"type":"RECORD"')]
    assert len(records) == 120 + 4 + 30 + 25 + 25  # the users, and their details
    assert len(calls) == len(records)


def test_every_request_goes_through_the_taps_one_session(api):
    tap = new_tap(api)
    session = tap.services.transport.session
    sent = []
    send = session.send

    def counted(request, **kwargs):
        sent.append(request.url)
        return send(request, **kwargs)

    session.send = counted  # type: ignore[method-assign]
    api.requests.clear()  # discovery's, made while the tap was built
    sync(tap)
    assert len(sent) == len(api.requests) > 4
    # The SDK prepares requests with the stream's session: the same one.
    assert all(stream.requests_session is session for stream in tap.streams.values())


def test_setting_rules_beyond_json_schema_run_when_the_sdk_validates(api):
    # TapSmartflo._validate_config adds the rules JSON Schema cannot say.
    with pytest.raises(ConfigValidationError) as raised:
        new_tap(api, page_size=0, api_url="http://api.example.com")
    assert "page_size must be positive, got 0" in raised.value.errors
    assert any("use https://" in error for error in raised.value.errors)


def test_the_sdk_tap_invoke_the_tap_spells_out_is_unchanged():
    # TapSmartflo.invoke repeats the SDK's Tap.invoke (about, version, build the tap,
    # sync_all) to keep the tap for the end of the run. If the SDK changes it, read
    # its new version and bring TapSmartflo.invoke in step.
    body = inspect.getsource(Tap.invoke).split('"""')[-1]
    statements = [line.strip() for line in body.splitlines() if line.strip()]
    assert statements == [
        "super().invoke(about=about, about_format=about_format)",
        "cls.print_version(print_fn=cls.logger.info)",
        "config = config or _ConfigInput()",
        "tap = cls(",
        "config=config.config,",
        "state=None if state is None else load_json(state.read()),",
        "catalog=None if catalog is None else load_json(catalog.read()),",
        "parse_env_config=config.parse_env,",
        "validate_config=True,",
        ")",
        "tap.sync_all()",
    ]
