"""The main job through Meltano: Smartflo into a DuckDB warehouse, then answers.

Without credentials it runs against the bundled fake Smartflo API (sample data on a
real HTTP server on 127.0.0.1) in Meltano's ``demo`` environment: a full run, then a
few changes to the fake data and a second, incremental run followed by the dbt
models (transform/). With ``TAP_SMARTFLO_API_TOKEN`` (or ``TAP_SMARTFLO_EMAIL`` and
``TAP_SMARTFLO_PASSWORD``) set, it runs once against the real API in the default
``dev`` environment, carrying on from the state earlier runs saved, then the models.
Either way it ends with a short report from the models and an HTML page beside the
DuckDB file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from fake_smartflo import SAMPLE_ACCOUNT, TOKEN, FakeSmartflo
from scripts import report

MELTANO = Path(sys.executable).with_name("meltano")
PROJECT = Path(__file__).resolve().parent.parent
JOB = ("tap-smartflo", "target-duckdb")
#: The dbt utility's command that runs the models and their tests (meltano.yml).
MODELS = "dbt:build"
#: The schema the streams are loaded into (the extractor's load_schema).
SCHEMA = "smartflo"
SAMPLE_CONTACTS = 1200
#: The fake account's rate limit, which the demo tells the tap (a tap left to learn
#: it spends its first seconds doing so: see docs/rate-limit-and-pages.md).
SAMPLE_LIMIT = 100
#: Calls that come in between the demo's two runs.
NEW_CALLS = 12


def meltano(*args: str, env: dict[str, str], quiet: bool, say: bool = True) -> str:
    """Run a meltano command in the project (saying it first); return its stdout.

    A quiet ``run`` prints the tap's closing summary lines and dbt's from the log.
    """
    if say:
        print(f"\n$ meltano {' '.join(args)}", flush=True)
    done = subprocess.run(
        [str(MELTANO), *args],
        cwd=PROJECT,
        env=env,
        text=True,
        capture_output=quiet,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode:
        if quiet:
            print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        sys.exit(f"meltano {' '.join(args)} failed (exit code {done.returncode})")
    if quiet and "run" in args:
        print("  What the tap logged of its progress, and its summary of the run:")
        for line in tap_lines(done.stderr or ""):
            print(f"    {line}")
        for line in dbt_lines(done.stderr or ""):
            print(f"  dbt: {line}")
    return done.stdout or ""


def tap_lines(log: str) -> list[str]:
    """The tap's "Progress: ..." and "Summary: ..." lines, from Meltano's log."""
    found = (re.search(r"(Progress|Summary): .*", line) for line in log.splitlines())
    # Meltano appends its own fields (cmd_type=elb ...) to each line.
    return [re.split(r"\s+cmd_type=", m[0])[0].rstrip() for m in found if m]


def dbt_lines(log: str) -> list[str]:
    """dbt's count of what it built and tested ("Done. PASS=... ERROR=0 ..")."""
    found = (re.search(r"Done\. PASS=.*", line) for line in log.splitlines())
    return [re.split(r"\s+cmd_type=", m[0])[0].rstrip() for m in found if m]


def _relative(path: Path) -> Path:
    return path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path


def warehouse(environment: str, env: dict[str, str]) -> Path:
    """The DuckDB file target-duckdb loads in ``environment`` (Meltano's answer)."""
    printed = meltano(
        f"--environment={environment}", "config", "print", "target-duckdb",
        env=env, quiet=True, say=False,
    )  # fmt: skip
    return PROJECT / json.loads(printed)["path"]


def show_tables(path: Path) -> dict[str, int]:
    """Print each stream's table: its rows (one per id); return the counts."""
    with duckdb.connect(str(path), read_only=True) as db:
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = ? ORDER BY table_name",
            [SCHEMA],
        ).fetchall()
        counts = {
            table: db.execute(
                f'SELECT count(*), count(DISTINCT id) FROM {SCHEMA}."{table}"'  # noqa: S608
            ).fetchone()
            or (0, 0)
            for (table,) in tables
        }
        updated_at = db.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = ?"
            " AND table_name = 'contacts' AND column_name = 'updated_at'",
            [SCHEMA],
        ).fetchone()
    print(f"  Tables in {_relative(path)}, schema {SCHEMA} (rows, distinct ids):")
    for table, (rows, ids) in counts.items():
        print(f"    {table:18} {rows:6} {ids:6}")
    if updated_at:
        print(f"  contacts.updated_at is {updated_at[0]} (UTC instants).")
    return {table: rows for table, (rows, _) in counts.items()}


def show_answers(path: Path) -> None:
    """Print the report from the models, write the HTML page, say how to look."""
    page = path.with_name("report.html")
    found = report.write(path, page)
    print("\nThe answers, from the dbt models (transform/) in schema analytics:")
    print(report.text(found))
    print(
        f"\nThe same as a page with a chart of calls per day: {_relative(page)}"
        f" (open it in a browser)."
        f"\nQuery the warehouse yourself (close it before the next run):"
        f"\n  duckdb {_relative(path)}   (DuckDB's CLI, if you have it), then:"
        f"\n    FROM {report.MODELS}.smartflo_calls_daily ORDER BY call_date_ist;"
        f'\n  .venv/bin/python -c "import duckdb;'
        f" print(duckdb.connect('{_relative(path)}', read_only=True)"
        f".sql('FROM {report.MODELS}.smartflo_missed_unreturned'))\""
    )


def has_credentials(env: dict[str, str]) -> bool:
    """Whether the environment names a real Smartflo account."""
    return bool(env.get("TAP_SMARTFLO_API_TOKEN")) or bool(
        env.get("TAP_SMARTFLO_EMAIL") and env.get("TAP_SMARTFLO_PASSWORD")
    )


@dataclass(frozen=True)
class HourOfChanges:
    """What changed in the sample account between the demo's two runs."""

    renamed: list[int]
    deleted: int
    added: list[int]
    #: The name of the department removed, and its id.
    removed_department: str
    removed_department_id: int


def sample_account(rate_limit: int | None = SAMPLE_LIMIT) -> FakeSmartflo:
    """The fake account the demo extracts: the same data on every start."""
    return FakeSmartflo(
        **{**SAMPLE_ACCOUNT, "contacts": SAMPLE_CONTACTS, "rate_limit": rate_limit}
    )


def change_sample_account(api: FakeSmartflo) -> HourOfChanges:
    """An hour in the sample account: contacts renamed, deleted and added, a
    department removed, calls made (the same changes on every start)."""
    api.tick(3600)
    ids = list(api.store)
    for contact_id in ids[:2]:
        api.touch(contact_id, name=f"Renamed {contact_id}")
    api.soft_delete(ids[2])
    added = api.add_contacts(5)
    removed = max(api.department_store)
    gone = api.department_store[removed].name
    api.remove_department(removed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    api.add_calls(NEW_CALLS, between=(now - timedelta(minutes=50), now))
    return HourOfChanges(ids[:2], ids[2], added, gone, removed)


def real_run(env: dict[str, str]) -> None:
    """One run against the real API, incremental after the first, then the models."""
    path = warehouse("dev", env)
    meltano("run", *JOB, MODELS, env=env, quiet=False)
    print("\nWhat the warehouse holds:")
    show_tables(path)
    show_answers(path)
    state = meltano("state", "get", "dev:" + "-to-".join(JOB), env=env, quiet=True)
    print(f"\nState for the next run: {state.strip()}")


def demo_run(env: dict[str, str]) -> None:
    """A full run and an incremental run against the fake API, then the models."""
    environment, state_id = "demo", "demo:" + "-to-".join(JOB)
    path = warehouse(environment, env)
    # Start afresh each time: the fake's data is the same on every start.
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    with sample_account() as api:
        env = {
            **env,
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            "TAP_SMARTFLO_ACCOUNT_REQUESTS_PER_SECOND": str(SAMPLE_LIMIT),
        }
        leads = sum(len(leads) for leads in api.lead_store.values())
        print(
            f"\nFake Smartflo API at {api.url} with {SAMPLE_CONTACTS} contacts,"
            f" {len(api.group_store)} contact groups, {len(api.call_store)} call"
            f" records, {len(api.user_store)} users, {len(api.department_store)}"
            f" departments, {len(api.ivr_store)} IVRs, {len(api.number_store)}"
            f" numbers, {len(api.list_store)} broadcast lists of {leads} leads,"
            f" {len(api.broadcast_store)} broadcasts, {len(api.campaign_store)}"
            f" dialer campaigns, {len(api.callback_store)} scheduled callbacks and"
            f" {len(api.dnd_list_store)} DND lists of {len(api.dnd_lead_store)}"
            " numbers. It allows {SAMPLE_LIMIT} requests a second, which"
            " the demo tells the tap (account_requests_per_second); the tap takes"
            " half (rate_limit_share) and leaves the rest to the account's other users."
        )
        # --full-refresh: whatever state an earlier demo saved, read everything.
        meltano(f"--environment={environment}", "run", "--full-refresh", *JOB,
                env=env, quiet=True)  # fmt: skip
        print("\nFirst run, everything:")
        show_tables(path)
        state = meltano(f"--environment={environment}", "state", "get", state_id,
                        env=env, quiet=True)  # fmt: skip
        print(f"\nMeltano saved the state: {state.strip()}")

        hour = change_sample_account(api)
        changed, deleted, gone = hour.renamed, hour.deleted, hour.removed_department
        print(
            f"\nAn hour later in Smartflo: {len(changed)} contacts renamed, 1 deleted,"
            f" {len(hour.added)} added; department {gone!r} removed; {NEW_CALLS} new"
            " calls. Running again, from the saved state, then the models:"
        )
        meltano(f"--environment={environment}", "run", *JOB, MODELS,
                env=env, quiet=True)  # fmt: skip
    print("\nSecond run, incremental: the changes upserted, one row per id")
    show_tables(path)
    with duckdb.connect(str(path), read_only=True) as db:
        rows = db.execute(
            f"""
            SELECT id, name, strftime(updated_at, '%Y-%m-%dT%H:%M:%SZ'),
                   deleted_at IS NOT NULL
            FROM {SCHEMA}.contacts WHERE list_contains(?, id) ORDER BY id
            """,  # noqa: S608 (a constant schema)
            [[*changed, deleted]],
        ).fetchall()
    print("  The changed contacts (id, name, updated_at, deleted):")
    for row in rows:
        print(f"    {row}")
    print(
        f"  Department {gone!r} is gone from departments: users, user_details,"
        " departments, ivrs, my_numbers, broadcast_lists, broadcast_leads,"
        " broadcasts, dialer_campaigns and dnd_leads are read whole every run,"
        " and rows Smartflo no longer sends are deleted (ACTIVATE_VERSION,"
        " hard_delete). Its calls stay, and name a department departments no"
        " longer lists: the one dbt test that warns (WARN=1) says so."
    )
    show_answers(path)
    print(
        "\nNext: set TAP_SMARTFLO_API_TOKEN (or TAP_SMARTFLO_EMAIL and"
        " TAP_SMARTFLO_PASSWORD) and run scripts/demo again to load your own"
        " account into output/warehouse.duckdb, or see 'Running it with Meltano'"
        " in README.md (PostgreSQL: docs/warehouse.md)."
    )


def main() -> None:
    """Install the Meltano plugins, then run the demo or the real job."""
    env = dict(os.environ)
    print(
        "Installing the Meltano plugins (the tap, target-duckdb, dbt) into .meltano/",
        flush=True,
    )
    meltano("install", env=env, quiet=False)
    if has_credentials(env):
        print("\nCredentials found in the environment: extracting from Smartflo.")
        real_run(env)
    else:
        print("\nNo Smartflo credentials set: extracting from the bundled fake API.")
        demo_run(env)


if __name__ == "__main__":
    main()
