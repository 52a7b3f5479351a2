"""
A TCP echo server: gnet's "hello world".

Every byte a client sends is written straight back.  Run it with::

    python -m gnetcompat.examples.echo --port 9000 [--multicore]

and try it with C{nc 127.0.0.1 9000}.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet

__all__ = ["EchoServer", "main"]


class EchoServer(gnet.BuiltinEventEngine):
    """Echo every byte back on the connection it arrived on."""

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Write back whatever is buffered."""
        c.Write(c.Next(-1))
        return gnet.None_


def parseArgs(argv: Sequence[str] | None = None, description: str = "") -> argparse.Namespace:
    """The options every example takes: C{--port} and C{--multicore}."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    parser.add_argument(
        "--multicore", action="store_true", help="one worker process per CPU (gnet's WithMulticore)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the echo handler on C{tcp://:PORT} until interrupted."""
    args = parseArgs(argv, "gnetcompat TCP echo server")
    gnet.Run(EchoServer(), f"tcp://:{args.port}", gnet.WithMulticore(args.multicore))


if __name__ == "__main__":
    main()
