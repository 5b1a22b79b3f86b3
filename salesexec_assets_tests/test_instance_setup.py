"""The README's ``dagster dev`` setup, as a user follows it: ``DAGSTER_HOME`` is the
repository's ``dagster_home/`` (the shipped instance settings), the scheduling file is a
copy of the example. ``dagster dev`` must start without warning that a ``dagster.yaml``
is ignored, and with every schedule and sensor stopped (nothing launched by itself)."""

from __future__ import annotations

import shutil
from pathlib import Path

from salesexec_assets_tests.e2e_dagster import PROJECT_INSTANCE_YAML, REPO_ROOT, dagster_dev
from salesexec_assets_tests.test_ui_e2e import isolated_environment, refuse_overriding_dotenv

README = REPO_ROOT / "README.md"
IGNORED_YAML_WARNING = "will not be used to configure Dagster"

INSTIGATORS = """
query Instigators($repo: RepositorySelector!) {
  schedulesOrError(repositorySelector: $repo) {
    ... on Schedules { results { name scheduleState { status } } }
  }
  sensorsOrError(repositorySelector: $repo) {
    ... on Sensors { results { name sensorState { status } } }
  }
  runsOrError { ... on Runs { results { runId } } }
}
"""


def test_the_readme_dagster_home_setup_starts_without_warnings_and_with_automation_stopped(
    tmp_path: Path,
) -> None:
    readme = README.read_text()
    assert "export DAGSTER_HOME=$PWD/dagster_home" in readme
    assert PROJECT_INSTANCE_YAML.parent.name == "dagster_home" and PROJECT_INSTANCE_YAML.exists()
    # Dagster warns about a dagster.yaml (or .yml) in the folder it starts in
    assert not (REPO_ROOT / "dagster.yaml").exists() and not (REPO_ROOT / "dagster.yml").exists()
    refuse_overriding_dotenv()
    env = isolated_environment(tmp_path)
    scheduling = tmp_path / "salesexec.yaml"
    shutil.copy(REPO_ROOT / "salesexec.example.yaml", scheduling)  # cp salesexec.example.yaml
    env["SALESEXEC_CONFIG"] = str(scheduling)
    # a copy of dagster_home/ (the README's home), so that the run history stays in tmp
    with dagster_dev(tmp_path / "dagster_home", env, tmp_path / "dagster-dev.log") as dev:
        answer = dev.graphql(
            INSTIGATORS,
            {"repo": {"repositoryLocationName": "salesexec_assets",
                      "repositoryName": "__repository__"}},
        )  # fmt: skip
        log = dev.log_text()
    assert IGNORED_YAML_WARNING not in log, log[-3000:]
    schedules = answer["schedulesOrError"]["results"]
    sensors = answer["sensorsOrError"]["results"]
    statuses = {s["name"]: s["scheduleState"]["status"] for s in schedules} | {
        s["name"]: s["sensorState"]["status"] for s in sensors
    }
    assert len(schedules) == 5 and len(sensors) >= 3, statuses
    assert set(statuses.values()) == {"STOPPED"}, statuses
    assert answer["runsOrError"]["results"] == []
