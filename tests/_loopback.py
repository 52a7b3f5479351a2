"""
Shared helpers for the loopback (integration) suites: clients that read
exact byte counts (L{StreamClient}, L{FrameClient}), a connected
L{UDPClient}, and L{LoopbackTestCase}, which serves a handler on real
sockets and cleans up.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
)
from twisted.trial.unittest import TestCase

import gnetcompat as gnet
from gnetcompat.examples.codec import HEADER, encode


class StreamClient(protocol.Protocol):
    """A loopback client: C{read(n)} gives a Deferred of exactly C{n} bytes."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.want: tuple[int, Deferred] | None = None
        self.lost: Deferred = Deferred()
        self.reason: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        self._check()

    def _check(self) -> None:
        if self.want is not None and len(self.buf) >= self.want[0]:
            n, d = self.want
            self.want = None
            out = bytes(self.buf[:n])
            del self.buf[:n]
            d.callback(out)

    def read(self, n: int) -> Deferred:
        d: Deferred = Deferred()
        self.want = (n, d)
        self._check()
        return d

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason
        if self.want is not None:
            _, d = self.want
            self.want = None
            d.errback(reason)
        self.lost.callback(None)


class UDPClient(protocol.DatagramProtocol):
    """A connected UDP client: C{request(data)} gives a Deferred of the next datagram."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.waiting: list[Deferred] = []
        self.received: list[bytes] = []

    def startProtocol(self) -> None:
        self.transport.connect(*self.target)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if self.waiting:
            self.waiting.pop(0).callback(data)
        else:
            self.received.append(data)

    def next(self) -> Deferred:
        d: Deferred = Deferred()
        if self.received:
            d.callback(self.received.pop(0))
        else:
            self.waiting.append(d)
        return d

    def request(self, data: bytes) -> Deferred:
        self.transport.write(data)
        return self.next()


class LoopbackTestCase(TestCase):
    """Helpers to serve a handler and connect clients, with cleanup."""

    timeout = 30

    def serve(self, handler: Any, addrs: Any, *opts: Any) -> Deferred:
        """C{gnet.Serve}, registering a cleanup that stops the engine."""
        d = gnet.Serve(handler, addrs, *opts)

        def started(eng: Any) -> Any:
            def cleanup() -> Any:
                if not eng.stopping:
                    eng.Stop()
                return eng.whenStopped()

            self.addCleanup(cleanup)
            return eng

        return d.addCallback(started)

    def unixPath(self) -> str:
        """A short, unused unix socket path."""
        return os.path.relpath(self.mktemp())

    def target(self, eng: Any, i: int = 0) -> tuple[str, Any]:
        """C{(kind, address)} of the engine's C{i}-th listener."""
        host = eng.listeningPorts[i].getHost()
        if hasattr(host, "port"):
            return host.type.lower(), (host.host, host.port)
        name = host.name
        return "unix", name.decode() if isinstance(name, bytes) else name

    def connect(self, eng: Any, i: int = 0, host: str | None = None) -> Deferred:
        """A connected L{StreamClient} to listener C{i} (aborted at cleanup)."""
        kind, addr = self.target(eng, i)
        if kind == "unix":
            ep: Any = UNIXClientEndpoint(reactor, addr)
        else:
            h = host or addr[0]
            if h in ("::", "0.0.0.0"):
                h = "127.0.0.1"
            ep = (TCP6ClientEndpoint if ":" in h else TCP4ClientEndpoint)(reactor, h, addr[1])
        client = StreamClient()
        self.addCleanup(
            lambda: client.transport.abortConnection() if client.transport.connected else None
        )
        return connectProtocol(ep, client)

    def udpClient(self, eng: Any, i: int = 0) -> UDPClient:
        """A L{UDPClient} connected to listener C{i} (closed at cleanup)."""
        _, (host, port) = self.target(eng, i)
        client = UDPClient(host, port)
        p = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(p.stopListening)
        return client

    @inlineCallbacks
    def echoOnce(self, eng: Any, data: bytes = b"hello", i: int = 0, greeting: bytes = b"") -> Any:
        """Connect, read C{greeting}, send C{data}, read the echo; return the client."""
        client = yield self.connect(eng, i)
        if greeting:
            self.assertEqual((yield client.read(len(greeting))), greeting)
        client.transport.write(data)
        self.assertEqual((yield client.read(len(data))), data)
        return client


class FrameClient(StreamClient):
    """Sends batches of frames and collects the decoded responses."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.expect = 0
        self.done: Deferred | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        off = 0
        while len(self.buf) - off >= HEADER.size:
            magic, n = HEADER.unpack_from(self.buf, off)
            assert magic == 1314, magic
            if len(self.buf) - off < HEADER.size + n:
                break
            self.bodies.append(bytes(self.buf[off + HEADER.size : off + HEADER.size + n]))
            off += HEADER.size + n
        del self.buf[:off]
        if self.done is not None and len(self.bodies) >= self.expect:
            d, self.done = self.done, None
            d.callback(None)

    def batch(self, bodies: list[bytes]) -> Deferred:
        self.bodies = []
        self.expect = len(bodies)
        self.done = Deferred()
        self.transport.write(b"".join(encode(b) for b in bodies))
        return self.done
