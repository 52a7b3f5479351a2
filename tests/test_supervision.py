"""
Process hygiene of the multicore service, with real processes: what a
worker imports, what the parent does when its workers cannot start, what
signals do, and how a stopped worker is found and replaced.

Every wait is bounded; nothing sleeps on the reactor thread.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gnetcompat import tap

from ._procs import LISTENING, freePort, spawn, spawnTwistd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: modules planted in the working directory: stdlib names the workers import
#: late, names of our own packages, and a sitecustomize
PLANTED = (
    "http",
    "selectors",
    "json",
    "pickle",
    "gnetcompat",
    "autobahn",
    "twisted",
    "sitecustomize",
)


def _syncEcho(port: int, messages: list, deadline: float) -> list:
    """In a thread: echo C{messages} over one WebSocket, retrying the connect until C{deadline}."""
    from websockets.sync.client import connect

    while True:
        try:
            out = []
            with connect(f"ws://127.0.0.1:{port}/", open_timeout=5, close_timeout=5) as ws:
                for m in messages:
                    ws.send(m)
                    out.append(ws.recv(timeout=5))
            return out
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # off the reactor thread


class HeartbeatOptionTests(SynchronousTestCase):
    """C{twistd gnetecho --heartbeat-timeout}: default, bounds, and where it goes."""

    def test_defaultAndService(self) -> None:
        """
        The default is 5 s; the value reaches the EngineService's
        supervision policy (0 turns the heartbeat off).
        """
        for argv, expected in (
            ([], 5.0),
            (["--heartbeat-timeout=2.5"], 2.5),
            (["--heartbeat-timeout=0"], 0.0),
        ):
            o = tap.Options()
            o.parseOptions(argv)
            self.assertEqual(o["heartbeat-timeout"], expected)
            top = tap.makeService(o)
            self.assertEqual(top.getServiceNamed("gnetecho").policy.heartbeatTimeout, expected)

    def test_hostileValues(self) -> None:
        """
        Out-of-range or malformed values stop at start with a message
        naming the option.
        """
        for bad in ("0.1", "-1", "3601", "1e9", "nan", "inf", "abc", ""):
            o = tap.Options()
            e = self.assertRaises(usage.UsageError, o.parseOptions, [f"--heartbeat-timeout={bad}"])
            self.assertIn("--heartbeat-timeout", str(e))


class WorkingDirectoryTests(TestCase):
    """Workers import exactly what the parent would, never the working directory."""

    timeout = 90

    async def test_plantedModulesNeverRun(self) -> None:
        """
        Modules named like the stdlib's and like our own packages, planted
        in the directory twistd runs from (and named by C{PYTHONSTARTUP}),
        are never imported: the multicore service starts, both workers
        serve WebSocket echoes, and no planted module ran.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        marker = os.path.join(cwd, "RAN")
        for name in PLANTED:
            with open(os.path.join(cwd, name + ".py"), "w") as f:
                f.write(
                    textwrap.dedent(
                        f"""
                        import os
                        with open({marker!r}, "a") as f:
                            f.write("{name} %d\\n" % os.getpid())
                        raise SystemExit("planted module {name} ran")
                        """
                    )
                )
        port = freePort()
        proc = spawnTwistd(
            self,
            ["gnetecho", "--port", str(port), "--num-event-loop", "2"],
            cwd=cwd,
            env={"PYTHONSTARTUP": os.path.join(cwd, "json.py")},
        )
        await proc.waitFor(LISTENING, 40)
        await proc.waitFor(r"2 workers serving", 40)
        results = [
            await deferToThread(_syncEcho, port, [f"m{i}", b"\x01" * i], time.monotonic() + 10)
            for i in range(6)
        ]
        self.assertEqual(results, [[f"m{i}", b"\x01" * i] for i in range(6)])
        self.assertFalse(
            os.path.exists(marker), open(marker).read() if os.path.exists(marker) else ""
        )
        await proc.terminate(20)
        self.assertFalse(os.path.exists(marker), proc.output)
        self.assertNotIn("planted module", proc.output)


TAC = """
import sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet
from twisted.application import service
from tests.mc_handlers import ExitsWhileLoading

application = service.Application("crashloop")
gnet.EngineService(
    ExitsWhileLoading(), "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2)
).setServiceParent(application)
"""

CRASH_LATER_TAC = """
import sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet
from gnetcompat._workers import SupervisionPolicy
from twisted.application import service
from tests.mc_handlers import BootsUntilMarked

application = service.Application("crashlater")
gnet.EngineService(
    BootsUntilMarked({marker!r}, {notes!r}),
    "tcp://127.0.0.1:0",
    gnet.WithProcessWorkers(2),
    policy=SupervisionPolicy(initialBackoff=0.1, maxBackoff=0.2),
).setServiceParent(application)
"""

RUN_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet
from gnetcompat._workers import ErrWorkerFailed
from tests.mc_handlers import ExitsWhileLoading

if __name__ == "__main__":
    try:
        gnet.Run(ExitsWhileLoading(), "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2))
    except ErrWorkerFailed as e:
        print("RUN RAISED ErrWorkerFailed:", e, flush=True)
        sys.exit(3)
    print("RUN RETURNED", flush=True)
"""


RUN_ECHO_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from twisted.logger import globalLogBeginner, textFileLogObserver
import gnetcompat as gnet
from gnetcompat.echo import WebSocketEchoServer

if __name__ == "__main__":
    from twisted.internet import reactor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    # the reactor's signal handlers are in place once it runs
    reactor.callWhenRunning(print, "REACTOR RUNNING", flush=True)
    gnet.Run(WebSocketEchoServer(multicore=False), "tcp://127.0.0.1:{port}")
    print("RUN RETURNED", flush=True)
"""


class CrashLoopTests(TestCase):
    """Workers that can never start stop the whole process with a failure status."""

    timeout = 120

    async def test_twistdExitsNonZero(self) -> None:
        """
        Under twistd, an EngineService whose workers all exit while loading
        the handler ends the twistd process with a non-zero exit status
        (not 0, not killed by a signal), within a bound, with one clear
        log line saying why and no traceback.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        with open(os.path.join(cwd, "crash.tac"), "w") as f:
            f.write(TAC.format(root=ROOT))
        proc = spawnTwistd(self, ["-y", "crash.tac"], cwd=cwd)
        code = await proc.waitForExit(90)
        self.assertIsNone(proc.exitSignal, proc.output)
        self.assertEqual(code, 1, proc.output)
        lines = [ln for ln in proc.output.splitlines() if "exiting with status 1" in ln]
        self.assertEqual(len(lines), 1, proc.output)
        self.assertIn("crashed 5 times", lines[0])
        self.assertNotIn("Traceback", proc.output)

    async def test_crashLoopAfterStartLogsOneCriticalLine(self) -> None:
        """
        A crash loop that begins after the engine served (both workers
        booted, then every replacement's C{OnBoot} raises) ends twistd
        with status 1 and exactly one critical line, without a traceback:
        the kill is one error line, each failed start one error line from
        the worker plus the parent's "died unexpectedly", then one
        "crashed 5 times".  (The
        worker logged its traceback at critical level, and an "Unhandled
        error in Deferred" followed the intended line.)
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        marker, notes = os.path.join(cwd, "broken"), os.path.join(cwd, "notes")
        with open(os.path.join(cwd, "crash.tac"), "w") as f:
            f.write(CRASH_LATER_TAC.format(root=ROOT, marker=marker, notes=notes))
        proc = spawnTwistd(self, ["-y", "crash.tac"], cwd=cwd)
        await proc.waitFor(r"2 workers serving", 40)
        with open(notes) as f:
            pids = [int(line.split()[1]) for line in f if line.startswith("boot ")]
        open(marker, "w").close()
        os.kill(pids[0], signal.SIGKILL)
        code = await proc.waitForExit(60)
        self.assertIsNone(proc.exitSignal, proc.output)
        self.assertEqual(code, 1, proc.output)
        lines = proc.output.splitlines()
        critical = [ln for ln in lines if "#critical]" in ln]
        self.assertEqual(len(critical), 1, proc.output)
        self.assertIn("crashed 5 times", critical[0])
        # the kill, then four failed starts (one line each, plus the
        # parent's), then the line giving up
        errors = [ln for ln in lines if "#error]" in ln]
        reasons = [ln for ln in errors if "failed to start: RuntimeError: this handler" in ln]
        self.assertEqual(len(reasons), 4, proc.output)
        self.assertEqual(len(errors), 1 + 2 * 4 + 1, proc.output)
        for bad in ("Traceback", "Unhandled"):
            self.assertNotIn(bad, proc.output)

    async def test_runRaises(self) -> None:
        """
        C{Run} with a handler whose workers all exit while loading raises
        L{ErrWorkerFailed} (the script catches it and exits 3).
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        script = os.path.join(cwd, "server.py")
        with open(script, "w") as f:
            f.write(RUN_SCRIPT.format(root=ROOT))
        proc = spawn(self, [sys.executable, script], cwd=cwd)
        code = await proc.waitForExit(90)
        self.assertEqual(code, 3, proc.output)
        self.assertIn("RUN RAISED ErrWorkerFailed: gnet: worker", proc.output)


class SignalTests(TestCase):
    """What the twistd parent does with SIGHUP and SIGUSR1."""

    timeout = 90

    async def test_sighupLoggedNotFatal(self) -> None:
        """
        SIGHUP to the twistd parent is logged (saying it is ignored) and the
        service keeps serving on the same workers; SIGTERM still stops it
        cleanly.
        """
        port = freePort()
        proc = spawnTwistd(self, ["gnetecho", "--port", str(port), "--num-event-loop", "2"])
        await proc.waitFor(r"2 workers serving", 40)
        proc.signal(signal.SIGHUP)
        await proc.waitFor(r"SIGHUP.*ignored", 10)
        echoed = await deferToThread(_syncEcho, port, ["still here"], time.monotonic() + 10)
        self.assertEqual(echoed, ["still here"])
        self.assertFalse(proc.exited)
        self.assertNotIn("died unexpectedly", proc.output)
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))

    async def test_exitStatusZeroAfterGracefulStop(self) -> None:
        """
        C{twistd gnetecho} stopped by SIGTERM or SIGINT, single-process and
        with two workers, drains (a WebSocket open at the time gets its
        1001) and exits with status 0, not killed by the signal (twistd
        re-raised it: 143/130 in a shell); a script blocked in C{Run}
        exits 0 on SIGINT too.
        """
        from websockets.sync.client import connect

        def held(port: int) -> Any:
            return connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=10)

        def closeCode(ws: Any) -> int | None:
            try:
                ws.recv(timeout=10)
            except Exception:
                pass
            return ws.close_code

        for loops in ("1", "2"):
            for sig in (signal.SIGTERM, signal.SIGINT):
                port = freePort()
                proc = spawnTwistd(
                    self, ["gnetecho", "--port", str(port), "--num-event-loop", loops]
                )
                await proc.waitFor(LISTENING if loops == "1" else r"2 workers serving", 40)
                ws = await deferToThread(held, port)
                proc.signal(sig)
                self.assertEqual(await deferToThread(closeCode, ws), 1001)
                code = await proc.waitForExit(30)
                self.assertEqual(
                    (code, proc.exitSignal), (0, None), (loops, sig, proc.output[-2000:])
                )
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        script = os.path.join(cwd, "server.py")
        port = freePort()
        with open(script, "w") as f:
            f.write(RUN_ECHO_SCRIPT.format(root=ROOT, port=port))
        proc = spawn(self, [sys.executable, script], cwd=cwd)
        await proc.waitFor("REACTOR RUNNING", 30)
        proc.signal(signal.SIGINT)
        self.assertEqual(await proc.waitForExit(30), 0, proc.output)
        self.assertIn("RUN RETURNED", proc.output)

    async def test_sigusr1ReopensLogFile(self) -> None:
        """
        With C{--logfile PATH}, SIGUSR1 rotates the log (twistd's own
        behaviour, kept): PATH.1 holds the old lines, PATH gets new ones,
        and the service keeps running.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        log = os.path.join(cwd, "twistd.log")
        port = freePort()
        proc = spawnTwistd(
            self,
            ["gnetecho", "--port", str(port), "--num-event-loop", "2", "--tick", "0.2"],
            cwd=cwd,
            logfile=log,
        )

        def logged(pattern: str, path: str = log) -> bool:
            try:
                with open(path) as f:
                    return re.search(pattern, f.read()) is not None
            except FileNotFoundError:
                return False

        await _poll(lambda: logged("2 workers serving"), 40, "the workers")
        proc.signal(signal.SIGUSR1)
        await _poll(lambda: os.path.exists(log + ".1"), 10, "the rotated log")
        await _poll(lambda: logged(r"connected-count"), 10, "a new line in the new log")
        self.assertTrue(logged("2 workers serving", log + ".1"))
        self.assertFalse(proc.exited)
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))


async def _poll(predicate, timeout: float, what: str) -> None:
    from twisted.internet import task

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.05, lambda: None)


class StaleStatsDirTests(SynchronousTestCase):
    """Statistics directories left by a killed parent are removed at the next start."""

    def _dir(self, parent: str, name: str, age: float, locked: bool = False) -> str:
        import fcntl

        path = os.path.join(parent, name)
        os.makedirs(path)
        lock = os.path.join(path, "owner.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        if locked:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.addCleanup(os.close, fd)
        else:
            os.close(fd)
        with open(os.path.join(path, "123.stats"), "wb") as f:
            f.write(b"\0" * 8)
        t = time.time() - age
        os.utime(lock, (t, t))
        return path

    def test_onlyStaleOnesRemoved(self) -> None:
        """
        An old directory whose owner lock nobody holds goes; one whose lock
        is held (a live owner), a young one, a symbolic link to one, and a
        directory without a lock file (not ours) stay.
        """
        from gnetcompat.echo.metrics import removeStaleStatsDirs

        parent = os.path.abspath(self.mktemp())
        os.makedirs(parent)
        stale = self._dir(parent, "gnetecho-stats-dead", 3600)
        live = self._dir(parent, "gnetecho-stats-live", 3600, locked=True)
        young = self._dir(parent, "gnetecho-stats-young", 5)
        target = self._dir(parent, "elsewhere", 3600)
        os.symlink(target, os.path.join(parent, "gnetecho-stats-link"))
        os.makedirs(os.path.join(parent, "gnetecho-stats-nolock"))
        self.assertEqual(removeStaleStatsDirs(parent), [stale])
        self.assertFalse(os.path.exists(stale))
        for kept in (live, young, target, os.path.join(parent, "gnetecho-stats-nolock")):
            self.assertTrue(os.path.isdir(kept), kept)

    def test_ensureStatsDirCleansAndLocks(self) -> None:
        """
        C{makeStatsDir} only names a directory; C{ensureStatsDir} (a
        worker's C{OnBoot}) removes stale directories first and creates it
        locked by this process (so another start keeps it, even once old);
        it is removed, and the lock released, when the owner goes.
        """
        import gc

        from gnetcompat.echo import metrics as _metrics

        parent = os.path.abspath(self.mktemp())
        os.makedirs(parent)
        self.patch(_metrics.tempfile, "tempdir", parent)
        stale = self._dir(parent, "gnetecho-stats-dead", 3600)

        class Owner:
            pass

        owner = Owner()
        made = _metrics.makeStatsDir(owner)
        self.assertEqual(os.path.dirname(made), parent)
        self.assertFalse(os.path.exists(made))
        self.assertTrue(os.path.exists(stale))
        _metrics.ensureStatsDir(made)
        self.assertFalse(os.path.exists(stale))
        self.assertIn(made, _metrics._heldLocks)
        self.assertEqual(_metrics.removeStaleStatsDirs(parent, now=time.time() + 3600), [])
        self.assertTrue(os.path.isdir(made))
        del owner
        gc.collect()
        self.assertFalse(os.path.exists(made))
        self.assertNotIn(made, _metrics._heldLocks)
