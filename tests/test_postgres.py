"""End to end into a real PostgreSQL: ``meltano run tap-smartflo target-postgres``.

Needs a PostgreSQL server reachable with the libpq variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD) whose role may create databases: ``eval "$(scripts/postgres)"`` installs
and starts one. Without a server the test is skipped, except in CI (CI=true), where
``.ci/run`` starts one and a missing server is a failure.
"""

from __future__ import annotations

import os
import typing as t
import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg import sql

from fake_smartflo import MIXED_LABELS, TOKEN, FakeSmartflo
from tests.configs import FAKE_ACCOUNT_ENV
from tests.labels import MIXED_COLUMNS, expected_columns

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from fake_smartflo import Contact
    from tests.meltano_runner import Meltano

UTC = timezone.utc
STATE_ID = "dev:tap-smartflo-to-target-postgres"
TIME_COLUMNS = ("created_at", "updated_at", "deleted_at")
#: Every stream's table but contacts'.
OTHER_TABLES = (
    "contact_groups",
    "call_records",
    "users",
    "departments",
    "ivrs",
    "my_numbers",
    "broadcast_lists",
    "broadcast_leads",
    "broadcasts",
    "dialer_campaigns",
)


@pytest.fixture
def database() -> Iterator[str]:
    """A new, empty database whose default time zone is not UTC (IST)."""
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide PostgreSQL (.ci/run starts it): {exc}")
        pytest.skip(f"no PostgreSQL server reachable; see scripts/postgres ({exc})")
    name = f"tap_smartflo_e2e_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Rows must hold the right instants whatever the server's or the database's
        # time zone: meltano.yml pins the loader's session to UTC.
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET timezone TO 'Asia/Kolkata'").format(
                sql.Identifier(name)
            )
        )
        try:
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


def loader_env(database: str) -> dict[str, str]:
    """target-postgres settings for the test database, as a user would set them."""
    return {
        "TARGET_POSTGRES_HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "TARGET_POSTGRES_PORT": os.environ.get("PGPORT", "5432"),
        "TARGET_POSTGRES_USER": os.environ.get("PGUSER", "postgres"),
        "TARGET_POSTGRES_PASSWORD": os.environ.get("PGPASSWORD", ""),
        "TARGET_POSTGRES_DATABASE": database,
    }


def rows(database: str) -> dict[int, dict[str, t.Any]]:
    """Every row of smartflo.contacts by id, times read as UTC instants."""
    with psycopg.connect(dbname=database) as connection:
        cursor = connection.execute(
            "SELECT *, created_at AT TIME ZONE 'UTC' AS created_at_utc,"
            " updated_at AT TIME ZONE 'UTC' AS updated_at_utc,"
            " deleted_at AT TIME ZONE 'UTC' AS deleted_at_utc"
            " FROM smartflo.contacts"
        )
        names = [column.name for column in cursor.description or []]
        found = [dict(zip(names, row, strict=True)) for row in cursor]
    by_id = {row["id"]: row for row in found}
    assert len(by_id) == len(found), "duplicate ids in smartflo.contacts"
    return by_id


def other_streams(api: FakeSmartflo) -> dict[str, set[str]]:
    """The keys of the other streams' records, as text."""
    return {
        "contact_groups": {str(key) for key in api.group_store},
        "call_records": {str(key) for key in api.call_store},
        "users": {str(key) for key in api.user_store},
        "departments": {str(key) for key in api.department_store},
        "ivrs": {str(key) for key in api.ivr_store},
        "my_numbers": {str(key) for key in api.number_store},
        "broadcast_lists": {str(key) for key in api.list_store},
        "broadcast_leads": {
            lead.id for leads in api.lead_store.values() for lead in leads
        },
        "broadcasts": set(api.broadcast_store),
        "dialer_campaigns": {str(key) for key in api.campaign_store},
    }


def other_tables(database: str) -> dict[str, set[str]]:
    """The ids in the other streams' tables, as text; no id may repeat."""
    found = {}
    with psycopg.connect(dbname=database) as connection:
        for table in OTHER_TABLES:
            query = sql.SQL("SELECT id::text FROM smartflo.{}").format(
                sql.Identifier(table)
            )
            ids = [row[0] for row in connection.execute(query)]
            assert len(ids) == len(set(ids)), f"duplicate ids in {table}"
            found[table] = set(ids)
    return found


def text_columns(database: str, prefix: str) -> list[str]:
    """The text columns of smartflo.contacts whose names start with ``prefix``."""
    with psycopg.connect(dbname=database) as connection:
        found = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'smartflo' AND table_name = 'contacts'"
            " AND column_name LIKE %s",
            (prefix.replace("_", "\\_") + "%",),
        ).fetchall()
    assert {data_type for _, data_type in found} <= {"text"}, found
    return sorted(name for name, _ in found)


def scalar(database: str, query: str) -> t.Any:
    with psycopg.connect(dbname=database) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def assert_row_is(row: dict[str, t.Any], contact: Contact) -> None:
    for name in ("name", "email_id", "phone_number", "contact_group_id"):
        assert row[name] == getattr(contact, name), (contact.id, name)
    # Each custom field in its own text column (null where the contact has none).
    found = {name: row[name] for name in MIXED_COLUMNS}
    assert found == expected_columns(contact), contact.id
    for name in TIME_COLUMNS:
        expected = getattr(contact, name)
        # Stored as UTC wall-clock time in timestamp columns: the same instant.
        stored = row[f"{name}_utc"]
        assert stored == expected, (contact.id, name, stored, expected)


def assert_the_models_build_on_postgres(
    meltano: Meltano, database: str, folder: Path, calls: int
) -> None:
    """The dbt models the demo builds in DuckDB, built and tested by dbt-postgres on
    what target-postgres loaded (transform/profiles.yml, target postgres)."""
    meltano.ok(
        "invoke", "dbt:build", DBT_TARGET="postgres", PGDATABASE=database,
        DBT_TARGET_PATH=str(folder / "dbt"), DBT_LOG_PATH=str(folder / "dbt"),
    )  # fmt: skip
    daily = "SELECT sum(calls) FROM analytics.smartflo_calls_daily"
    assert scalar(database, daily) == calls


def test_meltano_run_into_postgres_upserts_soft_deletes_and_removes_what_is_gone(
    database: str, meltano: Meltano, tmp_path: Path
):
    with FakeSmartflo(
        contacts=500,
        contact_groups=6,
        calls=80,
        users=12,
        departments=4,
        ivrs=2,
        numbers=2,
        broadcast_lists=2,
        leads_per_list=3,
        broadcasts=4,
        dialer_campaigns=2,
        custom_labels=MIXED_LABELS,
    ) as api:
        env = {
            "TAP_SMARTFLO_API_URL": api.url,
            "TAP_SMARTFLO_API_TOKEN": TOKEN,
            **FAKE_ACCOUNT_ENV,
            # Rows of full-table streams that a complete run did not send are gone.
            "TARGET_POSTGRES_HARD_DELETE": "true",
            **loader_env(database),
        }
        meltano.ok("run", "tap-smartflo", "target-postgres", **env)
        first = rows(database)
        assert text_columns(database, "cf_") == MIXED_COLUMNS
        assert all(other_streams(api).values())
        assert other_tables(database) == other_streams(api)
        assert first.keys() == api.store.keys()
        for contact in api.store.values():
            assert_row_is(first[contact.id], contact)

        api.tick(3600)
        renamed, moved, deleted = list(api.store)[:3]
        api.touch(renamed, name="Renamed Contact", email_id="renamed@example.com")
        api.touch(moved, contact_group_id=39665, contact_group_name="Customers")
        api.soft_delete(deleted)
        added = api.add_contacts(4)
        removed = min(api.department_store)
        api.remove_department(removed)
        api.requests.clear()
        meltano.ok("run", "smartflo-to-postgres", **env)
        sent = [r.params for r in api.requests_to("/v1/contacts")]

    assert sent, "the second run made no request"
    # Every stream lands as its own table, one row per record however often re-read
    # (users in full each run, call records over their lookback hours), and the
    # department removed in Smartflo is gone from its table, the others kept.
    tables = other_tables(database)
    assert tables == other_streams(api)
    assert str(removed) not in tables["departments"]
    assert len(tables["departments"]) == 3
    assert all("updated_after" in params for params in sent), "not incremental"
    second = rows(database)
    # One row per contact ever seen, none twice; soft-deleted contacts stay as rows.
    assert second.keys() == api.store.keys()
    assert set(added) <= second.keys()
    for contact in api.store.values():
        assert_row_is(second[contact.id], contact)
    assert second[renamed]["name"] == "Renamed Contact"
    assert second[moved]["contact_group_name"] == "Customers"
    assert first[deleted]["deleted_at"] is None
    assert second[deleted]["deleted_at"] is not None
    live = {i for i, c in api.store.items() if c.deleted_at is None}
    assert {i for i, row in second.items() if row["deleted_at"] is None} == live
    assert len(live) == len(api.store) - 1
    # What docs/postgres.md tells users: the deletion is in deleted_at, not
    # _sdc_deleted_at, and a view over deleted_at IS NULL lists the live contacts.
    assert all(row["_sdc_deleted_at"] is None for row in second.values())
    view = (
        "CREATE VIEW smartflo.live_contacts AS"
        " SELECT * FROM smartflo.contacts WHERE deleted_at IS NULL"
    )
    with psycopg.connect(dbname=database) as connection:
        connection.execute(view)
        found = connection.execute("SELECT id FROM smartflo.live_contacts").fetchall()
    assert {row[0] for row in found} == live
    # The primary key the target made is what keeps it at one row per contact.
    key = scalar(
        database,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'smartflo.contacts'::regclass AND contype = 'p'",
    )
    assert key == "PRIMARY KEY (id)"
    # ... in a database whose sessions would otherwise convert to IST.
    settings = scalar(
        database,
        "SELECT setconfig FROM pg_db_role_setting WHERE setdatabase ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert settings == ["TimeZone=Asia/Kolkata"]
    state = meltano.state(STATE_ID)["singer_state"]["bookmarks"]["contacts"]
    assert datetime.fromisoformat(state["replication_key_value"]) == (
        api.newest_updated_at
    )
    assert_the_models_build_on_postgres(
        meltano, database, tmp_path, len(api.call_store)
    )


def test_two_accounts_load_into_their_own_schemas_with_their_own_state(
    database: str, meltano: Meltano
):
    # Two accounts of one group, each an extractor that inherits tap-smartflo
    # (meltano.yml), run as separate jobs into one database.
    with (
        FakeSmartflo(contacts=30, users=4, seed=1) as north,
        FakeSmartflo(contacts=20, users=3, departments=3, seed=2) as south,
    ):
        env = {
            "TAP_SMARTFLO__NORTH_API_URL": north.url,
            "TAP_SMARTFLO__NORTH_API_TOKEN": TOKEN,
            "TAP_SMARTFLO__SOUTH_API_URL": south.url,
            "TAP_SMARTFLO__SOUTH_API_TOKEN": TOKEN,
            **loader_env(database),
        }
        meltano.ok("run", "smartflo-north-to-postgres", **env)
        meltano.ok("run", "smartflo-south-to-postgres", **env)
        south.add_contacts(2)
        removed = min(south.department_store)
        south.remove_department(removed)
        meltano.ok("run", "smartflo-south-to-postgres", **env)
    for account, api in (("north", north), ("south", south)):
        schema = f"smartflo_{account}"
        with psycopg.connect(dbname=database) as connection:
            contacts = connection.execute(
                sql.SQL("SELECT id FROM {}.contacts").format(sql.Identifier(schema))
            ).fetchall()
            users = connection.execute(
                sql.SQL("SELECT id FROM {}.users").format(sql.Identifier(schema))
            ).fetchall()
        assert sorted(row[0] for row in contacts) == sorted(api.store), account
        assert sorted(row[0] for row in users) == sorted(api.user_store), account
        state = meltano.state(f"dev:tap-smartflo--{account}-to-target-postgres")
        bookmark = state["singer_state"]["bookmarks"]["contacts"]
        assert datetime.fromisoformat(bookmark["replication_key_value"]) == (
            api.newest_updated_at
        )
    # Without hard_delete, the department removed in Smartflo stays as a row marked
    # removed (_sdc_deleted_at), the others unmarked.
    with psycopg.connect(dbname=database) as connection:
        marked = connection.execute(
            "SELECT id, _sdc_deleted_at IS NOT NULL FROM smartflo_south.departments"
        ).fetchall()
    assert dict(marked) == {i: i == removed for i in [removed, *south.department_store]}
    # Nothing went to the main account's schema either.
    schemas = "SELECT count(*) FROM information_schema.schemata WHERE schema_name = "
    assert scalar(database, schemas + "'smartflo'") == 0
