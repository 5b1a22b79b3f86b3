"""dlt: the declarative ``rest_api_source``, configured the way its docs suggest.

An explicit offset paginator on ``Skip``/``Take`` that stops at ``TotalCount``, the
``AuthToken`` header (dlt's ``api_key`` auth), ``data_selector: Results``, write
disposition ``replace``. Lead types come from ``/api/LeadTypes`` as a parent resource
(not loaded itself) whose ``LeadTypeUID`` each report resource resolves, which is how
dlt reads "every lead type". One resource per report and window, all windows of a
report into one table. Variant ``dlt-parquet`` loads with ``loader_file_format="parquet"``;
``dlt`` uses the destination's default (``insert_values`` for DuckDB).

Telemetry is off (``RUNTIME__DLTHUB_TELEMETRY=false``, set by the harness before dlt is
imported) and the pipeline's working directory is inside the benchmark's work dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.sources.rest_api import rest_api_source

from benchmarks.contenders import Load
from benchmarks.contenders.common import login
from benchmarks.workload import LoadOutput, StoredTable, Workload, report
from salesexec_assets.api import contract

DATASET = "salesexec_dlt"
LEAD_TYPES_RESOURCE = "lead_types"
FILE_FORMATS = {"dlt": None, "dlt-parquet": "parquet"}


def source_config(workload: Workload, token: str) -> dict[str, Any]:
    """The ``RESTAPIConfig`` of the workload."""
    lead_types: dict[str, Any] = {
        "name": LEAD_TYPES_RESOURCE,
        "endpoint": {"path": contract.LEAD_TYPES_PATH},
        "selected": False,
    }
    wanted = workload.lead_type_uids
    if wanted is not None:  # the workload names its lead types: keep only those
        lead_types["processing_steps"] = [
            {"filter": lambda row: int(row[contract.LEAD_TYPE_UID]) in wanted}
        ]
    resources: list[dict[str, Any]] = [lead_types]
    for name in workload.reports:
        for index, window in enumerate(workload.windows()):
            resources.append(
                {
                    "name": f"{name}_{index}",
                    "table_name": name,
                    "endpoint": {
                        "path": report(name).path,
                        "params": {
                            contract.PARAM_LEAD_TYPE: (
                                f"{{resources.{LEAD_TYPES_RESOURCE}.{contract.LEAD_TYPE_UID}}}"
                            ),
                            contract.PARAM_START: window.start_text,
                            contract.PARAM_END: window.end_text,
                        },
                    },
                }
            )
    return {
        "client": {
            "base_url": workload.base_url,
            "auth": {
                "type": "api_key",
                "name": contract.AUTH_HEADER,
                "api_key": token,
                "location": "header",
            },
            "paginator": {
                "type": "offset",
                "limit": workload.page_size,
                "offset_param": contract.PARAM_SKIP,
                "limit_param": contract.PARAM_TAKE,
                "total_path": contract.ENVELOPE_TOTAL,
            },
        },
        "resource_defaults": {
            "write_disposition": "replace",
            "endpoint": {"data_selector": contract.ENVELOPE_RESULTS},
        },
        "resources": resources,
    }


def prepare(workload: Workload, name: str) -> Load:
    """The timed load: login, then ``pipeline.run`` (extract, normalize, load)."""
    file_format = FILE_FORMATS[name]
    pipelines_dir = Path(workload.work_dir) / "dlt-pipelines"

    def load() -> LoadOutput:
        token = login(requests.Session(), workload)
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{name.replace('-', '_')}",
            destination=dlt.destinations.duckdb(workload.db_path),
            dataset_name=DATASET,
            pipelines_dir=str(pipelines_dir),
        )
        source = rest_api_source(source_config(workload, token))  # type: ignore[arg-type]
        pipeline.run(source, loader_file_format=file_format)
        phases = {
            f"{step.step}_s": (step.finished_at - step.started_at).total_seconds()
            for step in pipeline.last_trace.steps
            if step.finished_at is not None
        }
        tables = [
            StoredTable(
                name,
                f"{DATASET}.{name}",
                pipeline.default_schema.naming.normalize_identifier(report(name).key[0]),
            )
            for name in workload.reports
        ]
        return LoadOutput(tables=tables, phases=phases)

    return load
