"""
A length-prefixed codec server, shaped like gnet's C{TestSimServer}.

A frame is a 2-byte big-endian magic number (1314), a 4-byte big-endian body
length, then the body.  The server answers every frame with the same frame.
It shows the three things a gnet handler must get right with a stream:

  - decode with C{Peek} and C{Discard}: a partial frame stays buffered and
    is shown again, together with new bytes, on the next C{OnTraffic};
  - answer several frames with one C{Writev} (one frame: C{Write});
  - retained bytes never cause another C{OnTraffic} by themselves, so a
    handler that stops early (here: C{batchLimit} frames per call) must call
    C{Wake} to be called again for the rest.

A frame with a bad magic number closes the connection.  The frame format is
also gnet-examples' C{simple_protocol} (L{gnetcompat.examples.simple_protocol}
decodes with L{decode}).  Run it with::

    python -m gnetcompat.examples.codec --port 9000 --multicore=true --batch-limit N
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.echo import exampleParser

__all__ = ["MAGIC", "HEADER", "BadFrame", "decode", "encode", "CodecServer", "main"]

#: The magic number every frame starts with.
MAGIC = 1314
#: Magic (unsigned 16 bits) and body length (unsigned 32 bits), big-endian.
HEADER = struct.Struct(">HI")


def encode(body: bytes) -> bytes:
    """One frame carrying C{body}."""
    return HEADER.pack(MAGIC, len(body)) + body


class BadFrame(Exception):  # noqa: N818  (the example's public name)
    """The bytes in the buffer do not start with the magic number."""


def decode(c: Any) -> bytes | None:
    """
    The next whole frame's body in C{c}'s inbound buffer, consumed; C{None}
    (nothing consumed) when the buffer holds only part of a frame.

    @raise BadFrame: the buffer does not start with the magic number.
    """
    if c.InboundBuffered() < HEADER.size:
        return None
    magic, length = HEADER.unpack(c.Peek(HEADER.size))
    if magic != MAGIC:
        raise BadFrame(magic)
    if c.InboundBuffered() < HEADER.size + length:
        return None
    c.Discard(HEADER.size)
    if length == 0:
        return b""  # careful: Peek(0)/Discard(0) would mean "everything" in gnet
    body = c.Peek(length)
    c.Discard(length)
    return body


class CodecServer(gnet.BuiltinEventEngine):
    """
    Answer every frame with the same frame.

    @ivar batchLimit: the most frames decoded per C{OnTraffic} (0: no limit).
    @ivar wakes: how many times the handler had to ask for a C{Wake}.
    """

    def __init__(self, batchLimit: int = 0) -> None:
        self.batchLimit = batchLimit
        self.wakes = 0

    def decode(self, c: Any) -> bytes | None:
        """L{decode}: the next frame's body from C{c}, or C{None}."""
        return decode(c)

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Decode up to C{batchLimit} frames, answer them, Wake for the rest."""
        replies: list[bytes] = []
        try:
            while self.batchLimit <= 0 or len(replies) < self.batchLimit:
                body = self.decode(c)
                if body is None:
                    break
                replies.append(encode(body))
        except BadFrame:
            return gnet.Close
        if len(replies) == 1:
            c.Write(replies[0])
        elif replies:
            c.Writev(replies)
        if self.batchLimit > 0 and len(replies) == self.batchLimit and c.InboundBuffered() > 0:
            # retained bytes alone never call OnTraffic again: ask for it
            self.wakes += 1
            c.Wake(None)
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the codec on C{tcp://:PORT} until interrupted."""
    parser = exampleParser("gnetcompat length-prefixed codec server")
    parser.add_argument("--batch-limit", type=int, default=0, help="frames per OnTraffic (0: all)")
    args = parser.parse_args(argv)
    gnet.Run(
        CodecServer(args.batch_limit), f"tcp://:{args.port}", gnet.WithMulticore(args.multicore)
    )


if __name__ == "__main__":
    main()
