"""``salesexec reset-source --schema X``: forget the source a warehouse schema recorded.

The deliberate way past the source guard (``source_guard.py``): the next run into the
schema records its own source. The tables are kept; say ``--schema`` explicitly.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from salesexec_assets.component import duckdb_path_of, warehouse_of
from salesexec_assets.settings import DUCKDB_PATH_VAR, load_settings
from salesexec_assets.source_guard import record_source, recorded_source
from salesexec_assets.warehouse.location import (
    DUCKDB,
    WAREHOUSE_PASSWORD_VAR,
    WAREHOUSE_URL_VAR,
    WarehouseLocation,
)

COMMAND = "reset-source"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        COMMAND, help="forget the source a warehouse schema recorded (see the source guard)"
    )
    parser.add_argument("--schema", required=True, help="the warehouse schema, e.g. salesexec")
    parser.add_argument(
        "--destination",
        default=None,
        help="the warehouse (a DuckDB path, duckdb:///path, postgresql://... or md:...); "
        f"default: ${WAREHOUSE_URL_VAR}, else ${DUCKDB_PATH_VAR}",
    )


def destination_of(text: str | None) -> WarehouseLocation:
    if not text:
        return load_settings().warehouse_location
    found = warehouse_of(text, "--destination")
    return found or WarehouseLocation.duckdb_file(duckdb_path_of(text))


def main(args: argparse.Namespace) -> int:
    location = destination_of(args.destination)
    where = location.display
    local_file = location.kind == DUCKDB and not location.is_motherduck
    store = location.open(password=os.environ.get(WAREHOUSE_PASSWORD_VAR) or None)
    exists = Path(location.database).exists() if local_file else True
    was = recorded_source(store, args.schema) if exists else None
    if was is None:
        print(f"schema {args.schema!r} in {where} records no source: nothing to reset")
        return 0
    record_source(store, args.schema, None)
    print(f"schema {args.schema!r} in {where} forgot its source ({was}); the next run records its")
    return 0
