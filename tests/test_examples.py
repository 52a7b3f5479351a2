"""
Tests for the runnable examples in L{gnetcompat.examples}: each handler
through L{gnetcompat.testing.HandlerDriver} and over a real loopback socket
via L{gnetcompat.Serve}, each C{main()}'s command line, and the Go-style
flags (L{gnetcompat.examples.goflag}).  The gnet-examples ports run as
programs in tests.test_gnet_examples.
"""

from __future__ import annotations

import argparse
import os
import struct
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat
from gnetcompat.examples import chat, codec, echo, goflag, httpserver, push, udpecho, wsecho
from gnetcompat.examples.custom_codec import protocol as ccproto
from gnetcompat.examples.custom_codec import server as ccserver
from gnetcompat.examples.simple_protocol import server as spserver
from gnetcompat.examples.simple_protocol.protocol import SimpleCodec
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


class GoFlagTests(SynchronousTestCase):
    """L{goflag}: command lines as Go's C{flag} package reads them."""

    def parser(self) -> argparse.ArgumentParser:
        p = goflag.newParser("test")
        goflag.addInt(p, "port", 9000, "server port")
        goflag.addBool(p, "multicore", False, "multicore")
        goflag.addDuration(p, "tick", 0.1, "tick")
        goflag.addString(p, "packet_size", "x", "size")
        return p

    def test_goForms(self) -> None:
        """One or two dashes, C{=} or a separate value, a bare bool flag is true."""
        p = self.parser()
        for argv in (
            ["-port", "9001", "-multicore"],
            ["--port=9001", "--multicore=true"],
            ["--port", "9001", "--multicore", "t"],
            ["-port=9001", "-multicore=1"],
        ):
            args = p.parse_args(argv)
            self.assertEqual((args.port, args.multicore), (9001, True), argv)
        args = p.parse_args(["--multicore=false", "--tick", "1s", "--packet_size=7"])
        self.assertEqual((args.multicore, args.tick, args.packet_size), (False, 1.0, "7"))
        self.assertEqual(p.parse_args([]).tick, 0.1)

    def test_noAbbreviations(self) -> None:
        """Go never takes a prefix of a flag's name; neither do these parsers."""
        self.patch(
            argparse.ArgumentParser, "exit", lambda *a, **k: (_ for _ in ()).throw(ValueError)
        )
        self.patch(argparse.ArgumentParser, "print_usage", lambda *a, **k: None)
        self.assertRaises(ValueError, self.parser().parse_args, ["--multi"])

    def test_parseBool(self) -> None:
        """Go's C{strconv.ParseBool} words, and nothing else."""
        for word in ("1", "t", "T", "TRUE", "true", "True"):
            self.assertIs(goflag.parseBool(word), True)
        for word in ("0", "f", "F", "FALSE", "false", "False"):
            self.assertIs(goflag.parseBool(word), False)
        for word in ("yes", "", "on", "tRUE"):
            self.assertRaises(argparse.ArgumentTypeError, goflag.parseBool, word)

    def test_parseDuration(self) -> None:
        """Go's C{time.ParseDuration} units and compounds, or plain seconds."""
        cases = {
            "100ms": 0.1,
            "1s": 1.0,
            "1m30s": 90.0,
            "1.5h": 5400.0,
            "250us": 250e-6,
            "250\u00b5s": 250e-6,
            "100ns": 100e-9,
            "-1s": -1.0,
            "0": 0.0,
            "0.25": 0.25,
            "3": 3.0,
        }
        for text, seconds in cases.items():
            self.assertAlmostEqual(goflag.parseDuration(text), seconds, msg=text)
        for text in ("", "1x", "ms", "1s2", "s1", "1 s"):
            self.assertRaises(argparse.ArgumentTypeError, goflag.parseDuration, text)


class PushExampleTests(SynchronousTestCase):
    """L{push} in memory: every tick reaches every connection, whatever its loop."""

    def driven(self, handler: Any) -> tuple[HandlerDriver, list[Any]]:
        driver = HandlerDriver(handler, gnetcompat.WithNumEventLoop(4), gnetcompat.WithTicker(True))
        driver.boot()
        peers = [driver.connect(("127.0.0.1", 40000 + i)) for i in range(8)]
        self.assertEqual({p.conn.EventLoop().index for p in peers}, {0, 1, 2, 3})
        return driver, peers

    def checkPushes(self, driver: HandlerDriver, peers: list[Any]) -> None:
        for _ in range(5):
            driver.advance(0.05)
        for i, p in enumerate(peers):
            self.assertEqual(p.received(), b"heart beating to 127.0.0.1:%d\n" % (40000 + i) * 5)
        peers[0].disconnect()
        driver.advance(0.05)
        self.assertEqual(peers[0].received(), b"")
        self.assertEqual(peers[1].received(), b"heart beating to 127.0.0.1:40001\n")
        peers[2].received()
        peers[2].send(b"echo me")
        self.assertEqual(peers[2].received(), b"echo me")

    def test_pushServer(self) -> None:
        """
        Go's pushServer with 4 loops: the one map holds all 8 connections,
        and each of 5 ticks writes one line to each; a closed one drops out.
        """
        handler = push.PushServer(0.05)
        driver, peers = self.driven(handler)
        self.assertEqual(len(handler.connectedSockets), 8)
        self.checkPushes(driver, peers)

    def test_engineWidePushServer(self) -> None:
        """The process-worker variant behaves the same in one process (C{Conns}, by handle)."""
        driver, peers = self.driven(push.EngineWidePushServer(0.05))
        self.checkPushes(driver, peers)


class ChatExampleTests(SynchronousTestCase):
    """L{chat} in memory."""

    def setUp(self) -> None:
        self.driver = HandlerDriver(chat.ChatServer(), gnetcompat.WithNumEventLoop(2))
        self.driver.boot()
        self.peers = [self.driver.connect(("127.0.0.1", 41000 + i)) for i in range(3)]
        for i, p in enumerate(self.peers):
            self.assertEqual(
                p.received(), b"welcome 127.0.0.1:%d: %d connected\n" % (41000 + i, i + 1)
            )

    def test_linesToOthers(self) -> None:
        """Whole lines go to every other connection; a partial line waits for its end."""
        a, b, c = self.peers
        a.send(b"one\ntwo\npart")
        self.driver.runPending()
        self.assertEqual(
            (a.received(), b.received(), c.received()), (b"", b"one\ntwo\n", b"one\ntwo\n")
        )
        a.send(b"ial\n")
        self.driver.runPending()
        self.assertEqual((b.received(), c.received()), (b"partial\n", b"partial\n"))

    def test_longLineCloses(self) -> None:
        """A line of C{MAX_LINE} bytes or more closes its connection, complete or not."""
        a, b, c = self.peers
        a.send(b"x" * chat.MAX_LINE)
        self.assertTrue(a.closedByServer)
        b.send(b"ok\n" + b"y" * chat.MAX_LINE + b"\n")
        self.assertTrue(b.closedByServer)
        self.driver.runPending()
        self.assertEqual(c.received(), b"")


class SimpleProtocolExampleTests(SynchronousTestCase):
    """L{spserver} in memory, with several loops sharing its counters."""

    def test_echoAndShutdownOnce(self) -> None:
        """
        Greeting, batched packets echoed in one write, partial ones kept; the
        engine shuts down when the last of 3 connections (on 3 loops) closes,
        not before.
        """
        server = spserver.SimpleServer("tcp", ":9000", True)
        driver = HandlerDriver(server, gnetcompat.WithNumEventLoop(3))
        driver.boot()
        peers = [driver.connect() for _ in range(3)]
        for p in peers:
            self.assertEqual(p.received(), b"sweetness\r\n")
        self.assertEqual(server.connected, 3)
        codec = SimpleCodec()
        packets = [codec.Encode(os.urandom(n)) for n in (0, 10, 3000)]
        peers[1].send(b"".join(packets) + packets[0][:3])
        self.assertEqual(peers[1].received(), b"".join(packets))
        self.assertEqual(codec.Unpack(packets[2]), packets[2][6:])
        self.assertIsNone(codec.Unpack(packets[2][:-1]))
        peers[0].disconnect()
        peers[1].disconnect()
        self.assertFalse(driver.engine.stopping)
        peers[2].disconnect()
        driver.runPending()
        self.assertTrue(driver.engine.stopped)
        self.assertEqual((server.connected, server.disconnected), (0, 3))

    def test_badMagicCloses(self) -> None:
        """A packet without the magic number closes the connection."""
        driver = HandlerDriver(spserver.SimpleServer("tcp", ":9000", False))
        driver.boot()
        a, b = driver.connect(), driver.connect()
        a.send(b"\x00" * 6)
        self.assertTrue(a.closedByServer)
        self.assertFalse(b.closedByServer or driver.engine.stopping)


class HttpExampleTests(SynchronousTestCase):
    """L{httpserver} in memory."""

    def setUp(self) -> None:
        self.patch(httpserver, "res", "Hello World!\r\n")
        self.driver = HandlerDriver(httpserver.HttpServer("tcp://:8080", True))
        self.driver.boot()

    def responses(self, data: bytes) -> int:
        return data.count(b"HTTP/1.1 200 OK\r\n")

    def test_pipelined(self) -> None:
        """Requests in one read are all answered in one write; a partial one waits."""
        peer = self.driver.connect()
        peer.send(
            b"GET / HTTP/1.1\r\n\r\n"
            b"POST /x?a=b HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"
            b"GET /y HTTP/1.1\r\nHost: z\r\n"
        )
        out = peer.received()
        self.assertEqual(self.responses(out), 2)
        self.assertTrue(out.endswith(b"Content-Length: 14\r\n\r\nHello World!\r\n"))
        peer.send(b"\r\n")
        self.assertEqual(self.responses(peer.received()), 1)
        peer.send(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        self.assertEqual(peer.received(), b"")
        peer.send(b"cd")
        self.assertEqual(self.responses(peer.received()), 1)

    def test_refused(self) -> None:
        """
        A malformed request line, a head over C{MAX_HEAD}, a body over
        C{MAX_BODY} or a bad length get the error text and a close.
        """
        for request in (
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: " + b"a" * httpserver.MAX_HEAD,
            b"GET / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (httpserver.MAX_BODY + 1),
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        ):
            peer = self.driver.connect()
            peer.send(request)
            self.assertEqual(peer.received(), b"Internal Server Error", request[:40])
            self.assertTrue(peer.closedByServer)


class CustomCodecExampleTests(SynchronousTestCase):
    """L{ccserver} and L{ccproto} in memory."""

    def test_framesEchoed(self) -> None:
        """Each frame, empty ones too, comes back with the protocol's header."""
        driver = HandlerDriver(ccserver.CustomCodecServer("tcp://:9000", False))
        driver.boot()
        peer = driver.connect()
        item = ccproto.CustomLengthFieldProtocol(ccproto.DefaultProtocolVersion, ccproto.ActionPing)
        frames = [ccproto.pack(item, b"hello"), ccproto.pack(item, b""), ccproto.pack(item, b"x")]
        peer.send(b"".join(frames) + frames[0][:5])
        reply = ccproto.CustomLengthFieldProtocol(
            ccproto.DefaultProtocolVersion, ccproto.ActionData
        )
        self.assertEqual(
            peer.received(),
            b"".join(ccproto.pack(reply, d) for d in (b"hello", b"", b"x")),
        )
        self.assertEqual(struct.unpack(">HHI", frames[0][:8]), (0x8001, 1, 5))

    def test_otherProtocolCloses(self) -> None:
        """A wrong version or action type empties the buffer and closes the connection."""
        for version, action in ((0x8002, ccproto.ActionData), (0x8001, 0x0003)):
            driver = HandlerDriver(ccserver.CustomCodecServer("tcp://:9000", False))
            driver.boot()
            peer = driver.connect()
            peer.send(struct.pack(">HHI", version, action, 1) + b"x")
            self.assertTrue(peer.closedByServer)
            self.assertEqual(peer.received(), b"")


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

    def test_echoSock(self) -> None:
        """C{echo --sock PATH} (gnet-examples' echo_uds) serves C{unix://PATH}."""
        handler, addr, o = self.runMain(echo, ["--sock", "echo.sock", "--multicore=true"])
        self.assertEqual((addr, handler.addr, o.Multicore), ("unix://echo.sock", addr, True))

    def test_udpEchoReusePort(self) -> None:
        """C{udpecho --reuseport=true} sets C{WithReusePort}."""
        _, _, o = self.runMain(udpecho, ["--reuseport=true"])
        self.assertTrue(o.ReusePort)

    def test_pushMain(self) -> None:
        """
        push's Go defaults (port 9000, multicore on, ticker on) but a 100 ms
        tick; C{--tick 0} turns the ticker off; C{--workers N} runs the
        engine-wide variant with process workers and the registry.
        """
        handler, addr, o = self.runMain(push, [])
        self.assertIsInstance(handler, push.PushServer)
        self.assertEqual(
            (addr, o.Multicore, o.Ticker, handler.tick), ("tcp://:9000", True, True, 0.1)
        )
        handler, _, o = self.runMain(push, ["--tick", "1s", "--multicore=false"])
        self.assertEqual((handler.tick, o.Multicore), (1.0, False))
        _, _, o = self.runMain(push, ["--tick=0"])
        self.assertFalse(o.Ticker)
        handler, _, o = self.runMain(push, ["--workers", "2"])
        self.assertIsInstance(handler, push.EngineWidePushServer)
        self.assertEqual((o.ProcessWorkers, o.ConnRegistry, o.Ticker), (2, True, True))

    def test_chatMain(self) -> None:
        """chat: C{--workers N} selects process workers, else C{--multicore}."""
        handler, addr, o = self.runMain(chat, ["--workers", "3"])
        self.assertIsInstance(handler, chat.ChatServer)
        self.assertEqual((addr, o.ProcessWorkers), ("tcp://:9000", 3))
        _, _, o = self.runMain(chat, ["--multicore"])
        self.assertEqual((o.ProcessWorkers, o.Multicore), (0, True))

    def test_httpMain(self) -> None:
        """http: port 8080, multicore on; C{main} prepares the response in C{res}."""
        self.patch(httpserver, "res", "")
        handler, addr, o = self.runMain(httpserver, [])
        self.assertIsInstance(handler, httpserver.HttpServer)
        self.assertEqual(
            (addr, o.Multicore, httpserver.res), ("tcp://:8080", True, "Hello World!\r\n")
        )

    def test_simpleProtocolMain(self) -> None:
        """simple_protocol's server: C{tcp://:PORT}, multicore off by default."""
        handler, addr, o = self.runMain(spserver, ["--port", "9104"])
        self.assertIsInstance(handler, spserver.SimpleServer)
        self.assertEqual((addr, o.Multicore), ("tcp://:9104", False))

    def test_customCodecMain(self) -> None:
        """custom_codec's server: multicore on, TCP keep-alive 5 min."""
        handler, addr, o = self.runMain(ccserver, [])
        self.assertIsInstance(handler, ccserver.CustomCodecServer)
        self.assertEqual((addr, o.Multicore, o.TCPKeepAlive), ("tcp://:9000", True, 300))

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
            (push, push.PushServer),
            (push, push.EngineWidePushServer),
            (chat, chat.ChatServer),
            (httpserver, httpserver.HttpServer),
            (spserver, spserver.SimpleServer),
            (ccserver, ccserver.CustomCodecServer),
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
