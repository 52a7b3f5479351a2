# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{push}, ported line by line: C{OnOpen} keeps every
connection in a map by its remote address, C{OnTick} writes
C{heart beating to ADDR} to each of them with C{AsyncWrite}, and whatever a
client sends is echoed.  Run it with::

    python -m gnetcompat.examples.push --port 9000 --tick 1s --multicore=true

and watch with C{nc 127.0.0.1 9000} (several at once).  The flags are the Go
program's: C{--port} (9000), C{--multicore} (true: one event loop per CPU,
all sharing this one handler and its map, as in Go), C{--tick} (Go's
duration syntax such as C{100ms} or C{1s}, or seconds; C{0} turns the ticker
off).  One departure: Go's default C{--tick} is the bare number 100, which Go
reads as 100 B{nanoseconds} (a busy loop pushing as fast as it can); this
port's default is 100 ms.

With C{--workers N} it runs N worker processes instead
(L{gnet.WithProcessWorkers}), each with its own copy of the handler: a map
filled in C{OnOpen} would then hold one worker's connections only, so that
mode uses L{EngineWidePushServer}, written for process workers on purpose:
C{OnTick} runs in worker 0 and pushes to every connection of every worker
through the engine's registry (C{eng.Conns()}, C{WithConnRegistry(True)})
and C{eng.AsyncWrite(handle, ...)}.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.goflag import addBool, addDuration, addInt, newParser

__all__ = ["EngineWidePushServer", "PushServer", "main"]

log = logging.getLogger("push")


class PushServer(gnet.BuiltinEventEngine):
    """
    Go's C{pushServer}: C{connectedSockets} maps each open connection's
    remote address to its Conn; every tick pushes one line to each.

    @ivar tick: seconds between pushes.
    """

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.connectedSockets: dict[str, Any] = {}

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Remember the connection under its remote address."""
        log.info("Socket with addr: %s has been opened...", c.RemoteAddr().String())
        self.connectedSockets[c.RemoteAddr().String()] = c
        return None, gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        """Forget it."""
        log.info("Socket with addr: %s is closing...", c.RemoteAddr().String())
        self.connectedSockets.pop(c.RemoteAddr().String(), None)
        return gnet.None_

    def OnTick(self) -> tuple[float, gnet.Action]:
        """Push C{heart beating to ADDR} to every connection (queued: C{AsyncWrite})."""
        log.info("It's time to push data to clients!!!")
        for addr, c in list(self.connectedSockets.items()):
            c.AsyncWrite(f"heart beating to {addr}\n".encode(), None)
        return self.tick, gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Echo what a client sends."""
        data = c.Next(-1)
        c.Write(data)
        return gnet.None_


class EngineWidePushServer(gnet.BuiltinEventEngine):
    """
    The push server written for process workers: no map of its own; C{OnTick}
    (in worker 0 only) pushes to every connection of the engine, whichever
    worker owns it, by handle.  Needs C{WithConnRegistry(True)} so that
    C{eng.Conns()} lists the other workers' connections; in one process it
    works unchanged.

    @ivar tick: seconds between pushes.
    """

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.eng: Any = None

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Keep the engine: its C{Conns()} and C{AsyncWrite} are engine-wide."""
        self.eng = eng
        return gnet.None_

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Log the connection (the registry announces it to the other workers)."""
        log.info("Socket with addr: %s has been opened...", c.RemoteAddr().String())
        return None, gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        """Log the close (the registry forgets it)."""
        log.info("Socket with addr: %s is closing...", c.RemoteAddr().String())
        return gnet.None_

    def OnTick(self) -> tuple[float, gnet.Action]:
        """Push C{heart beating to ADDR} to every connection of every worker."""
        log.info("It's time to push data to clients!!!")
        for handle in self.eng.Conns():
            self.eng.AsyncWrite(handle, f"heart beating to {handle.remote}\n".encode())
        return self.tick, gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Echo what a client sends."""
        c.Write(c.Next(-1))
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """
    Go's C{main}: C{--port} (9000), C{--multicore} (true), C{--tick}
    (100 ms; 0: no ticker); plus C{--workers N} (0: none) for process workers.
    """
    parser = newParser("gnet-examples push, ported to gnetcompat")
    addInt(parser, "port", 9000, "server port")
    addBool(parser, "multicore", True, "event loops sharing the handler (gnet's WithMulticore)")
    addDuration(parser, "tick", 0.1, "pushing tick (Go's default, a bare 100, is 100 ns)")
    addInt(parser, "workers", 0, "worker processes, each with its own handler (0: none)")
    args = parser.parse_args(argv)
    ticker = args.tick > 0
    addr = f"tcp://:{args.port}"
    if args.workers > 0:
        gnet.Run(
            EngineWidePushServer(args.tick),
            addr,
            gnet.WithProcessWorkers(args.workers),
            gnet.WithConnRegistry(True),
            gnet.WithTicker(ticker),
        )
        return
    push = PushServer(args.tick)
    gnet.Run(push, addr, gnet.WithMulticore(args.multicore), gnet.WithTicker(ticker))


if __name__ == "__main__":
    main()
