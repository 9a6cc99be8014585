"""ACTIVATE_VERSION: sent after a full-table stream was read whole, never before its
records, and never for a stream this run did not read whole.

A target that receives it removes (or marks removed) every row of an older version:
sent before the records, it would empty the table until they arrive; sent after a
partial read, it would remove rows that still exist in Smartflo.
"""

from __future__ import annotations

import gzip
import json
import typing as t
from pathlib import Path

from fake_smartflo import FakeSmartflo
from tests.configs import FAST_RETRIES, STREAM_PATHS, base_config

if t.TYPE_CHECKING:
    from tests.messages import TapRun

INCREMENTAL = (
    "contacts",
    "contact_groups",
    "dnd_lists",
    "scheduled_callbacks",
    "call_records",
)
FULL_TABLE = tuple(stream for stream in STREAM_PATHS if stream not in INCREMENTAL)


def account(**options: t.Any) -> FakeSmartflo:
    """A small account with a few records in every stream."""
    return FakeSmartflo(
        contacts=30,
        contact_groups=3,
        calls=10,
        users=5,
        departments=3,
        ivrs=2,
        numbers=2,
        broadcast_lists=2,
        leads_per_list=2,
        broadcasts=5,
        dialer_campaigns=2,
        dnd_lists=2,
        dnd_leads_per_list=2,
        callbacks=5,
        **options,
    )


def of(run: TapRun, stream: str, kind: str | None = None) -> list[dict[str, t.Any]]:
    """The messages of ``stream`` (of one ``kind``), in order."""
    return [
        m
        for m in run.messages
        if m.get("stream") == stream and kind in {None, m["type"]}
    ]


def activations(run: TapRun) -> dict[str, list[int]]:
    """The versions each stream's ACTIVATE_VERSION messages named."""
    found: dict[str, list[int]] = {}
    for message in run.messages:
        if message["type"] == "ACTIVATE_VERSION":
            found.setdefault(message["stream"], []).append(message["version"])
    return found


def test_each_full_table_stream_is_activated_once_after_its_last_record(tap):
    with account() as api:
        first = tap(base_config(api.url))
        second = tap(base_config(api.url), state=first.final_state)
    assert first.returncode == second.returncode == 0, first.stderr
    for stream in FULL_TABLE:
        kinds = [m["type"] for m in of(first, stream)]
        assert kinds.count("ACTIVATE_VERSION") == 1, stream
        assert kinds[-1] == "ACTIVATE_VERSION", stream  # after every record
        records = of(first, stream, "RECORD")
        assert records, stream
        # Every record carries the version the message then activates.
        assert {m["version"] for m in records} == set(activations(first)[stream])
    # One version per run, the same for every stream, and a later run's is newer.
    (version,) = {v for versions in activations(first).values() for v in versions}
    (newer,) = {v for versions in activations(second).values() for v in versions}
    assert newer > version
    assert set(activations(first)) == set(FULL_TABLE)
    # Incremental streams never: a run sends only what changed.
    for stream in INCREMENTAL:
        assert all("version" not in m for m in of(first, stream, "RECORD"))


def test_without_the_setting_no_version_is_sent(tap):
    with account() as api:
        run = tap(base_config(api.url, emit_activate_version_messages=False))
    assert run.returncode == 0, run.stderr
    assert activations(run) == {}
    assert all("version" not in m for m in run.messages if m["type"] == "RECORD")


def failing_second_broadcasts_page(body: t.Any) -> t.Any:
    if isinstance(body, dict) and "broadcast_limit" in body and body["page"] == 2:
        return {"success": False, "message": "Server busy"}
    return body


def test_a_stream_not_read_whole_is_never_activated(tap):
    streams = ("departments", "broadcast_lists", "broadcast_leads", "broadcasts")
    with account(
        broken_leads_lists=frozenset({4402}),
        body_filter=failing_second_broadcasts_page,
    ) as api:
        config = base_config(api.url, page_size=2, **FAST_RETRIES)
        failed = tap(config, streams=streams)
        api.features_off = frozenset({"dialer"})
        refused = tap(config, streams=["departments", "dialer_campaigns"])
    assert failed.returncode == 1
    # Read whole: activated. One list's leads unread, broadcasts failing on their
    # second page (after the first page's records went out): not activated.
    assert set(activations(failed)) == {"departments", "broadcast_lists"}
    assert of(failed, "broadcast_leads", "RECORD")
    assert len(of(failed, "broadcasts", "RECORD")) == 2
    # Refused: skipped, not activated (an empty read is not an empty table).
    assert refused.returncode == 0, refused.stderr
    assert set(activations(refused)) == {"departments"}


def batch_rows(message: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The records in one BATCH message's files (jsonl, gzip or not)."""
    rows = []
    for url in message["manifest"]:
        path = Path(url.removeprefix("file://"))
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rt") as lines:
            rows += [json.loads(line) for line in lines]
    return rows


def test_batch_files_carry_no_version_so_none_is_activated(tap, tmp_path):
    # The SDK writes BATCH files without a version: activating one would tell the
    # target that every row it holds is gone. The summary still counts the rows.
    storage = {"root": f"file://{tmp_path}", "prefix": "batch-"}
    encoding = {"format": "jsonl", "compression": "gzip"}
    with account() as api:
        run = tap(
            base_config(
                api.url, batch_config={"encoding": encoding, "storage": storage}
            )
        )
    assert run.returncode == 0, run.stderr
    assert activations(run) == {}
    batches = [m for m in run.messages if m["type"] == "BATCH"]
    rows: dict[str, int] = {}
    for message in batches:
        rows[message["stream"]] = rows.get(message["stream"], 0) + len(
            batch_rows(message)
        )
    assert set(rows) >= set(FULL_TABLE)
    for stream, count in rows.items():
        assert f"Summary: {stream}: {count} record" in run.stderr, stream
