#!/usr/bin/env python3
"""
TLS figures for BENCHMARKS.rst: one client for every server.

    .venv/bin/python scripts/tlsbench.py [--duration 5] [--procs 2]

Servers (each started here, on 127.0.0.1, plain and TLS):
  gnetecho-1w   twistd -n gnetecho --multicore=false (--tls-cert/--tls-key)
  gnetecho      twistd -n gnetecho (one worker per CPU)
  autobahn      Autobahn's WebSocketServerFactory on Twisted (listenSSL for TLS)
  websockets    websockets' asyncio server (ssl=SSLContext for TLS)

Workloads (the client: C{--procs} processes of Python's C{ssl}/asyncio):
  handshakes    connect, TLS handshake, close, in a loop (handshakes/s; plain:
                TCP connects/s for scale)
  pingpong      64 connections x 32 B text messages, one in flight per
                connection (messages/s), over ws:// and wss://

The client is Python and shares the machine: figures are ratios between
servers measured with the same client, from one run each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
TWISTD = os.path.join(os.path.dirname(PY), "twistd")


# -- peers --------------------------------------------------------------------


def autobahnPeer(port: int, cert: str | None, key: str | None) -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor
    from twisted.internet import ssl as tssl

    class Echo(WebSocketServerProtocol):
        def onMessage(self, payload, isBinary):
            self.sendMessage(payload, isBinary)

    factory = WebSocketServerFactory()
    factory.protocol = Echo
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:  # type: ignore[arg-type]
            pc = tssl.PrivateCertificate.loadPEM(c.read() + b"\n" + k.read())
        reactor.listenSSL(port, factory, pc.options(), backlog=4096, interface="127.0.0.1")
    else:
        reactor.listenTCP(port, factory, backlog=4096, interface="127.0.0.1")
    reactor.run()


def websocketsPeer(port: int, cert: str | None, key: str | None) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        ctx = None
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        async with serve(echo, "127.0.0.1", port, ssl=ctx, compression=None, backlog=4096):
            await asyncio.Future()

    asyncio.run(main())


def serverCommand(name: str, port: int, cert: str | None, key: str | None) -> list[str]:
    tls = ["--tls-cert", cert, "--tls-key", key] if cert else []
    if name == "gnetecho-1w":
        return [
            TWISTD,
            "-n",
            "--pidfile=",
            "--logfile=/dev/null",
            "gnetecho",
            "--port",
            str(port),
            "--multicore=false",
            "--tick",
            "0",
            *tls,
        ]
    if name == "gnetecho":
        return [
            TWISTD,
            "-n",
            "--pidfile=",
            "--logfile=/dev/null",
            "gnetecho",
            "--port",
            str(port),
            "--tick",
            "0",
            *tls,
        ]
    return [PY, __file__, "--peer", name, "--port", str(port)] + (
        ["--cert", cert, "--key", key] if cert else []
    )


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitListening(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# -- the client ------------------------------------------------------------------


def clientContext(ca: str | None) -> ssl.SSLContext | None:
    if ca is None:
        return None
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def handshakeWorker(port: int, ca: str | None, duration: float, q: multiprocessing.Queue) -> None:
    ctx = clientContext(ca)
    n = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.close()
        n += 1
    q.put(n)


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


async def _pingpong(port: int, ca: str | None, conns: int, size: int, duration: float) -> int:
    ctx = clientContext(ca)
    count = 0
    stop = time.monotonic() + duration
    frame = _frame(b"x" * size)

    async def one() -> None:
        nonlocal count
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if ctx else None
        )
        key = base64.b64encode(os.urandom(16)).decode()
        w.write(
            f"GET / HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await r.readuntil(b"\r\n\r\n")
        while time.monotonic() < stop:
            w.write(frame)
            await r.readexactly(2 + size)
            count += 1
        w.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return count


def pingpongWorker(
    port: int, ca: str | None, conns: int, size: int, duration: float, q: multiprocessing.Queue
) -> None:
    q.put(asyncio.run(_pingpong(port, ca, conns, size, duration)))


def measure(target, args: tuple, procs: int, duration: float) -> float:
    q: multiprocessing.Queue = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=target, args=(*args, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    total = sum(q.get(timeout=duration + 60) for _ in ps)
    for p in ps:
        p.join(10)
    return total / duration


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer")
    ap.add_argument("--port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--servers", default="gnetecho-1w,gnetecho,autobahn,websockets")
    a = ap.parse_args()
    if a.peer:
        {"autobahn": autobahnPeer, "websockets": websocketsPeer}[a.peer](a.port, a.cert, a.key)
        return
    sys.path.insert(0, ROOT)
    from tests._tlscerts import makeCerts

    certs = makeCerts(tempfile.mkdtemp(prefix="tlsbench-"))
    rows = []
    for name in a.servers.split(","):
        result = {}
        for tls in (False, True):
            port = freePort()
            cmd = serverCommand(
                name, port, certs.serverCert if tls else None, certs.serverKey if tls else None
            )
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                waitListening(port)
                time.sleep(1.0)
                ca = certs.caCert if tls else None
                kind = "wss" if tls else "ws"
                result[f"hs-{kind}"] = measure(
                    handshakeWorker, (port, ca, a.duration), a.procs, a.duration
                )
                per = max(1, 64 // a.procs)
                result[f"pp-{kind}"] = measure(
                    pingpongWorker, (port, ca, per, 32, a.duration), a.procs, a.duration
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rows.append((name, result))
        print(name, {k: round(v) for k, v in result.items()}, flush=True)
    print()
    print(
        f"{'server':<14}{'TLS hs/s':>10}{'TCP conn/s':>12}"
        f"{'wss msg/s':>11}{'ws msg/s':>10}{'wss/ws':>8}"
    )
    for name, r in rows:
        print(
            f"{name:<14}{r['hs-wss']:>10.0f}{r['hs-ws']:>12.0f}{r['pp-wss']:>11.0f}{r['pp-ws']:>10.0f}"
            f"{r['pp-wss'] / r['pp-ws'] if r['pp-ws'] else float('nan'):>8.2f}"
        )


if __name__ == "__main__":
    main()
