# -*- test-case-name: tests.test_protocol -*-
"""
The Twisted skin: a Protocol and Factory forwarding Twisted's events to a
L{Conn}, the datagram protocol for UDP listeners, (the adapter
that makes any L{IEventHandler} an C{IProtocolFactory} is in L{gnetcompat._run}).
"""

from __future__ import annotations

from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ._action import Action
from ._conn import Conn, ConnOwner, UDPConn, ownBytes
from ._tls import DEFAULT_HANDSHAKE_TIMEOUT
from ._twistedcompat import awaitHandshake, keepSocketErrors, rawTransport
from .errors import ErrShortBuffer


class ProtocolOwner(ConnOwner, TypingProtocol):
    """
    What the skin needs from the engine beyond a L{ConnOwner}: a factory
    that owns its engine (C{IProtocolFactory(handler)}) starts and stops it
    with its ports.
    """

    def startAdapted(self) -> None:
        """The first port using the factory started: C{OnBoot}."""

    def stopAdapted(self) -> None:
        """The last port using the factory stopped: shut down."""


def networkOf(address: Any) -> str:
    """C{unix} for a unix-socket address, C{tcp} otherwise."""
    return "unix" if isinstance(address, UNIXAddress) else "tcp"


@implementer(IHandshakeListener)
class GnetProtocol(Protocol):
    """
    One connection: C{connectionMade} -> C{OnOpen}, C{dataReceived} ->
    C{OnTraffic}, C{connectionLost} -> C{OnClose}.  Over TLS, C{OnOpen}
    waits for C{handshakeCompleted} (bounded by the handshake timeout).

    The transport reads C{ReadBufferCap} bytes at a time; the L{Conn} pauses
    reading while more than C{WriteBufferCap} bytes wait to be sent, so a
    peer that never reads cannot grow our memory.
    """

    log = Logger()
    #: the connected TCP, unix or TLS transport (Twisted declares
    #: C{ITransport | None}; the skin only runs once it is connected)
    transport: Any
    conn: Conn | None = None
    #: the event loop the connection joins (None: the engine's load balancer picks)
    loop: Any = None
    #: over TLS, until the handshake completed: its deadline
    _handshake: Any = None

    def __init__(self, engine: ConnOwner, network: str | None = "tcp") -> None:
        self.engine = engine
        self.network = network

    def connectionMade(self) -> None:
        self._handshake = awaitHandshake(
            self, self.engine.clock, self._handshakeTimedOut, DEFAULT_HANDSHAKE_TIMEOUT
        )
        if self._handshake is None:
            self._open()

    def handshakeCompleted(self) -> None:
        call, self._handshake = self._handshake, None
        if call is None:
            return
        if call.active():
            call.cancel()
        if self.engine.stopping:
            self.transport.abortConnection()
            return
        self._open()

    def _handshakeTimedOut(self) -> None:
        self._handshake = None
        self.transport.abortConnection()

    def _open(self) -> None:
        eng = self.engine
        t = self.transport
        network = self.network or networkOf(t.getHost())
        raw = rawTransport(t)
        keepSocketErrors(raw)  # OnClose gets the errno of a reset, as in gnet
        conn = self.conn = Conn(eng, t, network)
        self.prepareConn(conn)
        try:
            # the read size only: no producer is registered, so Twisted's use
            # of bufferSize as a write high-water mark does not apply
            raw.bufferSize = eng.options.ReadBufferCap
        except AttributeError:
            pass
        eng.connAdded(conn, self)
        try:
            result = eng.results.openResult(eng.handler.OnOpen(conn))
        except Exception:
            eng.log.failure("OnOpen raised; closing {conn!r}", conn=conn)
            result = None
        if result is None:  # raised, or a wrong shape (logged): close, send nothing
            conn.driverCloseLocal(propagate=True)
            return
        out, action = result
        if out is not None and type(out) is not bytes:
            out = ownBytes(out, "OnOpen's out")  # (a copy: the handler may reuse it)
        if out and not conn.closed:
            conn.driverWrite(out)
        if action:
            conn.driverApply(action)

    def prepareConn(self, conn: Conn) -> None:
        """
        Hook run on a new L{Conn} before it is counted and before C{OnOpen}:
        nothing here; L{gnetcompat.client} pre-sets the contexts and socket
        options of dialled and adopted connections.
        """

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        conn.driverFeed(data)
        conn.driverTraffic()

    def connectionLost(self, reason: Any = None) -> None:
        call, self._handshake = self._handshake, None
        if call is not None and call.active():
            call.cancel()
        conn = self.conn
        self.engine.transportGone(self)
        if conn is not None:
            conn.driverLost(reason)


class GnetFactory(Factory):
    """
    Builds a L{GnetProtocol} per connection for one engine.

    As the adapter of a bare handler (C{IProtocolFactory(handler)}), it
    owns a listener-less engine: C{OnBoot} runs when the first port using it
    starts, C{OnShutdown} when the last one stops.
    """

    noisy = False

    def __init__(
        self, engine: ProtocolOwner, network: str | None = "tcp", ownsEngine: bool = False
    ) -> None:
        self.engine = engine
        self.network = network
        self._ownsEngine = ownsEngine

    def buildProtocol(self, addr: Any) -> GnetProtocol | None:
        eng = self.engine
        if eng.stopping:
            return None
        p = GnetProtocol(eng, self.network)
        p.factory = self
        return p

    def startFactory(self) -> None:
        if self._ownsEngine:
            self.engine.startAdapted()

    def stopFactory(self) -> None:
        if self._ownsEngine:
            self.engine.stopAdapted()


class GnetDatagramProtocol(DatagramProtocol):
    """A UDP listener: one throwaway L{UDPConn} and one C{OnTraffic} per datagram."""

    log = Logger()
    noisy = False
    #: an ErrShortBuffer escaping OnTraffic was logged once already
    _shortLogged = False

    def __init__(self, engine: ProtocolOwner) -> None:
        self.engine = engine

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        eng = self.engine
        if eng.stopping:
            return
        conn = UDPConn(eng, self.transport, data, addr)
        try:
            result = eng.handler.OnTraffic(conn)
        except ErrShortBuffer:
            # a datagram shorter than the handler expects: dropped, as Go's
            # "if err != nil { return gnet.None }" drops it (one debug line)
            if not self._shortLogged:
                self._shortLogged = True
                eng.log.debug(
                    "OnTraffic stopped at a short buffer in a datagram from {addr}: dropped",
                    addr=addr,
                )
            result = None
        except Exception:
            eng.log.failure("OnTraffic raised for a datagram from {addr}", addr=addr)
            return
        conn.closed = True
        if result and eng.results.action("OnTraffic", result) == Action.SHUTDOWN:
            eng.requestShutdown(fromLoop=True)
