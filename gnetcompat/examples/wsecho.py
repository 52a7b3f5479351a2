"""
The gnet WebSocket echo server (gnet-examples' websocket/server), ported
line by line: every text or binary message is echoed with its opcode, the
per-connection codec lives in the Conn's context, and the connection count
is logged every 3 s.  Autobahn does the WebSocket protocol
(L{gnetcompat.websocket}).  Run it with::

    python -m gnetcompat.examples.wsecho --port 9080 --multicore=false

The production service built on the same handler shape (limits, metrics,
status page, graceful shutdown) is C{twistd -n gnetecho}
(L{gnetcompat.echo}).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

import gnetcompat as gnet
from gnetcompat.examples.goflag import addBool, addInt, newParser
from gnetcompat.websocket import WebSocketConn

__all__ = ["WsServer", "main"]


class WsServer(gnet.BuiltinEventEngine):
    """The seed's C{wsServer}: a WebSocket codec on every Conn, echoing."""

    log = Logger(namespace="wsecho")

    def __init__(self, addr: str, multicore: bool) -> None:
        self.addr = addr
        self.multicore = multicore
        self.eng: Any = None

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Remember the engine, say where we listen."""
        self.eng = eng
        self.log.info(
            "echo server with multi-core={multicore} is listening on {addr}",
            multicore=self.multicore,
            addr=self.addr,
        )
        return gnet.None_

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Give the Conn its WebSocket codec (the upgrade comes with the first traffic)."""
        c.SetContext(WebSocketConn(c))
        return None, gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        """Tell the codec the Conn is gone (its timers stop)."""
        c.Context().ConnectionLost(err)
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Decode what arrived and echo every complete message."""
        ws = c.Context()
        for msg in ws.ReadClientData():
            ws.WriteServerMessage(msg.opcode, msg.payload)
        return gnet.None_

    def OnTick(self) -> tuple[float, gnet.Action]:
        """Log the engine-wide connection count every 3 s."""
        self.log.info("[connected-count={count}]", count=self.eng.CountConnections())
        return 3.0, gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """The seed's C{main}: C{--port} (9080) and C{--multicore} (true)."""
    parser = newParser("gnet WebSocket echo server (gnetcompat)")
    addInt(parser, "port", 9080, "server port")
    addBool(parser, "multicore", True, "event loops sharing the handler (gnet's WithMulticore)")
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    multicore = args.multicore
    addr = f"tcp://127.0.0.1:{args.port}"
    # gnet's `err := gnet.Run(...)`: here an error raises, err is always nil
    gnet.Run(
        WsServer(addr, multicore),
        addr,
        gnet.WithMulticore(multicore),
        gnet.WithReusePort(True),
        gnet.WithTicker(True),
    )
    print("server exits:", None)


if __name__ == "__main__":
    main()
