# -*- test-case-name: tests.test_wsproto,tests.test_wsecho -*-
"""
The WebSocket session: one object per connection, driving Autobahn.

L{WebSocketSession} lets any byte-stream connection speak WebSocket the way
gobwas/ws lets a gnet handler do it: the caller pushes inbound bytes with
L{WebSocketSession.feed}, gets back the complete data messages, and writes
server messages with L{WebSocketSession.sendMessage}.  Autobahn does all of the
protocol work (opening handshake, framing, masking, fragmentation, UTF-8
validation, ping/pong, the closing handshake and permessage-deflate) in the
session's protocol (L{gnetcompat.websocket._autobahncompat.SessionProtocol});
the session itself is the transport that protocol writes to, so the output
goes from Autobahn through the session straight to the byte stream.
L{WebSocketConn} is the session over a gnet C{Conn} (its context), whose
stream it reaches through the typed L{ConnDriver<gnetcompat._conn.ConnDriver>}.

Echoes before the close
=======================

A caller that feeds a whole read and only then writes the replies to the
messages it got back would, with plain Autobahn, put the close frame of a
protocol violation (or the reply to the peer's Close) on the wire I{before}
those replies, and Autobahn refuses to send anything once the connection has
left the OPEN state.  The session therefore I{holds back} everything Autobahn
emits once the connection leaves the OPEN state inside a L{feed} call that has
already decoded messages: the close frame, and the closing of the byte stream
(C{loseConnection}/C{abortConnection}).  While output is held:

  - L{WebSocketSession.pendingFailure} is C{(code, reason)}, the close that
    is waiting (C{code} is the close code the session sends);
  - L{WebSocketSession.sendMessage} still works, so the messages returned by
    that L{feed} can be answered: their frames go to the stream straight
    away, ahead of the held close;
  - L{WebSocketSession.flushFailure} releases the held output in its original
    order.  The caller invokes it after writing its replies.  If it forgets,
    the next call into the session other than C{sendMessage} (L{feed},
    L{close}, L{connectionLost}) flushes it first.

Messages decoded after the violation are never delivered, and Autobahn keeps
processing the rest of the read exactly as it does with C{failByDrop=False}
(its state moves to CLOSING at once), so nothing but the order of the output
changes.  A Close frame from the peer in the same read as data messages is
handled the same way (the data messages are returned and can be answered,
then the close reply and the end of the stream follow).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from autobahn.websocket.types import ConnectionRequest
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .._conn import ConnDriver
from .._engine import globalReactor
from ._autobahncompat import STATE_CLOSED, STATE_OPEN, SessionProtocol, factoryFor
from ._options import OPCODE_BINARY, OPCODE_TEXT, Message, WebSocketOptions

__all__ = ["Sink", "WebSocketConn", "WebSocketSession"]

# Close codes an endpoint may put in a Close frame it sends (RFC 6455 7.4).
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


class Sink(Protocol):
    """
    What a L{WebSocketSession} writes to: the byte stream under it.
    """

    def write(self, data: bytes) -> None:
        """
        Write bytes to the stream.
        """

    def writeSequence(self, data: list[bytes]) -> None:
        """
        Write several byte strings to the stream.
        """

    def loseConnection(self) -> None:
        """
        Close the stream once what was written has been sent.
        """

    def abortConnection(self) -> None:
        """
        Close the stream at once, discarding unsent data.
        """


@implementer(ITransport)
class WebSocketSession:
    """
    One server-side WebSocket connection over any byte stream.

    The session is also the transport its Autobahn protocol writes to (the
    C{ITransport} methods below, for Autobahn only): what Autobahn writes
    goes to the stream, or is held back (see the module docstring).

    @ivar disconnecting: set once the session closed (or aborted) the stream.
    """

    __slots__ = (
        "_proto",
        "_sink",
        "_peer",
        "_host",
        "_held",
        "_pendingFailure",
        "_bypass",
        "_feeding",
        "_lost",
        "disconnecting",
    )

    log = Logger()

    def __init__(
        self,
        sink: Sink,
        options: WebSocketOptions | None = None,
        peer: IAddress | None = None,
        host: IAddress | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        Start a session: the opening handshake timer runs from now.

        @param sink: where the session writes: an object with C{write},
            C{writeSequence}, C{loseConnection} and C{abortConnection}.
        @param options: the settings; L{WebSocketOptions}() when C{None}.
            They are validated here and read once (later changes have no
            effect on this session).
        @param peer: the remote address (an C{IAddress}), or C{None}.
        @param host: the local address (an C{IAddress}), or C{None}.
        @param reactor: the C{IReactorTime} for the session's timers; the
            global reactor when C{None}.
        @raise ValueError: when an option is invalid.
        """
        self._sink = sink
        self._peer = peer
        self._host = host
        self._start(options, reactor)

    def _start(self, options: WebSocketOptions | None, reactor: IReactorTime | None) -> None:
        """
        Build the Autobahn protocol for C{options} and start it on this
        session (the opening handshake timer starts).
        """
        self._held: list[tuple[Callable[..., None], tuple[Any, ...]]] | None = None
        self._pendingFailure: tuple[int | None, str] | None = None
        self._bypass = False
        self._feeding = False
        self._lost = False
        self.disconnecting = False
        factory = factoryFor(
            options if options is not None else WebSocketOptions(),
            reactor if reactor is not None else globalReactor(),
        )
        # factoryFor's protocol class is a configured SessionProtocol
        self._proto = cast(SessionProtocol, factory.buildProtocol(None))
        self._proto.attach(self)

    # -- state ---------------------------------------------------------------

    @property
    def upgraded(self) -> bool:
        """
        C{True} once the 101 Switching Protocols response was sent.
        """
        return self._proto.upgraded

    @property
    def request(self) -> ConnectionRequest | None:
        """
        Autobahn's C{ConnectionRequest} (path, headers, ...) once the opening
        handshake was accepted, else C{None} (and C{None} again after the
        handshake with C{keepRequest=False}).
        """
        return self._proto.request

    @property
    def handshakeFailed(self) -> bool:
        """
        C{True} once the opening handshake was refused with an HTTP error.
        """
        return self._proto.handshakeFailed

    @property
    def protocolError(self) -> int | None:
        """
        The close code of the first protocol error (1002, 1007, 1009) the
        session failed the connection with, else C{None}.
        """
        return self._proto.protocolError

    @property
    def closeCode(self) -> int | None:
        """
        The close code of the closing handshake: the code of the side that
        started it (ours or the peer's), or C{None} when no Close frame was
        sent or received (the stream was dropped, or never upgraded).
        """
        return self._proto.closeCode

    @property
    def closed(self) -> bool:
        """
        C{True} once the connection is over for Autobahn (the closing
        handshake is done, the connection was failed or dropped, or the
        stream was lost) and no held output is left to flush.
        """
        return self._lost or (self._proto.state == STATE_CLOSED and self._held is None)

    @property
    def pendingFailure(self) -> tuple[int | None, str] | None:
        """
        The close held back behind the replies to the last L{feed}'s messages.

        C{(code, reason)}: C{code} is the close code of the Close frame the
        session sends (1002 protocol error, 1007 invalid payload, 1009 too
        big, 1000 in reply to the peer's Close...), or C{None} when the
        stream is dropped without one.  C{None} when nothing is held.  Call
        L{flushFailure} after writing the replies.
        """
        if self._held is None:
            return None
        return self._pendingFailure

    @property
    def holding(self) -> bool:
        """
        C{True} while output is held back behind the replies to the last
        L{feed}'s messages (a close waits: see L{pendingFailure}); the caller
        writes its replies, then calls L{flushFailure}.
        """
        return self._held is not None

    @property
    def busy(self) -> bool:
        """
        C{True} while a compressed message is being inflated in steps (at
        most C{INFLATE_STEP} bytes per L{feed}): the session holds input it
        has not processed yet.  Call L{feed} again (with C{b""} when nothing
        new was read) after letting the reactor run, and stop reading from
        the stream meanwhile.
        """
        return bool(self._proto.suspended)

    # -- the caller's API ----------------------------------------------------

    def feed(self, data: bytes) -> list[Message]:
        """
        Push inbound bytes; return the data messages they completed.

        Handshake responses, pongs and Close frames are written to the sink
        by Autobahn.  If the connection leaves the OPEN state during this
        call after messages were decoded, the resulting output is held (see
        L{pendingFailure}); reply to the returned messages with
        L{sendMessage}, then call L{flushFailure}.

        @param data: bytes read from the stream (any split is fine).
        @return: the complete messages, in order, decoded before any
            protocol violation or Close frame in C{data}.
        """
        if self._held is not None:
            self.flushFailure()
        proto = self._proto
        if self._lost or not (data or proto.suspended):
            return []
        self._feeding = True
        try:
            if proto.suspended:
                proto.resumeInput(data)
            else:
                proto.receive(data)
            # the partly received frame or message, against the budget and
            # the message timeout (a completed message restarts the latter)
            pool = proto.partials
            if proto.hasPartialInput or proto in pool.holders:
                pool.update(proto, bool(proto.inbox))
        finally:
            self._feeding = False
        messages = proto.inbox
        if not messages:
            return []  # a new list: the caller may keep and extend it
        proto.inbox = []
        return messages

    def sendMessage(self, opcode: int, payload: bytes) -> None:
        """
        Send one message to the peer (compressed when negotiated).

        Allowed while the connection is open, and while a close is held back
        (those messages go out before it).  Otherwise the message is dropped
        (the connection is closing).

        @param opcode: L{OPCODE_TEXT} or L{OPCODE_BINARY}.
        @param payload: the message; UTF-8 for text.
        @raise ValueError: for another opcode.
        """
        if opcode == OPCODE_TEXT:
            isBinary = False
        elif opcode == OPCODE_BINARY:
            isBinary = True
        else:
            raise ValueError(f"opcode must be 1 (text) or 2 (binary), not {opcode!r}")
        proto = self._proto
        # larger than maxCompressSize: sent uncompressed
        plain = 0 < proto.maxCompressSize < len(payload)
        if self._held is not None:
            self._bypass = True
            try:
                proto.sendMessageWhileClosing(payload, isBinary, plain)
            finally:
                self._bypass = False
        elif proto.state == STATE_OPEN and not self._lost:
            proto.sendMessage(payload, isBinary, doNotCompress=plain)
        else:
            self.log.debug("dropping a message sent on a closing WebSocket")

    def flushFailure(self) -> None:
        """
        Release the output held back by the last L{feed}, in order.

        Does nothing when nothing is held.
        """
        held = self._held
        if held is None:
            return
        self._held = None
        self._pendingFailure = None
        for how, args in held:
            how(*args)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Start a closing handshake (e.g. 1001 when the server shuts down).

        Before the handshake is complete the stream is simply closed.

        @param code: a close code an endpoint may send: 1000-1003, 1007-1011
            or 3000-4999.
        @param reason: a short reason (truncated to 123 UTF-8 bytes).
        @raise ValueError: for a code that may not be sent.
        """
        if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
            raise ValueError(f"close code {code!r} may not be sent")
        self.flushFailure()
        proto = self._proto
        if self._lost or proto.state == STATE_CLOSED:
            return
        proto.startClose(code, reason)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The byte stream is gone: tell Autobahn and cancel every timer.

        Held output is discarded.  Calling it again does nothing.

        @param reason: why, as a C{twisted.python.failure.Failure}; a clean
            close when C{None}.
        """
        if self._lost:
            return
        self._lost = True
        self._held = None
        self._pendingFailure = None
        proto = self._proto
        proto.partials.forget(proto)
        proto.lose(reason if reason is not None else Failure(ConnectionDone()))

    # -- the transport of the Autobahn protocol --------------------------------

    def holdOutput(self, code: int | None, reason: str) -> None:
        """
        For the Autobahn protocol: the connection leaves the OPEN state with
        messages decoded by the running L{feed}; hold what it emits from now
        on behind their replies (L{pendingFailure} is then C{(code, reason)}).
        Outside a feed, or when already holding, nothing changes.
        """
        if self._held is None and self._feeding:
            self._held = []
            self._pendingFailure = (code, reason)

    def write(self, data: bytes) -> None:
        """
        For the Autobahn protocol: write C{data} to the stream, or hold it.
        """
        held = self._held
        if held is None or self._bypass:
            self._sink.write(data)
        else:
            held.append((self.write, (data,)))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        For the Autobahn protocol: write each of C{data} (see L{write}).
        """
        data = data if isinstance(data, list) else list(data)
        held = self._held
        if held is None or self._bypass:
            self._sink.writeSequence(data)
        else:
            held.append((self.writeSequence, (data,)))

    def loseConnection(self) -> None:
        """
        For the Autobahn protocol: close the stream once written data is
        sent (or hold the close).
        """
        if self._held is None:
            self._loseNow()
        else:
            self._held.append((self._loseNow, ()))

    def abortConnection(self) -> None:
        """
        For the Autobahn protocol: close the stream at once (or hold it).
        """
        if self._held is None:
            self._abortNow()
        else:
            self._held.append((self._abortNow, ()))

    def _loseNow(self) -> None:
        self.disconnecting = True
        self._sink.loseConnection()

    def _abortNow(self) -> None:
        self.disconnecting = True
        self._sink.abortConnection()

    # ITransport promises an address; a session fed without one has none
    def getPeer(self) -> IAddress | None:  # type: ignore[override]
        """
        @return: the peer address given to the session.
        """
        return self._peer

    def getHost(self) -> IAddress | None:  # type: ignore[override]  # as getPeer
        """
        @return: the local address given to the session.
        """
        return self._host

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """
        Ignored: the stream's owner handles flow control.
        """

    def unregisterProducer(self) -> None:
        """
        Ignored: the stream's owner handles flow control.
        """

    def setTcpNoDelay(self, enabled: bool) -> None:
        """
        Ignored: socket options belong to the stream's owner.
        """


class WebSocketConn(WebSocketSession):
    """
    The WebSocket session of one gnet Conn (keep it as the Conn's Context).

    Its stream is the Conn, through the driver methods a protocol layer on
    a Conn uses (L{ConnDriver<gnetcompat._conn.ConnDriver>}): what Autobahn
    writes goes from the session straight to C{Conn.driverWrite}.

    @ivar conn: the gnet Conn.
    """

    __slots__ = ("conn", "_readPaused")

    def __init__(
        self,
        conn: ConnDriver,
        options: WebSocketOptions | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param conn: the gnet Conn, in its C{OnOpen}.
        @param options: limits, timeouts, compression; safe defaults when C{None}.
        @param reactor: the clock for the session's timers (the engine's reactor by default).
        """
        self.conn = conn
        self._readPaused = False
        self._start(options, reactor or conn.driverClock)

    @property
    def session(self) -> WebSocketSession:
        """
        The session: this object (a L{WebSocketConn} is the session of its Conn).
        """
        return self

    def ReadClientData(self) -> list[Message]:
        """
        Drain the Conn's inbound bytes into the session (the upgrade happens
        on the first traffic) and return the complete client messages.

        If a violation or a Close frame followed those messages in the same
        read, the close waits until they were answered: it is sent by
        L{Flush}, or on the next call (a C{Wake} is queued for that).

        A compressed message is inflated in bounded steps: while the session
        is L{busy<WebSocketSession.busy>}, reading from
        the connection is paused and a C{Wake} brings the next step, after
        the reactor served the other connections and, when more than
        C{WriteBufferCap} bytes of replies wait, after the peer took them.
        """
        conn = self.conn
        msgs = self.feed(conn.Next(-1))
        if self._proto.suspended:
            # the next step after the reactor served the others, and after
            # the peer took our replies when they are over WriteBufferCap
            # (an echo of inflated input must not queue without bound)
            conn.driverWhenDrained(conn.Wake)
            if not self._readPaused:
                self._readPaused = True
                conn.driverPauseReading()
        elif self._readPaused:
            self._readPaused = False
            conn.driverResumeReading()
        if msgs and self._held is not None:  # a close waits behind these messages
            conn.Wake()
        return msgs

    #: C{WriteServerMessage(opcode, payload)}: send a message with this
    #: opcode (1 text, 2 binary) to the client: L{sendMessage} itself (the
    #: per-message path gets no extra call)
    WriteServerMessage = WebSocketSession.sendMessage

    def Flush(self) -> None:
        """Send a close held back behind the replies of the last read now."""
        self.flushFailure()

    def Close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (1001 when the server goes away)."""
        self.close(code, reason)

    def ConnectionLost(self, err: BaseException | None = None) -> None:
        """Tell the session the Conn closed (call from C{OnClose}); stops its timers."""
        self.connectionLost(Failure(err) if err is not None else None)

    # -- the transport of the Autobahn protocol: the Conn ------------------------

    def write(self, data: bytes) -> None:
        """
        For the Autobahn protocol: write C{data} to the Conn (the send path:
        one call from Autobahn to C{Conn.driverWrite}), or hold it.
        """
        if self._held is None or self._bypass:
            conn = self.conn
            if not conn.closed:
                conn.driverWrite(data)
        else:
            WebSocketSession.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        For the Autobahn protocol: write each of C{data} to the Conn, or
        hold them.
        """
        if self._held is None or self._bypass:
            conn = self.conn
            if not conn.closed:
                conn.driverWriteSequence(data)
        else:
            WebSocketSession.writeSequence(self, data)

    def _loseNow(self) -> None:
        self.disconnecting = True
        conn = self.conn
        if not conn.closed and not conn.driverEngineStopped:
            conn.Close()

    def _abortNow(self) -> None:
        self.disconnecting = True
        self.conn.driverAbort()

    def getPeer(self) -> IAddress:
        """
        @return: the Conn's peer address.
        """
        return self.conn.driverTransport.getPeer()

    def getHost(self) -> IAddress:
        """
        @return: the Conn's local address.
        """
        return self.conn.driverTransport.getHost()
