#!/usr/bin/env bash
# The test command the README gives: lint, dg check defs, then the whole suite (small scale; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check salesexec_assets salesexec_assets_tests scripts
# The repository is a dg project: its definitions (and any defs.yaml) must load.
dg check defs
python3 -m pytest salesexec_assets_tests "$@"
