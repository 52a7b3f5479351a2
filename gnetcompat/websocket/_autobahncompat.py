# -*- test-case-name: tests.test_autobahncompat -*-
"""
Every Autobahn subclass and override in gnetcompat, in one place.

The WebSocket session (L{gnetcompat.websocket._session}) drives Autobahn's
server protocol without a Twisted connection: it feeds the protocol bytes
and is itself the transport the protocol writes to.  What that needs from
Autobahn beyond its public API lives here, each piece with a canary in
C{tests.test_autobahncompat} (a hash of the upstream source it copies,
overrides or relies on, or a behavioural probe), so that an Autobahn
upgrade fails loudly in one test module instead of silently somewhere else:

  - L{ReactorTimer}: Autobahn's factories schedule their timers through the
    private C{factory._batched_timer} (txaio's global reactor); ours uses
    the session's reactor (C{task.Clock} in tests).
  - L{SteppedDeflate}: permessage-deflate inflating in bounded steps
    (Autobahn inflates a whole frame in one call).
  - L{configuredProtocol}: the factory's settings as class attributes, so
    Autobahn's C{_connectionMade} copies nothing and skips a C{pformat} per
    connection.
  - L{factoryFor}: one Autobahn factory per reactor and distinct
    L{WebSocketOptions}, its protocol a configured L{SessionProtocol}.
  - L{AutobahnServerProtocol}: Autobahn's server protocol with the
    overrides of its internals:
      - C{processData} running with
        L{gnetcompat.websocket._xormask.fastCreateXorMasker} as its masker
        factory (for this class only: Autobahn's module and every other
        Autobahn protocol in the process keep theirs);
      - C{processHandshake}, C{_connectionMade} and C{_connectionLost} with
        the arguments of their debug log lines (C{hltype}, C{hlval},
        C{pformat}: colouring with click when it is installed) formatted
        only when such a line is logged, not on every connection;
      - class-level values of Autobahn's per-connection attributes and
        L{compact<AutobahnServerProtocol.compact>} (C{self.__dict__ = kept});
      - C{onMessageEnd} without the C{"message"} observer event when nothing
        observes it, and C{sendData} without the per-call debug formatting;
      - C{sendMessage} building the frame of an unfragmented, uncompressed
        message itself (Autobahn's own code for everything else);
      - the auto-ping sent only to idle connections (C{_sendAutoPing},
        C{onAutoPingTimeout});
      - the stepped inflation's frame suspension and resumption;
      - small named methods for what the session needs from Autobahn's
        private state (C{_dataReceived}, C{_connectionLost}, the partial
        frame and message, sending while a close is held back).
  - L{SessionProtocol}, its subclass reporting to the session: the
    overrides of Autobahn's public protocol methods (C{onConnect} with the
    origin check, C{onOpen}, C{onMessage}, C{sendCloseFrame} and
    C{dropConnection} holding the close behind the replies,
    C{failHandshake}, C{processHandshake} with the request bounds and the
    health checks, C{sendServerStatus} and C{sendRedirect} with the status
    page of the options).

Nothing here changes Autobahn's framing, validation or protocol decisions.
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from pprint import pformat
from types import FunctionType
from typing import Any, Protocol, TypeVar, cast
from urllib import parse
from weakref import WeakKeyDictionary

import autobahn.websocket.protocol as _upstream
from autobahn.exception import PayloadCorruptError
from autobahn.twisted.util import create_transport_details
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.util import encode_truncate, hltype, hlval
from autobahn.websocket.compress import (
    PerMessageDeflate,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.python.failure import Failure

from ._budget import PartialMessages, partialsFor
from ._options import (
    OPCODE_BINARY,
    OPCODE_TEXT,
    STATUS_PAGE_HEADERS,
    Message,
    WebSocketOptions,
    frozenSettingsKey,
    settingsKey,
)
from ._origin import OriginPolicy, printable
from ._xormask import fastCreateXorMasker

__all__ = [
    "INFLATE_STEP",
    "STATE_CLOSED",
    "STATE_OPEN",
    "AutobahnServerProtocol",
    "ReactorTimer",
    "SafeCall",
    "SessionProtocol",
    "SessionTransport",
    "SteppedDeflate",
    "configuredProtocol",
    "factoryFor",
    "useReactorTimer",
]

#: Autobahn's connection states the session tests
STATE_OPEN = WebSocketProtocol.STATE_OPEN
STATE_CLOSED = WebSocketProtocol.STATE_CLOSED

_STATE_OPEN = WebSocketProtocol.STATE_OPEN
_STATE_CONNECTING = WebSocketProtocol.STATE_CONNECTING

#: headers of final, unmasked frames with RSV 0 and up to 125 payload bytes,
#: indexed by C{isBinary} (text: opcode 1, binary: opcode 2), then length
_SHORT_HEADERS = (
    tuple(bytes((0x81, n)) for n in range(126)),
    tuple(bytes((0x82, n)) for n in range(126)),
)
#: the same with a 16-bit and a 64-bit extended payload length
_HEADER16 = struct.Struct("!BBH").pack
_HEADER64 = struct.Struct("!BBQ").pack

#: Largest output of one inflation step: a compressed message is inflated
#: at most this much per L{WebSocketSession.feed
#: <gnetcompat.websocket._session.WebSocketSession.feed>} call, with the reactor free
#: between calls.
INFLATE_STEP = 256 * 1024

#: The timer attributes Autobahn sets on a protocol (cancelled when the
#: stream is lost: Autobahn leaves some of them running).
_TIMER_ATTRIBUTES = (
    "openHandshakeTimeoutCall",
    "closeHandshakeTimeoutCall",
    "autoPingPendingCall",
    "autoPingTimeoutCall",
)


class SafeCall:
    """
    An C{IDelayedCall} wrapper whose C{cancel} never raises.

    Autobahn cancels some timers after they fired, which Twisted's
    C{DelayedCall.cancel} reports as an error.
    """

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def cancel(self) -> None:
        """
        Cancel the call if it is still pending.
        """
        try:
            self._call.cancel()
        except (AlreadyCalled, AlreadyCancelled):
            pass

    def active(self) -> bool:
        """
        @return: whether the call is still pending.
        """
        return bool(self._call.active())


class ReactorTimer:
    """
    Stand-in for Autobahn's batched timer that schedules on a given reactor.

    Autobahn's factories schedule their timers (handshake timeouts,
    auto-ping) through C{factory._batched_timer.call_later}, which normally
    uses the global reactor through txaio.  This one uses the session's
    C{twisted.internet.interfaces.IReactorTime}, so tests can drive them with C{task.Clock}.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    @property
    def clock(self) -> IReactorTime:
        """
        The clock the timers run on.
        """
        return self._clock

    def call_later(
        self, delay: float, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> SafeCall:
        """
        Call C{func(*args, **kwargs)} after C{delay} seconds.

        @return: an object with C{cancel()}.
        """
        return SafeCall(self._clock.callLater(delay, func, *args, **kwargs))


def useReactorTimer(factory: WebSocketServerFactory, clock: IReactorTime) -> None:
    """
    Make C{factory}'s protocols schedule their timers on C{clock}.
    """
    factory._batched_timer = ReactorTimer(clock)  # noqa: SLF001  (Autobahn's private, pinned by a canary)


class SteppedDeflate(PerMessageDeflate):
    """
    Autobahn's permessage-deflate, inflating in bounded steps.

    Autobahn inflates a compressed frame payload in one call, up to the
    message size limit: 15 KiB on the wire became 15 MiB in one reactor
    turn.  Here one call gives at most L{INFLATE_STEP} bytes and keeps the
    rest of the input (zlib's C{unconsumed_tail}) for the next call, which
    L{AutobahnServerProtocol} makes with an empty payload.  The size limits
    are Autobahn's own: the step that reaches them is Autobahn's code.

    @ivar pending: the last step stopped at L{INFLATE_STEP}: more output
        may follow without new input.
    @ivar inflated: bytes inflated since the session last reset it (once
        per C{feed}).
    """

    pending = False
    inflated = 0
    _tail = b""

    def start_decompress_message(self) -> None:
        """
        Start a message: nothing is pending.
        """
        super().start_decompress_message()
        self._tail = b""
        self.pending = False

    def decompress_message_data(self, data: bytes, max_output_len: int | None = None) -> bytes:
        """
        Inflate C{data} (after the input left by the last step): at most
        L{INFLATE_STEP} bytes of it.
        """
        if self._tail:
            data = self._tail + data if data else self._tail
            self._tail = b""
        room = [INFLATE_STEP + 1]
        if self.max_message_size is not None:
            room.append(self.max_message_size - self._decompress_message_size)
        if max_output_len is not None:
            room.append(max_output_len)
        if min(room) <= INFLATE_STEP:
            # the size limit is within this step: Autobahn's check decides
            out = super().decompress_message_data(data, max_output_len)
            self.pending = False
        else:
            try:
                # Optional in Autobahn's annotation; set for every compressed message
                out = self._decompressor.decompress(data, INFLATE_STEP)  # type: ignore[union-attr]
            except zlib.error as e:
                raise PayloadCorruptError(f"invalid permessage-deflate data: {e}") from e
            self._decompress_message_size += len(out)
            self._tail = self._decompressor.unconsumed_tail  # type: ignore[union-attr]
            # a full step may leave output inside zlib with all input used
            self.pending = bool(self._tail) or len(out) == INFLATE_STEP
        self.inflated += len(out)
        return out


_ProtocolT = TypeVar("_ProtocolT", bound=WebSocketServerProtocol)


def configuredProtocol(
    base: type[_ProtocolT], factory: WebSocketServerFactory, **extra: Any
) -> type[_ProtocolT]:
    """
    A subclass of C{base} holding the factory's settings (the
    C{CONFIG_ATTRS} Autobahn would copy into every protocol instance) as
    class attributes, plus C{extra}.  Its own C{CONFIG_ATTRS} is empty:
    Autobahn's C{_connectionMade} then copies nothing, and skips the
    C{pformat} of the settings it builds for a debug log line on every
    connection, enabled or not (about half of the CPU of an opening
    handshake).  With a L{ReactorTimer} (L{useReactorTimer}) its clock
    also measures how long connections were idle (C{_now}).
    """
    attrs: dict[str, Any] = {"CONFIG_ATTRS": ()}
    for name in base.CONFIG_ATTRS:
        attrs[name] = getattr(factory, name)
    timer = getattr(factory, "_batched_timer", None)
    if isinstance(timer, ReactorTimer):
        attrs["_now"] = timer.clock.seconds
    attrs.update(extra)
    for name, value in attrs.items():
        if isinstance(value, FunctionType):
            attrs[name] = staticmethod(value)
    return cast("type[_ProtocolT]", type("_Configured" + base.__name__.lstrip("_"), (base,), attrs))


def _withGlobals(function: Any, **replaced: Any) -> Any:
    """
    A copy of C{function} that sees C{replaced} instead of the module
    globals of the same names (a snapshot of its module's namespace).
    """
    namespace = dict(function.__globals__)
    namespace.update(replaced)
    copy = FunctionType(
        function.__code__,
        namespace,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy


class _LazyText:
    """
    The text C{func(*args, **kwargs)}, computed when a log event using it
    is formatted (a debug line that is not logged never computes it).
    """

    __slots__ = ("_func", "_args", "_kwargs")

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._func = func
        self._args = args
        self._kwargs = kwargs

    def __str__(self) -> str:
        return str(self._func(*self._args, **self._kwargs))

    def __repr__(self) -> str:
        return repr(self._func(*self._args, **self._kwargs))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


#: the functions Autobahn calls to build the arguments of its debug log
#: lines on the connection path, computed only when a line is logged
#: (L{_LazyText}; a C{partial}: one Python call per argument)
_LAZY_LOG_ARGUMENTS = {
    "hltype": partial(_LazyText, hltype),
    "hlval": partial(_LazyText, hlval),
    "pformat": partial(_LazyText, pformat),
}

#: Autobahn's C{WebSocketProtocol._connectionMade}, with a lazy C{pformat}
_protocolConnectionMade = _withGlobals(
    WebSocketProtocol._connectionMade,  # noqa: SLF001  (Autobahn's private, pinned by a canary)
    **_LAZY_LOG_ARGUMENTS,
)


class AutobahnServerProtocol(WebSocketServerProtocol):
    """
    Autobahn's server protocol with the overrides of its internals that
    gnetcompat's WebSocket session needs (see the module docstring).

    Subclasses implement the hook L{protocolFailed}.
    """

    #: Autobahn's C{processData} (the frame parser), unchanged but for its
    #: masker factory: L{fastCreateXorMasker} (a pure-Python masker for
    #: small payloads, Autobahn's for the rest)
    processData = _withGlobals(WebSocketProtocol.processData, create_xor_masker=fastCreateXorMasker)

    #: Autobahn's C{processHandshake} and C{_connectionLost}, unchanged but
    #: for the lazy arguments of their debug lines (L{_LAZY_LOG_ARGUMENTS})
    processHandshake = _withGlobals(WebSocketServerProtocol.processHandshake, **_LAZY_LOG_ARGUMENTS)
    _connectionLost = _withGlobals(
        WebSocketServerProtocol._connectionLost,  # noqa: SLF001  (Autobahn's private, pinned by a canary)
        **_LAZY_LOG_ARGUMENTS,
    )

    # Class-level values of attributes Autobahn sets on every instance: while
    # an instance's value is the very same object, L{compact} drops its copy
    # (a write brings it back).  Autobahn's own per-connection state.
    wasClean = closedByMe = failedByMe = droppedByMe = False
    wasServerConnectionDropTimeout = wasOpenHandshakeTimeout = False
    wasCloseHandshakeTimeout = wasServingFlashSocketPolicyFile = False
    wasMaxFramePayloadSizeExceeded = wasMaxMessagePayloadSizeExceeded = False
    inside_message = triggered = False
    # (Any: Autobahn's annotations say str/int/FrameHeader, its values start as None)
    wasNotCleanReason: Any = None
    trackedTimings: Any = None
    current_frame: Any = None
    localCloseCode: Any = None
    localCloseReason: Any = None
    remoteCloseCode: Any = None
    remoteCloseReason: Any = None
    openHandshakeTimeoutCall = closeHandshakeTimeoutCall = None
    autoPingPendingCall = autoPingTimeoutCall = autoPingPending = None
    autoPingPendingSent = None
    autoPingPendingSeq: Any = None
    state = _STATE_OPEN
    send_state = WebSocketProtocol.SEND_STATE_GROUND
    data = b""
    #: the queue of delayed writes (C{sync}/C{chopsize}, unused by the echo
    #: path): created on first use (L{sendData}) instead of per connection
    send_queue: Any = ()

    # Declarations only (no values): attributes Autobahn sets without a type
    # it declares (the CONFIG_ATTRS come from the factory, L{configuredProtocol}).
    _perMessageCompress: Any
    _isMessageCompressed: bool
    logOctets: bool
    logFrames: bool
    closeHandshakeTimeout: float
    autoFragmentSize: int
    maskServerFrames: bool
    maxMessagePayloadSize: int
    autoPingInterval: float
    autoPingTimeout: float

    #: what only the opening handshake reads; dropped once it is done
    _HANDSHAKE_ONLY = frozenset(
        [
            "http_request_data",
            "http_response_data",
            "http_status_line",
            "http_request_host",
            "http_request_params",
            "http_request_uri",
            "http_request_path",
            "http_headers",
            "websocket_protocols",
            "websocket_origin",
            "websocket_extensions",
            "_wskey",
        ]
    )

    #: the stepped inflation stopped for this C{feed}: the input is kept
    #: until L{resumeInput}
    suspended = False

    #: the clock of the idle check (the factory's reactor's C{seconds} when
    #: it has a L{ReactorTimer}: L{configuredProtocol}); only differences
    #: of its readings are used
    _now: Callable[[], float] = staticmethod(time.monotonic)
    #: when the peer last sent anything (C{_now}), set by L{receive}
    _lastReceived = float("-inf")

    # -- hooks ---------------------------------------------------------------

    def protocolFailed(self, code: int) -> None:
        """
        Autobahn fails the connection with close code C{code} (a protocol
        error of the peer, a timeout, ...), while it is not yet closed.
        """

    # -- the session's view of Autobahn's private state -----------------------

    def attach(self, transport: ITransport) -> None:
        """
        Start the protocol on C{transport}, as Autobahn's Twisted
        C{connectionMade} does (the opening handshake timer starts).
        """
        self.transport = transport
        self._transport_details = create_transport_details(transport, True)
        self.peer = self._transport_details.peer
        self._connectionMade()

    def receive(self, data: bytes) -> None:
        """
        Process a feed's inbound bytes (Autobahn's C{dataReceived}): a new
        L{INFLATE_STEP} of inflation is allowed; the peer was heard from now
        (the idle check of L{_sendAutoPing}).
        """
        self._lastReceived = self._now()
        pmc = self._perMessageCompress
        if pmc is not None:
            pmc.inflated = 0
        self._dataReceived(data)

    def lose(self, reason: Failure) -> None:
        """
        The stream is gone: tell Autobahn, and cancel every timer it left.
        """
        self.suspended = False
        # (Autobahn annotates the reason as str; it is the Failure Twisted gives)
        self._connectionLost(reason)
        for name in _TIMER_ATTRIBUTES:
            call = getattr(self, name, None)
            if call is not None:
                call.cancel()
                setattr(self, name, None)

    @property
    def hasPartialInput(self) -> bool:
        """
        Whether a frame or message is partly received, or input waits.
        """
        return bool(self.inside_message or self.current_frame is not None or self.data)

    def partialBytes(self) -> int:
        """
        Bytes held for the partly received frame or message (after
        decompression) and the unprocessed input.
        """
        held = len(self.data)
        if self.inside_message:
            held += self.message_data_total_length
            frame = self.current_frame
            if frame is not None and frame.opcode < 8:
                # counted in full at the frame's start: count what came
                held -= frame.length - self.current_frame_masker.pointer()
        return held

    @property
    def isOpen(self) -> bool:
        """
        Whether the WebSocket connection is open (Autobahn's C{STATE_OPEN}).
        """
        return bool(self.state == _STATE_OPEN)

    @property
    def closeCode(self) -> int | None:
        """
        The close code of the closing handshake: the code of the side that
        started it (ours or the peer's), or C{None} when no Close frame was
        sent or received.
        """
        local, remote = self.localCloseCode, self.remoteCloseCode
        if self.closedByMe:
            return cast("int | None", local if local is not None else remote)
        return cast("int | None", remote if remote is not None else local)

    def startClose(self, code: int, reason: str) -> None:
        """
        Start a closing handshake with C{code} (C{reason} truncated to 123
        UTF-8 bytes) when open; during the opening handshake, drop the
        stream (with C{reason} as Autobahn's C{wasNotCleanReason}).
        """
        if self.state == _STATE_OPEN:
            self.sendCloseFrame(
                code=code,
                reasonUtf8=encode_truncate(reason, 123) if reason else None,
                isReply=False,
            )
        elif self.state == _STATE_CONNECTING:
            self.wasNotCleanReason = reason or "closed during the opening handshake"
            self.dropConnection(abort=False)

    def failPartial(self, code: int, reason: str) -> None:
        """
        Fail an open connection with C{code} for what it holds partly
        received (the partial-message budget, the message timeout: not a
        protocol error of the peer), free that, and drop the stream at once
        when no close handshake timeout would.
        """
        if self.state != _STATE_OPEN:
            return
        self.failUnreported(code, reason)
        if not self.closeHandshakeTimeout:
            self.dropConnection(abort=True)

    def failUnreported(self, code: int, reason: str) -> None:
        """
        Fail the connection with C{code} without calling L{protocolFailed}
        (not a protocol error of the peer), and free the partly received
        message.
        """
        # Autobahn's, not our override (which reports the failure)
        super()._fail_connection(code, reason)
        if self.inside_message:  # failedByMe: nothing more is collected
            self.message_data = []
            self.frame_data = []

    def sendMessageWhileClosing(
        self, payload: bytes, isBinary: bool, doNotCompress: bool = False
    ) -> None:
        """
        Send a data message although the connection already left the OPEN
        state (a close is held back behind the replies to messages decoded
        before it): Autobahn's C{sendMessage} refuses to, so it runs with
        the state set to OPEN for the call.
        """
        state = self.state
        self.state = _STATE_OPEN
        try:
            self.sendMessage(payload, isBinary, doNotCompress=doNotCompress)
        finally:
            self.state = state

    def resumeInput(self, data: bytes) -> None:
        """
        Go on with the input held while L{suspended}, after C{data} (a
        feed: a new L{INFLATE_STEP} of inflation is allowed).
        """
        self.suspended = False
        self._perMessageCompress.inflated = 0
        if data:
            self._lastReceived = self._now()
            if self.state == _STATE_OPEN:
                self.trafficStats.incomingOctetsWireLevel += len(data)
            self.data += data
        if (
            self._resumeFrame()
            and not self.suspended
            and self.state in (_STATE_OPEN, WebSocketProtocol.STATE_CLOSING)
        ):
            self.consumeData()

    # -- overrides -------------------------------------------------------------

    def _fail_connection(self, code: int = 1001, reason: str = "going away") -> None:
        """
        Report the failure (L{protocolFailed}), then fail as Autobahn does.
        """
        if self.state != WebSocketProtocol.STATE_CLOSED:
            self.protocolFailed(code)
        super()._fail_connection(code, reason)

    def _connectionMade(self) -> None:
        """
        Autobahn's server C{_connectionMade}, line for line, with the
        arguments of the debug lines (its own and L{_protocolConnectionMade}'s)
        formatted only when they are logged.
        """
        self.log.debug(
            "{func}: connection accepted from peer {peer}",
            func=_LazyText(hltype, self._connectionMade),
            peer=self.peer,
        )
        _protocolConnectionMade(self)
        self.factory.countConnections += 1

    def _sendAutoPing(self) -> None:
        """
        Autobahn's auto-ping, sent only to a connection from which nothing
        was received for C{autoPingInterval}; otherwise the check runs
        again when that much time will have passed since the last input.
        Receiving costs one clock reading per read, no timer reset.  A busy
        connection is never pinged (an unsolicited ping in the middle of a
        long exchange is what made the Autobahn TestSuite's long
        compression cases fail), an idle one is pinged C{autoPingInterval}
        after its last input, as uWebSockets' idle timeout does.
        """
        wait = self._lastReceived + self.autoPingInterval - self._now()
        if wait > 0:
            self.autoPingPendingCall = self.factory._batched_timer.call_later(  # noqa: SLF001  (Autobahn's private, pinned by a canary)
                wait, self._sendAutoPing
            )
            return
        super()._sendAutoPing()

    def onAutoPingTimeout(self) -> None:
        """
        No pong within C{autoPingTimeout}: drop the connection, as Autobahn
        does, unless something else was received since the ping.  Any
        input proves the peer alive (Autobahn itself only counts a
        complete data frame): a peer that keeps sending but never answers
        pings stays; the next ping goes out once it has been silent for
        C{autoPingInterval}.
        """
        if self._now() - self._lastReceived < self.autoPingTimeout:
            self.autoPingTimeoutCall = None
            self.autoPingPending = None
            self._sendAutoPing()
            return
        super().onAutoPingTimeout()

    def compact(self) -> None:
        """
        Shrink this connection's attribute dictionary once the opening
        handshake is done: Autobahn keeps about 86 attributes per
        connection (its settings, flags, the handshake's request and
        response), a 3.3 KiB dictionary.  Values equal (identical) to the
        class-level ones and the handshake's leftovers are dropped and the
        rest is rebuilt into a right-sized dictionary (16 entries, under
        0.5 KiB).
        """
        cls = type(self)
        handshakeOnly = self._HANDSHAKE_ONLY
        missing = object()
        kept = {}
        for name, value in self.__dict__.items():
            if name in handshakeOnly or getattr(cls, name, missing) is value:
                continue
            if name == "send_queue" and not value:
                continue
            kept[name] = value
        self.__dict__ = kept

    def startSteppedInflation(self) -> None:
        """
        With permessage-deflate negotiated, inflate in steps
        (L{SteppedDeflate}); only compressed connections pay for the extra
        call per frame.  Call once the connection is open.
        """
        pmc = self._perMessageCompress
        if type(pmc) is PerMessageDeflate:
            pmc.__class__ = SteppedDeflate
            # per instance: only compressed connections pay for the extra call
            self.onFrameData = self._onCompressedFrameData  # type: ignore[method-assign]

    def _onCompressedFrameData(self, payload: bytes) -> bool | None:
        """
        Autobahn's C{onFrameData}, then inflate the rest of a compressed
        frame payload step by step, until this feed's L{INFLATE_STEP} is
        spent: then suspend (C{False} stops Autobahn's C{processData} with
        the frame still current; L{_resumeFrame} goes on from there).
        """
        result = WebSocketServerProtocol.onFrameData(self, payload)
        if result is False or self.current_frame.opcode > 7 or not self._isMessageCompressed:
            return result
        return self._inflateRest()

    def _inflateRest(self) -> bool | None:
        pmc = self._perMessageCompress
        while True:
            if pmc.inflated >= INFLATE_STEP:
                self.suspended = True
                return False
            if not pmc.pending:
                return None
            if WebSocketServerProtocol.onFrameData(self, b"") is False:
                return False

    def _resumeFrame(self) -> bool:
        """
        Go on where L{_onCompressedFrameData} suspended: inflate the rest of
        the frame, then end it as C{processData} would have.

        @return: C{False} when suspended again or the connection failed.
        """
        frame = self.current_frame
        if frame is None:
            return True
        if frame.opcode < 8 and self._isMessageCompressed and self._perMessageCompress.pending:
            if self._inflateRest() is False:
                return False
        if self.current_frame_masker.pointer() == frame.length:
            return self.onFrameEnd() is not False
        return True

    def onMessageEnd(self) -> None:
        """
        Deliver the complete message as Autobahn does, without firing its
        C{"message"} observer event when nothing observes it: that event
        costs a Deferred and an errback per message (about a tenth of the
        CPU of a small-message echo) and nobody can subscribe to these
        protocol objects but gnetcompat.
        """
        if self._listeners is not None:
            super().onMessageEnd()
            return
        if not self.failedByMe:
            if self.trackedTimings:
                self.trackedTimings.track("onMessage")
            self._onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None

    def sendMessage(
        self,
        payload: bytes,
        isBinary: bool = False,
        fragmentSize: int | None = None,
        sync: bool = False,
        doNotCompress: bool = False,
    ) -> None:
        """
        Autobahn's C{sendMessage}, building the frame itself when the
        message goes out as one plain frame: a C{bytes} payload, no
        explicit fragmentation or C{sync}, the connection OPEN, no
        permessage-deflate on it, no queued writes (C{sync}/C{chopsize}),
        and none of C{autoFragmentSize}, C{maskServerFrames}, C{logFrames},
        C{logOctets} or C{trackTimings}, on a server.  The frame is then
        what Autobahn's C{sendFrame} builds (FIN, RSV 0, the opcode,
        unmasked, the 7-, 16- or 64-bit length; pinned by
        C{tests.test_autobahncompat}), written through the same
        C{transport.write} as C{sendData} uses, with Autobahn's traffic
        statistics counted as its own code counts them.  Everything else,
        including every argument Autobahn's assertions or state check
        would refuse and a payload over C{maxMessagePayloadSize}, goes
        through Autobahn's C{sendMessage}: same output, same exceptions.
        """
        if (
            fragmentSize is None
            and sync is False
            and type(payload) is bytes
            and (isBinary is False or isBinary is True)
            and (doNotCompress is False or doNotCompress is True)
            and self.state == _STATE_OPEN
            and self._perMessageCompress is None
            and not self.send_queue
            and not self.trackedTimings
            and not self.autoFragmentSize
            and not self.logFrames
            and not self.logOctets
            and not self.maskServerFrames
            and self.factory.isServer
        ):
            n = len(payload)
            if 0 < self.maxMessagePayloadSize < n:
                # Autobahn's limit check: a warning, then PayloadExceededError
                super().sendMessage(payload, isBinary, None, False, doNotCompress)
                return
            if n <= 125:
                frame = _SHORT_HEADERS[isBinary][n] + payload
            elif n <= 0xFFFF:
                frame = _HEADER16(0x82 if isBinary else 0x81, 126, n) + payload
            else:
                frame = _HEADER64(0x82 if isBinary else 0x81, 127, n) + payload
            stats = self.trafficStats
            stats.outgoingWebSocketMessages += 1
            stats.outgoingOctetsAppLevel += n
            stats.outgoingOctetsWebSocketLevel += n
            stats.outgoingWebSocketFrames += 1
            # connected: Twisted types the transport as Optional
            self.transport.write(frame)  # type: ignore[union-attr]
            stats.outgoingOctetsWireLevel += len(frame)
            return
        super().sendMessage(payload, isBinary, fragmentSize, sync, doNotCompress)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """
        Write octets, without the per-call debug formatting of Autobahn's.
        """
        if sync or chopsize or self.send_queue:
            if not isinstance(self.send_queue, deque):  # dropped by compact
                self.send_queue = deque()
            super().sendData(data, sync, chopsize)
            return
        # connected: Twisted types the transport as Optional
        self.transport.write(data)  # type: ignore[union-attr]
        state = self.state
        if state == _STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        elif state == _STATE_CONNECTING or state == _STATE_PROXY_CONNECTING:
            self.trafficStats.preopenOutgoingOctetsWireLevel += len(data)
        if self.logOctets:
            self.logTxOctets(data, False)


_STATE_PROXY_CONNECTING = WebSocketProtocol.STATE_PROXY_CONNECTING

#: the Autobahn module whose C{processData} globals were copied (for the
#: canary test)
upstreamProtocolModule = _upstream

#: an HTTP request line: a method token, a visible-ASCII target, HTTP/d.d
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")


class SessionTransport(Protocol):
    """
    What a L{SessionProtocol} needs from its session: the transport it
    writes to (the session itself, L{gnetcompat.websocket._session}), which
    can hold output back behind the replies to the messages being decoded.
    """

    #: set once the stream is being closed
    disconnecting: bool

    def write(self, data: bytes) -> None:
        """Write C{data} (or hold it)."""

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Write each of C{data} (or hold them)."""

    def loseConnection(self) -> None:
        """Close the stream once written data is sent (or hold the close)."""

    def abortConnection(self) -> None:
        """Close the stream at once (or hold the close)."""

    def holdOutput(self, code: int | None, reason: str) -> None:
        """
        The connection leaves the OPEN state while messages decoded by the
        running feed wait for their replies: hold back what Autobahn emits
        from now on (its Close frame with C{code}, or the drop when C{code}
        is C{None}), until the session flushes it after the replies.
        """


class SessionProtocol(AutobahnServerProtocol):
    """
    The Autobahn protocol of a WebSocket session: L{AutobahnServerProtocol}
    with the overrides of Autobahn's public protocol methods, keeping what
    the session reads (the request, the messages of the running feed, the
    outcome for metrics).  Its transport is the session
    (L{SessionTransport}).  Configured per factory (L{factoryFor}) with the
    settings below as class attributes.

    @ivar request: Autobahn's C{ConnectionRequest} once the opening handshake
        was accepted, else C{None} (and C{None} again after it with
        C{keepRequest=False}).
    @ivar inbox: the data messages decoded by the running feed, in order.
    @ivar upgraded: C{True} once the 101 response was sent.
    @ivar handshakeFailed: C{True} once the opening handshake was refused
        with an HTTP error.
    @ivar protocolError: the close code of the first protocol error (1002,
        1007, 1009) the connection was failed with, else C{None}.
    """

    request: ConnectionRequest | None = None
    inbox: list[Message]
    upgraded = False
    handshakeFailed = False
    protocolError: int | None = None
    #: how far the request was searched for its end (L{processHandshake})
    _scanned = 0

    # -- settings, per factory (L{factoryFor}) ---------------------------------

    #: the allowed origins; C{None}: every origin
    originPolicy: OriginPolicy | None = None
    #: the reactor's partial messages, the C{partialMessageBudget} and
    #: C{messageTimeout} options
    partials: PartialMessages
    budget = 0
    messageTimeout = 0.0
    #: the C{maxRequestHeaderSize}, C{keepRequest} and C{maxCompressSize} options
    requestHeaderLimit = 0
    keepRequest = True
    maxCompressSize = 0
    #: the C{webStatus}, C{statusPage} and C{statusPageHeaders} options
    webStatus: bool
    statusPage: Callable[[], str] | None = None
    statusPageHeaders: Iterable[tuple[str, str]] = STATUS_PAGE_HEADERS

    def attach(self, transport: ITransport) -> None:
        """
        Start on the session C{transport}, with an empty inbox.
        """
        self.inbox = []
        super().attach(transport)

    def _session(self) -> SessionTransport:
        # the transport is the session (attach)
        return cast(SessionTransport, self.transport)

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
        self.request = request
        return None

    def onOpen(self) -> None:
        """
        The 101 response was sent.
        """
        self.upgraded = True
        if not self.keepRequest:
            self.request = None
        self.compact()
        self.startSteppedInflation()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Collect a message for the running feed.

        Messages that arrive once the connection left the OPEN state (after
        we started a closing handshake) cannot be answered and are dropped.
        """
        if self.state == _STATE_OPEN:
            self.inbox.append(Message(OPCODE_BINARY if isBinary else OPCODE_TEXT, payload))

    def sendCloseFrame(
        self,
        code: int | None = None,
        reasonUtf8: bytes | None = None,
        isReply: bool = False,
    ) -> None:
        """
        Send a Close frame, held back behind pending replies if needed.
        """
        if self.state == _STATE_OPEN and self.inbox:
            self._session().holdOutput(
                code, reasonUtf8.decode("utf-8", "replace") if reasonUtf8 else ""
            )
        super().sendCloseFrame(code, reasonUtf8, isReply)

    def dropConnection(self, abort: bool = False) -> None:
        """
        Drop the byte stream, held back behind pending replies if needed.
        """
        if self.state != STATE_CLOSED and self.inbox:
            self._session().holdOutput(None, self.wasNotCleanReason or "")
        super().dropConnection(abort)

    def protocolFailed(self, code: int) -> None:
        """
        Note the first protocol error (1002, 1007, 1009) for metrics.
        """
        if self.protocolError is None:
            self.protocolError = code

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        """
        Note the failed opening handshake (for metrics), then fail it.
        Autobahn quotes the request in C{reason} and puts it in its (one,
        info) log line and in the response's status line: control bytes
        and non-ASCII are escaped there, and it is cut to 200 characters.
        The drop after the response is the end of a complete HTTP exchange,
        not a second (warning) log line.
        """
        self.handshakeFailed = True
        self.wasClean = True
        super().failHandshake(printable(str(reason)), code, responseHeaders)

    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        """
        A plain GET (no Upgrade): the options' status page when they have one.
        """
        page = self.statusPage
        if page is None:
            super().sendServerStatus(redirectUrl, redirectAfter)
            return
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.statusPageHeaders).encode("latin-1")
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
        if self.statusPage is None:
            super().sendRedirect(url)
        else:
            self.sendServerStatus()

    def processHandshake(self) -> None:
        """
        Bound the HTTP request header block, answer health checks, then
        hand the complete request to Autobahn (which, too, waits for the
        end of the header block; C{serveFlashSocketPolicy} is never on).
        """
        data = self.data
        end = data.find(b"\r\n\r\n", max(0, self._scanned - 3))
        limit = self.requestHeaderLimit
        if end < 0:
            self._scanned = len(data)
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
        if self.webStatus and self.statusPage is not None and self._plainGet(end):
            return
        try:
            super().processHandshake()
        except ValueError:
            # Autobahn's status page parses ?redirect=URL&after=N and raises
            # on a bad URL or number; nothing was answered yet
            if self.state != _STATE_CONNECTING or self._session().disconnecting:
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


def _acceptDeflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """
    Accept the first permessage-deflate offer, with the client's parameters.
    """
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def _refuseDeflate(offers: list[Any]) -> None:
    """
    Refuse every permessage-deflate offer (C{compression=False}).
    """
    return None


#: distinct settings whose factories one reactor keeps (the oldest goes
#: first when more come: a session keeps its factory through its protocol)
MAX_FACTORIES = 64

# Autobahn factories shared by sessions with equal options on one reactor.
_factories: WeakKeyDictionary[Any, dict[tuple[Any, ...], WebSocketServerFactory]] = (
    WeakKeyDictionary()
)


def factoryFor(options: WebSocketOptions, reactor: IReactorTime) -> WebSocketServerFactory:
    """
    Get (or build and remember) the Autobahn server factory for C{options}
    on C{reactor}; its protocol is a L{SessionProtocol} configured with
    them.  Options are validated when no factory exists for settings equal
    to theirs (of the same types), not on every connection.

    @param options: the settings.
    @param reactor: the reactor whose clock the timers use.
    @raise ValueError: when an option is invalid.
    """
    perReactor = _factories.setdefault(reactor, {})
    key = settingsKey(options)
    try:
        factory = perReactor.get(key)
    except TypeError:  # an unhashable value: validate says whether it is valid
        options.validate()
        key = frozenSettingsKey(options)
        factory = perReactor.get(key)
    else:
        if factory is None:
            options.validate()
    if factory is None:
        factory = _buildFactory(options, reactor)
        while len(perReactor) >= MAX_FACTORIES:
            del perReactor[next(iter(perReactor))]
        perReactor[key] = factory
    return factory


def _buildFactory(options: WebSocketOptions, reactor: IReactorTime) -> WebSocketServerFactory:
    """
    A new Autobahn server factory for (valid) C{options}.
    """
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
        perMessageCompressionAccept=_acceptDeflate if options.compression else _refuseDeflate,
        autoPingInterval=options.autoPingInterval,
        autoPingTimeout=options.autoPingTimeout,
        autoPingSize=options.autoPingSize,
        # origins are checked by SessionProtocol.onConnect (Autobahn's
        # regular expressions refuse the origins they list, see _origin)
        allowedOrigins=["*"],
        allowNullOrigin=True,
    )
    policy = OriginPolicy(options.allowedOrigins, options.allowNullOrigin)
    factory.protocol = configuredProtocol(
        SessionProtocol,
        factory,
        originPolicy=None if policy.allowsEverything else policy,
        partials=partialsFor(reactor),
        budget=options.partialMessageBudget,
        messageTimeout=options.messageTimeout,
        requestHeaderLimit=options.maxRequestHeaderSize,
        keepRequest=options.keepRequest,
        maxCompressSize=options.maxCompressSize,
        statusPage=options.statusPage,
        statusPageHeaders=tuple(tuple(h) for h in options.statusPageHeaders),
    )
    return factory
