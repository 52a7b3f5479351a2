"""
Tests for L{gnetcompat.client}: the context helpers (pure), and the client
over real loopback sockets against a L{gnetcompat.Serve} engine (or a plain
Twisted server) in the same reactor (gnet's C{client_test.go}, spec §16.3).

Every wait is on an event, bounded by the class C{timeout}.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from twisted.internet import defer, protocol, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat.client import (
    Client,
    Context,
    ErrClientNotStarted,
    FromContext,
    FromNetAddrContext,
    FromNetConnContext,
    NewClient,
    NewContext,
    NewNetAddrContext,
    NewNetConnContext,
    RegisteredResult,
)
from gnetcompat.errors import (
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrEOF,
    ErrInvalidNetConn,
    ErrInvalidNetworkAddress,
    ErrShortBuffer,
    ErrUnsupportedOp,
    ErrUnsupportedProtocol,
    GnetError,
)
from gnetcompat.options import TCPDelay

PING = b"PING\r\n"


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _later(value: Any = None) -> Deferred:
    """A Deferred fired on the next reactor iteration (lets queued work run)."""
    d: Deferred = Deferred()
    _reactor().callLater(0, d.callback, value)
    return d


def _emptyEngineErrors(eng: Any) -> dict:
    """What the empty-engine calls of a client engine do."""
    out: dict = {}
    for name, call in [
        ("Validate", eng.Validate),
        ("Dup", eng.Dup),
        ("DupListener", lambda: eng.DupListener("tcp", "127.0.0.1:0")),
        (
            "Register",
            lambda: eng.Register(NewNetAddrContext(None, "tcp://127.0.0.1:1")),
        ),
        ("Stop", eng.Stop),
    ]:
        try:
            call()
            out[name] = None
        except GnetError as e:
            out[name] = type(e)
    out["CountConnections"] = eng.CountConnections()
    return out


class ContextHelperTests(SynchronousTestCase):
    """The immutable Context value carrier and the gnet context helpers."""

    def test_valueRoundTrip(self) -> None:
        """NewContext/FromContext carry one value; an empty or None context has none."""
        self.assertIsNone(FromContext(None))
        self.assertIsNone(FromContext(Context()))
        ctx = NewContext(None, "v")
        self.assertEqual(FromContext(ctx), "v")
        self.assertEqual(FromContext(NewContext(ctx, 42)), 42)
        self.assertEqual(FromContext(ctx), "v", "the parent is unchanged")

    def test_netConnAndAddr(self) -> None:
        """The From*Context readers return (value, ok); both may live in one chain."""
        self.assertEqual(FromNetConnContext(None), (None, False))
        self.assertEqual(FromNetAddrContext(Context()), (None, False))
        sentinel = object()
        ctx = NewNetAddrContext(NewNetConnContext(NewContext(None, 1), sentinel), "tcp://x:1")
        self.assertEqual(FromNetConnContext(ctx), (sentinel, True))
        self.assertEqual(FromNetAddrContext(ctx), ("tcp://x:1", True))
        self.assertEqual(FromContext(ctx), 1)

    def test_immutable(self) -> None:
        """A Context cannot be modified; withValue makes a child instead."""
        ctx = Context()
        self.assertRaises(AttributeError, setattr, ctx, "_value", 1)
        child = ctx.withValue("k", 2)
        self.assertEqual(child.value("k"), 2)
        self.assertIsNone(ctx.value("k"))
        self.assertIn("'k'=2", repr(child))

    def test_notAContext(self) -> None:
        """A value that is not a Context is refused (it is a programming error)."""
        self.assertRaises(TypeError, NewContext, "plain", 1)
        self.assertRaises(TypeError, FromContext, object())

    def test_registeredResult(self) -> None:
        """RegisteredResult has gnet's field names."""
        r = RegisteredResult("c", None)
        self.assertEqual((r.Conn, r.Err), ("c", None))


class NotStartedTests(SynchronousTestCase):
    """Calls that need a started client."""

    def test_dialBeforeStart(self) -> None:
        """Dial/DialContext/Enroll before Start raise ErrClientNotStarted, closing nothing."""
        client = NewClient(gnet.BuiltinEventEngine())
        self.assertRaises(ErrClientNotStarted, client.Dial, "tcp", "127.0.0.1:1")
        self.assertRaises(ErrClientNotStarted, client.DialContext, "udp", "127.0.0.1:1", 1)
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        e = self.assertRaises(ErrClientNotStarted, client.Enroll, a)
        self.assertIn("Start", str(e))
        self.assertNotEqual(a.fileno(), -1)

    def test_emptyEngine(self) -> None:
        """The client engine is empty: Validate/Dup/DupListener/Register/Stop fail, count -1."""
        client = NewClient(gnet.BuiltinEventEngine())
        errs = _emptyEngineErrors(client.engine)
        self.assertEqual(
            errs,
            {
                "Validate": ErrEmptyEngine,
                "Dup": ErrEmptyEngine,
                "DupListener": ErrEmptyEngine,
                "Register": ErrEmptyEngine,
                "Stop": ErrEmptyEngine,
                "CountConnections": -1,
            },
        )

    def test_tickerOnFakeClock(self) -> None:
        """The ticker starts with Start, honours each delay, and a Shutdown stops the loop only."""
        clock = Clock()
        ticks: list = []

        class Ticking(gnet.BuiltinEventEngine):
            def OnTick(self) -> Any:
                ticks.append(clock.seconds())
                return (0.5, gnet.Shutdown if len(ticks) == 3 else gnet.None_)

        def useClock(o: Any) -> None:
            o.Clock = clock

        client = NewClient(Ticking(), gnet.WithTicker(True), useClock)
        client.Start()
        self.assertEqual(ticks, [0])
        clock.advance(0.5)
        clock.advance(0.5)
        self.assertEqual(ticks, [0, 0.5, 1.0])
        clock.advance(5)
        self.assertEqual(len(ticks), 3)
        self.assertRaises(ErrEngineInShutdown, client.Dial, "tcp", "127.0.0.1:1")
        self.successResultOf(client.Stop())
        self.assertRaises(ErrEngineInShutdown, client.Stop)
        self.assertRaises(ErrEngineInShutdown, client.Start)

    def test_startTwice(self) -> None:
        """Starting twice is an error; OnBoot runs once."""
        boots: list = []

        class H(gnet.BuiltinEventEngine):
            def OnBoot(self, eng: Any) -> Any:
                boots.append(eng)
                return gnet.Shutdown  # ignored for a client, as in gnet

        client = NewClient(H())
        client.Start()
        self.assertRaises(RuntimeError, client.Start)
        self.assertEqual(boots, [client.engine])
        self.successResultOf(client.Stop())


class _ConnCtx:
    """A per-connection context of the echo matrix."""

    def __init__(self, index: int, payload: bytes) -> None:
        self.index = index
        self.payload = payload
        self.buf = bytearray()
        self.done: Deferred = Deferred()


class _EchoServer(gnet.BuiltinEventEngine):
    """Reads the PING greeting first (streams), then echoes sync or async."""

    def __init__(self, udp: bool, asyncEcho: bool, conns: int) -> None:
        self.udp = udp
        self.asyncEcho = asyncEcho
        self.conns = conns
        self.pings = 0
        self.closed = 0
        self.badGreeting: list = []
        self.worker = ThreadPoolExecutor(max_workers=1)  # one worker keeps the order

    def OnTraffic(self, c: Any) -> Any:
        if self.udp:
            if c.Peek(-1) == PING:
                self.pings += 1
                c.Discard(-1)
                return None
        elif c.Context() is None:
            if c.InboundBuffered() < len(PING):
                return None
            buf = bytearray(len(PING))
            c.Read(buf)
            if bytes(buf) != PING:
                self.badGreeting.append(bytes(buf))
            self.pings += 1
            c.SetContext("greeted")
        if self.asyncEcho:
            sink = io.BytesIO()
            if c.WriteTo(sink) > 0:
                self.worker.submit(c.AsyncWrite, sink.getvalue(), None)
        else:
            data = c.Next(-1)
            if data:
                c.Write(data)
        return None

    def OnClose(self, c: Any, err: Any) -> Any:
        self.closed += 1
        return gnet.Shutdown if self.closed == self.conns else gnet.None_


class _EchoClient(gnet.BuiltinEventEngine):
    """Greets with PING, collects each conn's echo, shuts its loop down after the last close."""

    def __init__(self) -> None:
        self.active = 0
        self.opened: list = []
        self.closeErrs: list = []
        self.lastClosed: Deferred = Deferred()
        self.badContext: list = []
        self.boot: dict = {}
        self.shutdown: dict = {}

    def OnBoot(self, eng: Any) -> Any:
        self.boot = _emptyEngineErrors(eng)
        return None

    def OnShutdown(self, eng: Any) -> None:
        self.shutdown = _emptyEngineErrors(eng)

    def OnOpen(self, c: Any) -> Any:
        ctx = c.Context()
        if not isinstance(ctx, _ConnCtx) or c.SafeContext() is not ctx:
            self.badContext.append(c)
        self.active += 1
        self.opened.append(c)
        return PING, gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        ctx = c.Context()
        ctx.buf += c.Next(-1)
        if len(ctx.buf) >= len(ctx.payload) and not ctx.done.called:
            ctx.done.callback(bytes(ctx.buf))
        return None

    def OnClose(self, c: Any, err: Any) -> Any:
        self.closeErrs.append(err)
        self.active -= 1
        if self.active == 0:
            self.lastClosed.callback(None)
            return gnet.Shutdown
        return gnet.None_


class _ClientTestCase(TestCase):
    timeout = 15

    def serve(self, handler: Any, addr: str, *opts: Any) -> Deferred:
        d = gnet.Serve(handler, addr, *opts)

        def started(eng: Any) -> Any:
            self.addCleanup(self._stopEngine, eng)
            return eng

        return d.addCallback(started)

    @staticmethod
    def _stopEngine(eng: Any) -> Any:
        if not eng.stopping:
            return eng.Stop()
        return eng.whenStopped()

    def newClient(self, handler: Any, *opts: Any) -> Client:
        client = NewClient(handler, *opts)

        def stop() -> Any:
            if not client._stopCalled:
                return client.Stop()
            return client.engine.whenStopped()

        self.addCleanup(stop)
        return client

    def target(self, eng: Any, network: str, path: str = "") -> tuple[str, Any, int, int]:
        """(Dial address, socket address, family, type) of a served engine."""
        if network == "unix":
            return path, path, socket.AF_UNIX, socket.SOCK_STREAM
        port = eng.listeningPorts[0].getHost().port
        kind = socket.SOCK_DGRAM if network == "udp" else socket.SOCK_STREAM
        return f"127.0.0.1:{port}", ("127.0.0.1", port), socket.AF_INET, kind


class ClientEchoMatrixTests(_ClientTestCase):
    """gnet's TestClient: tcp/udp/unix x sync/async echo, Dial and Enroll halves."""

    conns = 4

    async def _echo(self, network: str, asyncEcho: bool) -> None:
        udp = network == "udp"
        path = os.path.abspath(self.mktemp()) if network == "unix" else ""
        server = _EchoServer(udp, asyncEcho, self.conns)
        addr = f"unix://{path}" if path else f"{network}://127.0.0.1:0"
        eng = await self.serve(server, addr)
        address, sockaddr, family, kind = self.target(eng, network, path)

        handler = _EchoClient()
        client = self.newClient(handler, gnet.WithTCPNoDelay(gnet.TCPNoDelay))
        client.Start()
        size = 1024 if udp else 200_000
        pairs = []
        for i in range(self.conns):
            ctx = _ConnCtx(i, os.urandom(size))
            if i % 2 == 0:
                c = await client.DialContext(network, address, ctx)
            else:
                sock = socket.socket(family, kind)
                sock.connect(sockaddr)
                c = await client.EnrollContext(sock, ctx)
                self.assertEqual(sock.fileno(), -1, "the caller's socket is closed")
            self.assertIs(c.Context(), ctx)
            c.Wake(None)
            pairs.append((c, ctx))
        self.assertEqual(handler.opened, [c for c, _ in pairs], "OnOpen ran before each returned")

        def sendAll() -> None:  # AsyncWrite from a foreign thread
            for c, ctx in pairs:
                c.AsyncWrite(ctx.payload)

        await threads.deferToThread(sendAll)
        echoes = await defer.gatherResults([ctx.done for _, ctx in pairs])
        for (_, ctx), echo in zip(pairs, echoes, strict=True):
            self.assertEqual(echo, ctx.payload)
        for c, _ in pairs:
            c.Close()
        await handler.lastClosed
        await _later()
        self.assertEqual(handler.closeErrs, [None] * self.conns)
        self.assertTrue(all(c.closed and c.Context() is None for c, _ in pairs))
        await client.Stop()
        self.assertEqual(handler.badContext, [])
        empty = {
            "Validate": ErrEmptyEngine,
            "Dup": ErrEmptyEngine,
            "DupListener": ErrEmptyEngine,
            "Register": ErrEmptyEngine,
            "Stop": ErrEmptyEngine,
            "CountConnections": -1,
        }
        self.assertEqual(handler.boot, empty)
        self.assertEqual(handler.shutdown, empty)
        if udp:
            await _later()
            self.assertEqual(server.pings, self.conns)
        else:
            await eng.whenStopped()  # the server shut down after its last close
            self.assertEqual(server.badGreeting, [])
            self.assertEqual(server.pings, self.conns)
            self.assertEqual(eng.CountConnections(), -1)
        server.worker.shutdown(wait=True)

    def test_tcpSync(self) -> None:
        """TCP: Dial and Enroll halves, PING greeting, echo by Write."""
        return defer.ensureDeferred(self._echo("tcp", False))

    def test_tcpAsync(self) -> None:
        """TCP: echo by WriteTo then AsyncWrite from a worker thread."""
        return defer.ensureDeferred(self._echo("tcp", True))

    def test_udpSync(self) -> None:
        """Connected UDP client conns: OnOpen's PING is a datagram, echo by Write."""
        return defer.ensureDeferred(self._echo("udp", False))

    def test_udpAsync(self) -> None:
        """Connected UDP client conns with the server echoing by AsyncWrite."""
        return defer.ensureDeferred(self._echo("udp", True))

    def test_unixSync(self) -> None:
        """Unix sockets: Dial a path and Enroll a connected unix socket."""
        return defer.ensureDeferred(self._echo("unix", False))

    def test_unixAsync(self) -> None:
        """Unix sockets with the async echo server."""
        return defer.ensureDeferred(self._echo("unix", True))


class ClientBehaviourTests(_ClientTestCase):
    """Single behaviours of client connections."""

    async def _wakeImmediately(self) -> None:
        class Server(gnet.BuiltinEventEngine):
            def OnClose(self, c: Any, err: Any) -> Any:
                return gnet.Shutdown if c.EventLoop()._engine.CountConnections() == 0 else None

        checks: dict = {}
        closed: Deferred = Deferred()

        class Waker(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                def attempt(name: str, fn: Any) -> None:
                    try:
                        checks[name] = fn()
                    except GnetError as e:
                        checks[name] = type(e)

                attempt("Read(empty)", lambda: c.Read(bytearray()))
                attempt("Read(10)", lambda: c.Read(bytearray(10)))
                attempt("Next(10)", lambda: c.Next(10))
                attempt("Next(-1)", lambda: c.Next(-1))
                attempt("Peek(10)", lambda: c.Peek(10))
                attempt("Peek(-1)", lambda: c.Peek(-1))
                attempt("Discard(10)", lambda: c.Discard(10))
                attempt("Discard(-1)", lambda: c.Discard(-1))
                attempt("WriteTo", lambda: c.WriteTo(io.BytesIO()))
                attempt("InboundBuffered", c.InboundBuffered)
                return None

            def OnClose(self, c: Any, err: Any) -> Any:
                closed.callback(err)

        eng = await self.serve(Server(), "tcp://127.0.0.1:0")
        client = self.newClient(Waker())
        client.Start()
        c = await client.Dial("tcp", self.target(eng, "tcp")[0])
        c.Wake(None)
        c.Close()
        self.assertIsNone(await closed)
        self.assertEqual(
            checks,
            {
                "Read(empty)": 0,
                "Read(10)": ErrShortBuffer,
                "Next(10)": ErrShortBuffer,
                "Next(-1)": b"",
                "Peek(10)": ErrShortBuffer,
                "Peek(-1)": b"",
                "Discard(10)": 0,
                "Discard(-1)": 0,
                "WriteTo": 0,
                "InboundBuffered": 0,
            },
        )
        await eng.whenStopped()

    def test_wakeImmediately(self) -> None:
        """
        Wake right after Dial: the woken OnTraffic sees an empty conn (every
        Reader edge case).
        """
        return defer.ensureDeferred(self._wakeImmediately())

    async def _readOnEOF(self) -> None:
        class EchoThenClose(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(data)
                self.transport.loseConnection()

        port = _reactor().listenTCP(
            0, protocol.Factory.forProtocol(EchoThenClose), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        events: list = []
        closed: Deferred = Deferred()

        class Reader(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                return b"test", None

            def OnTraffic(self, c: Any) -> Any:
                events.append(("traffic", c.Next(-1)))

            def OnClose(self, c: Any, err: Any) -> Any:
                events.append(("close", err))
                closed.callback(None)

        client = self.newClient(Reader())
        client.Start()
        await client.Dial("tcp", f"127.0.0.1:{port.getHost().port}")
        await closed
        self.assertEqual(events[-1][0], "close")
        self.assertIsInstance(events[-1][1], ErrEOF)
        traffic = events[:-1]
        self.assertTrue(traffic and all(kind == "traffic" for kind, _ in traffic))
        self.assertEqual(b"".join(data for _, data in traffic), b"test")

    def test_readOnEOF(self) -> None:
        """Data then EOF: the bytes reach OnTraffic (Next(-1)) before OnClose(c, ErrEOF)."""
        return defer.ensureDeferred(self._readOnEOF())

    async def _safeContext(self) -> None:
        class Echo(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                c.Write(c.Next(-1))

        eng = await self.serve(Echo(), "tcp://127.0.0.1:0")
        values = [1, "two", {"three": 3}, None, b"five"]
        seen: dict = {}
        state: dict = {"round": Deferred()}
        closed: Deferred = Deferred()

        class H(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                seen["open"] = (c.Context(), c.SafeContext())

            def OnTraffic(self, c: Any) -> Any:
                c.Next(-1)
                d, state["round"] = state["round"], Deferred()
                d.callback(c)

            def OnClose(self, c: Any, err: Any) -> Any:
                seen["inClose"] = c.SafeContext()
                closed.callback(None)

        client = self.newClient(H())
        client.Start()
        marker = object()
        c = await client.DialContext("tcp", self.target(eng, "tcp")[0], marker)
        self.assertEqual(seen["open"], (marker, marker))
        stop = threading.Event()
        reads: list = []

        readerStarted: Deferred = Deferred()

        def reader() -> None:  # concurrent SafeContext reads from a foreign thread
            reads.append(c.SafeContext())
            _reactor().callFromThread(readerStarted.callback, None)
            while not stop.is_set():
                reads.append(c.SafeContext())
                stop.wait(0.001)

        readerDone = threads.deferToThread(reader)
        await readerStarted
        for v in values:
            c.SetSafeContext(v)
            self.assertEqual(c.SafeContext(), v)
            self.assertIs(c.Context(), marker, "Context is independent")
            c.Write(b"ping")
            await state["round"]
        stop.set()
        await readerDone
        self.assertTrue(reads)
        c.Close()
        await closed
        await _later()
        self.assertEqual(seen["inClose"], b"five")
        self.assertIsNone(c.SafeContext())
        self.assertIsNone(c.Context())

    def test_safeContext(self) -> None:
        """
        DialContext's value is Context and SafeContext in OnOpen; SafeContext
        swaps, clears on close.
        """
        return defer.ensureDeferred(self._safeContext())

    async def _blockingVsDeferred(self) -> None:
        class Echo(gnet.BuiltinEventEngine):
            pass

        eng = await self.serve(Echo(), "tcp://127.0.0.1:0")
        address = self.target(eng, "tcp")[0]
        handler = _EchoClient()
        client = self.newClient(handler)
        client.Start()
        d = client.DialContext("tcp", address, _ConnCtx(0, b""))
        self.assertIsInstance(d, Deferred)
        c0 = await d

        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        closedPort = free.getsockname()[1]
        free.close()

        def inThread() -> tuple:
            conn = client.DialContext("tcp", address, _ConnCtx(1, b""))
            openedFirst = conn in handler.opened
            sock = socket.create_connection(("127.0.0.1", eng.listeningPorts[0].getHost().port))
            enrolled = client.EnrollContext(sock, _ConnCtx(2, b""))
            try:
                client.Dial("tcp", f"127.0.0.1:{closedPort}")
                refused = None
            except ConnectionRefusedError as e:
                refused = e
            return conn, openedFirst, enrolled, enrolled in handler.opened, refused

        (
            conn,
            openedFirst,
            enrolled,
            enrolledFirst,
            refused,
        ) = await threads.deferToThread(inThread)
        self.assertNotIsInstance(conn, Deferred)
        self.assertTrue(openedFirst, "a blocking Dial returns after OnOpen")
        self.assertTrue(enrolledFirst, "a blocking Enroll returns after OnOpen")
        self.assertIsInstance(refused, ConnectionRefusedError)
        self.assertEqual(handler.opened, [c0, conn, enrolled])
        f = await self.assertFailure(
            client.Dial("tcp", f"127.0.0.1:{closedPort}"), ConnectionRefusedError
        )
        self.assertIsNotNone(f)
        # a blocking Stop from a thread returns once every conn closed
        await threads.deferToThread(client.Stop)
        self.assertTrue(client.engine.stopped)
        self.assertEqual(handler.closeErrs, [None, None, None])

    def test_blockingVsDeferred(self) -> None:
        """
        From a thread Dial/Enroll/Stop block (and raise); on the reactor thread
        they return Deferreds.
        """
        return defer.ensureDeferred(self._blockingVsDeferred())

    async def _socketOptions(self) -> None:
        eng = await self.serve(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0")
        address, sockaddr, _, _ = self.target(eng, "tcp")

        def opts(c: Any) -> tuple:
            s = socket.socket(fileno=c.Dup())
            try:
                return (
                    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                    s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
                    s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                )
            finally:
                s.close()

        plain = self.newClient(gnet.BuiltinEventEngine())
        plain.Start()
        c = await plain.Dial("tcp", address)
        self.assertEqual(opts(c)[:2], (True, False), "TCPNoDelay is the default")

        tuned = self.newClient(
            gnet.BuiltinEventEngine(),
            gnet.WithTCPNoDelay(TCPDelay),
            gnet.WithTCPKeepAlive(60),
            gnet.WithSocketRecvBuffer(1 << 16),
        )
        tuned.Start()
        for conn in [
            await tuned.Dial("tcp", address),
            await tuned.Enroll(socket.create_connection(sockaddr)),
        ]:
            nodelay, keepalive, rcvbuf = opts(conn)
            self.assertFalse(nodelay)
            self.assertTrue(keepalive)
            self.assertGreaterEqual(rcvbuf, 1 << 16)

    def test_socketOptions(self) -> None:
        """
        No-delay (default on), keep-alive and buffer sizes apply to dialled and
        enrolled sockets.
        """
        return defer.ensureDeferred(self._socketOptions())

    async def _badArguments(self) -> None:
        client = self.newClient(gnet.BuiltinEventEngine())
        client.Start()
        self.assertRaises(ErrInvalidNetConn, client.Enroll, None)
        self.assertRaises(ErrUnsupportedProtocol, client.Enroll, "not a socket")
        await self.assertFailure(client.Dial("sctp", "127.0.0.1:1"), ErrUnsupportedProtocol)
        await self.assertFailure(client.Dial("tcp", "127.0.0.1"), ErrInvalidNetworkAddress)
        await self.assertFailure(client.Dial("tcp4", "[::1]:80"), ErrInvalidNetworkAddress)

    def test_badArguments(self) -> None:
        """None/odd sockets and bad networks or addresses are reported with gnet's errors."""
        return defer.ensureDeferred(self._badArguments())

    async def _udpConn(self) -> None:
        class Echo(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                c.Write(c.Next(-1))

        eng = await self.serve(Echo(), "udp://127.0.0.1:0")
        got: list = []
        events: Deferred = Deferred()
        closed: Deferred = Deferred()

        class H(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                return b"hello", None

            def OnTraffic(self, c: Any) -> Any:
                got.append(c.Next(-1))
                if len(got) == 2:
                    events.callback(None)

            def OnClose(self, c: Any, err: Any) -> Any:
                closed.callback(err)

        client = self.newClient(H())
        client.Start()
        c = await client.Dial("udp", self.target(eng, "udp")[0])
        self.assertEqual(c.RemoteAddr().Network(), "udp")
        self.assertEqual(c.RemoteAddr().port, eng.listeningPorts[0].getHost().port)
        self.assertRaises(ErrUnsupportedOp, c.Writev, [b"a"])
        self.assertRaises(ErrUnsupportedOp, c.AsyncWritev, [b"a"])
        self.assertRaises(ErrUnsupportedOp, c.SetKeepAlivePeriod, 60)
        c.Write(b"again")
        await events
        self.assertEqual(got, [b"hello", b"again"], "one OnTraffic per datagram")
        self.assertEqual(client.engine.connections(), [c])
        c.Close()
        self.assertIsNone(await closed)
        self.assertEqual(client.engine.connections(), [])

    def test_udpConn(self) -> None:
        """A dialled UDP conn: OnOpen's out is a datagram, one OnTraffic per datagram, OnClose."""
        return defer.ensureDeferred(self._udpConn())

    async def _udpWritesStayDatagrams(self) -> None:
        from twisted.internet import reactor

        got: list[bytes] = []
        done: Deferred = Deferred()

        class Peer(protocol.DatagramProtocol):
            def datagramReceived(self, data: bytes, addr: Any) -> None:
                got.append(data)
                if data == b"go":
                    self.transport.write(b"go", addr)
                elif len(got) == 3 and not done.called:
                    done.callback(None)

        port = reactor.listenUDP(0, Peer(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        class H(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                c.Discard(-1)
                c.Write(b"one")
                c.Write(b"two")

        client = self.newClient(H())
        client.Start()
        c = await client.Dial("udp", f"127.0.0.1:{port.getHost().port}")
        c.Write(b"go")
        await done.addTimeout(10, reactor)
        self.assertEqual(got, [b"go", b"one", b"two"])

    def test_udpWritesStayDatagrams(self) -> None:
        """
        Two writes in one C{OnTraffic} of a connected UDP conn are two
        datagrams (stream connections send them together; datagrams are
        never joined).
        """
        return defer.ensureDeferred(self._udpWritesStayDatagrams())

    async def _udpRefused(self) -> None:
        free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()
        closed: Deferred = Deferred()

        class H(gnet.BuiltinEventEngine):
            def OnClose(self, c: Any, err: Any) -> Any:
                closed.callback(err)

        client = self.newClient(H())
        client.Start()
        c = await client.Dial("udp", f"127.0.0.1:{port}")
        c.Write(b"anyone?")
        err = await closed
        self.assertIsInstance(err, ConnectionRefusedError)

    def test_udpRefused(self) -> None:
        """A connected UDP conn whose peer is gone is closed with the refusal as err."""
        return defer.ensureDeferred(self._udpRefused())

    async def _registerOnEngine(self) -> None:
        bootErrors: list = []

        class Echo(gnet.BuiltinEventEngine):
            def OnBoot(self, eng: Any) -> Any:
                try:
                    eng.Register(NewNetAddrContext(None, "tcp://127.0.0.1:1"))
                except GnetError as e:
                    bootErrors.append(type(e))

            def OnTraffic(self, c: Any) -> Any:
                c.Write(c.Next(-1))

        echo = await self.serve(Echo(), "tcp://127.0.0.1:0")
        port = echo.listeningPorts[0].getHost().port
        opened: list = []

        class Front(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                opened.append((c, c.Context(), c.SafeContext()))

        front = await self.serve(Front(), "tcp://127.0.0.1:0")
        self.assertEqual(bootErrors, [ErrEmptyEngine])
        self.assertRaises(ErrInvalidNetworkAddress, front.Register, NewContext(None, "x"))
        self.assertRaises(ErrInvalidNetworkAddress, front.Register, None)
        r1 = await front.Register(
            NewNetAddrContext(NewContext(None, "by-addr"), gnet.Addr("tcp", "127.0.0.1", port))
        )
        sock = socket.create_connection(("127.0.0.1", port))
        r2 = await front.Register(NewNetConnContext(NewContext(None, "by-conn"), sock))
        self.assertEqual(sock.fileno(), -1)
        self.assertIsNone(r1.Err)
        self.assertIsNone(r2.Err)
        self.assertEqual(opened, [(r1.Conn, "by-addr", "by-addr"), (r2.Conn, "by-conn", "by-conn")])
        self.assertEqual(front.CountConnections(), 2)
        refused = await front.Register(NewNetAddrContext(None, "tcp://127.0.0.1:1"))
        self.assertIsNone(refused.Conn)
        self.assertIsInstance(refused.Err, ConnectionRefusedError)
        await front.Stop()
        self.assertRaises(ErrEngineInShutdown, front.Register, NewNetAddrContext(None, "tcp://x:1"))

    def test_registerOnEngine(self) -> None:
        """
        Engine.Register: ErrEmptyEngine in OnBoot, neither/None ->
        ErrInvalidNetworkAddress, both paths.
        """
        return defer.ensureDeferred(self._registerOnEngine())


class LoopPlacementTests(_ClientTestCase):
    """With several event loops, a registered connection joins the loop asked for."""

    async def _registerOnLoop(self) -> None:
        class Echo(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                c.Write(c.Next(-1))

        echo = await self.serve(Echo(), "tcp://127.0.0.1:0")
        port = echo.listeningPorts[0].getHost().port
        accepted: list = []

        class Front(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                accepted.append(c)

        front = await self.serve(Front(), "tcp://127.0.0.1:0", gnet.WithNumEventLoop(3))
        self.assertEqual(len(front.loops), 3)
        loop2 = front.loops[2]
        r = await loop2.Register(None, gnet.Addr("tcp", "127.0.0.1", port))
        self.assertIsNone(r.Err)
        self.assertIs(r.Conn.EventLoop(), loop2)
        sock = socket.create_connection(("127.0.0.1", port))
        r = await front.loops[1].Enroll(None, sock)
        self.assertIs(r.Conn.EventLoop(), front.loops[1])
        self.assertEqual([lp.connections for lp in front.loops], [0, 1, 1])
        await front.Stop()

    def test_registerOnLoop(self) -> None:
        """C{loop.Register}/C{loop.Enroll} put the connection on that loop, as gnet does."""
        return defer.ensureDeferred(self._registerOnLoop())

    async def _clientLeastConnections(self) -> None:
        class Echo(gnet.BuiltinEventEngine):
            pass

        echo = await self.serve(Echo(), "tcp://127.0.0.1:0")
        port = echo.listeningPorts[0].getHost().port
        client = self.newClient(gnet.BuiltinEventEngine(), gnet.WithNumEventLoop(2))
        client.Start()
        conns = [await client.Dial("tcp", f"127.0.0.1:{port}") for _ in range(4)]
        self.assertEqual([c.EventLoop().index for c in conns], [0, 1, 0, 1])

    def test_clientLeastConnections(self) -> None:
        """A client's connections go to its loop with the fewest, as gnet's client does."""
        return defer.ensureDeferred(self._clientLeastConnections())
