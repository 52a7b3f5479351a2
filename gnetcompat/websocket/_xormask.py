# -*- test-case-name: tests.test_xormask -*-
"""
A faster XOR masker for small WebSocket payloads, for Autobahn.

Autobahn unmasks every client frame with a masker from
C{autobahn.websocket.protocol.create_xor_masker}.  Its NVX (C) masker is
fast per byte, but building one costs about 9 µs (a CFFI allocation, a
finaliser and an import per frame) -- more than the rest of a 32-byte echo's
masking work by far.  For payloads under L{SMALL} bytes, L{SmallMasker} does
the same XOR with Python's big integers (about 2 µs for 32 bytes); larger
payloads keep Autobahn's own masker.  The maskers are interchangeable: same
C{process}/C{pointer}/C{reset} interface, same output for any chunking
(pinned by C{tests.test_xormask} against Autobahn's maskers).

Only gnetcompat's own server protocol uses it
(L{gnetcompat.websocket._autobahncompat.AutobahnServerProtocol} runs Autobahn's frame
parser with this factory); Autobahn's module and every other Autobahn
protocol in the process keep Autobahn's masker.  Only the masking primitive
changes: framing and every protocol decision stay Autobahn's.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.xormasker import create_xor_masker

__all__ = ["SMALL", "SmallMasker", "fastCreateXorMasker"]

#: payloads below this many bytes use L{SmallMasker} (measured crossover ~2-4 KiB)
SMALL = 2048


class SmallMasker:
    """RFC 6455 masking of a payload that may arrive in several chunks."""

    __slots__ = ("_mask", "_ptr")

    def __init__(self, mask: bytes, length: int | None = None) -> None:
        if len(mask) != 4:
            raise ValueError("a WebSocket mask is 4 bytes")
        self._mask = bytes(mask)
        self._ptr = 0

    def pointer(self) -> int:
        """How many payload bytes were processed."""
        return self._ptr

    def reset(self) -> None:
        """Start again at the first payload byte."""
        self._ptr = 0

    def process(self, data: bytes) -> bytes:
        """XOR the next chunk of the payload with the mask."""
        n = len(data)
        if not n:
            return b""
        m = self._mask
        r = self._ptr & 3
        if r:
            m = m[r:] + m[:r]
        self._ptr += n
        key = (m * ((n >> 2) + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
            n, "little"
        )


def fastCreateXorMasker(mask: bytes, length: int | None = None) -> Any:
    """Autobahn's C{create_xor_masker}, with L{SmallMasker} for small payloads."""
    if length is not None and length < SMALL:
        return SmallMasker(mask, length)
    return create_xor_masker(mask, length)
