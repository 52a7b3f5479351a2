# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{custom_codec/client}, ported to gnet v2: a gnet client
(C{NewClient}, C{Start}, C{Dial}) sends C{count} C{hello} frames with
C{AsyncWrite} and waits until as many echoes came back.  Run it with::

    python -m gnetcompat.examples.custom_codec.client --port 9000 --count 10

Flags as in Go: C{--port} (9000), C{--count} (10).  Departure: the wait for
the echoes gives up after L{TIMEOUT} seconds (exit status 1), and the client
is stopped before exiting.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.custom_codec.protocol import (
    ActionData,
    CustomLengthFieldProtocol,
    DefaultProtocolVersion,
    pack,
)
from gnetcompat.examples.goflag import addInt, newParser

__all__ = ["TIMEOUT", "CodeClient", "WaitGroup", "main"]

log = logging.getLogger("custom_codec.client")

#: seconds to wait for the echoes
TIMEOUT = 30.0


class WaitGroup:
    """Go's C{sync.WaitGroup}, with a bounded C{Wait}."""

    def __init__(self) -> None:
        self._n = 0
        self._cond = threading.Condition()

    def Add(self, delta: int) -> None:
        """Add C{delta} to the count of things to wait for."""
        with self._cond:
            self._n += delta
            if self._n <= 0:
                self._cond.notify_all()

    def Done(self) -> None:
        """One thing is done."""
        self.Add(-1)

    def Wait(self, timeout: float | None = None) -> bool:
        """Block until the count is 0 (C{False}: C{timeout} seconds passed first)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._n <= 0, timeout)


class CodeClient(gnet.BuiltinEventEngine):
    """Go's C{codeClient}: log each echoed frame and mark it done."""

    def __init__(self, codec: CustomLengthFieldProtocol) -> None:
        self.codec = codec
        self.wg = WaitGroup()
        self.received: list[bytes] = []

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Keep the protocol header's parameters in the connection's context."""
        c.SetContext(
            CustomLengthFieldProtocol(Version=DefaultProtocolVersion, ActionType=ActionData)
        )
        return None, gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """One C{Done} per frame received."""
        while (frame := self.codec.Decode(c)) is not None:
            log.info("received: %s", frame.decode("utf-8", "replace"))
            self.received.append(frame)
            self.wg.Done()
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> int:
    """Go's C{main}: dial C{127.0.0.1:PORT}, send C{count} frames, wait; the exit status."""
    parser = newParser("gnet-examples custom_codec client, ported to gnetcompat")
    addInt(parser, "port", 9000, "server port")
    addInt(parser, "count", 10, "message count")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    addr = f"127.0.0.1:{args.port}"

    codec = CustomLengthFieldProtocol()
    cs = CodeClient(codec)
    client = gnet.NewClient(cs, gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithTCPKeepAlive(5 * 60))
    client.Start()
    try:
        conn = client.Dial("tcp", addr)
        try:
            cs.wg.Add(args.count)
            item = CustomLengthFieldProtocol(Version=DefaultProtocolVersion, ActionType=ActionData)
            for _ in range(args.count):
                conn.AsyncWrite(pack(item, b"hello"))
            if not cs.wg.Wait(TIMEOUT):  # wait for the echoes of the async writes
                log.error("only %d of %d echoes in %g s", len(cs.received), args.count, TIMEOUT)
                return 1
        finally:
            conn.Close()
    finally:
        client.Stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
