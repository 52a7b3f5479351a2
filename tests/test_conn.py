"""
Unit tests for L{gnetcompat.Conn} and L{gnetcompat.UDPConn}: the Reader
methods (spec §7.2), writes, the queued operations (Close, Wake, AsyncWrite),
the close sequence and its C{err}, contexts, addresses and actions.

Everything runs on L{gnetcompat.testing.HandlerDriver}: no sockets, no real
time, no global reactor.
"""

from __future__ import annotations

import array
import errno
import io
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.python import threadable
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import gnetcompat as gnet
from gnetcompat._addr import Addr
from gnetcompat._conn import ConnDriver
from gnetcompat.errors import (
    ErrClosed,
    ErrEngineInShutdown,
    ErrEngineShutdown,
    ErrEOF,
    ErrInvalidNetworkAddress,
    ErrShortBuffer,
    ErrUnsupportedOp,
)
from gnetcompat.interfaces import IConn, IEventLoop
from gnetcompat.testing import HandlerDriver

from ._handlers import Recorder, booted


class ReaderEmptyBufferTests(SynchronousTestCase):
    """
    The test-verified values of spec §7.2 when nothing is buffered (an
    C{OnTraffic} triggered by C{Wake} on an idle connection).
    """

    def setUp(self) -> None:
        self.results: dict[str, Any] = {}

        def onTraffic(c: Any) -> None:
            r = self.results

            def call(name: str, fn: Callable[[], Any]) -> None:
                try:
                    r[name] = fn()
                except Exception as e:
                    r[name] = e

            call("Read(empty)", lambda: c.Read(bytearray()))
            call("Read(10)", lambda: c.Read(bytearray(10)))
            call("Next(10)", lambda: c.Next(10))
            call("Next(-1)", lambda: c.Next(-1))
            call("Next(0)", lambda: c.Next(0))
            call("Peek(10)", lambda: c.Peek(10))
            call("Peek(-1)", lambda: c.Peek(-1))
            call("Discard(10)", lambda: c.Discard(10))
            call("Discard(-1)", lambda: c.Discard(-1))
            call("WriteTo", lambda: c.WriteTo(io.BytesIO()))
            call("InboundBuffered", c.InboundBuffered)

        self.handler = Recorder(OnTraffic=onTraffic)
        self.driver = booted(self.handler)
        self.peer = self.driver.connect()
        self.peer.conn.Wake()
        self.driver.runPending()

    def test_wakeOnIdleConnCallsOnTraffic(self) -> None:
        """C{Wake} on an idle connection calls C{OnTraffic} once with nothing buffered."""
        self.assertEqual(self.handler.traffic(), 1)
        self.assertEqual(self.results["InboundBuffered"], 0)

    def test_readEmptyBufferIntoEmptySlice(self) -> None:
        """C{Read} into an empty buffer returns 0 and raises nothing (Go: C{(0, nil)})."""
        self.assertEqual(self.results["Read(empty)"], 0)

    def test_readEmptyBufferIsShortBuffer(self) -> None:
        """C{Read} with nothing buffered raises L{ErrShortBuffer}, not EOF."""
        self.assertIsInstance(self.results["Read(10)"], ErrShortBuffer)

    def test_nextAndPeekTooMuchAreShortBuffer(self) -> None:
        """C{Next(10)} and C{Peek(10)} with nothing buffered raise L{ErrShortBuffer}."""
        self.assertIsInstance(self.results["Next(10)"], ErrShortBuffer)
        self.assertIsInstance(self.results["Peek(10)"], ErrShortBuffer)

    def test_nextAndPeekAllAreEmpty(self) -> None:
        """C{Next(-1)}, C{Next(0)} and C{Peek(-1)} return empty bytes."""
        self.assertEqual(self.results["Next(-1)"], b"")
        self.assertEqual(self.results["Next(0)"], b"")
        self.assertEqual(self.results["Peek(-1)"], b"")

    def test_discardNeverFails(self) -> None:
        """C{Discard(10)} and C{Discard(-1)} return 0 on an empty buffer."""
        self.assertEqual(self.results["Discard(10)"], 0)
        self.assertEqual(self.results["Discard(-1)"], 0)

    def test_writeToEmpty(self) -> None:
        """C{WriteTo} drains nothing and returns 0."""
        self.assertEqual(self.results["WriteTo"], 0)


class ReaderTests(SynchronousTestCase):
    """The Reader methods on partial buffers and across reads (spec §7.2, §4.4)."""

    def drive(self, onTraffic: Callable[[Any], Any]) -> tuple[Recorder, Any]:
        handler = Recorder(OnTraffic=onTraffic)
        driver = booted(handler)
        return handler, driver.connect()

    def test_workedExample(self) -> None:
        """
        Spec §7.2: C{abcdef} arrives, C{Peek(4)}/C{Discard(4)} leave C{ef};
        nothing re-fires; C{gh} arrives and C{OnTraffic} sees C{efgh}.
        """
        seen: list[tuple[bytes, int]] = []

        def onTraffic(c: Any) -> None:
            seen.append((c.Peek(-1), c.InboundBuffered()))
            if len(seen) == 1:
                self.assertEqual(c.Peek(4), b"abcd")
                self.assertEqual(c.Discard(4), 4)

        _handler, peer = self.drive(onTraffic)
        peer.send(b"abcdef")
        peer.driver.runPending()
        peer.driver.advance(10)
        self.assertEqual(seen, [(b"abcdef", 6)])
        peer.send(b"gh")
        self.assertEqual(seen, [(b"abcdef", 6), (b"efgh", 4)])

    def test_nextShortBufferConsumesNothing(self) -> None:
        """C{Next(n)} with fewer than C{n} bytes raises and leaves every byte readable."""
        out: list[Any] = []

        def onTraffic(c: Any) -> None:
            self.assertRaises(ErrShortBuffer, c.Next, 4)
            out.append(c.InboundBuffered())
            out.append(c.Next(2))
            out.append(c.Next(1))

        _, peer = self.drive(onTraffic)
        peer.send(b"abc")
        self.assertEqual(out, [3, b"ab", b"c"])

    def test_peekDoesNotConsume(self) -> None:
        """C{Peek} returns bytes without consuming them; C{Peek(n > T)} raises."""
        out: list[Any] = []

        def onTraffic(c: Any) -> None:
            out.append(c.Peek(2))
            out.append(c.Peek(2))
            self.assertRaises(ErrShortBuffer, c.Peek, 4)
            out.append(c.InboundBuffered())

        _, peer = self.drive(onTraffic)
        peer.send(b"abc")
        self.assertEqual(out, [b"ab", b"ab", 3])

    def test_discardPartialAndBeyond(self) -> None:
        """C{Discard(n)} drops C{n}; beyond what is buffered it drops all and returns T."""
        out: list[Any] = []

        def onTraffic(c: Any) -> None:
            out.append(c.Discard(1))
            out.append(c.Discard(10))
            out.append(c.InboundBuffered())

        _, peer = self.drive(onTraffic)
        peer.send(b"abcd")
        self.assertEqual(out, [1, 3, 0])

    def test_readPartial(self) -> None:
        """C{Read} copies C{min(len(p), T)} bytes into C{p} and consumes them."""
        out: list[Any] = []

        def onTraffic(c: Any) -> None:
            p = bytearray(2)
            out.append((c.Read(p), bytes(p)))
            q = bytearray(10)
            n = c.Read(q)
            out.append((n, bytes(q[:n])))
            self.assertRaises(ErrShortBuffer, c.Read, bytearray(1))

        _, peer = self.drive(onTraffic)
        peer.send(b"abcde")
        self.assertEqual(out, [(2, b"ab"), (3, b"cde")])

    def test_readIntoMemoryview(self) -> None:
        """C{Read} accepts any writable buffer, such as a C{memoryview}."""
        buf = bytearray(8)

        def onTraffic(c: Any) -> None:
            self.assertEqual(c.Read(memoryview(buf)[2:5]), 3)

        _, peer = self.drive(onTraffic)
        peer.send(b"xyzw")
        self.assertEqual(bytes(buf), b"\0\0xyz\0\0\0")

    def test_afterNextAll(self) -> None:
        """After C{Next(-1)}: C{InboundBuffered()} is 0 and C{Discard(1)} returns 0."""
        out: list[Any] = []

        def onTraffic(c: Any) -> None:
            out.append(c.Next(-1))
            out.append(c.InboundBuffered())
            out.append(c.Discard(1))
            out.append(c.OutboundBuffered() >= 0)

        _, peer = self.drive(onTraffic)
        peer.send(b"hello")
        self.assertEqual(out, [b"hello", 0, 0, True])

    def test_writeToFileAndConn(self) -> None:
        """C{WriteTo} drains every readable byte into a file-like object or a Conn."""
        sink = io.BytesIO()
        counts: list[int] = []

        def onTraffic(c: Any) -> None:
            if c.Peek(1) == b"f":
                counts.append(c.WriteTo(sink))
            else:
                counts.append(c.WriteTo(c))
            counts.append(c.InboundBuffered())

        _, peer = self.drive(onTraffic)
        peer.send(b"file")
        peer.send(b"conn")
        self.assertEqual(counts, [4, 0, 4, 0])
        self.assertEqual(sink.getvalue(), b"file")
        self.assertEqual(peer.received(), b"conn")

    def test_retainedBytesNeverRefire(self) -> None:
        """
        Bytes left unread do not cause another C{OnTraffic}: only new data or
        C{Wake} does, and the retained bytes are shown first then.
        """
        seen: list[bytes] = []

        def onTraffic(c: Any) -> None:
            seen.append(c.Peek(-1))

        _handler, peer = self.drive(onTraffic)
        peer.send(b"abc")
        peer.driver.runPending()
        peer.driver.advance(60)
        self.assertEqual(seen, [b"abc"])
        peer.send(b"d")
        self.assertEqual(seen, [b"abc", b"abcd"])
        peer.conn.Wake()
        self.assertEqual(seen, [b"abc", b"abcd"])  # queued, not yet run
        peer.driver.runPending()
        self.assertEqual(seen, [b"abc", b"abcd", b"abcd"])

    def test_retainedBytesAcrossManyReads(self) -> None:
        """A frame split over several reads is assembled in order from retained bytes."""
        frames: list[bytes] = []

        def onTraffic(c: Any) -> None:
            while c.InboundBuffered() >= 4:
                frames.append(c.Next(4))

        _, peer = self.drive(onTraffic)
        for chunk in (b"a", b"bc", b"defg", b"h", b"ijklmn", b"op"):
            peer.send(chunk)
        self.assertEqual(frames, [b"abcd", b"efgh", b"ijkl", b"mnop"])

    def test_closeActionDropsUnconsumed(self) -> None:
        """Returning C{Close} drops unconsumed inbound bytes; later data is not delivered."""
        handler, peer = self.drive(lambda c: gnet.Close)
        peer.send(b"abc")
        self.assertTrue(peer.closedByServer)
        self.assertEqual(handler.traffic(), 1)
        self.assertEqual(peer.conn.InboundBuffered(), 0)
        peer.protocol.dataReceived(b"late")
        self.assertEqual(handler.traffic(), 1)


class ShortBufferTests(SynchronousTestCase):
    """
    Issue 18 item 9: an L{ErrShortBuffer} escaping C{OnTraffic} is Go's
    C{if err != nil { return gnet.None }}: wait for more data, the
    connection kept, no error logged.
    """

    def frameEcho(self) -> tuple[HandlerDriver, list[bytes], list[Any]]:
        """
        A driver whose handler answers length-prefixed frames the way a
        ported gnet codec reads them: C{Peek(4)} the header, C{Next(4 + n)}
        the frame, no try/except.  Returns the driver, the bodies seen and
        the engine's log events.
        """
        bodies: list[bytes] = []
        events: list[Any] = []

        def onTraffic(c: Any) -> None:
            while True:
                hdr = c.Peek(4)
                n = int.from_bytes(hdr, "big")
                frame = c.Next(4 + n)
                bodies.append(frame[4:])
                c.Write(frame[4:].upper())

        driver = booted(
            Recorder(OnTraffic=onTraffic), gnet.WithLogger(Logger(observer=events.append))
        )
        return driver, bodies, events

    def test_frameSplitOverReads(self) -> None:
        """
        Frames split inside the header and inside the body, over several
        reads, are all answered; the connection stays open, nothing is
        logged above debug, and one debug line is logged for the connection.
        """
        driver, bodies, events = self.frameEcho()
        peer = driver.connect()
        stream = b"".join(
            len(b).to_bytes(4, "big") + b for b in (b"one", b"", b"three", b"x" * 300)
        )
        for piece in (
            stream[:2],
            stream[2:5],
            stream[5:9],
            stream[9:20],
            stream[20:21],
            stream[21:],
        ):
            peer.send(piece)
        self.assertEqual(bodies, [b"one", b"", b"three", b"x" * 300])
        self.assertEqual(peer.received(), b"ONETHREE" + b"X" * 300)
        self.assertFalse(peer.closedByServer)
        self.assertEqual(peer.conn.InboundBuffered(), 0)
        self.assertEqual(self.flushLoggedErrors(), [])
        levels = [e["log_level"] for e in events]
        self.assertEqual(levels, [LogLevel.debug])
        self.assertIn("short buffer", formatEvent(events[0]))

    def test_oneDebugLinePerConnection(self) -> None:
        """Each connection logs the short-buffer wait at most once, at debug level."""
        driver, bodies, events = self.frameEcho()
        first, second = driver.connect(), driver.connect()
        for peer in (first, second, first, second):
            peer.send(b"\x00\x00")
            peer.send(b"\x00\x01")
            peer.send(b"z")
        self.assertEqual(bodies, [b"z"] * 4)
        self.assertEqual([e["log_level"] for e in events], [LogLevel.debug] * 2)

    def test_writesBeforeTheShortBufferAreSent(self) -> None:
        """What C{OnTraffic} wrote before the short read goes out, as after C{return None}."""

        def onTraffic(c: Any) -> None:
            c.Write(b"seen ")
            c.Next(10)

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"abc")
        self.assertEqual(peer.received(), b"seen ")
        self.assertEqual(peer.conn.InboundBuffered(), 3)
        self.assertFalse(peer.closedByServer)

    def test_attributes(self) -> None:
        """
        L{ErrShortBuffer} says how many bytes were asked for and how many
        were buffered; its text stays gnet's C{short buffer}.
        """
        errs: list[Any] = []

        def onTraffic(c: Any) -> None:
            for call in (lambda: c.Next(10), lambda: c.Peek(7)):
                try:
                    call()
                except ErrShortBuffer as e:
                    errs.append((e.requested, e.buffered, str(e)))
            c.Discard(-1)
            try:
                c.Read(bytearray(5))
            except ErrShortBuffer as e:
                errs.append((e.requested, e.buffered, str(e)))

        booted(Recorder(OnTraffic=onTraffic)).connect().send(b"abc")
        self.assertEqual(
            errs, [(10, 3, "short buffer"), (7, 3, "short buffer"), (5, 0, "short buffer")]
        )
        self.assertIsInstance(ErrShortBuffer(), gnet.GnetError)
        self.assertEqual((ErrShortBuffer().requested, ErrShortBuffer().buffered), (None, None))

    def test_wakeCallbackGetsNone(self) -> None:
        """A C{Wake} whose C{OnTraffic} stops at a short buffer calls back with C{None}."""
        driver = booted(Recorder(OnTraffic=lambda c: c.Next(4)))
        peer = driver.connect()
        results: list[Any] = []
        peer.conn.Wake(lambda c, err: results.append(err))
        driver.runPending()
        self.assertEqual(results, [None])
        self.assertFalse(peer.closedByServer)

    def test_otherErrorsStillClose(self) -> None:
        """Only L{ErrShortBuffer} means "wait": another L{GnetError} still closes, logged."""

        def onTraffic(c: Any) -> None:
            raise ErrUnsupportedOp()

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"x")
        self.assertEqual(len(self.flushLoggedErrors(ErrUnsupportedOp)), 1)
        self.assertTrue(peer.closedByServer)

    def test_shortDatagramDropped(self) -> None:
        """
        A datagram shorter than the handler's C{Next(n)} is dropped quietly
        (nothing sent, nothing logged above debug); the next one is served.
        """
        events: list[Any] = []

        def onTraffic(c: Any) -> None:
            c.Write(c.Next(4))

        driver = booted(
            Recorder(OnTraffic=onTraffic),
            gnet.WithLogger(Logger(observer=events.append)),
            address="udp://127.0.0.1:9000",
        )
        self.assertEqual(driver.datagram(b"ab"), [])
        self.assertEqual(driver.datagram(b"ab"), [])
        self.assertEqual(driver.datagram(b"abcd"), [(b"abcd", ("127.0.0.1", 40000))])
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual([e["log_level"] for e in events], [LogLevel.debug])


class WriteTests(SynchronousTestCase):
    """C{Write}, C{Writev}, C{ReadFrom}, C{Flush}, C{SendTo} on stream connections."""

    def test_writeAndWritevReturnLengths(self) -> None:
        """C{Write} returns C{len(data)}, C{Writev} the total; bytes arrive in order."""
        ns: list[int] = []

        def onTraffic(c: Any) -> None:
            data = c.Next(-1)
            ns.append(c.Write(data[:2]))
            ns.append(c.Writev([data[2:4], b"", data[4:]]))

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"abcdef")
        self.assertEqual(ns, [2, 4])
        self.assertEqual(peer.received(), b"abcdef")

    def test_repliesToOneReadGoOutTogether(self) -> None:
        """
        What C{OnTraffic} writes (Write, Writev) is sent in one piece when it
        returns, in order; meanwhile C{OutboundBuffered} counts it.
        """
        seen: list[Any] = []

        def onTraffic(c: Any) -> None:
            c.Write(b"ab")
            c.Writev([b"c", b"d"])
            c.Write(b"e")
            seen.append((c.OutboundBuffered(), peer.transport.value()))

        driver = booted(Recorder(OnTraffic=onTraffic))
        peer = driver.connect()
        writes: list[bytes] = []
        write = peer.transport.write
        peer.transport.write = lambda data: (writes.append(data), write(data))  # type: ignore[method-assign]
        peer.send(b"x")
        self.assertEqual(seen, [(5, b"")])
        self.assertEqual(writes, [b"abcde"])
        self.assertEqual(peer.conn.OutboundBuffered(), 0)  # handed over: nothing held back

    def test_repliesBeforeCloseAndError(self) -> None:
        """
        The bytes written by an C{OnTraffic} that returns C{Close}, or
        raises, reach the peer before the close, followed by what
        C{OnClose} writes.
        """

        def closing(c: Any) -> Any:
            c.Write(b"last")
            return gnet.Close

        def failing(c: Any) -> Any:
            c.Write(b"last")
            raise RuntimeError("handler bug")

        for onTraffic in (closing, failing):
            peer = booted(
                Recorder(OnTraffic=onTraffic, OnClose=lambda c, e: c.Write(b"+bye"))
            ).connect()
            peer.send(b"x")
            self.assertEqual(peer.received(), b"last+bye")
            self.assertTrue(peer.closedByServer)
        self.flushLoggedErrors(RuntimeError)

    def test_readFromAndFlush(self) -> None:
        """C{ReadFrom} sends a file-like object's bytes until EOF; C{Flush} is harmless."""
        res: list[Any] = []

        def onTraffic(c: Any) -> None:
            c.Discard(-1)
            res.append(c.ReadFrom(io.BytesIO(b"x" * 70000)))
            res.append(c.Flush())

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"go")
        self.assertEqual(res, [70000, None])
        self.assertEqual(peer.received(), b"x" * 70000)

    def test_streamSendToUnsupported(self) -> None:
        """C{SendTo} on a stream connection raises L{ErrUnsupportedOp}."""
        errs: list[Any] = []

        def onTraffic(c: Any) -> None:
            errs.append(self.assertRaises(ErrUnsupportedOp, c.SendTo, b"x", c.RemoteAddr()))

        booted(Recorder(OnTraffic=onTraffic)).connect().send(b"x")
        self.assertEqual(len(errs), 1)

    def test_writeAfterCloseRaises(self) -> None:
        """C{Write}/C{Writev} on a released connection raise L{ErrClosed}."""
        peer = booted(Recorder()).connect()
        conn = peer.conn
        peer.disconnect()
        self.assertRaises(ErrClosed, conn.Write, b"x")
        self.assertRaises(ErrClosed, conn.Writev, [b"x"])

    def test_writeInsideOnCloseIsAccepted(self) -> None:
        """
        Spec §4.5: writes made inside C{OnClose} are best effort: they do not
        raise, and for a local close they still reach the peer.
        """
        results: list[Any] = []

        def onClose(c: Any, err: Any) -> None:
            results.append(c.Write(b"bye"))
            results.append(c.Writev([b"!", b"!"]))

        peer = booted(Recorder(OnClose=onClose, OnTraffic=lambda c: gnet.Close)).connect()
        peer.send(b"x")
        self.assertEqual(results, [3, 2])
        self.assertEqual(peer.received(), b"bye!!")


class BytesLikeWriteTests(SynchronousTestCase):
    """
    Issue 18 item 1: every write API takes any bytes-like object with Go's
    C{Write([]byte)} semantics (the bytes are taken at the call; changing
    the buffer afterwards changes nothing sent), returns its byte count,
    and refuses what is not bytes-like with a C{TypeError} naming it.
    """

    def recordWrites(self, peer: Any) -> list[Any]:
        """The objects the server hands its transport, as handed (not copied)."""
        handed: list[Any] = []
        t = peer.transport
        write, writeSequence = t.write, t.writeSequence
        t.write = lambda data: (handed.append(data), write(data))
        t.writeSequence = lambda seq: (handed.extend(seq), writeSequence(seq))
        return handed

    def test_mutatedAfterWriteInOnTraffic(self) -> None:
        """
        The issue's case: C{c.Write(buf)}, then C{buf[:] = ...}, then
        C{c.Write(buf)} inside C{OnTraffic} sends the first content, then the
        second (the corked write used to keep the buffer itself).
        """

        def onTraffic(c: Any) -> None:
            c.Discard(-1)
            buf = bytearray(b"AAAA\n")
            c.Write(buf)
            buf[:] = b"BBBB\n"
            c.Write(buf)
            view = memoryview(buf)
            c.Write(view[:2])
            buf[:2] = b"CC"
            c.Writev([buf, view[2:]])
            buf[:] = b"DDDD\n"

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"x")
        self.assertEqual(peer.received(), b"AAAA\nBBBB\nBBCCBB\nBB\n")

    def test_codecBufferReusedAfterWrite(self) -> None:
        """
        gnet-examples' HTTP codec appends replies to one buffer, writes it
        and empties it for the next read: the write keeps its content, and
        emptying a buffer written through a C{memoryview} is not refused.
        """
        out = bytearray()

        def onTraffic(c: Any) -> None:
            for _ in range(c.Next(-1).count(b";")):
                out.extend(b"ok;")
            c.Write(memoryview(out) if len(out) > 3 else out)
            del out[:]

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"a;")
        peer.send(b"b;c;")
        self.assertEqual(peer.received(), b"ok;ok;ok;")
        self.assertFalse(peer.closedByServer)

    def test_mutatedAfterWriteOutsideOnTraffic(self) -> None:
        """
        Outside C{OnTraffic} (from C{OnTick}, a callback) the transport is
        handed immutable C{bytes} with the content at the call, as Twisted's
        transports require; C{bytes} themselves are handed on, not copied.
        """
        driver = booted(Recorder())
        peer = driver.connect()
        handed = self.recordWrites(peer)
        buf = bytearray(b"abc")
        self.assertEqual(peer.conn.Write(buf), 3)
        buf[:] = b"xyz"
        self.assertEqual(peer.conn.Writev([buf, bytearray(b"!")]), 4)
        buf[:] = b"---"
        data = b"kept as is"
        peer.conn.Write(data)
        self.assertEqual(handed, [b"abc", b"xyz", b"!", data])
        self.assertEqual([type(h) for h in handed], [bytes] * 4)
        self.assertIs(handed[-1], data)

    def test_asyncWriteTakesTheBytesAtTheCall(self) -> None:
        """C{AsyncWrite}/C{AsyncWritev} of a C{memoryview} send what it showed at the call."""
        driver = booted(Recorder())
        peer = driver.connect()
        buf = bytearray(b"abcd")
        peer.conn.AsyncWrite(memoryview(buf)[1:3])
        peer.conn.AsyncWritev([memoryview(buf), array.array("B", b"!")])
        buf[:] = b"wxyz"
        driver.runPending()
        self.assertEqual(peer.received(), b"bcabcd!")

    def test_byteCountOfViews(self) -> None:
        """
        The writes return the number of bytes: a C{memoryview} of 16-bit
        items or of two dimensions counts its bytes, not its items, and its
        raw bytes are sent; an C{array.array} is bytes-like too.
        """
        counts: list[int] = []
        words = array.array("H", [0x0102, 0x0304])
        grid = memoryview(bytearray(b"abcdef")).cast("B", (2, 3))

        def onTraffic(c: Any) -> None:
            c.Discard(-1)
            counts.append(c.Write(memoryview(words)))
            counts.append(c.Write(grid))
            counts.append(c.Writev([words, grid]))
            counts.append(c.Write(memoryview(b"0123456789")[::3]))

        peer = booted(Recorder(OnTraffic=onTraffic)).connect()
        peer.send(b"x")
        self.assertEqual(counts, [4, 6, 10, 4])
        raw = words.tobytes()
        self.assertEqual(peer.received(), raw + b"abcdef" + raw + b"abcdef" + b"0369")

    def test_notBytesLikeRefused(self) -> None:
        """
        C{str}, C{int}, C{None} or a single buffer given to a gather write
        raise C{TypeError} naming the method and the type, and send nothing
        (C{bytes(5)} used to send five NULs).
        """
        driver = booted(Recorder())
        peer = driver.connect()
        c = peer.conn
        cases: list[tuple[Callable[..., Any], Any, str, str]] = [
            (c.Write, "text", "Conn.Write", "str"),
            (c.Write, 5, "Conn.Write", "int"),
            (c.Write, None, "Conn.Write", "NoneType"),
            (c.Writev, [b"ok", "text"], "Conn.Writev", "str"),
            (c.Writev, b"ab", "Conn.Writev", "bytes"),
            (c.AsyncWrite, 5, "Conn.AsyncWrite", "int"),
            (c.AsyncWritev, [None], "Conn.AsyncWritev", "NoneType"),
            (c.driverWrite, 5, "Conn.driverWrite", "int"),
            (c.driverWriteSequence, [5], "Conn.driverWriteSequence", "int"),
        ]
        for method, arg, name, typeName in cases:
            e = self.assertRaises(TypeError, method, arg)
            self.assertIn(name, str(e))
            self.assertIn(f"not {typeName}", str(e))
        driver.runPending()
        self.assertEqual(peer.received(), b"")
        self.assertFalse(peer.closedByServer)

    def test_onOpenOut(self) -> None:
        """
        C{OnOpen}'s C{out} may be any bytes-like object (sent as it was when
        C{OnOpen} returned); a non-bytes-like one is an error naming
        C{OnOpen}, never NUL bytes on the wire.
        """
        greeting = bytearray(b"hello")

        def onOpen(c: Any) -> Any:
            return memoryview(greeting), None

        driver = booted(Recorder(OnOpen=onOpen))
        peer = driver.connect()
        greeting[:] = b"HELLO"
        self.assertEqual(peer.received(), b"hello")
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        bad = booted(Recorder(OnOpen=lambda c: (5, None))).connect()
        self.assertEqual(bad.received(), b"")
        self.assertTrue(bad.closedByServer)
        said = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.critical]
        self.assertEqual(len(said), 1, said)
        self.assertIn("OnOpen must return", said[0])

    def test_udpWrites(self) -> None:
        """
        A datagram's C{Write}, C{SendTo} and C{AsyncWrite} take any
        bytes-like object, return its byte count and refuse a C{str}.
        """
        counts: list[Any] = []
        words = array.array("H", [1, 2, 3])

        def onTraffic(c: Any) -> None:
            counts.append(c.Write(memoryview(words)))
            counts.append(c.SendTo(bytearray(b"to"), c.RemoteAddr()))
            c.AsyncWrite(bytearray(b"async"))
            counts.append(str(self.assertRaises(TypeError, c.Write, "text")))

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        sent = driver.datagram(b"x")
        peer = ("127.0.0.1", 40000)
        self.assertEqual(sent, [(words.tobytes(), peer), (b"to", peer), (b"async", peer)])
        self.assertEqual(counts[:2], [6, 2])
        self.assertIn("UDPConn.Write", counts[2])


class CloseTests(SynchronousTestCase):
    """The close sequence and C{OnClose}'s C{err} (spec §4.5)."""

    def test_peerCloseGivesEOF(self) -> None:
        """A clean remote close gives C{OnClose} a non-None L{ErrEOF}."""
        handler = Recorder()
        peer = booted(handler).connect()
        peer.disconnect()
        [(_, _c, err)] = handler.closes()
        self.assertIsInstance(err, ErrEOF)
        self.assertIn("EOF", str(err))

    def test_peerResetGivesError(self) -> None:
        """A reset gives C{OnClose} a C{ConnectionResetError} (ECONNRESET), not EOF."""
        handler = Recorder()
        peer = booted(handler).connect()
        peer.reset()
        [(_, _c, err)] = handler.closes()
        self.assertIsInstance(err, ConnectionResetError)
        self.assertEqual(err.errno, errno.ECONNRESET)
        self.assertNotIsInstance(err, ErrEOF)

    def test_peerDataThenClose(self) -> None:
        """Data sent before a peer close reaches C{OnTraffic} before C{OnClose}."""
        seen: list[bytes] = []
        handler = Recorder(OnTraffic=lambda c: seen.append(c.Next(-1)))
        peer = booted(handler).connect()
        peer.send(b"last words")
        peer.disconnect()
        self.assertEqual(seen, [b"last words"])
        self.assertEqual(handler.names()[-2:], ["traffic", "close"])

    def test_closeActionGivesNone(self) -> None:
        """Returning C{Close} from C{OnTraffic} closes now with C{OnClose(c, None)}."""
        handler = Recorder(OnTraffic=lambda c: gnet.Close)
        driver = booted(handler)
        peer = driver.connect()
        peer.protocol.dataReceived(b"x")  # no runPending: the close is synchronous
        [(_, _c, err)] = handler.closes()
        self.assertIsNone(err)
        self.assertTrue(peer.closedByServer)
        self.assertEqual(driver.engine.CountConnections(), 0)

    def test_connCloseIsAsynchronousInsideCallback(self) -> None:
        """
        C{Conn.Close} inside the connection's own callback only queues the
        close: the conn is still open when the callback returns, and
        C{OnClose(c, None)} runs on the next iteration.
        """
        during: list[Any] = []

        def onTraffic(c: Any) -> None:
            c.Close()
            during.append((c.closed, len(handler.closes())))
            c.Write(b"still open")

        handler = Recorder(OnTraffic=onTraffic)
        driver = booted(handler)
        peer = driver.connect()
        peer.protocol.dataReceived(b"x")
        self.assertEqual(during, [(False, 0)])
        self.assertEqual(handler.closes(), [])
        driver.runPending()
        [(_, _c, err)] = handler.closes()
        self.assertIsNone(err)
        self.assertEqual(peer.received(), b"still open")
        self.assertTrue(peer.closedByServer)

    def test_closeWithCallback(self) -> None:
        """C{CloseWithCallback} closes with C{OnClose(c, None)} then calls C{cb(c, None)}."""
        handler = Recorder()
        driver = booted(handler)
        peer = driver.connect()
        calls: list[tuple] = []
        peer.conn.CloseWithCallback(lambda c, err: calls.append((c, err, len(handler.closes()))))
        self.assertEqual(calls, [])
        driver.runPending()
        self.assertEqual(calls, [(peer.conn, None, 1)])
        self.assertIsNone(handler.closes()[0][2])

    def test_closeTwiceIsNoop(self) -> None:
        """Closing a closed connection is a no-op: one C{OnClose}, callbacks get C{None}."""
        handler = Recorder()
        driver = booted(handler)
        peer = driver.connect()
        calls: list[Any] = []
        peer.conn.Close()
        peer.conn.CloseWithCallback(lambda c, err: calls.append(err))
        driver.runPending()
        self.assertEqual(len(handler.closes()), 1)
        self.assertEqual(calls, [None])

    def test_closeWithCallbackShutdown(self) -> None:
        """
        When C{OnClose} returns C{Shutdown}, the C{CloseWithCallback} callback
        gets L{ErrEngineShutdown} and the engine stops.
        """
        handler = Recorder(OnClose=lambda c, err: gnet.Shutdown)
        driver = booted(handler)
        peer = driver.connect()
        calls: list[Any] = []
        peer.conn.CloseWithCallback(lambda c, err: calls.append(err))
        driver.runPending()
        self.assertEqual(len(calls), 1)
        self.assertIsInstance(calls[0], ErrEngineShutdown)
        self.assertTrue(driver.engine.stopped)
        self.assertIn("shutdown", handler.names())

    def test_shutdownClosesWithNone(self) -> None:
        """An engine stop closes every connection with C{OnClose(c, None)}, after C{OnShutdown}."""
        handler = Recorder()
        driver = booted(handler)
        peers = [driver.connect() for _ in range(3)]
        d = driver.stop()
        self.successResultOf(d)
        closes = handler.closes()
        self.assertEqual({c for _, c, _ in closes}, {p.conn for p in peers})
        self.assertEqual([err for _, _, err in closes], [None, None, None])
        names = handler.names()
        self.assertLess(names.index("shutdown"), names.index("close"))
        self.assertTrue(all(p.closedByServer for p in peers))

    def test_shutdownActionClosesBeforeOnShutdown(self) -> None:
        """
        A C{Shutdown} returned by a connection callback closes the loop's
        connections (C{OnClose(c, None)}) before C{OnShutdown} runs.
        """
        handler = Recorder(OnTraffic=lambda c: gnet.Shutdown)
        driver = booted(handler)
        peers = [driver.connect() for _ in range(2)]
        peers[0].send(b"stop")
        names = handler.names()
        self.assertEqual(names.count("close"), 2)
        self.assertGreater(
            names.index("shutdown"), max(i for i, n in enumerate(names) if n == "close")
        )
        self.assertTrue(driver.engine.stopped)
        self.assertEqual([e[2] for e in handler.closes()], [None, None])

    def test_eventLoopCloseIsSynchronous(self) -> None:
        """
        C{EventLoop.Close(c)} runs C{OnClose(c, None)} inside the call and
        returns L{ErrEngineShutdown} for a Shutdown without propagating it.
        """
        handler = Recorder(OnClose=lambda c, err: gnet.Shutdown)
        driver = booted(handler)
        peer = driver.connect()
        res = peer.conn.EventLoop().Close(peer.conn)
        self.assertIsInstance(res, ErrEngineShutdown)
        self.assertEqual(len(handler.closes()), 1)
        self.assertFalse(driver.engine.stopping)
        self.assertIsNone(peer.conn.EventLoop().Close(peer.conn))

    def test_shutdownFromOnClose(self) -> None:
        """C{Shutdown} returned from C{OnClose} of a peer close stops the engine."""
        handler = Recorder(OnClose=lambda c, err: gnet.Shutdown)
        driver = booted(handler)
        driver.connect().disconnect()
        self.assertTrue(driver.engine.stopped)
        self.assertEqual(handler.names().count("shutdown"), 1)

    def test_closeActionFromOnClose(self) -> None:
        """C{Close} (and unknown values) returned from C{OnClose} are ignored."""
        for value in (gnet.Close, -1, "junk"):
            handler = Recorder(OnClose=lambda c, err, v=value: v)
            driver = booted(handler)
            driver.connect().disconnect()
            self.assertFalse(driver.engine.stopping)
            self.assertEqual(len(handler.closes()), 1)


class QueuedOperationTests(SynchronousTestCase):
    """C{AsyncWrite}, C{AsyncWritev}, C{Wake}, C{Close}: FIFO and asynchronous (spec §7.3, §7.5)."""

    def test_fifoOrderInsideCallback(self) -> None:
        """
        Queued operations made inside C{OnTraffic} run after it returns, in
        the order they were made: AsyncWrite, Wake, AsyncWritev, Close.
        """
        driverBox: list[HandlerDriver] = []
        during: list[bytes] = []

        def onTraffic(c: Any) -> None:
            if c.InboundBuffered() == 0:  # the Wake
                c.Write(b"[w]")
                return
            c.Discard(-1)
            c.AsyncWrite(b"1")
            c.Wake()
            c.AsyncWritev([b"2", b"3"])
            c.Close()
            c.AsyncWrite(b"4", lambda conn, err: errs.append(err))
            during.append(peerBox[0].transport.value())

        errs: list[Any] = []
        peerBox: list[Any] = []
        handler = Recorder(OnTraffic=onTraffic)
        driverBox.append(booted(handler))
        peerBox.append(driverBox[0].connect())
        peerBox[0].send(b"go")
        self.assertEqual(during, [b""])
        self.assertEqual(peerBox[0].received(), b"1[w]23")
        self.assertEqual(len(errs), 1)
        self.assertIsInstance(errs[0], ErrClosed)
        self.assertEqual(handler.names()[-1], "close")

    def test_asyncWriteCallback(self) -> None:
        """C{AsyncWrite} writes on the loop, then calls C{cb(c, None)}."""
        driver = booted(Recorder())
        peer = driver.connect()
        calls: list[Any] = []
        peer.conn.AsyncWrite(
            b"hello", lambda c, err: calls.append((c, err, peer.transport.value()))
        )
        self.assertEqual(calls, [])
        driver.runPending()
        self.assertEqual(calls, [(peer.conn, None, b"hello")])

    def test_asyncWriteCopiesMutableBuffers(self) -> None:
        """
        A C{bytearray} given to C{AsyncWrite}/C{AsyncWritev} may be changed
        right after the call.
        """
        driver = booted(Recorder())
        peer = driver.connect()
        buf = bytearray(b"abc")
        peer.conn.AsyncWrite(buf)
        peer.conn.AsyncWritev([buf])
        buf[:] = b"xyz"
        driver.runPending()
        self.assertEqual(peer.received(), b"abcabc")

    def test_asyncWriteAfterCloseGivesErrClosed(self) -> None:
        """
        C{AsyncWrite}/C{AsyncWritev} on a closed conn: nothing sent, callback
        gets L{ErrClosed}.
        """
        driver = booted(Recorder())
        peer = driver.connect()
        conn = peer.conn
        peer.disconnect()
        errs: list[Any] = []
        conn.AsyncWrite(b"x", lambda c, err: errs.append((c, err)))
        conn.AsyncWritev([b"x"], lambda c, err: errs.append((c, err)))
        driver.runPending()
        self.assertEqual(len(errs), 2)
        for c, err in errs:
            self.assertIs(c, conn)
            self.assertIsInstance(err, ErrClosed)
        self.assertEqual(peer.received(), b"")

    def test_wakeOnClosedConn(self) -> None:
        """C{Wake} on a closed conn does not call C{OnTraffic}; the callback gets C{(c, None)}."""
        handler = Recorder()
        driver = booted(handler)
        peer = driver.connect()
        conn = peer.conn
        calls: list[Any] = []
        conn.Close()
        conn.Wake(lambda c, err: calls.append((c, err)))
        driver.runPending()
        self.assertEqual(handler.traffic(), 0)
        self.assertEqual(calls, [(conn, None)])

    def test_wakeCallbackAfterTraffic(self) -> None:
        """C{Wake}'s callback runs after the woken C{OnTraffic}, with C{None} for no action."""
        handler = Recorder(OnTraffic=lambda c: -1)
        driver = booted(handler)
        peer = driver.connect()
        calls: list[Any] = []
        peer.conn.Wake(lambda c, err: calls.append((handler.traffic(), err)))
        driver.runPending()
        self.assertEqual(calls, [(1, None)])

    def test_wakeShutdown(self) -> None:
        """
        A woken C{OnTraffic} returning C{Shutdown}: callback gets
        L{ErrEngineShutdown}, engine stops.
        """
        handler = Recorder(OnTraffic=lambda c: gnet.Shutdown)
        driver = booted(handler)
        peer = driver.connect()
        calls: list[Any] = []
        peer.conn.Wake(lambda c, err: calls.append(err))
        driver.runPending()
        self.assertIsInstance(calls[0], ErrEngineShutdown)
        self.assertTrue(driver.engine.stopped)

    def test_wakeClose(self) -> None:
        """A woken C{OnTraffic} returning C{Close} closes with C{OnClose(c, None)}."""
        handler = Recorder(OnTraffic=lambda c: gnet.Close)
        driver = booted(handler)
        peer = driver.connect()
        peer.conn.Wake()
        driver.runPending()
        self.assertIsNone(handler.closes()[0][2])
        self.assertTrue(peer.closedByServer)

    def test_queueAfterEngineStopped(self) -> None:
        """Once the engine has stopped, queueing fails with L{ErrEngineInShutdown}."""
        driver = booted(Recorder())
        conn = driver.connect().conn
        self.successResultOf(driver.stop())
        self.assertRaises(ErrEngineInShutdown, conn.AsyncWrite, b"x")
        self.assertRaises(ErrEngineInShutdown, conn.Wake)
        self.assertRaises(ErrEngineInShutdown, conn.Close)

    def test_queuedBeforeStopNeverRun(self) -> None:
        """Operations still queued when the engine stops are dropped: their callbacks never run."""
        driver = booted(Recorder())
        conn = driver.connect().conn
        calls: list[Any] = []
        conn.AsyncWrite(b"x", lambda c, e: calls.append(e))
        conn.Wake(lambda c, e: calls.append(e))
        driver.engine.Stop()
        driver.runPending()
        self.assertEqual(calls, [])


def inThread(fn: Callable[[], Any], name: str = "worker-1") -> Any:
    """
    Run C{fn} in a real thread named C{name}; return what it returned or
    the exception it raised (the join is bounded).
    """
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=run, name=name)
    t.start()
    t.join(10)
    if t.is_alive():
        raise AssertionError(f"thread {name} did not finish")
    return out[0]


class LoopThreadTests(SynchronousTestCase):
    """
    Issue 18 item 5: the loop-only writes (C{Write}, C{Writev}, and
    C{ReadFrom} through C{Write}) called from a thread other than the
    connection's event loop raise L{ErrNotOnEventLoop} pointing at
    C{AsyncWrite}, and send nothing; the loop's own callers are unaffected.
    """

    def test_writeFromAnotherThreadRefused(self) -> None:
        """
        C{Write}, C{Writev} and C{ReadFrom} from a real thread raise
        L{ErrNotOnEventLoop} (a L{GnetError}) naming the method, the thread
        and the asynchronous method to use; nothing is sent or queued.
        """
        driver = booted(Recorder())
        peer = driver.connect()
        c = peer.conn
        write = inThread(lambda: c.Write(b"x"), "pusher")
        writev = inThread(lambda: c.Writev([b"x"]))
        readFrom = inThread(lambda: c.ReadFrom(io.BytesIO(b"x")))
        for err in (write, writev, readFrom):
            self.assertIsInstance(err, gnet.ErrNotOnEventLoop)
            self.assertIsInstance(err, gnet.GnetError)
        self.assertEqual(
            str(write),
            "gnet: Conn.Write called from thread 'pusher', not the connection's event loop:"
            " use c.AsyncWrite(data, callback) from other threads",
        )
        self.assertIn("Conn.Writev", str(writev))
        self.assertIn("c.AsyncWritev(bufs, callback)", str(writev))
        driver.runPending()
        self.assertEqual(peer.received(), b"")
        self.assertFalse(peer.closedByServer)

    def test_asyncWriteFromAnotherThread(self) -> None:
        """C{AsyncWrite}/C{AsyncWritev} from a real thread are queued and sent on the loop."""
        driver = booted(Recorder())
        peer = driver.connect()
        c = peer.conn
        self.assertIsNone(inThread(lambda: c.AsyncWrite(b"a")))
        self.assertIsNone(inThread(lambda: c.AsyncWritev([b"b", b"c"])))
        driver.runPending()
        self.assertEqual(peer.received(), b"abc")

    def test_loopCallersUnaffected(self) -> None:
        """
        On the loop thread every caller may write: C{OnOpen}, C{OnTraffic},
        C{OnTick}, a runnable, an async callback and C{OnClose}.
        """
        conns: list[Any] = []

        def onTick() -> Any:
            for c in conns:
                c.Write(b"tick;")
            return 10, None

        handler = Recorder(
            OnOpen=lambda c: conns.append(c) or (b"open;", None),
            OnTraffic=lambda c: c.Write(c.Next(-1)) and None,
            OnTick=onTick,
            OnClose=lambda c, err: c.Write(b"close;"),
        )
        driver = booted(handler, gnet.WithTicker(True))
        peer = driver.connect()
        peer.send(b"echo;")
        driver.advance(10)
        c = peer.conn
        c.EventLoop().Execute(None, gnet.RunnableFunc(lambda ctx: c.Write(b"run;")))
        c.AsyncWrite(b"async;", lambda conn, err: conn.Write(b"cb;"))
        driver.runPending()
        c.CloseWithCallback(None)
        driver.runPending()
        self.assertEqual(peer.received(), b"open;echo;tick;run;async;cb;close;")

    def test_adoptedBeforeTheReactorRanElsewhere(self) -> None:
        """
        A connection whose transport connected on another thread before the
        reactor ran (C{Client.Enroll} before C{reactor.run()} in a thread)
        belongs to the thread that runs the reactor once it runs: writes from
        there work, writes from the thread that adopted it are refused.
        """
        driver = booted(Recorder())
        peer = inThread(driver.connect, "adopter")
        # the reactor (running: MemoryReactor says so) is run by this thread
        self.patch(threadable, "ioThread", threading.get_ident())
        self.assertEqual(peer.conn.Write(b"loop;"), 5)
        self.assertIsInstance(
            inThread(lambda: peer.conn.Write(b"x"), "adopter"), gnet.ErrNotOnEventLoop
        )
        self.assertEqual(peer.received(), b"loop;")

    def test_adapterPath(self) -> None:
        """
        A connection served through C{IProtocolFactory(handler)} (any
        Twisted endpoint) has the same check: its loop is the thread its
        transport connected on.
        """
        factory = IProtocolFactory(Recorder(OnOpen=lambda c: (b"hi;", None)))
        factory.doStart()
        self.addCleanup(factory.doStop)
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        proto.makeConnection(transport)
        # gone before the factory stops: its drain would wait on the global reactor
        self.addCleanup(proto.connectionLost, Failure(ConnectionDone()))
        conn = proto.conn
        self.assertEqual(conn.Write(b"ok;"), 3)
        self.assertIsInstance(inThread(lambda: conn.Write(b"x")), gnet.ErrNotOnEventLoop)
        self.assertEqual(transport.value(), b"hi;ok;")


class ContextAndAddressTests(SynchronousTestCase):
    """C{Context}/C{SafeContext} and the addresses (spec §7.5)."""

    def test_contextLifecycle(self) -> None:
        """
        C{Context} is None at first, holds what was set, is still readable in
        C{OnClose}, and is None after the close.
        """
        seen: list[Any] = []

        def onOpen(c: Any) -> None:
            seen.append(c.Context())
            c.SetContext({"k": 1})

        handler = Recorder(OnOpen=onOpen, OnClose=lambda c, err: seen.append(c.Context()))
        peer = booted(handler).connect()
        conn = peer.conn
        self.assertEqual(conn.Context(), {"k": 1})
        peer.disconnect()
        self.assertEqual(seen, [None, {"k": 1}])
        self.assertIsNone(conn.Context())

    def test_safeContextIndependent(self) -> None:
        """C{SafeContext} and C{Context} are independent slots; C{SafeContext} may hold None."""
        handler = Recorder()
        peer = booted(handler).connect()
        c = peer.conn
        self.assertIsNone(c.SafeContext())
        for value in (1, "two", [3], None, {"four": 4}):
            c.SetSafeContext(value)
            self.assertEqual(c.SafeContext(), value)
            self.assertIsNone(c.Context())
        c.SetContext("ctx")
        self.assertEqual(c.SafeContext(), {"four": 4})
        c.SetContext(None)
        self.assertEqual(c.SafeContext(), {"four": 4})

    def test_safeContextNoneAfterClose(self) -> None:
        """C{SafeContext} is readable in C{OnClose} and None once the conn is released."""
        seen: list[Any] = []
        handler = Recorder(OnClose=lambda c, err: seen.append(c.SafeContext()))
        peer = booted(handler).connect()
        peer.conn.SetSafeContext("safe")
        conn = peer.conn
        peer.conn.Close()
        peer.driver.runPending()
        self.assertEqual(seen, ["safe"])
        self.assertIsNone(conn.SafeContext())

    def test_addresses(self) -> None:
        """C{LocalAddr}/C{RemoteAddr} are Go-style addresses while open, None after close."""
        seen: list[Any] = []

        def onOpen(c: Any) -> None:
            seen.append((c.LocalAddr(), c.RemoteAddr()))

        handler = Recorder(
            OnOpen=onOpen, OnClose=lambda c, e: seen.append((c.LocalAddr(), c.RemoteAddr()))
        )
        driver = booted(handler)
        peer = driver.connect(("127.0.0.1", 4242))
        conn = peer.conn
        local, remote = seen[0]
        self.assertEqual((local.Network(), local.String()), ("tcp", "127.0.0.1:9000"))
        self.assertEqual((remote.Network(), str(remote)), ("tcp", "127.0.0.1:4242"))
        peer.disconnect()
        self.assertEqual(seen[1], (local, remote))
        self.assertIsNone(conn.LocalAddr())
        self.assertIsNone(conn.RemoteAddr())

    def test_ipv6Address(self) -> None:
        """An IPv6 peer's address text is C{[ip]:port}."""
        peer = booted(Recorder()).connect(("::1", 5555))
        self.assertEqual(peer.conn.RemoteAddr().String(), "[::1]:5555")

    def test_unixAddress(self) -> None:
        """Connections of a unix listener report the C{unix} network and the path."""
        driver = booted(Recorder(), address="unix:///tmp/x.sock")
        peer = driver.connect()
        self.assertEqual(peer.conn.LocalAddr().Network(), "unix")
        self.assertEqual(peer.conn.LocalAddr().String(), "/tmp/x.sock")
        self.assertEqual(peer.conn.RemoteAddr().Network(), "unix")

    def test_socketMethodsOnClosedConn(self) -> None:
        """Socket methods on a released conn raise L{ErrClosed} instead of touching a reused fd."""
        peer = booted(Recorder()).connect()
        conn = peer.conn
        peer.disconnect()
        self.assertRaises(ErrClosed, conn.SetReadBuffer, 1024)
        self.assertRaises(ErrClosed, conn.Dup)

    def test_deadlinesUnsupported(self) -> None:
        """C{SetDeadline}, C{SetReadDeadline} and C{SetWriteDeadline} raise L{ErrUnsupportedOp}."""
        conn = booted(Recorder()).connect().conn
        for m in (conn.SetDeadline, conn.SetReadDeadline, conn.SetWriteDeadline):
            self.assertRaises(ErrUnsupportedOp, m, 0)


class OnOpenTests(SynchronousTestCase):
    """C{OnOpen}'s result: C{out} and the action (spec §3, §4.3)."""

    def test_outWrittenBeforeCloseAction(self) -> None:
        """
        C{(out, Close)}: C{out} reaches the peer, then the conn closes with
        C{OnClose(c, None)}.
        """
        handler = Recorder(OnOpen=lambda c: (b"bye\r\n", gnet.Close))
        driver = booted(handler)
        peer = driver.connect()
        self.assertEqual(peer.received(), b"bye\r\n")
        self.assertTrue(peer.closedByServer)
        self.assertEqual(handler.names(), ["boot", "open", "close"])
        self.assertIsNone(handler.closes()[0][2])
        self.assertEqual(driver.engine.CountConnections(), 0)

    def test_outBeforeTraffic(self) -> None:
        """The greeting is written before any echo of the first C{OnTraffic}."""
        handler = Recorder(
            OnOpen=lambda c: (b"andypan\r\n", gnet.None_), OnTraffic=lambda c: c.WriteTo(c) and None
        )
        peer = booted(handler).connect()
        peer.send(b"ping")
        self.assertEqual(peer.received(), b"andypan\r\nping")

    def test_returnShapes(self) -> None:
        """C{OnOpen} may return None, a bare action, bare bytes, or C{(None, action)}."""
        for ret, out, closed in (
            (None, b"", False),
            (gnet.Close, b"", True),
            (b"hi", b"hi", False),
            ((None, gnet.None_), b"", False),
            ((b"", -1), b"", False),
        ):
            peer = booted(Recorder(OnOpen=lambda c, r=ret: r)).connect()
            self.assertEqual((peer.received(), peer.closedByServer), (out, closed), ret)

    def test_countIncludesNewConn(self) -> None:
        """Inside C{OnOpen}, C{CountConnections()} already counts the new connection."""
        counts: list[int] = []
        driverBox: list[HandlerDriver] = []
        handler = Recorder(OnOpen=lambda c: counts.append(driverBox[0].engine.CountConnections()))
        driverBox.append(booted(handler))
        for _ in range(3):
            driverBox[0].connect()
        self.assertEqual(counts, [1, 2, 3])

    def test_shutdownFromOnOpen(self) -> None:
        """C{Shutdown} from C{OnOpen} stops the engine; the conn is closed with C{None}."""
        handler = Recorder(OnOpen=lambda c: (b"x", gnet.Shutdown))
        driver = booted(handler)
        peer = driver.connect()
        self.assertTrue(driver.engine.stopped)
        self.assertEqual(handler.names(), ["boot", "open", "close", "shutdown"])
        self.assertTrue(peer.closedByServer)
        self.assertEqual(peer.received(), b"x")


class ActionTests(SynchronousTestCase):
    """Action values from every callback (spec §3)."""

    def test_unknownActionsAreNone(self) -> None:
        """-1 and other unknown values from any callback mean "no action"."""
        handler = Recorder(
            OnBoot=lambda e: -1,
            OnOpen=lambda c: (None, -1),
            OnTraffic=lambda c: -1,
            OnClose=lambda c, e: -1,
        )
        driver = booted(handler)
        peer = driver.connect()
        peer.send(b"x")
        self.assertFalse(peer.closedByServer)
        self.assertFalse(driver.engine.stopping)
        peer.disconnect()
        self.assertFalse(driver.engine.stopping)

    def test_onBootShutdownAbortsStart(self) -> None:
        """
        C{Shutdown} from C{OnBoot}: boot returns False, the engine is stopped,
        no C{OnShutdown}.
        """
        handler = Recorder(OnBoot=lambda e: gnet.Shutdown)
        driver = HandlerDriver(handler)
        self.assertFalse(driver.boot())
        self.assertTrue(driver.engine.stopped)
        self.assertNotIn("shutdown", handler.names())

    def test_onBootCloseIsNone(self) -> None:
        """C{Close} from C{OnBoot} is treated as C{None}: the engine serves."""
        driver = HandlerDriver(Recorder(OnBoot=lambda e: gnet.Close))
        self.assertTrue(driver.boot())
        driver.connect()
        self.assertEqual(driver.engine.CountConnections(), 1)

    def test_actionAliases(self) -> None:
        """C{None_}, C{Close}, C{Shutdown} are the L{Action} members 0, 1, 2."""
        self.assertEqual(
            (gnet.None_, gnet.Close, gnet.Shutdown),
            (gnet.Action.NONE, gnet.Action.CLOSE, gnet.Action.SHUTDOWN),
        )
        self.assertEqual([int(a) for a in (gnet.None_, gnet.Close, gnet.Shutdown)], [0, 1, 2])


class HandlerErrorTests(SynchronousTestCase):
    """An exception in a handler closes only the connection it concerns."""

    def test_onTrafficRaisesClosesThatConn(self) -> None:
        """C{OnTraffic} raising closes that conn (logged); other conns keep being served."""

        def onTraffic(c: Any) -> None:
            data = c.Next(-1)
            if data == b"boom":
                raise ValueError("boom")
            c.Write(data)

        handler = Recorder(OnTraffic=onTraffic)
        driver = booted(handler)
        bad, good = driver.connect(), driver.connect()
        bad.send(b"boom")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertTrue(bad.closedByServer)
        good.send(b"fine")
        self.assertEqual(good.received(), b"fine")
        self.assertFalse(good.closedByServer)
        self.assertEqual(driver.engine.CountConnections(), 1)

    def test_onOpenRaisesClosesThatConn(self) -> None:
        """C{OnOpen} raising closes that conn; the engine keeps serving."""
        n = [0]

        def onOpen(c: Any) -> None:
            n[0] += 1
            if n[0] == 1:
                raise RuntimeError("no")

        driver = booted(Recorder(OnOpen=onOpen))
        first, second = driver.connect(), driver.connect()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(first.closedByServer)
        self.assertFalse(second.closedByServer)

    def test_onCloseRaisesIsLogged(self) -> None:
        """C{OnClose} raising is logged; the conn is still released and uncounted."""

        def onClose(c: Any, err: Any) -> None:
            raise KeyError("x")

        driver = booted(Recorder(OnClose=onClose))
        peer = driver.connect()
        conn = peer.conn
        peer.disconnect()
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertIsNone(conn.RemoteAddr())
        self.assertEqual(driver.engine.CountConnections(), 0)

    def test_callbackRaisesIsLogged(self) -> None:
        """An async callback raising is logged and does not close the conn."""
        driver = booted(Recorder())
        peer = driver.connect()

        def cb(c: Any, err: Any) -> None:
            raise ZeroDivisionError()

        peer.conn.AsyncWrite(b"x", cb)
        driver.runPending()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertFalse(peer.closedByServer)


class UDPConnTests(SynchronousTestCase):
    """Server-side UDP: one throwaway L{UDPConn} per datagram (spec §11.3)."""

    def test_echoAndNoLifecycle(self) -> None:
        """A datagram calls C{OnTraffic} only (no OnOpen/OnClose, not counted); C{Write} replies."""
        handler = Recorder(OnTraffic=lambda c: c.Write(c.Next(-1)) and None)
        driver = booted(handler, address="udp://127.0.0.1:9000")
        sent = driver.datagram(b"ping", ("127.0.0.1", 4000))
        self.assertEqual(sent, [(b"ping", ("127.0.0.1", 4000))])
        self.assertEqual(handler.names(), ["boot", "traffic"])
        self.assertEqual(driver.engine.CountConnections(), 0)

    def test_unconsumedBytesDropped(self) -> None:
        """Bytes a datagram's C{OnTraffic} left unread are not shown with the next datagram."""
        seen: list[bytes] = []
        driver = booted(
            Recorder(OnTraffic=lambda c: seen.append(c.Peek(-1))), address="udp://127.0.0.1:9000"
        )
        driver.datagram(b"one")
        driver.datagram(b"two")
        self.assertEqual(seen, [b"one", b"two"])

    def test_closeIgnoredShutdownHonoured(self) -> None:
        """C{Close} (action or call) is a no-op for a datagram; C{Shutdown} stops the engine."""

        def onTraffic(c: Any) -> Any:
            c.Close()
            return gnet.Close if c.Peek(-1) == b"close" else gnet.Shutdown

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        driver.datagram(b"close")
        self.assertFalse(driver.engine.stopping)
        driver.datagram(b"stop")
        self.assertTrue(driver.engine.stopped)

    def test_unsupportedAndInvalid(self) -> None:
        """
        UDP C{Writev}/C{AsyncWritev}/keep-alive setters raise L{ErrUnsupportedOp};
        C{SendTo(data, None)} raises L{ErrInvalidNetworkAddress}.
        """
        errors: list[type] = []

        def onTraffic(c: Any) -> None:
            for call, exc in (
                (lambda: c.Writev([]), ErrUnsupportedOp),
                (lambda: c.AsyncWritev([], None), ErrUnsupportedOp),
                (lambda: c.SendTo(b"x", None), ErrInvalidNetworkAddress),
                (lambda: c.SendTo(b"x", "nope"), ErrInvalidNetworkAddress),
                (lambda: c.SetKeepAlivePeriod(60), ErrUnsupportedOp),
                (lambda: c.SetKeepAlive(True, 60, 10, 3), ErrUnsupportedOp),
                (lambda: c.SetDeadline(0), ErrUnsupportedOp),
            ):
                self.assertRaises(exc, call)
                errors.append(exc)

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        driver.datagram(b"x")
        self.assertEqual(len(errors), 7)

    def test_sendToAddresses(self) -> None:
        """
        C{SendTo} sends one datagram to an L{Addr} or a socket-address tuple;
        returns the length.
        """
        ns: list[int] = []

        def onTraffic(c: Any) -> None:
            ns.append(c.SendTo(b"hey", Addr("udp", "127.0.0.1", 7000)))
            ns.append(c.SendTo(b"you", ("127.0.0.2", 7001)))

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        sent = driver.datagram(b"x")
        self.assertEqual(ns, [3, 3])
        self.assertEqual(sent, [(b"hey", ("127.0.0.1", 7000)), (b"you", ("127.0.0.2", 7001))])

    def test_asyncWriteAfterTraffic(self) -> None:
        """
        C{AsyncWrite} kept past C{OnTraffic} still reaches the sender, sent at
        once as gnet does (nothing queued); the callback gets C{(None, None)}.
        """
        kept: list[Any] = []
        driver = booted(
            Recorder(OnTraffic=lambda c: kept.append(c)), address="udp://127.0.0.1:9000"
        )
        driver.datagram(b"x", ("127.0.0.1", 4001))
        calls: list[Any] = []
        kept[0].AsyncWrite(b"later", lambda c, err: calls.append((c, err)))
        self.assertEqual(driver.udpPort.sent[-1], (b"later", ("127.0.0.1", 4001)))
        self.assertEqual(calls, [(None, None)])

    def test_addressesAndContext(self) -> None:
        """A datagram's addresses are the listener and the sender; its context never persists."""
        seen: list[Any] = []

        def onTraffic(c: Any) -> None:
            seen.append(
                (c.Context(), str(c.LocalAddr()), str(c.RemoteAddr()), c.RemoteAddr().Network())
            )
            c.SetContext("x")

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        driver.datagram(b"a", ("127.0.0.1", 4002))
        driver.datagram(b"b", ("127.0.0.1", 4002))
        self.assertEqual(seen, [(None, "127.0.0.1:9000", "127.0.0.1:4002", "udp")] * 2)

    def test_onTrafficRaisesIsLogged(self) -> None:
        """A datagram's C{OnTraffic} raising is logged; the listener keeps serving."""
        n = [0]

        def onTraffic(c: Any) -> None:
            n[0] += 1
            if n[0] == 1:
                raise ValueError()
            c.Write(b"ok")

        driver = booted(Recorder(OnTraffic=onTraffic), address="udp://127.0.0.1:9000")
        driver.datagram(b"1")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(driver.datagram(b"2")[0][0], b"ok")


class ConformanceTests(SynchronousTestCase):
    """Interface conformance with C{zope.interface.verify.verifyObject}."""

    def test_conn(self) -> None:
        """L{Conn} provides L{IConn}; its C{EventLoop()} provides L{IEventLoop}."""
        conn = booted(Recorder()).connect().conn
        self.assertTrue(verifyObject(IConn, conn))
        self.assertTrue(verifyObject(IEventLoop, conn.EventLoop()))

    def test_connDriver(self) -> None:
        """
        A L{Conn} has every member of L{ConnDriver}, the typed contract a
        protocol layer on top of it (the WebSocket layer) is checked
        against; an object without them is not one.  (mypy checks the
        signatures: C{_connDrives} in L{gnetcompat._conn}.)
        """
        conn = booted(Recorder()).connect().conn
        self.assertIsInstance(conn, ConnDriver)
        self.assertNotIsInstance(StringTransport(), ConnDriver)
        self.assertIsInstance(conn.driverTransport.getPeer(), IPv4Address)
        self.assertFalse(conn.driverEngineStopped)

    def test_udpConn(self) -> None:
        """L{UDPConn} provides L{IConn}."""
        kept: list[Any] = []
        driver = booted(
            Recorder(OnTraffic=lambda c: kept.append(c)), address="udp://127.0.0.1:9000"
        )
        driver.datagram(b"x")
        self.assertIsInstance(kept[0], gnet.UDPConn)
        self.assertTrue(verifyObject(IConn, kept[0]))
