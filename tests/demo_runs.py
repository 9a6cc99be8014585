"""Running scripts/demo's job in a test, and reading what it printed and left."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t

import duckdb

from tests.configs import REPO

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano

DEMO_STATE = "demo:tap-smartflo-to-target-duckdb"
DEV_STATE = "dev:tap-smartflo-to-target-duckdb"


def output_env(output: Path) -> dict[str, str]:
    """Where the demo's files go in a test: the warehouse and dbt's own files."""
    return {
        "TARGET_DUCKDB_PATH": str(output / "warehouse.duckdb"),
        "DBT_WAREHOUSE": str(output / "warehouse.duckdb"),
        "DBT_TARGET_PATH": str(output / "dbt" / "target"),
        "DBT_LOG_PATH": str(output / "dbt" / "logs"),
    }


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


def query(warehouse: Path, sql: str) -> list[tuple[t.Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()
