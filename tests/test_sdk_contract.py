"""The few places the tap relies on the SDK beyond its public API: each is still used.

An SDK upgrade that renames an internal the tap overrides would otherwise leave every
end-to-end test green (the output looks the same) while the override silently stops
working. Each test here fails if the SDK stops calling what the tap provides.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import typing as t

import pytest
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError

import tap_smartflo
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
    # TapSmartflo.invoke does what the SDK's Tap.invoke does (about, version, build
    # the tap, sync_all, through public methods) to keep the tap for the end of the
    # run (sync_all is final). If the SDK changes it, read its new version and bring
    # TapSmartflo.invoke in step.
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


#: The SDK internals the tap overrides (see docs/development.md), and no other.
OVERRIDDEN_INTERNALS = {"_generate_record_messages", "_validate_config"}


def test_the_tap_overrides_two_sdk_internals_and_imports_no_private_module():
    overridden = set()
    for module in pkgutil.iter_modules(tap_smartflo.__path__):
        if module.name == "__main__":
            continue  # it runs the command
        loaded = importlib.import_module(f"tap_smartflo.{module.name}")
        source = inspect.getsource(loaded)
        assert not re.search(r"singer_sdk(\.\w+)*\._", source), module.name
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ != loaded.__name__:
                continue
            sdk_bases = [
                b for b in cls.__mro__ if b.__module__.startswith("singer_sdk")
            ]
            overridden |= {
                name
                for name in vars(cls)
                if name.startswith("_")
                and not name.startswith("__")
                and name != "_abc_impl"  # every ABC subclass gets its own
                and any(name in vars(base) for base in sdk_bases)
            }
    assert overridden == OVERRIDDEN_INTERNALS
