"""The warehouse: where report tables are written, behind one interface (:class:`Warehouse`).

- ``base``: the interface, table specs, write results;
- ``types``: the column types and widening lattice every backend shares;
- ``stage``: the local DuckDB stage file rows are collected in, whatever the destination;
- ``duckdb``: a DuckDB file or MotherDuck; ``postgres``: a Postgres database;
- ``location``: ``SALESEXEC_WAREHOUSE_URL`` parsed, redacted, opened.
"""

from salesexec_assets.warehouse.base import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    TableSpec,
    Warehouse,
    WarehouseConnectionError,
    WarehouseLockTimeout,
    WriteResult,
    frame_rows,
)
from salesexec_assets.warehouse.duckdb import DuckDBWarehouse
from salesexec_assets.warehouse.duckdb_sql import evolve_columns as _evolve_columns
from salesexec_assets.warehouse.stage import RowStage, remove_stale_stages
from salesexec_assets.warehouse.types import (
    ColumnType,
    coerce_value,
    fits_bigint,
    infer_column_type,
    widen,
)

__all__ = [
    "LOADED_AT_COLUMN",
    "RUN_ID_COLUMN",
    "ColumnType",
    "DuckDBWarehouse",
    "RowStage",
    "TableSpec",
    "Warehouse",
    "WarehouseConnectionError",
    "WarehouseLockTimeout",
    "WriteResult",
    "_evolve_columns",
    "coerce_value",
    "fits_bigint",
    "frame_rows",
    "infer_column_type",
    "remove_stale_stages",
    "widen",
]
