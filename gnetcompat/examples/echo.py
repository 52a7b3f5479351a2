# -*- test-case-name: tests.test_examples,tests.test_gnet_examples -*-
"""
A TCP (or unix socket) echo server: gnet's "hello world", gnet-examples'
C{echo_tcp} and C{echo_uds} ported line by line.

Every byte a client sends is written straight back.  Run it with::

    python -m gnetcompat.examples.echo --port 9000 --multicore=true
    python -m gnetcompat.examples.echo --sock echo.sock --multicore=true

and try it with C{nc 127.0.0.1 9000} (or C{nc -U echo.sock}).  The flags
are the Go programs': C{--port} (9000), C{--multicore} (false), and
C{echo_uds}' C{--sock PATH}, which serves C{unix://PATH} instead of TCP.
C{--multicore=true} gives one event loop per CPU sharing this one handler,
as in Go (see the README's Multicore section).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.goflag import addBool, addInt, addString, newParser

__all__ = ["EchoServer", "announce", "exampleParser", "main", "parseArgs"]

log = logging.getLogger("echo")


def announce(logger: logging.Logger, addr: str, multicore: bool) -> None:
    """Go's C{echo server with multi-core=%t is listening on %s} line (echo, http)."""
    logger.info("echo server with multi-core=%s is listening on %s", str(multicore).lower(), addr)


class EchoServer(gnet.BuiltinEventEngine):
    """
    Echo every byte back on the connection it arrived on (Go's
    C{echoServer}); says where it listens when it boots.
    """

    def __init__(self, addr: str = "", multicore: bool = False) -> None:
        self.addr = addr
        self.multicore = multicore
        self.eng: Any = None

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Keep the engine; log the address (when known)."""
        self.eng = eng
        if self.addr:
            announce(log, self.addr, self.multicore)
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Write back whatever is buffered."""
        c.Write(c.Next(-1))
        return gnet.None_


def exampleParser(description: str, multicore: bool = False) -> argparse.ArgumentParser:
    """
    A parser with the flags every example takes: C{--port} (9000) and
    C{--multicore} (default C{multicore}).
    """
    parser = newParser(description)
    addInt(parser, "port", 9000, "server port")
    addBool(
        parser, "multicore", multicore, "event loops sharing the handler (gnet's WithMulticore)"
    )
    return parser


def parseArgs(argv: Sequence[str] | None = None, description: str = "") -> argparse.Namespace:
    """The flags every example takes, parsed: C{--port} (9000) and C{--multicore} (false)."""
    return exampleParser(description).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the echo handler on C{tcp://:PORT} (or C{unix://SOCK}) until interrupted."""
    parser = exampleParser("gnetcompat TCP/unix echo server (gnet-examples echo_tcp, echo_uds)")
    addString(parser, "sock", "", "serve this unix socket path instead of TCP (echo_uds)")
    args = parser.parse_args(argv)
    addr = f"unix://{args.sock}" if args.sock else f"tcp://:{args.port}"
    echo = EchoServer(addr, args.multicore)
    gnet.Run(echo, echo.addr, gnet.WithMulticore(args.multicore))


if __name__ == "__main__":
    main()
