"""
The maintainer checks of C{make lint}, inside the test command: ruff (lint
and formatting), mypy with mypy-zope, pydoctor (warnings as errors) and
towncrier's draft.  Each fails with the tool's own report.  (The
import-linter contracts are C{tests.test_layers}.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
#: seconds one tool may take (mypy's first run, without a cache, is the slowest)
TOOL_TIMEOUT = 600

#: the modules mypy checks with --strict's per-module flags (pyproject.toml)
STRICT_MODULES = {
    # the core: pure definitions, Conn, Engine, the Twisted skin
    "gnetcompat.errors",
    "gnetcompat.interfaces",
    "gnetcompat.options",
    "gnetcompat._action",
    "gnetcompat._addr",
    "gnetcompat._endpoint",
    "gnetcompat._conn",
    "gnetcompat._engine",
    "gnetcompat._protocol",
    # dialling, the client, the entry points, process workers, TLS (issue 20)
    "gnetcompat._dial",
    "gnetcompat.client",
    "gnetcompat._run",
    "gnetcompat._workers",
    "gnetcompat._worker_main",
    "gnetcompat._bus",
    "gnetcompat._handle",
    "gnetcompat._logging",
    "gnetcompat._text",
    "gnetcompat._tls",
}
#: --strict's per-module flags (mypy 2.4), as pyproject.toml sets them for those
STRICT_FLAGS = {
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "disallow_untyped_decorators",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
}

#: a program's handlers, type-checked against gnetcompat's declarations
_ONSHUTDOWN_SAMPLE = """
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

import gnetcompat as gnet
from gnetcompat.interfaces import IEventHandler


class Draining(gnet.BuiltinEventEngine):
    def OnShutdown(self, eng: Any) -> Deferred[None]:
        return succeed(None)


class Plain(gnet.BuiltinEventEngine):
    def OnShutdown(self, eng: Any) -> None:
        pass


@implementer(IEventHandler)
class Own:
    def OnBoot(self, eng: Any) -> object:
        return None

    def OnShutdown(self, eng: Any) -> Deferred[int] | None:
        return None

    def OnOpen(self, c: Any) -> object:
        return None

    def OnClose(self, c: Any, err: BaseException | None) -> object:
        return None

    def OnTraffic(self, c: Any) -> object:
        return None

    def OnTick(self) -> object:
        return None


class Wrong(gnet.BuiltinEventEngine):
    def OnShutdown(self, eng: Any) -> int:  # not a Deferred: an error
        return 1
"""


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

    def test_strictModules(self) -> None:
        """
        pyproject.toml gives mypy --strict's per-module flags for the core
        and for dialling, the client, the entry points, the process workers,
        their bus and TLS: exactly L{STRICT_MODULES}, with every flag on.
        """
        if tomllib is None:
            raise SkipTest("reading pyproject.toml needs tomllib (Python 3.11+)")
        with open(ROOT / "pyproject.toml", "rb") as f:
            overrides = tomllib.load(f)["tool"]["mypy"]["overrides"]
        strict = [o for o in overrides if o.get("disallow_untyped_defs")]
        self.assertEqual(len(strict), 1, strict)
        self.assertEqual(set(strict[0]["module"]), STRICT_MODULES)
        self.assertEqual({flag for flag in STRICT_FLAGS if strict[0].get(flag)}, STRICT_FLAGS)

    def test_onShutdownMayReturnADeferred(self) -> None:
        """
        C{IEventHandler.OnShutdown} declares the Deferred it may return (the
        gnetcompat extension the engine waits for): mypy accepts a handler
        returning one, on a L{gnetcompat.BuiltinEventEngine} subclass and on
        an C{IEventHandler} implementation, and a handler returning C{None};
        it still rejects any other return type.
        """
        text = textwrap.dedent(_ONSHUTDOWN_SAMPLE).lstrip("\n")
        wrongLine = next(n for n, line in enumerate(text.splitlines(), 1) if "-> int:" in line)
        with tempfile.TemporaryDirectory() as tmp:
            sample = Path(tmp) / "handlers.py"
            sample.write_text(text)
            # MYPYPATH: the tree under test, whatever is installed
            env = dict(os.environ, MYPYPATH=str(ROOT))
            proc = subprocess.run(
                [
                    str(tool("mypy")),
                    "--config-file",
                    str(ROOT / "pyproject.toml"),
                    "--cache-dir",
                    str(Path(tmp) / "cache"),
                    "--no-error-summary",
                    str(sample),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=TOOL_TIMEOUT,
            )
        errors = re.findall(r"^\S*handlers\.py:(\d+): error: (.*)$", proc.stdout, re.MULTILINE)
        self.assertEqual(len(errors), 1, proc.stdout + proc.stderr)
        line, message = errors[0]
        self.assertEqual(int(line), wrongLine, message)
        self.assertIn('Return type "int" of "OnShutdown" incompatible', message)

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
