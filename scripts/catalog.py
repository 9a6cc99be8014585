"""The tap's catalog with only some streams selected, as a user would edit it.

Tests and benchmarks select streams (and leave out properties) with these functions.
By hand, to sync contacts and users only:

    .venv/bin/python -m scripts.catalog contacts users > catalog.json
    .venv/bin/tap-smartflo --config config.json --catalog catalog.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

from scripts.environment import clean_env

Catalog = dict[str, t.Any]


def discover() -> Catalog:
    """The catalog ``tap-smartflo --discover`` prints, without custom-field columns.

    Those come from an account's contact groups: this discovery asks no server.
    """
    with tempfile.TemporaryDirectory() as workdir:
        config = Path(workdir) / "config.json"
        settings = {
            "api_url": "http://127.0.0.1:9",
            "api_token": "-",
            "custom_fields_as_columns": False,
        }
        config.write_text(json.dumps(settings))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tap_smartflo",
                "--config",
                str(config),
                "--discover",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        )
    return t.cast("Catalog", json.loads(done.stdout))


def select_streams(catalog: Catalog, streams: t.Iterable[str]) -> Catalog:
    """Select ``streams`` in ``catalog`` and deselect the others (in place)."""
    wanted = set(streams)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def selected_by_default(catalog: Catalog) -> list[str]:
    """The streams a run extracts when nothing is selected (not call_recordings)."""
    return [
        entry["tap_stream_id"]
        for entry in catalog["streams"]
        for item in entry["metadata"]
        if item["breadcrumb"] == [] and item["metadata"].get("selected-by-default")
    ]


def deselect_properties(
    catalog: Catalog, stream: str, properties: t.Iterable[str]
) -> Catalog:
    """Leave ``properties`` of ``stream`` out of ``catalog``'s selection (in place)."""
    left_out = [["properties", name] for name in properties]
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == stream)
    for item in entry["metadata"]:
        if item["breadcrumb"] in left_out:
            item["metadata"]["selected"] = False
    return catalog


def main() -> None:
    """Print the catalog with only the streams named on the command line selected."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("streams", nargs="+", metavar="stream")
    args = parser.parse_args()
    catalog = discover()
    known = {entry["tap_stream_id"] for entry in catalog["streams"]}
    if unknown := set(args.streams) - known:
        parser.error(
            f"unknown stream(s) {sorted(unknown)}; the tap has {sorted(known)}"
        )
    print(json.dumps(select_streams(catalog, args.streams), indent=2))


if __name__ == "__main__":
    main()
