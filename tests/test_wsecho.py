"""
Tests for L{gnetcompat.echo.server}, the gnet WebSocket echo server.

C{HandlerUnitTests} drive the handler in memory with
L{gnetcompat.testing.HandlerDriver} (no sockets, fake clock); the client is
C{websockets}' sans-I/O C{ClientProtocol}, and deliberately broken frames
come from L{rawFrame}.  C{EchoIntegrationTests} serve the handler with
L{gnetcompat.Serve} on 127.0.0.1 and talk to it with the C{websockets}
clients, run in threads (C{deferToThread}) so the reactor keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import shutil
import stat
import tempfile
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

import gnetcompat as gnet
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.echo.status import CONTENT_SECURITY_POLICY
from gnetcompat.testing import FakePeer, HandlerDriver
from gnetcompat.websocket import WebSocketOptions

MASK = b"\x37\xfa\x21\x3d"


def digest(messages: list[Any]) -> list[tuple[str, int, str]]:
    """
    (type, length, sha256) of each message: compare big payloads with this,
    so a failure prints a short message instead of an endless diff.
    """
    out = []
    for m in messages:
        b = m.encode() if isinstance(m, str) else bytes(m)
        out.append((type(m).__name__, len(b), hashlib.sha256(b).hexdigest()[:16]))
    return out


def rawFrame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes = MASK
) -> bytes:
    """
    One client frame, masked, built by hand (any opcode or RSV bits, so
    protocol violations can be sent).
    """
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([b0, 0x80 | n])
    elif n < 65536:
        header = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class Client:
    """
    A sans-I/O WebSocket client over a L{FakePeer}: what it sends is built
    by C{websockets}, what the server answered is parsed by it.
    """

    def __init__(self, peer: FakePeer, deflate: bool = False) -> None:
        self.peer = peer
        ext = [ClientPerMessageDeflateFactory()] if deflate else None
        self.proto = ClientProtocol(
            parse_uri("ws://127.0.0.1:9000/"), max_size=None, extensions=ext
        )
        self.proto.send_request(self.proto.connect())
        self.request = self.pending()

    def pending(self) -> bytes:
        """What the client protocol has queued to send (taken)."""
        return b"".join(self.proto.data_to_send())

    def handshake(self) -> Response:
        """Send the upgrade request; return the server's (101) response."""
        self.peer.send(self.request)
        events = self.events()
        assert len(events) == 1 and isinstance(events[0], Response), events
        return events[0]

    def events(self) -> list[Any]:
        """Parse what the server sent since last time: a Response, Frames."""
        self.proto.receive_data(self.peer.received())
        return list(self.proto.events_received())

    def frames(self) -> list[tuple[Opcode, bytes]]:
        """The frames the server sent since last time, as (opcode, payload)."""
        return [(f.opcode, bytes(f.data)) for f in self.events() if isinstance(f, Frame)]

    def text(self, data: str | bytes, fin: bool = True) -> bytes:
        """Encode a text frame (bytes are sent as they are, valid or not)."""
        self.proto.send_text(data.encode() if isinstance(data, str) else data, fin=fin)
        return self.pending()

    def binary(self, data: bytes, fin: bool = True) -> bytes:
        """Encode a binary frame."""
        self.proto.send_binary(data, fin=fin)
        return self.pending()

    def continuation(self, data: bytes, fin: bool) -> bytes:
        """Encode a continuation frame."""
        self.proto.send_continuation(data, fin=fin)
        return self.pending()

    def ping(self, data: bytes) -> bytes:
        """Encode a ping frame."""
        self.proto.send_ping(data)
        return self.pending()

    def close(self, code: int = 1000) -> bytes:
        """Encode a close frame."""
        self.proto.send_close(code)
        return self.pending()

    @property
    def closeCode(self) -> int | None:
        """The code of the close frame received from the server, if any."""
        rcvd = self.proto.close_rcvd
        return rcvd.code if rcvd is not None else None


class LogCapture:
    """Formatted text of every log event published while installed."""

    def __init__(self, testCase: Any) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self, containing: str = "") -> list[str]:
        """The formatted messages holding C{containing}."""
        return [t for t in (formatEvent(e) for e in self.events) if containing in t]


class HandlerUnitTests(SynchronousTestCase):
    """
    The echo handler on an in-memory engine.
    """

    def driver(self, *opts: Any, **kw: Any) -> HandlerDriver:
        """A booted driver running a fresh L{WebSocketEchoServer}(**kw)."""
        self.handler = WebSocketEchoServer(**kw)
        d = HandlerDriver(self.handler, *opts)
        self.assertTrue(d.boot())
        return d

    def upgraded(self, d: HandlerDriver, deflate: bool = False) -> Client:
        """A connected client that completed the opening handshake."""
        c = Client(d.connect(), deflate=deflate)
        resp = c.handshake()
        self.assertEqual(resp.status_code, 101)
        self.assertIsNone(c.proto.handshake_exc)
        return c

    def test_handshake101(self) -> None:
        """
        An upgrade request is answered with 101 and a valid
        C{Sec-WebSocket-Accept}; the Conn's context is an upgraded
        WebSocket.
        """
        d = self.driver()
        c = Client(d.connect())
        resp = c.handshake()
        self.assertEqual(resp.status_code, 101)
        self.assertIsNone(c.proto.handshake_exc)  # the accept key checked out
        self.assertEqual(resp.headers["Upgrade"].lower(), "websocket")
        self.assertTrue(c.peer.conn.Context().upgraded)
        self.assertFalse(c.peer.closedByServer)

    def test_echoSameOpcode(self) -> None:
        """
        Text messages come back as text and binary as binary, byte for byte.
        """
        d = self.driver()
        c = self.upgraded(d)
        c.peer.send(c.text("héllo wörld ✓"))
        self.assertEqual(c.frames(), [(Opcode.TEXT, "héllo wörld ✓".encode())])
        c.peer.send(c.binary(b"\x00\x01\xfe\xff"))
        self.assertEqual(c.frames(), [(Opcode.BINARY, b"\x00\x01\xfe\xff")])
        c.peer.send(c.text(""))
        self.assertEqual(c.frames(), [(Opcode.TEXT, b"")])

    def test_splitByteByByte(self) -> None:
        """
        A handshake and then a frame that arrive one byte per read are
        answered once complete, and only then.
        """
        d = self.driver()
        c = Client(d.connect())
        for i in range(len(c.request)):
            self.assertEqual(c.peer.received(), b"", f"answered after {i} bytes")
            c.peer.send(c.request[i : i + 1])
        self.assertEqual([type(e) for e in c.events()], [Response])
        frame = c.text("split ✓")
        for i in range(len(frame)):
            self.assertEqual(c.frames(), [])
            c.peer.send(frame[i : i + 1])
        self.assertEqual(c.frames(), [(Opcode.TEXT, "split ✓".encode())])

    def test_handshakeAndFramesInOneRead(self) -> None:
        """
        Frames sent in the same read as the upgrade request are echoed
        right after the 101 (the seed's bug B1 lost them).
        """
        d = self.driver()
        c = Client(d.connect())
        # the client protocol only frames once OPEN: build the frames by hand
        burst = c.request + rawFrame(1, b"first") + rawFrame(2, b"\x02" * 300)
        c.peer.send(burst)
        events = c.events()
        self.assertIsInstance(events[0], Response)
        self.assertEqual(events[0].status_code, 101)
        self.assertEqual(
            [(f.opcode, bytes(f.data)) for f in events[1:]],
            [(Opcode.TEXT, b"first"), (Opcode.BINARY, b"\x02" * 300)],
        )

    def test_fragmentedWithPing(self) -> None:
        """
        A ping between the fragments of a message is answered with a pong
        and the reassembled message is echoed (the seed's bug B4 dropped
        the connection).
        """
        d = self.driver()
        c = self.upgraded(d)
        c.peer.send(c.text("frag-one ", fin=False) + c.ping(b"are you there"))
        self.assertEqual(c.frames(), [(Opcode.PONG, b"are you there")])
        c.peer.send(
            c.continuation(b"frag-two ", fin=False) + c.continuation("three ✓".encode(), fin=True)
        )
        self.assertEqual(c.frames(), [(Opcode.TEXT, "frag-one frag-two three ✓".encode())])
        self.assertFalse(c.peer.closedByServer)

    def test_invalidUtf8Closes1007AfterEchoes(self) -> None:
        """
        Messages before an invalid UTF-8 text message in the same read are
        echoed first; then the server closes with 1007 and sends nothing
        more.
        """
        d = self.driver()
        c = self.upgraded(d)
        c.peer.send(c.text("ok 1") + c.binary(b"ok 2") + c.text(b"bad \xff\xfe") + c.text("after"))
        frames = c.frames()
        self.assertEqual(frames[:2], [(Opcode.TEXT, b"ok 1"), (Opcode.BINARY, b"ok 2")])
        self.assertEqual([op for op, _ in frames[2:]], [Opcode.CLOSE])
        self.assertEqual(c.closeCode, 1007)
        c.peer.send(c.pending())  # the client's close reply, if the server still reads
        self.assertTrue(c.peer.closedByServer)

    def test_oversize1009(self) -> None:
        """
        A message over C{maxMessagePayloadSize} closes with 1009; one at the
        limit is echoed.
        """
        d = self.driver(wsOptions=WebSocketOptions(maxMessagePayloadSize=1000))
        c = self.upgraded(d)
        c.peer.send(c.binary(b"x" * 1000))
        self.assertEqual(c.frames(), [(Opcode.BINARY, b"x" * 1000)])
        c.peer.send(c.binary(b"x" * 1001))
        self.assertEqual([op for op, _ in c.frames()], [Opcode.CLOSE])
        self.assertEqual(c.closeCode, 1009)

    def test_oversizeFragmented1009(self) -> None:
        """
        A fragmented message whose fragments add up past the limit closes
        with 1009 too.
        """
        d = self.driver(wsOptions=WebSocketOptions(maxMessagePayloadSize=1000))
        c = self.upgraded(d)
        c.peer.send(c.binary(b"y" * 600, fin=False) + c.continuation(b"y" * 600, fin=True))
        self.assertEqual([op for op, _ in c.frames()], [Opcode.CLOSE])
        self.assertEqual(c.closeCode, 1009)

    def test_protocolViolation1002(self) -> None:
        """
        A reserved opcode, or RSV bits without an extension, closes that
        connection with 1002 while another connection keeps echoing.
        """
        d = self.driver()
        good = self.upgraded(d)
        for bad in (rawFrame(3, b""), rawFrame(1, b"x", rsv=4)):
            c = self.upgraded(d)
            c.peer.send(bad)
            self.assertEqual([op for op, _ in c.frames()], [Opcode.CLOSE])
            self.assertEqual(c.closeCode, 1002)
        good.peer.send(good.text("still here"))
        self.assertEqual(good.frames(), [(Opcode.TEXT, b"still here")])

    def test_unmaskedFrame1002(self) -> None:
        """
        A client frame without a mask is a protocol error (1002).
        """
        d = self.driver()
        c = self.upgraded(d)
        c.peer.send(b"\x81\x02hi")
        self.assertEqual([op for op, _ in c.frames()], [Opcode.CLOSE])
        self.assertEqual(c.closeCode, 1002)

    def test_peerCloseAfterMessage(self) -> None:
        """
        A message and a Close in one read: the echo goes out before the
        close reply (the seed's bug B5), which echoes the code.
        """
        d = self.driver()
        c = self.upgraded(d)
        c.peer.send(c.text("last words") + c.close(1000))
        frames = c.frames()
        self.assertEqual(frames[0], (Opcode.TEXT, b"last words"))
        self.assertEqual([op for op, _ in frames[1:]], [Opcode.CLOSE])
        self.assertEqual(c.closeCode, 1000)
        self.assertTrue(c.peer.closedByServer)

    def test_badRequest400(self) -> None:
        """
        An upgrade request without C{Sec-WebSocket-Key} gets HTTP 400 and
        the connection is closed.
        """
        d = self.driver()
        p = d.connect()
        p.send(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        out = p.received()
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:80])
        self.assertTrue(p.closedByServer)

    def test_garbageRequest(self) -> None:
        """
        Bytes that are not HTTP get a 4xx answer and a close, never a 101.
        """
        d = self.driver()
        p = d.connect()
        p.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n")
        out = p.received()
        self.assertNotIn(b" 101 ", out)
        self.assertTrue(p.closedByServer)

    def test_maxConnections503(self) -> None:
        """
        With C{maxConnections=2} a third connection gets HTTP 503 and is
        closed, the first two keep echoing, and a slot freed by a
        disconnect is usable again.
        """
        d = self.driver(maxConnections=2)
        a, b = self.upgraded(d), self.upgraded(d)
        surplus = d.connect()
        out = surplus.received()
        self.assertTrue(out.startswith(b"HTTP/1.1 503 "), out)
        self.assertTrue(surplus.closedByServer)
        for c, msg in ((a, "from a"), (b, "from b")):
            c.peer.send(c.text(msg))
            self.assertEqual(c.frames(), [(Opcode.TEXT, msg.encode())])
        self.assertEqual(d.engine.CountConnections(), 2)
        a.peer.disconnect()
        c = self.upgraded(d)
        c.peer.send(c.binary(b"again"))
        self.assertEqual(c.frames(), [(Opcode.BINARY, b"again")])

    def test_tickLogsConnectedCount(self) -> None:
        """
        With the ticker on, C{[connected-count=N]} is logged at once and
        then every C{tick} seconds, with the live connection count.
        """
        logs = LogCapture(self)
        d = self.driver(gnet.WithTicker(True), tick=3.0)
        self.assertEqual(logs.lines("connected-count"), ["[connected-count=0]"])
        self.upgraded(d)
        self.upgraded(d)
        d.advance(2.9)
        self.assertEqual(len(logs.lines("connected-count")), 1)
        d.advance(0.1)
        self.assertEqual(logs.lines("connected-count")[-1], "[connected-count=2]")
        d.advance(3)
        self.assertEqual(len(logs.lines("connected-count")), 3)

    def test_tickInterval(self) -> None:
        """
        The C{tick} option sets the interval between count lines.
        """
        logs = LogCapture(self)
        d = self.driver(gnet.WithTicker(True), tick=1.5)
        d.advance(1.5)
        d.advance(1.5)
        d.advance(1.4)
        self.assertEqual(len(logs.lines("connected-count")), 3)

    def test_tickUsesEngineWideCount(self) -> None:
        """
        The tick log reports the engine-wide count (all workers), not this
        handler's own connections.
        """
        logs = LogCapture(self)
        d = self.driver(gnet.WithTicker(True))
        self.upgraded(d)
        d.engine.sharedCount = lambda: 42  # as a multicore worker's engine
        d.advance(3)
        self.assertEqual(logs.lines("connected-count")[-1], "[connected-count=42]")
        self.assertEqual(self.handler.connected, 1)

    def test_noPerMessageLogsByDefault(self) -> None:
        """
        Echoing logs nothing at info level unless debug is on (per-message
        logs are debug-level only).
        """
        logs = LogCapture(self)
        d = self.driver()
        c = self.upgraded(d)
        before = len(logs.events)
        c.peer.send(c.text("quiet"))
        self.assertEqual(c.frames(), [(Opcode.TEXT, b"quiet")])
        self.assertEqual(logs.events[before:], [])
        d2 = self.driver(debug=True)
        c2 = self.upgraded(d2)
        c2.peer.send(c2.text("loud"))
        self.assertEqual(c2.frames(), [(Opcode.TEXT, b"loud")])
        debug = [e for e in logs.events[before:] if e["log_level"].name == "debug"]
        self.assertTrue(any("receive" in formatEvent(e) for e in debug), logs.lines())

    def test_gracefulShutdown1001(self) -> None:
        """
        C{engine.Stop()} sends a 1001 Close to every upgraded WebSocket,
        closes not-yet-upgraded connections, and completes once the
        clients answered the closing handshake.
        """
        d = self.driver()
        a, b = self.upgraded(d), self.upgraded(d)
        raw = d.connect()
        stopped = d.stop()
        self.assertNoResult(stopped)
        for c in (a, b):
            self.assertEqual([op for op, _ in c.frames()], [Opcode.CLOSE])
            self.assertEqual(c.closeCode, 1001)
        self.assertTrue(raw.closedByServer)
        a.peer.send(a.pending())  # the clients' close replies
        self.assertNoResult(stopped)
        b.peer.send(b.pending())
        d.runPending()
        self.successResultOf(stopped)
        self.assertTrue(a.peer.closedByServer and b.peer.closedByServer)
        self.assertTrue(d.engine.stopped)

    def test_shutdownTimeoutAbortsSilentClients(self) -> None:
        """
        A client that never answers the 1001 Close does not hold shutdown
        past the shutdown timeout: it is closed, and the engine stopped,
        exactly when the timeout (2 s) passes, not before (the closing
        handshake's own timeout is longer, so only the shutdown timer acts).
        """
        d = self.driver(
            gnet.WithShutdownTimeout(2.0),
            wsOptions=WebSocketOptions(keepRequest=False, closeHandshakeTimeout=60.0),
        )
        c = self.upgraded(d)
        stopped = d.stop()
        self.assertEqual(c.frames()[0][0], Opcode.CLOSE)
        self.assertEqual(c.closeCode, 1001)
        d.advance(1.999)
        self.assertNoResult(stopped)
        self.assertFalse(c.peer.closedByServer)
        d.advance(0.001)
        self.successResultOf(stopped)
        self.assertTrue(c.peer.closedByServer)
        self.assertTrue(d.engine.stopped)

    def test_openHandshakeTimeout(self) -> None:
        """
        A connection that sends half an upgrade request and then nothing
        is closed exactly when the opening-handshake timeout (0.5 s)
        passes, not before; another connection is not affected.
        """
        d = self.driver(wsOptions=WebSocketOptions(keepRequest=False, openHandshakeTimeout=0.5))
        silent = d.connect()
        silent.send(b"GET / HTTP/1.1\r\n")
        d.advance(0.499)
        self.assertFalse(silent.closedByServer)
        c = self.upgraded(d)  # upgraded: its opening-handshake timer is gone
        d.advance(0.001)
        self.assertTrue(silent.closedByServer)
        self.assertFalse(c.peer.closedByServer)
        c.peer.send(c.text("still here"))
        self.assertEqual(c.frames(), [(Opcode.TEXT, b"still here")])
        self.assertEqual(d.engine.CountConnections(), 1)

    def test_permessageDeflate(self) -> None:
        """
        permessage-deflate is negotiated when offered, and compressed
        messages are echoed (compressed) intact.
        """
        d = self.driver()
        c = Client(d.connect(), deflate=True)
        resp = c.handshake()
        self.assertIn("permessage-deflate", resp.headers.get("Sec-WebSocket-Extensions", ""))
        payload = ("compressible ✓ " * 2000).encode()
        frame = c.text(payload)
        self.assertLess(len(frame), len(payload) // 10)
        c.peer.send(frame)
        wire = c.peer.received()
        self.assertLess(len(wire), len(payload) // 10)
        c.proto.receive_data(wire)
        frames = [f for f in c.proto.events_received() if isinstance(f, Frame)]
        self.assertEqual([f.opcode for f in frames], [Opcode.TEXT])
        self.assertEqual(digest([bytes(frames[0].data)]), digest([payload]))

    def test_compressionOff(self) -> None:
        """
        With C{compression=False} the offer is declined and plain frames
        are echoed.
        """
        d = self.driver(wsOptions=WebSocketOptions(compression=False))
        c = Client(d.connect(), deflate=True)
        resp = c.handshake()
        self.assertNotIn("Sec-WebSocket-Extensions", resp.headers)
        c.peer.send(c.text("plain"))
        self.assertEqual(c.frames(), [(Opcode.TEXT, b"plain")])


# -- integration: real sockets, real websockets clients, in threads -------

TIMEOUT = 15.0


def _connect(port: int, **kw: Any) -> Any:
    from websockets.sync.client import connect

    kw.setdefault("max_size", None)
    return connect(
        f"ws://127.0.0.1:{port}/",
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        proxy=None,
        ping_interval=None,
        **kw,
    )


def _echoAll(port: int, messages: list[str | bytes], **kw: Any) -> tuple[list[str | bytes], Any]:
    """Thread: send each message, read its echo; return echoes and the response headers."""
    with _connect(port, **kw) as ws:
        out = []
        for m in messages:
            ws.send(m)
            out.append(ws.recv(timeout=TIMEOUT))
        return out, ws.response.headers


def _pipelined(port: int, n: int) -> list[str]:
    """Thread: send C{n} messages without waiting, then read the echoes."""
    with _connect(port) as ws:
        for i in range(n):
            ws.send(f"msg {i} ✓")
        return [ws.recv(timeout=TIMEOUT) for _ in range(n)]


def _concurrent(port: int, conns: int, perConn: int) -> list[list[bytes]]:
    """Thread: C{conns} asyncio clients at once, each echoing C{perConn} messages."""
    from websockets.asyncio.client import connect

    async def one(k: int) -> list[bytes]:
        async with connect(
            f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT, proxy=None, ping_interval=None
        ) as ws:
            got = []
            for i in range(perConn):
                await ws.send(f"{k}:{i}".encode())
                got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
            return got

    async def main() -> list[list[bytes]]:
        return await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(conns))), 60)

    return asyncio.run(main())


def _violationIsolated(port: int) -> tuple[int | None, str]:
    """
    Thread: break one connection's protocol, echo on another; return the close
    code and the echo.
    """
    from websockets.exceptions import ConnectionClosedError

    with _connect(port) as good, _connect(port) as bad:
        good.send("before")
        assert good.recv(timeout=TIMEOUT) == "before"
        bad.socket.sendall(rawFrame(3, b""))  # reserved opcode
        code = None
        try:
            bad.recv(timeout=TIMEOUT)
        except ConnectionClosedError as e:
            code = e.rcvd.code if e.rcvd is not None else None
        good.send("after ✓")
        return code, good.recv(timeout=TIMEOUT)


class EchoIntegrationTests(TestCase):
    """
    The echo server on a real loopback socket, driven by C{websockets}.
    """

    timeout = 60

    async def setUp(self) -> None:
        """Serve a fresh echo server on an ephemeral loopback port."""
        self.engine = await gnet.Serve(WebSocketEchoServer(), "tcp://127.0.0.1:0")
        self.port = self.engine.listeningPorts[0].getHost().port

    async def tearDown(self) -> None:
        """Stop the engine (bounded by its shutdown timeout)."""
        if not self.engine.stopping:
            await self.engine.Stop()

    async def test_textAndBinarySizes(self) -> None:
        """
        Non-ASCII text and binary messages from empty to 1 MiB (across the
        7-, 16- and 64-bit length encodings) come back unchanged.
        """
        sizes = [0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024]
        messages: list[str | bytes] = ["héllo wörld ✓ 日本語 🎉", "x" * 70000 + "é"]
        messages += [os.urandom(n) for n in sizes]
        echoed, _ = await deferToThread(_echoAll, self.port, messages, compression=None)
        self.assertEqual(digest(echoed), digest(messages))

    async def test_pipelined(self) -> None:
        """
        50 messages sent back to back are all echoed, in order.
        """
        got = await deferToThread(_pipelined, self.port, 50)
        self.assertEqual(got, [f"msg {i} ✓" for i in range(50)])

    async def test_concurrentConnections(self) -> None:
        """
        100 clients connected at once each get their own echoes, and the
        engine counted them.
        """
        got = await deferToThread(_concurrent, self.port, 100, 3)
        self.assertEqual(got, [[f"{k}:{i}".encode() for i in range(3)] for k in range(100)])

    async def test_permessageDeflate(self) -> None:
        """
        A client offering permessage-deflate gets it, and echoes of
        compressible and random messages are intact.
        """
        messages: list[str | bytes] = ["abc " * 50000, os.urandom(100000), "ü"]
        echoed, headers = await deferToThread(_echoAll, self.port, messages, compression="deflate")
        self.assertIn("permessage-deflate", headers.get("Sec-WebSocket-Extensions", ""))
        self.assertEqual(digest(echoed), digest(messages))

    async def test_inflatedEchoesStayBounded(self) -> None:
        """
        A client sends twelve compressed 4 MiB messages of zeros (a few KiB
        on the wire) and reads nothing until the server waits for it: the
        server inflates in steps and, once its replies to it exceed
        C{WriteBufferCap}, waits for the client to take them before the
        next step, so what it queues stays near one message instead of all
        of them (large replies go out uncompressed, C{maxCompressSize});
        then every echo arrives intact.
        """
        import threading

        from twisted.internet import reactor
        from twisted.internet.task import LoopingCall, deferLater
        from websockets.sync.client import connect

        size, count = 4 << 20, 12
        payload = bytes(size)
        sent = threading.Event()
        go = threading.Event()
        peak = [0]

        # small socket buffers on both sides, so the kernel cannot hide
        # what the server queues
        engine = await gnet.Serve(
            WebSocketEchoServer(), "tcp://127.0.0.1:0", gnet.WithSocketSendBuffer(65536)
        )
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        port = engine.listeningPorts[0].getHost().port

        def sample() -> None:
            for c in engine.connections():
                peak[0] = max(peak[0], c.OutboundBuffered())

        def waitingForClient() -> bool:
            # the server makes no progress until the client reads: reading
            # is paused for the replies queued over WriteBufferCap, and the
            # next inflation step, if one is left, waits in the Conn for
            # them to drain (driverWhenDrained)
            for c in engine.connections():
                ws = c.Context()
                if ws is None or c._drainWatch is None:
                    continue
                if c._whenDrained or not ws.session.busy:
                    return True
            return False

        def client() -> list[bool]:
            import socket

            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            with connect(
                f"ws://127.0.0.1:{port}/",
                sock=sock,
                max_size=None,
                max_queue=1,  # the client's reader stops after one message
                open_timeout=10,
                close_timeout=10,
            ) as ws:
                for _ in range(count):
                    ws.send(payload)
                sent.set()
                if not go.wait(30):
                    raise AssertionError("never told to read")
                return [ws.recv(timeout=30) == payload for _ in range(count)]

        watching = LoopingCall(sample)
        watching.start(0.01)
        try:
            result = deferToThread(client)
            # bounded: 30 s for the client to send and the server to queue
            # replies until it waits for the client (or to queue too much)
            for _ in range(300):
                if sent.is_set() and (waitingForClient() or peak[0] >= 2 * size):
                    break
                await deferLater(reactor, 0.1, lambda: None)
            waited = waitingForClient()
            sample()  # what it holds while it waits
            go.set()
            got = await result
        finally:
            if watching.running:
                watching.stop()
        self.assertTrue(waited, f"the server never waited for the client ({peak[0]} bytes queued)")
        self.assertEqual(got, [True] * count)
        self.assertLess(peak[0], 2 * size, f"{peak[0]} bytes queued for one client")

    async def test_violationClosesOnlyThatConnection(self) -> None:
        """
        A protocol violation closes its connection with 1002; another
        connection keeps echoing.
        """
        code, echo = await deferToThread(_violationIsolated, self.port)
        self.assertEqual(code, 1002)
        self.assertEqual(echo, "after ✓")

    async def test_stopSends1001(self) -> None:
        """
        Stopping the engine closes a connected client with 1001 (going away).
        """
        from websockets.exceptions import ConnectionClosed

        ws = await deferToThread(_connect, self.port)
        self.addCleanup(ws.close)
        await self.engine.Stop()

        def waitClose() -> int | None:
            try:
                ws.recv(timeout=TIMEOUT)
            except ConnectionClosed as e:
                return e.rcvd.code if e.rcvd is not None else None
            return None

        self.assertEqual(await deferToThread(waitClose), 1001)


class PickleTests(SynchronousTestCase):
    """The handler travels to multicore workers by pickle, without side effects."""

    def privateTempdir(self) -> str:
        """A fresh, empty directory made C{tempfile}'s default for this test."""
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        self.patch(tempfile, "tempdir", tmp)
        return tmp

    def test_pickleCreatesNothing(self) -> None:
        """
        C{pickle.dumps}/C{loads} of the handler (multicore or not, twice)
        create no file or directory; the copy names the same statistics
        directory as the original, so the parent reads what workers publish.
        """
        tmp = self.privateTempdir()
        for multicore in (True, False):
            handler = WebSocketEchoServer(multicore=multicore)
            copy = pickle.loads(pickle.dumps(handler))
            again = pickle.loads(pickle.dumps(handler))
            self.assertEqual(os.listdir(tmp), [])
            self.assertIsNotNone(copy.statsDir)
            self.assertEqual((copy.statsDir, again.statsDir), (handler.statsDir, handler.statsDir))
            self.assertFalse(os.path.exists(handler.statsDir))

    def get(self, handler: WebSocketEchoServer) -> bytes:
        """The answer of C{handler}, booted, to a plain C{GET /}."""
        driver = HandlerDriver(handler, gnet.WithTicker(False))
        driver.boot()
        peer = driver.connect()
        peer.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = peer.received()
        driver.stop()
        return answer

    def test_statusPageAfterPickle(self) -> None:
        """
        The status page comes with the sessions' options, built by the
        handler that serves them: the original and a copy made by pickle
        (a worker) each answer C{GET /} with their own page and the echo
        service's headers (its Content-Security-Policy).
        """
        self.privateTempdir()
        handler = WebSocketEchoServer(wsOptions=WebSocketOptions(webStatus=True, keepRequest=False))
        answer = self.get(handler)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:80])
        self.assertIn(CONTENT_SECURITY_POLICY.encode(), answer)
        worker = pickle.loads(pickle.dumps(handler))
        self.addCleanup(shutil.rmtree, handler.statsDir, True)
        answer = self.get(worker)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:80])
        self.assertIn(CONTENT_SECURITY_POLICY.encode(), answer)
        sessionOptions = worker._sessionOptions
        self.assertIsNotNone(sessionOptions)
        self.assertIs(sessionOptions.statusPage.__self__, worker)

    def test_ownStatusPage(self) -> None:
        """
        Options that bring their own status page keep it (and its headers).
        """
        options = WebSocketOptions(
            webStatus=True, statusPage=lambda: "mine", statusPageHeaders=[("X-Mine", "1")]
        )
        answer = self.get(WebSocketEchoServer(multicore=False, wsOptions=options))
        self.assertTrue(answer.endswith(b"\r\n\r\nmine"), answer)
        self.assertIn(b"\r\nX-Mine: 1\r\n", answer)

    def test_workerCreatesStatsDirOnBoot(self) -> None:
        """
        The unpickled copy (a worker) creates the private statistics
        directory in C{OnBoot} and publishes there; the original (the
        parent) sums it.
        """
        self.privateTempdir()
        handler = WebSocketEchoServer(multicore=True)
        worker = pickle.loads(pickle.dumps(handler))
        self.addCleanup(shutil.rmtree, handler.statsDir, True)
        driver = HandlerDriver(worker, gnet.WithTicker(False))
        driver.boot()
        st = os.lstat(worker.statsDir)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual(
            sorted(os.listdir(worker.statsDir)), sorted([f"{os.getpid()}.stats", "owner.lock"])
        )
        self.assertEqual(handler.engineStats().workers, 1)
        self.successResultOf(driver.stop())

    def test_foreignStatsDirRefused(self) -> None:
        """
        A worker does not publish into a statistics path that already exists
        as something not private to it (a symlink, a directory others can
        read): it logs a warning naming the path and serves on.
        """
        tmp = self.privateTempdir()
        target = os.path.join(tmp, "elsewhere")
        os.makedirs(target)
        handler = WebSocketEchoServer(multicore=True)
        worker = pickle.loads(pickle.dumps(handler))
        os.symlink(target, worker.statsDir)
        logs = LogCapture(self)
        driver = HandlerDriver(worker, gnet.WithTicker(False))
        self.assertTrue(driver.boot())
        self.assertEqual(os.listdir(target), [])
        self.assertTrue(logs.lines(worker.statsDir), logs.lines())
        os.unlink(worker.statsDir)
        os.mkdir(worker.statsDir, 0o755)
        os.chmod(worker.statsDir, 0o755)
        worker = pickle.loads(pickle.dumps(handler))
        HandlerDriver(worker, gnet.WithTicker(False)).boot()
        self.assertEqual(os.listdir(worker.statsDir), [])


class NvxCheckTests(SynchronousTestCase):
    """The service says at start whether Autobahn's C helpers are in use."""

    def test_warnsWithoutNvx(self) -> None:
        """With NVX off, checkNvx logs a warning naming the slow fallback."""
        import autobahn.websocket as aw
        from twisted.logger import Logger as _Logger

        from gnetcompat.echo import checkNvx

        events: list = []
        self.patch(aw, "USES_NVX", False)
        self.assertFalse(checkNvx(_Logger(observer=events.append)))
        self.assertEqual(len(events), 1)
        self.assertIn("NVX is off", events[0]["log_format"])

    def test_quietWithNvx(self) -> None:
        """With NVX on, nothing above debug is logged."""
        import autobahn.websocket as aw
        from twisted.logger import Logger as _Logger
        from twisted.logger import LogLevel

        from gnetcompat.echo import checkNvx

        events: list = []
        self.patch(aw, "USES_NVX", True)
        self.assertTrue(checkNvx(_Logger(observer=events.append)))
        self.assertTrue(all(e["log_level"] == LogLevel.debug for e in events))


class EchoPackageTests(SynchronousTestCase):
    """
    The echo service is an application on the library: it imports
    gnetcompat's public modules only, and the library never imports it.
    """

    PUBLIC = {
        "gnetcompat",
        "gnetcompat.errors",
        "gnetcompat.interfaces",
        "gnetcompat.options",
        "gnetcompat.websocket",
    }

    def imports(self, path: str) -> set[str]:
        """The absolute module names C{path} imports (anywhere in it)."""
        import ast

        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = "." * node.level + (node.module + "." if node.module else "")
                    names.add(base.rstrip(".") if node.module else base)
                    names.update(base + a.name for a in node.names)
                else:
                    names.add(node.module or "")
                    names.update(f"{node.module}.{a.name}" for a in node.names)
        return names

    def test_echoUsesPublicNames(self) -> None:
        """
        Every gnetcompat module the echo package imports is public (or the
        echo package itself); no relative imports reach into the library.
        """
        import gnetcompat.echo

        root = os.path.dirname(gnetcompat.echo.__file__)
        bad = []
        for name in sorted(os.listdir(root)):
            if not name.endswith(".py"):
                continue
            for imported in self.imports(os.path.join(root, name)):
                if imported.startswith("."):
                    bad.append((name, imported))
                elif imported.startswith("gnetcompat") and not (
                    imported.startswith("gnetcompat.echo")
                    or imported in self.PUBLIC
                    or (
                        imported.rpartition(".")[0] in self.PUBLIC
                        and not imported.rpartition(".")[2].startswith("_")
                    )
                ):
                    bad.append((name, imported))
        self.assertEqual(bad, [])

    def test_libraryNeverImportsTheService(self) -> None:
        """
        No library module imports C{gnetcompat.echo} (only the twistd
        plugin, L{gnetcompat.tap}, does).
        """
        root = os.path.dirname(gnet.__file__)
        users = []
        for dirpath, _, files in os.walk(root):
            if os.path.basename(dirpath) == "echo":
                continue
            for name in files:
                path = os.path.join(dirpath, name)
                if name.endswith(".py") and name != "tap.py":
                    imported = self.imports(path)
                    if any(
                        i == "gnetcompat.echo" or i.startswith("gnetcompat.echo.") for i in imported
                    ) or (
                        dirpath == root
                        and any(
                            i.lstrip(".").split(".")[0] == "echo"
                            for i in imported
                            if i.startswith(".")
                        )
                    ):
                        users.append(path)
        self.assertEqual(users, [])
