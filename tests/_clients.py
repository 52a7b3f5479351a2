"""
Blocking loopback clients for the echo service's suites (run them in a
thread): a WebSocket echo session, a plain HTTP GET, and L{poll}, a bounded
wait on a condition inside trial's reactor.
"""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

#: seconds any single client operation may take
IO_TIMEOUT = 10.0


# -- clients (run in threads) --------------------------------------------------------


def echoSession(port: int, messages: list[Any]) -> list[Any]:
    """Open a WebSocket, echo each message, close with 1000; return the echoes."""
    from websockets.sync.client import connect

    got = []
    with connect(
        f"ws://127.0.0.1:{port}/", open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT
    ) as ws:
        for m in messages:
            ws.send(m)
            got.append(ws.recv(timeout=IO_TIMEOUT))
    return got


def readAll(sock: socket.socket) -> bytes:
    """Read until EOF (bounded by the socket timeout)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return out
        if not chunk:
            return out
        out += chunk


def plainGet(port: int, path: str = "/") -> bytes:
    """A plain HTTP/1.1 GET (no Upgrade) on the echo port; the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return readAll(s)


async def poll(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Call C{check} (may return a Deferred or coroutine) until truthy, at most C{timeout} s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if isinstance(last, Deferred) or inspect.iscoroutine(last):
            last = await last
        if last:
            return last
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
