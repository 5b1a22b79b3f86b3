"""Plain-Python access to the SalesExec REST API (no Dagster imports here)."""
