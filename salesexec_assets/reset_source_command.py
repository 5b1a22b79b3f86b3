"""``salesexec reset-source --schema X``: forget the source a warehouse schema recorded.

The deliberate way past the source guard (``source_guard.py``): the next run into the
schema records its own source. The tables are kept; say ``--schema`` explicitly.
"""

from __future__ import annotations

import argparse

from salesexec_assets.component import duckdb_path_of
from salesexec_assets.settings import DUCKDB_PATH_VAR, load_settings
from salesexec_assets.source_guard import record_source, recorded_source
from salesexec_assets.warehouse import DuckDBWarehouse

COMMAND = "reset-source"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        COMMAND, help="forget the source a warehouse schema recorded (see the source guard)"
    )
    parser.add_argument("--schema", required=True, help="the warehouse schema, e.g. salesexec")
    parser.add_argument(
        "--destination",
        default=None,
        help=f"the warehouse (DuckDB path or duckdb:///path); default: ${DUCKDB_PATH_VAR}",
    )


def main(args: argparse.Namespace) -> int:
    path = duckdb_path_of(args.destination) if args.destination else load_settings().duckdb_path
    store = DuckDBWarehouse(path)
    was = recorded_source(store, args.schema) if path.exists() else None
    if was is None:
        print(f"schema {args.schema!r} in {path} records no source: nothing to reset")
        return 0
    record_source(store, args.schema, None)
    print(f"schema {args.schema!r} in {path} forgot its source ({was}); the next run records its")
    return 0
