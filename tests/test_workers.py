"""
Multicore mode (L{gnetcompat._workers}) with real worker processes on
127.0.0.1: spreading, the engine-wide count, supervision, engine-wide stops,
graceful SIGTERM of a C{Run} script, and start-up errors.

Every wait is bounded; nothing sleeps on the reactor thread.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest
from zope.interface.verify import verifyObject

import gnetcompat as gnet
from gnetcompat._addr import parseProtoAddr
from gnetcompat._workers import (
    ErrWorkerFailed,
    MulticoreEngine,
    SupervisionPolicy,
    _WorkerProtocol,
    serveMulticore,
)
from gnetcompat.errors import ErrEngineInShutdown, ErrUnsupportedOp
from gnetcompat.interfaces import IEngine
from gnetcompat.options import loadOptions

from ._procs import freePort, spawn
from .mc_handlers import CrashOnBoot, FailsToLoad, PidEcho

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LineClient(LineReceiver):
    """Sends one command per request and collects the answer lines."""

    delimiter = b"\n"

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.waiting: list[Deferred] = []
        self.closed: Deferred = defer.Deferred()

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if self.waiting:
            self.waiting.pop(0).callback(line)

    def request(self, cmd: bytes) -> Deferred:
        d: Deferred = defer.Deferred()
        self.waiting.append(d)
        self.sendLine(cmd)
        return d.addTimeout(10, reactor)

    def connectionLost(self, reason: Any = None) -> None:
        for d in self.waiting:
            d.errback(reason)
        self.waiting = []
        self.closed.callback(self.lines)


async def poll(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until C{predicate()} holds, checking every 50 ms, at most C{timeout} s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.05, lambda: None)


def listeningInodes(port: int) -> set[str]:
    """
    The inodes of the IPv4 TCP sockets listening on C{port}, from
    C{/proc/net/tcp}: one per socket, however many processes hold it.
    """
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


async def connect(port: int, host: str = "127.0.0.1") -> LineClient:
    ep = TCP4ClientEndpoint(reactor, host, port, timeout=5)
    return await connectProtocol(ep, LineClient()).addTimeout(10, reactor)


class WorkersTestCase(unittest.TestCase):
    """Helpers: start an engine and always stop it (bounded) afterwards."""

    timeout = 45

    async def serve(
        self,
        handler: Any,
        *opts: Any,
        addr: str = "tcp://127.0.0.1:0",
        policy: SupervisionPolicy | None = None,
    ) -> MulticoreEngine:
        d = serveMulticore(handler, [parseProtoAddr(addr)], loadOptions(*opts), reactor, policy)
        eng = await d.addTimeout(20, reactor)
        self.addCleanup(self.stopEngine, eng)
        return eng

    async def stopEngine(self, eng: MulticoreEngine) -> None:
        if not eng.stopping:
            eng.requestShutdown(fromLoop=False)
        try:
            await eng.whenStopped().addTimeout(15, reactor)
        except ErrWorkerFailed:
            pass

    async def pids(self, clients: list[LineClient]) -> list[int]:
        return [int(await c.request(b"pid")) for c in clients]


class SpreadAndCountTests(WorkersTestCase):
    async def test_reusePortSpreadsAndCounts(self) -> None:
        """
        With ReusePort each worker has its own socket; 40 connections reach
        both workers, and CountConnections is engine-wide both in the parent
        and inside a worker's OnTraffic, following closes.
        """
        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), gnet.WithReusePort(True))
        verifyObject(IEngine, eng)
        [(host, port)] = eng.addresses
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, 0)
        self.assertRaises(ErrUnsupportedOp, eng.Dup)
        # one listening socket per worker (not one shared by both)
        self.assertEqual(len(listeningInodes(port)), 2)
        clients = [await connect(port) for _ in range(40)]
        pids = await self.pids(clients)
        self.assertGreaterEqual(len(set(pids)), 2)
        self.assertEqual(set(pids), set(eng.workerPids()))
        self.assertEqual(eng.CountConnections(), 40)
        self.assertEqual(int(await clients[0].request(b"count")), 40)
        for c in clients[:15]:
            c.transport.loseConnection()
        await poll(lambda: eng.CountConnections() == 25, what="count 25")
        self.assertEqual(int(await clients[-1].request(b"count")), 25)
        await eng.Stop().addTimeout(15, reactor)
        self.assertTrue(eng.stopped)
        self.assertEqual(eng.CountConnections(), -1)
        self.assertRaises(ErrEngineInShutdown, eng.Validate)

    async def test_sharedSocketSpreads(self) -> None:
        """
        Without ReusePort the workers accept on the parent's one socket
        (which Dup duplicates); concurrent connections reach both workers.
        """
        eng = await self.serve(PidEcho(openDelay=0.02), gnet.WithProcessWorkers(2))
        [(_, port)] = eng.addresses
        fd = eng.Dup()
        try:
            self.assertEqual(socket.socket(fileno=os.dup(fd)).getsockname()[1], port)
        finally:
            os.close(fd)
        clients = await defer.gatherResults(
            [defer.ensureDeferred(connect(port)) for _ in range(40)]
        )
        pids = await defer.gatherResults([c.request(b"pid") for c in clients])
        self.assertGreaterEqual(len(set(pids)), 2)
        self.assertEqual(eng.CountConnections(), 40)


class SupervisionTests(WorkersTestCase):
    async def test_killedWorkerIsReplaced(self) -> None:
        """
        SIGKILL of one worker drops its connections only; the others keep
        echoing, new connections succeed, the slot gets a new process and
        the count forgets the dead worker's connections.
        """
        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), gnet.WithReusePort(True))
        [(_, port)] = eng.addresses
        clients: list[LineClient] = []
        pids: list[int] = []
        while len(set(pids)) < 2 and len(clients) < 60:
            c = await connect(port)
            clients.append(c)
            pids.append(int(await c.request(b"pid")))
        self.assertEqual(len(set(pids)), 2)
        victim = eng.workerPids()[1]
        assert victim is not None
        mine = [c for c, p in zip(clients, pids, strict=True) if p == victim]
        others = [c for c, p in zip(clients, pids, strict=True) if p != victim]
        os.kill(victim, signal.SIGKILL)
        await defer.gatherResults([c.closed for c in mine]).addTimeout(10, reactor)
        for c in others:
            self.assertEqual(await c.request(b"echo hi"), b"echo hi")
        fresh = await connect(port)
        self.assertNotEqual(int(await fresh.request(b"pid")), victim)
        await poll(lambda: eng.workerPids()[1] not in (None, victim), what="replacement")
        await poll(
            lambda: eng.CountConnections() == len(others) + 1, what="count without the dead worker"
        )

    async def test_stoppedWorkerIsReplaced(self) -> None:
        """
        A worker stopped with SIGSTOP sends no heartbeat: within the
        heartbeat timeout (plus the check interval and the restart) it is
        killed and its slot gets a new process, after which every new
        connection is answered (none lands on the stopped worker's socket).
        """
        policy = SupervisionPolicy(initialBackoff=0.05, heartbeatTimeout=2.0)
        eng = await self.serve(
            PidEcho(), gnet.WithProcessWorkers(2), gnet.WithReusePort(True), policy=policy
        )
        [(_, port)] = eng.addresses
        victim = eng.workerPids()[1]
        assert victim is not None
        self.addCleanup(lambda: _signalQuietly(victim, signal.SIGKILL))
        os.kill(victim, signal.SIGSTOP)
        # when it is detected (heartbeatTimeout + one check interval) is
        # pinned on a fake clock: HeartbeatCheckTests
        await poll(
            lambda: eng.workerPids()[1] not in (None, victim) and eng._workers[1].ready,
            20,
            "the stopped worker replaced",
        )
        self.assertEqual(len(eng._crashes[1]), 1)  # counted as a crash of the slot
        clients = await defer.gatherResults(
            [defer.ensureDeferred(connect(port)) for _ in range(20)]
        )
        pids = await defer.gatherResults([c.request(b"pid") for c in clients]).addTimeout(
            10, reactor
        )
        self.assertLessEqual({int(p) for p in pids}, set(eng.workerPids()))
        self.assertNotIn(victim, {int(p) for p in pids})

    def test_heartbeatTimeoutBounds(self) -> None:
        """
        The heartbeat timeout is 0 (off) or 0.5-3600 s; anything else is
        refused with a message naming it.
        """
        for bad in (-1, 0.1, 3601, float("nan"), float("inf")):
            e = self.assertRaises(ValueError, SupervisionPolicy, heartbeatTimeout=bad)
            self.assertIn("heartbeatTimeout", str(e))
        self.assertEqual(SupervisionPolicy(heartbeatTimeout=0).heartbeatInterval, 0)
        self.assertEqual(SupervisionPolicy().heartbeatTimeout, 5.0)

    async def test_crashLoopStopsWithError(self) -> None:
        """
        A handler whose OnBoot raises makes workers crash in a loop; after
        the policy's back-off and crash limit the engine stops with
        ErrWorkerFailed.
        """
        policy = SupervisionPolicy(initialBackoff=0.05, maxBackoff=0.1, maxCrashes=2, window=30)
        d = serveMulticore(
            CrashOnBoot(),
            [parseProtoAddr("tcp://127.0.0.1:0")],
            loadOptions(gnet.WithProcessWorkers(2)),
            reactor,
            policy,
        )
        err = await self.assertFailure(d.addTimeout(30, reactor), ErrWorkerFailed)
        self.assertIn("crashed 2 times", str(err))

    async def test_handlerThatCannotLoadStopsAtOnce(self) -> None:
        """
        A worker that cannot unpickle the handler reports it on the control
        pipe; the engine fails with that message without retrying.
        """
        d = serveMulticore(
            FailsToLoad(),
            [parseProtoAddr("tcp://127.0.0.1:0")],
            loadOptions(gnet.WithProcessWorkers(2)),
            reactor,
        )
        err = await self.assertFailure(d.addTimeout(30, reactor), ErrWorkerFailed)
        self.assertIn("no such handler in the worker", str(err))


class _FakeProcess:
    """A worker's process transport: records the signals sent to it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class HeartbeatCheckTests(unittest.SynchronousTestCase):
    """The parent's heartbeat check on a fake clock, with fake worker processes."""

    def test_silentWorkerKilledWhenDue(self) -> None:
        """
        A serving worker that sends no heartbeat for longer than
        C{heartbeatTimeout} (2.5 s) is killed (SIGKILL) at the first check
        after that (checks every C{heartbeatTimeout / 5} = 0.5 s: at 3 s),
        not before; a worker that keeps beating is left alone.
        """
        clock = task.Clock()
        eng = MulticoreEngine(
            PidEcho(),
            [parseProtoAddr("tcp://127.0.0.1:0")],
            loadOptions(gnet.WithProcessWorkers(2)),
            clock,
            SupervisionPolicy(heartbeatTimeout=2.5),
        )
        silent, beating = _WorkerProtocol(eng, 0), _WorkerProtocol(eng, 1)
        for w in (silent, beating):
            w.transport = _FakeProcess(1000 + w.index)
            w.connectionMade()
            eng._workers[w.index] = w
            eng.controlLine(w, "ready")
        eng._startHeartbeatCheck()
        self.addCleanup(eng._stopHeartbeatCheck)
        for _ in range(5):
            eng.controlLine(beating, "beat")
            clock.advance(0.5)
        eng.controlLine(beating, "beat")
        clock.advance(0.499)
        self.assertEqual((silent.transport.signals, silent.hung), ([], False))
        clock.advance(0.001)
        self.assertEqual((silent.transport.signals, silent.hung), (["KILL"], True))
        self.assertEqual(beating.transport.signals, [])


class ImportPathTests(WorkersTestCase):
    async def test_workerPathIsTheParents(self) -> None:
        """
        A worker's C{sys.path} is exactly the parent's: not the working
        directory, and not a C{PYTHONPATH} entry that appears in the
        environment after the parent started (workers run isolated, C{-I});
        a module planted there is not loaded.
        """
        planted = os.path.abspath(self.mktemp())
        os.makedirs(planted)
        with open(os.path.join(planted, "plantedmodule.py"), "w") as f:
            f.write("raise SystemExit('planted')\n")
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = planted
        try:
            eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2))
        finally:
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old
        [(_, port)] = eng.addresses
        c = await connect(port)
        path, modules = json.loads(await c.request(b"path"))
        self.assertEqual(path, sys.path)
        self.assertNotIn(planted, path)
        self.assertNotIn(os.getcwd(), [os.path.abspath(p) for p in path if p not in sys.path])
        self.assertNotIn("plantedmodule", modules)


class EngineWideStopTests(WorkersTestCase):
    async def test_tickShutdownStopsAll(self) -> None:
        """
        OnBoot/OnShutdown run in every worker, OnTick in worker 0 only, and
        a Shutdown returned by OnTick stops every worker.
        """
        notes = self.mktemp()
        eng = await self.serve(
            PidEcho(notes=notes, tickStop=True), gnet.WithProcessWorkers(2), gnet.WithTicker(True)
        )
        await eng.whenStopped().addTimeout(15, reactor)
        with open(notes) as f:
            events = [line.split() for line in f]
        boots = sorted(int(p) for e, p in events if e == "boot")
        self.assertEqual(len(set(boots)), 2)
        self.assertEqual(sorted(int(p) for e, p in events if e == "shutdown"), boots)
        tickers = {int(p) for e, p in events if e == "tick"}
        self.assertEqual(len(tickers), 1)
        self.assertLessEqual(tickers, set(boots))

    async def test_shutdownActionStopsAll(self) -> None:
        """
        A Shutdown action in one worker's OnTraffic stops all workers; the
        other worker's clients get their OnClose goodbye and EOF.
        """
        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), gnet.WithReusePort(True))
        [(_, port)] = eng.addresses
        clients: list[LineClient] = []
        pids: list[int] = []
        while len(set(pids)) < 2 and len(clients) < 60:
            c = await connect(port)
            clients.append(c)
            pids.append(int(await c.request(b"pid")))
        stopper = clients[0]
        others = [c for c, p in zip(clients, pids, strict=True) if p != pids[0]]
        stopper.sendLine(b"stop")
        await eng.whenStopped().addTimeout(15, reactor)
        for c in others:
            lines = await c.closed
            self.assertEqual(lines[-1], b"bye")

    async def test_inheritedSockets(self) -> None:
        """
        C{fd://N} (an inherited listening socket, as systemd passes): the
        workers share it even with ReusePort asked for, a worker killed is
        replaced on the same socket, and a unix socket's file, which the
        engine did not create, outlives the engine.
        """
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(64)
        self.addCleanup(tcp.close)
        port = tcp.getsockname()[1]
        eng = await self.serve(
            PidEcho(openDelay=0.02),
            gnet.WithProcessWorkers(2),
            gnet.WithReusePort(True),
            addr=f"fd://{tcp.fileno()}",
        )
        self.assertEqual(eng.addresses, [("127.0.0.1", port)])
        self.assertEqual(len(listeningInodes(port)), 1)
        clients = await defer.gatherResults(
            [defer.ensureDeferred(connect(port)) for _ in range(20)]
        )
        pids = await defer.gatherResults([c.request(b"pid") for c in clients])
        self.assertEqual({int(p) for p in pids}, set(eng.workerPids()))
        old = eng.workerPids()[1]
        os.kill(old, signal.SIGKILL)
        await poll(lambda: eng.workerPids()[1] not in (None, old), what="worker 1 replaced")
        await poll(lambda: eng._workers[1].ready, what="worker 1 ready")
        self.assertEqual(len(listeningInodes(port)), 1)
        c = await connect(port)
        self.assertIn(int(await c.request(b"pid")), eng.workerPids())
        await eng.Stop().addTimeout(15, reactor)

        path = os.path.join(tempfile.mkdtemp(), "s.sock")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(path)
        unix.listen(64)
        self.addCleanup(unix.close)
        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), addr=f"fd://{unix.fileno()}")
        self.assertEqual(eng.addresses, [path])
        c = await connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5), LineClient())
        self.assertIn(int(await c.request(b"pid")), eng.workerPids())
        c.transport.loseConnection()
        await eng.Stop().addTimeout(15, reactor)
        self.assertTrue(os.path.exists(path), "the engine removed the inherited socket's file")

    async def test_unixAndUdp(self) -> None:
        """
        A unix socket is shared by the workers; UDP gets a reuse-port socket
        per worker; both answer in multicore mode.
        """
        path = os.path.join(tempfile.mkdtemp(), "s.sock")
        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), addr=f"unix://{path}")
        self.assertEqual(eng.addresses, [path])
        c = await connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5), LineClient())
        self.assertIn(int(await c.request(b"pid")), eng.workerPids())
        fd = eng.DupListener("unix", path)
        os.close(fd)
        c.transport.loseConnection()
        await eng.Stop().addTimeout(15, reactor)
        self.assertFalse(os.path.exists(path))

        class Udp(DatagramProtocol):
            def __init__(self) -> None:
                self.got: Deferred = defer.Deferred()

            def datagramReceived(self, data: bytes, addr: Any) -> None:
                if not self.got.called:
                    self.got.callback(data)

        eng = await self.serve(PidEcho(), gnet.WithProcessWorkers(2), addr="udp://127.0.0.1:0")
        [(host, port)] = eng.addresses
        proto = Udp()
        p = reactor.listenUDP(0, proto, interface="127.0.0.1")
        self.addCleanup(p.stopListening)
        # UDP has no handshake: resend until a worker answers
        for _ in range(50):
            p.write(b"pid\n", (host, port))
            await task.deferLater(reactor, 0.1, lambda: None)
            if proto.got.called:
                break
        self.assertIn(int(await proto.got.addTimeout(10, reactor)), eng.workerPids())


def _signalQuietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class LogPipeTests(unittest.SynchronousTestCase):
    """A worker's log lines never block its reactor when the parent stops reading."""

    def test_fullPipeDropsAndCounts(self) -> None:
        """
        The worker's log observer writing 5000 lines (about 600 KB) into a
        pipe nobody reads returns at once (it used to block in the write
        once the pipe was full); what the pipe took are whole lines, and
        once it drained one warning line says how many were dropped: the
        lines read plus the dropped ones are the 5000 logged.  The pipe's
        own descriptor (where C{print} writes) stays blocking.
        """
        from twisted.logger import Logger, LogLevel

        from gnetcompat._worker_main import _logObserver, _LogPipe

        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        clock = task.Clock()
        pipe = _LogPipe.open(w)
        pipe.clock = clock
        self.addCleanup(lambda: os.close(pipe.fd))
        log = Logger(namespace="app", observer=_logObserver(LogLevel.info, pipe.write))  # type: ignore[arg-type]
        for i in range(5000):
            log.info("line {i} {pad}", i=i, pad="x" * 100)
        self.assertTrue(os.get_blocking(w))
        self.assertGreater(pipe.dropped, 0)

        received = b""
        os.set_blocking(r, False)
        for _ in range(1000):
            try:
                chunk = os.read(r, 65536)
            except BlockingIOError:
                if not pipe.pending and not pipe.dropped:
                    break
                clock.advance(pipe.RETRY)
                continue
            received += chunk
        lines = received.decode().splitlines()
        *logged, last = lines
        self.assertRegex(last, r"^warn \d+ log lines dropped: the log pipe to the parent was full$")
        dropped = int(last.split()[1])
        torn = [line for i, line in enumerate(logged) if line != f"info@app line {i} {'x' * 100}"]
        self.assertEqual(torn[:3], [], "torn lines")
        self.assertEqual(len(logged) + dropped, 5000)
        self.assertEqual(clock.getDelayedCalls(), [])


class StartErrorTests(unittest.TestCase):
    timeout = 20

    def test_unpicklableHandler(self) -> None:
        """
        A handler that cannot be pickled fails the start at once with a
        TypeError naming it; nothing stays bound.
        """
        for handler in (_Unpicklable(), _localHandler()):
            d = gnet.Serve(handler, "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2))
            err = self.failureResultOf(d, TypeError).value
            self.assertIn(type(handler).__qualname__, str(err))
            self.assertIn("WithProcessWorkers", str(err))

    def test_mainOfInteractiveSessionRejected(self) -> None:
        """
        A handler class from the __main__ of a session without a script
        file (python -c) is rejected with a TypeError naming it.
        """
        import subprocess

        code = textwrap.dedent(
            f"""
            import sys; sys.path.insert(0, {ROOT!r})
            import gnetcompat as gnet
            class H(gnet.BuiltinEventEngine):
                pass
            d = gnet.Serve(H(), "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2))
            d.addErrback(lambda f: print(f.type.__name__, f.value))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=15
        )
        self.assertIn("TypeError", out.stdout)
        self.assertIn("__main__", out.stdout)
        self.assertIn("class __main__.H", out.stdout)


class _Unpicklable(gnet.BuiltinEventEngine):
    def __init__(self) -> None:
        self.lock = __import__("threading").Lock()


def _localHandler() -> Any:
    class Local(gnet.BuiltinEventEngine):
        pass

    return Local()


SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet

class Goodbye(gnet.BuiltinEventEngine):
    # defined in the script's __main__: workers re-run this file as __mp_main__
    def OnTraffic(self, c):
        data = c.Next(-1)
        if data.strip() == b"pid":
            c.Write(b"%d\\n" % os.getpid())
        return gnet.None_

    def OnClose(self, c, err):
        if err is None:
            c.Write(b"bye\\n")
        return gnet.None_


if __name__ == "__main__":
    from twisted.logger import globalLogBeginner, textFileLogObserver
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    gnet.Run(Goodbye(), "tcp://127.0.0.1:" + sys.argv[1], gnet.WithProcessWorkers(2),
             gnet.WithReusePort(True))
    print("RUN RETURNED", flush=True)
"""


class RunScriptTests(unittest.TestCase):
    timeout = 45

    async def test_sigtermStopsRunGracefully(self) -> None:
        """
        SIGTERM to a script blocked in Run (multicore, handler class in the
        script's __main__) closes every connection through OnClose (each
        client reads the goodbye line, then EOF), and the script and both
        workers exit 0.
        """
        path = os.path.abspath(self.mktemp() + "-dir")
        os.makedirs(path)
        script = os.path.join(path, "myserver.py")
        with open(script, "w") as f:
            f.write(SCRIPT.format(root=ROOT))
        port = freePort()
        proc = spawn(self, [sys.executable, script, str(port)], cwd=path)
        # wait until both workers listen (the parent logs it), then spread
        await proc.waitFor(r"2 workers serving", 20)
        clients = [await connect(port) for _ in range(8)]
        pids = {int(await c.request(b"pid")) for c in clients}
        proc.signal(signal.SIGTERM)
        for c in clients:
            lines = await c.closed.addTimeout(15, reactor)
            self.assertEqual(lines[-1], b"bye")
        code = await proc.waitForExit(15)
        out = proc.output
        self.assertEqual(code, 0, out)
        self.assertIn("RUN RETURNED", out)
        self.assertEqual(out.count("exited: exit status 0"), 2, out)
        self.assertNotIn("Traceback", out)
        for pid in pids:
            self.assertIn(f"(pid {pid}) exited: exit status 0", out)


MAIN_GLOBAL_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet
{toplevel}

class Http(gnet.BuiltinEventEngine):
    # gnet-examples' http: a response prepared in main() before Run
    def OnTraffic(self, c):
        c.Next(-1)
        c.Write(response)
        return gnet.None_


if __name__ == "__main__":
    response = b"HTTP/1.1 200 OK\\r\\nContent-Length: 12\\r\\n\\r\\nHello World!"
    try:
        gnet.Run(Http(), "tcp://127.0.0.1:" + sys.argv[1], gnet.WithProcessWorkers(2))
    except Exception as e:
        print("RUN RAISED", type(e).__name__, flush=True)
        sys.exit(1)
"""


class MainGlobalsTests(unittest.TestCase):
    """
    State a worker needs but cannot have: a global the handler reads that
    the script sets only under C{if __name__ == "__main__":} (gnet-examples'
    http prepares its response there).  A worker re-imports the script
    without that block, so it fails loudly instead of serving wrong answers.
    """

    timeout = 60

    async def runScript(self, toplevel: str) -> Any:
        path = os.path.abspath(self.mktemp() + "-dir")
        os.makedirs(path)
        script = os.path.join(path, "httpserver.py")
        with open(script, "w") as f:
            f.write(MAIN_GLOBAL_SCRIPT.format(root=ROOT, toplevel=toplevel))
        return spawn(self, [sys.executable, script, str(freePort())], cwd=path)

    async def test_missingGlobalStopsTheStart(self) -> None:
        """
        A global defined only under the main guard: the start fails, C{Run}
        raises L{ErrWorkerFailed}, and the log names the global and the fix.
        """
        proc = await self.runScript("")
        code = await proc.waitForExit(45)
        out = proc.output
        self.assertEqual(code, 1, out)
        self.assertIn("RUN RAISED ErrWorkerFailed", out)
        self.assertIn("'response'", out)
        self.assertIn('if __name__ == "__main__":', out)

    async def test_changedGlobalWarns(self) -> None:
        """
        A global defined at the top level but changed under the main guard:
        the workers serve (with the top-level value) and one warning names it.
        """
        proc = await self.runScript('response = b"placeholder"')
        await proc.waitFor(r"2 workers serving", 30)
        warnings = [line for line in proc.output.splitlines() if "'response'" in line]
        self.assertEqual(len(warnings), 1, proc.output)
        self.assertIn("#warn]", warnings[0])
        proc.signal(signal.SIGTERM)
        self.assertEqual(await proc.waitForExit(30), 0, proc.output)
