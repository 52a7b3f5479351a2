# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{simple_protocol/protocol}: C{SimpleCodec}.

A packet is a 2-byte big-endian magic number (1314), a 4-byte big-endian
body length, then the body::

    0           2                       6
    +-----------+-----------------------+
    |   magic   |       body len        |
    +-----------+-----------+-----------+
    |           body bytes ...          |
    +-----------------------------------+

(the frame of L{gnetcompat.examples.codec}, which this codec uses).  Go's
C{Decode} returns C{ErrIncompletePacket} for a partial packet; here it
returns C{None} and raises L{InvalidPacket} for a bad magic number.
"""

from __future__ import annotations

from typing import Any

from gnetcompat.examples.codec import HEADER, MAGIC, BadFrame, decode, encode

__all__ = ["InvalidPacket", "SimpleCodec"]

#: Go's C{errors.New("invalid magic number")}
InvalidPacket = BadFrame


class SimpleCodec:
    """Go's C{SimpleCodec}: stateless, one per connection (its C{Context()})."""

    def Encode(self, buf: bytes) -> bytes:
        """The packet carrying C{buf}."""
        return encode(buf)

    def Decode(self, c: Any) -> bytes | None:
        """
        The next whole packet's body from C{c}'s inbound buffer, consumed
        (C{Peek} then C{Discard}); C{None} when only part of one is there.

        @raise InvalidPacket: the buffer does not start with the magic number.
        """
        return decode(c)

    def Unpack(self, buf: bytes) -> bytes | None:
        """
        The body of the packet at the start of C{buf} (the client's side);
        C{None} when C{buf} is shorter than the packet.

        @raise InvalidPacket: C{buf} does not start with the magic number.
        """
        if len(buf) < HEADER.size:
            return None
        magic, length = HEADER.unpack_from(buf)
        if magic != MAGIC:
            raise InvalidPacket(magic)
        if len(buf) < HEADER.size + length:
            return None
        return bytes(buf[HEADER.size : HEADER.size + length])
