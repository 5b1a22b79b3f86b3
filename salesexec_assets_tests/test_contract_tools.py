"""First contact with a real API: `salesexec contract diff`, `salesexec probe`, contract
overrides, and the sandbox speaking its own Swagger document and a renamed dialect.

Commands run as subprocesses, as a user runs them; the sandboxes are real HTTP servers;
the materializations are real Dagster runs into real DuckDB files.
"""

from __future__ import annotations

import copy
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import AssetKey

from salesexec_assets.api.client import SalesExecClient
from salesexec_assets.api.contract import REPORTS, REPORTS_BY_NAME
from salesexec_assets.api.overrides import CONTRACT_OVERRIDES_VAR, load_overrides
from salesexec_assets.api.swagger import SWAGGER_PATH, contract_document
from salesexec_assets.assets import report_asset_key
from salesexec_assets.definitions import build_definitions
from salesexec_assets.partitions import today_in
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.settings import SettingsError, load_settings
from salesexec_assets_tests.conftest import (
    SANDBOX_PASSWORD,
    PointEnv,
    RunAssets,
    StartSandbox,
    salesexec_environment,
)
from salesexec_assets_tests.e2e_truth import compare_with_truth, moments_between
from salesexec_assets_tests.test_cli import salesexec
from salesexec_assets_tests.truth import canonical_record

# A dialect every report notices: a path, the lead type and window parameters, and record
# fields of leads, actions and branch counts renamed.
REPORT_DIALECT = """\
paths:
  closed_leads: /api/ClosedLeads
parameters:
  LeadTypeUID: LeadTypeId
  StartDate: FromUtc
  EndDate: ToUtc
fields:
  LeadUID: LeadId
  ActionDateUtc: ActionDate
  LeadCount: Leads
"""
# ... and one that renames the login and the envelope too.
FULL_DIALECT = (
    REPORT_DIALECT.replace("paths:\n", "paths:\n  authenticate: /api/Login\n")
    + "  TotalCount: Total\n  Results: Items\n  AuthToken: Token\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the sandbox's own document ---------------------------------------------------------------


def test_contract_diff_against_the_sandbox_own_document_finds_no_difference(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    done = salesexec("contract", "diff", env=salesexec_environment(sandbox, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 0 difference(s)" in done.stdout
    assert f"{sandbox.base_url}{SWAGGER_PATH} (Swagger 2.0)" in done.stdout
    assert "8 of the contract's endpoints found" in done.stdout
    assert SANDBOX_PASSWORD not in done.stdout + done.stderr


def test_contract_diff_logs_in_when_the_document_needs_a_login(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    server = start_sandbox(swagger_needs_login=True)
    assert requests.get(server.base_url + SWAGGER_PATH, timeout=30).status_code == 401
    done = salesexec("contract", "diff", env=salesexec_environment(server, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 0 difference(s)" in done.stdout
    assert SANDBOX_PASSWORD not in done.stdout + done.stderr
    assert not any(token in done.stdout + done.stderr for token in server.issued_tokens)


def test_the_sandbox_serves_a_swagger_document_generated_from_the_contract(
    sandbox: SandboxServer,
) -> None:
    served = requests.get(sandbox.base_url + SWAGGER_PATH, timeout=30).json()
    assert served == contract_document()
    assert served["swagger"] == "2.0"
    for report in REPORTS:
        assert "get" in served["paths"][report.path], report.name


# --- documents changed one thing at a time -------------------------------------------------


Change = Callable[[dict[str, Any]], None]


def _query_parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    return next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name)


def rename_path(document: dict[str, Any]) -> None:
    document["paths"]["/api/ClosedLeads"] = document["paths"].pop("/api/Leads/Closed")


def rename_parameter(document: dict[str, Any]) -> None:
    _query_parameter(document, "/api/Leads", "StartDate")["name"] = "startDate"


def require_parameter(document: dict[str, Any]) -> None:
    _query_parameter(document, "/api/Actions", "Take")["required"] = True


def remove_field(document: dict[str, Any]) -> None:
    del document["definitions"]["AllActionsRecord"]["properties"]["Notes"]


def retype_field(document: dict[str, Any]) -> None:
    document["definitions"]["AllLeadsRecord"]["properties"]["LeadUID"] = {"type": "string"}


def rename_envelope_field(document: dict[str, Any]) -> None:
    properties = document["definitions"]["LastUpdatedLeadsPage"]["properties"]
    properties["Total"] = properties.pop("TotalCount")


def as_openapi3(document: dict[str, Any]) -> dict[str, Any]:
    """The same API as an OpenAPI 3.0 document (components, requestBody, content)."""
    text = json.dumps(document).replace("#/definitions/", "#/components/schemas/")
    swagger = json.loads(text)
    paths: dict[str, Any] = {}
    for path, methods in swagger["paths"].items():
        for method, operation in methods.items():
            converted = {"operationId": operation["operationId"], "parameters": []}
            for parameter in operation["parameters"]:
                if parameter["in"] == "body":
                    converted["requestBody"] = {
                        "content": {"application/json": {"schema": parameter["schema"]}}
                    }
                    continue
                schema = {k: parameter[k] for k in ("type", "format") if k in parameter}
                converted["parameters"].append(
                    {k: parameter[k] for k in ("name", "in", "required")} | {"schema": schema}
                )
            ok = operation["responses"]["200"]
            converted["responses"] = {
                "200": {
                    "description": ok["description"],
                    "content": {"application/json": {"schema": ok["schema"]}},
                }
            }
            paths.setdefault(path, {})[method] = converted
    return {
        "openapi": "3.0.1",
        "info": swagger["info"],
        "paths": paths,
        "components": {"schemas": swagger["definitions"]},
    }


def openapi3_with_a_number(document: dict[str, Any]) -> None:
    converted = as_openapi3(document)
    schemas = converted["components"]["schemas"]
    schemas["BranchLeadCountRecord"]["properties"]["LeadCount"] = {"type": "number"}
    document.clear()
    document.update(converted)


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            rename_path,
            "closed_leads: path GET /api/Leads/Closed is not in the document "
            "(closest: GET /api/ClosedLeads)",
        ),
        (
            rename_parameter,
            "all_leads: query parameter StartDate (required) is not in the document "
            "(closest: startDate)",
        ),
        (
            require_parameter,
            "all_actions: parameter Take is required in the document, optional in the contract",
        ),
        (remove_field, "all_actions: record field Notes (text) is not in the document"),
        (
            retype_field,
            "all_leads: record field LeadUID is text in the document, integer in the contract",
        ),
        (
            rename_envelope_field,
            "last_updated_leads: envelope field TotalCount (integer) is not in the document "
            "(closest: Total)",
        ),
        (
            openapi3_with_a_number,
            "branch_lead_count: record field LeadCount is number in the document, "
            "integer in the contract",
        ),
    ],
    ids=lambda value: getattr(value, "__name__", "line"),
)
def test_a_document_changed_in_one_place_differs_with_the_line_that_names_it(
    change: Change, line: str, tmp_path: Path
) -> None:
    document = copy.deepcopy(contract_document())
    change(document)
    file = write(tmp_path / "swagger.json", json.dumps(document))
    done = salesexec("contract", "diff", "--swagger", str(file), env={})
    assert done.returncode == 1, done.stdout + done.stderr
    differences = [
        text for text in done.stdout.splitlines() if not text.startswith(("summary:", "note:"))
    ]
    assert differences == [line], done.stdout
    assert "summary: 1 difference(s)" in done.stdout


def test_an_unchanged_openapi3_variant_has_no_difference(tmp_path: Path) -> None:
    file = write(tmp_path / "openapi.json", json.dumps(as_openapi3(contract_document())))
    done = salesexec("contract", "diff", "--swagger", str(file), env={})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(OpenAPI 3.0.1)" in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<html><body>Swagger UI</body></html>", "not JSON"),
        ('{"hello": "world"}', "not a Swagger 2.0 or OpenAPI 3.x document"),
        ("[1, 2, 3]", "not a Swagger/OpenAPI document (a JSON list)"),
        (None, "cannot read it"),
    ],
    ids=["html", "json-not-swagger", "json-list", "missing-file"],
)
def test_a_document_that_is_not_swagger_exits_2_with_a_clear_message(
    content: str | None, message: str, tmp_path: Path
) -> None:
    file = tmp_path / "document.json"
    if content is not None:
        write(file, content)
    done = salesexec("contract", "diff", "--swagger", str(file), env={})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: cannot use the Swagger document {file}:" in done.stdout
    assert message in done.stdout


def test_a_document_url_that_answers_no_document_exits_2(sandbox: SandboxServer) -> None:
    done = salesexec("contract", "diff", "--swagger", sandbox.base_url + "/api/Nothing", env={})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "HTTP 404" in done.stdout


# --- overrides: validated when the definitions load ----------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("paths:\n  closed_leadz: /api/ClosedLeads\n", "paths.closed_leadz"),
        ("parameters:\n  StartDat: FromUtc\n", "parameters.StartDat"),
        ("fields:\n  LeadUid: LeadId\n", "fields.LeadUid"),
    ],
    ids=["report", "parameter", "field"],
)
def test_an_unknown_report_parameter_or_field_stops_the_definitions_naming_file_and_key(
    text: str, key: str, tmp_path: Path
) -> None:
    file = write(tmp_path / "overrides.yaml", text)
    with pytest.raises(SettingsError) as raised:
        load_settings({CONTRACT_OVERRIDES_VAR: str(file)})
    assert str(file) in str(raised.value) and key in str(raised.value)
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SALESEXEC_")}
    loaded = subprocess.run(
        [sys.executable, "-c", "import salesexec_assets.definitions"],
        env={**clean, CONTRACT_OVERRIDES_VAR: str(file)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert loaded.returncode != 0
    assert str(file) in loaded.stderr and key in loaded.stderr


# --- a sandbox speaking a renamed dialect ----------------------------------------------------


def materialize_every_report(run_assets: RunAssets, today: date) -> Any:
    defs = build_definitions(load_settings())
    keys: list[AssetKey] = [report_asset_key(report) for report in REPORTS]
    return run_assets(defs, keys, partition=str(today))


def failure_messages(result: Any) -> dict[str, str]:
    """Each failed step's error message, by asset name."""
    messages = {}
    for event in result.all_events:
        if event.is_step_failure:
            error, text = event.step_failure_data.error, ""
            while error is not None:
                text += error.message
                error = error.cause
            messages[event.step_key.split("__")[-1]] = text
    return messages


def test_without_overrides_every_report_fails_naming_what_the_dialect_api_refused(
    start_sandbox: StartSandbox, point_env_at: PointEnv, run_assets: RunAssets, tmp_path: Path
) -> None:
    dialect = write(tmp_path / "dialect.yaml", REPORT_DIALECT)
    server = start_sandbox(contract_overrides=dialect)
    point_env_at(server)
    result = materialize_every_report(run_assets, today_in("UTC"))
    assert not result.success
    messages = failure_messages(result)
    assert set(messages) == {report.name for report in REPORTS}, messages
    for name, message in messages.items():
        if name == "closed_leads":
            assert "HTTP 404" in message and "/api/Leads/Closed" in message, message
        else:
            assert "the parameter LeadTypeId is required" in message, (name, message)


def check_dialect_materialization(
    server: SandboxServer, overrides: Path, run_assets: RunAssets, warehouse: Path
) -> None:
    today = today_in("UTC")
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    result = materialize_every_report(run_assets, today)
    assert result.success, failure_messages(result)
    # today fills in while the run reads it: each report equals the truth of some moment
    moments = moments_between(
        server.config, started, datetime.now(timezone.utc).replace(tzinfo=None)
    )
    problems, rows = compare_with_truth(warehouse, moments, [today], today, "UTC")
    assert problems == [], "\n".join(problems[:20])
    assert all(rows[report.name] > 0 for report in REPORTS), rows
    for report in REPORTS:
        materialization = result.asset_materializations_for_node("salesexec__" + report.name)[0]
        described = materialization.metadata["contract_overrides"].value
        assert str(overrides) in str(described), described


def test_with_hand_written_overrides_every_report_equals_the_truth_with_the_usual_columns(
    start_sandbox: StartSandbox,
    point_env_at: PointEnv,
    run_assets: RunAssets,
    warehouse_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialect = write(tmp_path / "dialect.yaml", REPORT_DIALECT)
    server = start_sandbox(contract_overrides=dialect)
    point_env_at(server)
    monkeypatch.setenv(CONTRACT_OVERRIDES_VAR, str(dialect))
    check_dialect_materialization(server, dialect, run_assets, warehouse_path)


def test_with_the_overrides_contract_diff_wrote_every_report_equals_the_truth(
    start_sandbox: StartSandbox,
    point_env_at: PointEnv,
    run_assets: RunAssets,
    warehouse_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_sandbox(contract_overrides=write(tmp_path / "dialect.yaml", REPORT_DIALECT))
    env = salesexec_environment(server, warehouse_path)
    written = tmp_path / "salesexec-contract.yaml"
    done = salesexec("contract", "diff", "--write-overrides", str(written), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "closed_leads: path GET /api/Leads/Closed is not in the document" in done.stdout
    assert "0 item(s) left for you as comments" in done.stdout
    again = salesexec("contract", "diff", env={**env, CONTRACT_OVERRIDES_VAR: str(written)})
    assert again.returncode == 0, again.stdout
    point_env_at(server)
    monkeypatch.setenv(CONTRACT_OVERRIDES_VAR, str(written))
    check_dialect_materialization(server, written, run_assets, warehouse_path)


def test_what_contract_diff_cannot_map_with_confidence_is_left_as_comments(
    tmp_path: Path,
) -> None:
    document = contract_document()
    leads = document["definitions"]["AllLeadsRecord"]["properties"]
    leads["Created"], leads["Changed"] = leads.pop("DateAddedUtc"), leads.pop("LastUpdatedUtc")
    leads["LeadTypeUID"] = {"type": "number"}
    file = write(tmp_path / "swagger.json", json.dumps(document))
    written = tmp_path / "overrides.yaml"
    done = salesexec(
        "contract", "diff", "--swagger", str(file), "--write-overrides", str(written), env={}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    text = written.read_text()
    assert "# fields.DateAddedUtc: maybe Created (all_leads); not sure" in text, text
    assert "# not mapped: all_leads: record field LeadTypeUID is number" in text, text
    assert load_overrides(written).empty, text  # no unsure pairing became an override


# --- probe ------------------------------------------------------------------------------------


def record_values(server: SandboxServer) -> set[str]:
    """Every distinctive value of every record the probe could have seen, as text."""
    end = datetime.now(timezone.utc).replace(tzinfo=None)
    values: set[str] = set()
    for report in REPORTS:
        for lead_type in server.data.lead_types():
            uid = int(lead_type["LeadTypeUID"])
            values.update(str(v) for v in lead_type.values() if len(str(v)) >= 4)
            if not report.paged:
                continue
            for record in server.truth(report.name, uid, end - timedelta(days=8), end):
                for value in record.values():
                    if isinstance(value, dict):
                        values.update(str(v) for v in value.values() if v is not None)
                    elif isinstance(value, datetime):
                        values.add(value.isoformat()[:19])
                    elif value is not None:
                        values.add(str(value))
    return {value for value in values if len(value) >= 4}


def leaked_values(server: SandboxServer, output: str) -> list[str]:
    """The record values that ``output`` shows as a whole word (``Note`` is an action's
    type, and no leak inside the field name ``Notes``)."""
    return [
        value
        for value in record_values(server)
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", output)
    ]


def test_probe_of_a_healthy_api_reports_every_endpoint_and_no_value(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    done = salesexec("probe", env=salesexec_environment(sandbox, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line}
    for report in REPORTS:
        line = lines[report.name]
        assert f" {report.path} " in line and " 200 " in line, line
        assert f"as the contract ({len(report.record)} fields)" in line, line
    assert "summary: 8 endpoints, 8 answered, 0 failed" in done.stdout
    assert "contract overrides: none" in done.stdout
    assert leaked_values(sandbox, done.stdout + done.stderr) == []
    assert SANDBOX_PASSWORD not in done.stdout + done.stderr


def test_probe_with_one_endpoint_broken_fails_naming_it_and_shows_no_value(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    dialect = write(tmp_path / "one.yaml", "paths:\n  all_actions: /api/ActionList\n")
    server = start_sandbox(contract_overrides=dialect)
    done = salesexec("probe", env=salesexec_environment(server, tmp_path / "w.duckdb"))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line}
    assert " 404 " in lines["all_actions"] and "FAILED" in lines["all_actions"]
    for report in REPORTS:
        if report.name != "all_actions":
            assert " 200 " in lines[report.name], lines[report.name]
    assert "1 failed: all_actions" in done.stdout
    assert leaked_values(server, done.stdout + done.stderr) == []


def test_probe_with_the_overrides_of_a_full_dialect_says_which_and_answers_everywhere(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    dialect = write(tmp_path / "full.yaml", FULL_DIALECT)
    server = start_sandbox(contract_overrides=dialect)
    env = salesexec_environment(server, tmp_path / "w.duckdb")
    refused = salesexec("probe", env=env)
    assert refused.returncode == 1 and "POST /api/Authenticate" in refused.stdout
    done = salesexec("probe", env={**env, CONTRACT_OVERRIDES_VAR: str(dialect)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"contract overrides: 11 from {dialect}: paths.authenticate=/api/Login" in done.stdout
    assert "POST /api/Login" in done.stdout and "GET /api/ClosedLeads" in done.stdout
    assert "summary: 8 endpoints, 8 answered, 0 failed" in done.stdout


# --- the sandbox's command line -------------------------------------------------------------


def test_salesexec_sandbox_with_contract_overrides_serves_the_dialect_and_its_document(
    tmp_path: Path,
) -> None:
    dialect = write(tmp_path / "dialect.yaml", REPORT_DIALECT)
    command = [
        sys.executable, "-m", "salesexec_assets.sandbox.cli", "--port", "0",
        "--contract-overrides", str(dialect),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready and process.stdout is not None, "the sandbox printed no base URL"
        base_url = process.stdout.readline().strip()
        document = requests.get(base_url + SWAGGER_PATH, timeout=30).json()
        assert "/api/ClosedLeads" in document["paths"]
        assert "/api/Leads/Closed" not in document["paths"]
        served = requests.get(base_url + "/api/Leads/Closed", timeout=30)
        assert served.status_code == 404
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0
        assert f"contract overrides 7 from {dialect}" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_salesexec_sandbox_refuses_a_broken_overrides_file_naming_file_and_key(
    tmp_path: Path,
) -> None:
    broken = write(tmp_path / "broken.yaml", "fields:\n  NoSuchField: X\n")
    done = subprocess.run(
        [sys.executable, "-m", "salesexec_assets.sandbox.cli", "--port", "0",
         "--contract-overrides", str(broken)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{broken}: fields.NoSuchField" in done.stderr


def test_probe_names_missing_extra_and_retyped_fields_and_shows_no_value(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    swapped = "fields:\n  Notes: Comment\n  LeadUID: LeadGuid\n  LeadGuid: LeadUID\n"
    server = start_sandbox(contract_overrides=write(tmp_path / "swapped.yaml", swapped))
    done = salesexec("probe", env=salesexec_environment(server, tmp_path / "w.duckdb"))
    assert done.returncode == 0, done.stdout + done.stderr  # every call answered
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line}
    assert lines["all_actions"].endswith(
        "missing: Notes; extra: Comment; type differs: LeadUID, LeadGuid"
    ), lines["all_actions"]
    assert lines["all_leads"].endswith("type differs: LeadUID, LeadGuid"), lines["all_leads"]
    assert lines["branch_lead_count"].endswith("as the contract (4 fields)")
    assert leaked_values(server, done.stdout + done.stderr) == []


def test_a_client_with_overrides_that_swap_two_names_reads_every_record_as_the_truth(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    swapped = write(
        tmp_path / "swapped.yaml",
        "parameters:\n  StartDate: EndDate\n  EndDate: StartDate\n"
        "fields:\n  LeadUID: LeadGuid\n  LeadGuid: LeadUID\n",
    )
    server = start_sandbox(contract_overrides=swapped)
    report = REPORTS_BY_NAME["all_leads"]
    start, end = datetime(2026, 11, 1), datetime(2026, 11, 3)
    with SalesExecClient(
        server.base_url, "sandbox", SANDBOX_PASSWORD, contract_overrides=load_overrides(swapped)
    ) as client:
        read = [r for page in client.iter_report_pages(report, 1, start, end) for r in page]
    truth = server.truth(report.name, 1, start, end)
    assert [canonical_record(report, record) for record in read] == truth
