"""Tests for L{gnetcompat._xormask}: the small-payload masker equals Autobahn's."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat import _xormask
from gnetcompat._xormask import SMALL, SmallMasker, fastCreateXorMasker


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
        out = b"".join(m.process(data[a:b]) for a, b in zip(points, points[1:]))
        self.assertEqual(out, _reference(mask, data))
        self.assertEqual(m.pointer(), len(data))

    def test_matchesAutobahnMasker(self) -> None:
        """The output equals Autobahn's own masker's, chunk by chunk, after reset too."""
        assert _xormask._original is not None
        for n in (1, 3, 31, 32, 125, 126, 1000, SMALL - 1):
            mask, data = os.urandom(4), os.urandom(n)
            ours, theirs = SmallMasker(mask, n), _xormask._original(mask, n)
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

    def test_installedInAutobahn(self) -> None:
        """Importing gnetcompat.websocket installs the factory in Autobahn's protocol module."""
        import autobahn.websocket.protocol as p

        import gnetcompat.websocket  # noqa: F401

        self.assertIs(p.create_xor_masker, fastCreateXorMasker)
        _xormask.install()  # idempotent
        self.assertIs(p.create_xor_masker, fastCreateXorMasker)

    def test_badMask(self) -> None:
        """A mask that is not 4 bytes is refused."""
        self.assertRaises(ValueError, SmallMasker, b"abc")
