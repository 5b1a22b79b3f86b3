#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the end-to-end UI test, only when missing.
# Idempotent: with both /usr/bin/chromium and /usr/bin/chromedriver present it does nothing.
# Uses sudo when not root (and when sudo exists). Called by .ci/run.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and" \
        "$(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2 || echo chromedriver)" \
        "already installed"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-browser: not root and no sudo: cannot install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y chromium chromium-driver
/usr/bin/chromium --version
/usr/bin/chromedriver --version
