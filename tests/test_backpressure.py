"""
Closing a connection with a full outbound buffer, and C{WriteBufferCap}
(gnet fidelity items 1 and 2), over real loopback sockets.

Item 1: a close of any kind (the C{Close} action, C{c.Close()},
C{CloseWithCallback}, C{EventLoop.Close}, a C{Shutdown} action, C{Stop()})
made while reading is paused for a full outbound buffer ends with the socket
closed once the queued bytes are written: the peer gets every byte, then EOF,
and the process's descriptors return to their baseline.

Item 2: C{WriteBufferCap} is how much outbound data may wait before reading
pauses; C{ReadBufferCap} is only the read size.

Issue 18 item 1: a C{bytearray}/C{memoryview} write that the kernel takes
only in part is queued whole and intact for a peer that reads late.

Every client runs in a thread with blocking sockets and deadlines, so the
reactor never blocks and no wait is unbounded.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, reactor, task, tcp, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

import gnetcompat as gnet

from ._hardening_util import WSClient, closeFrame, frame, startServer
from ._hardening_util import openFds as pidFds

_KIB = 1024
_MIB = 1024 * 1024

#: what the server writes before closing: more than the kernel buffers and
#: the high-water mark together, so the close finds bytes queued
BIG = 8 * _MIB


def ownFds() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def smallClient(addr: Any, family: int = socket.AF_INET) -> socket.socket:
    """A blocking client socket with a small receive buffer, connected to C{addr}."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(addr)
    return s


def readToEOF(s: socket.socket, timeout: float) -> tuple[int, bool]:
    """
    Read C{s} until EOF or C{timeout}: C{(bytes read, EOF seen)}.
    """
    deadline = time.monotonic() + timeout
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return total, False
        s.settimeout(left)
        try:
            data = s.recv(1 << 20)
        except TimeoutError:
            return total, False
        if not data:
            return total, True
        total += len(data)


def lateReader(
    addr: Any, closed: threading.Event, family: int = socket.AF_INET
) -> tuple[int, bool]:
    """
    Connect, send C{go}, wait (bounded) until the server's C{OnClose} ran,
    only then read everything: what L{readToEOF} says.
    """
    s = smallClient(addr, family)
    try:
        s.sendall(b"go")
        if not closed.wait(15):
            raise AssertionError("the server never closed the connection")
        return readToEOF(s, 15)
    finally:
        s.close()


class BigWriter(gnet.BuiltinEventEngine):
    """
    On its first traffic, writes C{size} bytes, then closes the connection
    the way C{how} says; C{OnClose} sets C{closed}.
    """

    def __init__(self, how: str, size: int = BIG) -> None:
        self.how = how
        self.size = size
        self.closed = threading.Event()
        self.errs: list[Any] = []
        self.callbacks: list[Any] = []
        self.engine: Any = None

    def OnBoot(self, eng: Any) -> Any:
        self.engine = eng
        return gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        c.Next(-1)
        c.Write(b"x" * self.size)
        how = self.how
        if how == "action":
            return gnet.Close
        if how == "shutdown":
            return gnet.Shutdown
        if how == "conn":
            c.Close()
        elif how == "callback":
            c.CloseWithCallback(lambda conn, err: self.callbacks.append(err))
        elif how == "loop":
            # EventLoop.Close is loop-only and synchronous: once OnTraffic returned
            reactor.callLater(0, c.EventLoop().Close, c)
        elif how == "stop":
            reactor.callLater(0, self.engine.Stop)
        return gnet.None_

    def OnClose(self, c: Any, err: Any) -> Any:
        self.errs.append(err)
        self.closed.set()
        return gnet.None_


class _Serving(TestCase):
    """Serve a handler with cleanup; a bounded poll on the reactor."""

    timeout = 60

    def serve(self, handler: Any, addr: str = "tcp://127.0.0.1:0", *opts: Any) -> Deferred:
        def started(eng: Any) -> Any:
            def cleanup() -> Any:
                if not eng.stopping:
                    eng.Stop()
                return eng.whenStopped()

            self.addCleanup(cleanup)
            return eng

        return gnet.Serve(handler, addr, *opts).addCallback(started)

    @inlineCallbacks
    def baselineFds(self) -> Any:
        """This process's descriptor count, once the thread pool (and its waker pipe) runs."""
        yield threads.deferToThread(lambda: None)
        return ownFds()

    @inlineCallbacks
    def waitUntil(self, predicate: Callable[[], bool], timeout: float, what: str) -> Any:
        """Poll C{predicate} on the reactor every 20 ms, failing after C{timeout} s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout} s waiting for {what}")
            yield task.deferLater(reactor, 0.02, lambda: None)


class CloseAfterBigWriteTests(_Serving):
    """Item 1: every close path ends with the socket closed once its bytes are written."""

    @inlineCallbacks
    def closeAfterBigWrite(self, how: str, addr: str = "tcp://127.0.0.1:0") -> Any:
        handler = BigWriter(how)
        # a long shutdown timeout: a close that only happens at the timeout fails
        eng = yield self.serve(handler, addr, gnet.WithShutdownTimeout(30))
        host = eng.listeningPorts[0].getHost()
        baseline = yield self.baselineFds()
        if addr.startswith("unix://"):
            target, family = host.name, socket.AF_UNIX
        else:
            target, family = (host.host, host.port), socket.AF_INET
        # EOF within readToEOF's 15 s: the close did not wait for the 30 s timeout
        total, eof = yield threads.deferToThread(lateReader, target, handler.closed, family)
        self.assertEqual(total, BIG)
        self.assertTrue(eof, "all bytes arrived but the socket was never closed")
        self.assertEqual(handler.errs, [None])
        if how in ("shutdown", "stop"):
            yield eng.whenStopped()
        else:
            self.assertEqual(eng.CountConnections(), 0)
        # the server's socket is closed too (the client's was closed by lateReader)
        yield self.waitUntil(lambda: ownFds() <= baseline, 10, "the server socket to close")
        if how == "callback":
            self.assertEqual(handler.callbacks, [None])

    def test_closeAction(self) -> Any:
        """OnTraffic writes 8 MiB and returns Close: the late reader gets all of it, then EOF."""
        return self.closeAfterBigWrite("action")

    def test_connClose(self) -> Any:
        """The same with C{c.Close()}."""
        return self.closeAfterBigWrite("conn")

    def test_closeWithCallback(self) -> Any:
        """The same with C{c.CloseWithCallback(cb)}; the callback gets C{None}."""
        return self.closeAfterBigWrite("callback")

    def test_eventLoopClose(self) -> Any:
        """The same with C{c.EventLoop().Close(c)}."""
        return self.closeAfterBigWrite("loop")

    def test_shutdownAction(self) -> Any:
        """The same with a Shutdown action: EOF long before the 30 s shutdown timeout."""
        return self.closeAfterBigWrite("shutdown")

    def test_stop(self) -> Any:
        """The same with C{Engine.Stop()}: EOF long before the 30 s shutdown timeout."""
        return self.closeAfterBigWrite("stop")

    def test_unixSocket(self) -> Any:
        """The same over a unix socket."""
        path = os.path.relpath(self.mktemp())
        return self.closeAfterBigWrite("action", f"unix://{path}")

    @inlineCallbacks
    def test_fdsBackToBaseline(self) -> Any:
        """
        200 connections, each closed with 256 KiB queued (small socket
        buffers) while its peer does not read, then read to EOF: every
        one gets all bytes and EOF, and the process's descriptor count
        returns to its baseline.
        """
        size = 256 * _KIB
        batch = 20
        closes = threading.Semaphore(0)

        class Writer(BigWriter):
            def OnClose(self, c: Any, err: Any) -> Any:
                closes.release()
                return gnet.None_

        eng = yield self.serve(
            Writer("action", size),
            "tcp://127.0.0.1:0",
            gnet.WithSocketSendBuffer(4096),
            gnet.WithShutdownTimeout(30),
        )
        host = eng.listeningPorts[0].getHost()
        addr = (host.host, host.port)
        baseline = yield self.baselineFds()

        def run() -> list[tuple[int, bool]]:
            results = []
            for _ in range(200 // batch):
                socks = [smallClient(addr) for _ in range(batch)]
                try:
                    for s in socks:
                        s.sendall(b"go")
                    for _ in socks:
                        if not closes.acquire(timeout=15):
                            raise AssertionError("the server never closed a connection")
                    for s in socks:
                        results.append(readToEOF(s, 15))
                        if not results[-1][1]:
                            return results  # no EOF: stop early (bounded)
                finally:
                    for s in socks:
                        s.close()
            return results

        results = yield threads.deferToThread(run)
        self.assertEqual(results, [(size, True)] * 200)
        yield self.waitUntil(lambda: ownFds() <= baseline, 10, "descriptors back to baseline")
        self.assertEqual(eng.CountConnections(), 0)

    @inlineCallbacks
    def test_unreadBytesDroppedAfterTimeout(self) -> Any:
        """
        A peer that never reads after our close does not hold the socket
        forever: with a C{ShutdownTimeout} the queued bytes are dropped and
        the socket is closed.  (That this happens only after
        C{ShutdownTimeout} seconds without progress is pinned on a fake
        clock: L{FlushLimitTests}.)
        """
        handler = BigWriter("action")
        eng = yield self.serve(handler, "tcp://127.0.0.1:0", gnet.WithShutdownTimeout(0.5))
        host = eng.listeningPorts[0].getHost()
        baseline = yield self.baselineFds()
        s = yield threads.deferToThread(smallClient, (host.host, host.port))
        self.addCleanup(s.close)
        s.sendall(b"go")
        yield self.waitUntil(handler.closed.is_set, 15, "OnClose")
        # only the client's socket is left
        yield self.waitUntil(
            lambda: ownFds() <= baseline + 1, 10, "the unflushed socket to be dropped"
        )


class ClientCloseAfterBigWriteTests(_Serving):
    """Item 1 for connections dialled with C{gnetcompat.client}."""

    @inlineCallbacks
    def test_dialledConnection(self) -> Any:
        """
        A dialled connection writes 8 MiB and closes while its peer (a plain
        Twisted server that reads late) is not reading: the peer gets every
        byte, then EOF.
        """
        got: dict[str, Any] = {"n": 0}
        eof: Deferred = Deferred()
        started: Deferred = Deferred()

        class LateReader(Protocol):
            def connectionMade(self) -> None:
                self.transport.pauseProducing()
                started.callback(self)

            def dataReceived(self, data: bytes) -> None:
                got["n"] += len(data)

            def connectionLost(self, reason: Any = None) -> None:
                eof.callback(None)

        port = reactor.listenTCP(0, Factory.forProtocol(LateReader), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        closed: Deferred = Deferred()

        class Dialler(gnet.BuiltinEventEngine):
            def OnClose(self, c: Any, err: Any) -> Any:
                closed.callback(err)
                return gnet.None_

        client = gnet.NewClient(Dialler(), gnet.WithShutdownTimeout(30))
        client.Start()
        self.addCleanup(lambda: None if client._stopCalled else client.Stop())
        c = yield client.Dial("tcp", f"127.0.0.1:{port.getHost().port}")
        server = yield started
        c.Write(b"x" * BIG)
        c.Close()
        self.assertIsNone((yield closed))
        server.transport.resumeProducing()
        yield self.waitUntil(lambda: eof.called, 15, "EOF at the late reader")
        self.assertEqual(got["n"], BIG)


def _pushUnread(addr: Any, total: int, stop: threading.Event) -> tuple[int, int]:
    """
    Send up to C{total} bytes without reading anything, until all are
    sent or C{stop} is set (bounded: 60 s); then read back everything
    sent.  Returns C{(bytes sent, bytes echoed)}.
    """
    s = socket.create_connection(addr, timeout=10)
    try:
        s.setblocking(False)
        chunk = b"e" * (256 * _KIB)
        sent = 0
        deadline = time.monotonic() + 60
        while sent < total and not stop.is_set() and time.monotonic() < deadline:
            try:
                sent += s.send(chunk[: total - sent])
            except BlockingIOError:
                select.select([], [s], [], 0.05)  # until writable, or look at stop again
        s.setblocking(True)
        s.settimeout(15)
        echoed = 0
        while echoed < sent:
            data = s.recv(1 << 20)
            if not data:
                break
            echoed += len(data)
        return sent, echoed
    finally:
        s.close()


class Echo(gnet.BuiltinEventEngine):
    """Echo everything."""

    def OnTraffic(self, c: Any) -> Any:
        c.Write(c.Next(-1))
        return gnet.None_


class WriteBufferCapTests(_Serving):
    """Item 2: WriteBufferCap bounds outbound data; ReadBufferCap is the read size only."""

    @inlineCallbacks
    def test_largeWriteBufferCapHoldsAnUnreadEcho(self) -> Any:
        """
        With C{WithWriteBufferCap(64 MiB)} a client that sends 24 MiB before
        reading anything gets all of it sent, then all of it back.
        """
        eng = yield self.serve(Echo(), "tcp://127.0.0.1:0", gnet.WithWriteBufferCap(64 * _MIB))
        host = eng.listeningPorts[0].getHost()
        sent, echoed = yield threads.deferToThread(
            _pushUnread, (host.host, host.port), 24 * _MIB, threading.Event()
        )
        self.assertEqual((sent, echoed), (24 * _MIB, 24 * _MIB))

    @inlineCallbacks
    def test_defaultPausesReading(self) -> Any:
        """
        With the default (64 KiB) and a 256 KiB read size, the same client
        is pushed back: the server stops reading (its socket leaves the
        reactor's readers) before the client sent 24 MiB; once the client
        reads, every byte it sent comes back.
        """
        eng = yield self.serve(Echo(), "tcp://127.0.0.1:0", gnet.WithReadBufferCap(256 * _KIB))
        self.assertEqual(eng.options.WriteBufferCap, 64 * _KIB)
        host = eng.listeningPorts[0].getHost()
        stop = threading.Event()
        pushing = threads.deferToThread(_pushUnread, (host.host, host.port), 24 * _MIB, stop)

        def paused() -> bool:
            fds = {c.Fd() for c in eng.connections()}
            return bool(fds) and not any(r.fileno() in fds for r in reactor.getReaders())

        try:
            yield self.waitUntil(
                lambda: paused() or pushing.called, 30, "the server to stop reading"
            )
            pushedBack = paused() and not pushing.called
        finally:
            stop.set()
        sent, echoed = yield pushing
        self.assertTrue(pushedBack, f"the client sent {sent} bytes, the server still reading")
        self.assertLess(sent, 24 * _MIB)
        self.assertEqual(echoed, sent)

    @inlineCallbacks
    def test_readBufferCapIsNotTheWriteLimit(self) -> Any:
        """
        With a 256 KiB read size and the default WriteBufferCap, 192 KiB
        left queued for a peer that does not read pause reading (the
        connection's socket leaves the reactor's readers); once the peer
        read it all, reading resumes and the connection echoes again.
        """
        fds: list[int] = []

        class Writer(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                data = c.Next(-1)
                fds.append(c.Fd())
                c.Write(b"y" * (192 * _KIB) if data == b"go" else data)
                return gnet.None_

        eng = yield self.serve(
            Writer(),
            "tcp://127.0.0.1:0",
            gnet.WithReadBufferCap(256 * _KIB),
            gnet.WithSocketSendBuffer(4096),
        )
        host = eng.listeningPorts[0].getHost()
        s = yield threads.deferToThread(smallClient, (host.host, host.port))
        self.addCleanup(s.close)
        s.sendall(b"go")

        def reading() -> bool:
            return bool(fds) and any(r.fileno() == fds[0] for r in reactor.getReaders())

        yield self.waitUntil(lambda: bool(fds), 10, "OnTraffic")
        # 192 KiB are queued: reading pauses
        yield self.waitUntil(lambda: not reading(), 10, "reading to pause")

        def drainThenEcho() -> bytes:
            n = 0
            while n < 192 * _KIB:
                data = s.recv(1 << 20)
                if not data:
                    raise AssertionError("EOF")
                n += len(data)
            s.sendall(b"ping")
            return s.recv(4)

        self.assertEqual((yield threads.deferToThread(drainThenEcho)), b"ping")
        self.assertTrue(reading())


def readExactly(s: socket.socket, n: int, timeout: float) -> bytes:
    """Read C{n} bytes from C{s}, or what came before EOF or C{timeout}."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(min(n - got, 1 << 20))
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class MutableBufferWriter(gnet.BuiltinEventEngine):
    """
    On C{go}: writes C{size} bytes of C{a} from a C{bytearray} inside
    C{OnTraffic} and overwrites the buffer right after, then (from a
    runnable: on the loop, outside C{OnTraffic}) C{size} bytes of C{b}
    through a C{memoryview}, overwritten likewise; C{written} is set after
    both.  Answers C{ping} with C{pong}.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.written = threading.Event()

    def OnTraffic(self, c: Any) -> Any:
        data = c.Next(-1)
        if data == b"ping":
            c.Write(b"pong")
            return gnet.None_
        first = bytearray(b"a" * self.size)
        c.Write(first)
        first[:] = b"?" * self.size

        def later(ctx: Any) -> None:
            try:
                second = bytearray(b"b" * self.size)
                c.Write(memoryview(second))
                second[:] = b"?" * self.size
            finally:
                self.written.set()

        c.EventLoop().Execute(None, gnet.RunnableFunc(later))
        return gnet.None_


#: the request and response of L{PipelinedHTTP} (gnet-examples' HTTP server)
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: gnet\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 13\r\n\r\nHello, World!"
)


class PipelinedHTTP(gnet.BuiltinEventEngine):
    """
    A port of gnet-examples' pipelined HTTP server: each connection's
    context is a codec buffer; C{OnTraffic} appends one response per
    complete request, writes the buffer with one C{Write} (a C{bytearray},
    every other read a C{memoryview} of it) and empties it for the next
    read, as the Go code does with C{hc.buf = hc.buf[:0]}.
    """

    def __init__(self) -> None:
        self.reads = 0

    def OnOpen(self, c: Any) -> Any:
        c.SetContext(bytearray())
        return None, gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        out = c.Context()
        data = c.Peek(-1)
        end = data.rfind(b"\r\n\r\n")
        if end < 0:
            return gnet.None_
        c.Discard(end + 4)
        for _ in range(data.count(b"\r\n\r\n", 0, end + 4)):
            out += RESPONSE
        self.reads += 1
        c.Write(memoryview(out) if self.reads % 2 else out)
        del out[:]
        return gnet.None_


def pipelineThenRead(addr: Any, requests: int, timeout: float) -> tuple[bytes, bytes]:
    """
    Send C{requests} pipelined requests before reading anything (small
    receive buffer), then read all the answers; then one more request on
    the same connection.  Returns (the answers, the last answer).
    """
    s = smallClient(addr)
    try:
        s.sendall(REQUEST * requests)
        answers = readExactly(s, len(RESPONSE) * requests, timeout)
        s.sendall(REQUEST)
        return answers, readExactly(s, len(RESPONSE), timeout)
    finally:
        s.close()


class MutableBufferWriteTests(_Serving):
    """
    Issue 18 item 1 over real sockets: a write of a C{bytearray} or
    C{memoryview} that the kernel takes only in part is queued (as C{bytes})
    and sent whole, unaffected by later changes to the buffer, and the
    connection stays up (Twisted's transports used to refuse the rest with
    C{TypeError: Data must be bytes} and drop the connection).
    """

    @inlineCallbacks
    def test_bigMutableBuffersToALateReader(self) -> Any:
        """
        8 MiB from a C{bytearray} in C{OnTraffic} and 8 MiB through a
        C{memoryview} outside it, both more than the socket buffers hold,
        both overwritten right after the call, reach a peer that reads only
        once both were written, intact and in order; the connection then
        still answers.
        """
        handler = MutableBufferWriter(BIG)
        eng = yield self.serve(handler, "tcp://127.0.0.1:0", gnet.WithSocketSendBuffer(4096))
        host = eng.listeningPorts[0].getHost()

        def lateRead() -> tuple[bytes, bytes]:
            s = smallClient((host.host, host.port))
            try:
                s.sendall(b"go")
                if not handler.written.wait(15):
                    raise AssertionError("the server never wrote both buffers")
                data = readExactly(s, 2 * BIG, 30)
                s.sendall(b"ping")
                return data, readExactly(s, 4, 15)
            finally:
                s.close()

        data, pong = yield threads.deferToThread(lateRead)
        self.assertEqual(len(data), 2 * BIG)
        self.assertTrue(data == b"a" * BIG + b"b" * BIG, "the bytes sent are not the ones written")
        self.assertEqual(pong, b"pong")
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_pipelinedHTTPLateReader(self) -> Any:
        """
        The issue's case: 50,000 pipelined HTTP requests sent before the
        client reads anything, answered with C{bytearray}/C{memoryview}
        writes of a reused codec buffer through small socket buffers: all
        50,000 answers arrive intact and the connection is kept.  (The
        server's C{WriteBufferCap} is raised so that it keeps reading a
        client that sends everything before reading; with the default it
        would push back, which L{WriteBufferCapTests} covers.)
        """
        handler = PipelinedHTTP()
        eng = yield self.serve(
            handler,
            "tcp://127.0.0.1:0",
            gnet.WithWriteBufferCap(64 * _MIB),
            gnet.WithSocketSendBuffer(4096),
        )
        host = eng.listeningPorts[0].getHost()
        requests = 50_000
        answers, last = yield threads.deferToThread(
            pipelineThenRead, (host.host, host.port), requests, 30
        )
        self.assertEqual(len(answers), len(RESPONSE) * requests)
        self.assertTrue(answers == RESPONSE * requests, "the answers are not intact")
        self.assertEqual(last, RESPONSE)
        self.assertGreater(handler.reads, 1)
        self.assertEqual(self.flushLoggedErrors(), [])


class WebSocketCloseTests(TestCase):
    """Item 1 through the real C{twistd -n gnetecho} service."""

    timeout = 90

    @inlineCallbacks
    def test_bigEchoThenClose(self) -> Any:
        """
        A slow WebSocket client sends an 8 MiB message and a Close frame in
        one go, then reads only after a pause: it gets the whole echo, the
        Close reply, then EOF promptly; the server's descriptors return to
        their count before the connection.
        """
        server = yield startServer(self)

        def run() -> tuple[int, int, bytes, int | None, bool]:
            c = WSClient(server.port, timeout=15)
            c.echo(b"warm-up")
            before = pidFds(server.pid)
            payload = os.urandom(BIG)
            c.send(frame(2, payload) + closeFrame(1000))
            time.sleep(1.0)  # a slow client (a thread, not the reactor)
            op, echoed = c.readMessage(timeout=15)
            code = c.waitClose(timeout=15)
            eof = c.eof or c.waitEOF(timeout=5)
            c.close()
            return before, op, echoed[:16] + bytes([echoed == payload]), code, eof

        before, op, echoed, code, eof = yield threads.deferToThread(run)
        self.assertEqual(op, 2)
        self.assertEqual(echoed[-1], 1, "the echo differs from the message")
        self.assertEqual(code, 1000)
        self.assertTrue(eof, "the server never closed the TCP connection")

        deadline = time.monotonic() + 10
        while pidFds(server.pid) >= before and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertLess(pidFds(server.pid), before)


@implementer(IPullProducer)
class _Watcher:
    def __init__(self) -> None:
        self.calls = 0

    def resumeProducing(self) -> None:
        self.calls += 1

    def stopProducing(self) -> None:
        pass


class TwistedCanaryTests(_Serving):
    """
    Twisted behaviour the fix relies on: L{writeBacklog} reads a
    FileDescriptor's private buffer attributes, and a pull producer is
    resumed when the write buffer empties.  A Twisted upgrade that changes
    either fails here.
    """

    def test_privateAttributesExist(self) -> None:
        """C{dataBuffer}, C{offset} and C{_tempDataLen} exist on Twisted's FileDescriptor."""
        from gnetcompat._twistedcompat import writeBacklog

        fd = abstract.FileDescriptor(reactor)
        self.assertEqual(writeBacklog(fd), 0)
        self.assertTrue(issubclass(tcp.Server, abstract.FileDescriptor))

    @inlineCallbacks
    def test_backlogAndDrainCallback(self) -> Any:
        """
        L{writeBacklog} counts what a TCP transport holds; a registered pull
        producer is resumed once the buffer empties.
        """
        from gnetcompat._twistedcompat import writeBacklog

        server: Deferred = Deferred()

        class Quiet(Protocol):
            def connectionMade(self) -> None:
                server.callback(self)

        port = reactor.listenTCP(0, Factory.forProtocol(Quiet), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        s = yield threads.deferToThread(smallClient, ("127.0.0.1", port.getHost().port))
        self.addCleanup(s.close)
        p = yield server
        t = p.transport
        t.write(b"z" * _MIB)
        self.assertEqual(writeBacklog(t), _MIB)
        w = _Watcher()
        t.registerProducer(w, False)
        first = w.calls

        def drain() -> int:
            n = 0
            while n < _MIB:
                n += len(s.recv(1 << 20))
            return n

        yield threads.deferToThread(drain)
        yield self.waitUntil(lambda: w.calls > first, 10, "the pull producer to be resumed")
        self.assertEqual(writeBacklog(t), 0)
        t.unregisterProducer()
        t.loseConnection()


class _FakeFD:
    """The parts of a Twisted FileDescriptor transport a closing L{Conn} uses."""

    def __init__(self, queued: int) -> None:
        self.dataBuffer = b"q" * queued
        self.offset = 0
        self._tempDataLen = 0
        self.connected = 1
        self.disconnecting = 0
        self.aborted = False

    def loseConnection(self) -> None:
        self.disconnecting = 1

    def abortConnection(self) -> None:
        self.aborted = True


class FlushLimitTests(SynchronousTestCase):
    """
    After a local close, queued bytes are dropped only when they made no
    progress for C{ShutdownTimeout} seconds (driven by a L{task.Clock}).
    """

    def closedConn(self, queued: int) -> tuple[Any, _FakeFD, task.Clock]:
        from gnetcompat._conn import Conn
        from gnetcompat._engine import Engine
        from gnetcompat.options import Options

        clock = task.Clock()
        eng = Engine(gnet.BuiltinEventEngine(), [], Options(Clock=clock, ShutdownTimeout=5))
        t = _FakeFD(queued)
        conn = Conn(eng, t)
        conn.driverCloseLocal(propagate=False)
        self.assertTrue(t.disconnecting)
        return conn, t, clock

    def test_progressKeepsFlushing(self) -> None:
        """A peer that keeps reading, however slowly, gets everything."""
        conn, t, clock = self.closedConn(1000)
        for sent in (100, 200, 300, 400):
            t.offset = sent
            clock.advance(5)
            self.assertFalse(t.aborted)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        conn.driverLost(None)  # flushed and closed: the timer goes
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stallDrops(self) -> None:
        """No progress for C{ShutdownTimeout} seconds: the socket is aborted."""
        _conn, t, clock = self.closedConn(1000)
        t.offset = 10
        clock.advance(5)
        self.assertFalse(t.aborted)
        clock.advance(4.9)
        self.assertFalse(t.aborted)
        clock.advance(0.1)
        self.assertTrue(t.aborted)

    def test_nothingQueued(self) -> None:
        """A close with nothing queued arms no timer."""
        _conn, _t, clock = self.closedConn(0)
        self.assertEqual(clock.getDelayedCalls(), [])
