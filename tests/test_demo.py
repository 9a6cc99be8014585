"""scripts/demo, the README's first command: the main job through Meltano."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

from fake_smartflo import TOKEN, FakeSmartflo
from tests.helpers import REPO

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano


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


def written_counts(stdout: str) -> list[str]:
    """The demo's "<stream>: N records written -> <file>" lines, in order."""
    counts = [line.strip() for line in stdout.splitlines() if "records written" in line]
    assert counts, stdout
    return counts


def records(folder: Path) -> list[dict[str, t.Any]]:
    lines = (folder / "contacts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_demo_without_credentials_extracts_the_fake_then_only_its_changes(
    meltano: Meltano, tmp_path: Path
):
    # Run twice, as a curious user does: each demo starts afresh, with its own state
    # and files cleared, and writes the same records.
    first_demo = run_demo(meltano)
    done = run_demo(meltano)
    assert written_counts(first_demo.stdout) == written_counts(done.stdout)
    assert "extracting from the bundled fake API" in done.stdout
    assert "contacts: 1200 records written" in done.stdout
    written = records(tmp_path / "output")
    first, second = written[:1200], written[1200:]
    assert len({r["id"] for r in first}) == 1200
    # The second run is incremental: the changes only (2 renamed, 1 deleted, 5 new).
    assert len(second) == 8
    assert f"contacts: {len(second)} records written" in done.stdout
    assert sum(r["name"].startswith("Renamed") for r in second) == 2
    assert sum(r["deleted_at"] is not None for r in second) == 1
    assert len({r["id"] for r in second} - {r["id"] for r in first}) == 5
    # The demo's bookmarks are the demo environment's, never a real account's.
    assert meltano.state("demo:tap-smartflo-to-target-jsonl")
    assert meltano.state("dev:tap-smartflo-to-target-jsonl") == {}


def test_demo_with_credentials_extracts_the_account_not_the_fake(
    meltano: Meltano, tmp_path: Path
):
    # A stand-in for the real API, reached through the user's own settings.
    with FakeSmartflo(contacts=40) as account:
        done = run_demo(
            meltano, TAP_SMARTFLO_API_URL=account.url, TAP_SMARTFLO_API_TOKEN=TOKEN
        )
    assert "Credentials found" in done.stdout
    assert "Fake Smartflo API at" not in done.stdout
    assert account.requests_to("/v1/contacts")
    assert sorted(r["id"] for r in records(tmp_path / "output")) == sorted(
        account.store
    )
    assert meltano.state("dev:tap-smartflo-to-target-jsonl")
    assert meltano.state("demo:tap-smartflo-to-target-jsonl") == {}
