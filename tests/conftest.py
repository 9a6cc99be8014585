"""Fixtures: a fake Smartflo per test, and the ways to run the tap and Meltano."""

from __future__ import annotations

import typing as t

import pytest
from xdist.scheduler import LoadScopeScheduling

from fake_smartflo import FakeSmartflo
from tests.meltano_runner import MELTANO, Meltano, RequestRecorder
from tests.running import run_tap, run_tap_cli

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.messages import TapRun

#: The test files that run Meltano, by unit of work: a worker runs a unit whole, in
#: one Meltano installation (the installation takes seconds; the runs take longer).
#: The warehouse's (a demo run, loads and dbt builds) is a unit apart from the rest,
#: so that the two largest units start at once, each on a worker of its own.
MELTANO_TESTS = {
    "tests/test_meltano.py": "meltano",
    "tests/test_postgres.py": "meltano",
    "tests/test_demo.py": "warehouse",
    "tests/test_warehouse.py": "warehouse",
}


class _MeltanoUnits(LoadScopeScheduling):
    """The Meltano tests in two units of work (the largest, so they start first);
    every other test a unit of its own, to whichever worker is free."""

    def _split_scope(self, nodeid: str) -> str:
        return MELTANO_TESTS.get(nodeid.split("::", maxsplit=1)[0], nodeid)


def pytest_xdist_make_scheduler(
    config: pytest.Config, log: t.Any
) -> LoadScopeScheduling:
    """Schedule the tests for pytest-xdist's workers (pyproject asks for three).

    pytest-xdist's own "loadgroup" would group the Meltano tests by a mark, but
    under pytest 9.2 it groups nothing (it renames the items' node ids, which
    pytest no longer reads), and each Meltano test would pay for an installation.
    """
    return _MeltanoUnits(config, log)


@pytest.fixture
def api() -> Iterator[FakeSmartflo]:
    """A fake Smartflo with 250 contacts, started on a free port."""
    with FakeSmartflo(contacts=250) as server:
        yield server


@pytest.fixture
def tap(tmp_path: Path) -> Callable[..., TapRun]:
    """Run the tap in this process as its CLI would: ``tap(config, state=...)``."""

    def run(config: dict[str, t.Any] | None, **kwargs: t.Any) -> TapRun:
        return run_tap(config, workdir=tmp_path, **kwargs)

    return run


@pytest.fixture
def tap_cli(tmp_path: Path) -> Callable[..., TapRun]:
    """Run the tap's real command in a subprocess; the same arguments as ``tap``."""

    def run(config: dict[str, t.Any] | None, **kwargs: t.Any) -> TapRun:
        return run_tap_cli(config, workdir=tmp_path, **kwargs)

    return run


@pytest.fixture(scope="session")
def watchdog() -> Iterator[RequestRecorder]:
    """Where Meltano is told the Hub and the usage collector are: nothing may call."""
    with RequestRecorder() as recorder:
        yield recorder


@pytest.fixture(scope="session")
def meltano_installed(
    tmp_path_factory: pytest.TempPathFactory, watchdog: RequestRecorder
) -> Meltano:
    """``meltano install`` of this project, once per session, into a fresh folder."""
    assert MELTANO.exists(), "Meltano is missing: pip install -e '.[dev,meltano]'"
    base = tmp_path_factory.mktemp("meltano")
    meltano = Meltano(base / ".meltano", base / "install.db", watchdog.url)
    meltano.ok("install")
    return meltano


@pytest.fixture
def meltano(meltano_installed: Meltano, tmp_path: Path) -> Meltano:
    """The installed project with this test's own state database and output folder."""
    return meltano_installed.with_database(
        tmp_path / "meltano.db", TARGET_JSONL_DESTINATION_PATH=str(tmp_path / "output")
    )
