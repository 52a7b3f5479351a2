"""
Tests for the WebSocket session (L{gnetcompat.websocket._session}), its
options and its partial-message budget.

Deterministic: no sockets, no real time.  The client side is the sans-I/O
C{websockets.client.ClientProtocol}; deliberately broken frames are built with
C{websockets.frames.Frame.serialize}.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
)
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

import gnetcompat as gnet
from gnetcompat import BuiltinEventEngine, Conn
from gnetcompat.testing import HandlerDriver
from gnetcompat.websocket import (
    OPCODE_BINARY,
    OPCODE_TEXT,
    STATUS_PAGE_HEADERS,
    Message,
    WebSocketConn,
    WebSocketOptions,
    WebSocketSession,
)
from gnetcompat.websocket._autobahncompat import INFLATE_STEP, MAX_FACTORIES, _factories
from tests._sink import RecordingSink
from tests.autobahn_report import (
    CaseResult,
    behaviors,
    notStrict,
    readResults,
    summarize,
)


class Client:
    """
    A WebSocket client without I/O, to talk to a session.
    """

    def __init__(self, deflate: bool = False) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if deflate else None
        self.protocol = ClientProtocol(
            parse_uri("ws://localhost/chat"), extensions=extensions, max_size=None
        )
        self.request = self.protocol.connect()

    def handshake(self) -> bytes:
        """
        The bytes of the opening handshake request.
        """
        self.protocol.send_request(self.request)
        return b"".join(self.protocol.data_to_send())

    def text(self, data: bytes, fin: bool = True) -> bytes:
        return self.frame(Opcode.TEXT, data, fin)

    def frame(self, opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        """
        One masked client frame.
        """
        return Frame(opcode, data, fin).serialize(mask=True)

    def closeFrame(self, code: int = 1000, reason: str = "") -> bytes:
        return self.frame(Opcode.CLOSE, Close(code, reason).serialize())

    def receive(self, data: bytes) -> list[Any]:
        """
        Parse server output: the handshake response, then frames.
        """
        self.protocol.receive_data(data)
        return self.protocol.events_received()


def openSession(
    options: WebSocketOptions | None = None, deflate: bool = False
) -> tuple[WebSocketSession, RecordingSink, Client, Clock]:
    """
    A session that completed its opening handshake with a L{Client}.
    """
    sink = RecordingSink()
    clock = Clock()
    session = WebSocketSession(sink, options or WebSocketOptions(), reactor=clock)
    client = Client(deflate)
    assert session.feed(client.handshake()) == []
    events = client.receive(sink.take())
    assert isinstance(events[0], Response) and events[0].status_code == 101, events
    assert client.protocol.handshake_exc is None, client.protocol.handshake_exc
    return session, sink, client, clock


def frames(events: list[Any]) -> list[tuple[Opcode, bytes]]:
    """
    The (opcode, payload) of the frames among C{events}.
    """
    return [(e.opcode, e.data) for e in events if isinstance(e, Frame)]


def closeCode(events: list[Any]) -> int | None:
    """
    The code of the first Close frame among C{events}.
    """
    for e in events:
        if isinstance(e, Frame) and e.opcode == Opcode.CLOSE:
            return Close.parse(e.data).code
    return None


def reservedOpcode(frame: bytes) -> bytes:
    """
    C{frame} with its opcode replaced by the reserved data opcode 3.
    """
    return bytes([(frame[0] & 0xF0) | 3]) + frame[1:]


def reservedBit(frame: bytes) -> bytes:
    """
    C{frame} with its RSV1 bit set.
    """
    return bytes([frame[0] | 0x40]) + frame[1:]


class HandshakeTests(SynchronousTestCase):
    """
    The opening handshake.
    """

    def test_onePieces(self) -> None:
        """
        A request fed one byte at a time completes the handshake on its last
        byte, and not before.
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(), reactor=Clock())
        client = Client()
        request = client.handshake()
        for i in range(len(request) - 1):
            self.assertEqual(session.feed(request[i : i + 1]), [])
            self.assertFalse(session.upgraded)
        self.assertEqual(sink.data, [])
        self.assertEqual(session.feed(request[-1:]), [])
        self.assertTrue(session.upgraded)
        events = client.receive(sink.take())
        self.assertEqual(events[0].status_code, 101)
        self.assertIsNone(client.protocol.handshake_exc)
        self.assertEqual(session.request.path, "/chat")

    def test_framesInSameFeed(self) -> None:
        """
        Frames that follow the request in the same read are decoded (B1).
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(), reactor=Clock())
        client = Client()
        data = client.handshake() + client.text(b"one") + client.text(b"two")
        self.assertEqual(
            session.feed(data),
            [Message(OPCODE_TEXT, b"one"), Message(OPCODE_TEXT, b"two")],
        )
        self.assertTrue(session.upgraded)

    def test_badMethod(self) -> None:
        """
        A request that is not a GET gets an HTTP 405 and the stream is closed.
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(), reactor=Clock())
        session.feed(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(sink.take().startswith(b"HTTP/1.1 405 "))
        self.assertTrue(sink.lost)
        self.assertFalse(session.upgraded)
        self.assertTrue(session.closed)

    def test_notWebSocket(self) -> None:
        """
        A plain HTTP GET gets 426 Upgrade Required, not a status page.
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(), reactor=Clock())
        session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(sink.take().startswith(b"HTTP/1.1 426 "))
        self.assertTrue(sink.lost)

    def test_requestTooLarge(self) -> None:
        """
        A request header block longer than maxRequestHeaderSize is answered
        with 431 as soon as the limit is passed, without waiting for its end.
        """
        sink = RecordingSink()
        options = WebSocketOptions(maxRequestHeaderSize=1024)
        session = WebSocketSession(sink, options, reactor=Clock())
        session.feed(b"GET / HTTP/1.1\r\n")
        for _ in range(100):
            session.feed(b"X-Filler: " + b"a" * 20 + b"\r\n")
            if sink.lost:
                break
        self.assertTrue(sink.take().startswith(b"HTTP/1.1 431 "))
        self.assertTrue(sink.lost)
        self.assertEqual(session._proto.data, b"")

    def test_completeRequestTooLarge(self) -> None:
        """
        A complete request over the limit in a single read is refused too.
        """
        sink = RecordingSink()
        options = WebSocketOptions(maxRequestHeaderSize=256)
        session = WebSocketSession(sink, options, reactor=Clock())
        request = Client().handshake()
        request = request[:-2] + b"X-Filler: " + b"a" * 300 + b"\r\n\r\n"
        session.feed(request)
        self.assertTrue(sink.take().startswith(b"HTTP/1.1 431 "))
        self.assertTrue(sink.lost)

    def test_originNotAllowed(self) -> None:
        """
        An Origin outside allowedOrigins is refused with an HTTP 4xx.
        """
        sink = RecordingSink()
        options = WebSocketOptions(allowedOrigins=["https://good.example"])
        session = WebSocketSession(sink, options, reactor=Clock())
        client = Client()
        client.request.headers["Origin"] = "https://evil.example"
        session.feed(client.handshake())
        self.assertTrue(sink.take().startswith(b"HTTP/1.1 4"))
        self.assertTrue(sink.lost)
        self.assertFalse(session.upgraded)

    def test_autobahnStatusPageBadRedirect(self) -> None:
        """
        With Autobahn's own status page (C{webStatus}, no C{statusPage}), a
        malformed C{?redirect=}/C{after=} gets HTTP 400 instead of an
        exception out of L{WebSocketSession.feed} (and no answer at all).
        """
        for target in (b"/?redirect=x&after=z", b"/?redirect=http://["):
            sink = RecordingSink()
            session = WebSocketSession(sink, WebSocketOptions(webStatus=True), reactor=Clock())
            session.feed(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertTrue(sink.take().startswith(b"HTTP/1.1 400 "), target)
            self.assertTrue(sink.lost)

    def test_openHandshakeTimeout(self) -> None:
        """
        A handshake that does not complete in openHandshakeTimeout drops the
        stream; the timer runs on the injected clock.
        """
        sink = RecordingSink()
        clock = Clock()
        session = WebSocketSession(sink, WebSocketOptions(openHandshakeTimeout=2.0), reactor=clock)
        session.feed(b"GET / HTTP/1.1\r\n")
        clock.advance(1.9)
        self.assertFalse(sink.lost or sink.aborted)
        clock.advance(0.2)
        self.assertTrue(sink.lost or sink.aborted)
        session.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])


class MessageTests(SynchronousTestCase):
    """
    Data messages, control frames and compression.
    """

    def test_fragmentedWithPing(self) -> None:
        """
        A ping between the fragments of a message is answered and the message
        is reassembled (B4).
        """
        session, sink, client, _clock = openSession()
        data = (
            client.text(b"ab", fin=False)
            + client.frame(Opcode.PING, b"hi")
            + client.frame(Opcode.CONT, b"cd", fin=False)
            + client.frame(Opcode.CONT, b"ef")
        )
        self.assertEqual(session.feed(data), [Message(OPCODE_TEXT, b"abcdef")])
        self.assertEqual(frames(client.receive(sink.take())), [(Opcode.PONG, b"hi")])

    def test_splitFrames(self) -> None:
        """
        Frames split at every byte are decoded once complete.
        """
        session, _sink, client, _clock = openSession()
        data = client.frame(Opcode.BINARY, b"\x00\x01" * 200) + client.text(b"x")
        got: list[Message] = []
        for i in range(len(data)):
            got.extend(session.feed(data[i : i + 1]))
        self.assertEqual(
            got, [Message(OPCODE_BINARY, b"\x00\x01" * 200), Message(OPCODE_TEXT, b"x")]
        )

    def test_sendMessage(self) -> None:
        """
        sendMessage writes an unmasked frame with the given opcode.
        """
        session, sink, client, _clock = openSession()
        session.sendMessage(OPCODE_TEXT, b"hello")
        session.sendMessage(OPCODE_BINARY, b"\xff")
        self.assertEqual(
            frames(client.receive(sink.take())),
            [(Opcode.TEXT, b"hello"), (Opcode.BINARY, b"\xff")],
        )
        self.assertRaises(ValueError, session.sendMessage, 9, b"")

    def test_compression(self) -> None:
        """
        permessage-deflate is negotiated and messages round-trip through it.
        """
        session, sink, client, _clock = openSession(deflate=True)
        self.assertEqual(len(client.protocol.extensions), 1)
        client.protocol.send_text(b"compressible " * 50)
        [message] = session.feed(b"".join(client.protocol.data_to_send()))
        self.assertEqual(message, Message(OPCODE_TEXT, b"compressible " * 50))
        session.sendMessage(message.opcode, message.payload)
        out = sink.take()
        self.assertLess(len(out), 200)
        self.assertEqual(frames(client.receive(out)), [(Opcode.TEXT, b"compressible " * 50)])

    def test_largeMessagesSentUncompressed(self) -> None:
        """
        With permessage-deflate, a message larger than C{maxCompressSize} is
        sent without compression (RSV1 clear: one blocking compress call of
        a large message would stall every other connection), a smaller one
        compressed (RSV1 set); both arrive intact.  C{0} compresses all.
        """
        big = b"z" * 5000
        session, sink, client, _clock = openSession(
            WebSocketOptions(maxCompressSize=4096), deflate=True
        )
        session.sendMessage(OPCODE_BINARY, b"small " * 100)
        small = sink.take()
        session.sendMessage(OPCODE_BINARY, big)
        large = sink.take()
        self.assertTrue(small[0] & 0x40, "the small message is compressed")
        self.assertFalse(large[0] & 0x40, "the large message goes out as it is")
        self.assertGreater(len(large), len(big))
        self.assertEqual(
            frames(client.receive(small + large)),
            [(Opcode.BINARY, b"small " * 100), (Opcode.BINARY, big)],
        )
        session, sink, client, _clock = openSession(
            WebSocketOptions(maxCompressSize=0), deflate=True
        )
        session.sendMessage(OPCODE_BINARY, big)
        out = sink.take()
        self.assertTrue(out[0] & 0x40)
        self.assertEqual(frames(client.receive(out)), [(Opcode.BINARY, big)])

    def test_defaultMaxCompressSize(self) -> None:
        """
        By default messages above 1 MiB go out uncompressed (what an echo
        of inflated input queues is bounded by the WebSocket layer waiting
        for C{WriteBufferCap}: C{tests.test_wsecho}).
        """
        self.assertEqual(WebSocketOptions().maxCompressSize, 1024 * 1024)

    def test_compressionOff(self) -> None:
        """
        With compression=False the offer is declined.
        """
        _session, _sink, client, _clock = openSession(
            WebSocketOptions(compression=False), deflate=True
        )
        self.assertEqual(client.protocol.extensions, [])


class FailureTests(SynchronousTestCase):
    """
    Protocol violations close the connection after the replies to the
    messages decoded before them.
    """

    def assertEchoThenClose(self, data: bytes, expected: list[Message], code: int) -> None:
        """
        Feed C{data}: it yields C{expected}, whose echoes go out before a Close
        frame with C{code}.
        """
        session, sink, client, _clock = openSession(WebSocketOptions(maxMessagePayloadSize=1000))
        messages = session.feed(data)
        self.assertEqual(messages, expected)
        self.assertEqual(session.pendingFailure[0], code)
        self.assertTrue(session.holding)
        self.assertEqual(sink.data, [])
        for message in messages:
            session.sendMessage(message.opcode, message.payload)
        self.assertFalse(sink.lost or sink.aborted)
        session.flushFailure()
        self.assertIsNone(session.pendingFailure)
        self.assertFalse(session.holding)
        events = client.receive(sink.take())
        opcodes = {OPCODE_TEXT: Opcode.TEXT, OPCODE_BINARY: Opcode.BINARY}
        self.assertEqual(frames(events)[:-1], [(opcodes[m.opcode], m.payload) for m in expected])
        self.assertEqual(frames(events)[-1][0], Opcode.CLOSE)
        self.assertEqual(closeCode(events), code)

    def test_reservedOpcode(self) -> None:
        """
        Good messages then a frame with a reserved opcode: echoes, then Close
        1002; a ping after the bad frame is not answered.
        """
        client = Client()
        self.assertEchoThenClose(
            client.text(b"one")
            + client.frame(Opcode.BINARY, b"two")
            + reservedOpcode(client.text(b"bad"))
            + client.frame(Opcode.PING, b"p"),
            [Message(OPCODE_TEXT, b"one"), Message(OPCODE_BINARY, b"two")],
            1002,
        )

    def test_reservedBits(self) -> None:
        """
        A frame with RSV1 set and no extension negotiated: Close 1002 after the
        echoes, and later messages in the same read are not delivered.
        """
        client = Client()
        self.assertEchoThenClose(
            client.text(b"one") + reservedBit(client.text(b"bad")) + client.text(b"after"),
            [Message(OPCODE_TEXT, b"one")],
            1002,
        )

    def test_invalidUtf8(self) -> None:
        """
        A text message that is not UTF-8: Close 1007 after the echoes.
        """
        client = Client()
        self.assertEchoThenClose(
            client.text(b"ok") + client.text(b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80"),
            [Message(OPCODE_TEXT, b"ok")],
            1007,
        )

    def test_tooBig(self) -> None:
        """
        A message over maxMessagePayloadSize: Close 1009 after the echoes.
        """
        client = Client()
        self.assertEchoThenClose(
            client.text(b"ok") + client.frame(Opcode.BINARY, b"x" * 1001),
            [Message(OPCODE_TEXT, b"ok")],
            1009,
        )

    def test_tooBigFragmented(self) -> None:
        """
        Fragments adding up to more than maxMessagePayloadSize: Close 1009.
        """
        client = Client()
        self.assertEchoThenClose(
            client.text(b"ok")
            + client.frame(Opcode.BINARY, b"x" * 600, fin=False)
            + client.frame(Opcode.CONT, b"x" * 600),
            [Message(OPCODE_TEXT, b"ok")],
            1009,
        )

    def test_violationWithoutMessages(self) -> None:
        """
        A violation with no message before it sends the Close at once.
        """
        session, sink, client, _clock = openSession()
        self.assertEqual(session.feed(client.frame(Opcode.CONT, b"x")), [])
        self.assertIsNone(session.pendingFailure)
        self.assertEqual(closeCode(client.receive(sink.take())), 1002)

    def test_flushedByNextFeed(self) -> None:
        """
        A held close is released by the next feed if flushFailure was not
        called; the close reply then completes the handshake.
        """
        session, sink, client, clock = openSession()
        session.feed(client.text(b"a") + client.frame(Opcode.CONT, b"x"))
        self.assertEqual(sink.data, [])
        session.feed(client.closeFrame(1002))
        events = client.receive(sink.take())
        self.assertEqual(closeCode(events), 1002)
        self.assertTrue(sink.lost or sink.aborted)
        session.connectionLost()
        self.assertTrue(session.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_closeHandshakeTimeout(self) -> None:
        """
        A peer that never answers our Close is dropped after
        closeHandshakeTimeout.
        """
        session, sink, client, clock = openSession(WebSocketOptions(closeHandshakeTimeout=3.0))
        session.feed(client.frame(Opcode.CONT, b"x"))
        clock.advance(2.9)
        self.assertFalse(sink.lost or sink.aborted)
        clock.advance(0.2)
        self.assertTrue(sink.lost or sink.aborted)


class CloseTests(SynchronousTestCase):
    """
    Closing handshakes and the end of the stream.
    """

    def test_clientClose(self) -> None:
        """
        The peer's Close is answered with a Close and the stream is closed.
        """
        session, sink, client, _clock = openSession()
        self.assertEqual(session.feed(client.closeFrame(1000, "bye")), [])
        self.assertEqual(closeCode(client.receive(sink.take())), 1000)
        self.assertTrue(sink.lost)
        self.assertTrue(session.closed)

    def test_clientCloseAfterData(self) -> None:
        """
        Messages in the same read as the peer's Close are returned and their
        echoes precede the close reply and the end of the stream (B5).
        """
        session, sink, client, _clock = openSession()
        data = client.text(b"a") + client.text(b"b") + client.closeFrame()
        messages = session.feed(data)
        self.assertEqual(messages, [Message(OPCODE_TEXT, b"a"), Message(OPCODE_TEXT, b"b")])
        self.assertEqual(session.pendingFailure[0], 1000)
        self.assertFalse(session.closed)
        self.assertFalse(sink.lost)
        for message in messages:
            session.sendMessage(message.opcode, message.payload)
        self.assertFalse(sink.lost)
        session.flushFailure()
        self.assertTrue(sink.lost)
        self.assertTrue(session.closed)
        self.assertEqual(
            frames(client.receive(sink.take())),
            [
                (Opcode.TEXT, b"a"),
                (Opcode.TEXT, b"b"),
                (Opcode.CLOSE, Close(1000, "").serialize()),
            ],
        )

    def test_serverClose(self) -> None:
        """
        close(1001) sends a Close 1001; the peer's reply ends the stream and
        no timer is left behind.
        """
        session, sink, client, clock = openSession()
        session.close(1001, "going away")
        events = client.receive(sink.take())
        self.assertEqual(closeCode(events), 1001)
        session.sendMessage(OPCODE_TEXT, b"late")
        self.assertEqual(sink.data, [])
        session.feed(client.closeFrame(1001))
        self.assertTrue(sink.lost or sink.aborted)
        session.connectionLost()
        self.assertTrue(session.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_closeBadCode(self) -> None:
        """
        close() refuses codes an endpoint may not send.
        """
        session, _sink, _client, _clock = openSession()
        self.assertRaises(ValueError, session.close, 1005)
        self.assertRaises(ValueError, session.close, 2000)

    def test_closeBeforeHandshake(self) -> None:
        """
        close() before the handshake completes closes the stream.
        """
        sink = RecordingSink()
        clock = Clock()
        session = WebSocketSession(sink, WebSocketOptions(), reactor=clock)
        session.close(1001)
        self.assertTrue(sink.lost)
        session.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connectionLostCancelsTimers(self) -> None:
        """
        Losing the stream cancels the handshake, close and auto-ping timers;
        a second connectionLost does nothing.
        """
        session, _sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        self.assertNotEqual(clock.getDelayedCalls(), [])
        session.close(1001)
        session.connectionLost()
        session.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertTrue(session.closed)
        self.assertEqual(session.feed(client.text(b"x")), [])

    def test_autoPing(self) -> None:
        """
        Auto-ping sends a ping after autoPingInterval and drops a peer that
        does not answer within autoPingTimeout.
        """
        _session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        clock.advance(10)
        [(opcode, payload)] = frames(client.receive(sink.take()))
        self.assertEqual(opcode, Opcode.PING)
        self.assertEqual(len(payload), 12)
        self.assertFalse(sink.aborted or sink.lost)
        clock.advance(5)
        self.assertTrue(sink.aborted or sink.lost)

    def test_autoPingSparesBusyConnection(self) -> None:
        """
        A connection the peer keeps sending on (a message every 5 s, the
        interval 10 s) is never pinged, and stays open.
        """
        session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        for _ in range(12):
            clock.advance(5)
            self.assertEqual(session.feed(client.text(b"busy")), [Message(OPCODE_TEXT, b"busy")])
        self.assertEqual(frames(client.receive(sink.take())), [])
        self.assertFalse(sink.aborted or sink.lost)

    def test_autoPingAfterIdleInterval(self) -> None:
        """
        The ping goes out when nothing was received for autoPingInterval:
        input at t=3 moves the ping from t=10 to t=13.
        """
        session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        clock.advance(3)
        session.feed(client.text(b"x"))
        clock.advance(6.9)  # t=9.9
        clock.advance(3)  # t=12.9
        self.assertEqual(frames(client.receive(sink.take())), [])
        clock.advance(0.1)  # t=13
        [(opcode, _payload)] = frames(client.receive(sink.take()))
        self.assertEqual(opcode, Opcode.PING)

    def test_autoPingDropsPeerGoneSilent(self) -> None:
        """
        A peer that falls silent after traffic is pinged autoPingInterval
        after its last input and dropped autoPingTimeout later.
        """
        session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        clock.advance(7)
        session.feed(client.text(b"last words"))
        clock.advance(3)  # t=10: the interval since the opening, not since the input
        clock.advance(6.9)
        self.assertEqual(frames(client.receive(sink.take())), [])
        clock.advance(0.1)  # t=17
        self.assertEqual([o for o, _ in frames(client.receive(sink.take()))], [Opcode.PING])
        clock.advance(4.9)
        self.assertFalse(sink.aborted or sink.lost)
        clock.advance(0.1)  # t=22
        self.assertTrue(sink.aborted)

    def test_autoPingPeerSendingWithoutPongStays(self) -> None:
        """
        A peer that never answers pings but sends something after one (here
        a ping of its own, a control frame) is alive: it is not dropped at
        the ping timeout, and pinged again only after another
        autoPingInterval of silence, then dropped when that ping times out
        with nothing received.
        """
        session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        clock.advance(10)
        self.assertEqual([o for o, _ in frames(client.receive(sink.take()))], [Opcode.PING])
        clock.advance(2)  # t=12
        session.feed(client.frame(Opcode.PING, b"mine"))
        clock.advance(3)  # t=15: the ping's timeout
        self.assertFalse(sink.aborted or sink.lost)
        self.assertEqual([o for o, _ in frames(client.receive(sink.take()))], [Opcode.PONG])
        clock.advance(6.9)  # t=21.9
        self.assertEqual(frames(client.receive(sink.take())), [])
        clock.advance(0.1)  # t=22: 10 s after the last input
        self.assertEqual([o for o, _ in frames(client.receive(sink.take()))], [Opcode.PING])
        clock.advance(5)
        self.assertTrue(sink.aborted)

    def test_autoPingAnswered(self) -> None:
        """
        A peer that answers auto-pings stays connected.
        """
        session, sink, client, clock = openSession(
            WebSocketOptions(autoPingInterval=10, autoPingTimeout=5)
        )
        for _ in range(3):
            clock.advance(10)
            [(_opcode, payload)] = frames(client.receive(sink.take()))
            session.feed(client.frame(Opcode.PONG, payload))
            clock.advance(5)
        self.assertFalse(sink.aborted or sink.lost)


class CompactTests(SynchronousTestCase):
    """
    Once open, Autobahn's protocol object keeps only per-connection state
    (the settings and defaults live on the class), and behaves the same.
    """

    def test_smallAfterOpen(self) -> None:
        """
        After the handshake the protocol's attribute dictionary holds at
        most 20 entries (Autobahn's own: about 86), none of the handshake's
        leftovers, and reads of the dropped settings and flags still give
        the factory's values.
        """
        session, _sink, client, _clock = openSession(WebSocketOptions(maxMessagePayloadSize=1234))
        proto = session._proto
        self.assertLessEqual(len(vars(proto)), 20, sorted(vars(proto)))
        for name in (
            "http_headers",
            "http_request_data",
            "http_response_data",
            "maxMessagePayloadSize",
        ):
            self.assertNotIn(name, vars(proto))
        self.assertEqual(proto.maxMessagePayloadSize, 1234)
        self.assertEqual(proto.maxMessagePayloadSize, proto.factory.maxMessagePayloadSize)
        self.assertEqual(proto.CONFIG_ATTRS, ())  # nothing for Autobahn to copy
        for name in WebSocketServerProtocol.CONFIG_ATTRS:
            self.assertEqual(getattr(proto, name), getattr(proto.factory, name), name)
        self.assertIsNone(proto.perMessageCompressionAccept([]))  # a function, not a method
        self.assertFalse(proto.wasClean)
        # a write brings an instance value back; the class stays as it was
        session.feed(client.closeFrame(1000))
        self.assertTrue(proto.wasClean)
        self.assertFalse(type(proto).wasClean)

    def test_tooBigAfterCompact(self) -> None:
        """
        The per-options limits still apply after the compaction.
        """
        session, sink, client, _clock = openSession(WebSocketOptions(maxMessagePayloadSize=10))
        self.assertEqual(session.feed(client.text(b"x" * 11)), [])
        self.assertEqual(closeCode(client.receive(sink.take())), 1009)

    def test_delayedWrites(self) -> None:
        """
        Autobahn's queued writes (C{sync}, C{chopsize}) get their queue on
        first use and still go out in order.
        """
        import txaio

        session, sink, _client, clock = openSession()
        self.patch(txaio, "call_later", clock.callLater)  # Autobahn's delay between chunks
        proto = session._proto
        self.assertNotIn("send_queue", vars(proto))
        proto.sendData(b"ab", sync=True)
        proto.sendData(b"cdef", chopsize=2)
        proto.sendData(b"g")
        for _ in range(10):
            clock.advance(0.01)
        self.assertEqual(sink.take(), b"abcdefg")

    def test_messageObserversStillFire(self) -> None:
        """
        Messages are delivered without Autobahn's C{"message"} event while
        nothing observes it, and with it once something does.
        """
        session, _sink, client, _clock = openSession()
        self.assertEqual(session.feed(client.text(b"one")), [Message(OPCODE_TEXT, b"one")])
        seen: list[tuple[bytes, bool]] = []
        session._proto.on("message", lambda payload, is_binary: seen.append((payload, is_binary)))
        self.assertEqual(
            session.feed(client.frame(Opcode.BINARY, b"two")), [Message(OPCODE_BINARY, b"two")]
        )
        self.assertEqual(seen, [(b"two", True)])

    def test_keepRequest(self) -> None:
        """
        By default the request stays; with C{keepRequest=False} it is let go
        once the handshake is done.
        """
        session, _, _, _ = openSession()
        self.assertEqual(session.request.path, "/chat")
        self.assertIn("host", session.request.headers)
        session, _, client, _ = openSession(WebSocketOptions(keepRequest=False))
        self.assertIsNone(session.request)
        self.assertTrue(session.upgraded)
        self.assertEqual(session.feed(client.text(b"still")), [Message(OPCODE_TEXT, b"still")])
        self.assertRaises(ValueError, WebSocketOptions(keepRequest=1).validate)


class OptionsTests(SynchronousTestCase):
    """
    L{WebSocketOptions}.
    """

    def test_safeDefaults(self) -> None:
        """
        The defaults bound message and frame sizes and the handshakes.
        """
        options = WebSocketOptions()
        options.validate()
        self.assertEqual(options.maxMessagePayloadSize, 16 * 1024 * 1024)
        self.assertEqual(options.maxFramePayloadSize, 16 * 1024 * 1024)
        self.assertGreater(options.maxRequestHeaderSize, 0)
        self.assertGreater(options.openHandshakeTimeout, 0)
        self.assertGreater(options.closeHandshakeTimeout, 0)
        self.assertTrue(options.compression)

    def test_invalid(self) -> None:
        """
        validate() raises ValueError naming the bad option, and so does
        creating a session with it.
        """
        for kwargs, name in [
            ({"maxMessagePayloadSize": -1}, "maxMessagePayloadSize"),
            ({"maxFramePayloadSize": "big"}, "maxFramePayloadSize"),
            ({"openHandshakeTimeout": -1.0}, "openHandshakeTimeout"),
            ({"autoPingInterval": 0, "autoPingTimeout": 5.0}, "autoPingTimeout"),
            ({"messageTimeout": -1}, "messageTimeout"),
            ({"messageTimeout": float("inf")}, "messageTimeout"),
            ({"messageTimeout": float("nan")}, "messageTimeout"),
            ({"partialMessageBudget": -1}, "partialMessageBudget"),
            ({"maxCompressSize": -1}, "maxCompressSize"),
            ({"maxCompressSize": 1.5}, "maxCompressSize"),
            ({"maxCompressSize": True}, "maxCompressSize"),
            ({"partialMessageBudget": 1024}, "partialMessageBudget"),
            ({"partialMessageBudget": 2**30, "maxMessagePayloadSize": 0}, "partialMessageBudget"),
            ({"autoPingSize": 200}, "autoPingSize"),
            ({"allowedOrigins": "*"}, "allowedOrigins"),
            ({"compression": 1}, "compression"),
        ]:
            options = WebSocketOptions(**kwargs)
            error = self.assertRaises(ValueError, options.validate)
            self.assertIn(name, str(error))
            self.assertRaises(
                ValueError, WebSocketSession, RecordingSink(), options, reactor=Clock()
            )

    def test_invalidAfterEqualValid(self) -> None:
        """
        Sessions share the validation of equal options, but only of equal
        values of the same types: after sessions with C{compression=True},
        C{maxCompressSize=1} and C{maxFramePayloadSize=1000}, options that
        differ only by C{1} for C{True}, C{True} for C{1} or C{1000.0} for
        C{1000} are still refused, naming the option.
        """
        clock = Clock()
        valid = {"compression": True, "maxCompressSize": 1, "maxFramePayloadSize": 1000}
        for _ in range(2):
            WebSocketSession(RecordingSink(), WebSocketOptions(**valid), reactor=clock)
        for name, bad in [
            ("compression", 1),
            ("maxCompressSize", True),
            ("maxFramePayloadSize", 1000.0),
        ]:
            options = WebSocketOptions(**{**valid, name: bad})
            error = self.assertRaises(
                ValueError, WebSocketSession, RecordingSink(), options, reactor=clock
            )
            self.assertIn(name, str(error))

    def test_headersRespected(self) -> None:
        """
        The Server header follows the options.
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(server="test-server/1"), reactor=Clock())
        session.feed(Client().handshake())
        self.assertIn(b"\r\nServer: test-server/1\r\n", sink.take())


class StatusPageOptionTests(SynchronousTestCase):
    """
    The status page and its headers come with the options
    (C{WebSocketOptions.statusPage}, C{statusPageHeaders}), not assigned to
    each session after it was built.
    """

    def get(self, options: WebSocketOptions, target: bytes = b"/") -> tuple[RecordingSink, bytes]:
        """A plain C{GET target} to a new session; the sink and the answer."""
        sink = RecordingSink()
        session = WebSocketSession(sink, options, reactor=Clock())
        session.feed(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        return sink, sink.take()

    def test_pageFromOptions(self) -> None:
        """
        With C{webStatus}, a plain C{GET /} gets the options' page with
        their headers; another path a 404 with the same headers; without
        C{webStatus}, HTTP 426.
        """
        options = WebSocketOptions(
            webStatus=True,
            statusPage=lambda: "<p>up</p>",
            statusPageHeaders=[("X-Test", "one")],
        )
        sink, answer = self.get(options)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertIn(b"\r\nX-Test: one\r\n", answer)
        self.assertNotIn(b"Content-Security-Policy", answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n<p>up</p>"), answer)
        self.assertTrue(sink.lost)
        _, answer = self.get(options, b"/elsewhere")
        self.assertTrue(answer.startswith(b"HTTP/1.1 404 "), answer)
        self.assertIn(b"\r\nX-Test: one\r\n", answer)
        options.webStatus = False
        _, answer = self.get(options)
        self.assertTrue(answer.startswith(b"HTTP/1.1 426 "), answer)

    def test_defaultHeaders(self) -> None:
        """
        A page given without headers is sent with L{STATUS_PAGE_HEADERS}.
        """
        _, answer = self.get(WebSocketOptions(webStatus=True, statusPage=lambda: "x"))
        for name, value in STATUS_PAGE_HEADERS:
            self.assertIn(f"\r\n{name}: {value}\r\n".encode(), answer)

    def test_notAssignable(self) -> None:
        """
        A session has no C{statusPage} to assign (it would be ignored):
        assigning one fails loudly.
        """
        session = WebSocketSession(RecordingSink(), WebSocketOptions(), reactor=Clock())
        self.assertRaises(AttributeError, setattr, session, "statusPage", lambda: "x")
        self.assertRaises(AttributeError, setattr, session, "statusPageHeaders", ())

    def test_invalid(self) -> None:
        """
        A page that is not callable and headers that are not one-line
        Latin-1 C{(name, value)} pairs of C{str} are refused, naming the
        option.
        """
        for kwargs, name in [
            ({"statusPage": "<p>page</p>"}, "statusPage"),
            ({"statusPageHeaders": "X-A: b"}, "statusPageHeaders"),
            ({"statusPageHeaders": [("X-A",)]}, "statusPageHeaders"),
            ({"statusPageHeaders": [("X-A", 1)]}, "statusPageHeaders"),
            ({"statusPageHeaders": [("X-A", "b\r\nSet-Cookie: c")]}, "statusPageHeaders"),
            ({"statusPageHeaders": [("X A", "b")]}, "statusPageHeaders"),
            ({"statusPageHeaders": [("", "b")]}, "statusPageHeaders"),
            ({"statusPageHeaders": [("X-A", "\u2603")]}, "statusPageHeaders"),
        ]:
            options = WebSocketOptions(**kwargs)
            error = self.assertRaises(ValueError, options.validate)
            self.assertIn(name, str(error))
            self.assertRaises(
                ValueError, WebSocketSession, RecordingSink(), options, reactor=Clock()
            )

    def test_unhashableHeaders(self) -> None:
        """
        Headers given as lists (which the factory cache cannot hash as they
        are) are valid and sent.
        """
        clock = Clock()
        for _ in range(2):
            sink = RecordingSink()
            options = WebSocketOptions(
                webStatus=True, statusPage=lambda: "x", statusPageHeaders=[["X-List", "1"]]
            )
            session = WebSocketSession(sink, options, reactor=clock)
            session.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertIn(b"\r\nX-List: 1\r\n", sink.take())


class FactoryCacheTests(SynchronousTestCase):
    """
    Sessions with equal options share one Autobahn factory per reactor,
    and a reactor keeps a bounded number of them.
    """

    def test_bounded(self) -> None:
        """
        Options with ever new values (a status page callable per handler, a
        Server header per tenant...) do not grow the cache without bound:
        at most C{MAX_FACTORIES} per reactor, the oldest dropped first;
        sessions built before keep working.
        """
        clock = Clock()
        first = WebSocketSession(RecordingSink(), WebSocketOptions(server="s0"), reactor=clock)
        for i in range(1, MAX_FACTORIES + 10):
            WebSocketSession(RecordingSink(), WebSocketOptions(server=f"s{i}"), reactor=clock)
        self.assertEqual(len(_factories[clock]), MAX_FACTORIES)
        self.assertEqual(first.feed(Client().handshake()), [])
        self.assertTrue(first.upgraded)

    def test_shared(self) -> None:
        """
        Equal options (equal status page callables included) share one
        factory.
        """
        clock = Clock()

        def page() -> str:
            return "x"

        for _ in range(3):
            options = WebSocketOptions(webStatus=True, statusPage=page)
            WebSocketSession(RecordingSink(), options, reactor=clock)
        self.assertEqual(len(_factories[clock]), 1)


class _PathEcho(BuiltinEventEngine):
    """
    A gnet WebSocket echo handler, as a user writes one (the wsecho
    example), for L{MessagePathTests}.
    """

    def OnOpen(self, c: Any) -> tuple[bytes | None, Any]:
        c.SetContext(WebSocketConn(c, WebSocketOptions(autoPingInterval=0, autoPingTimeout=0)))
        return None, gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        ws = c.Context()
        for msg in ws.ReadClientData():
            ws.WriteServerMessage(msg.opcode, msg.payload)
        return gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> Any:
        c.Context().ConnectionLost(err)
        return gnet.None_


class MessagePathTests(SynchronousTestCase):
    """
    The architecture's claim (the package docstring of
    L{gnetcompat.websocket}), measured on a real C{Conn}: a message crosses
    two objects of the WebSocket layer (the L{WebSocketConn}, which is the
    session, and its Autobahn protocol) and four modules of the library
    (C{_protocol}, C{_conn}, C{websocket._session},
    C{websocket._autobahncompat}), on the way in and on the way out.
    """

    LIBRARY = {
        "gnetcompat._protocol",
        "gnetcompat._conn",
        "gnetcompat.websocket._session",
        "gnetcompat.websocket._autobahncompat",
    }

    def stack(self) -> list[tuple[str, object]]:
        """
        (module, C{self}) of each frame from the caller's caller down to
        the bottom of the stack.
        """
        frames = []
        frame = sys._getframe(2)
        while frame is not None:
            frames.append((frame.f_globals.get("__name__", ""), frame.f_locals.get("self")))
            frame = frame.f_back
        return frames

    def assertPath(self, stack: list[tuple[str, object]], ws: Any) -> None:
        """
        Between the handler's C{OnTraffic} and the recording point, the
        library frames are the session's and its protocol's, in two
        modules; below it, the library's modules are the four.
        """
        handler = next(i for i, (_, me) in enumerate(stack) if isinstance(me, _PathEcho))
        layer = [(m, me) for m, me in stack[:handler] if m.startswith("gnetcompat")]
        self.assertTrue(layer)
        self.assertLessEqual(
            {m for m, _ in layer},
            {"gnetcompat.websocket._session", "gnetcompat.websocket._autobahncompat"},
        )
        objects = {id(me) for _, me in layer}
        self.assertLessEqual(objects, {id(ws), id(ws.session._proto)})
        library = {
            m for m, _ in stack if m.startswith("gnetcompat") and m not in ("gnetcompat.testing",)
        }
        self.assertLessEqual(library, self.LIBRARY)

    def test_path(self) -> None:
        """
        A text message in, its echo out: recorded where Autobahn hands the
        decoded message to the protocol (C{onMessage}) and where the frames
        reach the Conn (C{Conn.driverWrite}, the handshake response too).
        """
        driver = HandlerDriver(_PathEcho())
        driver.boot()
        peer = driver.connect()
        inbound: list[list[tuple[str, object]]] = []
        outbound: list[list[tuple[str, object]]] = []
        driverWrite = Conn.driverWrite

        def recordWrite(conn: Conn, data: bytes) -> None:
            outbound.append(self.stack())
            driverWrite(conn, data)

        self.patch(Conn, "driverWrite", recordWrite)
        client = Client()
        peer.send(client.handshake())
        self.assertEqual(client.receive(peer.received())[0].status_code, 101)
        ws = peer.conn.Context()
        proto = ws.session._proto
        onMessage = type(proto).onMessage

        def recordMessage(me: Any, payload: bytes, isBinary: bool) -> None:
            inbound.append(self.stack())
            onMessage(me, payload, isBinary)

        self.patch(type(proto), "onMessage", recordMessage)
        peer.send(client.text(b"hello"))
        self.assertEqual(frames(client.receive(peer.received())), [(Opcode.TEXT, b"hello")])
        self.assertEqual(len(inbound), 1)
        self.assertEqual(len(outbound), 2)  # the 101 response, the echo
        for stack in inbound + outbound:
            self.assertPath(stack, ws)
        driver.stop()


class ReportTests(SynchronousTestCase):
    """
    L{tests.autobahn_report} reads kosoku's index.json.
    """

    def writeIndex(self, index: dict[str, Any]) -> str:
        """
        Write C{index} as OUTDIR/index.json in a fresh directory.
        """
        outdir = self.mktemp()
        os.makedirs(outdir)
        with open(os.path.join(outdir, "index.json"), "w") as f:
            json.dump(index, f)
        return outdir

    def test_summary(self) -> None:
        """
        Cases come back in numeric order with their behaviours, counted, and
        the non-strict ones are singled out.
        """

        def entry(behavior: str, close: str = "OK") -> dict[str, Any]:
            return {"behavior": behavior, "behaviorClose": close, "duration": 1}

        outdir = self.writeIndex(
            {
                "agent": {
                    "10.1.1": entry("OK"),
                    "2.1": entry("OK"),
                    "3.2": entry("NON-STRICT"),
                    "7.1.6": entry("INFORMATIONAL", "INFORMATIONAL"),
                    "7.1.1": entry("OK", "FAILED"),
                }
            }
        )
        results = readResults(outdir)
        self.assertEqual(list(results), ["2.1", "3.2", "7.1.1", "7.1.6", "10.1.1"])
        self.assertEqual(behaviors(outdir)["3.2"], "NON-STRICT")
        self.assertEqual(summarize(results), {"OK": 3, "NON-STRICT": 1, "INFORMATIONAL": 1})
        self.assertEqual(
            notStrict(results),
            {
                "3.2": CaseResult("NON-STRICT", "OK"),
                "7.1.1": CaseResult("OK", "FAILED"),
            },
        )

    def test_agents(self) -> None:
        """
        With several agents in the index one must be named.
        """
        ok = {"behavior": "OK", "behaviorClose": "OK"}
        outdir = self.writeIndex({"a": {"1.1.1": ok}, "b": {"1.1.2": ok}})
        self.assertRaises(ValueError, readResults, outdir)
        self.assertEqual(list(readResults(outdir, "b")), ["1.1.2"])
        self.assertRaises(ValueError, readResults, outdir, "c")


_NO_PING = {"autoPingInterval": 0, "autoPingTimeout": 0}


def compressedFrames(payload: bytes, fragments: int = 1) -> list[bytes]:
    """
    C{payload} as one permessage-deflate binary message (a fresh context,
    as the client's first message) in C{fragments} masked frames.
    """
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]
    step = -(-len(data) // fragments)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    out = []
    for i, part in enumerate(parts):
        opcode = Opcode.BINARY if i == 0 else Opcode.CONT
        frame = Frame(opcode, part, fin=i == len(parts) - 1).serialize(mask=True)
        out.append(reservedBit(frame) if i == 0 else frame)
    return out


def summary(messages: list[Message]) -> list[tuple[int, int, str]]:
    """
    Opcode, length and digest of each message (big payloads make huge diffs).
    """
    return [(m.opcode, len(m.payload), hashlib.sha256(m.payload).hexdigest()) for m in messages]


class TimeoutTests(SynchronousTestCase):
    """
    Stalled and dead peers are dropped by default; live quiet ones stay.
    """

    def test_defaults(self) -> None:
        """
        Auto-ping (20 s, 20 s), the message timeout (60 s) and the budget of
        partly received messages (64 MiB) are on by default.
        """
        o = WebSocketOptions()
        self.assertEqual((o.autoPingInterval, o.autoPingTimeout), (20.0, 20.0))
        self.assertEqual(o.messageTimeout, 60.0)
        self.assertEqual(o.partialMessageBudget, 64 * 1024 * 1024)

    def test_deadPeerDropped(self) -> None:
        """
        With the defaults, a peer that stops answering pings is dropped.
        """
        _session, sink, client, clock = openSession()
        clock.advance(20)
        [(opcode, _)] = frames(client.receive(sink.take()))
        self.assertEqual(opcode, Opcode.PING)
        clock.advance(20)
        self.assertTrue(sink.aborted)

    def test_quietClientStays(self) -> None:
        """
        A client that sends nothing but answers pings stays for ten minutes.
        """
        session, sink, client, clock = openSession()
        for _ in range(30):
            clock.advance(20)
            [(opcode, payload)] = frames(client.receive(sink.take()))
            self.assertEqual(opcode, Opcode.PING)
            self.assertEqual(session.feed(client.frame(Opcode.PONG, payload)), [])
        self.assertFalse(sink.aborted or sink.lost)
        self.assertEqual(session.feed(client.text(b"hi")), [Message(OPCODE_TEXT, b"hi")])

    def assertFailedWith(
        self,
        session: WebSocketSession,
        sink: RecordingSink,
        client: Client,
        clock: Clock,
        code: int,
    ) -> None:
        self.assertEqual(closeCode(client.receive(sink.take())), code)
        self.assertFalse(sink.aborted)
        clock.advance(1)  # the close handshake timeout: the stalled peer cannot answer
        self.assertTrue(sink.aborted or sink.lost)

    def test_stalledFrame(self) -> None:
        """
        A connection that sends the first part of a big frame and stalls is
        closed with 1008 once messageTimeout passed, and what it held is let
        go at once.
        """
        session, sink, client, clock = openSession(WebSocketOptions(**_NO_PING))
        frame = client.frame(Opcode.BINARY, b"x" * 100_000)
        self.assertEqual(session.feed(frame[:60_000]), [])
        pool = session._proto.partials
        self.assertGreaterEqual(pool.held, 59_000)
        clock.advance(59)
        self.assertEqual(sink.take(), b"")
        clock.advance(2)
        self.assertEqual(pool.held, 0)
        self.assertEqual(session._proto.message_data, [])
        self.assertFailedWith(session, sink, client, clock, 1008)

    def test_stalledHeader(self) -> None:
        """
        Half a frame header is dropped too (1008).
        """
        session, sink, client, clock = openSession(WebSocketOptions(**_NO_PING))
        self.assertEqual(session.feed(client.text(b"x" * 300)[:3]), [])
        clock.advance(61)
        self.assertFailedWith(session, sink, client, clock, 1008)

    def test_stalledFragmentedMessage(self) -> None:
        """
        With the defaults, a client that answers pings but never finishes a
        fragmented message is closed with 1008.
        """
        session, sink, client, clock = openSession()
        self.assertEqual(session.feed(client.text(b"start", fin=False)), [])
        for _ in range(2):
            clock.advance(20)
            [(opcode, payload)] = frames(client.receive(sink.take()))
            self.assertEqual(opcode, Opcode.PING)
            session.feed(client.frame(Opcode.PONG, payload))
        clock.advance(19)
        self.assertEqual(sink.take(), b"")
        clock.advance(1)
        self.assertFailedWith(session, sink, client, clock, 1008)

    def test_streamingClientStays(self) -> None:
        """
        A client that keeps completing messages stays, even when every read
        ends inside the next message.
        """
        session, sink, client, clock = openSession(WebSocketOptions(**_NO_PING))
        data = b"".join(client.frame(Opcode.BINARY, b"m" * 1000) for _ in range(200))
        got = []
        for i in range(0, len(data), 1500):
            got += session.feed(data[i : i + 1500])
            clock.advance(1)
        self.assertEqual(len(got), 200)
        self.assertFalse(sink.aborted or sink.lost)
        self.assertEqual(session._proto.partials.held, 0)
        # nothing partial left: no sweep stays scheduled
        self.assertEqual(clock.getDelayedCalls(), [])


class BudgetTests(SynchronousTestCase):
    """
    The bytes all sessions of a reactor hold in partly received messages.
    """

    def connect(self, options: WebSocketOptions, clock: Clock) -> tuple:
        """A session on C{clock} that completed its handshake: (session, sink, client)."""
        sink = RecordingSink()
        session = WebSocketSession(sink, options, reactor=clock)
        client = Client()
        session.feed(client.handshake())
        client.receive(sink.take())
        return session, sink, client

    def test_oldestHolderPays(self) -> None:
        """
        Two sessions on one reactor: when the second one's data crosses
        the budget, the session that has held its partial message the
        longest (the first) gets 1013 and its bytes are released; the
        second completes its message.  (The newcomer used to pay, so whoever
        filled the budget first kept it.)
        """
        clock = Clock()
        options = WebSocketOptions(
            maxMessagePayloadSize=1000, partialMessageBudget=1500, **_NO_PING
        )
        (sa, ka, ca), (sb, kb, cb) = self.connect(options, clock), self.connect(options, clock)
        frameA = ca.frame(Opcode.BINARY, b"a" * 900)
        frameB = cb.frame(Opcode.BINARY, b"b" * 900)
        self.assertEqual(sa.feed(frameA[:800]), [])
        self.assertEqual(sb.feed(frameB[:800]), [])
        self.assertEqual(closeCode(ca.receive(ka.take())), 1013)
        self.assertEqual(kb.take(), b"")
        self.assertLess(sb._proto.partials.held, 1000)
        self.assertEqual(sb.feed(frameB[800:]), [Message(OPCODE_BINARY, b"b" * 900)])
        self.assertEqual(sb._proto.partials.held, 0)
        self.assertEqual(sa.feed(frameA[800:]), [])
        sa.connectionLost()
        self.assertEqual(sb._proto.partials.held, 0)

    def test_stalledHoldersCannotStarveNewcomers(self) -> None:
        """
        The attack of issue 19, scaled down 1024 times (16 KiB messages, a
        64 KiB budget): 8 connections each send a frame of 16 KiB but the
        last 100 bytes and stall; then 6 new clients each send a 2 KiB
        message in two reads, and after each, the attackers that were
        closed come back and fill again.  Every legitimate message is
        decoded (4 of 6 got 1013 when the newcomer paid), no legitimate
        client gets a Close, and the worker never holds more than the
        budget.
        """
        clock = Clock()
        budget = 64 * 1024
        options = WebSocketOptions(
            maxMessagePayloadSize=16 * 1024,
            maxFramePayloadSize=16 * 1024,
            partialMessageBudget=budget,
            **_NO_PING,
        )
        attackers: list[tuple] = []

        def attack() -> None:
            session, sink, client = self.connect(options, clock)
            session.feed(client.frame(Opcode.BINARY, b"x" * (16 * 1024))[: 16 * 1024 - 100])
            attackers.append((session, sink, client))

        def reconnectClosed() -> None:
            for entry in list(attackers):
                session, sink, client = entry
                if closeCode(client.receive(sink.take())) == 1013:
                    attackers.remove(entry)
                    session.connectionLost()
                    attack()

        for _ in range(8):
            attack()
        pool = attackers[0][0]._proto.partials
        self.assertLessEqual(pool.held, budget)
        echoed = []
        for i in range(6):
            clock.advance(1)
            reconnectClosed()
            session, sink, client = self.connect(options, clock)
            payload = bytes([i]) * 2048  # 2 MiB / 1024
            data = client.frame(Opcode.BINARY, payload)
            got = session.feed(data[:1000])
            self.assertLessEqual(pool.held, budget)
            got += session.feed(data[1000:])
            echoed += got
            self.assertIsNone(closeCode(client.receive(sink.take())), i)
            self.assertLessEqual(pool.held, budget)
        self.assertEqual(echoed, [Message(OPCODE_BINARY, bytes([i]) * 2048) for i in range(6)])


class InflateTests(SynchronousTestCase):
    """
    Compressed messages are inflated in bounded steps.
    """

    def test_inSteps(self) -> None:
        """
        A 15 MiB message of zeros (15 KiB compressed) is inflated at most
        INFLATE_STEP bytes per feed: the session is busy until the message
        is complete, and the message is intact.
        """
        session, _sink, _client, _clock = openSession(deflate=True)
        payload = bytes(15 * 1024 * 1024)
        [frame] = compressedFrames(payload)
        self.assertLess(len(frame), 64 * 1024)
        got = session.feed(frame)
        self.assertEqual(got, [])
        self.assertTrue(session.busy)
        feeds = 1
        pmc = session._proto._perMessageCompress
        while session.busy:
            got += session.feed(b"")
            self.assertLessEqual(pmc.inflated, INFLATE_STEP)
            feeds += 1
        self.assertEqual(summary(got), summary([Message(OPCODE_BINARY, payload)]))
        self.assertGreaterEqual(feeds, len(payload) // INFLATE_STEP)
        self.assertEqual(session._proto.partials.held, 0)

    def test_orderKept(self) -> None:
        """
        Input that arrives while a message is inflated, and frames after it
        in the same read, are processed after it, in order; a Close frame's
        reply follows the messages.
        """
        session, sink, client, _clock = openSession(deflate=True)
        big = bytes(3 * 1024 * 1024)
        first, second = compressedFrames(big, fragments=2)
        got = session.feed(first + second[:10])
        self.assertTrue(session.busy)
        got += session.feed(second[10:] + client.text(b"after"))
        got += session.feed(client.closeFrame(1000))
        while session.busy:
            got += session.feed(b"")
            session.flushFailure()
        self.assertEqual(
            summary(got), summary([Message(OPCODE_BINARY, big), Message(OPCODE_TEXT, b"after")])
        )
        self.assertEqual(closeCode(client.receive(sink.take())), 1000)

    def test_manySmallOnWire(self) -> None:
        """
        Sixteen compressed 1 MiB messages in one read are not inflated in one
        feed: each feed returns at most about INFLATE_STEP more bytes.
        """
        session, _sink, client, _clock = openSession(deflate=True)
        client.protocol.send_binary(bytes(1024 * 1024))
        one = b"".join(client.protocol.data_to_send())
        # the client keeps its context: send the same message again and again
        for _ in range(15):
            client.protocol.send_binary(bytes(1024 * 1024))
        data = one + b"".join(client.protocol.data_to_send())
        got = session.feed(data)
        self.assertLessEqual(len(got), 1)
        while session.busy:
            got += session.feed(b"")
        self.assertEqual(summary(got), summary([Message(OPCODE_BINARY, bytes(1024 * 1024))] * 16))

    def test_tooBigAfterSteps(self) -> None:
        """
        The size limit still holds when it is reached after several steps
        (1009), and a corrupt stream is 1007.
        """
        session, sink, client, _clock = openSession(
            WebSocketOptions(maxMessagePayloadSize=1024 * 1024), deflate=True
        )
        [frame] = compressedFrames(bytes(2 * 1024 * 1024))
        session.feed(frame)
        for _ in range(20):
            session.feed(b"")
        self.assertFalse(session.busy)
        self.assertEqual(closeCode(client.receive(sink.take())), 1009)
        session, sink, client, _clock = openSession(deflate=True)
        session.feed(reservedBit(Frame(Opcode.BINARY, b"\xff" * 50).serialize(mask=True)))
        self.assertEqual(closeCode(client.receive(sink.take())), 1007)
