# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{simple_protocol/server}, ported line by line: greets each
connection with C{sweetness\\r\\n}, echoes every packet (several at once
with one C{Writev}), and returns C{Shutdown} when its own count of open
connections falls back to 0 (so the engine stops once the client is done).
Run it with::

    python -m gnetcompat.examples.simple_protocol.server --port 9000 --multicore=true

Flags as in Go: C{--port} (9000), C{--multicore} (false).  With
C{--multicore=true} the event loops share this one handler, so
C{connected} counts every connection of the engine, as in Go (the Go program
uses atomics because its loops run in parallel; gnetcompat's loops never run
callbacks at the same time, so plain integers do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger

import gnetcompat as gnet
from gnetcompat.examples.echo import exampleParser
from gnetcompat.examples.simple_protocol.protocol import InvalidPacket, SimpleCodec

__all__ = ["SimpleServer", "main"]

log = Logger(namespace="simple_protocol")


class SimpleServer(gnet.BuiltinEventEngine):
    """
    Go's C{simpleServer}.

    @ivar connected: connections open now (this handler's own count).
    @ivar disconnected: connections closed so far.
    """

    def __init__(self, network: str, addr: str, multicore: bool) -> None:
        self.eng: Any = None
        self.network = network
        self.addr = addr
        self.multicore = multicore
        self.connected = 0
        self.disconnected = 0

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Say where the server runs."""
        log.info(
            "running server on {url} with multi-core={multicore}",
            url=f"{self.network}://{self.addr}",
            multicore=str(self.multicore).lower(),
        )
        self.eng = eng
        return gnet.None_

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        """Give the connection its codec, count it, greet it."""
        c.SetContext(SimpleCodec())
        self.connected += 1
        return b"sweetness\r\n", gnet.None_

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        """Count the close; the last one shuts the engine down."""
        if err is not None:
            log.warn(
                "error occurred on connection={addr}, {err}", addr=c.RemoteAddr().String(), err=err
            )
        self.disconnected += 1
        self.connected -= 1
        if self.connected == 0:
            log.info("all {n} connections are closed, shut it down", n=self.disconnected)
            return gnet.Shutdown
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Echo every whole packet buffered; keep a partial one."""
        codec = c.Context()
        packets = []
        while True:
            try:
                data = codec.Decode(c)
            except InvalidPacket as e:
                log.error("invalid packet: {err!r}", err=e)
                return gnet.Close
            if data is None:
                break
            packets.append(codec.Encode(data))
        if len(packets) > 1:
            c.Writev(packets)
        elif len(packets) == 1:
            c.Write(packets[0])
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Go's C{main}: C{--port} (9000), C{--multicore} (false); logs how it ended."""
    args = exampleParser("gnet-examples simple_protocol server, ported to gnetcompat").parse_args(
        argv
    )
    ss = SimpleServer("tcp", f":{args.port}", args.multicore)
    # Go's `err := gnet.Run(...)`: here a failure raises, so err is always nil
    gnet.Run(ss, f"{ss.network}://{ss.addr}", gnet.WithMulticore(args.multicore))
    log.info("server exits with error: {err}", err=None)


if __name__ == "__main__":
    main()
