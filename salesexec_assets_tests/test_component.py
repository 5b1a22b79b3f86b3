"""SalesExecComponent (issue 13): ``dg`` on this repository and on the two-account example,
the example's two accounts against two sandboxes, the source guard, and ``defs.yaml``
errors. Real ``dg`` subprocesses, real sandboxes on loopback; the tables that take the
``destination`` fixture are written once to a DuckDB file and once to a database of the
real Postgres server (``destination: postgresql://...``, the password in
``SALESEXEC_WAREHOUSE_PASSWORD``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, Definitions, load_from_defs_folder

from salesexec_assets import SalesExecComponent
from salesexec_assets.analytics.models import MODELS
from salesexec_assets.api.contract import REPORTS, Pull
from salesexec_assets.partitions import today_in
from salesexec_assets.records import key_columns
from salesexec_assets.sandbox import SandboxServer
from salesexec_assets.source_guard import SANDBOX_SOURCE, SOURCE_TABLE, recorded_source
from salesexec_assets.warehouse.location import WAREHOUSE_PASSWORD_VAR, WAREHOUSE_URL_VAR
from salesexec_assets_tests.conftest import RunAssets, StartSandbox
from salesexec_assets_tests.destinations import Destination
from salesexec_assets_tests.truth import (
    assert_rows_match,
    expected_day,
    sorted_rows,
    stored_rows,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "multi_account"
COMPONENT_TYPE = "salesexec_assets.SalesExecComponent"
PAST_DAY = date(2025, 6, 10)
EXAMPLE_ZONE = "America/Chicago"
DAY_REPORTS = [report for report in REPORTS if report.pull is not Pull.NOW]
NOW_REPORTS = [report for report in REPORTS if report.pull is Pull.NOW]
ACCOUNTS = {  # prefix: sandbox user name, password, data seed
    "brand_a": ("brand-a-user", "pw-brand-a-7Kq", 11),
    "brand_b": ("brand-b-user", "pw-brand-b-3Zx", 23),
}


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def entry_point_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose dist-info declares pyproject.toml's registry entry points, as an
    install of this checkout records them (the editable install may predate them)."""
    group = "dagster_dg_cli.registry_modules"
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split(f'[project.entry-points."{group}"]', 1)[1].split("\n[", 1)[0]
    declared = dict(
        (part.strip().strip('"') for part in line.split("=", 1))
        for line in section.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert declared == {"salesexec_assets": "salesexec_assets"}
    directory = tmp_path_factory.mktemp("entry_points")
    info = directory / "salesexec_assets_checkout-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: salesexec-assets-checkout\n")
    lines = [f"{name} = {module}" for name, module in declared.items()]
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(lines) + "\n")
    return directory


def dg(cwd: Path, *args: str, extra_path: Path | None = None, env: dict[str, str] | None = None):
    """Run ``dg`` as a user would, from ``cwd``, with this checkout importable."""
    paths = [str(ROOT), str(cwd), *([str(extra_path)] if extra_path else [])]
    environment = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(paths)}
    environment.pop("SALESEXEC_CONFIG", None)
    return subprocess.run(
        ["dg", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600
    )


def listed(cwd: Path) -> dict[str, list[str]]:
    """``dg list defs --json``: kind -> names (asset keys as ``a/b``)."""
    result = dg(cwd, "list", "defs", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    return {
        kind: [item.get("key") or item.get("asset_key") or item.get("name") for item in items]
        for kind, items in data.items()
    }


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    target = tmp_path / "multi_account"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


def edit_attributes(defs_yaml: Path, **changes: Any) -> None:
    document = yaml.safe_load(defs_yaml.read_text())
    document["attributes"].update(changes)
    defs_yaml.write_text(yaml.safe_dump(document))


def materialize_day(run_assets: RunAssets, defs: Definitions, prefixes: list[str], day: str):
    keys = [AssetKey([prefix, r.name]) for prefix in prefixes for r in DAY_REPORTS]
    return run_assets(defs, keys, partition=day)


def failure_text(result: Any) -> str:
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = getattr(event.event_specific_data, "error", None)
            texts.append(error.to_string() if error else str(event.message))
    return "\n".join(texts)


def destination_attribute(destination: Destination, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``destination:`` in defs.yaml says for it: the DuckDB file, or the Postgres URL
    (no password), whose password goes to ``SALESEXEC_WAREHOUSE_PASSWORD``."""
    if destination.path is not None:
        return str(destination.path)
    monkeypatch.setenv(WAREHOUSE_PASSWORD_VAR, destination.env[WAREHOUSE_PASSWORD_VAR])
    return destination.env[WAREHOUSE_URL_VAR]


def schema_snapshot(destination: Destination, schema: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the schema's report tables and source record, load stamps included."""
    tables = [report.name for report in REPORTS] + [SOURCE_TABLE]
    return {
        table: sorted_rows(stored_rows(destination, table, schema=schema, with_metadata=True))
        for table in tables
    }


def account_component(server: SandboxServer, path: Path | str, monkeypatch, **attributes: Any):
    """An instance reading ``server`` with its credentials in two named variables, writing
    to ``path`` (a DuckDB file or a warehouse URL)."""
    name = f"ACCOUNT_{server.config.username.upper().replace('-', '_')}"
    monkeypatch.setenv(f"{name}_USERNAME", server.config.username)
    monkeypatch.setenv(f"{name}_PASSWORD", server.config.password)
    return SalesExecComponent(
        base_url=server.base_url,
        username_env=f"{name}_USERNAME",
        password_env=f"{name}_PASSWORD",
        destination=str(path),
        **attributes,
    )


# --- dg on this repository and on the example ---------------------------------------------


def test_dg_check_and_list_defs_load_this_repository_as_before() -> None:
    check = dg(ROOT, "check", "defs")
    assert check.returncode == 0, check.stderr[-3000:]
    defs = listed(ROOT)
    raw = sorted(f"salesexec/{r.name}" for r in REPORTS)
    analytics = sorted(k for k in defs["assets"] if k.startswith("salesexec_analytics/"))
    assert sorted(defs["assets"]) == sorted(raw + analytics)
    assert len(analytics) == len(MODELS) + 1  # the models and the HTML report
    assert sorted(defs["resources"]) == ["reports", "salesexec", "warehouse"]  # reports: HTML
    assert "all_salesexec_reports" in defs["jobs"]


def test_dg_check_and_list_defs_load_the_example_with_the_two_accounts_apart() -> None:
    check = dg(EXAMPLE, "check", "defs")
    assert check.returncode == 0, check.stderr[-3000:]
    defs = listed(EXAMPLE)
    for prefix in ACCOUNTS:
        assert {f"{prefix}/{r.name}" for r in REPORTS} <= set(defs["assets"])
        assert {f"{prefix}__salesexec", f"{prefix}__warehouse"} <= set(defs["resources"])
        assert f"{prefix}__all_salesexec_reports" in defs["jobs"]
    assert len(defs["assets"]) == 2 * len(REPORTS)
    for kind, names in defs.items():
        assert len(names) == len(set(names)), f"{kind} clash: {names}"


def test_dg_lists_the_component_and_scaffolds_a_commented_defs_yaml(
    entry_point_path: Path, example_copy: Path
) -> None:
    components = dg(example_copy, "list", "components", "--json", extra_path=entry_point_path)
    assert components.returncode == 0, components.stderr[-3000:]
    assert COMPONENT_TYPE in components.stdout

    scaffold = dg(
        example_copy, "scaffold", "defs", COMPONENT_TYPE, "brand_c", extra_path=entry_point_path
    )
    assert scaffold.returncode == 0, scaffold.stderr[-3000:]
    written = (example_copy / "multi_account" / "defs" / "brand_c" / "defs.yaml").read_text()
    assert f"type: {COMPONENT_TYPE}" in written
    assert "# NAMES of the environment variables" in written
    document = yaml.safe_load(written)
    assert document["attributes"]["warehouse_schema"] == "salesexec"
    # the scaffolded instance loads beside the two accounts (default prefix: no clash)
    check = dg(example_copy, "check", "defs", extra_path=entry_point_path)
    assert check.returncode == 0, check.stderr[-3000:]


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"timezon": "UTC"}, "attributes.timezon", ""),
        ({"reports": ["all_leads", "all_lead"]}, "attributes.reports[1]", "unknown report"),
        ({"timezone": "Mars/Olympus"}, "attributes.timezone", "not an IANA time zone"),
        (
            {"scheduling": {"reports": {"all_leads": {"schedule": "daily at 25:00"}}}},
            "attributes.scheduling.reports.all_leads.schedule",
            "",
        ),
    ],
    ids=["typo", "unknown-report", "bad-zone", "bad-schedule"],
)
def test_a_defs_yaml_error_names_the_file_and_the_key(
    example_copy: Path, change: dict[str, Any], key: str, words: str
) -> None:
    defs_yaml = example_copy / "multi_account" / "defs" / "brand_b" / "defs.yaml"
    edit_attributes(defs_yaml, **change)
    result = dg(example_copy, "check", "defs")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(defs_yaml) in output
    assert key in output
    assert words in output


def test_two_scheduled_instances_load_together_without_a_name_clash(tmp_path: Path) -> None:
    """Schedules, sensors, the merge asset, freshness checks, resources and pools: each
    instance names its own, so one code location holds both."""
    scheduling = {
        "reports": {
            "all_leads": {
                "schedule": "daily at 06:00",
                "update_method": "merge",
                "retry": {"max_retries": 2, "delay": "1m"},
                "alert_if_stale_after": "26h",
            }
        },
        "late_changes": {"enabled": True},
    }
    defs = Definitions.merge(
        *(
            SalesExecComponent(
                asset_key_prefix=prefix,
                warehouse_schema=prefix,
                destination=str(tmp_path / "warehouse.duckdb"),
                scheduling=scheduling,
            ).build_definitions()
            for prefix in ACCOUNTS
        )
    )
    repository = defs.get_repository_def()  # raises on any clash
    assets = repository.assets_defs_by_key
    for prefix in ACCOUNTS:
        assert AssetKey([prefix, "leads"]) in assets
        for report in REPORTS:
            node = assets[AssetKey([prefix, report.name])].node_def
            assert node.pool == f"{prefix}__salesexec_api"
        assert {f"{prefix}__salesexec", f"{prefix}__warehouse"} <= set(
            repository.get_top_level_resources()
        )
    sensors = [sensor.name for sensor in repository.sensor_defs]
    schedules = [schedule.name for schedule in repository.schedule_defs]
    assert len(sensors) == 2 * 3 and len(schedules) == 2
    assert all(name.startswith(("brand_a__", "brand_b__")) for name in sensors + schedules)


# --- the example: two accounts, two sandboxes ---------------------------------------------


@pytest.fixture
def two_sandboxes(start_sandbox: StartSandbox) -> dict[str, SandboxServer]:
    return {
        prefix: start_sandbox(username=username, password=password, seed=seed)
        for prefix, (username, password, seed) in ACCOUNTS.items()
    }


@pytest.fixture
def example_defs(
    two_sandboxes: dict[str, SandboxServer],
    destination: Destination,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Definitions]:
    """The example's definitions, loaded as ``dg`` loads them, pointed at the sandboxes and
    the destination (its defs.yaml files read ``MULTI_ACCOUNT_WAREHOUSE``)."""
    for prefix, server in two_sandboxes.items():
        upper = prefix.upper()
        monkeypatch.setenv(f"{upper}_SALESEXEC_URL", server.base_url)
        monkeypatch.setenv(f"{upper}_SALESEXEC_USERNAME", server.config.username)
        monkeypatch.setenv(f"{upper}_SALESEXEC_PASSWORD", server.config.password)
    monkeypatch.setenv("MULTI_ACCOUNT_WAREHOUSE", destination_attribute(destination, monkeypatch))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield load_from_defs_folder(path_within_project=EXAMPLE / "multi_account")
    for name in [name for name in sys.modules if name.startswith("multi_account")]:
        del sys.modules[name]


def test_the_example_loads_every_report_of_both_accounts_into_their_own_schemas(
    example_defs: Definitions,
    two_sandboxes: dict[str, SandboxServer],
    destination: Destination,
    run_assets: RunAssets,
) -> None:
    result = materialize_day(run_assets, example_defs, list(ACCOUNTS), str(PAST_DAY))
    assert result.success, failure_text(result)
    today = str(today_in(EXAMPLE_ZONE))
    now_keys = [AssetKey([prefix, r.name]) for prefix in ACCOUNTS for r in NOW_REPORTS]
    result = run_assets(example_defs, now_keys, partition=today)
    assert result.success, failure_text(result)

    truths = {}
    for prefix, server in two_sandboxes.items():
        lead_types = sorted(t["LeadTypeUID"] for t in server.data.lead_types())
        for report in DAY_REPORTS:
            expected = expected_day(server, report, lead_types, PAST_DAY, EXAMPLE_ZONE)
            assert expected, f"{prefix}/{report.name}: no truth rows; this proves nothing"
            actual = stored_rows(destination, report.name, schema=prefix)
            assert_rows_match(actual, expected, key_columns(report))
            truths[prefix, report.name] = expected
        for report in NOW_REPORTS:
            rows = stored_rows(destination, report.name, schema=prefix)
            assert sorted(row["lead_type_uid"] for row in rows) == lead_types
        assert recorded_source(destination.warehouse(), prefix) == (
            f"http://127.0.0.1 as {server.config.username}"
        )
    # the two sandboxes hold different data, so each schema matched its own
    assert truths["brand_a", "all_leads"] != truths["brand_b", "all_leads"]


# --- the source guard ---------------------------------------------------------------------


def test_a_fresh_schema_records_its_source_on_first_write_and_holds_the_truth(
    sandbox: SandboxServer,
    destination: Destination,
    monkeypatch: pytest.MonkeyPatch,
    run_assets: RunAssets,
) -> None:
    path = destination_attribute(destination, monkeypatch)
    defs = account_component(sandbox, path, monkeypatch).build_definitions()
    assert destination.untouched()
    result = materialize_day(run_assets, defs, ["salesexec"], str(PAST_DAY))
    assert result.success, failure_text(result)
    assert recorded_source(destination.warehouse(), "salesexec") == (
        f"http://127.0.0.1 as {sandbox.config.username}"
    )
    lead_types = sorted(t["LeadTypeUID"] for t in sandbox.data.lead_types())
    for report in DAY_REPORTS:
        expected = expected_day(sandbox, report, lead_types, PAST_DAY, "UTC")
        assert expected, f"{report.name}: no truth rows; this proves nothing"
        assert_rows_match(stored_rows(destination, report.name), expected, key_columns(report))


def test_the_embedded_sandbox_is_refused_by_a_schema_holding_an_accounts_data(
    sandbox: SandboxServer,
    destination: Destination,
    monkeypatch: pytest.MonkeyPatch,
    run_assets: RunAssets,
) -> None:
    """A deployment that lost its credentials falls back to the sandbox: refused, unchanged."""
    path = destination_attribute(destination, monkeypatch)
    account = account_component(sandbox, path, monkeypatch).build_definitions()
    assert materialize_day(run_assets, account, ["salesexec"], str(PAST_DAY)).success
    before = schema_snapshot(destination, "salesexec")
    assert before["all_leads"] and before[SOURCE_TABLE]

    demo = SalesExecComponent(base_url="sandbox", destination=path).build_definitions()
    result = materialize_day(run_assets, demo, ["salesexec"], "2025-06-11")
    assert not result.success
    message = failure_text(result)
    assert SANDBOX_SOURCE in message and "http://127.0.0.1 as sandbox" in message
    assert "salesexec reset-source --schema salesexec" in message
    assert schema_snapshot(destination, "salesexec") == before


def test_a_second_account_is_refused_by_the_first_accounts_schema_until_reset(
    start_sandbox: StartSandbox,
    destination: Destination,
    monkeypatch: pytest.MonkeyPatch,
    run_assets: RunAssets,
) -> None:
    path = destination_attribute(destination, monkeypatch)
    first = start_sandbox(username="first-account", seed=3)
    second = start_sandbox(username="second-account", seed=4)
    attributes = {"warehouse_schema": "shared", "asset_key_prefix": "shared"}
    defs_first = account_component(first, path, monkeypatch, **attributes).build_definitions()
    assert materialize_day(run_assets, defs_first, ["shared"], str(PAST_DAY)).success
    before = schema_snapshot(destination, "shared")
    assert before["all_leads"] and before[SOURCE_TABLE]

    defs_second = account_component(second, path, monkeypatch, **attributes).build_definitions()
    result = materialize_day(run_assets, defs_second, ["shared"], str(PAST_DAY))
    assert not result.success
    message = failure_text(result)
    assert "first-account" in message and "second-account" in message
    assert schema_snapshot(destination, "shared") == before

    reset = subprocess.run(
        [sys.executable, "-m", "salesexec_assets.cli", "reset-source", "--schema", "shared",
         "--destination", path],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert "first-account" in reset.stdout
    assert recorded_source(destination.warehouse(), "shared") is None
    assert all(secret not in reset.stdout + reset.stderr for secret in destination.secrets)
    assert materialize_day(run_assets, defs_second, ["shared"], str(PAST_DAY)).success
    assert "second-account" in (recorded_source(destination.warehouse(), "shared") or "")
