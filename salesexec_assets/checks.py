"""Asset checks on the written partitions, as SQL over the warehouse.

Per report: the key is unique within a partition (and within one pull, for append
tables), no key is null, every window-field instant lies inside its partition's day.
Across reports: per day and lead type, Branch Lead Count adds up to All Leads' rows.
"""

from collections.abc import Sequence
from datetime import date

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    asset_check,
)

from salesexec_assets.api.contract import REPORTS_BY_NAME, Report
from salesexec_assets.instance import DEFAULT_INSTANCE, Instance
from salesexec_assets.partitions import day_window_utc
from salesexec_assets.records import (
    PARTITION_COLUMN,
    SCHEMA,
    key_columns,
    quarantine_spec,
    table_spec,
    window_column,
)
from salesexec_assets.resources import WarehouseResource
from salesexec_assets.warehouse import Warehouse

UNIQUE_KEY = "unique_key_per_partition"
NO_NULL_KEYS = "no_null_keys"
WINDOW_FIELD_IN_PARTITION = "window_field_in_partition"
NO_QUARANTINED_RECORDS = "no_quarantined_records"
BRANCH_COUNTS_MATCH_LEADS = "branch_counts_match_all_leads"


def report_check_specs(report: Report, asset_key: AssetKey) -> list[AssetCheckSpec]:
    keys = ", ".join(key_columns(report))
    specs = [
        AssetCheckSpec(
            UNIQUE_KEY, asset=asset_key, description=f"({keys}) is unique per partition."
        ),
        AssetCheckSpec(NO_NULL_KEYS, asset=asset_key, description=f"No row has a null {keys}."),
        AssetCheckSpec(
            NO_QUARANTINED_RECORDS,
            asset=asset_key,
            description="No record broke the API contract (rejected records are kept in the "
            "quarantine table, never dropped).",
        ),
    ]
    if report.window_field:
        specs.append(
            AssetCheckSpec(
                WINDOW_FIELD_IN_PARTITION,
                asset=asset_key,
                description=f"Every {window_column(report)} lies inside its partition's day.",
            )
        )
    return specs


def _in_days(days: Sequence[date]) -> tuple[str, list[date]]:
    return f"{PARTITION_COLUMN} IN ({', '.join('?' for _ in days)})", list(days)


def evaluate_report_checks(
    report: Report,
    asset_key: AssetKey,
    warehouse: Warehouse,
    days: Sequence[date],
    zone: str,
    *,
    per_pull: bool,
    schema: str = SCHEMA,
) -> list[AssetCheckResult]:
    """Run the report's checks on ``days`` after a write."""
    table = table_spec(report, schema).qualified_name
    keys = key_columns(report)
    in_days, params = _in_days(days)
    group = [PARTITION_COLUMN, *keys, *(["_loaded_at"] if per_pull else [])]
    duplicates = warehouse.query(
        f"SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE {in_days} "
        f"GROUP BY {', '.join(group)} HAVING count(*) > 1) AS duplicated",
        params,
    )["n"][0]
    nulls = warehouse.query(
        f"SELECT count(*) AS n FROM {table} WHERE {in_days} AND "
        f"({' OR '.join(f'{key} IS NULL' for key in keys)})",
        params,
    )["n"][0]
    rejected = quarantine_spec(report, schema).qualified_name
    quarantined = warehouse.query(
        f"SELECT count(*) AS n FROM {rejected} WHERE {in_days}",
        params,
    )["n"][0]
    results = [
        AssetCheckResult(
            asset_key=asset_key,
            check_name=UNIQUE_KEY,
            passed=bool(duplicates == 0),
            metadata={"duplicate_keys": int(duplicates)},
        ),
        AssetCheckResult(
            asset_key=asset_key,
            check_name=NO_NULL_KEYS,
            passed=bool(nulls == 0),
            metadata={"rows_with_null_key": int(nulls)},
        ),
        AssetCheckResult(
            asset_key=asset_key,
            check_name=NO_QUARANTINED_RECORDS,
            passed=bool(quarantined == 0),
            severity=AssetCheckSeverity.WARN,
            metadata={"quarantined_records": int(quarantined)},
        ),
    ]
    column = window_column(report)
    if column:
        windows = [(day, *day_window_utc(day, day, zone)) for day in days]
        values = ", ".join("(?::DATE, ?::TIMESTAMP, ?::TIMESTAMP)" for _ in windows)
        outside = warehouse.query(
            f"SELECT count(*) AS n FROM {table} t JOIN (VALUES {values}) w(day, lo, hi) "
            f"ON t.{PARTITION_COLUMN} = w.day WHERE NOT (t.{column} >= w.lo AND t.{column} < w.hi)",
            [value for window in windows for value in window],
        )["n"][0]
        results.append(
            AssetCheckResult(
                asset_key=asset_key,
                check_name=WINDOW_FIELD_IN_PARTITION,
                passed=bool(outside == 0),
                metadata={"rows_outside_window": int(outside)},
            )
        )
    return results


def build_branch_count_check(
    branch_key: AssetKey, leads_key: AssetKey, instance: Instance = DEFAULT_INSTANCE
):
    """Per day and lead type: the sum of branch lead counts equals the leads added."""
    branch_spec = table_spec(REPORTS_BY_NAME["branch_lead_count"], instance.schema)
    leads_spec = table_spec(REPORTS_BY_NAME["all_leads"], instance.schema)
    warehouse_key = instance.warehouse_resource_key
    branches, leads = branch_spec.qualified_name, leads_spec.qualified_name

    @asset_check(
        asset=branch_key,
        name=BRANCH_COUNTS_MATCH_LEADS,
        additional_deps=[leads_key],
        description="For every day both reports hold, per lead type, the sum of "
        "branch_lead_count.lead_count equals the number of distinct leads in all_leads.",
        required_resource_keys={warehouse_key},
    )
    def branch_counts_match_all_leads(context: AssetCheckExecutionContext) -> AssetCheckResult:
        warehouse: WarehouseResource = getattr(context.resources, warehouse_key)
        store = warehouse.get_warehouse(context.log)
        with store.reading():  # one connection for the three reads
            if not store.table_columns(branch_spec) or not store.table_columns(leads_spec):
                return AssetCheckResult(
                    passed=True,
                    description="Not comparable yet: both tables must be materialized.",
                    metadata={"days_compared": 0},
                )
            mismatches = store.query(
                f"""
                WITH b AS (SELECT {PARTITION_COLUMN} AS day, lead_type_uid, sum(lead_count) AS n
                           FROM {branches} GROUP BY 1, 2),
                     l AS (SELECT {PARTITION_COLUMN} AS day, lead_type_uid,
                                  count(DISTINCT lead_uid) AS n FROM {leads} GROUP BY 1, 2),
                     days AS (SELECT DISTINCT day FROM b INTERSECT SELECT DISTINCT day FROM l)
                SELECT day, lead_type_uid, coalesce(b.n, 0) AS branch_sum, coalesce(l.n, 0) AS leads
                FROM b FULL JOIN l USING (day, lead_type_uid)
                WHERE day IN (SELECT day FROM days) AND coalesce(b.n, 0) <> coalesce(l.n, 0)
                ORDER BY day, lead_type_uid
                """
            )
            compared = store.query(
                f"SELECT count(*) AS n FROM (SELECT DISTINCT {PARTITION_COLUMN} FROM {branches} "
                f"INTERSECT SELECT DISTINCT {PARTITION_COLUMN} FROM {leads}) AS both_days"
            )["n"][0]
        return AssetCheckResult(
            passed=mismatches.empty,
            metadata={
                "days_compared": int(compared),
                "mismatches": len(mismatches),
                "first_mismatches": mismatches.head(10).astype(str).to_dict("records"),
            },
        )

    return branch_counts_match_all_leads
