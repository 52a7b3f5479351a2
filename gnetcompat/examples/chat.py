# -*- test-case-name: tests.test_gnet_examples -*-
"""
A line chat server written for every mode, process workers included: each
line a client sends reaches every other client, whichever worker process
serves it, through C{eng.Broadcast(line, exclude=c.Handle())}.  (gnet-examples
has no chat; this is the engine-wide API's counterpart of its push.)  Run it
with::

    python -m gnetcompat.examples.chat --port 9000 --workers 2

and talk from several terminals with C{nc 127.0.0.1 9000}.  Flags:
C{--port} (9000), C{--multicore} (false: one event loop per CPU sharing
the handler when true), C{--workers N} (0; N worker processes, each with
its own copy of the handler).  The handler keeps no state of its own: the
engine knows every connection.

A new client is greeted with one line (C{welcome ADDR: N connected}; it is
in the engine once it has read it).  Lines from one client reach each other
client in the order they were sent (the bus keeps the order per sender).
A line longer than L{MAX_LINE} bytes closes its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.echo import exampleParser
from gnetcompat.examples.goflag import addInt

__all__ = ["MAX_LINE", "ChatServer", "main"]

log = logging.getLogger("chat")

#: the longest line (newline included) a client may send
MAX_LINE = 4096


class ChatServer(gnet.BuiltinEventEngine):
    """Broadcast each complete line to every other connection of the engine."""

    def __init__(self) -> None:
        self.eng: Any = None

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Keep the engine (C{Broadcast} and C{CountConnections} are engine-wide)."""
        self.eng = eng
        return gnet.None_

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Greet the newcomer with the engine-wide count."""
        addr = c.RemoteAddr().String()
        count = self.eng.CountConnections()
        log.info("%s joined (%d connected)", addr, count)
        return f"welcome {addr}: {count} connected\n".encode(), gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        """Log the departure."""
        log.info("%s left", c.RemoteAddr().String())
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Broadcast the complete lines; keep a partial one for later."""
        buf = c.Peek(-1)
        end = buf.rfind(b"\n") + 1
        if end == 0:
            return gnet.Close if len(buf) >= MAX_LINE else gnet.None_
        lines = buf[:end]
        if len(buf) - end >= MAX_LINE or max(map(len, lines.split(b"\n"))) >= MAX_LINE:
            return gnet.Close
        c.Discard(end)
        self.eng.Broadcast(lines, exclude=c.Handle())
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the chat on C{tcp://:PORT}: C{--port}, C{--multicore}, C{--workers}."""
    parser = exampleParser("gnetcompat line chat (engine-wide Broadcast)")
    addInt(parser, "workers", 0, "worker processes, each with its own handler (0: none)")
    args = parser.parse_args(argv)
    mode = (
        gnet.WithProcessWorkers(args.workers)
        if args.workers > 0
        else gnet.WithMulticore(args.multicore)
    )
    gnet.Run(ChatServer(), f"tcp://:{args.port}", mode)


if __name__ == "__main__":
    main()
