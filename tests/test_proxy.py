"""
Tests for L{gnetcompat.examples.proxy} and the loop/engine registration
paths it uses, over real loopback sockets in one reactor (gnet's
C{TestStreamProxyServer} and C{TestUDPProxyServer}, spec §16.2).
"""

from __future__ import annotations

import os
import random
import socket
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

import gnetcompat as gnet
from gnetcompat.client import NewContext, NewNetAddrContext, NewNetConnContext
from gnetcompat.errors import (
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrInvalidNetConn,
    ErrInvalidNetworkAddress,
    ErrNilRunnable,
    ErrUnsupportedOp,
    GnetError,
)
from gnetcompat.examples.proxy import ProxyHandler


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _errorOf(fn: Any, *args: Any) -> Any:
    try:
        fn(*args)
    except GnetError as e:
        return type(e)
    return None


class _Echo(gnet.BuiltinEventEngine):
    """A back end: echoes streams and datagrams."""

    def OnTraffic(self, c: Any) -> Any:
        c.Write(c.Next(-1))


class _CheckedProxy(ProxyHandler):
    """The example proxy plus gnet's in-callback checks; Shutdown after the last front conn."""

    def __init__(self, backends: list, fronts: int) -> None:
        super().__init__(backends)
        self.fronts = fronts
        self.frontsClosed = 0
        self.loopChecks: list = []
        self.backendContexts: list = []
        self.executed: list = []
        self.loop: Any = None

    def frontOpened(self, c: Any) -> Any:
        loop = self.loop = c.EventLoop()
        self.loopChecks.append(
            (
                _errorOf(loop.Register, NewContext(None, c), None),
                _errorOf(loop.Enroll, NewContext(None, c), None),
                _errorOf(loop.Execute, None, None),
                _errorOf(loop.Schedule, None, lambda ctx: None, 0.1),
            )
        )
        return super().frontOpened(c)

    def backendOpened(self, c: Any, front: Any) -> Any:
        self.backendContexts.append((front, c.Context()))
        c.EventLoop().Execute(None, lambda ctx: self.executed.append(c))
        return super().backendOpened(c, front)

    def frontClosed(self, c: Any, err: Any) -> Any:
        self.frontsClosed += 1
        return gnet.Shutdown if self.frontsClosed == self.fronts else gnet.None_


class _Probe(protocol.Protocol):
    """A plain Twisted client: send a message, wait for the whole echo."""

    def __init__(self, message: bytes) -> None:
        self.message = message
        self.received = bytearray()
        self.echoed: Deferred = Deferred()
        self.lost: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.message)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.message) and not self.echoed.called:
            self.echoed.callback(bytes(self.received))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.echoed.called:
            self.echoed.errback(reason)
        self.lost.callback(None)


class StreamProxyTests(TestCase):
    """gnet's TestStreamProxyServer with tcp, unix and udp back ends."""

    timeout = 15

    async def _serve(self, handler: Any, addr: str) -> Any:
        eng = await gnet.Serve(handler, addr)
        self.addCleanup(lambda: eng.Stop() if not eng.stopping else eng.whenStopped())
        return eng

    async def _proxy(self) -> None:
        tcp = await self._serve(_Echo(), "tcp://127.0.0.1:0")
        path = os.path.abspath(self.mktemp())
        await self._serve(_Echo(), f"unix://{path}")
        udp = await self._serve(_Echo(), "udp://127.0.0.1:0")
        backends = [
            f"tcp://127.0.0.1:{tcp.listeningPorts[0].getHost().port}",
            f"unix://{path}",
            f"udp://127.0.0.1:{udp.listeningPorts[0].getHost().port}",
        ]
        fronts = 6
        handler = _CheckedProxy(backends, fronts)
        proxy = await self._serve(handler, "tcp://127.0.0.1:0")
        port = proxy.listeningPorts[0].getHost().port

        probes = []
        for i in range(fronts):
            # udp back ends get each relayed read as one datagram: keep those small
            size = 1000 if i % 3 == 2 else 100_000
            probe = _Probe(os.urandom(size))
            await connectProtocol(TCP4ClientEndpoint(_reactor(), "127.0.0.1", port), probe)
            probes.append(probe)
        echoes = await defer.gatherResults([p.echoed for p in probes])
        for probe, echo in zip(probes, echoes, strict=True):
            self.assertEqual(echo, probe.message)
        self.assertEqual(proxy.CountConnections(), 2 * fronts, "back ends are counted")
        for probe in probes:
            probe.transport.loseConnection()
        await defer.gatherResults([p.lost for p in probes])
        await proxy.whenStopped()

        self.assertEqual(
            handler.loopChecks,
            [
                (
                    ErrInvalidNetworkAddress,
                    ErrInvalidNetConn,
                    ErrNilRunnable,
                    ErrUnsupportedOp,
                )
            ]
            * fronts,
        )
        self.assertEqual(len(handler.backendContexts), fronts)
        for front, ctx in handler.backendContexts:
            self.assertIs(ctx, front, "a back end's Context() is its front conn at OnOpen")
        self.assertEqual(len(handler.executed), fronts)
        self.assertEqual(handler.frontsClosed, fronts)

        loop = handler.loop
        sock = socket.socket()
        self.addCleanup(sock.close)
        self.assertEqual(
            (
                _errorOf(loop.Register, None, backends[0]),
                _errorOf(loop.Enroll, None, sock),
                _errorOf(loop.Execute, None, lambda ctx: None),
                _errorOf(loop.Schedule, None, lambda ctx: None, 0.1),
                _errorOf(proxy.Register, NewNetAddrContext(None, backends[0])),
            ),
            (
                ErrEngineInShutdown,
                ErrEngineInShutdown,
                ErrEngineInShutdown,
                ErrUnsupportedOp,
                ErrEngineInShutdown,
            ),
        )

    def test_streamProxy(self) -> None:
        """Front conns are relayed to tcp/unix/udp back ends both ways; the loop's checks hold."""
        return defer.ensureDeferred(self._proxy())

    async def _backendCloses(self) -> None:
        closing: list = []

        class OneShot(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                c.Write(c.Next(-1))
                return gnet.Close

        backend = await self._serve(OneShot(), "tcp://127.0.0.1:0")

        class Proxy(ProxyHandler):
            def OnClose(self, c: Any, err: Any) -> Any:
                closing.append("backend" if self.isBackend(c) else "front")
                return super().OnClose(c, err)

        proxy = await self._serve(
            Proxy([f"tcp://127.0.0.1:{backend.listeningPorts[0].getHost().port}"]),
            "tcp://127.0.0.1:0",
        )
        probe = _Probe(b"once")
        port = proxy.listeningPorts[0].getHost().port
        await connectProtocol(TCP4ClientEndpoint(_reactor(), "127.0.0.1", port), probe)
        self.assertEqual(await probe.echoed, b"once")
        await probe.lost
        self.assertEqual(closing, ["backend", "front"])

    def test_backendCloses(self) -> None:
        """A back end that closes closes its front conn (after the echo was relayed)."""
        return defer.ensureDeferred(self._backendCloses())

    async def _unreachable(self) -> None:
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        dead = free.getsockname()[1]
        free.close()
        proxy = await self._serve(ProxyHandler([f"tcp://127.0.0.1:{dead}"]), "tcp://127.0.0.1:0")
        probe = _Probe(b"hello?")
        port = proxy.listeningPorts[0].getHost().port
        await connectProtocol(TCP4ClientEndpoint(_reactor(), "127.0.0.1", port), probe)
        await probe.lost
        self.assertEqual(bytes(probe.received), b"")
        self.assertFailure(probe.echoed, Exception)
        await probe.echoed

    def test_unreachableBackend(self) -> None:
        """A back end that refuses: Register's result carries the error and the front is closed."""
        return defer.ensureDeferred(self._unreachable())


class _UDPFront(gnet.BuiltinEventEngine):
    """gnet's TestUDPProxyServer front: echo each datagram, push 7 bytes to a random back end."""

    PACKET = b"7 bytes"

    def __init__(self) -> None:
        self.bootError: Any = None
        self.backends: list = []
        self.received = 0
        self.bad: list = []
        self.allIn: Deferred = Deferred()
        self.expected = 0
        self.shutdownTotal: Any = None

    def OnBoot(self, eng: Any) -> Any:
        self.bootError = _errorOf(eng.Register, NewNetAddrContext(None, "udp://127.0.0.1:1"))

    def OnOpen(self, c: Any) -> Any:
        self.backends.append(c)

    def OnTraffic(self, c: Any) -> Any:
        if c in self.backends:
            while c.InboundBuffered() >= len(self.PACKET):
                data = c.Next(len(self.PACKET))
                if data != self.PACKET:
                    self.bad.append(data)
                self.received += len(data)
            if self.received == self.expected and not self.allIn.called:
                self.allIn.callback(None)
            return None
        c.Write(c.Next(-1))
        random.choice(self.backends).AsyncWrite(self.PACKET)
        return None

    def OnShutdown(self, eng: Any) -> None:
        self.shutdownTotal = self.received


class UDPProxyTests(TestCase):
    """Engine.Register on a UDP front end (gnet's TestUDPProxyServer)."""

    timeout = 15

    async def _udpProxy(self) -> None:
        tcpEcho = await gnet.Serve(_Echo(), "tcp://127.0.0.1:0")
        udpEcho = await gnet.Serve(_Echo(), "udp://127.0.0.1:0")
        handler = _UDPFront()
        front = await gnet.Serve(handler, "udp://127.0.0.1:0")
        for eng in (tcpEcho, udpEcho, front):
            self.addCleanup(lambda e=eng: e.Stop() if not e.stopping else e.whenStopped())
        self.assertEqual(handler.bootError, ErrEmptyEngine)
        self.assertRaises(ErrInvalidNetworkAddress, front.Register, NewContext(None, 1))

        tcpPort = tcpEcho.listeningPorts[0].getHost().port
        udpPort = udpEcho.listeningPorts[0].getHost().port
        results = []
        for i, (kind, port) in enumerate(
            [(socket.SOCK_DGRAM, udpPort), (socket.SOCK_STREAM, tcpPort)] * 2
        ):
            if i < 2:
                net = "udp" if kind == socket.SOCK_DGRAM else "tcp"
                ctx = NewNetAddrContext(None, gnet.Addr(net, "127.0.0.1", port))
            else:
                sock = socket.socket(socket.AF_INET, kind)
                sock.connect(("127.0.0.1", port))
                ctx = NewNetConnContext(None, sock)
            results.append(await front.Register(ctx))
        self.assertEqual([r.Err for r in results], [None] * 4)
        self.assertEqual(handler.backends, [r.Conn for r in results], "OnOpen ran for each")
        self.assertEqual(
            [c.RemoteAddr().Network() for c in handler.backends],
            ["udp", "tcp", "udp", "tcp"],
        )

        datagrams = 10
        handler.expected = datagrams * len(_UDPFront.PACKET)
        echoes: list = []
        done: Deferred = Deferred()

        class Sender(protocol.DatagramProtocol):
            def datagramReceived(self, data: bytes, addr: Any) -> None:
                echoes.append(data)
                if len(echoes) == datagrams:
                    done.callback(None)

        frontPort = front.listeningPorts[0].getHost().port
        sender = _reactor().listenUDP(0, Sender(), interface="127.0.0.1")
        self.addCleanup(sender.stopListening)
        for i in range(datagrams):
            sender.write(b"datagram %d" % i, ("127.0.0.1", frontPort))
        await done
        await handler.allIn
        self.assertEqual(sorted(echoes), sorted(b"datagram %d" % i for i in range(datagrams)))
        self.assertEqual(handler.bad, [])
        await front.Stop()
        self.assertEqual(handler.shutdownTotal % len(_UDPFront.PACKET), 0)
        self.assertEqual(handler.shutdownTotal, handler.expected)

    def test_udpProxy(self) -> None:
        """Engine.Register by address and by socket (udp and tcp back ends) from a UDP front."""
        return defer.ensureDeferred(self._udpProxy())
