"""Extract from the fake Smartflo API into output/, and show what came out."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fake_smartflo import FakeSmartflo
from tests.tap_runner import base_config, clean_env

OUTPUT = Path("output")


def main() -> None:
    OUTPUT.mkdir(exist_ok=True)
    fake = FakeSmartflo(contacts=1200, contact_groups=12, calls=500, users=40)
    with fake as api, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps(base_config(api.url)))
        print(f"Fake Smartflo API at {api.url}; running tap-smartflo ...")
        done = subprocess.run(
            [sys.executable, "-m", "tap_smartflo", "--config", str(config)],
            capture_output=True,
            text=True,
            env=clean_env(),
            check=False,
        )
    if done.returncode:
        print(done.stderr[-2000:])
        sys.exit(done.returncode)
    records: dict[str, list[dict]] = collections.defaultdict(list)
    state = None
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records[message["stream"]].append(message["record"])
        elif message["type"] == "STATE":
            state = message["value"]
    for stream, rows in records.items():
        path = OUTPUT / f"{stream}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"\n{stream}: {len(rows)} records -> {path}")
        for row in rows[:3]:
            print("  ", json.dumps(row)[:160])
    print(f"\nFinal state: {json.dumps(state)}")


if __name__ == "__main__":
    main()
