"""
Packaging (integration tier): C{python -m build} makes an sdist and a wheel
that C{twine check} accepts; the wheel, installed into a fresh virtual
environment, registers the C{gnetecho} twistd plugin and serves a WebSocket
echo.

The build runs on a copy of the source tree (so the test never writes
C{build/} or C{*.egg-info} into the checkout) and builds the wheel from the
sdist, so a file missing from the sdist breaks the wheel here.  Installing
needs pip's configured index (or its cache); outside CI the test is skipped
when pip cannot reach one; under C{CI=true} it always runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from ._clients import echoSession
from ._procs import LISTENING, freePort, spawn, twistdArgv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: seconds each step may take (pip installs Twisted, cryptography, Autobahn)
BUILD_TIMEOUT = 300
INSTALL_TIMEOUT = 400
COMMAND_TIMEOUT = 60

#: what the copy of the tree leaves out (build outputs, environments, VCS)
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "*venv*",
    "build",
    "dist",
    "*.egg-info",
    "_trial_temp*",
    "apidocs",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "reports",
    "bench-results",
    "dropin.cache",
)


def run(
    argv: list[str], timeout: float, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run C{argv} (bounded by C{timeout}) with this repository off the path;
    output captured, stdout and stderr together.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        timeout=timeout,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


class PackagingTests(TestCase):
    """
    The sdist and wheel as a user gets them.
    """

    timeout = BUILD_TIMEOUT + INSTALL_TIMEOUT + 4 * COMMAND_TIMEOUT + 120

    def check(self, result: subprocess.CompletedProcess[str], what: str) -> str:
        """Fail naming C{what} and its output unless C{result} exited 0."""
        if result.returncode != 0:
            self.fail(f"{what} exited {result.returncode}:\n{result.stdout[-6000:]}")
        return result.stdout

    async def requireIndex(self, work: str) -> None:
        """
        Outside CI, skip when pip can reach no index (nor cache) for the
        build requirements; under CI=true, go on and let the build fail.
        """
        if os.environ.get("CI") == "true":
            return
        probe = await deferToThread(
            run,
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "--dest",
                os.path.join(work, "probe"),
                "setuptools>=68",
            ],
            COMMAND_TIMEOUT,
        )
        if probe.returncode != 0:
            raise SkipTest(f"pip cannot reach a package index: {probe.stdout.strip()[-300:]}")

    async def test_buildInstallServe(self) -> None:
        """
        sdist and wheel build and pass C{twine check}; the sdist holds what
        the wheel needs and no tests; the wheel installs into a clean venv
        whose C{twistd --help} lists C{gnetecho}, and
        C{twistd -n gnetecho} from there echoes a WebSocket message.
        """
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        await self.requireIndex(work)

        src, dist = os.path.join(work, "src"), os.path.join(work, "dist")
        shutil.copytree(ROOT, src, ignore=_NOT_COPIED)
        self.check(
            await deferToThread(
                run, [sys.executable, "-m", "build", "--outdir", dist, src], BUILD_TIMEOUT
            ),
            "python -m build",
        )
        [sdist] = [os.path.join(dist, f) for f in os.listdir(dist) if f.endswith(".tar.gz")]
        [wheel] = [os.path.join(dist, f) for f in os.listdir(dist) if f.endswith(".whl")]
        self.check(
            await deferToThread(
                run,
                [sys.executable, "-m", "twine", "check", "--strict", sdist, wheel],
                COMMAND_TIMEOUT,
            ),
            "twine check",
        )
        self.checkContents(sdist, wheel)

        venv = os.path.join(work, "venv")
        self.check(
            await deferToThread(run, [sys.executable, "-m", "venv", venv], COMMAND_TIMEOUT),
            "python -m venv",
        )
        python = os.path.join(venv, "bin", "python")
        self.check(
            await deferToThread(
                run,
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "-c",
                    os.path.join(ROOT, "constraints.txt"),
                    wheel,
                ],
                INSTALL_TIMEOUT,
            ),
            "pip install (the wheel, into a clean venv)",
        )
        elsewhere = os.path.join(work, "cwd")
        os.makedirs(elsewhere)
        twistd = os.path.join(venv, "bin", "twistd")
        helpText = self.check(
            await deferToThread(run, [twistd, "--help"], COMMAND_TIMEOUT, elsewhere),
            "twistd --help",
        )
        self.assertIn("gnetecho", helpText)

        port = freePort()
        proc = spawn(
            self,
            twistdArgv("gnetecho", "--port", str(port), twistd=twistd),
            cwd=elsewhere,
            env={"PYTHONPATH": ""},
        )
        await proc.waitFor(LISTENING, COMMAND_TIMEOUT)
        self.assertIn(os.path.join(venv, ""), await self.installedFrom(python, elsewhere))
        echoes = await deferToThread(echoSession, port, ["hello from the wheel", b"\x00\x01"])
        self.assertEqual(echoes, ["hello from the wheel", b"\x00\x01"])
        await proc.terminate(COMMAND_TIMEOUT)
        self.assertTrue(proc.endedCleanlyOnTerm, proc.output)

    async def installedFrom(self, python: str, cwd: str) -> str:
        """Where the venv's C{gnetcompat} and the plugin's module come from."""
        return self.check(
            await deferToThread(
                run,
                [
                    python,
                    "-c",
                    "import gnetcompat, twisted.plugins.gnetcompat_plugin as p;"
                    "print(gnetcompat.__file__); print(p.__file__)",
                ],
                COMMAND_TIMEOUT,
                cwd,
            ),
            "import gnetcompat in the venv",
        )

    def checkContents(self, sdist: str, wheel: str) -> None:
        """
        The sdist has the README, the guides it points to, C{py.typed} and
        both plugin files, and no tests; the wheel has the packages,
        C{py.typed} and the plugins, and no C{twisted/__init__.py} (which
        would replace Twisted's own).
        """
        with tarfile.open(sdist) as tar:
            sdistFiles = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        for needed in (
            "README.rst",
            "docs/DEPLOY.rst",
            "docs/PORTING.rst",
            "BENCHMARKS.rst",
            "setup.cfg",
            "pyproject.toml",
            "gnetcompat/py.typed",
            "gnetcompat/__init__.py",
            "gnetcompat/examples/wsecho.py",
            "twisted/plugins/gnetcompat_plugin.py",
            "twisted/plugins/gnetcompat_reactor.py",
        ):
            self.assertIn(needed, sdistFiles)
        self.assertEqual([n for n in sdistFiles if n.startswith("tests")], [])
        with zipfile.ZipFile(wheel) as zf:
            wheelFiles = set(zf.namelist())
        for needed in (
            "gnetcompat/py.typed",
            "gnetcompat/tap.py",
            "gnetcompat/echo/server.py",
            "gnetcompat/echo/service.py",
            "gnetcompat/examples/simple_protocol/server.py",
            "gnetcompat/examples/custom_codec/client.py",
            "twisted/plugins/gnetcompat_plugin.py",
            "twisted/plugins/gnetcompat_reactor.py",
        ):
            self.assertIn(needed, wheelFiles)
        self.assertEqual(
            [
                n
                for n in wheelFiles
                if n.startswith("tests")
                or n.endswith(("twisted/__init__.py", "plugins/__init__.py", "dropin.cache"))
            ],
            [],
        )
