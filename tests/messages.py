"""What one run of the tap left (its messages, logs, exit code), and checks on it."""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass
from functools import cached_property

import jsonschema

#: A time as the tap writes the fake's times: UTC, RFC 3339, whole seconds.
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")


@dataclass
class TapRun:
    """What one run of the tap left: exit code, Singer messages, logs."""

    returncode: int
    stdout: str
    stderr: str

    @cached_property
    def messages(self) -> list[dict[str, t.Any]]:
        """Every Singer message on stdout (parsed once: tests ask again and again)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def records(self, stream: str = "contacts") -> list[dict[str, t.Any]]:
        """The records of one stream, in order."""
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def schema(self, stream: str = "contacts") -> dict[str, t.Any]:
        """The SCHEMA message the tap announced for ``stream``."""
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


def assert_no_secret(run: TapRun, *secrets: str) -> None:
    """None of ``secrets`` is on stdout or stderr."""
    for secret in secrets:
        assert secret not in run.stdout
        assert secret not in run.stderr


def assert_one_clear_line(run: TapRun, words: str) -> None:
    """The run failed (exit code 1) with ``words`` in the log and no traceback."""
    assert run.returncode == 1, run.stderr
    assert words in run.stderr
    assert "Traceback" not in run.stderr
