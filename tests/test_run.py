"""
The entry points in real use (issue 18): a script blocked in C{gnet.Run}
stopped with Ctrl-C or SIGTERM, a server restarted on the port it just
closed connections on, and bind conflicts whose errors name the address.

Integration tier: real loopback sockets and spawned Python processes;
every wait is on an event (a line of output, a connection, an exit),
bounded.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

import gnetcompat as gnet

from ._loopback import LoopbackTestCase, StreamClient
from ._procs import freePort, spawn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the README's ten-line echo, printing when it listens and when Run returns
ECHO_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import gnetcompat as gnet


class Echo(gnet.BuiltinEventEngine):
    def OnBoot(self, eng):
        print("listening", flush=True)

    def OnTraffic(self, c):
        c.Write(c.Next(-1))
        return gnet.None_


if __name__ == "__main__":
    opts = []
    if len(sys.argv) > 2:  # multicore: log the parent's lines ("2 workers serving")
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
        opts = [gnet.WithProcessWorkers(int(sys.argv[2]))]
    gnet.Run(Echo(), "tcp://127.0.0.1:" + sys.argv[1], *opts)
    print("RUN RETURNED", flush=True)
"""


def _connect(port: int) -> Deferred:
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), StreamClient())


class RunSignalTests(LoopbackTestCase):
    """Ctrl-C (SIGINT) and SIGTERM end a script blocked in C{Run} cleanly."""

    timeout = 60

    async def stopWith(self, sig: int, multicore: bool) -> None:
        """
        Start the echo script, wait until it serves (its line, then one
        echo), send C{sig}; it must exit 0 after C{Run} returned, printing
        no traceback and no unhandled error.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        script = os.path.join(cwd, "echo.py")
        with open(script, "w") as f:
            f.write(ECHO_SCRIPT.format(root=ROOT))
        port = freePort()
        argv = [sys.executable, script, str(port)] + (["2"] if multicore else [])
        proc = spawn(self, argv, cwd=cwd)
        await proc.waitFor("2 workers serving" if multicore else "listening", 40)
        client = await _connect(port)
        client.transport.write(b"ping")
        self.assertEqual(await client.read(4).addTimeout(10, reactor), b"ping")
        proc.signal(sig)
        code = await proc.waitForExit(30)
        await client.lost.addTimeout(10, reactor)
        self.assertEqual((code, proc.exitSignal), (0, None), proc.output)
        self.assertIn("RUN RETURNED", proc.output)
        for bad in ("Unhandled error", "Traceback", "ReactorNotRunning"):
            self.assertNotIn(bad, proc.output)

    async def test_sigint(self) -> None:
        """Ctrl-C on a single-process C{Run}: exit 0, no ReactorNotRunning traceback."""
        await self.stopWith(signal.SIGINT, multicore=False)

    async def test_sigterm(self) -> None:
        """SIGTERM on a single-process C{Run}: exit 0, no traceback."""
        await self.stopWith(signal.SIGTERM, multicore=False)

    async def test_sigintMulticore(self) -> None:
        """Ctrl-C on a C{Run} with worker processes: exit 0, no traceback."""
        await self.stopWith(signal.SIGINT, multicore=True)

    async def test_sigtermMulticore(self) -> None:
        """SIGTERM on a C{Run} with worker processes: exit 0, no traceback."""
        await self.stopWith(signal.SIGTERM, multicore=True)


class _CloseAfterReply(gnet.BuiltinEventEngine):
    """Replies, then closes the connection itself (TIME_WAIT on the server side)."""

    def OnTraffic(self, c: Any) -> Any:
        c.Write(c.Next(-1))
        return gnet.Close


class RestartTests(LoopbackTestCase):
    """A server restarted on its port at once binds again (C{ReuseAddr} on by default)."""

    async def test_restartAfterServerClosedConnections(self) -> None:
        """
        A server that closed its connections itself leaves them in
        TIME_WAIT on its side; stopped and served again on the same port at
        once, it binds (it failed with EADDRINUSE for about 60 s while
        C{SO_REUSEADDR} was off).
        """
        eng = await self.serve(_CloseAfterReply(), "tcp://127.0.0.1:0")
        port = eng.listeningPorts[0].getHost().port
        for _ in range(3):
            client = await _connect(port)
            client.transport.write(b"hi")
            self.assertEqual(await client.read(2).addTimeout(10, reactor), b"hi")
            await client.lost.addTimeout(10, reactor)
        await eng.Stop()
        again = await self.serve(_CloseAfterReply(), f"tcp://127.0.0.1:{port}")
        client = await _connect(port)
        client.transport.write(b"yo")
        self.assertEqual(await client.read(2).addTimeout(10, reactor), b"yo")
        self.assertFalse(again.stopping)

    async def test_reuseAddrOption(self) -> None:
        """
        Listeners get C{SO_REUSEADDR} by default (as Go's C{net.Listen}
        and Twisted's C{listenTCP}); C{WithReuseAddr(False)} leaves it off.
        """
        for opts, expected in [((), True), ((gnet.WithReuseAddr(False),), False)]:
            eng = await self.serve(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0", *opts)
            sock = socket.socket(fileno=os.dup(eng.listeningPorts[0].fileno()))
            try:
                flag = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            finally:
                sock.close()
            self.assertEqual(bool(flag), expected, opts)
            await eng.Stop()


class BindErrorTests(LoopbackTestCase):
    """A listen that fails raises the socket's error, with its errno, naming the address."""

    async def assertListenFails(self, addrs: Any, where: str, code: int, *opts: Any) -> None:
        f = await self.assertFailure(gnet.Serve(gnet.BuiltinEventEngine(), addrs, *opts), OSError)
        self.assertEqual(f.errno, code, str(f))
        self.assertIn(f"listen {where}: {os.strerror(code).lower()}", str(f))

    async def test_portHeldByPlainSocket(self) -> None:
        """
        A TCP port held by a plain listening socket: C{OSError} EADDRINUSE,
        C{[Errno 98] listen tcp 127.0.0.1:PORT: address already in use}.
        """
        held = socket.socket()
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        await self.assertListenFails(
            f"tcp://127.0.0.1:{port}", f"tcp 127.0.0.1:{port}", errno.EADDRINUSE
        )

    async def test_twoListenersReuseAddrOff(self) -> None:
        """Two listeners on one address with C{ReuseAddr} off: the second's error names it."""
        port = freePort()
        addr = f"tcp4://127.0.0.1:{port}"
        await self.assertListenFails(
            [addr, addr], f"tcp4 127.0.0.1:{port}", errno.EADDRINUSE, gnet.WithReuseAddr(False)
        )

    async def test_udpAndUnix(self) -> None:
        """A UDP port held by a plain socket, a unix path in no directory: both named."""
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        await self.assertListenFails(
            f"udp://127.0.0.1:{port}", f"udp 127.0.0.1:{port}", errno.EADDRINUSE
        )
        path = os.path.abspath(self.mktemp()) + "/no/such/dir.sock"
        await self.assertListenFails(f"unix://{path}", f"unix {path}", errno.ENOENT)
