"""
The architecture, enforced: the import-linter contracts of C{pyproject.toml}
(the layers of the library, and the library never importing the service)
hold for the code as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


def lintImports() -> Path:
    """The C{lint-imports} of the Python running the tests (its virtualenv's bin)."""
    return Path(sys.executable).parent / "lint-imports"


class LayerContractTests(SynchronousTestCase):
    """C{lint-imports} passes: every contract in C{pyproject.toml} is kept."""

    def test_contractsKept(self) -> None:
        """
        Run C{lint-imports} on the source tree; a broken contract fails this
        test with import-linter's report (which import, along which chain).
        """
        exe = lintImports()
        if not exe.exists():
            self.fail(
                f"{exe} not found: the contracts cannot be checked; install the "
                "dev extra (scripts/bootstrap --dev), which has import-linter"
            )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [str(exe), "--no-cache", "--no-logo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, f"lint-imports failed:\n{output}")
        self.assertIn("0 broken", output)


class WebSocketPackageTests(SynchronousTestCase):
    """
    The WebSocket layer's modules share no private state: no exception to
    the private-access lint (ruff's C{SLF001}) inside C{gnetcompat/websocket/}
    but for Autobahn's own privates, each in the module of Autobahn
    overrides and pinned by a canary in C{tests.test_autobahncompat}.
    """

    def test_noPrivateAccessBetweenOurClasses(self) -> None:
        """
        The package has its modules (one job each, README's Architecture),
        and every C{noqa: SLF001} in it is in C{_autobahncompat.py} and
        names an Autobahn private.
        """
        package = ROOT / "gnetcompat" / "websocket"
        self.assertEqual(
            sorted(path.stem for path in package.glob("*.py")),
            [
                "__init__",
                "_autobahncompat",
                "_budget",
                "_options",
                "_origin",
                "_session",
                "_xormask",
            ],
        )
        exceptions = [
            (path.name, number, line.strip())
            for path in sorted(package.glob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if "SLF001" in line
        ]
        self.assertLessEqual(len(exceptions), 4, exceptions)
        for name, number, line in exceptions:
            self.assertEqual(name, "_autobahncompat.py", (number, line))
            self.assertIn("Autobahn's private", line, (name, number))
