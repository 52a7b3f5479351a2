"""
Whether the browser tests can run: Debian's chromium and chromedriver, and
selenium (shared by the browser, status page and TLS suites).
"""

from __future__ import annotations

import os

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
