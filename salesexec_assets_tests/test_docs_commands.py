"""Every shell block of the README and the docs pages still works as written, or says
here why it is not run.

``BLOCKS`` classifies every fenced ``bash`` / ``sh`` / ``shell`` block, keyed by its page
and its first command line: ``Run`` blocks are executed with ``bash -euo pipefail`` in a
temporary working directory (one per page, blocks in page order, so a query block reads
what the block before it wrote), with a temporary ``DAGSTER_HOME``, every ``SALESEXEC_*``
variable cleared (the embedded sandbox) and ``PYTHONPATH`` passed through; each must exit
0. ``NotRun`` blocks give the reason. A block in neither, or an entry whose block is gone,
fails the test: a new page's commands must be classified.

``Run(slow=True)`` blocks (minutes on two shared cores) run only with
``SALESEXEC_DOCS_SLOW=1``; by default their reason stands, as for ``NotRun``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from salesexec_assets_tests.docs_pages import REPO_ROOT, ShellBlock, shell_blocks

SLOW = os.environ.get("SALESEXEC_DOCS_SLOW") == "1"
BLOCK_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Run:
    why: str  # what running it proves, and how it differs from the page, if at all
    drop: str = ""  # text removed from the block before it runs (the reason is in `why`)
    prepare: str = ""  # shell run first, in the same directory (an input the block reads)
    free_port: int = 0  # a fixed port in the block, replaced by a free one
    slow: bool = False


@dataclass(frozen=True)
class NotRun:
    why: str


README_MATERIALIZE = (
    "pip install -e . && dagster asset materialize -m salesexec_assets.definitions"
    " --select 'group:salesexec' --partition \"$(date -u +%F)\""
)
SERVER = "starts a long-running server"

BLOCKS: dict[tuple[str, str], Run | NotRun] = {
    # README.md
    ("README.md", README_MATERIALIZE): Run(
        "today's partition of every report on the embedded sandbox; run without its "
        "'pip install -e . &&' prefix: the package is installed already (.ci/run installs "
        "it, with its test extras, before the tests)",
        drop="pip install -e . && ",
    ),
    (
        "README.md",
        "python -c \"import duckdb; print(duckdb.connect('data/salesexec_warehouse.duckdb',"
        " read_only=True).sql('SELECT lead_type_name, count(*) FROM salesexec.all_leads"
        " GROUP BY ALL'))\"",
    ): Run("the query reads the table the block before it wrote"),
    (
        "README.md",
        "bash scripts/install-browser.sh && bash scripts/install-postgres.sh && "
        "pip install -e '.[test,benchmark]' && bash scripts/test.sh",
    ): NotRun(
        "installs system packages and the package, then runs the whole suite, this test "
        "included: .ci/run runs exactly this line"
    ),
    ("README.md", "export DAGSTER_HOME=$PWD/dagster_home"): NotRun(
        f"{SERVER} (dagster dev): test_instance_setup.py starts it with this DAGSTER_HOME, "
        "test_ui_e2e.py drives it"
    ),
    # docs/configuration.md
    ("docs/configuration.md", "export SALESEXEC_USERNAME=you@example.com"): NotRun(
        "needs a real SalesExec account; the same commands against the sandbox are the next block"
    ),
    ("docs/configuration.md", "salesexec check --sandbox"): Run(
        "check and lead-types against the embedded sandbox"
    ),
    # docs/running.md
    (
        "docs/running.md",
        "dagster asset materialize -m salesexec_assets.definitions --select 'group:salesexec'"
        " --partition 2026-11-20",
    ): Run("one day, a range in one run, and both range selections, on the embedded sandbox"),
    (
        "docs/running.md",
        "curl -s http://127.0.0.1:3000/graphql -H 'Content-Type: application/json' -d '{",
    ): NotRun(
        "needs a running dagster dev on port 3000: test_ui_e2e.py launches the same "
        "launchPartitionBackfill mutation against its own dagster dev"
    ),
    # docs/ui.md
    ("docs/ui.md", "pip install -e '.[test]'"): NotRun(
        f"installs the package and {SERVER} (dagster dev): test_instance_setup.py and "
        "test_ui_e2e.py start it"
    ),
    (
        "docs/ui.md",
        "SALESEXEC_UPDATE_SCREENSHOT=1 python -m pytest salesexec_assets_tests/test_ui_e2e.py",
    ): NotRun("runs a test of the suite (the suite runs it) and rewrites docs/img/"),
    # docs/scheduling.md
    ("docs/scheduling.md", 'export DAGSTER_HOME="$PWD/dagster_home"'): NotRun(
        f"{SERVER} (dagster dev): test_instance_setup.py starts it with this DAGSTER_HOME"
    ),
    # docs/sandbox.md
    (
        "docs/sandbox.md",
        "salesexec-sandbox --port 8765 --leads-per-day 500 --p429 0.1 --p5xx 0.05"
        " --token-uses 20 --latency-ms 50 --ptruncate 0.02 --pdrift 0.1"
        " --schema-drift-from 2026-11-10",
    ): NotRun(
        f"{SERVER} in the foreground on a fixed port, then a second shell: test_asset_cli.py "
        "runs the CLI against a sandbox, test_faults.py with these faults on"
    ),
    # docs/guarantees.md, docs/development.md
    (
        "docs/guarantees.md",
        "python scripts/fault_suite.py --leads-per-day 200 --partitions 21 --kills 4"
        " --writers 4 --seed 1",
    ): NotRun("full-scale run: minutes; the CI-scale run is test_faults.py"),
    (
        "docs/development.md",
        "python scripts/fault_suite.py --leads-per-day 200 --partitions 21 --kills 4 --writers 4",
    ): NotRun(
        "full-scale fault suite and benchmark: minutes to hours; the CI-scale runs are "
        "test_faults.py and the benchmark's tests"
    ),
    ("docs/development.md", "python -m salesexec_assets.tables_doc > docs/tables.md"): Run(
        "regenerates the tables page (into the temporary directory's docs/); "
        "test_tables_doc.py compares it with docs/tables.md",
        prepare="mkdir -p docs",
    ),
    # docs/component.md
    ("docs/component.md", "dg list components | grep SalesExec"): NotRun(
        "scaffolds into the reader's own dg project; test_component.py runs dg list "
        "components, dg scaffold defs, dg check defs and dg list defs"
    ),
    (
        "docs/component.md",
        "salesexec reset-source --schema brand_a --destination data/multi_account.duckdb",
    ): Run("on a file that holds no recorded source it says there is nothing to reset"),
    ("docs/component.md", "dg check defs"): NotRun(
        "runs inside examples/multi_account; test_component.py runs it there"
    ),
    # docs/destinations.md
    ("docs/destinations.md", "export SALESEXEC_DUCKDB_PATH=data/salesexec_warehouse.duckdb"): Run(
        "the variables as written (they only choose the destination)"
    ),
    (
        "docs/destinations.md",
        "export SALESEXEC_WAREHOUSE_URL="
        "'postgresql://etl@db.example.com:5432/analytics?sslmode=require'",
    ): Run("the variables as written; test_destinations.py connects with them to a real server"),
    ("docs/destinations.md", "export SALESEXEC_WAREHOUSE_URL=md:salesexec"): Run(
        "the variables as written; MotherDuck cannot be reached from here (see the page)"
    ),
    (
        "docs/destinations.md",
        "python -c \"from salesexec_assets.warehouse.location import parse_warehouse_url as p; "
        "print(p('postgresql://etl:secret@db.example.com:5432/analytics?sslmode=require')"
        ".display)\"",
    ): Run("prints the URL with its password redacted"),
    # docs/contract.md
    ("docs/contract.md", "salesexec probe --sandbox"): Run(
        "probe and contract diff against the embedded sandbox: everything matches"
    ),
    ("docs/contract.md", "salesexec probe"): NotRun(
        "needs a real SalesExec account (without credentials it stops and says so); the "
        "--sandbox block runs"
    ),
    (
        "docs/contract.md",
        "salesexec contract diff --write-overrides salesexec-contract.yaml",
    ): NotRun("needs a real SalesExec account; test_contract_tools.py runs it against sandboxes"),
    ("docs/contract.md", 'cd "$(mktemp -d)"'): Run(
        "the whole chain against a sandbox speaking a dialect, its port 8766 replaced by a "
        "free one; test_contract_tools.py proves the same at CI scale",
        free_port=8766,
        slow=True,
    ),
    # docs/analytics.md
    (
        "docs/analytics.md",
        "dagster asset materialize -m salesexec_assets.definitions --select"
        " 'key:salesexec/all_leads or key:salesexec/all_actions or group:salesexec_analytics'"
        " --partition-range 2026-11-01...2026-11-28",
    ): Run(
        "four weeks of leads and actions, the models and the reports; test_analytics.py "
        "proves the models against the truth at CI scale",
        slow=True,
    ),
    (
        "docs/analytics.md",
        "dagster sensor start salesexec_analytics_automation -m salesexec_assets.definitions",
    ): Run("starts the sensor in the temporary DAGSTER_HOME"),
    (
        "docs/analytics.md",
        "dagster job execute -m salesexec_assets.definitions -j all_salesexec_reports --tags"
        ' "{\\"dagster/partition\\": \\"$(date -u +%F)\\"}"',
    ): Run(
        "every report, the models and the report of today in one run; "
        "test_analytics.py checks the job's order",
        slow=True,
    ),
    (
        "docs/analytics.md",
        "dagster asset materialize -m salesexec_assets.definitions --select"
        " 'key:salesexec_analytics/salesexec_report' --partition 2026-11-28 --config-json"
        ' \'{"resources": {"reports": {"config": {"directory": "data/reports-printed"}}}}\'',
    ): Run("prints the report of a day the Try it block loaded", slow=True),
    (
        "docs/analytics.md",
        "python -c \"import duckdb; print(duckdb.connect('data/salesexec_warehouse.duckdb',"
        " read_only=True).sql('''",
    ): Run("queries the models the Try it block wrote", slow=True),
    (
        "docs/analytics.md",
        "python -m pytest -q salesexec_assets_tests/test_analytics.py"
        " salesexec_assets_tests/test_analytics_report.py"
        " salesexec_assets_tests/test_analytics_charts.py",
    ): NotRun("runs tests of the suite: the suite runs them"),
    # docs/deploying.md
    ("docs/deploying.md", "export DAGSTER_PG_PASSWORD='choose-a-password'"): NotRun(
        "needs Docker (Compose v2); test_topology.py runs the same processes without it"
    ),
    ("docs/deploying.md", "kubectl create namespace dagster"): NotRun(
        "needs a Kubernetes cluster and Helm; test_deploy_files.py checks the values file"
    ),
    (
        "docs/deploying.md",
        "export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=5432 DAGSTER_PG_USER=dagster"
        " DAGSTER_PG_DB=dagster",
    ): NotRun(
        f"needs a Postgres server on port 5432 and {SERVER}s: test_topology.py runs these "
        "commands against the test Postgres on free ports"
    ),
    ("docs/deploying.md", "dagster instance concurrency set salesexec_api 2"): Run(
        "sets a pool's limit in the temporary DAGSTER_HOME"
    ),
    (
        "docs/deploying.md",
        "PYTHONPATH=$PWD python -m pytest -q salesexec_assets_tests/test_topology.py"
        " salesexec_assets_tests/test_deploy_files.py",
    ): NotRun("runs tests of the suite: the suite runs them"),
    # docs/webhooks.md
    (
        "docs/webhooks.md",
        "export SALESEXEC_WEBHOOK_SECRET=\"$(python -c 'import secrets;"
        " print(secrets.token_urlsafe(32))')\"",
    ): Run("makes a secret"),
    ("docs/webhooks.md", "salesexec webhooks serve &"): NotRun(
        f"{SERVER} in the background on the fixed port 8787: test_webhook_receiver.py "
        "starts serve on a free port"
    ),
    ("docs/webhooks.md", "salesexec webhooks subscribe --url https://hooks.example.com"): NotRun(
        "changes a real account's subscriptions; test_webhooks_e2e.py subscribes against a sandbox"
    ),
    (
        "docs/webhooks.md",
        "export SALESEXEC_WEBHOOK_SECRET=\"$(python -c 'import secrets;"
        " print(secrets.token_urlsafe(32))')\" (block 2)",
    ): NotRun(
        "starts the sandbox and the receiver on the fixed ports 8765 and 8787: "
        "test_webhooks_e2e.py runs the same chain on free ports"
    ),
    (
        "docs/webhooks.md",
        "printf 'webhooks: {enabled: true, default_status: running, quiet_period: 10s}\\n'"
        " > /tmp/salesexec-webhooks.yaml",
    ): NotRun(f"{SERVER} (dagster dev): test_webhooks_daemon.py runs the same with the sensor on"),
    (
        "docs/webhooks.md",
        "python -c \"import sqlite3; c = sqlite3.connect('data/salesexec_webhooks.sqlite');"
        " c.execute(\\\"DELETE FROM events WHERE received_at < strftime('%s', 'now',"
        " '-30 days')\\\"); c.commit()\"",
    ): Run(
        "deletes old events from an inbox made first with the receiver's own schema",
        prepare=(
            'python -c "from pathlib import Path; from salesexec_assets.webhooks.inbox import'
            " connect; connect(Path('data/salesexec_webhooks.sqlite')).close()\""
        ),
    ),
    ("docs/webhooks.md", "python scripts/webhook_load.py --senders 20 --events 5000"): NotRun(
        "full-scale load: the CI-scale run is test_webhook_load.py"
    ),
}


def key_of(block: ShellBlock) -> tuple[str, str]:
    return (block.page, block.key)


def classification_problems(blocks: list[ShellBlock]) -> list[str]:
    """Blocks in neither list, and entries whose block is gone."""
    found = {key_of(block) for block in blocks}
    problems = sorted(f"unclassified: {page}: {key}" for page, key in found - BLOCKS.keys())
    problems += sorted(f"gone: {page}: {key}" for page, key in BLOCKS.keys() - found)
    return problems


def test_every_shell_block_of_the_readme_and_docs_is_classified_and_every_entry_exists() -> None:
    assert classification_problems(shell_blocks()) == []
    assert all(entry.why for entry in BLOCKS.values())


def test_a_new_block_or_a_removed_one_fails_the_classification(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "ui.md").open("a") as ui:
        ui.write("\n  ```sh\n  # a comment first\n  dagster   dev \\\n    -p 3001  # port\n  ```\n")
    configuration = tmp_path / "docs" / "configuration.md"
    configuration.write_text(configuration.read_text().replace("salesexec check --sandbox", "ls"))
    blocks = shell_blocks(tmp_path)
    assert [block.key for block in blocks if block.page == "docs/ui.md"][
        -1
    ] == "dagster dev -p 3001"
    assert classification_problems(blocks) == [
        "unclassified: docs/configuration.md: ls",
        "unclassified: docs/ui.md: dagster dev -p 3001",
        "gone: docs/configuration.md: salesexec check --sandbox",
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def block_environment(tmp_path: Path) -> dict[str, str]:
    """The user's shell as a test may have it: no SALESEXEC_* (the embedded sandbox), its
    own DAGSTER_HOME (telemetry off) and TMPDIR, the PYTHONPATH of this test."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SALESEXEC_")}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env |= {"DAGSTER_HOME": str(home), "TMPDIR": str(scratch)}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO_ROOT))
    return env


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bash -euo pipefail`` in its own session; whatever it left running is stopped."""
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=BLOCK_TIMEOUT_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # background jobs the block started
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def pages_with_runs() -> list[str]:
    return sorted({page for (page, _), entry in BLOCKS.items() if isinstance(entry, Run)})


@pytest.mark.parametrize("page", pages_with_runs())
def test_the_run_blocks_of_a_page_exit_zero_as_written(page: str, tmp_path: Path) -> None:
    blocks = [block for block in shell_blocks() if block.page == page]
    runs = [(block, BLOCKS[key_of(block)]) for block in blocks if key_of(block) in BLOCKS]
    runs = [(block, entry) for block, entry in runs if isinstance(entry, Run)]
    if not SLOW:
        runs = [(block, entry) for block, entry in runs if not entry.slow]
    if not runs:
        pytest.skip(f"{page}: its blocks are slow; SALESEXEC_DOCS_SLOW=1 runs them")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = block_environment(tmp_path)
    for block, entry in runs:
        script = block.text
        if entry.drop:
            assert entry.drop in script, (page, block.key, entry.drop)
            script = script.replace(entry.drop, "", 1)
        if entry.free_port:
            assert str(entry.free_port) in script
            script = script.replace(str(entry.free_port), str(free_port()))
        if entry.prepare:
            prepared = run_shell(entry.prepare, workdir, env)
            assert prepared.returncode == 0, prepared.stdout[-3000:]
        completed = run_shell(script, workdir, env)
        assert completed.returncode == 0, (
            f"{page}:{block.line} exited {completed.returncode}:\n{script}\n"
            f"{completed.stdout[-5000:]}"
        )
