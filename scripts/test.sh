#!/usr/bin/env bash
# The test command the README gives: lint, then the whole suite (small scale; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check salesexec_assets salesexec_assets_tests scripts
python3 -m pytest salesexec_assets_tests "$@"
