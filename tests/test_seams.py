"""
gnet fidelity at the seams, through real loopback sockets: the errors a
Python user catches (OnClose, Dial, keep-alive), C{Fd()} in C{OnClose},
gnet's signatures in gnet's argument order, UDP C{AsyncWrite}/C{SafeContext},
and where handler failures are logged.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from types import SimpleNamespace
from typing import Any

from twisted.internet import error as terror
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat import _context
from gnetcompat._twistedcompat import SocketError, builtinError
from gnetcompat.errors import (
    ErrEngineInShutdown,
    ErrEOF,
    ErrInvalidOption,
    ErrInvalidTimeDuration,
)
from gnetcompat.testing import HandlerDriver

from ._handlers import Recorder
from ._loopback import LoopbackTestCase

WAIT = 10  # seconds: the bound of every wait below


def _fired() -> tuple[Deferred, Any]:
    """A Deferred and a function firing it once with its argument."""
    d: Deferred = Deferred()

    def fire(value: Any = None) -> None:
        if not d.called:
            d.callback(value)

    return d, fire


def _timeout(d: Deferred) -> Deferred:
    return d.addTimeout(WAIT, reactor)


def _freePort() -> int:
    """A loopback TCP port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Target:
    """A gnet-style logger recording every line (C{WithLogger})."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _add(self, level: str, fmt: str, *args: Any) -> None:
        self.lines.append((level, fmt % args))

    def Debugf(self, fmt: str, *args: Any) -> None:
        self._add("debug", fmt, *args)

    def Infof(self, fmt: str, *args: Any) -> None:
        self._add("info", fmt, *args)

    def Warnf(self, fmt: str, *args: Any) -> None:
        self._add("warn", fmt, *args)

    def Errorf(self, fmt: str, *args: Any) -> None:
        self._add("error", fmt, *args)


# -- item 3: errors a Python user can catch --------------------------------------


class CatchableErrorTests(LoopbackTestCase):
    """OnClose's C{err} and the dial errors are built-in exceptions with errno."""

    @inlineCallbacks
    def test_resetIsConnectionResetError(self) -> Any:
        """
        A peer reset (RST) reaches C{OnClose} as C{ConnectionResetError}
        with C{errno.ECONNRESET} and the syscall in its message; it is not
        Twisted's C{ConnectionLost}.
        """
        closed, fire = _fired()
        handler = Recorder(
            OnTraffic=lambda c: c.Discard(-1) and None, OnClose=lambda c, err: fire(err)
        )
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        _, addr = self.target(eng)
        s = socket.create_connection(addr, timeout=WAIT)
        self.addCleanup(s.close)
        s.sendall(b"x")
        for _ in range(500):  # bounded: until the server saw the byte
            if handler.traffic():
                break
            yield deferLater(reactor, 0.01, lambda: None)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        err = yield _timeout(closed)
        self.assertIsInstance(err, ConnectionResetError)
        self.assertEqual(err.errno, errno.ECONNRESET)
        self.assertIn("read", str(err))
        self.assertNotIsInstance(err, terror.ConnectionLost)

    @inlineCallbacks
    def test_cleanAndLocalClose(self) -> Any:
        """A clean peer close stays L{ErrEOF}; a local close stays C{None}."""
        errs: list[Any] = []
        handler = Recorder(
            OnTraffic=lambda c: gnet.Close if c.Next(-1) == b"bye" else None,
            OnClose=lambda c, err: errs.append(err),
        )
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        a = yield self.connect(eng)
        a.transport.loseConnection()
        yield _timeout(a.lost)
        b = yield self.connect(eng)
        b.transport.write(b"bye")
        yield _timeout(b.lost)
        for _ in range(500):
            if len(errs) == 2:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertIsInstance(errs[0], ErrEOF)
        self.assertIsNone(errs[1])

    @inlineCallbacks
    def test_dialRefusedIsBuiltin(self) -> Any:
        """
        C{Client.Dial} to a closed port fails with the built-in
        C{ConnectionRefusedError} (C{except ConnectionRefusedError:}
        catches it), naming the address; a unix path that does not exist
        gives an C{OSError} naming the path.
        """
        client = gnet.NewClient(gnet.BuiltinEventEngine())
        client.Start()
        self.addCleanup(client.Stop)
        port = _freePort()
        f = yield self.assertFailure(
            client.Dial("tcp", f"127.0.0.1:{port}"), ConnectionRefusedError
        )
        self.assertIs(type(f), ConnectionRefusedError)
        self.assertEqual(f.errno, errno.ECONNREFUSED)
        self.assertIn(f"127.0.0.1:{port}", str(f))
        path = os.path.abspath(self.mktemp())
        f = yield self.assertFailure(client.Dial("unix", path), OSError)
        self.assertIn(path, str(f))
        self.assertFalse(type(f).__module__.startswith("twisted"))

    @inlineCallbacks
    def test_registerRefusedIsBuiltin(self) -> Any:
        """C{Engine.Register}'s result carries the built-in refusal, not Twisted's."""
        eng = yield self.serve(Recorder(), "tcp://127.0.0.1:0")
        port = _freePort()
        r = yield _timeout(eng.Register(gnet.NewNetAddrContext(None, f"tcp://127.0.0.1:{port}")))
        self.assertIs(type(r.Err), ConnectionRefusedError)
        self.assertIn(str(port), str(r.Err))

    @inlineCallbacks
    def test_keepAliveOptionIsInvalidTimeDuration(self) -> Any:
        """
        C{WithTCPKeepAlive(3)} (interval 0.6 s) fails C{Serve} with
        L{ErrInvalidTimeDuration}, the error C{Conn.SetKeepAlivePeriod}
        raises for the same mistake on a live connection.
        """
        f = yield self.assertFailure(
            gnet.Serve(Recorder(), "tcp://127.0.0.1:0", gnet.WithTCPKeepAlive(3)),
            ErrInvalidTimeDuration,
        )
        self.assertIsInstance(f, ErrInvalidOption)
        self.assertIn("TCPKeepAlive", str(f))
        raised, fire = _fired()

        def onOpen(c: Any) -> None:
            try:
                c.SetKeepAlivePeriod(0.5)
            except Exception as e:
                fire(e)
            fire(None)

        eng = yield self.serve(Recorder(OnOpen=onOpen), "tcp://127.0.0.1:0")
        yield self.connect(eng)
        e = yield _timeout(raised)
        self.assertIsInstance(e, ErrInvalidTimeDuration)


class DialUnitTests(SynchronousTestCase):
    """Dial failures that loopback cannot produce, on a memory reactor."""

    def test_dialTimeoutIsBuiltin(self) -> None:
        """A dial that times out fails with the built-in C{TimeoutError} naming the address."""
        mem = MemoryReactorClock()
        client = gnet.NewClient(gnet.BuiltinEventEngine(), reactor=mem)
        client.Start()
        d = client.Dial("tcp", "127.0.0.1:9")
        factory = mem.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(terror.TimeoutError()))
        f = self.failureResultOf(d, TimeoutError)
        self.assertIs(type(f.value), TimeoutError)
        self.assertIn("127.0.0.1:9", str(f.value))

    def test_builtinError(self) -> None:
        """Twisted's connection errors map to built-ins; others pass unchanged."""
        where = "dial tcp h:1"
        dns = builtinError(terror.DNSLookupError("h"), where)
        self.assertIsInstance(dns, socket.gaierror)
        self.assertIn(where, str(dns))
        self.assertIs(type(builtinError(terror.TCPTimedOutError(), where)), TimeoutError)
        self.assertIsInstance(builtinError(terror.ConnectionDone()), ErrEOF)
        reset = builtinError(SocketError("read", OSError(errno.ECONNRESET, "x")))
        self.assertIs(type(reset), ConnectionResetError)
        mine = ErrEngineInShutdown()
        self.assertIs(builtinError(mine, where), mine)
        other = builtinError(terror.ConnectError(osError=errno.EHOSTUNREACH), where)
        self.assertEqual(other.errno, errno.EHOSTUNREACH)


class StopDeadlineUnitTests(SynchronousTestCase):
    """C{Engine.Stop(ctx)}'s deadline on an in-memory engine and a fake clock."""

    def test_deadlineFiresWhenDue(self) -> None:
        """
        On the loop, C{Stop(ctx)} whose 0.2 s deadline the shutdown cannot
        meet fails with the built-in C{TimeoutError} exactly at the
        deadline, not before; the engine stops later, at its
        C{ShutdownTimeout} (1 s), not at the deadline.
        """
        never: Deferred = Deferred()

        class Slow(gnet.BuiltinEventEngine):
            def OnShutdown(self, e: Any) -> Any:
                return never

        driver = HandlerDriver(Slow(), gnet.WithShutdownTimeout(1))
        self.assertTrue(driver.boot())
        # the contexts' wall clock is the driver's fake clock
        self.patch(_context, "time", SimpleNamespace(time=driver.reactor.seconds))
        stopping = driver.engine.Stop(gnet.Context().withTimeout(0.2))
        driver.advance(0.199)
        self.assertNoResult(stopping)
        driver.advance(0.001)
        f = self.failureResultOf(stopping, TimeoutError)
        self.assertIs(type(f.value), TimeoutError)
        self.assertTrue(driver.engine.stopping)
        self.assertFalse(driver.engine.stopped)
        driver.advance(0.799)
        self.assertFalse(driver.engine.stopped)
        driver.advance(0.001)
        self.assertTrue(driver.engine.stopped)


# -- item 4: Fd() in OnClose ------------------------------------------------------


class FdTests(LoopbackTestCase):
    """C{Conn.Fd()} keeps the socket's number (spec §7.4)."""

    @inlineCallbacks
    def test_fdInOnClose(self) -> Any:
        """
        C{Fd()} called for the first time in C{OnClose} (after a peer
        close) returns the socket's number, not -1.
        """
        closed, fire = _fired()
        opened, fireOpen = _fired()
        handler = Recorder(OnOpen=lambda c: fireOpen(c), OnClose=lambda c, err: fire(c.Fd()))
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        client = yield self.connect(eng)
        conn = yield _timeout(opened)
        expected = conn._transport.getHandle().fileno()
        client.transport.loseConnection()
        fd = yield _timeout(closed)
        self.assertEqual(fd, expected)
        self.assertEqual(conn.Fd(), expected)


# -- item 5: gnet's signatures -------------------------------------------------


class SignatureTests(LoopbackTestCase):
    """Every gnet signature in gnet's argument order, with a context."""

    @inlineCallbacks
    def test_executeGivesRunTheContext(self) -> Any:
        """
        C{EventLoop.Execute(ctx, r)}: C{r.Run(ctx)} and a
        L{gnet.RunnableFunc} run on the loop with the context; nothing is
        logged as failed.
        """
        ran, fire = _fired()
        ctx = gnet.NewContext(None, "value")
        seen: list[Any] = []

        class Runnable:
            def Run(self, c: Any) -> None:
                seen.append(("Run", gnet.FromContext(c)))

        def onTraffic(c: Any) -> None:
            c.Discard(-1)
            loop = c.EventLoop()
            loop.Execute(ctx, Runnable())
            loop.Execute(
                ctx, gnet.RunnableFunc(lambda x: seen.append(("func", gnet.FromContext(x))))
            )
            loop.Execute(None, gnet.RunnableFunc(lambda x: fire(x)))

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "tcp://127.0.0.1:0")
        client = yield self.connect(eng)
        client.transport.write(b"go")
        last = yield _timeout(ran)
        self.assertIsNone(last)
        self.assertEqual(seen, [("Run", "value"), ("func", "value")])
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_registerInGnetOrder(self) -> Any:
        """
        C{EventLoop.Register(ctx, addr)} dials C{addr}: the new conn's
        C{Context()} is C{FromContext(ctx)}.
        """
        backend = yield self.serve(Recorder(), "tcp://127.0.0.1:0")
        _, (host, port) = self.target(backend)
        results, fire = _fired()
        contexts: list[Any] = []

        def onOpen(c: Any) -> None:
            if c.Context() is not None:
                contexts.append(c.Context())
                return None
            d = c.EventLoop().Register(gnet.NewContext(None, "back"), f"tcp://{host}:{port}")
            d.addCallback(fire)
            return None

        front = yield self.serve(Recorder(OnOpen=onOpen), "tcp://127.0.0.1:0")
        yield self.connect(front)
        r = yield _timeout(results)
        self.assertIsNone(r.Err)
        self.assertEqual(contexts, ["back"])
        self.assertEqual(r.Conn.Context(), "back")

    @inlineCallbacks
    def test_stopHonoursContextDeadline(self) -> Any:
        """
        C{Engine.Stop(ctx)} with a deadline the shutdown cannot meet fails
        with the built-in C{TimeoutError} at the deadline (the engine still
        stops later); C{Stop(3)} raises C{TypeError} naming C{ctx}.
        """
        never: Deferred = Deferred()

        class Slow(gnet.BuiltinEventEngine):
            def OnShutdown(self, e: Any) -> Any:
                return never  # waited for up to ShutdownTimeout (1 s)

        handler = Slow()
        eng = yield gnet.Serve(handler, "tcp://127.0.0.1:0", gnet.WithShutdownTimeout(1))
        self.addCleanup(lambda: eng.whenStopped())
        e = self.assertRaises(TypeError, eng.Stop, 3)
        self.assertIn("ctx", str(e))
        self.assertFalse(eng.stopping)
        # when the deadline fires is pinned on a fake clock (StopDeadlineUnitTests)
        yield self.assertFailure(eng.Stop(gnet.Context().withTimeout(0.2)), TimeoutError)
        self.assertFalse(eng.stopped)
        yield _timeout(eng.whenStopped())

    @inlineCallbacks
    def test_stopFromThreadWithContext(self) -> Any:
        """From another thread C{Engine.Stop(ctx)} blocks until the engine stopped."""
        eng = yield self.serve(Recorder(), "tcp://127.0.0.1:0")
        result = yield threads.deferToThread(eng.Stop, gnet.Context().withTimeout(WAIT))
        self.assertIsNone(result)
        self.assertTrue(eng.stopped)

    @inlineCallbacks
    def test_deprecatedStop(self) -> Any:
        """
        The deprecated C{gnet.Stop(ctx, protoAddr)} stops the engine served
        under exactly that string; an unknown string (or the same one again)
        raises L{ErrEngineInShutdown}; a non-string raises C{TypeError}.
        """
        addr = "tcp://127.0.0.1:0"
        eng = yield self.serve(Recorder(), addr)
        self.assertRaises(ErrEngineInShutdown, gnet.Stop, None, "tcp://127.0.0.1:1")
        self.assertRaises(TypeError, gnet.Stop, addr)
        yield _timeout(gnet.Stop(None, addr))
        self.assertTrue(eng.stopped)
        self.assertRaises(ErrEngineInShutdown, gnet.Stop, None, addr)


# -- item 6: UDP -----------------------------------------------------------------


class UDPTests(LoopbackTestCase):
    """Server-side UDP conns: C{AsyncWrite} sends at once; C{SafeContext} is its own slot."""

    @inlineCallbacks
    def test_asyncWriteKeepsOrderWithWrite(self) -> Any:
        """
        From one thread, C{AsyncWrite(b"late")} then C{Write(b"late-sync")}
        arrive in that order; the callback runs with C{(None, None)} on that
        thread before C{AsyncWrite} returns.
        """
        kept, fire = _fired()
        calls: list[Any] = []

        def onTraffic(c: Any) -> None:
            c.SetContext("plain")
            c.SetSafeContext("safe")
            calls.append((c.Context(), c.SafeContext()))
            fire(c)

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "udp://127.0.0.1:0")
        client = self.udpClient(eng)
        client.transport.write(b"hi")
        c = yield _timeout(kept)

        def fromThread() -> None:
            c.AsyncWrite(
                b"late", lambda conn, err: calls.append((conn, err, threading.current_thread()))
            )
            c.Write(b"late-sync")

        worker = yield threads.deferToThread(lambda: (fromThread(), threading.current_thread())[1])
        first = yield _timeout(client.next())
        second = yield _timeout(client.next())
        self.assertEqual((first, second), (b"late", b"late-sync"))
        self.assertEqual(calls, [("plain", "safe"), (None, None, worker)])

    @inlineCallbacks
    def test_asyncWriteSendError(self) -> Any:
        """
        A UDP C{AsyncWrite} that the kernel refuses (too big) raises the
        C{OSError} and calls back with it.
        """
        kept, fire = _fired()
        eng = yield self.serve(Recorder(OnTraffic=fire), "udp://127.0.0.1:0")
        client = self.udpClient(eng)
        client.transport.write(b"hi")
        c = yield _timeout(kept)
        calls: list[Any] = []
        e = self.assertRaises(
            OSError, c.AsyncWrite, b"x" * 70000, lambda conn, err: calls.append(err)
        )
        self.assertEqual(e.errno, errno.EMSGSIZE)
        self.assertEqual(calls, [e])


# -- item 7: where handler failures are logged --------------------------------


class HandlerFailureLogTests(LoopbackTestCase):
    """Every handler failure goes to the engine's logger."""

    @inlineCallbacks
    def test_failuresReachWithLogger(self) -> Any:
        """
        Exceptions raised in C{OnOpen}, C{OnTraffic} and C{OnClose} reach
        the C{WithLogger} target, not Twisted's global log.
        """
        target = _Target()
        closed, fire = _fired()
        n = [0]

        def onOpen(c: Any) -> None:
            n[0] += 1
            if n[0] == 1:
                raise ValueError("open failed")

        def onTraffic(c: Any) -> None:
            raise KeyError("traffic failed")

        def onClose(c: Any, err: Any) -> None:
            if n[0] == 2:
                fire(None)
                raise RuntimeError("close failed")

        handler = Recorder(OnOpen=onOpen, OnTraffic=onTraffic, OnClose=onClose)
        eng = yield self.serve(handler, "tcp://127.0.0.1:0", gnet.WithLogger(target))
        a = yield self.connect(eng)
        yield _timeout(a.lost)
        b = yield self.connect(eng)
        b.transport.write(b"x")
        yield _timeout(closed)
        yield _timeout(b.lost)
        text = "\n".join(line for _, line in target.lines)
        for what in (
            "OnOpen raised",
            "open failed",
            "OnTraffic raised",
            "traffic failed",
            "OnClose raised",
            "close failed",
        ):
            self.assertIn(what, text)
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_logFileClosedAtStop(self) -> Any:
        """The file opened for C{WithLogPath} is written to and closed when the engine stops."""
        if not os.path.isdir("/proc/self/fd"):
            raise self.skipTest("needs /proc/self/fd")  # type: ignore[misc]
        path = os.path.abspath(self.mktemp())

        def opened() -> list[str]:
            out = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") == path:
                        out.append(fd)
                except OSError:
                    pass
            return out

        def onOpen(c: Any) -> None:
            raise ValueError("logged to the file")

        eng = yield gnet.Serve(Recorder(OnOpen=onOpen), "tcp://127.0.0.1:0", gnet.WithLogPath(path))
        self.assertEqual(len(opened()), 1)
        client = yield self.connect(eng)
        yield _timeout(client.lost)
        yield _timeout(eng.Stop())
        self.assertEqual(opened(), [])
        with open(path) as f:
            self.assertIn("logged to the file", f.read())
        self.assertEqual(self.flushLoggedErrors(), [])
