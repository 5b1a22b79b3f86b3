#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the tests that write a real Postgres (the Postgres
# destination, Dagster's own storage in the topology test), only when missing. Idempotent:
# with pg_ctl present it does nothing. The tests start and remove their own throwaway
# cluster (salesexec_assets_tests/postgres_server.py); this script starts no server.
# Uses sudo when not root (and when sudo exists). Called by .ci/run.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | head -n 1) already installed"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-postgres: not root and no sudo: cannot install postgresql" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y postgresql
# Debian's package creates and starts a default cluster; the tests use their own.
"${SUDO[@]}" pg_ctlcluster --help >/dev/null 2>&1 && "${SUDO[@]}" service postgresql stop || true
ls -d /usr/lib/postgresql/*/bin
