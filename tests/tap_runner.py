"""Run ``tap-smartflo`` as a user does (a subprocess) and read what it printed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import typing as t
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema

from fake_smartflo import TOKEN
from scripts.catalog import select_streams
from scripts.environment import clean_env


def base_config(api_url: str, **settings: t.Any) -> dict[str, t.Any]:
    """A config for the fake server, plus ``settings``."""
    return {"api_url": api_url, "api_token": TOKEN, **settings}


@dataclass
class TapRun:
    """What one run of the tap left: exit code, Singer messages, logs."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, t.Any]]:
        """Every Singer message on stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def records(self, stream: str = "contacts") -> list[dict[str, t.Any]]:
        """The records of one stream, in order."""
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def schema(self, stream: str = "contacts") -> dict[str, t.Any]:
        """The schema the tap announced for ``stream``."""
        return next(
            m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream
        )

    @property
    def states(self) -> list[dict[str, t.Any]]:
        """Every STATE value, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, t.Any]:
        """The last STATE the tap emitted."""
        return self.states[-1]

    def bookmark(self, stream: str = "contacts") -> t.Any:
        """The final replication_key_value of ``stream``."""
        return self.final_state["bookmarks"][stream].get("replication_key_value")

    def schema_errors(self, stream: str) -> list[str]:
        """Every way a record of ``stream`` breaks the schema the tap announced."""
        validator = jsonschema.Draft7Validator(self.schema(stream)["schema"])
        return [
            f"{record.get('id')}: {error.message}"
            for record in self.records(stream)
            for error in validator.iter_errors(record)
        ]


@cache
def _discovered_catalog() -> dict[str, t.Any]:
    """The tap's catalog (discovery makes no request, so any config will do)."""
    with tempfile.TemporaryDirectory() as workdir:
        run = run_tap(
            base_config("http://127.0.0.1:9"),
            workdir=Path(workdir),
            args=["--discover"],
        )
    return t.cast("dict[str, t.Any]", json.loads(run.stdout))


def catalog_selecting(streams: t.Iterable[str]) -> dict[str, t.Any]:
    """The tap's catalog with only ``streams`` selected."""
    return select_streams(copy.deepcopy(_discovered_catalog()), streams)


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
    """Run the tap CLI once and capture its output (only ``streams``, if given)."""
    if streams is not None:
        catalog = catalog_selecting(streams)
    command = [sys.executable, "-m", "tap_smartflo"]
    for name, value in (("config", config), ("state", state), ("catalog", catalog)):
        if value is not None:
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(value))
            command += [f"--{name}", str(path)]
    command += list(args)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return TapRun(done.returncode, done.stdout, done.stderr)
