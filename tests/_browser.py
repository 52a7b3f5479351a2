"""
Whether the browser tests can run: Debian's chromium and chromedriver, and
selenium (shared by the browser, status page and TLS suites).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def requireBrowser(case: TestCase) -> None:
    """Skip C{case} when chromium or chromedriver is missing; under CI=true, fail it."""
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            case.fail(f"browser test cannot run under CI=true: {why}")
        raise SkipTest(why)


def _missing() -> str | None:
    """Why the browser test cannot run here, or C{None}."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt: chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


#: the flags every browser test starts Chromium with (headless, no network
#: chatter of its own, no first-run screens)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
)


def startChromium(profile: str, *extraFlags: str) -> Any:
    """
    A selenium driver for headless Chromium with L{CHROMIUM_FLAGS}, then
    C{extraFlags}, and the profile directory C{profile}; the caller quits it.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, *extraFlags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
