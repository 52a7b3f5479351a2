# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{custom_codec/server}, ported to gnet v2: every frame is
logged and echoed in the same framing, with the version and action type
kept in the connection's C{Context()}.  Run it with::

    python -m gnetcompat.examples.custom_codec.server --port 9000 --multicore=true

Flags as in Go: C{--port} (9000), C{--multicore} (true).  The Go server can
also answer from a goroutine pool (its C{async} field, off in C{main}):
C{CustomCodecServer(..., asyncReply=True)} answers from a thread pool with
C{AsyncWrite}.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.custom_codec.protocol import (
    ActionData,
    CustomLengthFieldProtocol,
    DefaultProtocolVersion,
    NotNormalProtocol,
)
from gnetcompat.examples.echo import exampleParser

__all__ = ["CustomCodecServer", "main"]

log = logging.getLogger("custom_codec")


class CustomCodecServer(gnet.BuiltinEventEngine):
    """
    Go's C{customCodecServer}: decode frames with C{codec}, answer each one.

    @ivar asyncReply: answer from a thread pool with C{AsyncWrite} (Go's C{async}).
    """

    def __init__(
        self,
        addr: str,
        multicore: bool,
        asyncReply: bool = False,
        codec: CustomLengthFieldProtocol | None = None,
    ) -> None:
        self.addr = addr
        self.multicore = multicore
        self.asyncReply = asyncReply
        self.codec = codec if codec is not None else CustomLengthFieldProtocol()
        self.workerPool: ThreadPoolExecutor | None = None

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Start the pool (async replies); say where it listens."""
        if self.asyncReply:
            self.workerPool = ThreadPoolExecutor(max_workers=4)
        log.info(
            "Test codec server is listening on %s (multi-cores: %s, loops: %d)",
            self.addr,
            str(self.multicore).lower(),
            len(eng.loops),
        )
        return gnet.None_

    def OnShutdown(self, eng: Any) -> None:
        """Stop the pool."""
        if self.workerPool is not None:
            self.workerPool.shutdown(wait=False)

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Answer every whole frame; a frame of another protocol closes the connection."""
        while True:
            try:
                frame = self.codec.Decode(c)
            except NotNormalProtocol:
                return gnet.Close
            if frame is None:
                return gnet.None_
            log.info("frame: %s", frame.decode("utf-8", "replace"))
            # store the protocol header's parameters with c.SetContext()
            item = CustomLengthFieldProtocol(Version=DefaultProtocolVersion, ActionType=ActionData)
            c.SetContext(item)
            out = self.codec.Encode(c, frame)
            if self.workerPool is not None:
                self.workerPool.submit(c.AsyncWrite, out, None)
            else:
                c.Write(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Go's C{main}: C{--port} (9000), C{--multicore} (true)."""
    args = exampleParser(
        "gnet-examples custom_codec server, ported to gnetcompat", multicore=True
    ).parse_args(argv)
    addr = f"tcp://:{args.port}"
    cs = CustomCodecServer(addr, args.multicore, False, CustomLengthFieldProtocol())
    gnet.Run(cs, addr, gnet.WithMulticore(args.multicore), gnet.WithTCPKeepAlive(5 * 60))


if __name__ == "__main__":
    main()
