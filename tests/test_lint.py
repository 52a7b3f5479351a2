"""
The maintainer checks of C{make lint}, inside the test command: ruff (lint
and formatting), mypy with mypy-zope, pydoctor (warnings as errors) and
towncrier's draft.  Each fails with the tool's own report.  (The
import-linter contracts are C{tests.test_layers}.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
#: seconds one tool may take (mypy's first run, without a cache, is the slowest)
TOOL_TIMEOUT = 600


def tool(name: str) -> Path:
    """A console script of the Python running the tests (its virtualenv's bin)."""
    return Path(sys.executable).parent / name


class LintTests(SynchronousTestCase):
    """Every maintainer check passes on the tree as it is."""

    def check(self, name: str, *args: str) -> str:
        exe = tool(name)
        if not exe.exists():
            self.fail(
                f"{exe} not found: install the dev extra (scripts/bootstrap --dev; "
                "scripts/test does)"
            )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [str(exe), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
        )
        output = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, f"{name} {' '.join(args)} failed:\n{output}")
        return output

    def test_ruff(self) -> None:
        """C{ruff check}: no finding anywhere in the tree."""
        self.check("ruff", "check", "--no-cache", ".")

    def test_ruffFormat(self) -> None:
        """C{ruff format --check}: the tree is formatted."""
        self.check("ruff", "format", "--check", "--no-cache", ".")

    def test_mypy(self) -> None:
        """C{mypy} (mypy-zope; strict on the core modules): no error in gnetcompat/."""
        with tempfile.TemporaryDirectory() as cache:
            self.check("mypy", "--cache-dir", cache)

    def test_pydoctor(self) -> None:
        """The API documentation builds with no warning (epytext everywhere)."""
        with tempfile.TemporaryDirectory() as out:
            self.check("pydoctor", "--quiet", f"--html-output={out}", "gnetcompat")

    def test_guides(self) -> None:
        """
        The guides (docs/*.rst: PORTING, DEPLOY) render to HTML with no
        reStructuredText warning (C{scripts/docs}, what C{make docs} runs).
        """
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "docs"), out],
                capture_output=True,
                text=True,
                timeout=TOOL_TIMEOUT,
            )
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertEqual(
                sorted(p.name for p in Path(out).iterdir()),
                ["DEPLOY.html", "PORTING.html"],
            )

    def test_newsFragments(self) -> None:
        """towncrier renders the news fragments."""
        import gnetcompat

        self.check("towncrier", "build", "--draft", "--version", gnetcompat.__version__)
