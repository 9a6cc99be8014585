"""scripts/demo, the README's first command: the main job through Meltano."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t

from fake_smartflo import TOKEN, FakeSmartflo
from tests.configs import FAKE_ACCOUNT_ENV, REPO

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano

DEMO_STATE = "demo:tap-smartflo-to-target-jsonl"
DEV_STATE = "dev:tap-smartflo-to-target-jsonl"


def run_demo(meltano: Meltano, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the demo as scripts/demo does, after its install step."""
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo_run"],
        cwd=REPO,
        env=meltano.environ(**env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def printed_state(stdout: str, label: str) -> dict[str, t.Any]:
    """The state the demo printed after ``label`` (what ``meltano state get`` said)."""
    match = re.search(rf"^{re.escape(label)} (\{{.*\}})$", stdout, re.MULTILINE)
    assert match, stdout
    return t.cast("dict[str, t.Any]", json.loads(match.group(1)))


def records(folder: Path) -> list[dict[str, t.Any]]:
    lines = (folder / "contacts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_demo_without_credentials_extracts_the_fake_then_only_its_changes(
    meltano: Meltano, tmp_path: Path
):
    # What an earlier demo would leave: its state (here a bookmark no contact
    # reaches) and its files. Each demo starts afresh, with both cleared.
    stale = {"bookmarks": {"contacts": {"replication_key": "updated_at"}}}
    stale["bookmarks"]["contacts"]["replication_key_value"] = "2099-01-01T00:00:00Z"
    state = json.dumps({"singer_state": stale})
    meltano.ok("--environment=demo", "state", "set", "--force", DEMO_STATE, state)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "contacts.jsonl").write_text('{"id": -1}\n')

    done = run_demo(meltano)
    assert "extracting from the bundled fake API" in done.stdout
    assert "contacts: 1200 records written" in done.stdout
    # The account's reference and campaign data, each in its file, in both runs
    # (they are read whole every time).
    for stream, count in (
        ("departments", 5),
        ("ivrs", 3),
        ("my_numbers", 4),
        ("broadcast_lists", 3),
        ("broadcast_leads", 60),
        ("broadcasts", 120),
        ("dialer_campaigns", 3),
    ):
        assert done.stdout.count(f"  {stream}: {count} records written") == 2, stream
    written = records(tmp_path / "output")
    first, second = written[:1200], written[1200:]
    assert len({r["id"] for r in first}) == 1200
    assert -1 not in {r["id"] for r in written}
    # The second run is incremental: the changes only (2 renamed, 1 deleted, 5 new).
    assert len(second) == 8
    assert f"contacts: {len(second)} records written" in done.stdout
    assert sum(r["name"].startswith("Renamed") for r in second) == 2
    assert sum(r["deleted_at"] is not None for r in second) == 1
    assert len({r["id"] for r in second} - {r["id"] for r in first}) == 5
    # It shows the tap's own account of each run: progress, then the summary.
    assert "Progress: call_records: " in done.stdout
    assert "Summary: contacts: 1,200 records" in done.stdout
    assert "Summary: contacts: 8 records" in done.stdout
    assert done.stdout.count("Summary: Run succeeded") == 2
    # The demo's bookmarks are the demo environment's, never a real account's.
    saved = printed_state(done.stdout, "Meltano saved the state:")
    assert saved["singer_state"]["bookmarks"]["contacts"]["replication_key_value"]
    assert meltano.state(DEV_STATE) == {}


def test_demo_with_credentials_extracts_the_account_not_the_fake(
    meltano: Meltano, tmp_path: Path
):
    # A stand-in for the real API, reached through the user's own settings.
    with FakeSmartflo(contacts=40) as account:
        done = run_demo(
            meltano,
            TAP_SMARTFLO_API_URL=account.url,
            TAP_SMARTFLO_API_TOKEN=TOKEN,
            **FAKE_ACCOUNT_ENV,  # a user who knows the account's limit
        )
    assert "Credentials found" in done.stdout
    assert "Fake Smartflo API at" not in done.stdout
    assert account.requests_to("/v1/contacts")
    assert sorted(r["id"] for r in records(tmp_path / "output")) == sorted(
        account.store
    )
    saved = printed_state(done.stdout, "State for the next run:")
    assert saved["singer_state"]["bookmarks"]["contacts"]["replication_key_value"]
    assert meltano.state(DEMO_STATE) == {}
