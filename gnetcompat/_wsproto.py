# -*- test-case-name: tests.test_wsproto -*-
"""
A transport-independent WebSocket server session driven by Autobahn.

L{WebSocketSession} lets any byte-stream connection speak WebSocket the way
gobwas/ws lets a gnet handler do it: the caller pushes inbound bytes with
L{WebSocketSession.feed}, gets back the complete data messages, and writes
server messages with L{WebSocketSession.sendMessage}.  Autobahn does all of the
protocol work (opening handshake, framing, masking, fragmentation, UTF-8
validation, ping/pong, the closing handshake and permessage-deflate); nothing
here parses or builds a frame by hand.

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
    that L{feed} can be answered: their frames go to the sink straight away,
    ahead of the held close;
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

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, cast
from urllib import parse
from weakref import WeakKeyDictionary

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.util import encode_truncate
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._autobahncompat import (
    INFLATE_STEP,
    AutobahnServerProtocol,
    configuredProtocol,
    useReactorTimer,
)
from ._origin import OriginPolicy
from ._text import printable

__all__ = [
    "Sink",
    "Message",
    "WebSocketOptions",
    "WebSocketSession",
    "OPCODE_TEXT",
    "OPCODE_BINARY",
    "STATUS_PAGE_HEADERS",
    "INFLATE_STEP",
]

#: Opcode of a text message (RFC 6455 section 5.2).
OPCODE_TEXT = 1
#: Opcode of a binary message (RFC 6455 section 5.2).
OPCODE_BINARY = 2

_STATE_OPEN = WebSocketProtocol.STATE_OPEN
_STATE_CLOSED = WebSocketProtocol.STATE_CLOSED
_STATE_CONNECTING = WebSocketProtocol.STATE_CONNECTING

#: Response headers of the status page (and its 404s): nothing but the page
#: itself loads, no MIME sniffing, no framing (clickjacking), no referrer.
STATUS_PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

#: an HTTP request line: a method token, a visible-ASCII target, HTTP/d.d
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")

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


@dataclasses.dataclass
class WebSocketOptions:
    """
    Settings of a WebSocket server session, with safe defaults.

    Sizes are in bytes and times in seconds; 0 switches a limit or timer off.

    @ivar maxMessagePayloadSize: largest message accepted (after
        decompression); a bigger one closes the connection with 1009.
    @ivar maxFramePayloadSize: largest frame payload accepted (close 1009).
    @ivar maxRequestHeaderSize: largest HTTP request header block of the
        opening handshake; a longer request is answered with HTTP 431 and the
        connection is closed before more is buffered.
    @ivar openHandshakeTimeout: time allowed from the start of the session to
        a completed opening handshake.
    @ivar closeHandshakeTimeout: time the peer has to answer our Close frame
        before the connection is dropped.
    @ivar autoPingInterval: send a ping once nothing was received from the
        peer for this many seconds (0: off); a connection with traffic is
        never pinged.  With C{autoPingTimeout} it drops peers that went
        silent (a live but quiet client answers pings and stays).
    @ivar autoPingTimeout: drop the connection when nothing (the pong or
        anything else) is received in this time after a ping (0: never);
        needs C{autoPingInterval}.
    @ivar messageTimeout: time a frame or message may stay partly received:
        from the first byte after the last complete message until the next
        message is complete.  A connection that stalls part-way through a
        frame header, a frame or a fragmented message longer than this is
        failed with close code 1008 (policy violation) and dropped if it does
        not answer the Close (0: no limit).  Checked once a second.
    @ivar partialMessageBudget: bytes that all the sessions of one reactor
        (one worker process) may hold together in partly received messages
        (after decompression) and unprocessed input.  When a session's data
        would go beyond it, the session that has held partly received data
        the longest (since its last complete message) is failed with close
        code 1013 (try again later) and its buffers freed, then the next
        oldest while still over: holding costs nothing but the bytes sent
        once, so the budget goes to messages in progress rather than to
        the first to fill it, and a newcomer is refused only when it is
        itself the oldest holder.  At least C{maxMessagePayloadSize} (0: no
        limit).
    @ivar autoPingSize: size of an automatic ping payload, 12 to 125.
    @ivar allowedOrigins: the origins that may connect, as a browser sends
        them (C{scheme://host[:port]}, default ports implied; C{*.} at the
        start of the host for one or more subdomain labels, C{:*} for any
        port; L{gnetcompat._origin}); C{["*"]} allows every origin but
        C{null}.  A refused handshake gets HTTP 403.  Requests without an
        C{Origin} header (non-browser clients) are not checked.
    @ivar allowNullOrigin: allow the C{null} origin (sandboxed iframes,
        C{file:} pages); off by default.
    @ivar compression: accept permessage-deflate (RFC 7692) offers.
    @ivar maxCompressSize: with permessage-deflate, messages larger than
        this many bytes (default 1 MiB) are sent uncompressed (RFC 7692 lets a
        sender choose per message); C{0}: compress every message.
        Compressing a large message is one blocking call (a 15 MiB echo:
        tens to hundreds of milliseconds) during which every other
        connection of the process waits.  An uncompressed reply queues its
        full size; L{gnetcompat.websocket.WebSocketConn} keeps that bounded
        by inflating the next step of a compressed message only once the
        replies waiting for the peer are under C{WriteBufferCap}.
    @ivar autoFragmentSize: fragment sent messages into frames of at most this
        many bytes (0: one frame per message).
    @ivar webStatus: answer a plain HTTP GET with a status page (the
        session's C{statusPage}, else Autobahn's) instead of HTTP 426.
    @ivar server: value of the C{Server} header of the handshake response, or
        C{None} for no header.
    @ivar keepRequest: keep Autobahn's C{ConnectionRequest} (path, headers,
        ...) as the session's C{request} for the connection's whole life;
        C{False} lets it go once the opening handshake is done (about 1 KiB
        per connection for a browser's headers), for services such as the
        echo server that never read it.
    """

    maxMessagePayloadSize: int = 16 * 1024 * 1024
    maxFramePayloadSize: int = 16 * 1024 * 1024
    maxRequestHeaderSize: int = 16 * 1024
    openHandshakeTimeout: float = 5.0
    closeHandshakeTimeout: float = 1.0
    autoPingInterval: float = 20.0
    autoPingTimeout: float = 20.0
    messageTimeout: float = 60.0
    partialMessageBudget: int = 64 * 1024 * 1024
    autoPingSize: int = 12
    allowedOrigins: list[str] = dataclasses.field(default_factory=lambda: ["*"])
    allowNullOrigin: bool = False
    compression: bool = True
    maxCompressSize: int = 1024 * 1024
    autoFragmentSize: int = 0
    webStatus: bool = False
    server: str | None = "gnetcompat"
    keepRequest: bool = True

    def validate(self) -> None:
        """
        Check every setting.

        @raise ValueError: naming the first invalid option.
        """
        for name in (
            "maxMessagePayloadSize",
            "maxFramePayloadSize",
            "maxRequestHeaderSize",
            "autoFragmentSize",
            "autoPingSize",
            "partialMessageBudget",
            "maxCompressSize",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        for name in (
            "openHandshakeTimeout",
            "closeHandshakeTimeout",
            "autoPingInterval",
            "autoPingTimeout",
            "messageTimeout",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value < float("inf")
            ):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not 12 <= self.autoPingSize <= 125:
            raise ValueError(f"autoPingSize must be between 12 and 125, not {self.autoPingSize!r}")
        if self.autoPingTimeout and not self.autoPingInterval:
            raise ValueError("autoPingTimeout needs autoPingInterval > 0")
        budget, biggest = self.partialMessageBudget, self.maxMessagePayloadSize
        if budget and (not biggest or budget < biggest):
            raise ValueError(
                f"partialMessageBudget ({budget}) must be 0 or at least "
                f"maxMessagePayloadSize ({biggest or 'unlimited'})"
            )
        if (
            isinstance(self.allowedOrigins, (str, bytes))
            or not isinstance(self.allowedOrigins, Sequence)
            or not all(isinstance(o, str) for o in self.allowedOrigins)
        ):
            raise ValueError(f"allowedOrigins must be a list of str, not {self.allowedOrigins!r}")
        try:
            OriginPolicy(self.allowedOrigins)
        except ValueError as e:
            raise ValueError(f"allowedOrigins: {e}") from None
        for name in ("allowNullOrigin", "compression", "webStatus", "keepRequest"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool")
        server = self.server
        if server is not None and (not isinstance(server, str) or "\r" in server or "\n" in server):
            raise ValueError(f"server must be a one-line str or None, not {server!r}")

    def _key(self) -> tuple[Any, ...]:
        """
        A hashable snapshot of the settings, to share Autobahn factories:
        equal only for settings of the same types (C{True} is not C{1}), so
        options equal to validated ones are valid too.
        """
        return tuple(
            (v.__class__, tuple(v) if v.__class__ is list else v) for v in vars(self).values()
        )


class Message(NamedTuple):
    """
    A complete data message received from the peer.

    @ivar opcode: L{OPCODE_TEXT} (1) or L{OPCODE_BINARY} (2).
    @ivar payload: the message, decompressed; UTF-8 for text messages.
    """

    opcode: int
    payload: bytes


def _acceptDeflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """
    Accept the first permessage-deflate offer, with the client's parameters.
    """
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class _PartialMessages:
    """
    The sessions of one reactor (one worker) holding partly received data:
    the bytes they hold together, and the deadlines of
    L{WebSocketOptions.messageTimeout} checked by a sweep once a second
    while any session is tracked.

    @ivar held: bytes held by all tracked sessions.
    @ivar deadlines: tracked session -> time its partial data expires.
    @ivar holders: the tracked sessions, the one holding partial data the
        longest first (a session moves to the end when a message completes
        and it still holds the start of the next): who pays first when the
        budget is exceeded.
    """

    SWEEP_INTERVAL = 1.0

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.held = 0
        self.deadlines: dict[WebSocketSession, float] = {}
        self.holders: dict[WebSocketSession, None] = {}
        self._call: Any = None

    def holding(self, session: WebSocketSession) -> None:
        """
        C{session} starts holding a partly received message: it is the
        youngest holder.
        """
        self.holders.pop(session, None)
        self.holders[session] = None

    def arm(self) -> None:
        """
        Make sure a sweep is scheduled.
        """
        if self._call is None:
            self._call = self.clock.callLater(self.SWEEP_INTERVAL, self._sweep)

    def untrack(self, session: WebSocketSession) -> None:
        """
        Forget C{session}'s deadline; no sweep stays scheduled for nobody.
        """
        self.holders.pop(session, None)
        self.deadlines.pop(session, None)
        if not self.deadlines and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _sweep(self) -> None:
        self._call = None
        now = self.clock.seconds()
        for session, deadline in list(self.deadlines.items()):
            if deadline <= now:
                session._expire()  # noqa: SLF001  (one unit: session, protocol, transport)
        if self.deadlines:
            self.arm()


_partials: WeakKeyDictionary[Any, _PartialMessages] = WeakKeyDictionary()


def _partialsFor(reactor: Any) -> _PartialMessages:
    """
    The L{_PartialMessages} of C{reactor}, created on first use.
    """
    pool = _partials.get(reactor)
    if pool is None:
        pool = _partials[reactor] = _PartialMessages(reactor)
    return pool


# Autobahn factories shared by sessions with equal options on one reactor.
_factories: WeakKeyDictionary[Any, dict[tuple[Any, ...], WebSocketServerFactory]] = (
    WeakKeyDictionary()
)


def _factoryFor(options: WebSocketOptions, reactor: Any) -> WebSocketServerFactory:
    """
    Get (or build and remember) the Autobahn server factory for C{options}.
    Options are validated when no factory exists for settings equal to
    theirs (of the same types), not on every connection.

    @param options: the settings.
    @param reactor: the reactor whose clock the timers use.
    @raise ValueError: when an option is invalid.
    """
    perReactor = _factories.setdefault(reactor, {})
    try:
        key = options._key()  # noqa: SLF001  (one unit: session, protocol, transport)
        factory = perReactor.get(key)
    except TypeError:  # an unhashable value: invalid, validate says which
        factory = None
    if factory is None:
        options.validate()
        key = options._key()  # noqa: SLF001  (one unit: session, protocol, transport)
        factory = WebSocketServerFactory(server=options.server, reactor=reactor)
        useReactorTimer(factory, reactor)
        factory.setProtocolOptions(
            webStatus=options.webStatus,
            maxFramePayloadSize=options.maxFramePayloadSize,
            maxMessagePayloadSize=options.maxMessagePayloadSize,
            autoFragmentSize=options.autoFragmentSize,
            failByDrop=False,
            openHandshakeTimeout=options.openHandshakeTimeout,
            closeHandshakeTimeout=options.closeHandshakeTimeout,
            perMessageCompressionAccept=(
                _acceptDeflate if options.compression else (lambda offers: None)
            ),
            autoPingInterval=options.autoPingInterval,
            autoPingTimeout=options.autoPingTimeout,
            autoPingSize=options.autoPingSize,
            # origins are checked by L{_SessionProtocol.onConnect} (Autobahn's
            # regular expressions refuse the origins they list, see _origin)
            allowedOrigins=["*"],
            allowNullOrigin=True,
        )
        policy = OriginPolicy(options.allowedOrigins, options.allowNullOrigin)
        factory.protocol = configuredProtocol(
            _SessionProtocol,
            factory,
            originPolicy=None if policy.allowsEverything else policy,
            partials=_partialsFor(reactor),
            budget=options.partialMessageBudget,
            messageTimeout=options.messageTimeout,
        )
        perReactor[key] = factory
    return factory


@implementer(ITransport)
class _SinkTransport:
    """
    The transport Autobahn writes to: the session's sink, plus holding.

    While the session holds output (see the module docstring), writes and
    connection closing are queued instead of reaching the sink.
    """

    disconnecting = False

    def __init__(
        self,
        session: WebSocketSession,
        sink: Sink,
        peer: IAddress | None,
        host: IAddress | None,
    ) -> None:
        self._session = session
        self._sink = sink
        self._peer = peer
        self._host = host

    def write(self, data: bytes) -> None:
        """
        Write C{data} to the sink, or queue it while output is held.
        """
        held = self._session._held  # noqa: SLF001  (one unit: session, protocol, transport)
        if held is None or self._session._bypass:  # noqa: SLF001  (one unit: session, protocol, transport)
            self._sink.write(data)
        else:
            held.append((self._sink.write, data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Write each of C{data} (see L{write}).
        """
        held = self._session._held  # noqa: SLF001  (one unit: session, protocol, transport)
        if held is None or self._session._bypass:  # noqa: SLF001  (one unit: session, protocol, transport)
            self._sink.writeSequence(data if isinstance(data, list) else list(data))
        else:
            held.append((self._sink.writeSequence, list(data)))

    def loseConnection(self) -> None:
        """
        Close the sink once written data is sent (queued while held).
        """
        self._close(self._sink.loseConnection)

    def abortConnection(self) -> None:
        """
        Close the sink at once (queued while held).
        """
        self._close(self._sink.abortConnection)

    def _close(self, how: Callable[[], None]) -> None:
        held = self._session._held  # noqa: SLF001  (one unit: session, protocol, transport)
        if held is None:
            self.disconnecting = True
            how()
        else:
            held.append((self._closeNow, how))

    def _closeNow(self, how: Callable[[], None]) -> None:
        self.disconnecting = True
        how()

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
        Ignored: the sink's owner handles flow control.
        """

    def unregisterProducer(self) -> None:
        """
        Ignored: the sink's owner handles flow control.
        """

    def setTcpNoDelay(self, enabled: bool) -> None:
        """
        Ignored: socket options belong to the sink's owner.
        """


class _SessionProtocol(AutobahnServerProtocol):
    """
    Autobahn's server protocol, reporting to a L{WebSocketSession}.

    The overrides of Autobahn internals are in its base,
    L{gnetcompat._autobahncompat.AutobahnServerProtocol}; here are the
    overrides of Autobahn's public protocol methods.
    """

    _session: WebSocketSession
    #: the allowed origins (L{_factoryFor}); C{None}: every origin
    originPolicy: OriginPolicy | None = None
    #: set per factory (L{_factoryFor}): the reactor's partial messages, and
    #: the C{partialMessageBudget} and C{messageTimeout} options
    partials: _PartialMessages
    budget = 0
    messageTimeout = 0.0
    #: the C{webStatus} option, set per factory (L{_factoryFor})
    webStatus: bool

    def onConnect(self, request: ConnectionRequest) -> None:
        """
        Accept a request that passed Autobahn's checks and comes from an
        allowed origin (else HTTP 403), no subprotocol.
        """
        policy = self.originPolicy
        if policy is not None and request.origin and not policy.allows(request.origin):
            raise ConnectionDeny(
                ConnectionDeny.FORBIDDEN, f"origin '{printable(request.origin, 100)}' not allowed"
            )
        self._session.request = request
        return None

    def onOpen(self) -> None:
        """
        The 101 response was sent.
        """
        session = self._session
        session._upgraded = True  # noqa: SLF001  (one unit: session, protocol, transport)
        if not session._keepRequest:  # noqa: SLF001  (one unit: session, protocol, transport)
            session.request = None
        self.compact()
        self.startSteppedInflation()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Collect a message for the running L{WebSocketSession.feed}.

        Messages that arrive once the connection left the OPEN state (after
        we started a closing handshake) cannot be answered and are dropped.
        """
        if self.state == _STATE_OPEN:
            self._session._inbox.append(  # noqa: SLF001  (one unit: session, protocol, transport)
                Message(OPCODE_BINARY if isBinary else OPCODE_TEXT, payload)
            )

    def sendCloseFrame(
        self,
        code: int | None = None,
        reasonUtf8: bytes | None = None,
        isReply: bool = False,
    ) -> None:
        """
        Send a Close frame, held back behind pending replies if needed.
        """
        if self.state == _STATE_OPEN and self._session._startHolding():  # noqa: SLF001  (one unit: session, protocol, transport)
            self._session._pendingFailure = (  # noqa: SLF001  (one unit: session, protocol, transport)
                code,
                reasonUtf8.decode("utf-8", "replace") if reasonUtf8 else "",
            )
        super().sendCloseFrame(code, reasonUtf8, isReply)

    def dropConnection(self, abort: bool = False) -> None:
        """
        Drop the byte stream, held back behind pending replies if needed.
        """
        if self.state != _STATE_CLOSED and self._session._startHolding():  # noqa: SLF001  (one unit: session, protocol, transport)
            self._session._pendingFailure = (None, self.wasNotCleanReason or "")  # noqa: SLF001  (one unit: session, protocol, transport)
        super().dropConnection(abort)

    def protocolFailed(self, code: int) -> None:
        """
        Note the first protocol error (1002, 1007, 1009) for metrics.
        """
        if self._session.protocolError is None:
            self._session.protocolError = code

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        """
        Note the failed opening handshake (for metrics), then fail it.
        Autobahn quotes the request in C{reason} and puts it in its (one,
        info) log line and in the response's status line: control bytes
        and non-ASCII are escaped there, and it is cut to 200 characters.
        The drop after the response is the end of a complete HTTP exchange,
        not a second (warning) log line.
        """
        self._session.handshakeFailed = True
        self.wasClean = True
        super().failHandshake(printable(str(reason)), code, responseHeaders)

    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        """
        A plain GET (no Upgrade): the session's status page when it has one.
        """
        session = self._session
        page = session.statusPage
        if page is None:
            super().sendServerStatus(redirectUrl, redirectAfter)
            return
        headers = "".join(f"{k}: {v}\r\n" for k, v in session.statusPageHeaders).encode("latin-1")
        if self.http_request_path != "/":
            self.sendData(
                b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n"
                + headers
                + b"\r\n"
            )
            self.wasClean = True
            return
        body = page().encode("utf-8")
        self.sendData(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            + headers
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        # a complete HTTP exchange: the drop that follows is not an error
        # (Autobahn would log a warning for every health check otherwise)
        self.wasClean = True

    def sendRedirect(self, url: str) -> None:
        """
        No open redirect (Autobahn's C{?redirect=}) when a status page is set.
        """
        if self._session.statusPage is None:
            super().sendRedirect(url)
        else:
            self.sendServerStatus()

    def processHandshake(self) -> None:
        """
        Bound the HTTP request header block, answer health checks, then
        hand the complete request to Autobahn (which, too, waits for the
        end of the header block; C{serveFlashSocketPolicy} is never on).
        """
        session = self._session
        data = self.data
        end = data.find(b"\r\n\r\n", max(0, session._scanned - 3))  # noqa: SLF001  (one unit: session, protocol, transport)
        limit = session._maxRequestHeaderSize  # noqa: SLF001  (one unit: session, protocol, transport)
        if end < 0:
            session._scanned = len(data)  # noqa: SLF001  (one unit: session, protocol, transport)
            if limit and len(data) >= limit:
                self._tooLarge()
            return
        if limit and end + 4 > limit:
            self._tooLarge()
            return
        if _REQUEST_LINE.fullmatch(data, 0, data.find(b"\r\n")) is None:
            # Autobahn would quote it, control bytes and all, or answer 505
            self.data = b""
            self.failHandshake("Bad Request: malformed request line")
            return
        if self.webStatus and session.statusPage is not None and self._plainGet(end):
            return
        try:
            super().processHandshake()
        except ValueError:
            # Autobahn's status page parses ?redirect=URL&after=N and raises
            # on a bad URL or number; nothing was answered yet
            # the transport is the session's _SinkTransport, not Optional
            if self.state != _STATE_CONNECTING or self.transport.disconnecting:  # type: ignore[union-attr]
                raise
            self.data = b""
            self.failHandshake("Bad Request: malformed query parameters")

    def _plainGet(self, end: int) -> bool:
        """
        Answer a complete plain C{GET} (no C{Upgrade} header) of HTTP/1.0
        or 1.1 with the status page (or a 404 for another path).  Autobahn
        refuses HTTP/1.0 and HTTP/1.1 without C{Host} (505, 400) before it
        looks for C{Upgrade}, and they are what load-balancer health checks
        send (HAProxy's C{option httpchk}); and its own handling of a plain
        GET parses C{?redirect=URL&after=N} (an open redirect, and a
        traceback for a malformed one): the status page does not redirect,
        and such a request gets HTTP 400, as does a malformed target.

        @param end: where the header block's closing blank line starts.
        """
        line, _, headers = self.data[:end].partition(b"\r\n")
        parts = line.split()
        if len(parts) != 3 or parts[0] != b"GET" or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
            return False
        names = {h.split(b":", 1)[0].strip().lower() for h in headers.split(b"\r\n")}
        if b"upgrade" in names:
            return False  # a WebSocket upgrade: Autobahn's
        self.data = b""
        try:
            target = parse.urlsplit(parts[1].decode("latin-1"))
            params = {k for k, _ in parse.parse_qsl(target.query, keep_blank_values=True)}
        except ValueError:  # e.g. GET http://[ HTTP/1.1
            self.failHandshake("Bad Request: malformed request target")
            return True
        if "redirect" in params or "after" in params:
            self.failHandshake("Bad Request: the status page does not redirect")
            return True
        self.http_request_path = target.path
        self.sendServerStatus()
        self.dropConnection(abort=False)
        return True

    def _tooLarge(self) -> None:
        self.data = b""
        self.failHandshake("Request Header Fields Too Large", 431)


class WebSocketSession:
    """
    One server-side WebSocket connection over any byte stream.

    @ivar request: Autobahn's C{ConnectionRequest} (path, headers, ...) once
        the opening handshake was accepted, else C{None} (and C{None} again
        after the handshake with C{keepRequest=False}).
    @ivar statusPage: with C{webStatus} on, a callable returning the HTML
        answered to a plain C{GET /} (other paths: 404); C{None} for
        Autobahn's own page.
    @ivar statusPageHeaders: the security headers sent with it (by default
        L{STATUS_PAGE_HEADERS}: a CSP allowing nothing but the page itself,
        no sniffing, no framing, no referrer); a page with inline script
        or style sets its own C{Content-Security-Policy} here.
    @ivar handshakeFailed: C{True} once the opening handshake was refused
        with an HTTP error.
    @ivar protocolError: the close code of the first protocol error (1002,
        1007, 1009) the session failed the connection with, else C{None}.
    """

    statusPage: Callable[[], str] | None = None
    statusPageHeaders: Sequence[tuple[str, str]] = STATUS_PAGE_HEADERS

    log = Logger()

    # partly received data (L{_track}); class defaults keep sessions small
    _tracked = False
    _heldBytes = 0

    def __init__(
        self,
        sink: Sink,
        options: WebSocketOptions | None = None,
        peer: IAddress | None = None,
        host: IAddress | None = None,
        reactor: Any = None,
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
        if options is None:
            options = WebSocketOptions()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.request: ConnectionRequest | None = None
        self._upgraded = False
        self._lost = False
        self._inbox: list[Message] = []
        self._feeding = False
        self._held: list[tuple[Callable[..., None], Any]] | None = None
        self._pendingFailure: tuple[int | None, str] | None = None
        self._bypass = False
        self._maxRequestHeaderSize = options.maxRequestHeaderSize
        self._keepRequest = options.keepRequest
        self._maxCompressSize = options.maxCompressSize
        self._scanned = 0
        self.handshakeFailed = False
        self.protocolError: int | None = None

        factory = _factoryFor(options, reactor)  # validates new options
        # _factoryFor's protocol class is a _SessionProtocol (configuredProtocol)
        proto = cast(_SessionProtocol, factory.buildProtocol(None))
        proto._session = self  # noqa: SLF001  (one unit: session, protocol, transport)
        self._proto = proto
        proto.attach(_SinkTransport(self, sink, peer, host))

    @property
    def upgraded(self) -> bool:
        """
        C{True} once the 101 Switching Protocols response was sent.
        """
        return self._upgraded

    @property
    def closeCode(self) -> int | None:
        """
        The close code of the closing handshake: the code of the side that
        started it (ours or the peer's), or C{None} when no Close frame was
        sent or received (the stream was dropped, or never upgraded).
        """
        proto = self._proto
        local, remote = proto.localCloseCode, proto.remoteCloseCode
        if getattr(proto, "closedByMe", False):
            return local if local is not None else remote
        return remote if remote is not None else local

    @property
    def closed(self) -> bool:
        """
        C{True} once the connection is over for Autobahn (the closing
        handshake is done, the connection was failed or dropped, or the
        stream was lost) and no held output is left to flush.
        """
        return self._lost or (self._proto.state == _STATE_CLOSED and self._held is None)

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
        proto.startFeed()
        self._feeding = True
        try:
            if proto.suspended:
                proto.resumeInput(data)
            else:
                proto.receive(data)
            if self._tracked or proto.hasPartialInput:
                self._track()
        finally:
            self._feeding = False
        messages = self._inbox
        if not messages:
            return []  # a new list: the caller may keep and extend it
        self._inbox = []
        return messages

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
        most L{INFLATE_STEP} bytes per L{feed}): the session holds input it
        has not processed yet.  Call L{feed} again (with C{b""} when nothing
        new was read) after letting the reactor run, and stop reading from
        the stream meanwhile.
        """
        return bool(self._proto.suspended)

    def _track(self) -> None:
        """
        Account for the partly received frame or message (and unprocessed
        input) after a L{feed}: its bytes count against the reactor's
        C{partialMessageBudget}, and it must complete before its
        C{messageTimeout} deadline (restarted whenever a message completes).
        """
        proto = self._proto
        if proto.state != _STATE_OPEN or not proto.hasPartialInput:
            self._untrack()
            return
        held = proto.partialBytes()
        pool = proto.partials
        grown = held - self._heldBytes
        self._heldBytes = held
        pool.held += grown
        if not self._tracked or self._inbox:
            self._tracked = True
            pool.holding(self)
            timeout = proto.messageTimeout
            if timeout:
                pool.deadlines[self] = pool.clock.seconds() + timeout
                pool.arm()
        budget = proto.budget
        if grown > 0 and budget and pool.held > budget:
            self._overBudget(pool, budget)

    def _overBudget(self, pool: _PartialMessages, budget: int) -> None:
        """
        This session's data took the worker over C{partialMessageBudget}:
        fail the sessions that have held partial data the longest (1013)
        until the rest fits; this one pays only when it is the oldest.
        """
        while pool.held > budget and pool.holders:
            oldest = next(iter(pool.holders))
            self.log.info(
                "closing the connection holding a partly received message the longest "
                "({bytes} bytes; 1013): this worker's partly received messages would hold "
                "{held} bytes, over partialMessageBudget {budget}",
                bytes=oldest._heldBytes,  # noqa: SLF001  (one unit: sessions of one reactor)
                held=pool.held,
                budget=budget,
            )
            oldest._failPartial(1013, "server busy: too much partly received data")  # noqa: SLF001  (one unit: sessions of one reactor)
            if oldest is self:
                return

    def _untrack(self) -> None:
        """
        Stop accounting for this session's partial data.
        """
        if self._tracked:
            del self._tracked
            pool = self._proto.partials
            pool.held -= self._heldBytes
            del self._heldBytes
            pool.untrack(self)

    def _expire(self) -> None:
        """
        The C{messageTimeout} deadline passed (called by the sweep).
        """
        self.log.info(
            "closing a connection (1008): a frame or message stayed partly "
            "received for over {timeout} s (messageTimeout)",
            timeout=self._proto.messageTimeout,
        )
        self._failPartial(1008, "message timeout")

    def _failPartial(self, code: int, reason: str) -> None:
        """
        Fail the connection with C{code}, free what its partial message
        holds, and drop it at once when no close handshake timeout would.
        """
        self._untrack()
        proto = self._proto
        if proto.state != _STATE_OPEN:
            return
        # not a protocol error of the peer (metrics)
        proto.failUnreported(code, reason)
        if not proto.closeHandshakeTimeout:
            proto.dropConnection(abort=True)

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
        if self._held is not None:
            self._bypass = True
            try:
                proto.sendMessageWhileClosing(payload, isBinary, self._plain(payload))
            finally:
                self._bypass = False
        elif proto.state == _STATE_OPEN and not self._lost:
            proto.sendMessage(payload, isBinary, doNotCompress=self._plain(payload))
        else:
            self.log.debug("dropping a message sent on a closing WebSocket")

    def _plain(self, payload: bytes) -> bool:
        """Whether C{payload} goes out uncompressed (larger than C{maxCompressSize})."""
        limit = self._maxCompressSize
        return bool(limit) and len(payload) > limit

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
        for how, arg in held:
            how(arg)

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
        if self._lost or proto.state == _STATE_CLOSED:
            return
        if proto.state == _STATE_OPEN:
            proto.sendCloseFrame(
                code=code,
                reasonUtf8=encode_truncate(reason, 123) if reason else None,
                isReply=False,
            )
        elif proto.state == _STATE_CONNECTING:
            proto.wasNotCleanReason = reason or "closed during the opening handshake"
            proto.dropConnection(abort=False)

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
        self._untrack()
        proto = self._proto
        proto.suspended = False
        if reason is None:
            reason = Failure(ConnectionDone())
        proto.lose(reason)

    def _startHolding(self) -> bool:
        """
        Start holding output if a L{feed} is decoding and has messages.

        @return: whether output is now held (for the first time).
        """
        if self._held is None and self._feeding and self._inbox:
            self._held = []
            return True
        return False
