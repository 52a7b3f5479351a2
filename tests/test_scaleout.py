"""
Scale-out on one machine: two real C{twistd -n gnetecho} hosts, each in its
own network namespace (C{ip netns} + a veth pair to the root namespace),
behind Debian's HAProxy with HTTP health checks on the status page.

WebSocket clients echo through HAProxy; one host is killed (SIGKILL of every
process in its namespace).  Its clients, and only its clients, see the close
and reconnect; HAProxy marks it DOWN and sends every new connection to the
survivor; no echo is ever wrong and no client is left unconnected.

Needs root (C{ip netns add}), iproute2 and haproxy.  Where the machine
forbids network namespaces the test is skipped with the reason, never
passed; a missing haproxy skips it too, except under C{CI=true}, where
scripts/bootstrap --system-deps should have installed it, so it fails.

Every external command runs with C{reactor.spawnProcess}; every wait is
bounded; nothing sleeps on the reactor thread.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests._procs import LISTENING, TwistdProcess, freePort, spawn, twistdArgv

#: The port gnetecho listens on inside each namespace (each has its own).
HOST_PORT = 9080

#: How many clients echo through the load balancer.
N_CLIENTS = 20


def _missingTool(what: str) -> None:
    """
    Fail under C{CI=true} (the project's setup installs the tool), skip
    otherwise.
    """
    why = f"{what} not installed: run scripts/bootstrap --system-deps"
    if os.environ.get("CI") == "true":
        raise AssertionError(why)
    raise unittest.SkipTest(why)


async def poll(
    predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05
) -> None:
    """
    Wait until C{await predicate()} (or its plain result) is true, checking
    every C{every} s, at most C{timeout} s.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Deferred) or hasattr(result, "__await__"):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await task.deferLater(reactor, every, lambda: None)


# -- HAProxy's admin socket ----------------------------------------------------


class _AdminQuery(Protocol):
    """Send one command to HAProxy's stats socket; collect the answer."""

    def __init__(self, command: bytes) -> None:
        self.command = command
        self.data = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        cast(Any, self.transport).write(self.command + b"\n")

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(self.data.decode("utf-8", "replace"))


async def adminCommand(socketPath: str, command: str, timeout: float = 5.0) -> str:
    """
    The answer of HAProxy's stats socket at C{socketPath} to C{command}
    (non-interactive: HAProxy closes after answering), bounded.
    """
    q = _AdminQuery(command.encode())
    ep = UNIXClientEndpoint(reactor, socketPath, timeout=timeout)
    await connectProtocol(ep, q).addTimeout(timeout, reactor)
    return await q.done.addTimeout(timeout, reactor)


async def serverStats(socketPath: str, backend: str) -> dict[str, dict[str, str]]:
    """
    C{show stat} for C{backend}'s servers: server name -> CSV row (C{status},
    C{scur} current sessions, C{stot}, C{wretr}, C{wredis}, ...).
    """
    text = await adminCommand(socketPath, "show stat")
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise AssertionError(f"unexpected 'show stat' answer: {text!r}")
    rows = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    return {
        r["svname"]: r
        for r in rows
        if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")
    }


# -- WebSocket clients ------------------------------------------------------------


class ConnectionFailed(Exception):  # noqa: N818  (a test's outcome, named for what happened)
    """The WebSocket opening handshake through the load balancer failed."""


class EchoConnection(WebSocketClientProtocol):
    """
    One WebSocket connection through HAProxy.  Every message sent is
    queued; every message received must equal the head of the queue (same
    bytes, same text/binary kind), otherwise it is recorded in
    C{mismatches}.

    @ivar servedBy: the backend server HAProxy chose (its C{X-Served-By}
        response header).
    @ivar closeInfo: C{(wasClean, code, reason)} once closed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.opened: Deferred[EchoConnection] = Deferred()
        self.closed: Deferred[Any] = Deferred()
        self.servedBy: str | None = None
        self.closeInfo: tuple[bool, int | None, str | None] | None = None
        self.mismatches: list[str] = []
        self._expected: deque[tuple[bytes, bool, Deferred]] = deque()

    def onConnect(self, response: Any) -> None:
        self.servedBy = response.headers.get("x-served-by")

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self._expected:
            self.mismatches.append(f"unexpected echo {payload!r} (binary={isBinary})")
            return
        want, wantBinary, d = self._expected.popleft()
        if payload != want or isBinary != wantBinary:
            self.mismatches.append(
                f"sent {want!r} (binary={wantBinary}), got {payload!r} (binary={isBinary})"
            )
        d.callback(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.closeInfo = (wasClean, code, reason)
        if not self.opened.called:
            self.opened.errback(ConnectionFailed(f"handshake failed: code {code}, {reason}"))
        pending, self._expected = self._expected, deque()
        for _, _, d in pending:
            d.errback(ConnectionFailed(f"closed before the echo: code {code}, {reason}"))
        self.closed.callback(self.closeInfo)

    @property
    def isOpen(self) -> bool:
        return self.opened.called and self.closeInfo is None

    def echo(self, payload: bytes, isBinary: bool) -> Deferred:
        """Send one message; fire with its echo."""
        d: Deferred = Deferred()
        self._expected.append((payload, isBinary, d))
        self.sendMessage(payload, isBinary)
        return d


class EchoClient:
    """
    One logical client: a WebSocket connection through the load balancer,
    replaced by a new one (L{connect}) when it is closed.  Its messages are
    unique (client index, running number), text and binary alternately.
    """

    def __init__(self, index: int, factory: WebSocketClientFactory, lbPort: int) -> None:
        self.index = index
        self.factory = factory
        self.lbPort = lbPort
        self.sent = 0
        self.connections: list[EchoConnection] = []

    @property
    def conn(self) -> EchoConnection:
        return self.connections[-1]

    @property
    def mismatches(self) -> list[str]:
        return [f"client {self.index}: {m}" for c in self.connections for m in c.mismatches]

    async def connect(self, attempts: int = 20, timeout: float = 5.0) -> EchoConnection:
        """
        Open a new connection, retrying (100 ms apart, at most C{attempts}
        times) when the handshake fails, e.g. HAProxy's 503.
        """
        errors: list[str] = []
        for _ in range(attempts):
            ep = TCP4ClientEndpoint(reactor, "127.0.0.1", self.lbPort, timeout=timeout)
            try:
                conn = cast(
                    EchoConnection,
                    await ep.connect(cast(Any, self.factory)).addTimeout(timeout, reactor),
                )
                self.connections.append(conn)
                await conn.opened.addTimeout(timeout, reactor)
                return conn
            except (ConnectionFailed, ConnectError, defer.TimeoutError) as e:
                errors.append(repr(e))
            await task.deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"client {self.index} could not connect: {errors}")

    async def echoRound(self, n: int = 4, timeout: float = 10.0) -> None:
        """Send C{n} messages at once; wait for all their echoes."""
        ds = []
        for _ in range(n):
            j = self.sent
            self.sent += 1
            label = f"c{self.index}-m{j}"
            if j % 2:
                ds.append(self.conn.echo(label.encode() + b"\x00\xff" + os.urandom(16), True))
            else:
                ds.append(self.conn.echo(f"{label} \u00e9\u6f22".encode(), False))
        await defer.gatherResults(ds, consumeErrors=True).addTimeout(timeout, reactor)

    async def close(self, timeout: float = 3.0) -> None:
        """Close the current connection (bounded; aborted if need be)."""
        if not self.connections:
            return
        c = self.conn
        if c.closeInfo is None:
            if c.isOpen:
                c.sendClose()
            try:
                await c.closed.addTimeout(timeout, reactor)
            except defer.TimeoutError:
                if c.transport is not None:
                    cast(Any, c.transport).abortConnection()


# -- the test -------------------------------------------------------------------------


class Host:
    """One gnetecho host: a network namespace, its veth pair, its process."""

    def __init__(
        self, name: str, ns: str, rootIf: str, nsIf: str, rootAddr: str, nsAddr: str
    ) -> None:
        self.name = name
        self.ns = ns
        self.rootIf = rootIf
        self.nsIf = nsIf
        self.rootAddr = rootAddr
        self.nsAddr = nsAddr
        self.proc: TwistdProcess | None = None


class ScaleOutTests(unittest.TestCase):
    """Two gnetecho hosts behind HAProxy; one dies."""

    timeout = 120

    def setUp(self) -> None:
        if shutil.which("ip") is None:
            _missingTool("iproute2 (ip)")
        if shutil.which("haproxy") is None:
            _missingTool("haproxy")
        if os.geteuid() != 0:
            raise unittest.SkipTest(
                "network namespaces are forbidden on this machine for this user: "
                f"'ip netns add' needs root (CAP_SYS_ADMIN), running as uid {os.geteuid()}"
            )
        self.tmp = os.path.abspath(self.mktemp())
        os.makedirs(self.tmp)

    # -- commands ------------------------------------------------------------------------

    async def runCommand(self, *argv: str, timeout: float = 10.0) -> tuple[int | None, str]:
        """Run a short command (e.g. C{ip ...}); its exit code and output."""
        p = spawn(self, list(argv), cwd=self.tmp)
        code = await p.waitForExit(timeout)
        return code, p.output

    async def check(self, *argv: str) -> str:
        """Run a short command that must succeed; its output."""
        code, out = await self.runCommand(*argv)
        if code != 0:
            raise AssertionError(f"{' '.join(argv)} failed (exit {code}): {out.strip()}")
        return out

    async def nsPids(self, ns: str) -> list[int]:
        """The processes in network namespace C{ns}."""
        code, out = await self.runCommand("ip", "netns", "pids", ns)
        return [int(p) for p in out.split()] if code == 0 else []

    async def killNamespace(self, ns: str, timeout: float = 10.0) -> list[int]:
        """
        Kill every process in C{ns} as a crashing host would die: all of
        them are frozen (SIGSTOP) before any is killed (SIGKILL), so none
        can notice another's death and shut down gracefully (gnetecho's
        workers get SIGTERM when their parent dies).  Bounded; returns the
        pids killed.
        """
        frozen: set[int] = set()

        async def allFrozen() -> bool:
            pids = set(await self.nsPids(ns)) - frozen
            for pid in pids:
                self.signalPid(pid, signal.SIGSTOP)
            frozen.update(pids)
            return not pids

        async def allGone() -> bool:
            pids = await self.nsPids(ns)
            for pid in pids:
                self.signalPid(pid, signal.SIGKILL)
            return not pids

        await poll(allFrozen, timeout, f"every process in {ns} to be stopped")
        await poll(allGone, timeout, f"every process in {ns} to die")
        return sorted(frozen)

    @staticmethod
    def signalPid(pid: int, sig: int) -> None:
        """C{os.kill}, ignoring a process that is already gone."""
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    # -- the lab ---------------------------------------------------------------------------

    def addresses(self) -> tuple[str, str]:
        """
        Two private /30 subnets for this run (10.231.x.y/30 and
        10.232.x.y/30, derived from the pid; L{makeHost} checks that their
        addresses are unused).
        """
        slot = os.getpid() % 16384
        x, y = slot // 64, (slot % 64) * 4
        return f"10.231.{x}.{y}", f"10.232.{x}.{y}"

    async def makeHost(self, name: str, subnet: str) -> Host:
        """
        Namespace C{gn<name><pid>} with a veth pair to the root namespace
        (root side .1, namespace side .2 of C{subnet}/30) and C{lo} up;
        removed (processes killed first) during cleanup.
        """
        pid = os.getpid()
        base = subnet.rsplit(".", 1)[0]
        last = int(subnet.rsplit(".", 1)[1])
        host = Host(
            name,
            ns=f"gn{name}{pid}",
            rootIf=f"gn{name}{pid}r",
            nsIf=f"gn{name}{pid}n",
            rootAddr=f"{base}.{last + 1}",
            nsAddr=f"{base}.{last + 2}",
        )
        # Leftovers of an earlier run with the same pid would make 'add' fail.
        await self.runCommand("ip", "netns", "delete", host.ns)
        await self.runCommand("ip", "link", "delete", host.rootIf)
        used = await self.check("ip", "-o", "-4", "addr", "show")
        for addr in (host.rootAddr, host.nsAddr):
            if f" {addr}/" in used:
                raise AssertionError(f"{addr} is already in use here:\n{used}")

        code, out = await self.runCommand("ip", "netns", "add", host.ns)
        if code != 0:
            raise unittest.SkipTest(
                f"network namespaces are forbidden on this machine: 'ip netns add {host.ns}' "
                f"failed (exit {code}): {out.strip()}"
            )
        self.addCleanup(self.removeHost, host)
        await self.check(
            "ip", "link", "add", host.rootIf, "type", "veth", "peer", "name", host.nsIf
        )
        await self.check("ip", "link", "set", host.nsIf, "netns", host.ns)
        await self.check("ip", "addr", "add", f"{host.rootAddr}/30", "dev", host.rootIf)
        await self.check("ip", "link", "set", host.rootIf, "up")
        await self.check("ip", "-n", host.ns, "addr", "add", f"{host.nsAddr}/30", "dev", host.nsIf)
        await self.check("ip", "-n", host.ns, "link", "set", host.nsIf, "up")
        await self.check("ip", "-n", host.ns, "link", "set", "lo", "up")
        return host

    async def removeHost(self, host: Host) -> None:
        """Kill everything in the namespace; delete it and the veth pair."""
        try:
            await self.killNamespace(host.ns)
        finally:
            await self.runCommand("ip", "netns", "delete", host.ns)
            await self.runCommand("ip", "link", "delete", host.rootIf)

    def startHost(self, host: Host, *options: str) -> TwistdProcess:
        """
        C{twistd -n gnetecho --port tcp://0.0.0.0:9080} inside the host's
        namespace (its multicore statistics directory in the test's
        temporary directory, so a SIGKILL leaves nothing in /tmp).
        """
        cwd = os.path.join(self.tmp, host.name)
        os.makedirs(cwd)
        argv = ["ip", "netns", "exec", host.ns, "env", f"TMPDIR={cwd}"]
        argv += twistdArgv("gnetecho", "--port", f"tcp://0.0.0.0:{HOST_PORT}", *options)
        host.proc = spawn(self, argv, cwd=cwd)
        return host.proc

    def haproxyConfig(self, lbPort: int, socketPath: str, hosts: list[Host]) -> str:
        """
        The load balancer: WebSocket-friendly timeouts, round robin, HTTP
        health checks on gnetecho's status page (HAProxy's plain
        C{option httpchk GET /}, an HTTP/1.0 request without C{Host}), the
        chosen server in an C{X-Served-By} response header.
        """
        servers = "".join(
            f"    server {h.name} {h.nsAddr}:{HOST_PORT} check inter 200ms fall 2 rise 1\n"
            for h in hosts
        )
        return (
            "global\n"
            f"    stats socket {socketPath} mode 600 level admin\n"
            "    stats timeout 10s\n"
            "\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 2s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "    timeout tunnel 1h\n"
            "    timeout client-fin 1s\n"
            "    timeout server-fin 1s\n"
            "    retries 3\n"
            "    option redispatch 1\n"
            "\n"
            "frontend ws\n"
            f"    bind 127.0.0.1:{lbPort}\n"
            "    default_backend gnetecho\n"
            "\n"
            "backend gnetecho\n"
            "    balance roundrobin\n"
            "    option httpchk GET /\n"
            "    http-check expect status 200\n"
            "    http-response set-header X-Served-By %s\n"
            f"{servers}"
        )

    # -- the scenario --------------------------------------------------------------------

    async def test_killedHostClientsReconnectToSurvivor(self) -> None:
        """
        Two hosts (A multicore with two workers, B single-process) behind
        HAProxy; 20 clients spread over both and echo text and binary
        messages.  SIGKILL of every process of host A closes exactly the
        connections HAProxy had on A; those clients reconnect and land on
        B; B's clients are untouched; HAProxy marks A DOWN and new clients
        go to B; every echo equals what was sent, in order.
        """
        started = time.monotonic()
        subnetA, subnetB = self.addresses()
        hostA = await self.makeHost("A", subnetA)
        hostB = await self.makeHost("B", subnetB)
        hosts = [hostA, hostB]
        procA = self.startHost(hostA, "--num-event-loop", "2")
        procB = self.startHost(hostB, "--multicore", "false")
        await defer.gatherResults(
            [procA.waitFor(LISTENING, 30), procB.waitFor(LISTENING, 30)], consumeErrors=True
        )

        lbPort = freePort()
        # AF_UNIX paths are limited to 107 bytes: trial's temporary directory is too deep.
        sockDir = tempfile.mkdtemp(prefix="gnscale-")
        self.addCleanup(shutil.rmtree, sockDir, True)
        sock = os.path.join(sockDir, "haproxy.sock")
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        FilePath(cfg).setContent(self.haproxyConfig(lbPort, sock, hosts).encode())
        await self.check("haproxy", "-c", "-f", cfg)
        lb = spawn(self, ["haproxy", "-f", cfg, "-db"], cwd=self.tmp)

        stats: dict[str, dict[str, str]] = {}

        async def refresh() -> dict[str, dict[str, str]]:
            nonlocal stats
            if lb.exited:
                raise AssertionError(f"haproxy exited ({lb.exitCode}):\n{lb.output}")
            stats = await serverStats(sock, "gnetecho")
            return stats

        async def bothUp() -> bool:
            if not os.path.exists(sock):
                return False
            s = await refresh()
            return all(s.get(h.name, {}).get("status") == "UP" for h in hosts)

        try:
            await poll(bothUp, 15, "HAProxy to report both servers UP", every=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; stats {stats}; haproxy output:\n{lb.output}") from None
        print(
            "\nscale-out: lab up (namespaces, 2 hosts, haproxy, both UP) in "
            f"{time.monotonic() - started:.1f} s"
        )

        # -- 20 clients, spread by round robin, all echoing ------------------------------
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{lbPort}/")
        factory.protocol = EchoConnection
        factory.setProtocolOptions(openHandshakeTimeout=5, closeHandshakeTimeout=1)
        clients = [EchoClient(i, factory, lbPort) for i in range(N_CLIENTS)]
        self.addCleanup(
            lambda: defer.gatherResults([defer.ensureDeferred(c.close()) for c in clients])
        )
        for c in clients:
            await c.connect(attempts=1)
        await defer.gatherResults(
            [defer.ensureDeferred(c.echoRound()) for c in clients], consumeErrors=True
        )

        onA = [c for c in clients if c.conn.servedBy == "A"]
        onB = [c for c in clients if c.conn.servedBy == "B"]
        self.assertEqual(len(onA) + len(onB), N_CLIENTS, [c.conn.servedBy for c in clients])
        self.assertGreater(len(onA), 0)
        self.assertGreater(len(onB), 0)
        await refresh()
        self.assertEqual((int(stats["A"]["scur"]), int(stats["B"]["scur"])), (len(onA), len(onB)))

        # -- host A dies ---------------------------------------------------------------------
        killedAt = time.monotonic()
        victims = await self.killNamespace(hostA.ns)
        self.assertGreaterEqual(len(victims), 3, "host A: the twistd parent and its two workers")
        await procA.waitForExit(10)
        self.assertEqual(procA.exitSignal, signal.SIGKILL)
        await defer.gatherResults([c.conn.closed for c in onA]).addTimeout(10, reactor)
        closedIn = time.monotonic() - killedAt
        self.assertTrue(
            all(c.conn.isOpen for c in onB), "a client on the surviving host was closed"
        )
        # No Close frame: 1006, the connection just dropped.
        self.assertEqual({(c.conn.closeInfo or (None, None))[:2] for c in onA}, {(False, 1006)})

        # They reconnect at once (HAProxy may still think A is UP: redispatch)
        # and land on B; B's own clients keep echoing meanwhile.
        meanwhile: list[Deferred[Any]] = [defer.ensureDeferred(c.connect()) for c in onA]
        meanwhile += [defer.ensureDeferred(c.echoRound()) for c in onB]
        await defer.gatherResults(meanwhile, consumeErrors=True)
        reconnectedIn = time.monotonic() - killedAt
        self.assertEqual({c.conn.servedBy for c in onA}, {"B"})

        async def aDown() -> bool:
            return (await refresh())["A"]["status"].startswith("DOWN")

        await poll(aDown, 10, "HAProxy to mark A DOWN", every=0.1)
        downIn = time.monotonic() - killedAt

        # -- new clients all go to the survivor ----------------------------------------------
        fresh = [EchoClient(N_CLIENTS + i, factory, lbPort) for i in range(6)]
        self.addCleanup(
            lambda: defer.gatherResults([defer.ensureDeferred(c.close()) for c in fresh])
        )
        for c in fresh:
            await c.connect(attempts=1)
        self.assertEqual({c.conn.servedBy for c in fresh}, {"B"})

        everyone = clients + fresh
        await defer.gatherResults(
            [defer.ensureDeferred(c.echoRound()) for c in everyone], consumeErrors=True
        )
        self.assertTrue(all(c.conn.isOpen for c in everyone), "a client was left unconnected")
        await refresh()
        self.assertEqual(int(stats["A"]["scur"]), 0)
        self.assertEqual(stats["B"]["status"], "UP")
        self.assertEqual(int(stats["B"]["scur"]), len(everyone))
        self.assertEqual([m for c in everyone for m in c.mismatches], [])
        self.assertFalse(procB.exited, procB.output)
        echoes = sum(c.sent for c in everyone)
        print(
            f"scale-out: {len(onA)} clients on A, {len(onB)} on B; after SIGKILL of A: closed in "
            f"{closedIn:.2f} s, all on B again in {reconnectedIn:.2f} s, "
            f"A DOWN in {downIn:.2f} s; {echoes} echoes, 0 wrong; haproxy retries "
            f"{stats['A']['wretr']}, redispatches {stats['A']['wredis']}; "
            f"total {time.monotonic() - started:.1f} s"
        )
        for line in lb.output.splitlines():
            if line.strip():
                print(f"scale-out: haproxy: {line.strip()}")
