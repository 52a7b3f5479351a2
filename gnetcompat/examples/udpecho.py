"""
A UDP echo server.

Each datagram is answered with the same bytes, sent back to its sender.
Server-side UDP has no connection: C{OnTraffic} gets a throwaway Conn per
datagram, and there is no C{OnOpen}/C{OnClose}.  Run it with::

    python -m gnetcompat.examples.udpecho --port 9000 [--multicore]

and try it with C{nc -u 127.0.0.1 9000}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.echo import parseArgs

__all__ = ["UDPEchoServer", "main"]


class UDPEchoServer(gnet.BuiltinEventEngine):
    """Send every datagram back to its sender."""

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Reply with the datagram (C{Write} on a UDP Conn answers the sender)."""
        c.Write(c.Next(-1))
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the UDP echo handler on C{udp://:PORT} until interrupted."""
    args = parseArgs(argv, "gnetcompat UDP echo server")
    gnet.Run(UDPEchoServer(), f"udp://:{args.port}", gnet.WithMulticore(args.multicore))


if __name__ == "__main__":
    main()
