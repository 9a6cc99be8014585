"""Run this repository's Meltano project as a user does, with nothing shared.

The project is the real ``meltano.yml`` at the repository root. What Meltano writes
goes elsewhere: plugin virtualenvs to a ``.meltano`` folder of the tests' own
(``MELTANO_SYS_DIR_ROOT``: INSTALLATION, installed again each session), state to a
system database per test (``MELTANO_DATABASE_URI``), files to a folder per test. A
developer's own ``.meltano/``, ``output/`` and settings are never read or touched.

Each command runs in a process of its own, forked from one that has imported
Meltano's CLI already (tests/meltano_fork.py): Meltano's code, arguments and
environment as the ``meltano`` console script gives them, without its second of
imports. The demo's tests run the console script itself (scripts/demo_run.py).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from typing_extensions import Self

from fake_smartflo import LocalServer
from scripts.environment import clean_env
from tests.configs import REPO

#: Installed beside the interpreter by the "meltano" extra (scripts/test).
MELTANO = Path(sys.executable).with_name("meltano")
#: Where the tests install this project's Meltano plugins (Meltano's system folder,
#: MELTANO_SYS_DIR_ROOT): in the tests' virtualenv, apart from a developer's own
#: .meltano/. Each session installs again, and finds what the last one installed
#: (and compiled: scripts/test keeps bytecode by its source's path) in place.
INSTALLATION = Path(sys.prefix) / "meltano-tests" / ".meltano"


class RequestRecorder:
    """An HTTP server on 127.0.0.1 that answers 404 to everything and logs it.

    Stands in for Meltano Hub and the usage-statistics collector, so a test can
    show that Meltano asked neither for anything.
    """

    def __init__(self) -> None:
        """Start serving on a free port."""
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Stay quiet."""

            def answer(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = answer  # noqa: N815

        self.server = LocalServer(Handler)
        self.url = self.server.url

    def __enter__(self) -> Self:
        """Serve until the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self.server.close()


@dataclass
class Meltano:
    """The ``meltano`` CLI in this repository's project, with isolated writes."""

    sys_dir: Path
    database: Path
    #: Where Meltano Hub and the usage-statistics collector are said to be.
    watchdog_url: str
    env: dict[str, str] = field(default_factory=dict)
    #: What Meltano asked of the Hub and the collector while it installed the plugins.
    install_requests: list[str] = field(default_factory=list)

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment a command runs with."""
        env = clean_env(
            MELTANO_SYS_DIR_ROOT=str(self.sys_dir),
            MELTANO_DATABASE_URI=f"sqlite:///{self.database}",
            MELTANO_HUB_URL=self.watchdog_url,
            MELTANO_HUB_API_ROOT=f"{self.watchdog_url}/meltano/api/v1",
            MELTANO_SNOWPLOW_COLLECTOR_ENDPOINTS=json.dumps([self.watchdog_url]),
        )
        env.update(self.env)
        env.update(extra)
        return env

    def __call__(
        self, *args: str, cwd: Path = REPO, timeout: float = 600, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``meltano *args`` in the project; the caller checks the exit code."""
        env = self.environ(**extra_env)
        return _FORKS.run([str(MELTANO), *args], cwd, env, timeout)

    def ok(
        self, *args: str, cwd: Path = REPO, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``meltano *args`` and fail the test, with its log, if it fails."""
        done = self(*args, cwd=cwd, **extra_env)
        assert done.returncode == 0, (
            f"meltano {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        )
        return done

    def state(self, state_id: str) -> dict[str, t.Any]:
        """The state Meltano saved under ``state_id``, as ``meltano state get`` says.

        Read from Meltano's system database, its ``state`` table (the state of the
        last run that finished; what runs that did not finish added, which must be
        nothing here), instead of by starting Meltano once more: a second and a
        half of CPU each time. The demo's output shows ``meltano state get`` itself.
        """
        if not self.database.exists():
            return {}
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            row = db.execute(
                "SELECT completed_state, partial_state FROM state WHERE state_id = ?",
                [state_id],
            ).fetchone()
        if row is None:
            return {}
        completed, partial = (json.loads(value or "{}") for value in row)
        assert partial == {}, f"a run under {state_id} did not finish: {partial}"
        return t.cast("dict[str, t.Any]", completed)

    def with_database(self, database: Path, **env: str) -> Meltano:
        """The same installation, with its own state database and variables."""
        return Meltano(
            self.sys_dir,
            database,
            self.watchdog_url,
            {**self.env, **env},
            self.install_requests,
        )


class _Forks:
    """This process's fork server (tests/meltano_fork.py), started when first used.

    A command runs as the ``meltano`` console script runs it, in a process of its
    own with the command's directory, environment and output, but forked from one
    that imported Meltano already: about 0.7 s of CPU less a command.
    """

    def __init__(self) -> None:
        self.server: subprocess.Popen[str] | None = None
        atexit.register(self.close)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (``meltano`` and its arguments); its exit code and output."""
        server = self._server()
        assert server.stdin
        with tempfile.TemporaryDirectory(prefix="meltano-command-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            command = {
                "argv0": argv[0], "args": argv[1:], "cwd": str(cwd), "env": env,
                "stdout": str(out), "stderr": str(err),
            }  # fmt: skip
            server.stdin.write(json.dumps(command) + "\n")
            server.stdin.flush()
            pid = self._answer()
            expired = threading.Event()

            def kill() -> None:
                expired.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                returncode = self._answer()
            finally:
                timer.cancel()
            done = subprocess.CompletedProcess(
                argv, returncode, out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )  # fmt: skip
        if expired.is_set():
            raise subprocess.TimeoutExpired(argv, timeout, done.stdout, done.stderr)
        return done

    def _answer(self) -> int:
        """The server's next line: a command's pid, or its exit code."""
        assert self.server
        assert self.server.stdout
        line = self.server.stdout.readline()
        assert line, f"tests/meltano_fork.py stopped (exit {self.server.wait()})"
        return int(line)

    def _server(self) -> subprocess.Popen[str]:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "tests.meltano_fork"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                env=clean_env(),
                text=True,
            )
        return self.server

    def close(self) -> None:
        """Stop the server (it ends when its input does)."""
        if self.server is not None and self.server.stdin:
            self.server.stdin.close()
            self.server.wait(timeout=30)


_FORKS = _Forks()


def install(session: Path) -> list[str]:
    """``meltano install`` of this project into INSTALLATION, once per test session.

    The first of pytest's workers to ask installs (the others wait for it to end)
    and keeps what Meltano asked of the Hub and the collector in ``session``, the
    folder the workers' temporary folders are in; every worker gets that list.
    """
    asked = session / "meltano-install-requests.json"
    with (session / "meltano-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not asked.exists():
            with RequestRecorder() as recorder:
                into = Meltano(INSTALLATION, session / "install.db", recorder.url)
                into.ok("install")
            asked.write_text(json.dumps(recorder.requests))
    return t.cast("list[str]", json.loads(asked.read_text()))


def worker_copy(name: str) -> Path:
    """A copy of INSTALLATION for one worker, made of hard links, made afresh.

    Meltano writes a run's files (the tap's catalog, say) to one place in its
    installation, and the demo installs again: workers running at once each run
    Meltano in a copy of their own. Its place is the same in every session, so
    the bytecode compiled for it last time is found again.
    """
    copy = INSTALLATION.with_name(f"{INSTALLATION.name}-{name}")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(INSTALLATION, copy, symlinks=True, copy_function=_link_or_copy)
    return copy


def _link_or_copy(source: str, target: str) -> None:
    """A hard link, but a copy of what Meltano rewrites in place when it installs
    (its fingerprint of a plugin's venv): every copy would see one worker's write.
    uv replaces the files it installs (a new file, a new inode)."""
    if Path(source).name == ".meltano_plugin_fingerprint":
        shutil.copy2(source, target)
    else:
        os.link(source, target)
