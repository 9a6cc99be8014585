"""The main job through Meltano: extract Smartflo into JSON Lines, show what came out.

Without credentials it runs against the bundled fake Smartflo API (sample data on a
real HTTP server on 127.0.0.1) in Meltano's ``demo`` environment: a full run, then a
few changes to the fake data and a second, incremental run. With
``TAP_SMARTFLO_API_TOKEN`` (or ``TAP_SMARTFLO_EMAIL`` and ``TAP_SMARTFLO_PASSWORD``)
set, it runs once against the real API in the default ``dev`` environment, carrying
on from the state earlier runs saved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from fake_smartflo import SAMPLE_ACCOUNT, TOKEN, FakeSmartflo

MELTANO = Path(sys.executable).with_name("meltano")
PROJECT = Path(__file__).resolve().parent.parent
JOB = ("tap-smartflo", "target-jsonl")
SAMPLE_CONTACTS = 1200
#: The fake account's rate limit, which the demo tells the tap (a tap left to learn
#: it spends its first seconds doing so: see docs/rate-limit-and-pages.md).
SAMPLE_LIMIT = 100
ROWS_SHOWN = 3
#: The fields shown of each record, when it has them.
SHOWN_FIELDS = (
    "id", "name", "did", "started_at", "direction", "status", "call_duration",
    "list_id", "updated_at", "deleted_at",
)  # fmt: skip


def meltano(*args: str, env: dict[str, str], quiet: bool, say: bool = True) -> str:
    """Run a meltano command in the project (saying it first); return its stdout.

    A quiet ``run`` prints the tap's closing summary lines from Meltano's log.
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
    return done.stdout or ""


def tap_lines(log: str) -> list[str]:
    """The tap's "Progress: ..." and "Summary: ..." lines, from Meltano's log."""
    found = (re.search(r"(Progress|Summary): .*", line) for line in log.splitlines())
    # Meltano appends its own fields (cmd_type=elb ...) to each line.
    return [re.split(r"\s+cmd_type=", m[0])[0].rstrip() for m in found if m]


def line_counts(folder: Path) -> dict[Path, int]:
    """Lines in each .jsonl file under ``folder``."""
    if not folder.is_dir():
        return {}
    return {
        path: sum(1 for _ in path.open(encoding="utf-8"))
        for path in sorted(folder.glob("*.jsonl"))
    }


def show_new_records(
    before: dict[Path, int], folder: Path, *, rows: int = ROWS_SHOWN
) -> dict[str, list[dict]]:
    """Print, per file, how many records this run wrote and the first few.

    Returns:
        The records this run wrote, by file name (the stream's, by default).
    """
    written: dict[str, list[dict]] = {}
    for path, count in line_counts(folder).items():
        lines = path.read_text(encoding="utf-8").splitlines()[before.get(path, 0) :]
        written[path.stem] = [json.loads(line) for line in lines]
        shown = _relative(path)
        print(f"  {path.stem}: {len(lines)} records written -> {shown} ({count} lines)")
        for record in written[path.stem][:rows]:
            show(record)
    if not written:
        print(f"  no records written under {_relative(folder)}")
    return written


def show(record: dict) -> None:
    """Print the telling fields of a record on one line."""
    fields = {k: record[k] for k in SHOWN_FIELDS if k in record} or record
    print("    " + textwrap.shorten(json.dumps(fields), 150, placeholder=" …"))


def _relative(path: Path) -> Path:
    return path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path


def destination(environment: str, env: dict[str, str]) -> Path:
    """Where target-jsonl writes in ``environment``, as Meltano resolves it."""
    printed = meltano(
        f"--environment={environment}", "config", "print", "target-jsonl",
        env=env, quiet=True, say=False,
    )  # fmt: skip
    return PROJECT / json.loads(printed)["destination_path"]


def has_credentials(env: dict[str, str]) -> bool:
    """Whether the environment names a real Smartflo account."""
    return bool(env.get("TAP_SMARTFLO_API_TOKEN")) or bool(
        env.get("TAP_SMARTFLO_EMAIL") and env.get("TAP_SMARTFLO_PASSWORD")
    )


def real_run(env: dict[str, str]) -> None:
    """One run against the real API, incremental after the first."""
    folder = destination("dev", env)
    before = line_counts(folder)
    meltano("run", *JOB, env=env, quiet=False)
    print("\nWhat this run extracted:")
    show_new_records(before, folder)
    state = meltano("state", "get", "dev:" + "-to-".join(JOB), env=env, quiet=True)
    print(f"\nState for the next run: {state.strip()}")


def demo_run(env: dict[str, str]) -> None:
    """A full run and an incremental run against the fake API."""
    environment, state_id = "demo", "demo:" + "-to-".join(JOB)
    folder = destination(environment, env)
    # Start afresh each time: the fake's data is the same on every start.
    for path in line_counts(folder):
        path.unlink()
    meltano("--environment=demo", "state", "clear", "--force", state_id,
            env=env, quiet=True, say=False)  # fmt: skip
    fake = FakeSmartflo(
        **{**SAMPLE_ACCOUNT, "contacts": SAMPLE_CONTACTS, "rate_limit": SAMPLE_LIMIT}
    )
    with fake as api:
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
        meltano(f"--environment={environment}", "run", *JOB, env=env, quiet=True)
        print("\nFirst run, everything:")
        show_new_records({}, folder)
        state = meltano(f"--environment={environment}", "state", "get", state_id,
                        env=env, quiet=True)  # fmt: skip
        print(f"\nMeltano saved the state: {state.strip()}")

        api.tick(3600)
        ids = list(api.store)
        changed = ids[:2]
        for contact_id in changed:
            api.touch(contact_id, name=f"Renamed {contact_id}")
        api.soft_delete(ids[2])
        added = api.add_contacts(5)
        print(
            f"\nAn hour later in Smartflo: {len(changed)} contacts renamed, 1 deleted,"
            f" {len(added)} added. Running again, from the saved state:"
        )
        before = line_counts(folder)
        meltano(f"--environment={environment}", "run", *JOB, env=env, quiet=True)
    print("\nSecond run, incremental: the changes")
    contacts = show_new_records(before, folder, rows=0).get("contacts", [])
    news = {*changed, ids[2], *added}
    print("  The changed contacts:")
    for record in contacts:
        if record["id"] in news:
            show(record)
    unchanged = len({record["id"] for record in contacts} - news)
    print(
        f"  Unchanged contacts written again: {unchanged}. The minutes before the"
        " previous bookmark were read again (lookback_minutes, for changes Smartflo"
        " commits late), but what the last run wrote was not written twice."
        "\n  (users, user_details, departments, ivrs, my_numbers, broadcast_lists,"
        " broadcast_leads, broadcasts, dialer_campaigns and dnd_leads have no usable"
        " timestamps, so every run reads them whole; call_records re-reads the last"
        " call_records_lookback_hours, for late recordings, and scheduled_callbacks"
        " the last scheduled_callbacks_lookback_days and the days ahead, emitting"
        " the callbacks that changed.)"
    )
    print(
        "\nNext: set TAP_SMARTFLO_API_TOKEN (or TAP_SMARTFLO_EMAIL and"
        " TAP_SMARTFLO_PASSWORD) and run scripts/demo again to extract your own"
        " account, or see 'Running it with Meltano' in README.md."
    )


def main() -> None:
    """Install the Meltano plugins, then run the demo or the real job."""
    env = dict(os.environ)
    meltano("install", env=env, quiet=False)
    if has_credentials(env):
        print("\nCredentials found in the environment: extracting from Smartflo.")
        real_run(env)
    else:
        print("\nNo Smartflo credentials set: extracting from the bundled fake API.")
        demo_run(env)


if __name__ == "__main__":
    main()
