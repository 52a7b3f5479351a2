"""
Rules about the test suite itself (unit tier: reads files, imports modules,
opens no socket):

  - every C{test-case-name} header in gnetcompat/ and twisted/plugins/ names
    test modules that exist and contain tests;
  - no test module imports another test module: shared helpers live in
    C{tests/_*.py} modules (C{_handlers}, C{_loopback}, C{_clients}, ...),
    so that importing one suite never collects or runs another's tests;
  - C{tests/UNIT_MODULES} lists real test modules, and C{scripts/trialrun.py
    --unit}'s guard refuses sockets and processes;
  - C{pyproject.toml} and C{setup.cfg} name only files the repository has.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import socket
from types import ModuleType

from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")

_HEADER = re.compile(r"-\*-\s*test-case-name:\s*(?P<names>[^-]+?)\s*-\*-")


def _trialrun() -> ModuleType:
    """scripts/trialrun.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "_trialrun_under_test", os.path.join(ROOT, "scripts", "trialrun.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sourceFiles() -> list[str]:
    """The library's and the plugins' Python files, relative to the root."""
    found = []
    for top in ("gnetcompat", os.path.join("twisted", "plugins")):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            found.extend(
                os.path.relpath(os.path.join(dirpath, f), ROOT)
                for f in filenames
                if f.endswith(".py")
            )
    return sorted(found)


def testCaseNames(text: str) -> list[str]:
    """
    The modules named by a C{test-case-name} header in the first two lines
    of C{text} (trial reads it there; several are separated by commas).
    """
    for line in text.splitlines()[:2]:
        match = _HEADER.search(line)
        if match:
            return [n.strip() for n in match.group("names").split(",") if n.strip()]
    return []


def importedTestModules(source: str, package: str = "tests") -> list[str]:
    """
    The C{tests.test_*} modules that C{source} (a module of C{package})
    imports, at any depth and in any form: C{import tests.test_x},
    C{from tests.test_x import y}, C{from .test_x import y},
    C{from tests import test_x}, C{from . import test_x}.
    """
    found = []

    def isTestModule(name: str) -> bool:
        return name.startswith(package + ".test_")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if isTestModule(a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif node.level == 1:
                base = package + ("." + node.module if node.module else "")
            else:
                continue
            if isTestModule(base):
                found.append(base)
            elif base == package:
                found.extend(
                    f"{package}.{a.name}" for a in node.names if a.name.startswith("test_")
                )
    return found


class TestCaseNameTests(SynchronousTestCase):
    """
    C{test-case-name} headers point at real tests.
    """

    def test_parser(self) -> None:
        """
        L{testCaseNames} reads one or several names from the first two lines
        only.
        """
        self.assertEqual(
            testCaseNames("# -*- test-case-name: tests.test_a -*-\n"), ["tests.test_a"]
        )
        self.assertEqual(
            testCaseNames('#!/usr/bin/env python\n# -*- test-case-name: a.b, c.d -*-\n"""x"""'),
            ["a.b", "c.d"],
        )
        self.assertEqual(testCaseNames("x = 1\ny = 2\n# -*- test-case-name: a -*-\n"), [])

    def test_headersNameExistingTestModules(self) -> None:
        """
        Every module named in a header exists under tests/ and has at least
        one test.
        """
        loader = TestLoader()
        problems = []
        checked = 0
        for path in sourceFiles():
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                names = testCaseNames(f.read())
            for name in names:
                checked += 1
                if not name.startswith("tests.test_"):
                    problems.append(f"{path}: {name} is not a tests.test_* module")
                    continue
                try:
                    module = importlib.import_module(name)
                except ImportError as e:
                    problems.append(f"{path}: {name} cannot be imported ({e})")
                    continue
                if loader.loadModule(module).countTestCases() == 0:
                    problems.append(f"{path}: {name} has no tests")
        self.assertEqual(problems, [])
        self.assertGreater(checked, 20)


class NoCrossImportTests(SynchronousTestCase):
    """
    No test module imports another test module.
    """

    def test_scanner(self) -> None:
        """
        L{importedTestModules} finds every form of importing a test module,
        including imports inside functions, and nothing else.
        """
        source = (
            "import tests.test_a\n"
            "from tests.test_b import X\n"
            "from .test_c import Y\n"
            "from tests import test_d, _helpers\n"
            "from . import test_e\n"
            "def f():\n"
            "    from .test_f import Z\n"
            "from ._handlers import Recorder\n"
            "from tests._procs import spawn\n"
            "import gnetcompat.testing\n"
        )
        self.assertEqual(
            sorted(importedTestModules(source)),
            [
                "tests.test_a",
                "tests.test_b",
                "tests.test_c",
                "tests.test_d",
                "tests.test_e",
                "tests.test_f",
            ],
        )

    def test_noTestModuleImportsATestModule(self) -> None:
        """
        No C{tests/test_*.py} imports a C{tests.test_*} module: shared
        helpers belong in C{tests/_*.py}.
        """
        offenders = {}
        modules = sorted(
            f for f in os.listdir(TESTS) if f.startswith("test_") and f.endswith(".py")
        )
        for name in modules:
            with open(os.path.join(TESTS, name), encoding="utf-8") as f:
                imported = importedTestModules(f.read())
            if imported:
                offenders[name] = imported
        self.assertEqual(offenders, {})
        self.assertGreater(len(modules), 20)


class UnitTierTests(SynchronousTestCase):
    """
    The unit tier's list and its guard.
    """

    def test_unitModulesExist(self) -> None:
        """
        Every module listed in C{tests/UNIT_MODULES} is a test module under
        tests/ with tests in it.
        """
        names = _trialrun().unitModules()
        self.assertIn("tests.test_conn", names)
        loader = TestLoader()
        for name in names:
            self.assertTrue(name.startswith("tests.test_"), name)
            self.assertTrue(os.path.exists(os.path.join(ROOT, *name.split(".")) + ".py"), name)
            self.assertGreater(loader.loadModule(importlib.import_module(name)).countTestCases(), 0)

    def test_guardRefusesSocketsAndProcesses(self) -> None:
        """
        The C{--unit} guard raises for a socket or a process and lets other
        audit events (and ctypes' C{ldconfig -p}) through.
        """
        trialrun = _trialrun()
        guard, violation = trialrun._unitGuard, trialrun.UnitTierError
        self.assertRaises(violation, guard, "socket.__new__", (None, socket.AF_INET, 1, 0))
        self.assertRaises(violation, guard, "subprocess.Popen", ("/usr/bin/twistd", [], None, None))
        self.assertRaises(violation, guard, "os.posix_spawn", (b"/bin/sh", [], {}))
        self.assertRaises(violation, guard, "os.fork", ())
        self.assertIsNone(
            guard("subprocess.Popen", ("/sbin/ldconfig", ["ldconfig", "-p"], None, {}))
        )
        self.assertIsNone(guard("open", ("/etc/hosts", "r", 0)))
        self.assertIsNone(guard("import", ("os", None, [], [], [])))


#: a file name in a configuration file: something.md/.rst/.txt/.cfg/.toml/.in
_FILE_NAME = re.compile(r"(?<![\w.-])[\w./-]+\.(?:md|rst|txt|cfg|toml|in)\b")
#: a pattern of names, not a file: placeholders in capitals (ISSUE.TYPE.rst)
_PLACEHOLDERS = re.compile(r"[A-Z]+(?:\.[A-Z]+)+\.\w+")


class ConfigurationReferenceTests(SynchronousTestCase):
    """The build and tool configuration names only files the repository has."""

    def test_namedFilesExist(self) -> None:
        """
        Every file that C{pyproject.toml} and C{setup.cfg} name, in a
        setting or in a comment (a style guide, the changelog, the
        README), exists in the repository, relative to its root: a reader
        or a tool sent to it finds it.
        """
        missing = []
        for config in ("pyproject.toml", "setup.cfg"):
            with open(os.path.join(ROOT, config)) as f:
                text = f.read()
            names = {n for n in _FILE_NAME.findall(text) if not _PLACEHOLDERS.fullmatch(n)}
            self.assertIn("NEWS.rst" if config == "pyproject.toml" else "README.rst", names)
            missing += [
                f"{config}: {n}" for n in sorted(names) if not os.path.exists(os.path.join(ROOT, n))
            ]
        self.assertEqual(missing, [])
