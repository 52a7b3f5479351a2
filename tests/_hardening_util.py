"""
Helpers for the hardening tests (L{tests.test_hardening}) and C{scripts/soak}.

  - L{startServer}: the real C{twistd -n gnetecho} spawned with
    L{tests._procs.spawn}, as an L{EchoServer}: bounded waits on its log
    and its exit, its memory read from C{/proc/PID/status}.
  - L{WSClient}: a blocking raw-socket WebSocket client with a timeout on
    every call, meant to run in a thread (C{deferToThread}) so the reactor
    never blocks.  Frames are built here (masked with a zero key, which RFC
    6455 allows and which makes masking free), so tests can send exactly the
    bytes they want, valid or not.
  - L{runWsload}: the C load generator, its JSON result as a Deferred.

Nothing here sleeps on the reactor thread.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred

from ._procs import LISTENING, ProcessFailed, TwistdProcess, freePort, spawn, twistdArgv

#: The load generator (see /work/shared/bench/README.md); WSLOAD overrides.
#: scripts/bootstrap builds it next to the venv's python.
WSLOAD = os.environ.get("WSLOAD") or os.path.join(os.path.dirname(sys.executable), "wsload")

_MIB = 1024 * 1024


def procStatus(pid: int) -> dict[str, int]:
    """C{VmRSS}, C{VmHWM} (KiB) of C{pid}, from C{/proc/PID/status}; {} when gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def openFds(pid: int) -> int:
    """How many descriptors C{pid} has open (-1 when gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def openSockets(pid: int) -> int:
    """How many sockets C{pid} has open, the listener included (-1 when gone)."""
    try:
        n = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
        return n
    except OSError:
        return -1


class EchoServer(TwistdProcess):
    """
    One spawned C{twistd -n --pidfile= gnetecho --port PORT ...}
    (L{startServer}): a L{TwistdProcess} that knows its port and reads its
    memory from C{/proc}.

    @ivar port: the TCP port it serves on 127.0.0.1.
    """

    def __init__(self, reactor: Any, port: int) -> None:
        super().__init__(reactor)
        self.port = port

    def memory(self) -> dict[str, int]:
        """C{VmRSS}/C{VmHWM} in KiB."""
        return procStatus(self.pid)

    def rssKiB(self) -> int:
        """Current resident set size in KiB (0 when gone)."""
        return self.memory().get("VmRSS", 0)


def startServer(
    testCase: Any,
    *args: str,
    nofile: int | None = None,
    reactor: Any = None,
    timeout: float = 20.0,
) -> Deferred:
    """
    Spawn C{twistd -n --pidfile= gnetecho --port P --multicore=false ARGS}
    (L{spawn}: killed in C{testCase}'s cleanup if still running) and fire
    with the L{EchoServer} once it logs that it listens.

    @param nofile: run it with soft and hard C{RLIMIT_NOFILE} this low.
    """
    if reactor is None:
        from twisted.internet import reactor as _r

        reactor = _r
    port = freePort()
    argv = twistdArgv("gnetecho", "--port", str(port), "--multicore=false", *args)
    if nofile is not None:
        # set the limit, then exec twistd: same pid, so /proc and signals see twistd
        code = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        argv = [sys.executable, "-c", code, *argv]
    server = EchoServer(reactor, port)
    spawn(testCase, argv, reactor, protocol=server)
    return server.waitFor(LISTENING, timeout).addCallback(lambda _: server)


async def runWsload(testCase: Any, args: list[str], timeout: float) -> tuple[Any, Any, str]:
    """
    Run the load generator (L{spawn}); its C{(json, exitCode, output)}.
    It is killed (and L{ProcessFailed} raised) after C{timeout} s.
    """
    proc = spawn(testCase, [WSLOAD, *args])
    try:
        code = await proc.waitForExit(timeout)
    except ProcessFailed:
        proc.signal(signal.SIGKILL)
        raise
    result = None
    for line in reversed(proc.output.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    return result, code, proc.output


def inThread(f: Any, *args: Any, **kw: Any) -> Deferred:
    """Run blocking client code off the reactor thread."""
    return threads.deferToThread(f, *args, **kw)


# -- a raw WebSocket client (blocking, every call bounded) -----------------

_ZERO_MASK = b"\0\0\0\0"


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    mask: bytes | None = _ZERO_MASK,
    rsv: int = 0,
) -> bytes:
    """
    One client frame.  C{mask} (4 bytes) masks the payload (the zero key
    leaves it as is); C{None} sends it unmasked (a protocol violation).
    """
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is None:
        return head + payload
    if mask != _ZERO_MASK and payload:
        k = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    return head + mask + payload


def closeFrame(code: int, reason: bytes = b"") -> bytes:
    """A masked client Close frame."""
    return frame(8, struct.pack("!H", code) + reason)


def upgradeRequest(host: str = "127.0.0.1", port: int = 0, extra: bytes = b"") -> bytes:
    """An RFC 6455 upgrade request (no extensions)."""
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
        % (host.encode(), port, key, extra)
    )


class Closed(Exception):  # noqa: N818  (a test's outcome, named for what happened)
    """The server closed the TCP connection."""


class WSClient:
    """
    A blocking WebSocket client on a raw socket; every call has a deadline.

    @ivar status: the HTTP status line of the handshake answer.
    @ivar closeCode: the code of the Close frame received, once one came.
    """

    def __init__(self, port: int, timeout: float = 5.0, connect: bool = True) -> None:
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.status = b""
        self.headers = b""
        self.closeCode: int | None = None
        self.eof = False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if connect:
            self.handshake()

    def send(self, data: bytes) -> None:
        """Send all of C{data} (bounded by the timeout)."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data

    def handshake(self, request: bytes | None = None) -> bytes:
        """Send the upgrade; return the status line (raises on a non-101)."""
        self.send(request or upgradeRequest(port=self.port))
        status = self.readHttp()
        if b" 101 " not in status:
            raise AssertionError(f"handshake refused: {status!r}")
        return status

    def readHttp(self) -> bytes:
        """Read an HTTP response head; return its status line."""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status, _, self.headers = head.partition(b"\r\n")
        return self.status

    def readFrame(self, timeout: float | None = None) -> tuple[int, bytes]:
        """One server frame: C{(opcode, payload)}; a Close sets L{closeCode}."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7F
                off = 2
                if n == 126 and len(b) >= 4:
                    n = struct.unpack("!H", b[2:4])[0]
                    off = 4
                elif n == 127 and len(b) >= 10:
                    n = struct.unpack("!Q", b[2:10])[0]
                    off = 10
                if ((b[1] & 0x7F) < 126 or off > 2) and len(b) >= off + n:
                    op = b[0] & 0x0F
                    payload = bytes(b[off : off + n])
                    self.buf = b[off + n :]
                    if op == 8:
                        self.closeCode = (
                            struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                        )
                    return op, payload
            self._fill(deadline)

    def readMessage(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next data frame (pings are answered, pongs skipped)."""
        while True:
            op, payload = self.readFrame(timeout)
            if op == 9:
                self.send(frame(10, payload))
                continue
            if op == 10:
                continue
            return op, payload

    def echo(self, payload: bytes = b"hello", opcode: int = 1) -> bytes:
        """Send one message and return its echo (asserting the opcode)."""
        self.send(frame(opcode, payload))
        op, got = self.readMessage()
        if op != opcode:
            raise AssertionError(f"expected opcode {opcode}, got {op} {got[:60]!r}")
        return got

    def waitClose(self, timeout: float | None = None) -> int | None:
        """Read until a Close frame (returns its code) or EOF (returns None)."""
        try:
            while True:
                op, _ = self.readFrame(timeout)
                if op == 8:
                    return self.closeCode
        except Closed:
            return self.closeCode

    def waitEOF(self, timeout: float | None = None) -> bool:
        """Read (discarding) until the server closes TCP; False on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self.buf = b""
                self._fill(deadline)
        except Closed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        """Close the socket (no closing handshake)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Reset the connection (SO_LINGER 0, then close: an RST)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def pollUntil(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """(Thread only) poll C{predicate} until true or C{timeout}; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return bool(v)
        time.sleep(interval)


def writableWithin(sock: socket.socket, timeout: float) -> bool:
    """Whether C{sock} becomes writable within C{timeout} s."""
    _, w, _ = select.select([], [sock], [], timeout)
    return bool(w)
