"""
A UDP echo server: gnet-examples' C{echo_udp}, ported line by line.

Each datagram is answered with the same bytes, sent back to its sender.
Server-side UDP has no connection: C{OnTraffic} gets a throwaway Conn per
datagram, and there is no C{OnOpen}/C{OnClose}.  Run it with::

    python -m gnetcompat.examples.udpecho --port 9000 --multicore=true --reuseport=true

and try it with C{nc -u 127.0.0.1 9000}.  The flags are the Go program's:
C{--port} (9000), C{--multicore} (false), C{--reuseport} (false; gnet turns
it on for UDP anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.echo import exampleParser
from gnetcompat.examples.goflag import addBool

__all__ = ["UDPEchoServer", "main"]


class UDPEchoServer(gnet.BuiltinEventEngine):
    """Send every datagram back to its sender."""

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Reply with the datagram (C{Write} on a UDP Conn answers the sender)."""
        c.Write(c.Next(-1))
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the UDP echo handler on C{udp://:PORT} until interrupted."""
    parser = exampleParser("gnetcompat UDP echo server (gnet-examples echo_udp)")
    addBool(parser, "reuseport", False, "SO_REUSEPORT (gnet's WithReusePort)")
    args = parser.parse_args(argv)
    echo = UDPEchoServer()
    gnet.Run(
        echo,
        f"udp://:{args.port}",
        gnet.WithMulticore(args.multicore),
        gnet.WithReusePort(args.reuseport),
    )


if __name__ == "__main__":
    main()
