"""The two ways to run the tap, and the catalogs the tests give it.

``run_tap`` runs the tap in this process, as its command line would (the same
arguments, files and environment; stdout, stderr and the exit code captured), and
puts back every piece of process state a run changes. ``run_tap_cli`` runs the
real command in a subprocess; tests/test_cli.py uses it for what only a process
shows (and checks that both give the same messages, exit codes and error lines).
Either one fails the test when the tap logged a DeprecationWarning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import typing as t
import warnings
from functools import cache
from pathlib import Path
from unittest import mock

import click
from singer_sdk.logging import ConsoleFormatter

from scripts.catalog import select_streams
from scripts.environment import clean_env
from tap_smartflo import redact
from tap_smartflo.tap import TapSmartflo
from tests.configs import REPO, base_config
from tests.messages import TapRun

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

#: The command ``run_tap_cli`` runs by default (the console script is the same).
PYTHON_M_TAP = (sys.executable, "-m", "tap_smartflo")


def _arguments(
    workdir: Path,
    *,
    config: dict[str, t.Any] | None,
    state: dict[str, t.Any] | None,
    catalog: dict[str, t.Any] | None,
    streams: t.Iterable[str] | None,
    args: t.Sequence[str],
) -> list[str]:
    """The command-line arguments, with each document written to a file."""
    if streams is not None:
        catalog = catalog_selecting(streams)
    arguments = []
    for name, value in (("config", config), ("state", state), ("catalog", catalog)):
        if value is not None:
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(value))
            arguments += [f"--{name}", str(path)]
    return [*arguments, *args]


def run_tap_cli(
    config: dict[str, t.Any] | None,
    *,
    workdir: Path,
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    streams: t.Iterable[str] | None = None,
    args: t.Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
    program: t.Sequence[str] = PYTHON_M_TAP,
) -> TapRun:
    """Run the tap's command in a subprocess (only ``streams``, if given)."""
    arguments = _arguments(
        workdir, config=config, state=state, catalog=catalog, streams=streams, args=args
    )
    done = subprocess.run(
        [*program, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env() if env is None else env,
        check=False,
        cwd=REPO,
    )
    return _without_deprecations(TapRun(done.returncode, done.stdout, done.stderr))


def run_tap(
    config: dict[str, t.Any] | None,
    *,
    workdir: Path,
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    streams: t.Iterable[str] | None = None,
    args: t.Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> TapRun:
    """Run the tap's command in this process, as ``run_tap_cli`` would run it."""
    arguments = _arguments(
        workdir, config=config, state=state, catalog=catalog, streams=streams, args=args
    )
    # The Singer writer writes bytes to sys.stdout.buffer; print() writes text.
    written = io.BytesIO()
    stdout = io.TextIOWrapper(written, encoding="utf-8", write_through=True)
    stderr = io.StringIO()
    with (
        _process_state_restored(clean_env() if env is None else env),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        _deadline(timeout),
    ):
        _log_to(stderr)
        returncode = _main(arguments, stderr)
    run = TapRun(returncode, written.getvalue().decode(), stderr.getvalue())
    return _without_deprecations(run)


def _log_to(stream: t.TextIO) -> None:
    """Set up logging as the tap's command line does, into ``stream``.

    ``TapSmartflo.cli`` would do it, but it adds a root handler (on the stderr of
    the moment) at every attribute access, so it is never touched here.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    plugin = TapSmartflo.name.upper().replace("-", "_")
    level = os.environ.get(f"{plugin}_LOGLEVEL") or os.environ.get("LOGLEVEL")
    root.setLevel(level.upper() if level else logging.INFO)


def _main(arguments: list[str], stderr: t.TextIO) -> int:
    """Run the command; its exit code, as the process running it would exit with."""
    command = TapSmartflo.get_singer_command()
    try:
        result = command.main(
            args=arguments, prog_name=TapSmartflo.name, standalone_mode=False
        )
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=stderr)
        return 1
    except click.ClickException as exc:
        exc.show(file=stderr)
        return exc.exit_code
    except click.Abort:
        print("Aborted!", file=stderr)
        return 1
    except Exception as exc:
        # What the process's excepthook (SingerCommand.invoke sets it) would get:
        # it logs the traceback, and the process exits with 1.
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 1
    return result if isinstance(result, int) else 0


#: The log record factory before any tap installed its masking one (see redact).
_PLAIN_RECORD_FACTORY = logging.getLogRecordFactory()


@contextlib.contextmanager
def _process_state_restored(env: dict[str, str]) -> Iterator[None]:
    """Run with ``env`` as os.environ; afterwards put back what a tap run changes.

    A run sets the root logger's handlers and level, the SDK metrics logger's
    level, sys.excepthook, warnings filters and logging.captureWarnings, SIGINT and
    SIGTERM handlers (they would write STATE and exit at the next Ctrl-C), and the
    tap's process-wide secrets and log record factory. Each run starts without the
    secrets of earlier runs, so a secret a run fails to hide shows.
    """
    root = logging.getLogger()
    metrics = logging.getLogger("singer_sdk.metrics")
    saved_root = (root.level, root.handlers[:])
    saved_metrics_level = metrics.level
    saved_excepthook = sys.excepthook
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_redact = (logging.getLogRecordFactory(), redact._installed)
    logging.setLogRecordFactory(_PLAIN_RECORD_FACTORY)
    redact._installed = ()
    try:
        with warnings.catch_warnings(), mock.patch.dict(os.environ, env, clear=True):
            # A deprecation shown "once" in an earlier run shows again in this one.
            warnings.onceregistry.clear()
            try:
                yield
            finally:
                logging.captureWarnings(capture=False)
    finally:
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        metrics.setLevel(saved_metrics_level)
        sys.excepthook = saved_excepthook
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
        factory, redact._installed = saved_redact
        logging.setLogRecordFactory(factory)


class TapTimeoutError(BaseException):
    """The in-process run took longer than its timeout (a BaseException, so that
    no ``except Exception`` in the tap or the SDK takes it for a failed request)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt the run after ``seconds``, as the subprocess runner's timeout does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        msg = f"the tap did not finish within {seconds} s"
        raise TapTimeoutError(msg)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _without_deprecations(run: TapRun) -> TapRun:
    """``run``, unless it logged a DeprecationWarning (then the test fails).

    The SDK's command shows each DeprecationWarning once, as a log line (it adds a
    "once" filter and captures warnings), whatever pytest's filters say.
    """
    lines = run.stderr.splitlines()
    # DeprecationWarning, PendingDeprecationWarning, SingerSDKDeprecationWarning.
    deprecations = [line for line in lines if "DeprecationWarning" in line]
    assert not deprecations, "the tap used something deprecated:\n" + "\n".join(
        deprecations
    )
    return run


# Catalogs


@cache
def _discovered() -> str:
    with tempfile.TemporaryDirectory() as workdir:
        # Without custom-field columns: they come from the API (none is asked
        # here), and tests that want them discover from their own fake.
        run = run_tap(
            base_config("http://127.0.0.1:9", custom_fields_as_columns=False),
            workdir=Path(workdir),
            args=["--discover"],
        )
    assert run.returncode == 0, run.stderr
    return run.stdout


def discovered_catalog() -> dict[str, t.Any]:
    """The catalog ``--discover`` prints without custom columns (no request); a copy."""
    return t.cast("dict[str, t.Any]", json.loads(_discovered()))


def catalog_selecting(streams: t.Iterable[str]) -> dict[str, t.Any]:
    """The tap's catalog with only ``streams`` selected."""
    return select_streams(discovered_catalog(), streams)
