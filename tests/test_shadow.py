"""
The stdlib-name trap (L{gnetcompat._shadow}): a script named like a
standard module (C{http.py}) gets one clear error instead of a circular
import failure deep inside Twisted; nothing else is affected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

from twisted.trial.unittest import SynchronousTestCase

from gnetcompat import _shadow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FinderTests(SynchronousTestCase):
    """The import hook refuses exactly the script's own file under a standard name."""

    def script(self, name: str) -> str:
        folder = os.path.realpath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write("raise SystemExit('the script must not be imported')\n")
        self.patch(sys, "path", [folder, *sys.path])
        return path

    def test_shadowRefused(self) -> None:
        """C{email.py} first on the path: importing C{email} names the file and the fix."""
        path = self.script("email.py")
        finder = _shadow._Finder("email", path)
        e = self.assertRaises(_shadow.StdlibShadowedError, finder.find_spec, "email")
        self.assertIsInstance(e, ImportError)
        self.assertIn("'email.py'", str(e))
        self.assertIn("Rename it", str(e))

    def test_otherNamesUntouched(self) -> None:
        """Any other module name is left to the normal finders."""
        path = self.script("email.py")
        self.assertIsNone(_shadow._Finder("email", path).find_spec("json"))

    def test_builtinNeverShadowed(self) -> None:
        """A compiled-in module (C{time}) is found before any file: no error."""
        path = self.script("time.py")
        self.assertIsNone(_shadow._Finder("time", path).find_spec("time"))

    def test_guardOnlyForScriptsNamedLikeStdlib(self) -> None:
        """C{guard} installs the hook for C{http.py} run as a script, not for C{server.py}."""
        self.patch(sys, "meta_path", list(sys.meta_path))
        plain = types.SimpleNamespace(__file__=self.script("server.py"))
        self.assertFalse(_shadow.guard(plain))
        trap = types.SimpleNamespace(__file__=self.script("http.py"))
        self.assertTrue(_shadow.guard(trap))
        self.assertIsInstance(sys.meta_path[0], _shadow._Finder)
        self.assertFalse(_shadow.guard(trap))  # once


class ScriptTests(SynchronousTestCase):
    """The way a user meets it: C{python http.py}."""

    def test_httpPy(self) -> None:
        """
        A gnet script saved as C{http.py} fails at once with the clear error
        (exit status 1), not Twisted's circular-import AttributeError.
        """
        folder = self.mktemp()
        os.makedirs(folder)
        with open(os.path.join(folder, "http.py"), "w") as f:
            f.write("import gnetcompat as gnet\nclass Http(gnet.BuiltinEventEngine):\n    pass\n")
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = subprocess.run(
            [sys.executable, "http.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("StdlibShadowedError: your script 'http.py'", out.stderr)
        self.assertNotIn("partially initialized", out.stderr)
