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
