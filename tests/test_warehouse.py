"""target-duckdb (loaders/target-smartflo-duckdb) keeps every record the tap emits.

The evidence the loader was chosen on: the tap's messages for the sample account,
loaded through ``meltano invoke target-duckdb`` as meltano.yml configures it, give
every stream a table with exactly one row per id the tap emitted (target-duckdb
0.8.0 loses the first row of every batch, with exit code 0). A second run, after
changes in the fake, upserts on the key and removes what Smartflo removed.
"""

from __future__ import annotations

import subprocess
import typing as t
from dataclasses import dataclass

import duckdb
import pytest

from fake_smartflo import SAMPLE_ACCOUNT, FakeSmartflo
from tests.configs import REPO, base_config
from tests.meltano_runner import MELTANO
from tests.running import run_tap

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.meltano_runner import Meltano
    from tests.messages import TapRun

SCHEMA = "smartflo"


@dataclass
class Loaded:
    """The warehouse after each of two loads, and what the tap emitted for each."""

    warehouse: Path
    first: TapRun
    first_ids: dict[str, list[str]]
    second: TapRun
    second_ids: dict[str, list[str]]
    api: FakeSmartflo
    renamed: int
    removed_department: int
    added: list[int]


def emitted_ids(run: TapRun) -> dict[str, set[str]]:
    """The distinct ids of each stream's records the tap emitted, as text."""
    found: dict[str, set[str]] = {}
    for message in run.messages:
        if message["type"] == "SCHEMA":
            assert message["key_properties"] == ["id"], message["stream"]
            found.setdefault(message["stream"], set())
        elif message["type"] == "RECORD":
            found[message["stream"]].add(str(message["record"]["id"]))
    return found


def table_ids(warehouse: Path) -> dict[str, list[str]]:
    """The id of every row of every table in the schema, as text."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [SCHEMA],
        ).fetchall()
        return {
            table: [
                row[0]
                for row in db.execute(
                    f'SELECT CAST(id AS VARCHAR) FROM {SCHEMA}."{table}"'  # noqa: S608
                ).fetchall()
            ]
            for (table,) in tables
        }


def load(meltano: Meltano, run: TapRun) -> None:
    """Pipe the tap's messages into target-duckdb, as ``meltano run`` would."""
    assert run.returncode == 0, run.stderr[-3000:]
    done = subprocess.run(
        [str(MELTANO), "invoke", "target-duckdb"],
        cwd=REPO,
        env=meltano.environ(),
        input=run.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]


@pytest.fixture(scope="module")
def loaded(
    meltano_installed: Meltano, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[Loaded]:
    folder = tmp_path_factory.mktemp("warehouse")
    warehouse = folder / "warehouse.duckdb"
    meltano = meltano_installed.with_database(
        folder / "meltano.db",
        TARGET_DUCKDB_PATH=str(warehouse),
        # meltano run gives the extractor's load_schema; invoke has no extractor.
        TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA=SCHEMA,
    )
    with FakeSmartflo(**SAMPLE_ACCOUNT) as api:
        config = base_config(api.url)
        first = run_tap(config, workdir=folder)
        load(meltano, first)
        first_ids = table_ids(warehouse)
        api.tick(3600)
        renamed = next(iter(api.store))
        api.touch(renamed, name="Renamed Contact")
        removed = min(api.department_store)
        api.remove_department(removed)
        added = api.add_contacts(3)
        second = run_tap(config, workdir=folder, state=first.final_state)
        load(meltano, second)
        yield Loaded(
            warehouse, first, first_ids, second, table_ids(warehouse), api, renamed,
            removed, added,
        )  # fmt: skip


def test_every_stream_has_one_row_per_id_the_tap_emitted(loaded: Loaded):
    emitted = emitted_ids(loaded.first)
    assert len(emitted) == 15  # every stream but call_recordings (off by default)
    assert all(emitted.values())
    assert loaded.first_ids.keys() == emitted.keys()
    for stream, ids in emitted.items():
        rows = loaded.first_ids[stream]
        # One row lost (the first of a batch) or one twice fails here.
        assert len(rows) == len(ids), stream
        assert set(rows) == ids, stream


def test_a_second_run_upserts_on_the_key_and_removes_what_smartflo_removed(
    loaded: Loaded,
):
    api = loaded.api
    tables = loaded.second_ids
    # Contacts: the incremental run's changes upserted, one row per contact.
    assert sorted(tables["contacts"]) == sorted(str(i) for i in api.store)
    assert {str(i) for i in loaded.added} <= set(tables["contacts"])
    assert len(emitted_ids(loaded.second)["contacts"]) < len(api.store)
    # Full-table streams, read whole again: the same rows, and the department
    # removed in Smartflo is gone (hard_delete on ACTIVATE_VERSION).
    assert sorted(tables["departments"]) == sorted(str(i) for i in api.department_store)
    assert str(loaded.removed_department) not in tables["departments"]
    for stream, ids in tables.items():
        assert len(ids) == len(set(ids)), stream
        if stream not in {"contacts", "departments"}:
            assert sorted(ids) == sorted(loaded.first_ids[stream]), stream
    with duckdb.connect(str(loaded.warehouse), read_only=True) as db:
        name = db.execute(
            f"SELECT name FROM {SCHEMA}.contacts WHERE id = ?",  # noqa: S608
            [loaded.renamed],
        ).fetchone()
    assert name == ("Renamed Contact",)


def test_times_are_utc_instants_and_nested_values_json(loaded: Loaded):
    with duckdb.connect(str(loaded.warehouse), read_only=True) as db:
        types = dict(
            db.execute(
                "SELECT table_name || '.' || column_name, data_type"
                " FROM information_schema.columns WHERE table_schema = ?",
                [SCHEMA],
            ).fetchall()
        )
        times = dict(
            db.execute("SELECT id, epoch(updated_at) FROM smartflo.contacts").fetchall()
        )
        circle = db.execute(
            "SELECT DISTINCT circle ->> 'operator' FROM smartflo.call_records"
        ).fetchall()
    assert types["contacts.updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["call_records.started_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["contacts.custom_fields"] == "JSON"
    assert types["departments.agents"] == "JSON"
    assert types["users.agent"] == "JSON"
    assert types["contacts.id"] == "BIGINT"
    for contact in loaded.api.store.values():
        assert times[contact.id] == contact.updated_at.timestamp(), contact.id
    assert circle == [("Airtel",)]
