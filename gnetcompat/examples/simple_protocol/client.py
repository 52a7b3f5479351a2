# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{simple_protocol/client}, ported line by line: C{concurrency}
connections (one thread each, as Go's goroutines), each reading the
C{sweetness\\r\\n} greeting and then running C{packet_count} rounds of
C{packet_batch} random packets of C{packet_size} bytes, checking that every
echo matches.  Run it with::

    python -m gnetcompat.examples.simple_protocol.client --network tcp \\
        --address 127.0.0.1:9000 --concurrency 100 --packet_size 1024 \\
        --packet_batch 20 --packet_count 1000

Flags and defaults as in Go: C{--network} (tcp; also tcp4, tcp6, unix),
C{--address} (127.0.0.1:9000, or a socket path), C{--concurrency} (1024),
C{--packet_size} (1024), C{--packet_batch} (100), C{--packet_count}
(10000).  Departures: every connection reads its greeting before any
starts its rounds (Python threads start far slower than goroutines, and the
server stops as soon as its count of connections is back to 0: a
connection dialled late would find it gone); a failing connection does not
crash the program at once (Go's C{panic}): the others finish and the exit
status is 1; every socket operation gives up after L{TIMEOUT} seconds (Go's
have no limit).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from gnetcompat.examples.goflag import addInt, addString, newParser
from gnetcompat.examples.simple_protocol.protocol import SimpleCodec

__all__ = ["TIMEOUT", "batchSendAndRecv", "dial", "main", "runClient"]

log = logging.getLogger("simple_protocol.client")

#: seconds any one socket operation may take
TIMEOUT = 30.0


class ClientError(Exception):
    """A connection saw something other than what the protocol promises."""


def dial(network: str, address: str) -> socket.socket:
    """
    Go's C{net.Dial(network, address)} for C{tcp}, C{tcp4}, C{tcp6}
    (C{host:port}, C{[v6]:port}, C{:port} for localhost) and C{unix} (a path).
    """
    if network == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(address)
        except BaseException:
            s.close()
            raise
        return s
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or ("::1" if network == "tcp6" else "127.0.0.1")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def runClient(
    network: str,
    addr: str,
    packetSize: int,
    batch: int,
    count: int,
    started: threading.Barrier | None = None,
) -> None:
    """
    One connection: the greeting, then (once every connection waiting on
    C{started} has its greeting) C{count} rounds of L{batchSendAndRecv}.
    Whoever fails must abort C{started}, or the others wait L{TIMEOUT}.
    """
    c = dial(network, addr)
    local = c.getsockname()
    log.info("connection=%s starts...", local)
    try:
        rd = c.makefile("rb")
        msg = rd.readline()
        expectMsg = b"sweetness\r\n"
        if msg != expectMsg:
            raise ClientError(
                f"the first response packet mismatches, expect: {expectMsg!r}, but got: {msg!r}"
            )
        if started is not None:
            started.wait()
        for _ in range(count):
            batchSendAndRecv(c, rd, packetSize, batch)
    finally:
        log.info("connection=%s stops...", local)
        c.close()


def batchSendAndRecv(c: socket.socket, rd: Any, packetSize: int, batch: int) -> None:
    """Send C{batch} random packets in one write; read and check all the echoes."""
    codec = SimpleCodec()
    requests = [os.urandom(packetSize) for _ in range(batch)]
    packets = [codec.Encode(req) for req in requests]
    packetLen = len(packets[0]) if packets else 0
    c.sendall(b"".join(packets))
    respPacket = rd.read(batch * packetLen)
    if len(respPacket) < batch * packetLen:
        raise ClientError(f"read: EOF after {len(respPacket)} of {batch * packetLen} bytes")
    for i, req in enumerate(requests):
        rsp = codec.Unpack(respPacket[i * packetLen :])
        if rsp != req:
            raise ClientError(
                f"request and response mismatch, conn={c.getsockname()}, "
                f"packet size: {packetSize}, batch: {batch}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Go's C{main}: run the clients, wait for all; the exit status (0: all done)."""
    parser = newParser("gnet-examples simple_protocol client, ported to Python")
    addString(parser, "network", "tcp", "--network tcp")
    addString(parser, "address", "127.0.0.1:9000", "--address 127.0.0.1:9000")
    addInt(parser, "concurrency", 1024, "--concurrency 500")
    addInt(parser, "packet_size", 1024, "--packet_size 256")
    addInt(parser, "packet_batch", 100, "--packet_batch 100")
    addInt(parser, "packet_count", 10000, "--packet_count 10000")
    args = parser.parse_args(argv)
    # gnet's default logger writes to the console
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    failures: list[BaseException] = []
    started = threading.Barrier(args.concurrency, timeout=TIMEOUT)

    def client() -> None:
        try:
            runClient(
                args.network,
                args.address,
                args.packet_size,
                args.packet_batch,
                args.packet_count,
                started,
            )
        except Exception as e:
            started.abort()
            log.error("client failed: %r", e)
            failures.append(e)

    log.info("start %d clients...", args.concurrency)
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        log.error("%d of %d clients failed", len(failures), args.concurrency)
        return 1
    log.info("all %d clients are done", args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
