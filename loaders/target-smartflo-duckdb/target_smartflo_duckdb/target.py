"""target-smartflo-duckdb: Singer records into a DuckDB file, one table per stream.

Built on the Singer SDK's SQL target, with duckdb-engine for SQLAlchemy. What it
changes from the SDK's defaults, and why:

- each batch goes to DuckDB as one newline-delimited JSON file read with
  ``read_json`` and the table's own column types, not row by row and never through
  CSV (whose header sniffing loses the first row of a batch in target-duckdb 0.8.0);
- upserts on the stream's key: the batch's rows replace those with the same key
  (the last record of a key in a batch wins); a stream without a key appends;
- objects and arrays are JSON columns, integers BIGINT, numbers DOUBLE, date-time
  strings TIMESTAMP WITH TIME ZONE;
- tables get no PRIMARY KEY constraint: SQLAlchemy's PostgreSQL dialect, which
  duckdb-engine builds on, makes an integer key a BIGSERIAL, a type DuckDB does not
  have; the upsert keeps keys unique itself.
"""

from __future__ import annotations

import json
import tempfile
import typing as t
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa
from singer_sdk import typing as th
from singer_sdk.sql import SQLConnector, SQLSink, SQLTarget
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.sql.connector import FullyQualifiedName, JSONSchemaToSQL


class DuckDBConnector(SQLConnector):
    """A DuckDB file through duckdb-engine."""

    @override
    def get_sqlalchemy_url(self, config: dict[str, t.Any]) -> str:
        Path(config["path"]).parent.mkdir(parents=True, exist_ok=True)
        return f"duckdb:///{config['path']}"

    @cached_property
    @override
    def jsonschema_to_sql(self) -> JSONSchemaToSQL:
        to_sql = super().jsonschema_to_sql
        to_sql.register_type_handler("integer", sa.BIGINT)
        to_sql.register_type_handler("number", sa.DOUBLE)
        to_sql.register_type_handler("object", sa.JSON)
        to_sql.register_type_handler("array", sa.JSON)
        to_sql.register_format_handler("date-time", lambda _: sa.TIMESTAMP(True))  # noqa: FBT003
        return to_sql

    @override
    def prepare_schema(self, schema_name: str) -> None:
        # duckdb-engine names schemas with their catalog ("file.schema"), so the
        # SDK's look-up misses an existing one.
        with self._connect() as connection, connection.begin():
            connection.exec_driver_sql(
                f"CREATE SCHEMA IF NOT EXISTS {quote(schema_name)}"
            )

    @override
    def create_empty_table(
        self,
        full_table_name: str | FullyQualifiedName,
        schema: dict,
        primary_keys: t.Sequence[str] | None = None,
        partition_keys: list[str] | None = None,
        as_temp_table: bool = False,
    ) -> None:
        # No key constraint (see the module docstring): the sink keeps keys unique.
        super().create_empty_table(
            full_table_name, schema, None, partition_keys, as_temp_table
        )

    @override
    def get_table_columns(
        self,
        full_table_name: str | FullyQualifiedName,
        column_names: list[str] | None = None,
    ) -> dict[str, sa.Column]:
        # SQLAlchemy's PostgreSQL reflection, which duckdb-engine inherits, asks for
        # catalog tables DuckDB does not have (pg_collation).
        wanted = {name.casefold() for name in column_names or ()}
        return {
            name: sa.Column(name, _sqlalchemy_type(kind))
            for name, kind in self.column_types(full_table_name).items()
            if not wanted or name.casefold() in wanted
        }

    def column_types(self, full_table_name: str | FullyQualifiedName) -> dict[str, str]:
        """The table's columns and their DuckDB types, in the table's order."""
        _, schema_name, table_name = self.parse_full_table_name(full_table_name)
        query = sa.text(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = :schema AND table_name = :table"
            " ORDER BY ordinal_position"
        )
        with self._connect() as connection:
            rows = connection.execute(
                query, {"schema": schema_name, "table": table_name}
            )
            return {str(row[0]): str(row[1]) for row in rows}


#: The SQLAlchemy type of each DuckDB type this target creates.
SQLALCHEMY_TYPES: dict[str, t.Callable[[], sa.types.TypeEngine]] = {
    "BIGINT": sa.BIGINT,
    "INTEGER": sa.INTEGER,
    "DOUBLE": sa.DOUBLE,
    "BOOLEAN": sa.BOOLEAN,
    "JSON": sa.JSON,
    "VARCHAR": sa.VARCHAR,
    "DATE": sa.DATE,
    "TIME": sa.TIME,
    "TIMESTAMP": sa.TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": lambda: sa.TIMESTAMP(timezone=True),
}


def _sqlalchemy_type(duckdb_type: str) -> sa.types.TypeEngine:
    if duckdb_type.startswith("DECIMAL"):
        return sa.DECIMAL()
    return SQLALCHEMY_TYPES.get(duckdb_type, sa.VARCHAR)()


class DuckDBSink(SQLSink[DuckDBConnector]):
    """One stream's table: each batch upserted on the stream's key."""

    connector_class = DuckDBConnector

    @override
    def process_batch(self, context: dict) -> None:
        records = [self.conform_record(record) for record in context["records"]]
        keys = list(self.key_properties)
        if keys:
            latest = {tuple(record.get(k) for k in keys): record for record in records}
            self.tally_duplicate_merged(len(records) - len(latest))
            records = list(latest.values())
        if not records:
            return
        types = self.connector.column_types(self.full_table_name)
        columns = ", ".join(quote(name) for name in types)
        spec = ", ".join(
            f"{literal(name)}: {literal(kind)}" for name, kind in types.items()
        )
        table = self.full_table_name
        # Names are quoted (quote, literal): the SQL is built from the stream's schema.
        statements = []
        if keys:
            match = " AND ".join(
                f"b.{quote(k)} IS NOT DISTINCT FROM t.{quote(k)}" for k in keys
            )
            statements.append(
                f"DELETE FROM {table} AS t WHERE EXISTS"  # noqa: S608
                f" (SELECT 1 FROM smartflo_batch AS b WHERE {match})"
            )
        statements += [
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM smartflo_batch",  # noqa: S608
            "DROP TABLE smartflo_batch",
        ]
        with tempfile.TemporaryDirectory(prefix="target-smartflo-duckdb-") as folder:
            batch = Path(folder) / "batch.jsonl"
            with batch.open("w", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record, default=_json_default) + "\n")
            read = (
                f"read_json({literal(str(batch))}, format = 'newline_delimited',"
                f" columns = {{{spec}}})"
            )
            with self.connector._connect() as connection, connection.begin():  # noqa: SLF001
                connection.exec_driver_sql(
                    f"CREATE OR REPLACE TEMP TABLE smartflo_batch AS FROM {read}"
                )
                for statement in statements:
                    connection.exec_driver_sql(statement)


def quote(identifier: str) -> str:
    """An identifier, quoted for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string literal for DuckDB."""
    return "'" + text.replace("'", "''") + "'"


def _json_default(value: object) -> str:
    """Times (the SDK parses date-time strings) as ISO 8601 with their offset."""
    isoformat = getattr(value, "isoformat", None)
    if isoformat is None:
        return str(value)
    return str(isoformat())


class TargetSmartfloDuckDB(SQLTarget):
    """Singer target for a DuckDB file."""

    name = "target-smartflo-duckdb"
    default_sink_class = DuckDBSink
    config_jsonschema = th.PropertiesList(
        th.Property(
            "path",
            th.StringType,
            required=True,
            description="The DuckDB file to load into (created, with its folder).",
        ),
    ).to_dict()


if __name__ == "__main__":
    TargetSmartfloDuckDB.cli()
