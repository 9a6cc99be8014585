"""The real command line, in a subprocess: what only a process shows.

Every other end-to-end test runs the tap in-process (tests/running.py). These show
that the real CLI keeps Singer messages on stdout and logs on stderr, exits 0 or 1
as it should, resumes after SIGKILL or SIGTERM without losing a record, and gives
the same messages, exit codes and error lines as the in-process runner, which puts
the process back as it found it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import typing as t
import warnings
from pathlib import Path

import pytest

from fake_smartflo import FakeSmartflo, Fault
from scripts.environment import clean_env
from tap_smartflo import redact
from tests.configs import base_config
from tests.running import catalog_selecting

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from tests.messages import TapRun

SINGER_TYPES = {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH"}
#: A log line as the SDK's console formatter writes it.
LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \| (?P<level>\w+) +\| "
    r"(?P<logger>\S+) +\| (?P<message>.*)$"
)
#: The stream the stopped runs read (the others only make them longer).
CONTACTS = ["contacts"]
#: The console script pip installed beside this interpreter.
TAP_SMARTFLO = str(Path(sys.executable).with_name("tap-smartflo"))


def log_lines(run: TapRun, *levels: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of each log line at one of ``levels``."""
    matches = [LOG_LINE.match(line) for line in run.stderr.splitlines()]
    return [
        (match["level"], match["logger"], match["message"])
        for match in matches
        if match and match["level"] in levels
    ]


def singer_messages(run: TapRun) -> list[dict[str, t.Any]]:
    """The messages, less what differs from run to run (when, which version)."""
    return [
        {k: v for k, v in message.items() if k not in {"time_extracted", "version"}}
        for message in run.messages
    ]


def test_cli_writes_only_singer_messages_to_stdout_and_logs_to_stderr(tap_cli):
    with FakeSmartflo(contacts=120, contact_groups=5, calls=20, users=7) as api:
        run = tap_cli(base_config(api.url, start_date="2024-01-01T00:00:00Z"))
    assert run.returncode == 0, run.stderr
    # Every stdout line is a Singer message (.messages parses each one).
    assert {m["type"] for m in run.messages} <= SINGER_TYPES
    assert len(run.records()) == 120
    assert len(run.records("call_records")) == 20
    # stderr holds the logs, and nothing that looks like a message.
    lines = run.stderr.splitlines()
    assert lines
    assert all(LOG_LINE.match(line) for line in lines), run.stderr
    assert not any(
        '"type": "RECORD"' in line or '"type":"RECORD"' in line for line in lines
    )
    assert log_lines(run, "INFO")


SCENARIOS: dict[str, tuple[dict[str, t.Any], list[str], int, str]] = {
    # name: (settings over base_config, arguments, exit code, words in an error line)
    "sync": ({"start_date": "2024-01-01T00:00:00Z"}, [], 0, ""),
    "refused token (sys.exit)": (
        {"api_token": "not-the-token-value"},
        [],
        1,
        "check that api_token is valid",
    ),
    "invalid setting (click's ctx.exit)": (
        {"page_size": 0},
        [],
        1,
        "page_size must be positive",
    ),
    "discover": ({}, ["--discover"], 0, ""),
    "about": ({}, ["--about", "--format=json"], 0, ""),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_in_process_runner_gives_what_the_cli_gives(
    tap: Callable[..., TapRun], tap_cli: Callable[..., TapRun], scenario: str
):
    settings, args, code, words = SCENARIOS[scenario]
    # Contact groups and users only: call records' windows end at the run's start.
    with FakeSmartflo(contacts=80, contact_groups=4, users=6) as api:
        config = base_config(api.url, **settings)
        streams = ["contacts", "contact_groups", "users"] if not args else None
        cli = tap_cli(config, args=args, streams=streams)
        in_process = tap(config, args=args, streams=streams)
    assert cli.returncode == in_process.returncode == code, cli.stderr
    if args:  # a catalog or a description, not messages
        assert cli.stdout == in_process.stdout
    else:
        assert singer_messages(cli) == singer_messages(in_process)
    errors = log_lines(cli, "WARNING", "ERROR", "CRITICAL")
    assert errors == log_lines(in_process, "WARNING", "ERROR", "CRITICAL")
    if words:
        assert any(words in message for _, _, message in errors), cli.stderr
    assert "Traceback" not in cli.stderr
    assert "Traceback" not in in_process.stderr


def test_the_console_script_prints_what_the_tap_is(tap_cli):
    run = tap_cli(None, args=["--about", "--format=json"], program=[TAP_SMARTFLO])
    assert run.returncode == 0, run.stderr
    about = json.loads(run.stdout)
    assert about["name"] == "tap-smartflo"
    assert {"api_token", "email", "password"} <= set(about["settings"]["properties"])


def process_state() -> dict[str, object]:
    """What an in-process run may change in this process, and must put back."""
    root = logging.getLogger()
    return {
        "root handlers": root.handlers[:],
        "root level": root.level,
        "metrics level": logging.getLogger("singer_sdk.metrics").level,
        "excepthook": sys.excepthook,
        "SIGINT": signal.getsignal(signal.SIGINT),
        "SIGTERM": signal.getsignal(signal.SIGTERM),
        "warnings filters": warnings.filters[:],
        "showwarning": warnings.showwarning,
        "environment": dict(os.environ),
        "record factory": logging.getLogRecordFactory(),
        "redactors": redact._installed,
        "stdout": sys.stdout,
        "stderr": sys.stderr,
    }


def test_an_in_process_run_puts_the_process_back_as_it_found_it(tap, api):
    before = process_state()
    runs = [
        tap(
            base_config(api.url), streams=["contacts"], env=clean_env(LOGLEVEL="DEBUG")
        ),
        tap(base_config(api.url, api_token="not-the-token-value")),
        tap(None, args=["--about"]),
    ]
    assert [run.returncode for run in runs] == [0, 1, 0]
    assert process_state() == before


def test_an_in_process_run_starts_without_the_secrets_of_earlier_runs(tap, monkeypatch):
    # As if an earlier run had hidden it: this run was not told it is a secret, and
    # a record that quotes it must show it (else a run that fails to hide its own
    # secrets would pass, masked by an earlier run's).
    earlier = "an-earlier-runs-secret-0123"
    earlier_run = redact.Redactor()
    earlier_run.hide(earlier)
    quoting = {"results": [{"name": earlier}]}
    with earlier_run, FakeSmartflo(contacts=3, body_filter=lambda b: quoting) as api:
        run = tap(base_config(api.url), streams=["contacts"])
        assert redact.mask(earlier) == "***"  # the process's own secrets are back
    assert run.returncode == 1
    assert earlier in run.stderr
    assert redact.mask(earlier) == earlier  # removed with the earlier "run"


@pytest.mark.parametrize(
    "args", [(), ("--discover",), ("--test",)], ids=["sync", "discover", "test"]
)
def test_a_run_removes_the_redactor_it_installed(tap, api, monkeypatch, args):
    # Each command masks its secrets while it runs, then stops: a process that
    # runs taps one after another does not mask one account's secrets forever.
    installed, removed = [], []
    install, remove = redact.Redactor.install, redact.Redactor.remove

    def counted_install(self):
        installed.append(self)
        return install(self)

    def counted_remove(self):
        removed.append(self)
        remove(self)

    monkeypatch.setattr(redact.Redactor, "install", counted_install)
    monkeypatch.setattr(redact.Redactor, "remove", counted_remove)
    run = tap(base_config(api.url), streams=["contacts"], args=args)
    assert run.returncode == 0, run.stderr
    assert len(installed) >= 1
    assert set(map(id, installed)) <= set(map(id, removed))
    assert not any(redactor.installed for redactor in installed)


# Stopped and resumed


def sync_until_stopped(
    config: dict, state: dict, tmp_path: Path, sig: int, records: int
) -> tuple[list[dict[str, t.Any]], int]:
    """Sync contacts with the CLI, send it ``sig`` after ``records`` records.

    Returns:
        The messages it wrote, and its exit code.
    """
    files = {"config": config, "state": state, "catalog": catalog_selecting(CONTACTS)}
    arguments = []
    for name, document in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
        arguments += [f"--{name}", str(tmp_path / f"{name}.json")]
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_smartflo", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    assert process.stdout is not None
    lines, seen = [], 0
    for line in process.stdout:
        lines.append(line)
        seen += '"type":"RECORD"' in line.replace(" ", "")
        if seen >= records:
            process.send_signal(sig)
            break
    lines += process.stdout.readlines()
    process.wait(timeout=30)
    return [json.loads(line) for line in lines if line.strip()], process.returncode


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill", "term", "int"]
)
def test_a_cli_run_stopped_by_a_signal_resumes_from_its_last_state_losing_nothing(
    tap, tmp_path, sig
):
    with FakeSmartflo(contacts=2000, latency=0.01) as api:
        first = tap(base_config(api.url), streams=CONTACTS)
        api.tick(3600)
        changed = list(api.store)[::3]
        for contact_id in changed:
            api.touch(contact_id, name="changed")
        config = base_config(api.url, page_size=50)
        messages, code = sync_until_stopped(
            config, first.final_state, tmp_path, sig, 300
        )
        # Stopped is not succeeded: a scheduler must not see a green run. SIGTERM
        # and Ctrl-C end with the shell's code for them (128 + the signal), after
        # the STATE.
        assert code == (-sig if sig == signal.SIGKILL else 128 + sig)
        emitted = {m["record"]["id"] for m in messages if m["type"] == "RECORD"}
        assert len(emitted) < len(changed)
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        resumed = tap(
            config, state=states[-1] if states else first.final_state, streams=CONTACTS
        )
    assert resumed.returncode == 0, resumed.stderr
    emitted |= {r["id"] for r in resumed.records()}
    assert set(changed) <= emitted


def test_a_run_stopped_before_its_sync_began_writes_no_state(tmp_path):
    # Stopped during discovery (the state not even loaded yet): a STATE now would
    # be empty, and a scheduler would save it over the real one.
    with FakeSmartflo(contacts=5, hang_seconds=20) as api:
        api.faults.append(Fault("hang", "/v1/contact/groups"))
        state = {"bookmarks": {"contacts": {"replication_key": "updated_at"}}}
        for name, document in {"config": base_config(api.url), "state": state}.items():
            (tmp_path / f"{name}.json").write_text(json.dumps(document))
        process = subprocess.Popen(
            [sys.executable, "-m", "tap_smartflo"]
            + [f"--{name}={tmp_path / name}.json" for name in ("config", "state")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        while not api.requests_to("/v1/contact/groups"):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert stdout == ""
    assert "Stopped before the sync began" in stderr
    assert "Traceback" not in stderr
