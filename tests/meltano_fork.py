"""Meltano's command line, imported once, forked for each command a test runs.

Starting ``meltano`` spends about 0.7 s of CPU importing itself before it reads a
word of its arguments; the tests run a dozen commands. tests/meltano_runner.py
starts this module once per test process (``python -m tests.meltano_fork``). It
imports ``meltano.cli`` and what every command goes on to import (the system
database's migrations and driver), then reads one command a line from stdin: its
arguments, working directory, environment and the files for its output. For each
it forks; the child takes the command's directory, environment and files, and
runs ``meltano.cli.main`` exactly as the ``meltano`` console script does, then
exits as that process would. The answer is two lines: the child's pid (so that a
test that times out can kill it), then its exit code.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import typing as t

import meltano.cli

#: What a command imports on its way, imported here once: the system database's
#: migrations and driver (alembic, SQLAlchemy's dialects, sqlite3), the state
#: stores' settings, the project file. Names Meltano no longer has are skipped:
#: a command then imports what it needs itself, as the console script would.
ON_THE_WAY = (
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "mako.exceptions",
    "meltano.core.meltano_file",
    "meltano.core.plugin.utility",
    "meltano.core.state_store.azure.settings",
    "meltano.core.state_store.google.settings",
    "meltano.core.state_store.s3.settings",
    "meltano.migrations.utils.dialect_typing",
    "ruamel.yaml.mergevalue",
    "sqlalchemy.dialects.mssql",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
)
for name in ON_THE_WAY:
    with contextlib.suppress(ImportError):
        importlib.import_module(name)


def become(command: dict[str, t.Any]) -> t.NoReturn:
    """In the forked child: become the command's process and run it."""
    os.setsid()  # its own process group, which a timeout kills whole
    os.chdir(command["cwd"])
    os.environ.clear()
    os.environ.update(command["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, command["stdout"]), (2, command["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    sys.argv = [command["argv0"], *command["args"]]
    # As the console script: SystemExit ends this process normally (atexit
    # handlers, flushed output), and anything else is printed and exits 1.
    sys.exit(meltano.cli.main())  # type: ignore[func-returns-value]


def main() -> None:
    """Fork for each command read from stdin; answer its pid, then its exit code."""
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            become(command)
        answer(pid)
        _, status = os.waitpid(pid, 0)
        answer(os.waitstatus_to_exitcode(status))


def answer(number: int) -> None:
    """One line to the test process."""
    sys.stdout.write(f"{number}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
