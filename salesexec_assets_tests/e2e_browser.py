"""Debian's headless Chromium, driven by selenium through Debian's chromedriver.

Nothing is downloaded at run time: selenium is given both binaries' paths, so its
Selenium Manager never looks for a browser. ``scripts/install-browser.sh`` installs the
Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` calls it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SKIP_BROWSER_VAR = "SALESEXEC_SKIP_BROWSER"
WINDOW = (1600, 1000)

# The machine has no internet: without the networking/sync/update switches Chromium keeps
# trying to reach Google's hosts. --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def require_browser() -> None:
    """Fail (not skip) when the browser is missing, unless skipping was asked for."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return
    if os.environ.get(SKIP_BROWSER_VAR) == "1":
        pytest.skip(f"{SKIP_BROWSER_VAR}=1 and {', '.join(missing)} missing")
    pytest.fail(
        f"{', '.join(missing)} not found: the UI test needs Debian's chromium and "
        "chromium-driver. Install them with `bash scripts/install-browser.sh` (CI does so "
        f"in .ci/run), or set {SKIP_BROWSER_VAR}=1 to skip the browser part explicitly.",
        pytrace=False,
    )


@contextmanager
def headless_chromium(profile_dir: Path, *, logs: bool = False) -> Iterator[WebDriver]:
    """A selenium ``WebDriver`` on a fresh profile; the browser is closed on exit.

    ``logs``: keep the console (``driver.get_log("browser")``) and the DevTools network
    events (``driver.get_log("performance")``) for the test to read.
    """
    options = Options()
    options.binary_location = str(CHROMIUM)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
