"""
The gnet-examples ports (L{gnetcompat.examples}) run as their Go programs
are, in every mode, with real clients over loopback, asserting what the Go
programs do (issue 21): push (every client gets every push), simple_protocol
(its client completes all rounds; the server shuts down once, when its own
count of connections is back to 0), http (bodies arrive, pipelined requests
too), chat (each line reaches every other client), each run as a user runs
them (C{python -m gnetcompat.examples.X ...}), with C{--multicore=false},
C{--multicore=true} and, for push and chat, process workers; echo over
tcp/udp/unix, the WebSocket echo and the custom codec (with its gnet client)
through C{gnetcompat.Serve} in this process.  Also cross-thread
C{AsyncWrite} ordering under load (2000 records from 4 threads), in one
process and across process workers.

Every wait is bounded; nothing asserts elapsed time.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase

import gnetcompat as gnet
from gnetcompat.examples import echo, udpecho, wsecho
from gnetcompat.examples.custom_codec import client as codec_client
from gnetcompat.examples.custom_codec.protocol import (
    ActionData,
    CustomLengthFieldProtocol,
    DefaultProtocolVersion,
    pack,
)
from gnetcompat.examples.custom_codec.server import CustomCodecServer

from ._clients import echoSession, poll
from ._loopback import LoopbackTestCase
from ._procs import TwistdProcess, freePort, spawn
from .mc_handlers import OrderedWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: seconds a program may take to start, a client to finish, a server to stop
START, FINISH = 30.0, 60.0

#: the start-up lines that say a server is ready
MULTICORE_LINE = "event loops (WithMulticore/WithNumEventLoop) share one handler"
WORKERS_LINE = "2 workers serving"

#: the three modes of a gnet program: flags, and whether they start process workers
MODES: dict[str, tuple[list[str], bool]] = {
    "single": (["--multicore=false"], False),
    "multicore": (["--multicore=true"], False),
    "workers": (["--workers", "2"], True),
}


def example(module: str, *args: str) -> list[str]:
    """The command line of C{python -m gnetcompat.examples.MODULE ARGS}."""
    return [sys.executable, "-m", f"gnetcompat.examples.{module}", *args]


class Lines(LineReceiver):
    """A client keeping every line it receives (newline-delimited)."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed: Deferred = Deferred()
        self.local = ""

    def connectionMade(self) -> None:
        host = self.transport.getHost()
        #: our address as the server's C{RemoteAddr().String()} shows it
        self.local = f"{host.host}:{host.port}"

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


async def connectLines(port: int) -> Lines:
    """A connected L{Lines} client on C{127.0.0.1:port} (bounded)."""
    ep = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    return await connectProtocol(ep, Lines()).addTimeout(10, reactor)


async def connectRetrying(proc: TwistdProcess, port: int) -> Lines:
    """Connect once the program listens (it may not say so); fail if it exits."""
    deadline = reactor.seconds() + START
    while True:
        try:
            return await connectLines(port)
        except Exception:
            if proc.exited or reactor.seconds() > deadline:
                raise AssertionError(f"nothing listened on {port}:\n{proc.output}") from None
            await deferLater(reactor, 0.05, lambda: None)


class ProgramTestCase(TestCase):
    """Runs example programs as subprocesses; cleans up clients and processes."""

    timeout = 120

    def program(self, module: str, *args: str) -> TwistdProcess:
        """Start C{python -m gnetcompat.examples.MODULE ARGS} with this checkout on its path."""
        return spawn(self, example(module, *args), env={"PYTHONPATH": ROOT})

    def keep(self, client: Lines) -> Lines:
        """Abort C{client} at cleanup if still connected."""
        self.addCleanup(
            lambda: client.transport.abortConnection() if client.transport.connected else None
        )
        return client

    async def stopProgram(self, proc: TwistdProcess, clients: Sequence[Lines] = ()) -> str:
        """
        SIGTERM, then wait for the clients to see EOF and the program to end
        cleanly, without a traceback; return its output.
        """
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, proc.output)
        for c in clients:
            await c.closed.addTimeout(10, reactor)
        self.assertNotIn("Traceback", proc.output)
        self.assertNotIn("Unhandled error", proc.output)
        return proc.output

    async def spreadOverWorkers(
        self, proc: TwistdProcess, port: int, clients: list[Lines], opened: Callable[[str], str]
    ) -> dict[str, int]:
        """
        Connect more clients until the program's log shows both workers
        owning some, and at least 3 in all (at most 30 clients); return each
        client's worker.  C{opened(addr)} is the text the program logs when
        C{addr} connects.
        """
        owner: dict[str, int] = {}
        while True:
            for c in clients:
                if c.local not in owner:
                    owner[c.local] = await self.workerOf(proc, opened(c.local))
            if len(set(owner.values())) >= 2 and len(clients) >= 3:
                return owner
            if len(clients) >= 30:
                raise AssertionError(f"30 connections all reached one worker:\n{proc.output}")
            clients.append(self.keep(await connectLines(port)))

    async def workerOf(self, proc: TwistdProcess, text: str) -> int:
        """The worker whose log line (C{[worker N] ...}) contains C{text} (bounded wait)."""

        def find() -> int | None:
            for line in proc.output.splitlines():
                match = re.search(r"\[worker (\d+)\] ", line)
                if match and text in line:
                    return int(match.group(1)) + 1  # poll wants a true value
            return None

        return int(await poll(find, f"{text!r} in the log")) - 1


# -- push ------------------------------------------------------------------------


class PushTests(ProgramTestCase):
    """
    gnet-examples' push as a program: every connected client gets every
    push (C{heart beating to ITS ADDRESS}), in each mode.
    """

    PUSHES = 5

    async def runPush(self, mode: str) -> None:
        flags, workers = MODES[mode]
        port = freePort()
        proc = self.program("push", "--port", str(port), "--tick", "50ms", *flags)
        if workers:
            await proc.waitFor(WORKERS_LINE, START)
        clients = [self.keep(await connectRetrying(proc, port))]
        opened = lambda a: f"Socket with addr: {a} has been opened"  # noqa: E731
        if workers:
            owner = await self.spreadOverWorkers(proc, port, clients, opened)
            self.assertEqual(set(owner.values()), {0, 1})
        else:
            clients += [self.keep(await connectLines(port)) for _ in range(5)]
        await poll(
            lambda: all(len(c.lines) >= self.PUSHES for c in clients),
            f"{self.PUSHES} pushes to each client",
            FINISH,
        )
        addrs = [c.local for c in clients]
        out = await self.stopProgram(proc, clients)
        for c in clients:
            self.assertEqual(set(c.lines), {f"heart beating to {c.local}".encode()})
        # the log says, in order, when each socket opened and when each tick pushed
        ticks, openedAt = 0, {}
        for line in out.splitlines():
            if "It's time to push data to clients!!!" in line:
                ticks += 1
            for addr in addrs:
                if opened(addr) in line:
                    openedAt[addr] = ticks
        self.assertEqual(set(openedAt), set(addrs), out)
        for c in clients:
            addr = c.local
            due = ticks - openedAt[addr]
            if workers:
                # a tick in worker 0 reaches another worker's new connection
                # once the registry has announced it: at most every tick (the
                # two workers' log lines reach the parent through two pipes,
                # so a tick may show up one line early)
                self.assertLessEqual(len(c.lines), due + 1, addr)
            else:
                # every tick after the open; the last may be cut by the stop
                self.assertIn(len(c.lines), (due - 1, due), addr)
        if workers:
            self.assertIn("[worker 1] Socket with addr:", out)
        # the program's log lines (stdlib logging) are on its standard error
        self.assertIn("It's time to push data to clients!!!", proc.errOutput)

    async def test_single(self) -> None:
        """C{--multicore=false}: one loop; every tick reaches every client (log order)."""
        await self.runPush("single")

    async def test_multicore(self) -> None:
        """
        C{--multicore=true}: the loops share the handler's map, so every tick
        reaches every client, and the stop is clean (no traceback after
        SIGTERM).
        """
        await self.runPush("multicore")

    async def test_processWorkers(self) -> None:
        """
        C{--workers 2}: worker 0's tick reaches the connections of both
        workers through the registry and C{eng.AsyncWrite(handle)}.
        """
        await self.runPush("workers")


class ReadmePushTests(ProgramTestCase):
    """
    The README's push example for process workers runs as shown (its code
    block taken from README.rst; only the address is made loopback with a
    free port): every client gets pushes naming its own address.
    """

    MARK = "gnet's push example, written for process workers::"

    def readmeExample(self) -> str:
        """The code block that follows L{MARK} in README.rst, dedented."""
        with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn(self.MARK, text, "README.rst lost its process-worker push example")
        block = []
        for line in text.split(self.MARK, 1)[1].splitlines()[1:]:
            if line and not line.startswith("    "):
                break
            block.append(line[4:])
        return "\n".join(block)

    async def test_runsAsShown(self) -> None:
        """Two pushes reach each of four clients; SIGTERM stops it cleanly."""
        code = self.readmeExample()
        self.assertIn('"tcp://:9000"', code)
        port = freePort()
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        script = os.path.join(cwd, "push_readme.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write("import gnetcompat as gnet\n\n")
            f.write(code.replace('"tcp://:9000"', f'"tcp://127.0.0.1:{port}"'))
        proc = spawn(self, [sys.executable, script], cwd=cwd, env={"PYTHONPATH": ROOT})
        await proc.waitFor("workers serving", START)
        clients = [self.keep(await connectRetrying(proc, port))]
        clients += [self.keep(await connectLines(port)) for _ in range(3)]
        await poll(lambda: all(len(c.lines) >= 2 for c in clients), "2 pushes each", FINISH)
        await self.stopProgram(proc, clients)
        for c in clients:
            self.assertEqual(set(c.lines), {f"heart beating to {c.local}".encode()})


# -- chat ------------------------------------------------------------------------


class ChatTests(ProgramTestCase):
    """The chat example: each line reaches every other client, in order per sender."""

    LINES = 20

    async def runChat(self, mode: str) -> None:
        flags, workers = MODES[mode]
        port = freePort()
        proc = self.program("chat", "--port", str(port), *flags)
        if workers:
            await proc.waitFor(WORKERS_LINE, START)
        clients = [self.keep(await connectRetrying(proc, port))]
        if workers:
            await self.spreadOverWorkers(proc, port, clients, lambda a: f"{a} joined")
        else:
            clients += [self.keep(await connectLines(port)) for _ in range(3)]
        # a client that read its welcome is in the engine
        await poll(lambda: all(c.lines for c in clients), "every welcome")
        for c in clients:
            self.assertTrue(c.lines[0].startswith(b"welcome "), c.lines)
            del c.lines[0]
        for i, c in enumerate(clients):
            for j in range(self.LINES):
                c.transport.write(b"%d %d\n" % (i, j))
        want = (len(clients) - 1) * self.LINES
        await poll(lambda: all(len(c.lines) >= want for c in clients), "every line", FINISH)
        for i, c in enumerate(clients):
            got: dict[int, list[int]] = defaultdict(list)
            for line in c.lines:
                sender, seq = map(int, line.split())
                got[sender].append(seq)
            self.assertNotIn(i, got)  # never its own lines
            for sender in range(len(clients)):
                if sender != i:
                    self.assertEqual(got[sender], list(range(self.LINES)), (i, sender))
        await self.stopProgram(proc, clients)
        self.assertIn(f"{clients[0].local} joined", proc.errOutput)

    async def test_single(self) -> None:
        """One loop: C{Broadcast(line, exclude=c.Handle())} reaches the others."""
        await self.runChat("single")

    async def test_multicore(self) -> None:
        """Several loops in one process: the same."""
        await self.runChat("multicore")

    async def test_processWorkers(self) -> None:
        """Two worker processes: lines cross workers through the bus, in order per sender."""
        await self.runChat("workers")


# -- simple_protocol -------------------------------------------------------------


class SimpleProtocolTests(ProgramTestCase):
    """
    gnet-examples' simple_protocol: its server and its client, both as
    programs; the client completes every round and the server shuts itself
    down, once, when its connection counter is back to 0.
    """

    async def runSimple(self, multicore: bool) -> None:
        port = freePort()
        flag = "true" if multicore else "false"
        server = self.program("simple_protocol.server", "--port", str(port), f"--multicore={flag}")
        await server.waitFor(f"running server on tcp://:{port} with multi-core={flag}", START)
        client = self.program(
            "simple_protocol.client",
            "--network",
            "tcp",
            "--address",
            f"127.0.0.1:{port}",
            "--concurrency",
            "8",
            "--packet_size",
            "1024",
            "--packet_batch",
            "20",
            "--packet_count",
            "50",
        )
        self.assertEqual(await client.waitForExit(FINISH), 0, client.output + server.output)
        self.assertIn("start 8 clients...", client.output)
        self.assertIn("all 8 clients are done", client.errOutput)
        self.assertEqual(client.output.count("stops..."), 8, client.output)
        self.assertEqual(await server.waitForExit(FINISH), 0, server.output)
        out = server.output
        self.assertEqual(out.count("shut it down"), 1, out)
        # twisted.logger lines, on standard error
        self.assertIn("all 8 connections are closed, shut it down", server.errOutput)
        self.assertIn("server exits with error: None", server.errOutput)
        self.assertEqual(MULTICORE_LINE in out, multicore, out)
        self.assertNotIn("Traceback", out)

    async def test_single(self) -> None:
        """C{--multicore=false}."""
        await self.runSimple(False)

    async def test_multicore(self) -> None:
        """
        C{--multicore=true}: the loops share the handler's counter, so the
        engine stops only once every connection closed (with process
        workers the first idle worker stopped everything).
        """
        await self.runSimple(True)


# -- http ------------------------------------------------------------------------


def httpChecks(port: int) -> None:
    """
    Blocking (run in a thread): requests with C{http.client}, kept alive,
    then pipelined and split requests over a raw socket, then a malformed
    one.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for method, path, body in (
            ("GET", "/", None),
            ("POST", "/x?y=1", b"hello"),
            ("GET", "/", None),
        ):
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            assert resp.getheader("Server") == "gnet", resp.getheaders()
            assert resp.getheader("Date"), resp.getheaders()
            data = resp.read()
            assert data == b"Hello World!\r\n", data
    finally:
        conn.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /d HTTP/1.1\r\nHo"
        )
        data = b""
        while data.count(b"Hello World!\r\n") < 3:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        s.sendall(b"st: x\r\n\r\n")  # the rest of the fourth request
        while data.count(b"Hello World!\r\n") < 4:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 4, data
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"nonsense\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data == b"Internal Server Error", data


class HttpTests(ProgramTestCase):
    """gnet-examples' http as a program: bodies arrive, kept-alive and pipelined requests too."""

    async def runHttp(self, multicore: bool) -> None:
        port = freePort()
        flag = "true" if multicore else "false"
        proc = self.program("httpserver", "--port", str(port), f"--multicore={flag}")
        await proc.waitFor(
            f"echo server with multi-core={flag} is listening on tcp://:{port}", START
        )
        self.assertIn("is listening on", proc.errOutput)
        await threads.deferToThread(httpChecks, port)
        out = await self.stopProgram(proc)
        self.assertEqual(MULTICORE_LINE in out, multicore, out)

    async def test_single(self) -> None:
        """C{--multicore=false}: every response carries the body C{main} prepared."""
        await self.runHttp(False)

    async def test_multicore(self) -> None:
        """
        C{--multicore=true} (the Go default): the response prepared in
        C{main} is there too (one process: the handler sees C{main}'s global).
        """
        await self.runHttp(True)


# -- custom_codec ----------------------------------------------------------------


class CustomCodecProgramTests(ProgramTestCase):
    """gnet-examples' custom_codec: its server and its gnet client, both as programs."""

    async def test_roundTrips(self) -> None:
        """The client's 10 C{hello} frames come back; it exits 0, the server logged each."""
        port = freePort()
        server = self.program("custom_codec.server", "--port", str(port))
        await server.waitFor(f"Test codec server is listening on tcp://:{port}", START)
        client = self.program("custom_codec.client", "--port", str(port), "--count", "10")
        code = await client.waitForExit(FINISH)
        self.assertEqual(code, 0, client.output)
        self.assertEqual(client.errOutput.count("received: hello"), 10, client.output)
        await self.stopProgram(server)
        self.assertEqual(server.errOutput.count("frame: hello"), 10, server.output)


# -- echo tcp / udp / unix, websocket, custom codec (in this process) ------------


class EchoPortTests(LoopbackTestCase):
    """gnet-examples' echo_tcp, echo_udp and echo_uds, byte for byte, in both modes."""

    async def streamEcho(self, addr: str, multicore: bool) -> None:
        eng = await self.serve(
            echo.EchoServer(addr, multicore), addr, gnet.WithMulticore(multicore)
        )
        payloads = [os.urandom(n) for n in (1, 1000, 256 << 10, 70000)]
        await gatherResults([self.echoOnce(eng, p) for p in payloads], consumeErrors=True)

    async def udpEcho(self, multicore: bool) -> None:
        eng = await self.serve(
            udpecho.UDPEchoServer(),
            "udp://127.0.0.1:0",
            gnet.WithMulticore(multicore),
            gnet.WithReusePort(multicore),
        )
        for _ in range(3):
            client = self.udpClient(eng)
            for size in (1, 1024, 8192):
                payload = os.urandom(size)
                self.assertEqual(await client.request(payload), payload)

    async def test_tcp(self) -> None:
        """echo_tcp: 4 concurrent clients, up to 256 KiB, one loop."""
        await self.streamEcho("tcp://127.0.0.1:0", False)

    async def test_tcpMulticore(self) -> None:
        """echo_tcp with C{--multicore=true}."""
        await self.streamEcho("tcp://127.0.0.1:0", True)

    async def test_udp(self) -> None:
        """echo_udp: every datagram comes back whole to its sender, one loop."""
        await self.udpEcho(False)

    async def test_udpMulticore(self) -> None:
        """echo_udp with C{--multicore=true --reuseport=true}."""
        await self.udpEcho(True)

    async def test_unix(self) -> None:
        """echo_uds (C{echo --sock PATH}): the same over a unix socket, one loop."""
        await self.streamEcho("unix://" + self.unixPath(), False)

    async def test_unixMulticore(self) -> None:
        """echo_uds with C{--multicore=true}."""
        await self.streamEcho("unix://" + self.unixPath(), True)


class WebSocketPortTests(LoopbackTestCase):
    """gnet-examples' websocket server (L{wsecho}): the C{websockets} client's echoes."""

    async def wsEcho(self, multicore: bool) -> None:
        addr = "tcp://127.0.0.1:0"
        eng = await self.serve(
            wsecho.WsServer(addr, multicore), addr, gnet.WithMulticore(multicore)
        )
        port = eng.listeningPorts[0].getHost().port
        messages = ["héllo", b"\x00\xffbinary", "x" * 70000]
        sessions = [threads.deferToThread(echoSession, port, messages) for _ in range(3)]
        for got in await gatherResults(sessions, consumeErrors=True):
            self.assertEqual(got, messages)

    async def test_single(self) -> None:
        """One loop: text and binary messages come back with their types."""
        await self.wsEcho(False)

    async def test_multicore(self) -> None:
        """Several loops, three concurrent sessions."""
        await self.wsEcho(True)


class CustomCodecPortTests(LoopbackTestCase):
    """gnet-examples' custom_codec: its gnet client's round trips against its server."""

    async def roundTrips(self, multicore: bool, asyncReply: bool) -> None:
        addr = "tcp://127.0.0.1:0"
        server = CustomCodecServer(addr, multicore, asyncReply)
        eng = await self.serve(server, addr, gnet.WithMulticore(multicore))
        port = eng.listeningPorts[0].getHost().port
        # the client configures logging as a program does; not this test process's
        self.patch(logging, "basicConfig", lambda **kw: None)
        status = await threads.deferToThread(
            codec_client.main, ["--port", str(port), "--count", "25"]
        )
        self.assertEqual(status, 0)
        # a frame of another protocol closes the connection; this one's is echoed
        bad = await self.connect(eng)
        bad.transport.write(pack(CustomLengthFieldProtocol(1, ActionData), b"x"))
        await bad.lost.addTimeout(10, reactor)
        good = await self.connect(eng)
        frame = pack(CustomLengthFieldProtocol(DefaultProtocolVersion, ActionData), b"ok")
        good.transport.write(frame)
        self.assertEqual(await good.read(len(frame)), frame)
        good.transport.loseConnection()

    async def test_single(self) -> None:
        """One loop, replies written in C{OnTraffic}."""
        await self.roundTrips(False, False)

    async def test_multicoreAsync(self) -> None:
        """Several loops, replies written with C{AsyncWrite} from a thread pool."""
        await self.roundTrips(True, True)


# -- cross-thread AsyncWrite ordering --------------------------------------------


class OrderingTests(LoopbackTestCase):
    """
    2000 records (4 threads x 500, tagged writer:seq) written with
    C{AsyncWrite} from threads arrive complete and in order per writer.
    """

    timeout = 90

    def check(self, clients: list[Lines], writers: int = 4, perWriter: int = 500) -> None:
        seen: dict[int, list[int]] = defaultdict(list)
        for c in clients:
            perConn: dict[int, list[int]] = defaultdict(list)
            for line in c.lines:
                w, seq = map(int, line.split(b":"))
                perConn[w].append(seq)
            for w, seqs in perConn.items():
                self.assertEqual(seqs, sorted(seqs), f"writer {w} out of order")
                seen[w].extend(seqs)
        self.assertEqual(
            {w: sorted(s) for w, s in seen.items()},
            {w: list(range(perWriter)) for w in range(writers)},
        )

    async def collect(self, port: int, clients: list[Lines], goTo: Lines) -> None:
        total = 4 * 500
        goTo.transport.write(b"go %d\n" % len(clients))
        await poll(lambda: sum(len(c.lines) for c in clients) >= total, "2000 records", 60)
        self.check(clients)

    async def oneProcess(self, conns: int) -> None:
        eng = await self.serve(
            OrderedWriter(), "tcp://127.0.0.1:0", gnet.WithMulticore(True), gnet.WithTicker(True)
        )
        port = eng.listeningPorts[0].getHost().port
        clients = [await connectLines(port) for _ in range(conns)]
        for c in clients:
            self.addCleanup(c.transport.loseConnection)
        await poll(lambda: all(c.lines for c in clients), "the greetings")
        for c in clients:
            self.assertEqual(c.lines.pop(0), b"worker 0")
        await self.collect(port, clients, clients[0])

    async def test_oneConnMulticore(self) -> None:
        """C{WithMulticore(True)}, one connection, C{c.AsyncWrite} from 4 threads."""
        await self.oneProcess(1)

    async def test_severalConnsMulticore(self) -> None:
        """C{WithMulticore(True)}, three connections on different loops."""
        await self.oneProcess(3)

    async def test_acrossProcessWorkers(self) -> None:
        """
        Process workers: worker 0's threads write with C{eng.AsyncWrite(handle)}
        to connections of both workers (the other worker's through the bus);
        per-writer order and completeness hold on each.
        """
        eng = await self.serve(
            OrderedWriter(viaHandle=True),
            "tcp://127.0.0.1:0",
            gnet.WithProcessWorkers(2),
            gnet.WithReusePort(True),
            gnet.WithConnRegistry(True),
            gnet.WithTicker(True),
        )
        [(_, port)] = eng.addresses
        clients: list[Lines] = []
        workers: dict[int, list[Lines]] = defaultdict(list)
        while len(workers) < 2 or len(clients) < 3:
            self.assertLess(len(clients), 30, "30 connections all reached one worker")
            c = await connectLines(port)
            self.addCleanup(c.transport.loseConnection)
            await poll(lambda c=c: c.lines, "the greeting")  # type: ignore[misc]
            workers[int(c.lines.pop(0).split()[1])].append(c)
            clients.append(c)
        await self.collect(port, clients, workers[0][0])
        self.assertTrue(any(c.lines for c in workers[1]))
