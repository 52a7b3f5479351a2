"""
Tests for the runnable examples in L{gnetcompat.examples}: each handler
through L{gnetcompat.testing.HandlerDriver} and over a real loopback socket
via L{gnetcompat.Serve}, and each C{main()}'s command line.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat
from gnetcompat.examples import codec, echo, udpecho, wsecho
from gnetcompat.testing import HandlerDriver

from ._hardening_util import frame, upgradeRequest
from ._loopback import FrameClient, LoopbackTestCase


class EchoExampleTests(SynchronousTestCase):
    """L{echo.EchoServer} in memory."""

    def test_echo(self) -> None:
        """Every byte sent comes back, on the connection it came from."""
        driver = HandlerDriver(echo.EchoServer())
        driver.boot()
        a, b = driver.connect(), driver.connect()
        a.send(b"hello ")
        b.send(b"other")
        a.send(b"world")
        self.assertEqual(a.received(), b"hello world")
        self.assertEqual(b.received(), b"other")


class WsEchoExampleTests(SynchronousTestCase):
    """L{wsecho.WsServer}, the seed port, in memory."""

    def test_upgradeAndEcho(self) -> None:
        """
        The handshake is answered with 101, and a text and a binary message
        sent in one read come back with their opcodes; the peer's Close is
        answered and the connection closed.
        """
        driver = HandlerDriver(wsecho.WsServer("tcp://127.0.0.1:9080", False))
        driver.boot()
        peer = driver.connect()
        peer.send(upgradeRequest())
        self.assertTrue(peer.received().startswith(b"HTTP/1.1 101 "))
        peer.send(frame(1, b"hello", mask=b"abcd") + frame(2, b"\x00\xff", mask=b"wxyz"))
        self.assertEqual(peer.received(), b"\x81\x05hello\x82\x02\x00\xff")
        peer.send(frame(8, b"\x03\xe8"))
        self.assertEqual(peer.received(), b"\x88\x02\x03\xe8")
        self.assertTrue(peer.closedByServer)

    def test_tickLogsConnections(self) -> None:
        """C{OnTick} logs the engine-wide count every 3 s, as the seed."""
        server = wsecho.WsServer("tcp://127.0.0.1:9080", False)
        driver = HandlerDriver(server)
        driver.boot()
        driver.connect()
        events: list = []
        self.patch(wsecho.WsServer, "log", Logger(observer=events.append))
        self.assertEqual(server.OnTick(), (3.0, gnetcompat.None_))
        self.assertEqual(events[0]["count"], 1)


class UDPEchoExampleTests(SynchronousTestCase):
    """L{udpecho.UDPEchoServer} in memory."""

    def test_echo(self) -> None:
        """Each datagram is sent back to its sender, whole."""
        driver = HandlerDriver(udpecho.UDPEchoServer(), address="udp://127.0.0.1:9000")
        driver.boot()
        self.assertEqual(
            driver.datagram(b"ping", ("127.0.0.1", 5000)), [(b"ping", ("127.0.0.1", 5000))]
        )
        self.assertEqual(
            driver.datagram(b"x" * 1024, ("127.0.0.1", 5001)), [(b"x" * 1024, ("127.0.0.1", 5001))]
        )


class CodecExampleTests(SynchronousTestCase):
    """L{codec.CodecServer} in memory."""

    def test_encode(self) -> None:
        """A frame is magic 1314, a 4-byte big-endian length, then the body."""
        self.assertEqual(codec.encode(b"abc"), b"\x05\x22\x00\x00\x00\x03abc")

    def test_partialFramesRetained(self) -> None:
        """A frame split over many reads is answered once complete, and only then."""
        driver = HandlerDriver(codec.CodecServer())
        driver.boot()
        peer = driver.connect()
        frame = codec.encode(b"split body")
        for i in range(len(frame) - 1):
            peer.send(frame[i : i + 1])
            self.assertEqual(peer.received(), b"")
        peer.send(frame[-1:])
        self.assertEqual(peer.received(), frame)

    def test_batchAnsweredInOrder(self) -> None:
        """Several frames in one read are all answered, in order."""
        driver = HandlerDriver(codec.CodecServer())
        driver.boot()
        peer = driver.connect()
        frames = [codec.encode(os.urandom(n)) for n in (0, 1, 100, 5000)]
        peer.send(b"".join(frames))
        self.assertEqual(peer.received(), b"".join(frames))

    def test_batchLimitWakes(self) -> None:
        """
        With a batch limit the handler answers that many frames per call and
        Wakes itself for the rest: retained frames are answered without new data.
        """
        server = codec.CodecServer(batchLimit=2)
        driver = HandlerDriver(server)
        driver.boot()
        peer = driver.connect()
        frames = [codec.encode(bytes([i]) * i) for i in range(7)]
        peer.protocol.dataReceived(b"".join(frames))
        self.assertEqual(peer.received(), b"".join(frames[:2]))
        driver.runPending()
        self.assertEqual(peer.received(), b"".join(frames[2:]))
        self.assertEqual(server.wakes, 3)

    def test_badMagicCloses(self) -> None:
        """A frame with another magic number closes the connection."""
        driver = HandlerDriver(codec.CodecServer())
        driver.boot()
        peer = driver.connect()
        peer.send(b"\x00\x01\x00\x00\x00\x00")
        self.assertTrue(peer.closedByServer)


class MainTests(SynchronousTestCase):
    """Each example's C{main()} parses C{--port}/C{--multicore} and calls C{gnetcompat.Run}."""

    def runMain(self, module: Any, argv: list[str]) -> tuple[Any, str, Any]:
        calls: list[tuple] = []
        self.patch(
            gnetcompat, "Run", lambda handler, addr, *opts: calls.append((handler, addr, opts))
        )
        module.main(argv)
        [(handler, addr, opts)] = calls
        return handler, addr, gnetcompat.options.loadOptions(*opts)

    def test_echoMain(self) -> None:
        """C{echo.main} serves L{echo.EchoServer} on C{tcp://:PORT}; multicore off by default."""
        handler, addr, o = self.runMain(echo, ["--port", "9100"])
        self.assertIsInstance(handler, echo.EchoServer)
        self.assertEqual((addr, o.Multicore), ("tcp://:9100", False))

    def test_udpEchoMain(self) -> None:
        """C{udpecho.main} serves on C{udp://:PORT} and honours C{--multicore}."""
        handler, addr, o = self.runMain(udpecho, ["--port", "9101", "--multicore"])
        self.assertIsInstance(handler, udpecho.UDPEchoServer)
        self.assertEqual((addr, o.Multicore), ("udp://:9101", True))

    def test_codecMain(self) -> None:
        """C{codec.main} serves the codec with the given batch limit."""
        handler, addr, o = self.runMain(codec, ["--port", "9102", "--batch-limit", "3"])
        self.assertIsInstance(handler, codec.CodecServer)
        self.assertEqual((addr, handler.batchLimit, o.Multicore), ("tcp://:9102", 3, False))

    def test_wsEchoMain(self) -> None:
        """
        C{wsecho.main} is the seed's: C{127.0.0.1:9080}, multicore on,
        reuse-port and the ticker on.
        """
        self.patch(
            wsecho, "globalLogBeginner", type("B", (), {"beginLoggingTo": lambda *a: None})()
        )
        handler, addr, o = self.runMain(wsecho, [])
        self.assertIsInstance(handler, wsecho.WsServer)
        self.assertEqual(
            (addr, o.Multicore, o.ReusePort, o.Ticker), ("tcp://127.0.0.1:9080", True, True, True)
        )
        handler, addr, o = self.runMain(wsecho, ["--port", "9103", "--multicore", "false"])
        self.assertEqual((addr, o.Multicore), ("tcp://127.0.0.1:9103", False))

    def test_defaultPort(self) -> None:
        """Without C{--port} the examples use 9000."""
        _, addr, _ = self.runMain(echo, [])
        self.assertEqual(addr, "tcp://:9000")

    def test_documented(self) -> None:
        """Every example module, handler class and main() has a docstring."""
        for module, cls in (
            (echo, echo.EchoServer),
            (udpecho, udpecho.UDPEchoServer),
            (codec, codec.CodecServer),
            (wsecho, wsecho.WsServer),
        ):
            for obj in (module, cls, module.main):
                self.assertTrue((obj.__doc__ or "").strip(), obj)


class ExamplesOverSocketsTests(LoopbackTestCase):
    """The example handlers served on real loopback sockets with L{gnetcompat.Serve}."""

    @inlineCallbacks
    def test_echo(self) -> Any:
        """The TCP echo example echoes 256 KiB byte for byte."""
        eng = yield self.serve(echo.EchoServer(), "tcp://127.0.0.1:0")
        yield self.echoOnce(eng, os.urandom(256 << 10))

    @inlineCallbacks
    def test_udpEcho(self) -> Any:
        """The UDP echo example answers each datagram."""
        eng = yield self.serve(udpecho.UDPEchoServer(), "udp://127.0.0.1:0")
        client = self.udpClient(eng)
        for _ in range(3):
            payload = os.urandom(1024)
            self.assertEqual((yield client.request(payload)), payload)

    @inlineCallbacks
    def test_codec(self) -> Any:
        """
        The codec example, with a batch limit of 4, answers 3 clients' batches
        of frames in order.
        """
        eng = yield self.serve(codec.CodecServer(batchLimit=4), "tcp://127.0.0.1:0")

        @inlineCallbacks
        def client() -> Any:
            c = yield connectProtocol(
                TCP4ClientEndpoint(reactor, *self.target(eng)[1]), FrameClient()
            )
            bodies = [os.urandom(n) for n in (1, 64, 4096, 70000, 0, 33) * 3]
            yield c.batch(bodies)
            self.assertEqual(c.bodies, bodies)
            c.transport.loseConnection()

        yield defer.gatherResults([client() for _ in range(3)], consumeErrors=True)
