"""Fixtures: a fake Smartflo per test, and a way to run the tap as a user does."""

from __future__ import annotations

import typing as t

import pytest

from tests.fake_smartflo import FakeSmartflo
from tests.tap_runner import TapRun, run_tap

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def api() -> Iterator[FakeSmartflo]:
    """A fake Smartflo with 250 contacts, started on a free port."""
    with FakeSmartflo(contacts=250) as server:
        yield server


@pytest.fixture
def tap(tmp_path: Path) -> Callable[..., TapRun]:
    """Run the tap CLI in a subprocess: ``tap(config, state=..., args=[...])``."""

    def run(config: dict[str, t.Any], **kwargs: t.Any) -> TapRun:
        return run_tap(config, workdir=tmp_path, **kwargs)

    return run
