"""
Canary tests for L{gnetcompat._autobahncompat}: the Autobahn code that
gnetcompat copies, overrides or relies on is the code it was written
against.  An Autobahn upgrade that changes any of it fails here, in one
place, naming what to re-check.
"""

from __future__ import annotations

import dis
import hashlib
import inspect

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket import protocol as upstream
from autobahn.websocket.compress import PerMessageDeflate
from autobahn.websocket.protocol import WebSocketProtocol, WebSocketServerProtocol
from autobahn.websocket.xormasker import create_xor_masker
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat._autobahncompat import (
    AutobahnServerProtocol,
    ReactorTimer,
    SafeCall,
    configuredProtocol,
    useReactorTimer,
)
from gnetcompat._wsproto import WebSocketOptions, WebSocketSession
from gnetcompat._xormask import fastCreateXorMasker

from ._hardening_util import upgradeRequest
from ._sink import RecordingSink

_OWNERS = {
    "PerMessageDeflate": PerMessageDeflate,
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
        # CONFIG_ATTRS copying and its pformat (configuredProtocol)
        "WebSocketProtocol._connectionMade": ("7ac58d8bb6c3c752", "configuredProtocol, attach"),
        "WebSocketProtocol._dataReceived": ("b6616694f9d65410", "receive"),
        "WebSocketProtocol._connectionLost": ("8d53cb80c1e9f3de", "lose"),
        # refuses to send outside STATE_OPEN (sendMessageWhileClosing)
        "WebSocketProtocol.sendMessage": ("048d6bcf0d712309", "sendMessageWhileClosing"),
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
        # overridden in gnetcompat._wsproto._SessionProtocol (holding, status page)
        "WebSocketProtocol.sendCloseFrame": ("a511406d6b0d711e", "_wsproto holding"),
        "WebSocketProtocol.dropConnection": ("149c74c9a251a7b1", "_wsproto holding"),
        "WebSocketServerProtocol.processHandshake": (
            "0055f4d349937673",
            "_wsproto processHandshake",
        ),
        "WebSocketServerProtocol.sendServerStatus": ("238337e44f003835", "_wsproto status page"),
        "WebSocketServerProtocol.sendRedirect": ("39246aa798870399", "_wsproto status page"),
        "WebSocketServerProtocol.failHandshake": ("354c2c03cca517fb", "_wsproto failHandshake"),
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

    def test_processDataCopyDiffersOnlyInMasker(self) -> None:
        """
        Our C{processData} is Autobahn's code object, seeing Autobahn's
        module globals but for C{create_xor_masker}; the upstream module
        keeps its own.
        """
        ours = AutobahnServerProtocol.processData
        theirs = WebSocketProtocol.processData
        self.assertIs(ours.__code__, theirs.__code__)
        self.assertIs(upstream.create_xor_masker, create_xor_masker)
        self.assertIs(ours.__globals__["create_xor_masker"], fastCreateXorMasker)
        names = {i.argval for i in dis.get_instructions(theirs) if i.opname == "LOAD_GLOBAL"}
        self.assertIn("create_xor_masker", names)
        for name in names - {"create_xor_masker"}:
            self.assertIs(
                ours.__globals__.get(name, ours.__globals__["__builtins__"].get(name)),
                theirs.__globals__.get(name, theirs.__globals__["__builtins__"].get(name)),
                name,
            )

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
