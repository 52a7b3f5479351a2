"""
Tests for the engine.

The first classes are unit tests on L{gnetcompat.testing.HandlerDriver}
(ticker on a fake clock, C{EventLoop}, C{Engine} state).  The rest are
integration tests on real loopback sockets inside trial's reactor, porting
the behaviours of gnet's C{gnet_test.go} (spec §16.2).  Every wait there is
bounded by the class's C{timeout}.
"""

from __future__ import annotations

import datetime
import io
import os
import random
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

import gnetcompat as gnet
from gnetcompat._addr import _ipv6Available
from gnetcompat.errors import (
    ErrClosed,
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrEngineShutdown,
    ErrInvalidNetworkAddress,
    ErrInvalidTimeDuration,
    ErrNilRunnable,
    ErrUnsupportedOp,
)
from gnetcompat.examples.codec import CodecServer
from gnetcompat.interfaces import IEngine, IEventHandler
from gnetcompat.testing import HandlerDriver

from ._handlers import Recorder, booted
from ._loopback import FrameClient, LoopbackTestCase, StreamClient

GREETING = b"andypan\r\n"


# -- unit tests: ticker, EventLoop, Engine state ----------------------------


class TickerTests(SynchronousTestCase):
    """C{OnTick} on an injected clock (spec §4.6, §13)."""

    def tickDriver(self, onTick: Callable[[], Any]) -> tuple[HandlerDriver, list[float]]:
        times: list[float] = []
        box: list[HandlerDriver] = []

        def tick() -> Any:
            times.append(box[0].reactor.seconds())
            return onTick()

        driver = HandlerDriver(Recorder(OnTick=tick), gnet.WithTicker(True))
        box.append(driver)
        driver.boot()
        return driver, times

    def test_firstTickAtBoot(self) -> None:
        """The first C{OnTick} runs right at start, before any time passes."""
        _driver, times = self.tickDriver(lambda: (5, gnet.None_))
        self.assertEqual(times, [0.0])

    def test_delaysHonouredExactly(self) -> None:
        """Each returned delay (1, 2, 0.5, a timedelta of 3 s) schedules the next call exactly."""
        delays = iter([1, 2, 0.5, datetime.timedelta(seconds=3), 100])
        driver, times = self.tickDriver(lambda: (next(delays), None))
        expected = [0.0, 1.0, 3.0, 3.5, 6.5]
        for t in expected[1:]:
            driver.advance(t - driver.reactor.seconds() - 0.001)
            self.assertEqual(len(times), expected.index(t))
            driver.advance(0.001)
            self.assertAlmostEqual(times[-1], t, places=9)
        self.assertEqual(len(times), len(expected))

    def test_noTickerWithoutOption(self) -> None:
        """Without C{WithTicker(True)}, C{OnTick} is never called."""
        handler = Recorder()
        driver = booted(handler)
        driver.advance(10)
        self.assertNotIn("tick", handler.names())

    def test_shutdownFromOnTick(self) -> None:
        """C{Shutdown} from C{OnTick} stops the engine (OnShutdown, conns closed) and the ticker."""
        n = [0]

        def onTick() -> Any:
            n[0] += 1
            return 1, (gnet.Shutdown if n[0] == 3 else gnet.None_)

        handler = Recorder(OnTick=onTick)
        driver = HandlerDriver(handler, gnet.WithTicker(True))
        driver.boot()
        peer = driver.connect()
        driver.advance(1)
        driver.advance(1)
        self.assertTrue(driver.engine.stopped)
        self.assertTrue(peer.closedByServer)
        self.assertIsNone(handler.closes()[0][2])
        driver.advance(10)
        self.assertEqual(n[0], 3)

    def test_closeFromOnTickIgnored(self) -> None:
        """C{Close} from C{OnTick} is ignored."""
        driver, times = self.tickDriver(lambda: (1, gnet.Close))
        driver.advance(1)
        self.assertFalse(driver.engine.stopping)
        self.assertEqual(len(times), 2)

    def test_noneResultTicksAgainInOneSecond(self) -> None:
        """
        C{OnTick} returning C{None} (a forgotten C{return}) is called again
        after 1 s, never at once (issue 18: it spun a core); the error is
        logged (see C{tests.test_results}).
        """
        n = [0]

        def onTick() -> Any:
            n[0] += 1
            return None if n[0] < 3 else (50, None)

        driver, times = self.tickDriver(onTick)
        for _ in range(10):
            driver.advance(0)
        self.assertEqual(times, [0.0])
        driver.advance(1)
        driver.advance(1)
        self.assertEqual(times, [0.0, 1.0, 2.0])

    def test_deferredTick(self) -> None:
        """A tick returning a Deferred: the next tick waits for it, then for its delay."""
        pending: list[Deferred] = []

        def onTick() -> Any:
            d: Deferred = Deferred()
            pending.append(d)
            return d

        driver, times = self.tickDriver(onTick)
        driver.advance(10)
        self.assertEqual(times, [0.0])
        pending[0].callback((2, gnet.None_))
        driver.advance(1.999)
        self.assertEqual(len(times), 1)
        driver.advance(0.001)
        self.assertEqual(times, [0.0, 12.0])
        pending[1].callback((0, gnet.Shutdown))
        self.assertTrue(driver.engine.stopped)

    def test_deferredTickFailure(self) -> None:
        """A tick's Deferred failing is logged and the ticker keeps going."""
        ds: list[Deferred] = []
        driver, times = self.tickDriver(lambda: ds.append(Deferred()) or ds[-1])
        ds[0].errback(ValueError("tick"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        driver.advance(5)
        self.assertGreater(len(times), 1)

    def test_onTickRaises(self) -> None:
        """C{OnTick} raising is logged; the engine keeps running and ticks again later."""

        def onTick() -> Any:
            raise RuntimeError("tick")

        driver, times = self.tickDriver(onTick)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(driver.engine.stopping)
        driver.advance(5)
        self.assertGreater(len(times), 1)
        self.flushLoggedErrors(RuntimeError)

    def test_tickerStopsWithEngine(self) -> None:
        """After an external stop, no further C{OnTick} calls happen."""
        driver, times = self.tickDriver(lambda: (1, None))
        self.successResultOf(driver.stop())
        driver.advance(10)
        self.assertEqual(times, [0.0])

    def test_asyncWriteFromTick(self) -> None:
        """
        C{OnTick} pushes data to connections with the thread-safe C{AsyncWrite}
        (gnet's push example).
        """
        conns: list[Any] = []

        def onTick() -> Any:
            for c in conns:
                c.AsyncWrite(b"push")
            return 1, None

        driver = HandlerDriver(
            Recorder(OnTick=onTick, OnOpen=lambda c: conns.append(c)), gnet.WithTicker(True)
        )
        driver.boot()
        peer = driver.connect()
        driver.advance(1)
        driver.advance(1)
        self.assertEqual(peer.received(), b"pushpush")


class Runnable:
    """A gnet Runnable: C{Run(ctx)} records the context and returns C{result}."""

    def __init__(self, result: Any = None) -> None:
        self.ran = 0
        self.result = result
        self.contexts: list[Any] = []

    def Run(self, ctx: Any) -> Any:
        self.ran += 1
        self.contexts.append(ctx)
        return self.result


class EventLoopTests(SynchronousTestCase):
    """C{Conn.EventLoop()}: C{Execute}, C{Schedule}, C{Close} (spec §8.2)."""

    def setUp(self) -> None:
        self.handler = Recorder()
        self.driver = booted(self.handler)
        self.peer = self.driver.connect()
        self.loop = self.peer.conn.EventLoop()

    def test_executeIsQueued(self) -> None:
        """
        C{Execute(ctx, r)} (gnet's order) queues C{r.Run(ctx)}, a
        L{gnet.RunnableFunc} or a plain callable C{f(ctx)} on the loop, in
        order, each given the context.
        """
        order: list[Any] = []
        ctx = gnet.NewContext(None, "v")
        r = Runnable()
        self.loop.Execute(ctx, r)
        self.loop.Execute(ctx, gnet.RunnableFunc(lambda c: order.append(("func", c))))
        self.loop.Execute(None, lambda c: order.append(("fn", c)))
        self.loop.Execute(runnable=lambda c: order.append(("kw", c)))
        self.assertEqual((r.ran, order), (0, []))
        self.driver.runPending()
        self.assertEqual(r.contexts, [ctx])
        self.assertEqual(order, [("func", ctx), ("fn", None), ("kw", None)])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_executeWrongOrder(self) -> None:
        """
        gnetcompat's old C{Execute(r)} order, a runnable whose C{Run} takes
        no context and a non-runnable raise C{TypeError} naming the argument,
        in the caller, instead of failing later on the loop.
        """

        class OldRunnable:
            def Run(self) -> None:
                pass

        e = self.assertRaises(TypeError, self.loop.Execute, Runnable())
        self.assertIn("ctx", str(e))
        e = self.assertRaises(TypeError, self.loop.Execute, None, OldRunnable())
        self.assertIn("runnable", str(e))
        e = self.assertRaises(TypeError, self.loop.Execute, None, lambda: None)
        self.assertIn("runnable", str(e))
        e = self.assertRaises(TypeError, self.loop.Execute, None, 42)
        self.assertIn("runnable", str(e))
        self.assertRaises(TypeError, gnet.RunnableFunc, 42)

    def test_executeNil(self) -> None:
        """C{Execute(ctx, None)} (and C{Execute(None)}) raises L{ErrNilRunnable}."""
        self.assertRaises(ErrNilRunnable, self.loop.Execute, None, None)
        self.assertRaises(ErrNilRunnable, self.loop.Execute, None)

    def test_executeShutdown(self) -> None:
        """
        A runnable returning or raising L{ErrEngineShutdown} stops the engine;
        other errors do not.
        """
        self.loop.Execute(None, Runnable(ValueError("ignored")))
        self.driver.runPending()
        self.assertFalse(self.driver.engine.stopping)
        self.loop.Execute(None, Runnable(ErrEngineShutdown()))
        self.driver.runPending()
        self.assertTrue(self.driver.engine.stopped)

    def test_executeRaisingShutdown(self) -> None:
        """A runnable raising L{ErrEngineShutdown} stops the engine."""

        def fn(ctx: Any) -> None:
            raise ErrEngineShutdown()

        self.loop.Execute(None, fn)
        self.driver.runPending()
        self.assertTrue(self.driver.engine.stopped)

    def test_executeAfterStop(self) -> None:
        """C{Execute} after the engine stopped raises L{ErrEngineInShutdown}."""
        self.successResultOf(self.driver.stop())
        self.assertRaises(ErrEngineInShutdown, self.loop.Execute, None, Runnable())

    def test_scheduleUnsupported(self) -> None:
        """C{Schedule(ctx, r, delay)} raises L{ErrUnsupportedOp} before and after shutdown."""
        self.assertRaises(ErrUnsupportedOp, self.loop.Schedule, None, Runnable(), 1.0)
        self.successResultOf(self.driver.stop())
        self.assertRaises(ErrUnsupportedOp, self.loop.Schedule, None, Runnable(), 1.0)

    def test_registerEnrollWrongOrder(self) -> None:
        """
        C{EventLoop.Register(addr, ctx)}/C{Enroll(sock, ctx)} (arguments not in
        gnet's order) raise C{TypeError} naming C{ctx}, not
        L{ErrInvalidNetworkAddress}.
        """
        ctx = gnet.NewContext(None, 1)
        e = self.assertRaises(TypeError, self.loop.Register, "tcp://127.0.0.1:1", ctx)
        self.assertIn("ctx", str(e))
        e = self.assertRaises(TypeError, self.loop.Enroll, object(), ctx)
        self.assertIn("ctx", str(e))

    def test_closeSynchronous(self) -> None:
        """C{EventLoop.Close(c)} closes now with C{OnClose(c, None)} and returns C{None}."""
        self.assertIsNone(self.loop.Close(self.peer.conn))
        self.assertEqual(len(self.handler.closes()), 1)
        self.assertTrue(self.peer.closedByServer)


class EngineStateTests(SynchronousTestCase):
    """C{Engine} state and errors around start and stop (spec §5, §4.1, §4.2)."""

    def test_verifyInterfaces(self) -> None:
        """L{Engine} provides L{IEngine}; L{BuiltinEventEngine} provides L{IEventHandler}."""
        driver = booted(Recorder())
        self.assertTrue(verifyObject(IEngine, driver.engine))
        self.assertTrue(verifyObject(IEventHandler, gnet.BuiltinEventEngine()))

    def test_onBootState(self) -> None:
        """In C{OnBoot}: C{Validate()} is None and C{CountConnections()} is 0."""
        seen: list[Any] = []
        HandlerDriver(
            Recorder(OnBoot=lambda e: seen.append((e.Validate(), e.CountConnections())))
        ).boot()
        self.assertEqual(seen, [(None, 0)])

    def test_stopTwice(self) -> None:
        """C{Stop} on the reactor thread returns a Deferred; a second C{Stop} raises."""
        driver = booted(Recorder())
        d = driver.engine.Stop()
        self.assertIsInstance(d, Deferred)
        self.successResultOf(d)
        self.assertRaises(ErrEngineInShutdown, driver.engine.Stop)
        self.assertRaises(ErrEngineInShutdown, driver.engine.Validate)
        self.assertEqual(driver.engine.CountConnections(), -1)

    def test_onShutdownCalledOnce(self) -> None:
        """C{OnShutdown} runs once even when several conns ask for Shutdown."""
        handler = Recorder(OnClose=lambda c, e: gnet.Shutdown)
        driver = booted(handler)
        driver.connect()
        driver.connect()
        self.successResultOf(driver.stop())
        self.assertEqual(handler.names().count("shutdown"), 1)

    def test_emptyEngine(self) -> None:
        """
        A listener-less engine is invalid: C{Validate}/C{Dup} raise
        L{ErrEmptyEngine}, count -1.
        """
        eng = gnet.Engine(gnet.BuiltinEventEngine(), [])
        self.assertRaises(ErrEmptyEngine, eng.Validate)
        self.assertRaises(ErrEmptyEngine, eng.Dup)
        self.assertEqual(eng.CountConnections(), -1)

    def test_handlerMissingCallbacks(self) -> None:
        """An object that is not an event handler is refused with C{TypeError}."""
        self.assertRaises(TypeError, gnet.Engine, object(), [])

    def test_builtinDefaults(self) -> None:
        """L{BuiltinEventEngine}'s six methods are callable with a None engine and conn."""
        h = gnet.BuiltinEventEngine()
        self.assertEqual(h.OnBoot(None), gnet.None_)
        self.assertIsNone(h.OnShutdown(None))
        self.assertEqual(h.OnOpen(None), (None, gnet.None_))
        self.assertEqual(h.OnClose(None, None), gnet.None_)
        self.assertEqual(h.OnTraffic(None), gnet.None_)
        self.assertEqual(h.OnTick(), (0.0, gnet.None_))

    def test_builtinEngineServes(self) -> None:
        """An unmodified L{BuiltinEventEngine} serves: data stays buffered, nothing is written."""
        driver = booted(gnet.BuiltinEventEngine())
        peer = driver.connect()
        peer.send(b"abc")
        self.assertEqual(peer.received(), b"")
        self.assertEqual(peer.conn.InboundBuffered(), 3)
        peer.disconnect()
        self.assertEqual(driver.engine.CountConnections(), 0)


# -- integration helpers ------------------------------------------------------


class Problems:
    """Collects failed checks made inside callbacks (asserting there would only be logged)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            self.items.append(what)

    def raises(self, exc: type, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            fn(*args)
        except exc as e:
            return e
        except Exception as e:
            self.items.append(f"{fn}: {e!r} instead of {exc.__name__}")
        else:
            self.items.append(f"{fn}: did not raise {exc.__name__}")
        return None


# -- the echo matrix (TestServer) ---------------------------------------------


class MatrixHandler(gnet.BuiltinEventEngine):
    """gnet's TestServer handler: greeting, Context = conn, sync or async echo."""

    def __init__(self, style: str, expectedStream: int) -> None:
        self.style = style
        self.expected = expectedStream
        self.problems = Problems()
        self.connected = self.disconnected = 0
        self.countAtEnd: int | None = None
        self.pool = ThreadPoolExecutor(max_workers=1)  # one worker keeps the echo in order
        self.asyncCallbacks = 0
        self.loopsUsed: set[int] = set()

    def OnBoot(self, eng: Any) -> Any:
        self.eng = eng
        return gnet.None_

    def OnOpen(self, c: Any) -> Any:
        self.connected += 1
        self.loopsUsed.add(c.EventLoop().index)
        self.problems.check(
            c.LocalAddr() is not None and c.RemoteAddr() is not None, "addresses in OnOpen"
        )
        self.problems.check(
            self.eng.CountConnections() >= 1, "the new conn is counted before OnOpen"
        )
        c.SetContext(c)
        return GREETING, gnet.None_

    def OnClose(self, c: Any, err: Any) -> Any:
        self.problems.check(c.Context() is c, "Context in OnClose is the conn")
        self.disconnected += 1
        if self.disconnected == self.connected == self.expected:
            self.countAtEnd = self.eng.CountConnections()
            return gnet.Shutdown
        return gnet.None_

    def _cb(self, c: Any, err: Any) -> None:
        self.asyncCallbacks += 1
        self.problems.check(err is None, f"async callback err {err!r}")

    def OnTraffic(self, c: Any) -> Any:
        udp = isinstance(c, gnet.UDPConn)
        if self.style in ("write", "writev"):
            data = c.Next(-1)
            if self.style == "write" or udp:
                n = c.Write(data)
            else:
                mid = len(data) // 2
                n = c.Writev([data[:mid], data[mid:]])
            self.problems.check(n == len(data), "sync write length")
            return gnet.None_
        buf = io.BytesIO()
        n = c.WriteTo(buf)
        self.problems.check(n > 0, "WriteTo count")
        data = buf.getvalue()
        if udp:
            self.pool.submit(c.AsyncWrite, data, None)
        elif self.style == "asyncwrite":
            self.pool.submit(c.AsyncWrite, data, self._cb)
        else:
            mid = len(data) // 2
            self.pool.submit(c.AsyncWritev, [data[:mid], data[mid:]], self._cb)
        return gnet.None_


class EchoMatrix(LoopbackTestCase):
    """
    gnet's echo matrix (TestServer, spec §16.1/§16.2) over tcp, udp, unix and
    multi-address sets, with sync C{Write}/C{Writev} and C{AsyncWrite}/
    C{AsyncWritev} from a worker thread; 10 clients per address.  The
    subclasses add the tests (one loop, several loops).
    """

    clients = 10
    rng = random.Random(1314)

    def addresses(self, proto: str, style: str) -> list[str]:
        unix = lambda: "unix://" + self.unixPath()  # noqa: E731
        if proto == "tcp":
            return ["tcp://127.0.0.1:0"]
        if proto == "udp":
            return ["udp://127.0.0.1:0"]
        if proto == "unix":
            return [unix()]
        if style in ("writev", "asyncwritev"):
            return ["tcp://127.0.0.1:0", "tcp4://127.0.0.1:0", unix(), unix()]
        return [
            "tcp://127.0.0.1:0",
            "tcp4://127.0.0.1:0",
            "udp://127.0.0.1:0",
            "udp4://127.0.0.1:0",
            unix(),
            unix(),
        ]

    @inlineCallbacks
    def streamClient(self, eng: Any, i: int) -> Any:
        client = yield self.connect(eng, i)
        self.assertEqual((yield client.read(len(GREETING))), GREETING)
        for size in (self.rng.randint(1, 1 << 20), self.rng.randint(1, 64 << 10)):
            payload = os.urandom(size)
            client.transport.write(payload)
            echoed = yield client.read(size)
            self.assertEqual(echoed, payload)
        return client

    @inlineCallbacks
    def udpRounds(self, eng: Any, i: int) -> Any:
        client = self.udpClient(eng, i)
        for _ in range(3):
            payload = os.urandom(1024)
            self.assertEqual((yield client.request(payload)), payload)

    @inlineCallbacks
    def runMatrix(self, proto: str, style: str, *loopOpts: Any) -> Any:
        addrs = self.addresses(proto, style)
        stream = [i for i, a in enumerate(addrs) if not a.startswith("udp")]
        handler = MatrixHandler(style, self.clients * len(stream))
        self.addCleanup(handler.pool.shutdown)
        opts = [gnet.WithTCPKeepAlive(60), gnet.WithTCPKeepInterval(10), gnet.WithTCPKeepCount(10)]
        opts.append(gnet.WithTCPNoDelay(gnet.TCPNoDelay if len(addrs) > 1 else gnet.TCPDelay))
        eng = yield self.serve(handler, addrs, *opts, *loopOpts)
        work = []
        for i, a in enumerate(addrs):
            for _ in range(self.clients):
                work.append(
                    self.udpRounds(eng, i) if a.startswith("udp") else self.streamClient(eng, i)
                )
        results = yield defer.gatherResults(work, consumeErrors=True)
        if stream:
            self.assertEqual(eng.CountConnections(), self.clients * len(stream))
            for client in results:
                if client is not None:
                    client.transport.loseConnection()
        else:
            yield eng.Stop()
        yield eng.whenStopped()
        self.assertEqual(handler.problems.items, [])
        if stream:
            self.assertEqual(handler.connected, handler.disconnected)
            self.assertEqual(handler.connected, self.clients * len(stream))
            self.assertEqual(handler.countAtEnd, 0)
        if style.startswith("async") and stream:
            self.assertGreater(handler.asyncCallbacks, 0)
        return eng, handler


class EchoMatrixTests(EchoMatrix):
    """The echo matrix with one event loop."""


def _addTest(cls: type, test: Callable[..., Any], name: str, doc: str) -> None:
    """Add C{test} to C{cls} as C{name}, with C{doc} as its docstring."""
    test.__name__ = name
    test.__doc__ = doc
    setattr(cls, name, test)


def _addMatrix() -> None:
    for proto in ("tcp", "udp", "unix", "multi"):
        for style in ("write", "writev", "asyncwrite", "asyncwritev"):
            if proto == "udp" and style.endswith("v"):
                continue  # UDP has no Writev (gnet's matrix skips it too)

            def test(self: EchoMatrixTests, proto: str = proto, style: str = style) -> Any:
                return self.runMatrix(proto, style)

            _addTest(
                EchoMatrixTests,
                test,
                f"test_{proto}_{style}",
                f"Echo over {proto} with {style}: greeting first, Context is the conn, "
                "every payload echoed byte for byte, shutdown when all disconnected with "
                "CountConnections() == 0.",
            )


_addMatrix()


class MulticoreEchoMatrixTests(EchoMatrix):
    """
    gnet's echo matrix with N loops (C{WithMulticore(True)}): one handler
    object shared by every loop, so its connected/disconnected counters reach
    10 x the stream addresses and its C{OnClose} shuts the whole engine down
    with C{CountConnections() == 0}; with and without ReusePort, under each
    load balancer (spec §16.1's loops axis).  Under RoundRobin and
    LeastConnections the stream connections are spread over every loop.
    """

    @inlineCallbacks
    def runMulticore(self, proto: str, style: str, reusePort: bool, lb: Any) -> Any:
        eng, handler = yield self.runMatrix(
            proto,
            style,
            gnet.WithMulticore(True),
            gnet.WithReusePort(reusePort),
            gnet.WithLoadBalancing(lb),
        )
        if proto != "udp" and lb != gnet.SourceAddrHash:
            self.assertEqual(handler.loopsUsed, set(range(len(eng.loops))))


def _addMulticoreMatrix() -> None:
    balancers = [
        ("roundrobin", gnet.RoundRobin),
        ("leastconn", gnet.LeastConnections),
        ("sourcehash", gnet.SourceAddrHash),
    ]
    combos = [
        (proto, style)
        for proto in ("tcp", "udp", "unix", "multi")
        for style in ("write", "writev", "asyncwrite", "asyncwritev")
        if not (proto == "udp" and style.endswith("v"))
    ]
    # each (protocol, style) with and without ReusePort; the balancers take
    # turns, so every protocol meets each of them
    for i, (proto, style) in enumerate(combos):
        for reusePort in (False, True):
            lbName, lb = balancers[(2 * i + reusePort) % len(balancers)]

            def test(
                self: MulticoreEchoMatrixTests,
                proto: str = proto,
                style: str = style,
                reusePort: bool = reusePort,
                lb: Any = lb,
            ) -> Any:
                return self.runMulticore(proto, style, reusePort, lb)

            reuse = "reuseport" if reusePort else "noreuseport"
            _addTest(
                MulticoreEchoMatrixTests,
                test,
                f"test_{proto}_{style}_{reuse}_{lbName}",
                f"Multicore echo over {proto} with {style}, {reuse}, {lbName}: the one "
                "handler's counters reach 10 x stream addresses, shutdown from its "
                "OnClose with CountConnections() == 0, every payload echoed.",
            )


_addMulticoreMatrix()


# -- Dup / DupListener ---------------------------------------------------------


class DupHandler(gnet.BuiltinEventEngine):
    """Records Dup/DupListener results in OnBoot and OnShutdown."""

    def __init__(self, listeners: list[tuple[str, str]]) -> None:
        self.listeners = listeners
        self.problems = Problems()
        self.phases: list[str] = []

    def _dups(self, eng: Any, phase: str) -> None:
        self.phases.append(phase)
        p = self.problems
        if len(self.listeners) == 1:
            fd = eng.Dup()
            p.check(fd > 2, f"{phase}: Dup fd {fd}")
            os.close(fd)
        else:
            p.raises(ErrUnsupportedOp, eng.Dup)
        for network, addr in self.listeners:
            fd = eng.DupListener(network, addr)
            p.check(fd > 2, f"{phase}: DupListener fd {fd}")
            os.close(fd)
        p.raises(ErrInvalidNetworkAddress, eng.DupListener, "tcp", "abc")
        p.raises(ErrInvalidNetworkAddress, eng.DupListener, "unix", "127.0.0.1:0")

    def OnBoot(self, eng: Any) -> Any:
        self._dups(eng, "boot")

    def OnShutdown(self, eng: Any) -> None:
        self._dups(eng, "shutdown")


class DupTests(LoopbackTestCase):
    """C{Engine.Dup}/C{DupListener} in OnBoot and OnShutdown (spec §5, §16.2)."""

    @inlineCallbacks
    def test_singleListener(self) -> Any:
        """
        One listener: C{Dup} gives a closable fd > 2 in OnBoot and OnShutdown;
        after stop it raises.
        """
        handler = DupHandler([("tcp", "127.0.0.1:0")])
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        yield eng.Stop()
        self.assertEqual(handler.phases, ["boot", "shutdown"])
        self.assertEqual(handler.problems.items, [])
        self.assertRaises(ErrEngineInShutdown, eng.Dup)
        self.assertRaises(ErrEngineInShutdown, eng.DupListener, "tcp", "127.0.0.1:0")

    @inlineCallbacks
    def test_multiListener(self) -> Any:
        """
        Several listeners: C{Dup} raises L{ErrUnsupportedOp}; C{DupListener}
        matches the normalised network and address text; C{("tcp", "abc")}
        raises L{ErrInvalidNetworkAddress}.
        """
        path = self.unixPath()
        handler = DupHandler([("tcp", "127.0.0.1:0"), ("udp4", "127.0.0.1:0"), ("unix", path)])
        eng = yield self.serve(
            handler, ["tcp4://127.0.0.1:0", "udp://127.0.0.1:0", "unix://" + path]
        )
        yield eng.Stop()
        self.assertEqual(handler.phases, ["boot", "shutdown"])
        self.assertEqual(handler.problems.items, [])
        self.assertRaises(ErrEngineInShutdown, eng.DupListener, "tcp", "abc")


# -- Conn API spot checks --------------------------------------------------------


class SpotCheckHandler(gnet.BuiltinEventEngine):
    """gnet's 1-loop sync spot checks of the Conn API, made in OnTraffic."""

    def __init__(self) -> None:
        self.problems = Problems()
        self.checked: list[str] = []

    def OnTraffic(self, c: Any) -> Any:
        p = self.problems
        udp = isinstance(c, gnet.UDPConn)
        kind = "udp" if udp else c.LocalAddr().Network()
        self.checked.append(kind)
        p.check(c.Flush() is None, "Flush")
        p.check(c.Fd() > 2, f"{kind}: Fd")
        fd = c.Dup()
        p.check(fd > 2, f"{kind}: Dup")
        os.close(fd)
        c.SetReadBuffer(1 << 20)
        c.SetWriteBuffer(1 << 20)
        if kind == "tcp":
            c.SetLinger(1)
            c.SetNoDelay(False)
            c.SetKeepAlivePeriod(60)
            e = p.raises(ErrInvalidTimeDuration, c.SetKeepAlive, True, 0, 0, 0)
            p.check(e is None or str(e) == "invalid time duration", "invalid time duration text")
            c.SetKeepAlive(False, 0, 0, 0)
            with socket.socket(fileno=c.Dup()) as s:
                p.check(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0, "keep-alive off")
                p.check(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0, "no-delay off")
            c.SetKeepAlive(True, datetime.timedelta(minutes=10), 60, 10)
            with socket.socket(fileno=c.Dup()) as s:
                p.check(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1, "keep-alive on")
                if hasattr(socket, "TCP_KEEPIDLE"):
                    p.check(
                        s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 600, "keep idle"
                    )
                    p.check(
                        s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 10, "keep count"
                    )
        else:
            p.raises(ErrUnsupportedOp, c.SetKeepAlivePeriod, 60)
            p.raises(ErrUnsupportedOp, c.SetKeepAlive, True, 60, 10, 3)
        data = c.Next(-1)
        p.check(c.InboundBuffered() == 0, "InboundBuffered after Next(-1)")
        p.check(c.OutboundBuffered() >= 0, "OutboundBuffered")
        p.check(c.Discard(1) == 0, "Discard(1) after Next(-1)")
        for m in (c.SetDeadline, c.SetReadDeadline, c.SetWriteDeadline):
            p.raises(ErrUnsupportedOp, m, 0)
        if udp:
            p.raises(ErrUnsupportedOp, c.Writev, [])
            p.raises(ErrUnsupportedOp, c.AsyncWritev, [], None)
            p.raises(ErrInvalidNetworkAddress, c.SendTo, data, None)
        else:
            p.raises(ErrUnsupportedOp, c.SendTo, data, c.RemoteAddr())
        c.Write(data)
        return gnet.None_


class ConnAPITests(LoopbackTestCase):
    """The Conn API spot checks of gnet's TestServer on real tcp, unix and udp sockets."""

    @inlineCallbacks
    def test_spotChecks(self) -> Any:
        """
        Socket setters work on real sockets; keep-alive validation and
        non-TCP refusals, deadlines, UDP Writev/SendTo(None) and stream
        SendTo raise gnet's errors.
        """
        handler = SpotCheckHandler()
        eng = yield self.serve(
            handler, ["tcp://127.0.0.1:0", "unix://" + self.unixPath(), "udp://127.0.0.1:0"]
        )
        yield self.echoOnce(eng, b"tcp", 0)
        yield self.echoOnce(eng, b"unix", 1)
        self.assertEqual((yield self.udpClient(eng, 2).request(b"udp")), b"udp")
        self.assertEqual(sorted(handler.checked), ["tcp", "udp", "unix"])
        self.assertEqual(handler.problems.items, [])


class ThreadPusher(gnet.BuiltinEventEngine):
    """
    On each read, hands the data to a real thread that first tries
    C{c.Write} (refused there: C{refused} records the error), then echoes
    it with C{c.AsyncWrite}; C{OnTick} and C{OnClose} write on the loop.
    """

    def __init__(self) -> None:
        self.refused: list[BaseException] = []
        self.conns: list[Any] = []

    def OnOpen(self, c: Any) -> Any:
        self.conns.append(c)
        return None, gnet.None_

    def OnTick(self) -> Any:
        for c in self.conns:
            if not c.closed:
                c.Write(b"")  # on the reactor thread: allowed
        return 0.05, gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        data = c.Next(-1)

        def push() -> None:
            try:
                c.Write(data)
            except gnet.ErrNotOnEventLoop as e:
                self.refused.append(e)
            c.AsyncWrite(data, None)

        reactor.callInThread(push)
        return gnet.None_


class LoopThreadTests(LoopbackTestCase):
    """Issue 18 item 5 on the real reactor: its thread is the loop, any other is refused."""

    @inlineCallbacks
    def test_writeFromThreadPool(self) -> Any:
        """
        C{c.Write} from a reactor pool thread raises L{ErrNotOnEventLoop}
        (the data is not sent twice); C{AsyncWrite} from there echoes;
        C{OnTick}'s writes on the reactor thread are accepted.
        """
        handler = ThreadPusher()
        eng = yield self.serve(handler, "tcp://127.0.0.1:0", gnet.WithTicker(True))
        client = yield self.echoOnce(eng, b"first")
        client.transport.write(b"second")
        self.assertEqual((yield client.read(6)), b"second")
        self.assertEqual(len(handler.refused), 2)
        self.assertIn("use c.AsyncWrite(data, callback)", str(handler.refused[0]))


# -- bind errors ------------------------------------------------------------------


class BindTests(LoopbackTestCase):
    """Serve's setup failures on real sockets."""

    @inlineCallbacks
    def test_addressInUse(self) -> Any:
        """A second engine on a port in use (no reuse options) fails to start with an OSError."""
        eng = yield self.serve(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0")
        _, (_host, port) = self.target(eng)
        handler = Recorder()
        yield self.assertFailure(gnet.Serve(handler, f"tcp://127.0.0.1:{port}"), OSError)
        self.assertEqual(handler.names(), [])

    @inlineCallbacks
    def test_partialBindClosesSockets(self) -> Any:
        """When a later address fails to bind, the earlier listener is closed again."""
        eng = yield self.serve(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0")
        _, (_, busy) = self.target(eng)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        yield self.assertFailure(
            gnet.Serve(
                gnet.BuiltinEventEngine(), [f"tcp://127.0.0.1:{free}", f"tcp://127.0.0.1:{busy}"]
            ),
            OSError,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", free))  # would fail if the first listener leaked


# -- ticker, wake, shutdown ----------------------------------------------------------


class TickerIntegrationTests(LoopbackTestCase):
    """The ticker on the real reactor clock (TestTick)."""

    @inlineCallbacks
    def test_tick(self) -> Any:
        """
        A 10 ms ticker on the real reactor runs until it returns Shutdown on
        its 26th call, which stops the engine: no call after it.  (That
        each returned delay is honoured exactly is pinned on a fake clock:
        L{TickerTests.test_delaysHonouredExactly}.)
        """
        n = [0]

        def onTick() -> Any:
            n[0] += 1
            return 0.01, (gnet.Shutdown if n[0] == 26 else gnet.None_)

        eng = yield self.serve(Recorder(OnTick=onTick), "tcp://127.0.0.1:0", gnet.WithTicker(True))
        yield eng.whenStopped()
        self.assertEqual(n[0], 26)


class GnetStyleLogger:
    """A gnet-style logger (Debugf/Infof/Warnf/Errorf) collecting lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _log(self, level: str, fmt: str, *args: Any) -> None:
        self.lines.append((level, fmt % args))

    def Debugf(self, fmt: str, *args: Any) -> None:
        self._log("debug", fmt, *args)

    def Infof(self, fmt: str, *args: Any) -> None:
        self._log("info", fmt, *args)

    def Warnf(self, fmt: str, *args: Any) -> None:
        self._log("warn", fmt, *args)

    def Errorf(self, fmt: str, *args: Any) -> None:
        self._log("error", fmt, *args)


class WakeTests(LoopbackTestCase):
    """C{Wake} from the ticker (TestWakeConn)."""

    @inlineCallbacks
    def test_wakeConn(self) -> Any:
        """
        OnTick wakes the conn opened by a client; the woken OnTraffic (no
        data) writes C{Waking up.} and returns -1; the client reads it and
        closes; OnClose returns Shutdown.
        """
        state: dict[str, Any] = {"conn": None, "woken": False}
        seen: list[int] = []

        def onTick() -> Any:
            c = state["conn"]
            if c is not None and not state["woken"]:
                state["woken"] = True
                c.Wake(None)
            return 0.01, gnet.None_

        def onTraffic(c: Any) -> Any:
            seen.append(c.InboundBuffered())
            c.Write(b"Waking up.")
            return -1

        handler = Recorder(
            OnOpen=lambda c: state.update(conn=c),
            OnTraffic=onTraffic,
            OnClose=lambda c, e: gnet.Shutdown,
            OnTick=onTick,
        )
        logger = GnetStyleLogger()
        eng = yield self.serve(
            handler,
            "tcp://127.0.0.1:0",
            gnet.WithTicker(True),
            gnet.WithLogger(logger),
            gnet.WithSocketRecvBuffer(4096),
            gnet.WithSocketSendBuffer(4096),
            gnet.WithReadBufferCap(2000),
            gnet.WithWriteBufferCap(2000),
        )
        self.assertEqual((eng.options.ReadBufferCap, eng.options.WriteBufferCap), (2048, 2048))
        client = yield self.connect(eng)
        self.assertEqual((yield client.read(10)), b"Waking up.")
        client.transport.loseConnection()
        yield eng.whenStopped()
        self.assertEqual(seen, [0])


class CountingHandler(gnet.BuiltinEventEngine):
    """TestShutdown: counts conns, checks the count in OnOpen, Shutdown from OnTick at 100."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.problems = Problems()
        self.shutdowns = 0

    def OnBoot(self, eng: Any) -> Any:
        self.eng = eng

    def OnOpen(self, c: Any) -> Any:
        self.count += 1
        self.problems.check(
            self.count == self.eng.CountConnections(), "counter == CountConnections()"
        )
        return None

    def OnClose(self, c: Any, err: Any) -> Any:
        self.problems.check(err is None, f"local close err {err!r}")
        self.count -= 1

    def OnShutdown(self, eng: Any) -> None:
        self.shutdowns += 1

    def OnTick(self) -> Any:
        return 0.01, (gnet.Shutdown if self.count == self.target else gnet.None_)


class ShutdownTests(LoopbackTestCase):
    """Shutdown and Close from every callback, with real clients (spec §15.3, §16.2)."""

    @inlineCallbacks
    def test_shutdownFromTickWith100Conns(self) -> Any:
        """
        100 clients connect and wait; OnTick returns Shutdown once all are
        counted; every client sees its connection closed; the counter
        (decremented in OnClose) is back to 0.
        """
        handler = CountingHandler(100)
        log = self.mktemp()
        eng = yield self.serve(
            handler,
            "tcp://127.0.0.1:0",
            gnet.WithTicker(True),
            gnet.WithLogPath(log),
            gnet.WithLogLevel(1),
            gnet.WithReadBufferCap(512),
            gnet.WithWriteBufferCap(512),
        )
        self.assertEqual(eng.options.ReadBufferCap, 1024)
        clients = yield defer.gatherResults([self.connect(eng) for _ in range(100)])
        yield eng.whenStopped()
        yield defer.gatherResults([c.lost for c in clients])
        self.assertEqual(handler.count, 0)
        self.assertEqual(handler.shutdowns, 1)
        self.assertEqual(handler.problems.items, [])

    @inlineCallbacks
    def test_closeActionAfterEcho(self) -> Any:
        """
        OnTraffic C{Read}s exactly C{InboundBuffered()} bytes, writes them and
        returns Close: the client gets the echo, then EOF; OnClose's Shutdown stops the engine.
        """
        errs: list[Any] = []

        def onTraffic(c: Any) -> Any:
            buf = bytearray(c.InboundBuffered())
            c.Read(buf)
            c.Write(buf)
            return gnet.Close

        def onClose(c: Any, err: Any) -> Any:
            errs.append(err)
            return gnet.Shutdown

        eng = yield self.serve(Recorder(OnTraffic=onTraffic, OnClose=onClose), "tcp://127.0.0.1:0")
        client = yield self.echoOnce(eng, b"close me")
        yield client.lost
        yield eng.whenStopped()
        self.assertEqual(errs, [None])

    @inlineCallbacks
    def test_shutdownActionAfterEcho(self) -> Any:
        """
        OnTraffic C{Peek(-1)}/C{Write}/C{Discard(-1)} then Shutdown: the client
        still gets the echo.
        """

        def onTraffic(c: Any) -> Any:
            c.Write(c.Peek(-1))
            c.Discard(-1)
            return gnet.Shutdown

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "tcp://127.0.0.1:0")
        client = yield self.echoOnce(eng, b"shutdown")
        yield client.lost
        yield eng.whenStopped()

    @inlineCallbacks
    def test_closeFromOnOpen(self) -> Any:
        """OnOpen returns Close: OnClose(c, None) fires, returns Shutdown, the engine stops."""
        handler = Recorder(OnOpen=lambda c: (None, gnet.Close), OnClose=lambda c, e: gnet.Shutdown)
        eng = yield self.serve(handler, "unix://" + self.unixPath())
        client = yield self.connect(eng)
        yield client.lost
        yield eng.whenStopped()
        self.assertEqual(handler.names(), ["boot", "open", "close", "shutdown"])
        self.assertIsNone(handler.closes()[0][2])

    @inlineCallbacks
    def test_shutdownFromOnOpen(self) -> Any:
        """
        OnOpen returns Shutdown: C{Dup} works in OnShutdown and raises
        L{ErrEngineInShutdown} after.
        """
        fds: list[int] = []

        def onShutdown(eng: Any) -> None:
            fds.append(eng.Dup())
            os.close(fds[-1])

        handler = Recorder(OnOpen=lambda c: (None, gnet.Shutdown), OnShutdown=onShutdown)
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        client = yield self.connect(eng)
        yield client.lost
        yield eng.whenStopped()
        self.assertEqual(len(fds), 1)
        self.assertGreater(fds[0], 2)
        self.assertRaises(ErrEngineInShutdown, eng.Dup)

    @inlineCallbacks
    def test_onBootShutdown(self) -> Any:
        """
        OnBoot returning Shutdown: Serve gives an already stopped engine, the
        port is free again.
        """
        handler = Recorder(OnBoot=lambda e: gnet.Shutdown)
        eng = yield gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.assertTrue(eng.stopped)
        self.assertNotIn("shutdown", handler.names())

    @inlineCallbacks
    def test_udpShutdown(self) -> Any:
        """A udp4 server echoes one datagram and returns Shutdown; the client gets the echo."""

        def onTraffic(c: Any) -> Any:
            c.Write(c.Next(-1))
            return gnet.Shutdown

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "udp4://127.0.0.1:0")
        self.assertEqual((yield self.udpClient(eng).request(b"bye")), b"bye")
        yield eng.whenStopped()

    @inlineCallbacks
    def test_closeWithCallbackFromThread(self) -> Any:
        """
        After echoing, another thread calls C{CloseWithCallback}; OnClose
        returns Shutdown, so the callback gets L{ErrEngineShutdown}; the
        client got the echo, then its connection closed.
        """
        got: Deferred = Deferred()
        callbackThreads: list[Any] = []

        def cb(c: Any, err: Any) -> None:
            callbackThreads.append(threading.current_thread())
            got.callback(err)

        def onTraffic(c: Any) -> Any:
            c.Write(c.Next(-1))
            reactor.callLater(0.05, reactor.callInThread, c.CloseWithCallback, cb)

        closes: list[Any] = []
        handler = Recorder(
            OnTraffic=onTraffic, OnClose=lambda c, e: closes.append(e) or gnet.Shutdown
        )
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        client = yield self.echoOnce(eng, b"ping")
        err = yield got
        self.assertIsInstance(err, ErrEngineShutdown)
        self.assertEqual(callbackThreads, [threading.main_thread()])
        self.assertEqual(closes, [None])
        yield client.lost
        yield eng.whenStopped()


class StopTests(LoopbackTestCase):
    """C{Engine.Stop} from another thread and from the reactor thread."""

    @inlineCallbacks
    def test_stopFromThread(self) -> Any:
        """
        After one echo a worker thread calls C{Engine.Stop(ctx)} (a 3 s deadline): it blocks until
        shutdown and returns None; the client's connection closes; a second
        C{Stop} raises L{ErrEngineInShutdown}.
        """
        eng = yield self.serve(
            Recorder(OnTraffic=lambda c: c.WriteTo(c) and None), "tcp://127.0.0.1:0"
        )
        client = yield self.echoOnce(eng)
        result = yield threads.deferToThread(eng.Stop, gnet.Context().withTimeout(3))
        self.assertIsNone(result)
        self.assertTrue(eng.stopped)
        yield client.lost
        self.assertRaises(ErrEngineInShutdown, eng.Stop)
        err = yield threads.deferToThread(
            lambda: self.assertRaises(ErrEngineInShutdown, eng.Stop, None)
        )
        self.assertIsInstance(err, ErrEngineInShutdown)

    @inlineCallbacks
    def test_stopOnReactorThread(self) -> Any:
        """On the reactor thread C{Stop} returns a Deferred firing once the engine stopped."""
        handler = Recorder()
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        client = yield self.connect(eng)
        for _ in range(500):  # bounded: until the server opened the conn
            if "open" in handler.names():
                break
            yield deferLater(reactor, 0.01, lambda: None)
        d = eng.Stop()
        self.assertIsInstance(d, Deferred)
        self.assertRaises(ErrEngineInShutdown, eng.Stop)
        yield d
        self.assertTrue(eng.stopped)
        yield client.lost
        self.assertEqual(handler.names()[-2:], ["shutdown", "close"])
        self.assertIsNone(handler.closes()[0][2])

    @inlineCallbacks
    def test_queuedBeforeStopNeverRun(self) -> Any:
        """
        Operations queued on a conn before C{Stop} are dropped (spec 15.3),
        over real sockets too, where the transports go only an iteration
        after the teardown closed the conns: no callback runs.
        """
        conns: list[Any] = []
        handler = Recorder(OnOpen=lambda c: conns.append(c))
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")
        client = yield self.connect(eng)
        for _ in range(500):
            if conns:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        calls: list[Any] = []
        conns[0].AsyncWrite(b"x", lambda c, e: calls.append(("AsyncWrite", e)))
        conns[0].Wake(lambda c, e: calls.append(("Wake", e)))
        conns[0].CloseWithCallback(lambda c, e: calls.append(("Close", e)))
        yield eng.Stop()
        yield client.lost
        self.assertEqual(calls, [])
        self.assertEqual(handler.traffic(), 0)

    @inlineCallbacks
    def test_twoEnginesOnePort(self) -> Any:
        """
        Two engines share one TCP port with ReuseAddr+ReusePort; each stops
        itself after its quota (2 and 5 echoes); both served, and C{Stop} on a
        stopped engine raises L{ErrEngineInShutdown}.
        """
        served = {"a": 0, "b": 0}

        def handler(name: str, quota: int) -> Recorder:
            box: list[Any] = []

            def onTraffic(c: Any) -> Any:
                c.Write(c.Next(-1))
                served[name] += 1
                if served[name] == quota:
                    box[0].Stop()

            return Recorder(OnBoot=lambda e: box.append(e), OnTraffic=onTraffic)

        opts = (gnet.WithReuseAddr(True), gnet.WithReusePort(True))
        a = yield self.serve(handler("a", 2), "tcp://127.0.0.1:0", *opts)
        _, (_, port) = self.target(a)
        b = yield self.serve(handler("b", 5), f"tcp://127.0.0.1:{port}", *opts)
        for _ in range(500):
            if a.stopped and b.stopped:
                break
            try:
                ep = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
                client = yield connectProtocol(ep, StreamClient())
                client.transport.write(b"x")
                self.assertEqual((yield client.read(1)), b"x")
                client.transport.loseConnection()
                yield client.lost
            except Exception:
                # a connection queued on a listener that just closed is reset
                yield deferLater(reactor, 0.01, lambda: None)
        yield a.whenStopped()
        yield b.whenStopped()
        self.assertEqual(served, {"a": 2, "b": 5})
        self.assertRaises(ErrEngineInShutdown, a.Stop)
        self.assertRaises(ErrEngineInShutdown, b.Stop)


class DisconnectedAsyncWriteTests(LoopbackTestCase):
    """AsyncWrite/AsyncWritev after the peer closed (TestDisconnectedAsyncWrite)."""

    @inlineCallbacks
    def runVariant(self, vector: bool) -> Any:
        closedErr: Deferred = Deferred()
        stop = threading.Event()
        workers: list[Deferred] = []

        def cb(c: Any, err: Any) -> None:
            if err is not None and not closedErr.called:
                stop.set()
                closedErr.callback(err)

        def worker(c: Any) -> None:
            while not stop.is_set():
                try:
                    if vector:
                        c.AsyncWritev([b"x", b"y"], cb)
                    else:
                        c.AsyncWrite(b"xy", cb)
                except ErrEngineInShutdown:
                    return
                stop.wait(0.02)

        def onTraffic(c: Any) -> Any:
            c.Discard(-1)
            if not workers:
                workers.append(threads.deferToThread(worker, c))

        def onTick() -> Any:
            return 0.02, (gnet.Shutdown if closedErr.called else gnet.None_)

        eng = yield self.serve(
            Recorder(OnTraffic=onTraffic, OnTick=onTick), "tcp://127.0.0.1:0", gnet.WithTicker(True)
        )
        self.addCleanup(stop.set)
        client = yield self.connect(eng)
        client.transport.write(b"hello")
        client.transport.loseConnection()
        err = yield closedErr
        self.assertIsInstance(err, ErrClosed)
        yield eng.whenStopped()
        yield workers[0]

    def test_asyncWrite(self) -> Any:
        """
        Once the peer closed, C{AsyncWrite}'s callback gets L{ErrClosed};
        OnTick then shuts down.
        """
        return self.runVariant(False)

    def test_asyncWritev(self) -> Any:
        """
        Once the peer closed, C{AsyncWritev}'s callback gets L{ErrClosed};
        OnTick then shuts down.
        """
        return self.runVariant(True)


# -- the length-prefixed codec (TestSimServer) ------------------------------------


class SimServer(CodecServer):
    """The example codec server, shutting down when all its clients are gone."""

    def __init__(self, batchLimit: int, clients: int) -> None:
        super().__init__(batchLimit)
        self.clients = clients
        self.closed = 0
        self.wakes = 0

    def OnClose(self, c: Any, err: Any) -> Any:
        self.closed += 1
        return gnet.Shutdown if self.closed == self.clients else gnet.None_


class CodecTests(LoopbackTestCase):
    """
    gnet's TestSimServer: frames of magic 1314 + 4-byte big-endian length +
    body, sent in batches, decoded with Peek/Discard up to a per-call limit,
    answered with Writev, the rest processed after a Wake.
    """

    shapes = [(64, 200), (1024, 50), (65536, 8), (1 << 20, 2)]

    @inlineCallbacks
    def runLimit(self, limit: int) -> Any:
        handler = SimServer(limit, 10)
        eng = yield self.serve(handler, "tcp://127.0.0.1:0")

        @inlineCallbacks
        def client(i: int) -> Any:
            size, count = self.shapes[i % len(self.shapes)]
            ep = TCP4ClientEndpoint(reactor, *self.target(eng)[1])
            c = yield connectProtocol(ep, FrameClient())
            for _ in range(2):
                bodies = [os.urandom(size) for _ in range(count)]
                yield c.batch(bodies)
                self.assertEqual(c.bodies, bodies)
            c.transport.loseConnection()

        yield defer.gatherResults([client(i) for i in range(10)], consumeErrors=True)
        yield eng.whenStopped()
        self.assertEqual(handler.closed, 10)
        if limit:
            self.assertGreater(handler.wakes, 0)

    def test_unlimited(self) -> Any:
        """Decoding every frame per call answers every frame of every batch."""
        return self.runLimit(0)

    def test_limit10(self) -> Any:
        """At most 10 frames per call, Wake for the rest: every frame is answered in order."""
        return self.runLimit(10)

    def test_limit3(self) -> Any:
        """At most 3 frames per call, Wake for the rest: every frame is answered in order."""
        return self.runLimit(3)

    def test_limit1(self) -> Any:
        """One frame per call (answered with Write), Wake for the rest: every frame is answered."""
        return self.runLimit(1)


# -- UDP fan-out, SafeContext, addresses ---------------------------------------------


class UDPSendToTests(LoopbackTestCase):
    """gnet's TestUDPSendtoServer."""

    @inlineCallbacks
    def test_sendToFanOut(self) -> Any:
        """
        10 clients send one datagram each; after the 10th the server
        C{SendTo}s a broadcast message to every recorded C{RemoteAddr()}
        (each call returns the length); every client receives it.
        """
        msg = b"broadcast to all"
        addrs: list[Any] = []
        ns: list[int] = []

        def onTraffic(c: Any) -> Any:
            c.Discard(-1)
            addrs.append(c.RemoteAddr())
            if len(addrs) == 10:
                for a in addrs:
                    ns.append(c.SendTo(msg, a))

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "udp://127.0.0.1:0")
        clients = [self.udpClient(eng) for _ in range(10)]
        got = []
        for c in clients:
            got.append(c.next())
            c.transport.write(b"hi")
        received = yield defer.gatherResults(got)
        self.assertEqual(received, [msg] * 10)
        self.assertEqual(ns, [len(msg)] * 10)
        self.assertEqual(len({str(a) for a in addrs}), 10)
        yield eng.Stop()


class SafeContextTests(LoopbackTestCase):
    """gnet's TestSafeContext on a real connection."""

    @inlineCallbacks
    def test_safeContext(self) -> Any:
        """
        SafeContext is None at first, reads back every value set (None
        included) while a thread reads it concurrently, is independent of
        Context, and is None after OnClose.
        """
        problems = Problems()
        stop = threading.Event()
        values = [1, "two", 3.0, None, {"k": "v"}, (5,)]
        reads = [0]
        conns: list[Any] = []
        readers: list[Deferred] = []

        def reader(c: Any) -> None:
            while not stop.is_set():
                v = c.SafeContext()
                problems.check(v is None or v in values, f"thread read {v!r}")
                reads[0] += 1
                stop.wait(0.001)

        def onOpen(c: Any) -> Any:
            conns.append(c)
            problems.check(c.SafeContext() is None, "SafeContext None at first")
            c.SetContext("plain")
            readers.append(threads.deferToThread(reader, c))

        def onTraffic(c: Any) -> Any:
            for v in values:
                c.SetSafeContext(v)
                problems.check(c.SafeContext() == v, f"read back {v!r}")
            problems.check(c.Context() == "plain", "Context unaffected")
            c.Write(c.Next(-1))

        eng = yield self.serve(Recorder(OnOpen=onOpen, OnTraffic=onTraffic), "tcp://127.0.0.1:0")
        client = yield self.echoOnce(eng, b"x")
        for _ in range(500):  # bounded: until the thread read it concurrently
            if reads[0]:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        client.transport.loseConnection()
        yield client.lost
        for _ in range(100):
            if conns[0].closed:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertIsNone(conns[0].SafeContext())
        self.assertIsNone(conns[0].Context())
        stop.set()
        yield readers[0]
        self.assertGreater(reads[0], 0)
        self.assertEqual(problems.items, [])


class AddressTests(LoopbackTestCase):
    """Address families and unix socket files on real sockets (spec §11.2, §11.4)."""

    def requireIPv6(self) -> None:
        if not _ipv6Available():
            raise self.skipTest("IPv6 loopback (::1) is not available here")

    @inlineCallbacks
    def test_ipv6(self) -> Any:
        """C{tcp6://[::1]:0} serves IPv6 clients; RemoteAddr reads C{[::1]:port}."""
        self.requireIPv6()
        remotes: list[str] = []

        def onTraffic(c: Any) -> Any:
            remotes.append(c.RemoteAddr().String())
            c.Write(c.Next(-1))

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "tcp6://[::1]:0")
        yield self.echoOnce(eng)
        self.assertTrue(remotes[0].startswith("[::1]:"), remotes)

    @inlineCallbacks
    def test_dualStack(self) -> Any:
        """C{tcp://:port} accepts both 127.0.0.1 and ::1; IPv4 peers read in dotted form."""
        self.requireIPv6()
        remotes: list[str] = []

        def onTraffic(c: Any) -> Any:
            remotes.append(c.RemoteAddr().String())
            c.Write(c.Next(-1))

        eng = yield self.serve(Recorder(OnTraffic=onTraffic), "tcp://:0")
        for host in ("127.0.0.1", "::1"):
            client = yield self.connect(eng, host=host)
            client.transport.write(b"hi")
            self.assertEqual((yield client.read(2)), b"hi")
        self.assertTrue(remotes[0].startswith("127.0.0.1:"), remotes)
        self.assertTrue(remotes[1].startswith("[::1]:"), remotes)

    @inlineCallbacks
    def test_v4OnlyRefusesV6(self) -> Any:
        """C{tcp4://:port} listens on IPv4 only."""
        self.requireIPv6()
        eng = yield self.serve(gnet.BuiltinEventEngine(), "tcp4://:0")
        _, (_, port) = self.target(eng)
        yield self.assertFailure(
            connectProtocol(TCP6ClientEndpoint(reactor, "::1", port), StreamClient()), Exception
        )

    @inlineCallbacks
    def test_unixPathRemoved(self) -> Any:
        """
        A file already at the unix path is replaced; the socket file is removed
        after shutdown.
        """
        path = self.unixPath()
        with open(path, "w") as f:
            f.write("stale")
        eng = yield self.serve(
            Recorder(OnTraffic=lambda c: c.WriteTo(c) and None), "unix://" + path
        )
        self.assertTrue(os.path.exists(path))
        yield self.echoOnce(eng)
        yield eng.Stop()
        self.assertFalse(os.path.exists(path))

    @inlineCallbacks
    def test_unixPathGoneBeforeStop(self) -> Any:
        """
        When the socket file was already removed (by an operator, or by
        another process sharing the socket) the engine still stops cleanly:
        nothing is logged as a failure (Twisted's unix port used to unlink
        its path at stop and raise C{FileNotFoundError}).
        """
        path = self.unixPath()
        eng = yield self.serve(
            Recorder(OnTraffic=lambda c: c.WriteTo(c) and None), "unix://" + path
        )
        client = yield self.echoOnce(eng)
        client.transport.loseConnection()
        os.unlink(path)
        yield eng.Stop()
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertFalse(os.path.exists(path))

    @inlineCallbacks
    def test_adoptedUnixListenerKeepsFile(self) -> Any:
        """
        A unix listener handed to L{Engine.bind} (as a multicore worker gets
        the socket its parent bound) is served, and its file, which this
        engine did not create, is left in place when the engine stops: its
        creator removes it, once.
        """
        from gnetcompat._addr import createListener, parseProtoAddr
        from gnetcompat._engine import Engine
        from gnetcompat.options import Options

        path = self.unixPath()
        spec = parseProtoAddr("unix://" + path)
        sock, family = createListener(spec, Options().normalized())
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        eng = Engine(Recorder(OnTraffic=lambda c: c.WriteTo(c) and None), [spec])
        eng.bind([(spec, sock, family)])
        self.assertTrue(eng.boot())
        self.addCleanup(lambda: eng.stopping or eng.Stop())
        client = yield self.echoOnce(eng)
        client.transport.loseConnection()
        yield eng.Stop()
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertTrue(os.path.exists(path), "an engine removed a socket file it did not create")


class EngineServiceLimitTests(TestCase):
    """The library leaves the process's limits alone (the echo service raises them)."""

    def setUp(self) -> None:
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            raise SkipTest("no RLIMIT_NOFILE here") from None
        self.resource = resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        # a soft limit below the hard one, as a raise would change it
        low = min(soft, 1024) - 1 if hard == resource.RLIM_INFINITY else min(soft, hard - 1)
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        self.limits = (low, hard)

    def test_serviceKeepsTheOpenFileLimit(self) -> None:
        """
        Starting an L{gnet.EngineService} does not raise C{RLIMIT_NOFILE}: a
        program embedding the library keeps the limits it chose.
        """
        svc = gnet.EngineService(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0")
        svc.privilegedStartService()
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(self.resource.getrlimit(self.resource.RLIMIT_NOFILE), self.limits)
