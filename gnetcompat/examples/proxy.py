# -*- test-case-name: tests.test_proxy -*-
"""
A stream proxy in gnet's style (gnet's C{TestStreamProxyServer}): one engine
serves the front end and, for each front connection, dials a back end with
C{c.EventLoop().Register(NewContext(None, front), addr)} on the same loop.
Bytes are relayed both ways with C{WriteTo}; closing either side closes the
other (the front's C{OnClose} closes its back end synchronously with
C{EventLoop().Close}).

Run it::

    python -m gnetcompat.examples.proxy --listen tcp://:9000 \\
        --backend tcp://127.0.0.1:9001 --backend unix:///tmp/echo.sock

Back ends may be tcp, unix or udp addresses (a udp back end receives each
relayed chunk as one datagram); they are used round robin.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger

from gnetcompat import Action, BuiltinEventEngine, Run
from gnetcompat.client import NewContext

__all__ = ["ProxyHandler", "main"]


class ProxyHandler(BuiltinEventEngine):
    """
    Relay every front-end connection to a back end.

    A front conn's C{Context()} is C{None} until its back end is open, then
    the back-end conn; a back-end conn's C{Context()} is its front conn from
    the start (set by C{Register} before C{OnOpen}).  Bytes a front sends
    before its back end is open stay buffered and are flushed by a C{Wake}
    from the back end's C{OnOpen}.

    @ivar backends: the back-end addresses (C{scheme://...}), used round robin.
    """

    log = Logger()

    def __init__(self, backends: Sequence[str]) -> None:
        if not backends:
            raise ValueError("ProxyHandler needs at least one back-end address")
        self.backends = list(backends)
        self._next = itertools.cycle(self.backends)
        self._backendConns: set = set()
        self.engine: Any = None

    def isBackend(self, c: Any) -> bool:
        """True for a conn this proxy dialled."""
        return c in self._backendConns

    def OnBoot(self, eng: Any) -> Action:
        self.engine = eng
        return Action.NONE

    def OnOpen(self, c: Any) -> Any:
        front = c.Context()
        if front is not None:  # a back end, registered for `front`
            return self.backendOpened(c, front)
        return self.frontOpened(c)

    def frontOpened(self, c: Any) -> Any:
        """Dial a back end for the new front conn C{c}."""
        addr = next(self._next)
        d = c.EventLoop().Register(NewContext(None, c), addr)
        d.addCallback(self.registered, c, addr)
        return None, Action.NONE

    def registered(self, result: Any, front: Any, addr: str) -> None:
        """The back end of C{front} is open, or failed: then close the front."""
        if result.Err is not None:
            self.log.warn("back end {addr} failed: {err}", addr=addr, err=result.Err)
            if not front.closed and not self.engine.stopping:
                front.Close()

    def backendOpened(self, c: Any, front: Any) -> Any:
        """Link C{c} and its C{front}; wake the front to flush what it sent."""
        self._backendConns.add(c)
        if front.closed:
            return None, Action.CLOSE
        front.SetContext(c)
        front.Wake(None)
        return None, Action.NONE

    def OnTraffic(self, c: Any) -> Action:
        peer = c.Context()
        if peer is None or peer.closed:
            return Action.NONE  # no back end yet: keep the bytes, Wake comes later
        c.WriteTo(peer)
        return Action.NONE

    def OnClose(self, c: Any, err: BaseException | None) -> Action:
        peer = c.Context()
        if self.isBackend(c):
            self._backendConns.discard(c)
            if peer is not None and not peer.closed:
                peer.Close()
            return Action.NONE
        if peer is not None and not peer.closed:
            # synchronous: the back end's OnClose runs inside this call
            res = c.EventLoop().Close(peer)
            if res is not None:
                return Action.SHUTDOWN
        return self.frontClosed(c, err)

    def frontClosed(self, c: Any, err: BaseException | None) -> Action:
        """A front conn is gone (its back end already closed); override to count."""
        return Action.NONE


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: C{--listen ADDR --backend ADDR [--backend ADDR ...]}."""
    p = argparse.ArgumentParser(description="gnetcompat stream proxy")
    p.add_argument("--listen", default="tcp://:9000", help="front-end address (scheme://...)")
    p.add_argument("--backend", action="append", required=True, help="back-end address, repeatable")
    args = p.parse_args(argv)
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    Run(ProxyHandler(args.backend), args.listen)


if __name__ == "__main__":
    main()
