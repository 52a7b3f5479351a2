# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{custom_codec/protocol}: C{CustomLengthFieldProtocol}, a
frame with a header of version (unsigned 16 bits), action type (unsigned 16
bits) and data length (unsigned 32 bits), big-endian, then the data.

The version must be L{DefaultProtocolVersion} and the action one of
L{ActionPing}, L{ActionPong}, L{ActionData}; anything else empties the
connection's inbound buffer (Go's C{ResetBuffer}) and is an error, after
which the server closes the connection.  A frame with no data is decoded
as C{b""} (the Go v1 codec left it in the buffer).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ActionData",
    "ActionPing",
    "ActionPong",
    "CustomLengthFieldProtocol",
    "DefaultHeadLength",
    "DefaultProtocolVersion",
    "NotNormalProtocol",
    "pack",
]

log = logging.getLogger("custom_codec")

DefaultHeadLength = 8
DefaultProtocolVersion = 0x8001  # test protocol version
ActionPing = 0x0001  # ping
ActionPong = 0x0002  # pong
ActionData = 0x00F0  # business

_HEADER = struct.Struct(">HHI")


class NotNormalProtocol(ValueError):  # noqa: N818  (Go's error text)
    """The header's version or action type is not this protocol's."""


def isCorrectAction(actionType: int) -> bool:
    """Whether C{actionType} is one the protocol knows."""
    return actionType in (ActionPing, ActionPong, ActionData)


@dataclass
class CustomLengthFieldProtocol:
    """The header's fields (a connection's C{Context()} holds the ones to reply with)."""

    Version: int = 0
    ActionType: int = 0
    DataLength: int = 0
    Data: bytes = b""

    def Encode(self, c: Any, buf: bytes) -> bytes:
        """C{buf} framed with the version and action type in C{c.Context()}."""
        return pack(c.Context(), buf)

    def Decode(self, c: Any) -> bytes | None:
        """
        The next frame's data from C{c}'s inbound buffer, consumed; C{None}
        (nothing consumed) while the frame is incomplete.

        @raise NotNormalProtocol: a bad version or action type (the inbound
            buffer is emptied).
        """
        if c.InboundBuffered() < DefaultHeadLength:
            return None
        pbVersion, actionType, dataLength = _HEADER.unpack(c.Peek(DefaultHeadLength))
        if pbVersion != DefaultProtocolVersion or not isCorrectAction(actionType):
            c.Discard(-1)
            log.warning(
                "not normal protocol: %d %d %d %d",
                pbVersion,
                DefaultProtocolVersion,
                actionType,
                dataLength,
            )
            raise NotNormalProtocol("not normal protocol")
        protocolLen = DefaultHeadLength + dataLength
        if c.InboundBuffered() < protocolLen:
            return None
        c.Discard(DefaultHeadLength)
        if dataLength == 0:
            return b""  # Discard(0)/Peek(0) would mean "everything" in gnet
        data = c.Peek(dataLength)
        c.Discard(dataLength)
        return data


def pack(item: CustomLengthFieldProtocol, buf: bytes) -> bytes:
    """C{buf} framed with C{item}'s version and action type."""
    return _HEADER.pack(item.Version, item.ActionType, len(buf)) + buf
