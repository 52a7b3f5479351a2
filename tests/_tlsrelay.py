"""
A TLS-originating relay for the tests: it accepts plain TCP on loopback
and forwards every connection, byte for byte, to a TLS server, so that a
client without TLS (kosoku, the TestSuite's runner: "invalid url scheme
wss") can drive a C{wss://} listener::

    kosoku --ws://--> relay (127.0.0.1:R) ==TLS==> twistd -n gnetecho --listen ssl:P

A transparent byte pipe in the manner of L{twisted.protocols.portforward}:

  - backpressure both ways: each side's transport is registered as the
    other's streaming producer (through L{_Valve}), so a reader that falls
    behind pauses the writer's socket; the relay holds at most about a
    transport buffer per direction;
  - nothing is read from the plain client until the TLS handshake with the
    server is done (no pre-handshake buffer);
  - close propagation both ways, after the bytes: when one side ends (EOF
    or loss), the other is closed with C{loseConnection} (its pending bytes
    are written first; on the TLS side a close_notify follows them).  A
    plain half-close (FIN) closes the TLS side the same way while the
    server's replies still reach the client until the server closes;
  - bounded: at most C{maxConnections} relayed connections (more are
    refused and counted), C{handshakeTimeout} for TCP connect plus TLS
    handshake, C{closeTimeout} for the other side to finish once one side
    ended (then both are aborted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

#: Connects an outgoing protocol (the TLS side) and fires when connected.
Connect = Callable[[Protocol], Deferred]


@implementer(IPushProducer)
class _Valve:
    """
    One transport's reading, offered to the other side's transport as its
    producer.  C{stopProducing} does nothing: closing is the relay's job,
    done in order (bytes first) by L{_Pipe.ended}; a transport calls it
    when it is lost, which must not cut the other side short.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class _Inbound(Protocol):
    """The plain side: the client that dialled the relay."""

    pipe: _Pipe | None = None
    factory: TLSRelayFactory

    def connectionMade(self) -> None:
        f = self.factory
        if len(f.pipes) >= f.maxConnections:
            f.refused += 1
            self.transport.abortConnection()
            return
        # Read nothing until there is somewhere to send it.
        self.transport.pauseProducing()
        self.pipe = _Pipe(f, self)
        f.pipes.add(self.pipe)
        self.pipe.start()

    def dataReceived(self, data: bytes) -> None:
        assert self.pipe is not None and self.pipe.outbound is not None
        self.pipe.bytesUp += len(data)
        self.pipe.outbound.transport.write(data)

    def readConnectionLost(self) -> None:
        if self.pipe is not None:
            self.pipe.ended(self, gone=False)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.pipe is not None:
            self.pipe.ended(self, gone=True)


@implementer(IHandshakeListener)
class _Outbound(Protocol):
    """The TLS side: our connection to the server."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    def handshakeCompleted(self) -> None:
        self.pipe.joined()

    def dataReceived(self, data: bytes) -> None:
        self.pipe.bytesDown += len(data)
        self.pipe.inbound.transport.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.pipe._joined and not self.pipe._closing and reason is not None:
            self.pipe.factory.errors.append(f"TLS: {reason.getErrorMessage()}")
        self.pipe.ended(self, gone=True)


class _Pipe:
    """One relayed connection: an L{_Inbound} and its L{_Outbound}."""

    def __init__(self, factory: TLSRelayFactory, inbound: _Inbound) -> None:
        self.factory = factory
        self.inbound = inbound
        self.outbound: _Outbound | None = None
        self.bytesUp = 0
        self.bytesDown = 0
        self._connecting: Deferred | None = None
        self._timer: Any = None
        self._joined = False
        self._closing = False
        self._closed: set[Protocol] = set()
        self._inGone = False
        self._outGone = False

    def start(self) -> None:
        f = self.factory
        self._timer = f.reactor.callLater(
            f.handshakeTimeout, self._timedOut, "connect + TLS handshake"
        )
        proto = _Outbound(self)
        self._connecting = f.connect(proto)
        self._connecting.addCallbacks(self._connected, self._connectFailed, callbackArgs=(proto,))

    def _connected(self, _: Any, proto: _Outbound) -> None:
        self._connecting = None
        self.outbound = proto
        if self._closing:  # the client left while we were connecting
            proto.transport.loseConnection()

    def _connectFailed(self, reason: Failure) -> None:
        self._connecting = None
        if not reason.check(CancelledError):
            self.factory.errors.append(f"connect: {reason.getErrorMessage()}")
        self._outGone = True  # no outbound will ever come
        self._closeOther(self.inbound)
        self._maybeDone()

    def joined(self) -> None:
        """TLS is up: wire backpressure both ways, start reading the client."""
        if self._closing:
            return
        self._joined = True
        self._cancelTimer()
        assert self.outbound is not None
        tls, plain = self.outbound.transport, self.inbound.transport
        tls.registerProducer(_Valve(plain), True)
        plain.registerProducer(_Valve(tls), True)
        plain.resumeProducing()

    def ended(self, side: Protocol, gone: bool) -> None:
        """
        C{side} will send no more (EOF, or C{gone}: lost).  Close the other
        side after its pending bytes, bounded by C{closeTimeout}.
        """
        if gone:
            if side is self.inbound:
                self._inGone = True
            else:
                self._outGone = True
        other = self.outbound if side is self.inbound else self.inbound
        if other is not None and other not in self._closed:
            self._closeOther(other)
        if not self._closing:
            self._closing = True
            self._cancelTimer()
            if side is self.inbound and self.outbound is None and self._connecting is not None:
                self._connecting.cancel()
            self._timer = self.factory.reactor.callLater(
                self.factory.closeTimeout, self._timedOut, "close"
            )
        self._maybeDone()

    def _closeOther(self, other: Protocol) -> None:
        self._closed.add(other)
        t = other.transport
        if t is None:
            return
        if self._joined:
            # A producer registered on the TLS transport delays its
            # close_notify until unregistered; on TCP it is harmless.
            t.unregisterProducer()
        t.loseConnection()

    def _maybeDone(self) -> None:
        if self._inGone and self._outGone:
            self._cancelTimer()
            self.factory.pipes.discard(self)

    def _timedOut(self, what: str) -> None:
        self._timer = None
        self.factory.errors.append(f"{what} timed out")
        self.abort()

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def abort(self) -> None:
        """Drop both sides now."""
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
        for p in (self.inbound, self.outbound):
            if p is not None and p.transport is not None:
                p.transport.abortConnection()


class TLSRelayFactory(Factory):
    """
    Accepts plain connections and relays each through C{connect}.

    @ivar pipes: the live relayed connections.
    @ivar refused: connections refused over C{maxConnections}.
    @ivar errors: what went wrong (connect failures, timeouts), for the
        test's failure message.
    """

    protocol = _Inbound
    noisy = False

    def __init__(
        self,
        connect: Connect,
        reactor: Any = None,
        maxConnections: int = 64,
        handshakeTimeout: float = 30.0,
        closeTimeout: float = 30.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        if maxConnections < 1 or handshakeTimeout <= 0 or closeTimeout <= 0:
            raise ValueError("maxConnections, handshakeTimeout and closeTimeout must be positive")
        self.connect = connect
        self.reactor = reactor
        self.maxConnections = maxConnections
        self.handshakeTimeout = handshakeTimeout
        self.closeTimeout = closeTimeout
        self.pipes: set[_Pipe] = set()
        self.refused = 0
        self.errors: list[str] = []

    def abortAll(self) -> None:
        """Drop every relayed connection (test cleanup)."""
        for pipe in list(self.pipes):
            pipe.abort()


def tlsConnector(
    reactor: Any, host: str, port: int, caCertPath: str, hostname: str = "localhost"
) -> Connect:
    """
    A L{Connect} dialling C{host:port} over TLS, verifying the server's
    certificate for C{hostname} against the CA in C{caCertPath}.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    with open(caCertPath, "rb") as f:
        ca = Certificate.loadPEM(f.read())
    options = optionsForClientTLS(hostname, trustRoot=ca)
    endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, host, port, timeout=10))
    return lambda proto: connectProtocol(endpoint, proto)


def listenRelay(
    testCase: Any, connect: Connect, reactor: Any = None, **kw: Any
) -> tuple[TLSRelayFactory, int]:
    """
    Listen on 127.0.0.1 (a free port) with a L{TLSRelayFactory}; the test's
    cleanup stops listening and drops what is left.

    @returns: the factory and the port.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    factory = TLSRelayFactory(connect, reactor, **kw)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def cleanup() -> Any:
        factory.abortAll()
        return port.stopListening()

    testCase.addCleanup(cleanup)
    return factory, port.getHost().port
