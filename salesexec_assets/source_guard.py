"""The warehouse knows its source: each schema records which SalesExec source it holds.

A run whose source (the embedded sandbox, or an account's base URL and user name)
differs from the one its schema recorded is refused before anything is written. This
keeps the sandbox's demo data out of a real account's tables (a deployment that lost its
credentials falls back to the sandbox) and two accounts from mixing in one schema. A
fresh schema records its source on its first write; ``salesexec reset-source --schema X``
forgets it, for a deliberate switch.

Works through the warehouse interface alone (``query``, ``table_columns`` and
``upsert``), so it guards every destination the same way: the record is one row per
schema, the newest wins, and a reset records "no source".
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from dagster import Failure

from salesexec_assets.resources import SalesExecResource
from salesexec_assets.warehouse import ColumnType, RowStage, TableSpec, Warehouse

SOURCE_TABLE = "_salesexec_source"
SANDBOX_SOURCE = "embedded sandbox (generated demo data)"



class SourceMismatch(Failure):
    """The schema holds another source's data; nothing was written."""


def source_table(schema: str) -> TableSpec:
    return TableSpec(
        schema=schema,
        name=SOURCE_TABLE,
        columns={
            "schema_name": ColumnType.VARCHAR,
            "source": ColumnType.VARCHAR,
            "recorded_at": ColumnType.TIMESTAMP,
        },
        partition_column=None,
    )


def source_of(salesexec: SalesExecResource) -> str:
    """The resource's source as recorded: the sandbox, or ``<scheme>://<host> as <user>``.

    The port is left out: a local sandbox restarted on another port is the same source;
    an account is told apart from another by its host and user name.
    """
    if salesexec.uses_sandbox:
        return SANDBOX_SOURCE
    base_url, username = salesexec.account()
    url = urlsplit(base_url)
    return f"{url.scheme}://{url.hostname} as {username}"


def recorded_source(store: Warehouse, schema: str) -> str | None:
    """The source the schema recorded, or None for a schema that recorded none."""
    spec = source_table(schema)
    if not store.table_columns(spec):
        return None
    rows = store.query(
        f"SELECT source FROM {spec.qualified_name} WHERE schema_name = ?", [schema]
    )
    if rows.empty or rows["source"].isna().iloc[0]:
        return None
    return str(rows["source"].iloc[0])


def record_source(store: Warehouse, schema: str, source: str | None) -> None:
    """Record ``source`` for ``schema``; None forgets it (the reset)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    spec = source_table(schema)
    with RowStage(spec) as stage:
        stage.add([{"schema_name": schema, "source": source, "recorded_at": now}])
        store.upsert(
            stage,
            spec,
            key=["schema_name"],
            newest_by="recorded_at",
            run_id="salesexec-source-guard",
            loaded_at=now,
        )


def guard_source(store: Warehouse, schema: str, source: str) -> None:
    """Refuse a run into a schema that holds another source; record it in a fresh one."""
    recorded = recorded_source(store, schema)
    if recorded is None:
        record_source(store, schema, source)
        return
    if recorded != source:
        raise SourceMismatch(
            description=(
                f"warehouse schema {schema!r} holds data of {recorded}, but this run reads "
                f"{source}. Nothing was written. Write this source to another schema "
                f"(warehouse_schema in defs.yaml), or, to replace the schema's source on "
                f"purpose, run: salesexec reset-source --schema {schema}"
            )
        )
