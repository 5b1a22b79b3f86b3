"""What ``dg scaffold defs salesexec_assets.SalesExecComponent <path>`` writes: a
``defs.yaml`` whose comments say what every attribute does and what it defaults to."""

from __future__ import annotations

import dagster as dg

DEFS_YAML = """\
# A SalesExec account as Dagster assets (salesexec-assets; see docs/component.md).
type: {type_name}

attributes:
  # Where the API is: empty = the real SalesExec API when credentials are set, else the
  # embedded sandbox (generated demo data); "sandbox" = always the embedded sandbox.
  base_url: ""
  # NAMES of the environment variables holding the credentials (never the values).
  # username_env: SALESEXEC_USERNAME
  # password_env: SALESEXEC_PASSWORD
  # Lead types to pull (their UIDs); leave out for every lead type of the account.
  # lead_type_uids: [1, 2]
  # The zone whose calendar days are the daily partitions, and the first partition.
  timezone: UTC
  start_date: "2024-01-01"
  # The warehouse: a DuckDB file (path or duckdb:///path).
  destination: data/salesexec_warehouse.duckdb
  # Schema of the report tables. Give each account its own: a schema records the source
  # it holds and refuses another one.
  warehouse_schema: salesexec
  # First part of every asset key (salesexec/<report>). A second account needs another
  # prefix; any prefix but "salesexec" also prefixes jobs, schedules, sensors, resources
  # and pools with "<prefix>__".
  asset_key_prefix: salesexec
  # group_name: salesexec          # default: the asset key prefix
  # Which reports to include; leave out for all of them.
  # reports: [all_leads, new_leads, branch_lead_count]
  # Schedules, update methods, retries, freshness: the keys of salesexec.yaml.
  # scheduling:
  #   reports:
  #     all_leads:
  #       schedule: daily at 02:00
  #       target: {{days_back: 1}}
  #       update_method: merge
  #       retry: {{max_retries: 3, delay: 10m}}
  #       alert_if_stale_after: 26h
  # scheduling_file: salesexec.yaml   # or read an existing scheduling file instead
"""


class SalesExecScaffolder(dg.Scaffolder):
    """Writes the commented ``defs.yaml`` above."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml":
            dg.scaffold_component(request)
            return
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            DEFS_YAML.format(type_name=request.type_name), encoding="utf-8"
        )
