# -*- test-case-name: tests.test_testing -*-
"""
An in-memory driver for unit-testing your own event handlers: no sockets,
no real time, no global reactor::

    driver = HandlerDriver(MyHandler(), WithTicker(True))
    driver.boot()
    peer = driver.connect()
    peer.send(b"ping")
    assert peer.received() == b"pong"
    driver.advance(3)          # runs OnTick on the fake clock
    peer.disconnect()          # OnClose(c, ErrEOF)

Queued operations (C{Wake}, C{Close}, C{AsyncWrite}) run when you call
L{HandlerDriver.runPending} or L{HandlerDriver.advance}, as they would on the
reactor's next iteration.  So does the end of a connection the server closed:
as over a real socket, the transport's C{connectionLost} comes after the
callback that closed it has returned (C{FakePeer.send}, C{connect},
C{datagram} and C{stop} run pending work before they return).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python.failure import Failure

from ._addr import parseProtoAddr
from ._engine import Engine
from ._protocol import GnetDatagramProtocol, GnetFactory, GnetProtocol
from ._twistedcompat import SocketError
from .options import Option, Options, loadOptions

__all__ = ["MemoryReactor", "HandlerDriver", "FakePeer"]


class MemoryReactor(MemoryReactorClock):
    """
    C{MemoryReactorClock} plus C{callFromThread}: calls are queued and run
    by L{runPending} (or by C{advance}), in FIFO order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.threadCalls: list[tuple[Callable[..., Any], tuple, dict]] = []
        self.running = True

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.threadCalls.append((f, args, kw))

    def runPending(self) -> int:
        """Run queued thread calls (including ones they queue); return how many ran."""
        n = 0
        while self.threadCalls:
            f, args, kw = self.threadCalls.pop(0)
            f(*args, **kw)
            n += 1
        return n

    def advance(self, amount: float) -> None:
        self.runPending()
        super().advance(amount)
        self.runPending()


class FakePeer:
    """The remote end of one in-memory connection."""

    def __init__(self, driver: HandlerDriver, protocol: GnetProtocol, transport: Any) -> None:
        self.driver = driver
        self.protocol = protocol
        self.transport = transport

    @property
    def conn(self) -> Any:
        """The server-side L{gnetcompat.Conn}."""
        return self.protocol.conn

    def send(self, data: bytes) -> None:
        """Deliver C{data} to the server as one read."""
        self.protocol.dataReceived(data)
        self.driver.runPending()

    def received(self) -> bytes:
        """Everything the server wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    @property
    def closedByServer(self) -> bool:
        """True once the server closed the connection."""
        return bool(self.transport.disconnecting)

    def disconnect(self) -> None:
        """The peer closes cleanly (OnClose gets an ErrEOF)."""
        self._lose(Failure(ConnectionDone()))

    def reset(self) -> None:
        """The connection is reset (OnClose gets a C{ConnectionResetError}, as over a socket)."""
        reset = ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
        self._lose(Failure(SocketError("read", reset)))

    def _lose(self, reason: Failure) -> None:
        if not self.transport.disconnected:
            self.transport.disconnected = True
            self.protocol.connectionLost(reason)
        self.driver.runPending()


class _Transport(StringTransportWithDisconnection):
    """
    The server side of one in-memory connection, with a real transport's
    close timing: C{loseConnection}/C{abortConnection} only mark it
    disconnecting; C{connectionLost} is delivered on the reactor's next
    iteration (L{MemoryReactor.runPending}), never inside the call, as TCP
    transports and C{twisted.test.iosim} do.  Writes are never buffered
    here, so nothing is left to flush first.
    """

    disconnected = False

    def __init__(self, reactor: MemoryReactor, **kw: Any) -> None:
        super().__init__(**kw)
        self._reactor = reactor

    def loseConnection(self) -> None:
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        self._reactor.callFromThread(self._connectionLost, ConnectionDone())

    def abortConnection(self) -> None:
        if self.disconnected:
            return
        self.disconnecting = True
        self._reactor.callFromThread(self._connectionLost, ConnectionAborted())

    def _connectionLost(self, reason: Exception) -> None:
        if self.disconnected:  # the peer went first, or an earlier close was delivered
            return
        self.disconnected = True
        self.connected = False
        self.protocol.connectionLost(Failure(reason))


class _FakeUDPPort:
    def __init__(self, host: Any) -> None:
        self.host = host
        self.sent: list[tuple[bytes, Any]] = []
        self.socket = self  # UDPConn sends with socket.sendto, at once

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((bytes(data), addr))

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append((bytes(data), addr))
        return len(data)

    def getHost(self) -> Any:
        return self.host

    def fileno(self) -> int:
        return -1


class HandlerDriver:
    """
    Runs an L{IEventHandler} on an in-memory engine.

    @ivar engine: the L{Engine} (its C{CountConnections}, C{Stop}... work).
    @ivar reactor: the L{MemoryReactor} (also the ticker's clock).
    """

    def __init__(
        self, handler: Any, *opts: Option | Options, address: str = "tcp://127.0.0.1:9000"
    ) -> None:
        self.reactor = MemoryReactor()
        options = loadOptions(*opts)
        options.Reactor = self.reactor
        options.Clock = options.Clock or self.reactor
        self.spec = parseProtoAddr(address)
        self.engine = Engine(handler, [self.spec], options, self.reactor)
        self._factory = GnetFactory(self.engine, "unix" if self.spec.network == "unix" else "tcp")
        self._udp = GnetDatagramProtocol(self.engine)
        self._nextPort = 50000
        self.udpPort = _FakeUDPPort(IPv4Address("UDP", "127.0.0.1", 9000))
        self._udp.transport = self.udpPort  # type: ignore[assignment]  # a fake, not all of IUDPTransport

    def boot(self) -> bool:
        """Call OnBoot and start the ticker; False if OnBoot returned Shutdown."""
        return self.engine.boot()

    def runPending(self) -> int:
        """Run queued Wake/Close/AsyncWrite operations."""
        return self.reactor.runPending()

    def advance(self, seconds: float) -> None:
        """Move the fake clock (ticks fire) and run queued operations."""
        self.reactor.advance(seconds)

    def connect(self, peer: tuple[str, int] | str | None = None) -> FakePeer:
        """Open a connection from C{peer} (host, port) or a unix path; OnOpen runs."""
        if self.spec.network == "unix":
            host: Any = UNIXAddress(self.spec.address)
            remote: Any = UNIXAddress(peer if isinstance(peer, str) else "")
        else:
            if peer is None:
                self._nextPort += 1
                peer = ("127.0.0.1", self._nextPort)
            kind = IPv6Address if ":" in peer[0] else IPv4Address
            host = kind("TCP", peer[0], 9000)
            # (a str peer is a unix path: a tcp spec is given (host, port))
            remote = kind("TCP", peer[0], peer[1])  # type: ignore[arg-type]
        proto = self._factory.buildProtocol(remote)
        if proto is None:
            raise RuntimeError("the engine is shutting down")
        t = _Transport(self.reactor, hostAddress=host, peerAddress=remote)
        t.protocol = proto
        proto.makeConnection(t)
        self.runPending()
        return FakePeer(self, proto, t)

    def datagram(
        self, data: bytes, peer: tuple[str, int] = ("127.0.0.1", 40000)
    ) -> list[tuple[bytes, Any]]:
        """Deliver one UDP datagram; return the datagrams the handler sent, with addresses."""
        before = len(self.udpPort.sent)
        self._udp.datagramReceived(data, peer)
        self.runPending()
        return self.udpPort.sent[before:]

    def stop(self) -> Any:
        """C{engine.Stop()}: a Deferred firing when shut down."""
        d = self.engine.Stop()
        self.runPending()
        return d
