"""
Tests for L{gnetcompat.websocket._xormask}: the small-payload masker equals Autobahn's,
and only gnetcompat's own WebSocket protocol uses it.
"""

from __future__ import annotations

import itertools
import os

from autobahn.websocket import xormasker
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat.websocket import WebSocketOptions, WebSocketSession
from gnetcompat.websocket._xormask import SMALL, SmallMasker, fastCreateXorMasker

from ._hardening_util import frame, upgradeRequest
from ._sink import RecordingSink


def _reference(mask: bytes, data: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class SmallMaskerTests(SynchronousTestCase):
    """SmallMasker applies RFC 6455 masking exactly, in any chunking."""

    @settings(max_examples=200, deadline=None)
    @given(
        mask=st.binary(min_size=4, max_size=4),
        data=st.binary(max_size=SMALL),
        cuts=st.lists(st.integers(min_value=0, max_value=SMALL), max_size=6),
    )
    def test_matchesReferenceInAnyChunking(self, mask: bytes, data: bytes, cuts: list) -> None:
        """Processing the payload in arbitrary chunks gives the RFC 6455 result."""
        m = SmallMasker(mask)
        points = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
        out = b"".join(m.process(data[a:b]) for a, b in itertools.pairwise(points))
        self.assertEqual(out, _reference(mask, data))
        self.assertEqual(m.pointer(), len(data))

    def test_matchesAutobahnMasker(self) -> None:
        """The output equals Autobahn's own masker's, chunk by chunk, after reset too."""
        for n in (1, 3, 31, 32, 125, 126, 1000, SMALL - 1):
            mask, data = os.urandom(4), os.urandom(n)
            ours, theirs = SmallMasker(mask, n), xormasker.create_xor_masker(mask, n)
            for chunk in (data[:7], data[7:19], data[19:]):
                self.assertEqual(ours.process(chunk), theirs.process(chunk))
            ours.reset()
            theirs.reset()
            self.assertEqual(ours.process(data), theirs.process(data))

    def test_factoryChoosesBySize(self) -> None:
        """Small payloads get SmallMasker; large ones (and unknown lengths) Autobahn's."""
        self.assertIsInstance(fastCreateXorMasker(b"abcd", 32), SmallMasker)
        self.assertNotIsInstance(fastCreateXorMasker(b"abcd", SMALL), SmallMasker)
        self.assertNotIsInstance(fastCreateXorMasker(b"abcd", None), SmallMasker)

    def test_badMask(self) -> None:
        """A mask that is not 4 bytes is refused."""
        self.assertRaises(ValueError, SmallMasker, b"abc")


class ScopeTests(SynchronousTestCase):
    """
    The fast masker applies to gnetcompat's sessions only: importing
    gnetcompat patches nothing in Autobahn.
    """

    def test_autobahnUntouched(self) -> None:
        """
        After importing gnetcompat and its WebSocket layer, Autobahn's
        protocol module and every Autobahn protocol still use Autobahn's own
        C{create_xor_masker}.
        """
        import autobahn.websocket.protocol as p
        from autobahn.twisted.websocket import (
            WebSocketClientProtocol,
            WebSocketServerProtocol,
        )

        import gnetcompat
        import gnetcompat.websocket  # noqa: F401

        self.assertIs(p.create_xor_masker, xormasker.create_xor_masker)
        self.assertIsNot(p.create_xor_masker, fastCreateXorMasker)
        self.assertTrue(xormasker.create_xor_masker.__module__.startswith("autobahn."))
        for cls in (WebSocketServerProtocol, WebSocketClientProtocol):
            self.assertIs(
                cls.processData.__globals__["create_xor_masker"], xormasker.create_xor_masker
            )

    def maskerFor(self, size: int) -> object:
        """
        The masker a gnetcompat session unmasks a client frame of C{size}
        payload bytes with (the frame's header and first payload byte fed).
        """
        sink = RecordingSink()
        session = WebSocketSession(sink, WebSocketOptions(compression=False), reactor=Clock())
        session.feed(upgradeRequest())
        self.assertTrue(session.upgraded)
        head = frame(2, b"x" * size, mask=b"abcd")
        session.feed(head[: len(head) - size + 1])
        masker = session._proto.current_frame_masker
        session.connectionLost()
        return masker

    def test_sessionsUseFastMasker(self) -> None:
        """
        A gnetcompat session unmasks small payloads with L{SmallMasker} and
        large ones with Autobahn's masker.
        """
        self.assertIsInstance(self.maskerFor(32), SmallMasker)
        self.assertIsInstance(self.maskerFor(SMALL - 1), SmallMasker)
        self.assertNotIsInstance(self.maskerFor(SMALL), SmallMasker)
