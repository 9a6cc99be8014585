"""Fixtures: a fake Smartflo per test, and the ways to run the tap and Meltano."""

from __future__ import annotations

import typing as t

import pytest
from xdist.scheduler import LoadScopeScheduling

from fake_smartflo import FakeSmartflo
from tests.meltano_runner import (
    MELTANO,
    Meltano,
    RequestRecorder,
    install,
    worker_copy,
)
from tests.running import run_tap, run_tap_cli

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.messages import TapRun

#: Modules whose tests share a module-scoped fixture (one run of the demo, one S3
#: server) or the SDK's class-scoped one (test_core's sync): each is one unit of
#: work, run whole by one worker, so the fixture is made once. Every other test is a
#: unit of its own, for whichever worker is free (tests/test_dev_tools.py checks
#: the list is whole).
SHARED_MODULES = (
    "tests/test_core.py",
    "tests/test_demo.py",
    "tests/test_recordings.py",
    "tests/test_more_streams.py",
    "tests/test_plugin_definitions.py",
)
#: The units that take longest (Meltano and dbt, or a real clock), in the order they
#: are handed out; the short tests fill the workers around them, in the order pytest
#: collected them. Two cores, three workers: a unit that mostly waits on the clock
#: (the second-run pacing tests, the S3 recordings) goes beside two that keep the
#: cores busy (Meltano, dbt), never beside another one that waits.
LONGEST = (
    "tests/test_demo.py",
    "tests/test_demo_account.py",
    "tests/test_pacing.py::test_a_second_run_starts_at_the_remembered_share[sliding]",
    "tests/test_meltano.py::test_run_writes_every_contact_then_the_schedule",
    "tests/test_meltano.py::test_a_forbidden_stream_is_skipped",
    "tests/test_pacing.py::test_a_second_run_starts_at_the_remembered_share[fixed]",
    "tests/test_meltano.py::test_meltano_config_test_passes",
    "tests/test_meltano.py::test_the_limit_learned_in_one_run_is_remembered",
    "tests/test_postgres.py",
    "tests/test_recordings.py",
)
#: Modules whose tests mostly wait on the clock (retries, deadlines, pacing): spread
#: evenly among the tests that only compute, so that no stretch of the run has
#: every worker waiting at once.
WAITING = (
    "tests/test_reliability.py",
    "tests/test_hostile.py",
    "tests/test_pacing.py",
    "tests/test_operating.py",
)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to (its module's, or its own)."""
    module = nodeid.split("::", maxsplit=1)[0]
    return module if module in SHARED_MODULES else nodeid


def rank(nodeid: str) -> int:
    """Where a test's unit comes in LONGEST (after all of them if not there)."""
    return next(
        (n for n, prefix in enumerate(LONGEST) if nodeid.startswith(prefix)),
        len(LONGEST),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest units first, then the rest with WAITING's spread among them.

    Each worker collects, and gets the same order.
    """
    items.sort(key=lambda item: rank(item.nodeid))
    first = [item for item in items if rank(item.nodeid) < len(LONGEST)]
    rest = items[len(first) :]
    waiting = [item for item in rest if item.nodeid.startswith(WAITING)]
    computing = [item for item in rest if not item.nodeid.startswith(WAITING)]

    def spread(group: list[pytest.Item]) -> list[tuple[float, pytest.Item]]:
        return [((n + 0.5) / len(group), item) for n, item in enumerate(group)]

    merged = sorted(spread(waiting) + spread(computing), key=lambda pair: pair[0])
    items[:] = first + [item for _, item in merged]


class _Units(LoadScopeScheduling):
    """Hands out the units of work (``unit_of``) in the order collected."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


def pytest_xdist_make_scheduler(
    config: pytest.Config, log: t.Any
) -> LoadScopeScheduling:
    """Schedule the tests for pytest-xdist's workers (pyproject asks for three).

    pytest-xdist's own "loadgroup" would group tests by a mark, but under pytest
    9.2 it groups nothing (it renames the items' node ids, which pytest no longer
    reads). Its "loadscope" reorders the units by their number of tests, not by
    how long they take: the order here is LONGEST's.
    """
    config.option.loadscopereorder = False
    return _Units(config, log)


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
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, watchdog: RequestRecorder
) -> Meltano:
    """``meltano install`` of this project, once per session (``install``).

    Each of pytest-xdist's workers runs Meltano in a copy of its own of the
    installation (``worker_copy``), with its own system database and watchdog.
    """
    assert MELTANO.exists(), "Meltano is missing: pip install -e '.[dev,meltano]'"
    own = tmp_path_factory.getbasetemp()
    asked = install(own if worker_id == "master" else own.parent)
    return Meltano(
        worker_copy(worker_id), own / "meltano.db", watchdog.url, install_requests=asked
    )


@pytest.fixture
def meltano(meltano_installed: Meltano, tmp_path: Path) -> Meltano:
    """The installed project with this test's own state database and output folder."""
    return meltano_installed.with_database(
        tmp_path / "meltano.db", TARGET_JSONL_DESTINATION_PATH=str(tmp_path / "output")
    )
