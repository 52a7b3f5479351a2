"""
Canary tests for L{gnetcompat.websocket._autobahncompat}: the Autobahn code that
gnetcompat copies, overrides or relies on is the code it was written
against.  An Autobahn upgrade that changes any of it fails here, in one
place, naming what to re-check.
"""

from __future__ import annotations

import dis
import hashlib
import inspect
import pprint
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import autobahn.util
from autobahn.exception import Disconnected, PayloadExceededError
from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket import protocol as upstream
from autobahn.websocket.compress import PerMessageDeflate
from autobahn.websocket.protocol import TrafficStats, WebSocketProtocol, WebSocketServerProtocol
from autobahn.websocket.xormasker import create_xor_masker
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat.websocket import WebSocketOptions, WebSocketSession
from gnetcompat.websocket._autobahncompat import (
    _LAZY_LOG_ARGUMENTS,
    AutobahnServerProtocol,
    ReactorTimer,
    SafeCall,
    _protocolConnectionMade,
    configuredProtocol,
    useReactorTimer,
)
from gnetcompat.websocket._xormask import fastCreateXorMasker

from ._hardening_util import upgradeRequest
from ._sink import RecordingSink

_OWNERS = {
    "PerMessageDeflate": PerMessageDeflate,
    "TrafficStats": TrafficStats,
    "WebSocketProtocol": WebSocketProtocol,
    "WebSocketServerProtocol": WebSocketServerProtocol,
}


def _digest(qualified: str) -> str:
    owner, method = qualified.split(".")
    source = inspect.getsource(getattr(_OWNERS[owner], method))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class SourcePinnedTests(SynchronousTestCase):
    """
    The sources of the Autobahn methods gnetcompat copies, overrides or
    relies on hash as pinned (Autobahn 26.10).
    """

    #: method -> (digest, what in gnetcompat depends on it)
    PINNED = {
        # copied (with one change each) in AutobahnServerProtocol
        "WebSocketProtocol.onMessageEnd": ("efff2a43ca8540d0", "onMessageEnd"),
        "WebSocketProtocol.sendData": ("5dcca425b048b07e", "sendData"),
        # run with other globals (the masker factory)
        "WebSocketProtocol.processData": ("25b9c1387a46ab25", "processData, stepped inflation"),
        # CONFIG_ATTRS copying and its pformat (configuredProtocol), run with a
        # lazy pformat; the server's, copied line for line (lazy hltype)
        "WebSocketProtocol._connectionMade": ("7ac58d8bb6c3c752", "configuredProtocol, attach"),
        "WebSocketServerProtocol._connectionMade": ("213dadb6d12d3d48", "_connectionMade"),
        # run with lazy debug-line arguments
        "WebSocketServerProtocol._connectionLost": ("1b616e8fc259d995", "_connectionLost"),
        "WebSocketProtocol._dataReceived": ("b6616694f9d65410", "receive"),
        "WebSocketProtocol._connectionLost": ("8d53cb80c1e9f3de", "lose"),
        # refuses to send outside STATE_OPEN (sendMessageWhileClosing); the
        # checks, statistics and frame the sendMessage fast path mirrors
        "WebSocketProtocol.sendMessage": (
            "048d6bcf0d712309",
            "sendMessageWhileClosing, sendMessage fast path",
        ),
        "WebSocketProtocol.sendFrame": ("89cc8b024c413aa0", "sendMessage fast path"),
        "TrafficStats.reset": ("b0da2cdf8bbd268a", "sendMessage fast path statistics"),
        "WebSocketProtocol._fail_connection": (
            "00c349e066d658bf",
            "_fail_connection, failUnreported",
        ),
        # the stepped inflation's suspension and resumption
        "PerMessageDeflate.start_decompress_message": ("67b5236a90474c46", "SteppedDeflate"),
        "PerMessageDeflate.decompress_message_data": ("d66e0805905a2f34", "SteppedDeflate"),
        "WebSocketProtocol.consumeData": ("aaa88196e762438f", "resumeInput"),
        "WebSocketProtocol.onFrameData": ("b39b40e3d1702273", "_onCompressedFrameData"),
        "WebSocketProtocol.onFrameEnd": ("c45a45b9bf333417", "_resumeFrame"),
        "WebSocketProtocol.onMessageBegin": ("1c5cb3b3e3eb227b", "partialBytes"),
        # the auto-ping only on idle connections: overridden, and every place
        # Autobahn schedules _sendAutoPing (open, pong, data during a ping)
        "WebSocketProtocol._sendAutoPing": ("344058949ed67de3", "_sendAutoPing"),
        "WebSocketProtocol.onAutoPingTimeout": ("5de3ae0af03e5bd3", "onAutoPingTimeout"),
        "WebSocketProtocol.processControlFrame": ("e308aea98264899e", "_sendAutoPing (pong)"),
        "WebSocketProtocol._cancelAutoPingTimeoutCall": (
            "4e4db79d874d8c06",
            "_sendAutoPing (data frame during a ping)",
        ),
        "WebSocketServerProtocol.succeedHandshake": ("fb43d387929cf206", "_sendAutoPing (open)"),
        # overridden in SessionProtocol (holding, status page)
        "WebSocketProtocol.sendCloseFrame": ("a511406d6b0d711e", "SessionProtocol holding"),
        "WebSocketProtocol.dropConnection": ("149c74c9a251a7b1", "SessionProtocol holding"),
        "WebSocketServerProtocol.processHandshake": (
            "0055f4d349937673",
            "SessionProtocol processHandshake",
        ),
        "WebSocketServerProtocol.sendServerStatus": ("238337e44f003835", "status page"),
        "WebSocketServerProtocol.sendRedirect": ("39246aa798870399", "status page"),
        "WebSocketServerProtocol.failHandshake": ("354c2c03cca517fb", "failHandshake"),
    }

    def test_sourcePinned(self) -> None:
        """
        Every pinned method's source hashes as recorded.
        """
        changed = [
            f"{name} (re-check {what})"
            for name, (digest, what) in self.PINNED.items()
            if _digest(name) != digest
        ]
        self.assertEqual(changed, [], "changed upstream: " + ", ".join(changed))


class ProbeTests(SynchronousTestCase):
    """
    Behavioural probes of the Autobahn internals gnetcompat relies on.
    """

    def assertCopyDiffersOnlyIn(self, ours: Any, theirs: Any, replaced: set[str]) -> None:
        """
        C{ours} is C{theirs}'s code object, seeing C{theirs}'s module
        globals but for the C{replaced} names, all of which it reads.
        """
        self.assertIs(ours.__code__, theirs.__code__)
        names = {i.argval for i in dis.get_instructions(theirs) if i.opname == "LOAD_GLOBAL"}
        self.assertLessEqual(replaced, names)
        for name in names:
            mine = ours.__globals__.get(name, ours.__globals__["__builtins__"].get(name))
            upstreamValue = theirs.__globals__.get(
                name, theirs.__globals__["__builtins__"].get(name)
            )
            if name in replaced:
                self.assertIsNot(mine, upstreamValue, name)
            else:
                self.assertIs(mine, upstreamValue, name)

    def test_processDataCopyDiffersOnlyInMasker(self) -> None:
        """
        Our C{processData} is Autobahn's code object, seeing Autobahn's
        module globals but for C{create_xor_masker}; the upstream module
        keeps its own.
        """
        ours = AutobahnServerProtocol.processData
        self.assertCopyDiffersOnlyIn(ours, WebSocketProtocol.processData, {"create_xor_masker"})
        self.assertIs(upstream.create_xor_masker, create_xor_masker)
        self.assertIs(ours.__globals__["create_xor_masker"], fastCreateXorMasker)

    def test_lazyLogCopies(self) -> None:
        """
        C{processHandshake}, C{_connectionLost} and the inner
        C{_connectionMade} are Autobahn's code with lazy versions of the
        functions that format their debug lines' arguments (and nothing
        else replaced); Autobahn's module keeps its own.
        """
        for ours, theirs, replaced in [
            (
                AutobahnServerProtocol.processHandshake,
                WebSocketServerProtocol.processHandshake,
                {"hltype", "hlval"},
            ),
            (
                AutobahnServerProtocol._connectionLost,
                WebSocketServerProtocol._connectionLost,
                {"hltype", "hlval"},
            ),
            (_protocolConnectionMade, WebSocketProtocol._connectionMade, {"pformat"}),
        ]:
            self.assertCopyDiffersOnlyIn(ours, theirs, replaced)
        self.assertIs(upstream.hltype, autobahn.util.hltype)
        self.assertIs(upstream.pformat, pprint.pformat)

    def test_lazyLogText(self) -> None:
        """
        A connection whose debug lines are not logged (the default level)
        formats none of their arguments: Autobahn's C{hl} (under
        C{hltype}/C{hlval}, colouring with click when installed) and
        C{pformat} are not called from the opening handshake to the end of
        the stream; a lazy argument formats to Autobahn's text when it is.
        """
        calls: list[str] = []
        self.patch(autobahn.util, "hl", lambda *a, **k: calls.append("hl") or "")
        self.patch(upstream, "pformat", lambda *a, **k: calls.append("pformat") or "")
        session = WebSocketSession(RecordingSink(), WebSocketOptions(), reactor=Clock())
        session.feed(upgradeRequest())
        self.assertTrue(session.upgraded)
        session.feed(b"\x88\x82\0\0\0\0\x03\xe8")  # Close 1000
        session.connectionLost()
        self.assertEqual(calls, [])
        self.assertEqual(str(_LAZY_LOG_ARGUMENTS["pformat"]([1])), "[1]")
        self.assertEqual(calls, [])
        self.assertEqual(f"{_LAZY_LOG_ARGUMENTS['hlval'](42, color='green')}", "")
        self.assertEqual(calls, ["hl"])

    def test_classShadowsAreAutobahnAttributes(self) -> None:
        """
        Every per-connection attribute shadowed at class level (for
        C{compact}) is one Autobahn's protocol sets on its instances.
        """
        source = inspect.getsource(WebSocketProtocol) + inspect.getsource(WebSocketServerProtocol)
        shadows = [
            name
            for name, value in vars(AutobahnServerProtocol).items()
            if not name.startswith("_")
            and not callable(value)
            and not isinstance(value, (property, staticmethod))
            and name not in ("suspended",)
        ]
        self.assertGreater(len(shadows), 25)
        for name in shadows:
            self.assertIn(f"self.{name} = ", source, name)

    def test_listenersDefault(self) -> None:
        """
        Autobahn's observer mixin keeps C{_listeners} C{None} until something
        subscribes: C{onMessageEnd} skips the event then.
        """
        self.assertIsNone(WebSocketServerProtocol._listeners)

    def test_batchedTimer(self) -> None:
        """
        Autobahn schedules its timers through C{factory._batched_timer}:
        with L{useReactorTimer} the opening handshake timeout runs on the
        given clock.
        """
        factory = WebSocketServerFactory()
        clock = Clock()
        useReactorTimer(factory, clock)
        self.assertIsInstance(factory._batched_timer, ReactorTimer)
        session = WebSocketSession(
            RecordingSink(), WebSocketOptions(openHandshakeTimeout=3), reactor=clock
        )
        self.assertEqual([c.getTime() for c in clock.getDelayedCalls()], [3.0])
        session.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_safeCallAfterFire(self) -> None:
        """
        Cancelling a timer that already fired (Autobahn does) is harmless.
        """
        clock = Clock()
        call = SafeCall(clock.callLater(1, lambda: None))
        clock.advance(1)
        self.assertFalse(call.active())
        call.cancel()

    def test_configuredProtocolCopiesNothing(self) -> None:
        """
        A configured protocol carries the factory's settings on its class,
        so Autobahn's C{_connectionMade} has nothing to copy per connection.
        """
        factory = WebSocketServerFactory()
        factory.setProtocolOptions(maxMessagePayloadSize=1234)
        cls = configuredProtocol(AutobahnServerProtocol, factory, extra=1)
        self.assertEqual(cls.CONFIG_ATTRS, ())
        self.assertEqual(cls.maxMessagePayloadSize, 1234)
        self.assertEqual(cls.extra, 1)
        for name in WebSocketServerProtocol.CONFIG_ATTRS:
            self.assertTrue(hasattr(cls, name), name)

    def test_configuredProtocolIdleClock(self) -> None:
        """
        With a L{ReactorTimer} the configured protocol measures idleness on
        the timer's clock (the one the auto-ping timers run on); without
        one, on a monotonic clock.
        """
        factory = WebSocketServerFactory()
        self.assertIs(configuredProtocol(AutobahnServerProtocol, factory)._now, time.monotonic)
        clock = Clock()
        useReactorTimer(factory, clock)
        cls = configuredProtocol(AutobahnServerProtocol, factory)
        clock.advance(7)
        self.assertEqual(cls._now(), 7)

    def test_compactKeepsBehaviour(self) -> None:
        """
        After the handshake the session's protocol dictionary is compacted
        and the connection still echoes (the class-level values stand in).
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(compression=False), reactor=Clock())
        session.feed(upgradeRequest())
        self.assertTrue(session.upgraded)
        self.assertLess(len(vars(session._proto)), 30)
        self.assertEqual(
            session.feed(b"\x81\x82abcd" + bytes(a ^ b for a, b in zip(b"hi", b"ab", strict=True))),
            [(1, b"hi")],
        )
        session.connectionLost()


def _openPair(
    options: WebSocketOptions | None = None, extra: bytes = b""
) -> tuple[WebSocketSession, RecordingSink, WebSocketSession, RecordingSink]:
    """
    Two sessions opened by the same upgrade request (same response, same
    state), their sinks emptied: one to send through gnetcompat's
    C{sendMessage}, one through Autobahn's.
    """
    request = upgradeRequest(extra=extra)
    pair: list[Any] = []
    for _ in range(2):
        sink = RecordingSink()
        session = WebSocketSession(sink, options or WebSocketOptions(), reactor=Clock())
        session.feed(request)
        assert session.upgraded, sink.data
        sink.data.clear()
        pair += [session, sink]
    return pair[0], pair[1], pair[2], pair[3]


def _forbidSendFrame(session: WebSocketSession) -> None:
    """Make Autobahn's C{sendFrame} fail on this session's protocol."""

    def sendFrame(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fast path fell back to Autobahn's sendFrame")

    session._proto.sendFrame = sendFrame  # type: ignore[method-assign]


def _countSendFrame(session: WebSocketSession) -> list[int]:
    """Count the calls of Autobahn's C{sendFrame} on this session's protocol."""
    proto = session._proto
    calls: list[int] = []
    original = proto.sendFrame

    def sendFrame(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        original(*args, **kwargs)

    proto.sendFrame = sendFrame  # type: ignore[method-assign]
    return calls


def _stats(session: WebSocketSession) -> dict[str, int]:
    return dict(vars(session._proto.trafficStats))


#: payload lengths around the edges of the three length forms
_EDGES = [0, 1, 124, 125, 126, 127, 128, 65534, 65535, 65536, 65537, 2**16 + 1, 2**20 + 3]


class SendFastPathTests(SynchronousTestCase):
    """
    C{AutobahnServerProtocol.sendMessage} builds the frames of unfragmented,
    uncompressed server messages itself: byte for byte what Autobahn's
    C{sendMessage} and C{sendFrame} write, with the same traffic
    statistics; anything that changes the output goes through Autobahn.
    """

    @settings(max_examples=150, deadline=None)
    @given(
        length=st.one_of(st.sampled_from(_EDGES), st.integers(0, 70_000)),
        isBinary=st.booleans(),
        seed=st.integers(0, 2**32 - 1),
        repeat=st.integers(1, 3),
    )
    def test_sameBytesAsAutobahn(self, length: int, isBinary: bool, seed: int, repeat: int) -> None:
        """
        For any payload length (the 7-bit, 16-bit and 64-bit forms and
        their edges), text or binary, sent once or several times: the fast
        path (which never calls C{sendFrame}) writes the bytes Autobahn's
        C{sendMessage} writes and C{sendFrame} builds for the opcode, and
        leaves the same traffic statistics.
        """
        payload = random.Random(seed).randbytes(length)
        ours, ourSink, theirs, theirSink = _openPair()
        _forbidSendFrame(ours)
        for _ in range(repeat):
            ours.sendMessage(2 if isBinary else 1, payload)
            WebSocketServerProtocol.sendMessage(theirs._proto, payload, isBinary)
        self.assertEqual(b"".join(ourSink.data), b"".join(theirSink.data))
        self.assertEqual(_stats(ours), _stats(theirs))
        self.assertEqual(_stats(ours)["outgoingWebSocketMessages"], repeat)
        theirSink.data.clear()
        WebSocketServerProtocol.sendFrame(theirs._proto, 2 if isBinary else 1, payload)
        self.assertEqual(ourSink.data[0], b"".join(theirSink.data))

    def test_headerForms(self) -> None:
        """
        The three length forms of RFC 6455 section 5.2, written out: FIN,
        RSV 0, the opcode, no mask bit.
        """
        for length, isBinary, header in [
            (0, False, b"\x81\x00"),
            (125, True, b"\x82\x7d"),
            (126, False, b"\x81\x7e\x00\x7e"),
            (65535, True, b"\x82\x7e\xff\xff"),
            (65536, False, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        ]:
            session, sink, _, _ = _openPair()
            _forbidSendFrame(session)
            session.sendMessage(2 if isBinary else 1, b"x" * length)
            self.assertEqual(sink.data, [header + b"x" * length])

    def assertFallsBack(
        self,
        prepare: Callable[[WebSocketServerProtocol], object],
        send: Callable[[WebSocketServerProtocol], object] | None = None,
        options: WebSocketOptions | None = None,
        extra: bytes = b"",
        expected: type[BaseException] | None = None,
    ) -> None:
        """
        After C{prepare(proto)} on both sessions, C{send(proto)} (by default
        a 300-byte text message) goes through Autobahn's C{sendFrame} (or
        raises C{expected}, as Autobahn's C{sendMessage} does), and the bytes
        and statistics equal Autobahn's own C{sendMessage}'s.
        """
        ours, ourSink, theirs, theirSink = _openPair(options, extra)
        if send is None:

            def send(proto: WebSocketServerProtocol) -> None:
                proto.sendMessage(b"t" * 300, False)

        results = []
        for session, sendMessage in (
            (ours, None),
            (theirs, WebSocketServerProtocol.sendMessage),
        ):
            proto = session._proto
            prepare(proto)
            calls = _countSendFrame(session)
            if sendMessage is not None:
                # Autobahn's own sendMessage, on the same kind of protocol
                proto.sendMessage = sendMessage.__get__(proto)  # type: ignore[method-assign]
            if expected is not None:
                results.append(type(self.assertRaises(expected, send, proto)))
            else:
                send(proto)
                results.append(len(calls) > 0)
        self.assertEqual(results, [expected or True] * 2)
        self.assertEqual(ourSink.data, theirSink.data)
        self.assertEqual(_stats(ours), _stats(theirs))

    def test_compressionFallsBack(self) -> None:
        """
        With permessage-deflate negotiated every message goes through
        Autobahn (compressed, RSV1), even one sent uncompressed.
        """
        deflate = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        self.assertFallsBack(lambda p: self.assertIsNotNone(p._perMessageCompress), extra=deflate)
        self.assertFallsBack(
            lambda p: None,
            lambda p: p.sendMessage(b"u" * 300, True, doNotCompress=True),
            extra=deflate,
        )

    def test_optionsFallBack(self) -> None:
        """
        C{autoFragmentSize}, C{logFrames}, C{logOctets}, timings and
        C{maskServerFrames} change the output or its side effects: the
        message goes through Autobahn.
        """
        self.assertFallsBack(lambda p: None, options=WebSocketOptions(autoFragmentSize=100))
        for name in ("logFrames", "logOctets", "maskServerFrames"):
            ours, sink, _, _ = _openPair()
            setattr(ours._proto, name, True)
            calls = _countSendFrame(ours)
            ours.sendMessage(1, b"x")
            self.assertEqual(len(calls), 1, name)
            self.assertEqual(sink.data[0][1] & 0x80, 0x80 if name == "maskServerFrames" else 0)
        self.assertFallsBack(lambda p: p.setTrackTimings(True))

    def test_argumentsFallBack(self) -> None:
        """
        An explicit C{fragmentSize}, C{sync}, or queued C{sync} writes go
        through Autobahn (in order behind the queue).
        """
        self.assertFallsBack(lambda p: None, lambda p: p.sendMessage(b"f" * 300, False, 100))

        def queued(proto: WebSocketServerProtocol) -> None:
            # a write of Autobahn's send queue waits for its next turn
            proto.send_queue = deque([(b"queued", True)])
            proto.triggered = True

        self.assertFallsBack(queued)

    def test_refusalsAreAutobahns(self) -> None:
        """
        What Autobahn's C{sendMessage} refuses, the fast path refuses the
        same way: a payload that is not C{bytes}, an C{isBinary} or
        C{doNotCompress} that is not a C{bool}, a closed connection, a
        message over C{maxMessagePayloadSize}.
        """
        self.assertFallsBack(
            lambda p: None, lambda p: p.sendMessage(bytearray(b"x")), expected=AssertionError
        )
        self.assertFallsBack(
            lambda p: None, lambda p: p.sendMessage(b"x", 1), expected=AssertionError
        )
        self.assertFallsBack(
            lambda p: None,
            lambda p: p.sendMessage(b"x", doNotCompress=0),
            expected=AssertionError,
        )
        self.assertFallsBack(
            lambda p: setattr(p, "state", WebSocketProtocol.STATE_CLOSING),
            expected=Disconnected,
        )
        self.assertFallsBack(
            lambda p: None,
            options=WebSocketOptions(maxMessagePayloadSize=299, partialMessageBudget=0),
            expected=PayloadExceededError,
        )
