"""The files of ``deploy/`` agree with each other and with the repository's dagster.yaml.

``test_topology.py`` runs their commands; these fast checks cover what it cannot run here:
the Helm values (no Kubernetes) carry the same instance settings as ``deploy/dagster.yaml``,
and docker-compose gives each service the variables the files read, the SalesExec secrets
to the code server alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres.utils import pg_url_from_config
from sqlalchemy.engine import make_url

from salesexec_assets.settings import PASSWORD_VAR, USERNAME_VAR
from salesexec_assets_tests.e2e_dagster import LOCATION_NAME, PROJECT_INSTANCE_YAML, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
# Settings the deployment keeps exactly as the repository's dagster.yaml sets them.
SHARED_SETTINGS = ("run_retries", "run_monitoring", "telemetry")
SECRETS = (USERNAME_VAR, PASSWORD_VAR)


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8")))


def env_names(value: Any) -> set[str]:
    """Every ``{env: NAME}`` in a parsed YAML document."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            return {value["env"]}
        return set().union(*(env_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(env_names(v) for v in value))
    return set()


def test_deploy_instance_yaml_is_a_valid_dagster_instance_config() -> None:
    settings, _ = dagster_instance_config(str(DEPLOY))
    assert settings["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert settings["concurrency"]["runs"]["max_concurrent_runs"] >= 1


def test_deploy_instance_keeps_the_shipped_retries_monitoring_and_pools() -> None:
    shipped = yaml.safe_load(PROJECT_INSTANCE_YAML.read_text(encoding="utf-8"))
    deployed = load("dagster.yaml")
    for key in SHARED_SETTINGS:
        assert deployed.get(key) == shipped.get(key), key
    assert deployed["concurrency"]["pools"] == shipped["concurrency"]["pools"]
    assert (
        deployed["concurrency"]["runs"]["max_concurrent_runs"]
        == shipped["concurrency"]["runs"]["max_concurrent_runs"]
    )


def test_storage_url_names_the_psycopg2_driver_that_dagster_postgres_installs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bare postgresql:// resolves to psycopg 3 under SQLAlchemy 2.1 (the trap)."""
    storage = load("dagster.yaml")["storage"]["postgres"]
    resolved = {
        key: (f"value-of-{value['env']}" if isinstance(value, dict) else value)
        for key, value in storage["postgres_db"].items()
    }
    resolved["port"] = 5432
    dialect = make_url(pg_url_from_config({"postgres_db": resolved})).get_dialect()
    assert dialect.driver == "psycopg2"
    dialect.import_dbapi()  # installed with dagster-postgres (psycopg2-binary)


def test_workspace_names_the_code_location_and_reads_its_address_from_the_environment() -> None:
    (entry,) = load("workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["location_name"] == LOCATION_NAME
    assert env_names(server) == {"SALESEXEC_CODE_SERVER_HOST", "SALESEXEC_CODE_SERVER_PORT"}


def test_compose_gives_every_service_what_the_files_read_and_secrets_to_the_code_server_only() -> (
    None
):
    services = load("docker-compose.yaml")["services"]
    storage_vars = env_names(load("dagster.yaml"))
    address_vars = env_names(load("workspace.yaml"))
    for name in ("code_server", "webserver", "daemon"):
        assert storage_vars <= set(services[name]["environment"]), name
    for name in ("webserver", "daemon"):
        environment = set(services[name]["environment"])
        assert address_vars <= environment, name
        assert not any(var.startswith("SALESEXEC_") for var in environment - address_vars), name
    assert set(SECRETS) <= set(services["code_server"]["environment"])
    workspace_port = services["webserver"]["environment"]["SALESEXEC_CODE_SERVER_PORT"]
    assert f'"-p", "{workspace_port}"' in (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def helm_instance_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The instance settings the chart writes from ``values`` (its dagster.yaml template)."""
    daemon = values["dagsterDaemon"]
    retries, monitoring = daemon["runRetries"], daemon["runMonitoring"]
    return {
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
        "telemetry": values["telemetry"],
        "concurrency": values["additionalInstanceConfig"]["concurrency"],
        "run_coordinator": daemon["runCoordinator"]["type"],
        "scheme": values["postgresql"]["postgresqlScheme"],
    }


def test_helm_values_carry_the_settings_of_deploy_dagster_yaml() -> None:
    deployed = load("dagster.yaml")
    helm = helm_instance_settings(load("helm-values.yaml"))
    for key in (*SHARED_SETTINGS, "concurrency"):
        assert helm[key] == deployed[key], key
    assert helm["run_coordinator"] == deployed["run_coordinator"]["class"]
    assert helm["scheme"] == deployed["storage"]["postgres"]["postgres_db"]["scheme"]


def test_helm_values_run_our_image_with_k8s_runs_and_secrets_from_a_kubernetes_secret() -> None:
    values = load("helm-values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    arguments = deployment["dagsterApiGrpcArgs"]
    assert arguments[arguments.index("-m") + 1] == "salesexec_assets.definitions"
    assert arguments[arguments.index("--location-name") + 1] == LOCATION_NAME
    assert deployment["envSecrets"] and deployment["includeConfigInLaunchedRuns"]["enabled"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    # No secret value in the file: credentials come from Kubernetes secrets.
    text = (DEPLOY / "helm-values.yaml").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(postgresqlPassword|SALESEXEC_PASSWORD)\s*:", text, re.M)


def test_dockerfile_installs_the_deploy_extra_and_copies_the_deploy_files() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '".[deploy]"' in dockerfile and "\ndeploy = [" in pyproject
    for name in ("dagster.yaml", "workspace.yaml"):
        assert f"COPY deploy/{name} " in dockerfile
        assert (DEPLOY / name).exists()
    assert Path(DEPLOY / "Dockerfile.dockerignore").exists()
