"""
Hardening of the real WebSocket echo service (C{twistd -n gnetecho}).

Each test spawns its own C{twistd -n --pidfile= gnetecho --port P
--multicore=false ...} on loopback (L{tests._hardening_util.startServer}),
drives it with blocking raw-socket clients run in threads (so the reactor
never blocks) or with the C load generator C{wsload}, and bounds every wait.
Numbers worth watching (RSS growth, rates) are printed to stdout.
"""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import time

from twisted.internet import defer
from twisted.trial import unittest

from tests._hardening_util import (
    WSLOAD,
    Closed,
    WSClient,
    closeFrame,
    frame,
    freePort,
    inThread,
    openFds,
    openSockets,
    pollUntil,
    procStatus,
    runWsload,
    startServer,
    upgradeRequest,
)

_MIB = 1024 * 1024


def _needWsload() -> None:
    if not os.access(WSLOAD, os.X_OK):
        why = (
            f"{WSLOAD} missing: scripts/bootstrap builds it from ../shared/bench/wsload.c "
            "(or set WSLOAD)"
        )
        if os.environ.get("CI") == "true":
            raise AssertionError(why)
        raise unittest.SkipTest(why)


def _somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


def _listenBacklog(port: int) -> int | None:
    """The Send-Q (listen backlog) C{ss -ltn} shows for C{port}, or None."""
    import subprocess

    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        # State Recv-Q Send-Q Local Peer
        if len(parts) >= 4 and parts[3].endswith(f":{port}"):
            return int(parts[2])
    return None


def _cpuSeconds(pid: int) -> float:
    """User+system CPU seconds of C{pid} so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _countAfter(server, n: int, timeout: float, start: int):
    """Wait until the tick log reports C{[connected-count=n]} after offset C{start}."""
    return server.waitFor(rf"\[connected-count={n}\]", timeout, start=start)


class BackpressureTests(unittest.TestCase):
    """A client that sends but never reads cannot grow the server's memory."""

    timeout = 90

    async def test_nonReadingClientBoundedMemory(self) -> None:
        """
        Push up to 125 MiB of 64 KiB binary echo traffic at the server
        without reading: the server stops reading (it is the transport's
        push producer), so its RSS grows by less than 48 MiB (plain
        Autobahn grows ~144 MiB); then read everything back while sending
        the rest: every echo arrives, byte for byte, in order.
        """
        server = await startServer(self)
        total = 125 * _MIB
        result = await inThread(_pushWithoutReading, server.port, server.pid, total)
        print(
            f"\nbackpressure: accepted {result['acceptedMiB']:.1f} MiB unread in "
            f"{result['pushS']:.1f} s; server RSS {result['baseMiB']:.1f} MiB -> peak "
            f"{result['peakMiB']:.1f} MiB (growth {result['growthMiB']:.1f} MiB); "
            f"then echoed all {result['echoedMiB']:.1f} MiB in {result['drainS']:.1f} s"
        )
        self.assertLess(result["growthMiB"], 48.0)
        self.assertLess(result["acceptedMiB"], 125.0, "nothing pushed back on the client")
        self.assertEqual(result["echoedBytes"], result["sentPayload"])
        self.assertTrue(result["inOrder"])


def _pushWithoutReading(port: int, pid: int, total: int) -> dict:
    payloadSize = 64 * 1024
    c = WSClient(port, timeout=10)
    c.echo(b"warm-up")
    base = procStatus(pid)["VmRSS"]
    # each message carries its sequence number in its first 8 bytes
    body = os.urandom(payloadSize - 8)
    nMsgs = total // payloadSize

    def message(i: int) -> bytes:
        return frame(2, struct.pack("!Q", i) + body)

    sock = c.sock
    sock.setblocking(False)
    peak = base
    t0 = time.monotonic()
    i = 0
    pending = message(0)
    accepted = 0
    stalled: float | None = None
    lastSample = 0.0
    # phase 1: send until the server stops taking bytes for 2 s (bounded: 60 s)
    while i < nMsgs and time.monotonic() - t0 < 60:
        try:
            n = sock.send(pending)
        except BlockingIOError:
            n = 0
        if n:
            accepted += n
            stalled = None
            pending = pending[n:]
            if not pending:
                i += 1
                if i < nMsgs:
                    pending = message(i)
        else:
            now = time.monotonic()
            stalled = stalled or now
            if now - stalled > 2.0:
                break
            select.select([], [sock], [], 0.1)
        now = time.monotonic()
        if now - lastSample > 0.05:
            lastSample = now
            peak = max(peak, procStatus(pid).get("VmRSS", 0))
    pushS = time.monotonic() - t0
    st = procStatus(pid)
    peak = max(peak, st.get("VmRSS", 0), st.get("VmHWM", 0))
    # phase 2: read everything back while sending the rest (bounded: 90 s)
    t1 = time.monotonic()
    echoed = 0
    nextSeq = 0
    inOrder = True
    rbuf = bytearray()
    while (nextSeq < nMsgs) and time.monotonic() - t1 < 90:
        want = [sock] if (pending or i < nMsgs) else []
        r, w, _ = select.select([sock], want, [], 1.0)
        if w and (pending or i < nMsgs):
            try:
                n = sock.send(pending)
            except BlockingIOError:
                n = 0
            pending = pending[n:]
            if not pending:
                i += 1
                pending = message(i) if i < nMsgs else b""
        if r:
            data = sock.recv(1 << 20)
            if not data:
                break
            rbuf += data
            # server frames: FIN+binary, 127 length form for 64 KiB
            while len(rbuf) >= 10:
                ln = struct.unpack("!Q", rbuf[2:10])[0]
                if len(rbuf) < 10 + ln:
                    break
                seq = struct.unpack("!Q", rbuf[10:18])[0]
                if seq != nextSeq or rbuf[0] != 0x82:
                    inOrder = False
                nextSeq += 1
                echoed += ln
                del rbuf[: 10 + ln]
    drainS = time.monotonic() - t1
    c.close()
    return {
        "acceptedMiB": accepted / _MIB,
        "pushS": pushS,
        "baseMiB": base / 1024,
        "peakMiB": peak / 1024,
        "growthMiB": (peak - base) / 1024,
        "echoedBytes": echoed,
        "echoedMiB": echoed / _MIB,
        "sentPayload": nMsgs * payloadSize,
        "drainS": drainS,
        "inOrder": inOrder,
    }


class LimitTests(unittest.TestCase):
    """Size limits, handshake timeouts, connection limits and auto-ping."""

    timeout = 60

    async def test_oversizeMessage(self) -> None:
        """
        A message over --max-message-size closes that connection with 1009;
        another connection keeps echoing.
        """
        server = await startServer(self, "--max-message-size", str(64 * 1024))

        def scenario() -> tuple:
            good = WSClient(server.port)
            bad = WSClient(server.port)
            self.assertEqual(good.echo(b"before"), b"before")
            try:
                bad.send(frame(2, b"x" * (64 * 1024 + 1)))
            except OSError:
                pass
            code = bad.waitClose()
            echoed = good.echo(b"y" * 60000, opcode=2)
            good.close()
            bad.close()
            return code, len(echoed)

        code, n = await inThread(scenario)
        self.assertEqual(code, 1009)
        self.assertEqual(n, 60000)

    async def test_partialBudgetStalledHoldersPay(self) -> None:
        """
        The attack of issue 19 over real sockets, scaled down 16 times
        (1 MiB messages, a 4 MiB budget, 4 KiB reads): 8 connections each
        send a 1 MiB frame but its last 6.4 KB and stall; the four oldest
        get 1013 as the last four push the worker over the budget (it
        holds four).  Then 6 new clients
        each echo a 128 KiB message: all come back (the newcomer used to
        pay: 1013 for the first legitimate message crossing the budget).
        """
        server = await startServer(
            self,
            "--max-message-size",
            str(_MIB),
            "--max-frame-size",
            str(_MIB),
            "--partial-message-budget",
            str(4 * _MIB),
            "--read-buffer-size",
            "4096",
        )

        def scenario() -> tuple:
            attackers = []
            for _ in range(8):
                c = WSClient(server.port, timeout=15)
                c.send(frame(2, b"x" * _MIB)[: _MIB - 6400])
                attackers.append(c)
            closed: dict[int, int | None] = {}
            deadline = time.monotonic() + 15
            while len(closed) < 4 and time.monotonic() < deadline:
                waiting = [c.sock for i, c in enumerate(attackers) if i not in closed]
                ready, _, _ = select.select(waiting, [], [], deadline - time.monotonic())
                for i, c in enumerate(attackers):
                    if c.sock in ready:
                        closed[i] = c.waitClose(5)
            echoed = []
            for i in range(6):
                c = WSClient(server.port, timeout=15)
                payload = bytes([i]) * (128 * 1024)
                try:
                    echoed.append(c.echo(payload, opcode=2) == payload)
                except (Closed, AssertionError):
                    echoed.append(c.closeCode)
                c.close()
            for c in attackers:
                c.close()
            return closed, echoed

        closed, echoed = await inThread(scenario)
        self.assertEqual(echoed, [True] * 6)
        self.assertEqual(closed, {0: 1013, 1: 1013, 2: 1013, 3: 1013})
        self.assertFalse(server.exited)

    async def test_deflateBomb(self) -> None:
        """
        A permessage-deflate message of 200 MiB of zeros compressed to ~200
        KiB closes with 1009 once the decompressed size passes
        --max-message-size (16 MiB), without inflating it all: the
        server's peak RSS grows by less than 48 MiB.
        """
        import zlib

        server = await startServer(self)

        def scenario() -> tuple:
            c = WSClient(server.port, connect=False, timeout=20)
            c.handshake(
                upgradeRequest(
                    port=server.port,
                    extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
                )
            )
            self.assertIn(b"permessage-deflate", c.headers)
            co = zlib.compressobj(9, zlib.DEFLATED, -15)
            bomb = co.compress(bytes(200 * _MIB)) + co.flush(zlib.Z_SYNC_FLUSH)
            base = procStatus(server.pid)["VmRSS"]
            try:
                c.send(frame(2, bomb[:-4], rsv=4))  # RSV1: compressed
            except OSError:
                pass
            code = c.waitClose(20)
            st = procStatus(server.pid)
            c.close()
            return code, len(bomb), (st["VmHWM"] - base) / 1024

        code, size, growth = await inThread(scenario)
        print(
            f"\ndeflate bomb: {size / 1024:.0f} KiB -> 200 MiB: close {code}, "
            f"peak RSS growth {growth:.1f} MiB"
        )
        self.assertEqual(code, 1009)
        self.assertLess(growth, 48.0)

    async def test_openHandshakeTimeout(self) -> None:
        """
        A TCP connection that never sends its upgrade request is dropped
        with --open-handshake-timeout 0.5, and its descriptor freed.  (That
        the timer fires exactly when due is pinned on a fake clock:
        C{test_wsecho.HandlerUnitTests.test_openHandshakeTimeout}.)
        """
        server = await startServer(self, "--open-handshake-timeout", "0.5")

        def scenario() -> tuple:
            fds = openSockets(server.pid)
            silent = WSClient(server.port, connect=False)
            self.assertTrue(pollUntil(lambda: openSockets(server.pid) > fds, 15))
            dropped = silent.waitEOF(15)
            freed = pollUntil(lambda: openSockets(server.pid) <= fds, 15)
            silent.close()
            return dropped, freed

        dropped, freed = await inThread(scenario)
        self.assertTrue(dropped)
        self.assertTrue(freed)

    async def test_headerTooLong(self) -> None:
        """
        An upgrade request whose header block grows past --max-header-size
        (16 KiB) gets HTTP 431 and a closed connection; the server stops
        reading long before it could buffer the 8 MiB we try to send.
        """
        server = await startServer(self)

        def scenario() -> tuple:
            base = procStatus(server.pid)["VmRSS"]
            c = WSClient(server.port, connect=False)
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
            sent = 0
            refused = False
            try:
                while sent < 8 * _MIB:
                    c.send(line)
                    sent += len(line)
            except OSError:
                refused = True
            try:
                status = c.readHttp()
            except (Closed, OSError):
                status = b""
            st = procStatus(server.pid)
            c.close()
            return status, refused, sent, (max(st["VmRSS"], st["VmHWM"]) - base) / 1024

        status, refused, sent, growth = await inThread(scenario)
        print(
            f"\nheader flood: server took {sent / 1024:.0f} KiB before closing; "
            f"RSS growth {growth:.1f} MiB; answer {status!r}"
        )
        # the 431 may be lost to the RST our unread flood causes; the close is not
        self.assertTrue(refused or status, "the server kept reading an endless header")
        if status:
            self.assertRegex(status, rb"^HTTP/1\.1 (431|400) ")
        self.assertLess(growth, 8.0)

    async def test_headerTooLongAnswer(self) -> None:
        """A complete but over-long header block is answered with HTTP 431."""
        server = await startServer(self)

        def scenario() -> bytes:
            c = WSClient(server.port, connect=False)
            c.send(upgradeRequest(port=server.port, extra=b"X-Big: " + b"b" * 20000 + b"\r\n"))
            status = c.readHttp()
            eof = c.waitEOF(5)
            c.close()
            return status, eof

        status, eof = await inThread(scenario)
        self.assertRegex(status, rb"^HTTP/1\.1 431 ")
        self.assertTrue(eof)

    async def test_maxConnections(self) -> None:
        """
        With --max-connections 3 the fourth and fifth clients get HTTP 503 and
        a closed connection, while the first three keep echoing; once one
        leaves, a new client gets in.
        """
        server = await startServer(self, "--max-connections", "3")

        def scenario() -> tuple:
            first = [WSClient(server.port) for _ in range(3)]
            refused = []
            for _ in range(2):
                c = WSClient(server.port, connect=False)
                c.send(upgradeRequest(port=server.port))
                refused.append((c.readHttp(), c.waitEOF(5)))
                c.close()
            echoes = [c.echo(b"still here %d" % i) for i, c in enumerate(first)]
            first[0].send(closeFrame(1000))
            first[0].waitClose()
            first[0].close()

            def later() -> bool:
                try:
                    c = WSClient(server.port)
                except (AssertionError, Closed, OSError):
                    return False
                ok = c.echo(b"late") == b"late"
                c.close()
                return ok

            again = pollUntil(later, 5, 0.1)
            for c in first[1:]:
                c.close()
            return refused, echoes, again

        refused, echoes, again = await inThread(scenario)
        for status, eof in refused:
            self.assertRegex(status, rb"^HTTP/1\.1 503 ")
            self.assertTrue(eof)
        self.assertEqual(echoes, [b"still here 0", b"still here 1", b"still here 2"])
        self.assertTrue(again)

    async def test_autoPingDropsSilentClient(self) -> None:
        """
        With --auto-ping-interval 0.2 --auto-ping-timeout 0.5 a client that
        never answers pings is dropped; one that answers them meanwhile
        gets pings, stays and echoes.  (When the pings and the drop are due
        is pinned on a fake clock: C{test_wsproto}'s auto-ping tests.)
        """
        server = await startServer(
            self, "--auto-ping-interval", "0.2", "--auto-ping-timeout", "0.5"
        )

        def scenario() -> tuple:
            mute = WSClient(server.port)
            live = WSClient(server.port)
            pings = 0
            gone = False
            # the live client answers pings until the mute one (which never
            # answers) is gone and it got two; bounded
            deadline = time.monotonic() + 30
            while not (gone and pings >= 2) and time.monotonic() < deadline:
                try:
                    op, payload = live.readFrame(0.1)
                    if op == 9:
                        pings += 1
                        live.send(frame(10, payload))
                except TimeoutError:
                    pass
                gone = gone or mute.waitEOF(0.01)
            echo = live.echo(b"alive")
            mute.close()
            live.close()
            return gone, pings, echo

        gone, pings, echo = await inThread(scenario)
        self.assertTrue(gone)
        self.assertGreaterEqual(pings, 2)
        self.assertEqual(echo, b"alive")


class ShutdownTests(unittest.TestCase):
    """SIGTERM drains WebSockets with a 1001 closing handshake."""

    timeout = 60

    async def test_sigtermClosesWith1001(self) -> None:
        """
        SIGTERM with 20 open WebSocket clients: each gets a Close frame
        with 1001, answers it, and twistd exits once they did, without
        waiting for --shutdown-timeout (60 s, longer than the wait), with
        status 0 (twistd re-raised the signal that stopped it: "killed by
        SIGTERM", until EngineService cleared it after the drain).
        """
        server = await startServer(self, "--shutdown-timeout", "60")
        clients = await inThread(lambda: [WSClient(server.port) for _ in range(20)])
        self.addCleanup(lambda: [c.close() for c in clients])
        await inThread(lambda: [c.echo(b"hi") for c in clients])
        server.signal(signal.SIGTERM)

        def answer(c: WSClient) -> int | None:
            code = c.waitClose(5)
            try:
                c.send(closeFrame(1000))
            except OSError:
                pass
            c.waitEOF(5)
            return code

        codes = await defer.gatherResults([inThread(answer, c) for c in clients])
        await server.waitForExit(30)
        self.assertEqual(codes, [1001] * 20)
        self.assertEqual((server.exitCode, server.exitSignal), (0, None))

    async def test_unansweredCloseAborted(self) -> None:
        """
        A client that never answers our 1001 Close is aborted by
        --shutdown-timeout (1 s; the close-handshake timeout is set longer
        than every wait here, so only the shutdown timer can act); the
        process then exits with status 0 (a drain bounded by
        --shutdown-timeout is a clean stop).  (That the abort comes exactly
        at the shutdown timeout is pinned on a fake clock:
        C{test_wsecho.HandlerUnitTests.test_shutdownTimeoutAbortsSilentClients}.)
        """
        server = await startServer(
            self, "--shutdown-timeout", "1", "--close-handshake-timeout", "60"
        )
        stubborn = await inThread(WSClient, server.port)
        self.addCleanup(stubborn.close)
        server.signal(signal.SIGTERM)

        def scenario() -> tuple:
            code = stubborn.waitClose(15)
            eof = stubborn.waitEOF(30)
            return code, eof

        code, eof = await inThread(scenario)
        await server.waitForExit(30)
        self.assertEqual(code, 1001)
        self.assertTrue(eof)
        self.assertEqual((server.exitCode, server.exitSignal), (0, None))


class BadInputTests(unittest.TestCase):
    """Garbage and protocol violations close only the offending connection."""

    timeout = 60

    async def test_garbageAndTLSOnPlainPort(self) -> None:
        """
        Random bytes and a TLS ClientHello on the plain port get HTTP 400 (or
        a bare close) for that connection; another connection keeps echoing.
        Junk with a blank line is answered 400 at once; a ClientHello has
        none, so the opening-handshake timeout (1 s here) closes it.
        """
        server = await startServer(self, "--open-handshake-timeout", "1")
        clientHello = bytes.fromhex(
            "16030100c4010000c00303"
            + "ab" * 32
            + "00"
            + "0020"
            + "c02b" * 16
            + "0100"
            + "0075"
            + "00" * 117
        )

        def scenario() -> list:
            good = WSClient(server.port)
            results = []
            for junk in (
                random.Random(20261124).randbytes(4096) + b"\r\n\r\n",
                clientHello,
                b"\x00\xff" * 10 + b"\r\n\r\n",
            ):
                c = WSClient(server.port, connect=False)
                try:
                    c.send(junk)
                except OSError:
                    pass
                try:
                    status = c.readHttp()
                except (Closed, OSError, TimeoutError):
                    status = b""
                results.append((status, c.eof or c.waitEOF(5)))
                c.close()
                results.append(good.echo(b"ok"))
            good.close()
            return results

        results = await inThread(scenario)
        print(
            f"\nbad input answers (random, TLS ClientHello, binary junk): "
            f"{[status[:40] for status, _ in results[0::2]]}"
        )
        for status, closed in results[0::2]:
            self.assertTrue(closed)
            if status:
                # 400 bad request, or 405 when the junk's first word parses as a method
                self.assertRegex(status, rb"^HTTP/1\.1 40[05] ")
        self.assertEqual(results[1::2], [b"ok"] * 3)

    async def test_protocolViolations1002(self) -> None:
        """
        An unmasked frame, a reserved opcode, a set RSV bit, a fragmented
        ping and a continuation without a start each close their connection
        with 1002; a neighbour keeps echoing.
        """
        server = await startServer(self)
        violations = [
            frame(1, b"unmasked", mask=None),
            frame(3, b"reserved opcode"),
            frame(1, b"rsv", rsv=4),
            frame(9, b"ping", fin=False),
            frame(0, b"stray continuation"),
        ]

        def scenario() -> list:
            good = WSClient(server.port)
            out = []
            for v in violations:
                c = WSClient(server.port)
                c.send(frame(1, b"first") + v)
                echo = c.readMessage()
                out.append((echo, c.waitClose()))
                c.close()
                out.append(good.echo(b"fine"))
            good.close()
            return out

        out = await inThread(scenario)
        for echo, code in out[0::2]:
            # the message before the violation is echoed before the close
            self.assertEqual(echo, (1, b"first"))
            self.assertEqual(code, 1002)
        self.assertEqual(out[1::2], [b"fine"] * len(violations))

    async def test_invalidUtf8Gets1007(self) -> None:
        """A text message that is not UTF-8 closes with 1007."""
        server = await startServer(self)

        def scenario() -> int | None:
            c = WSClient(server.port)
            c.send(frame(1, b"\xff\xfe bad"))
            code = c.waitClose()
            c.close()
            return code

        self.assertEqual(await inThread(scenario), 1007)


class BurstTests(unittest.TestCase):
    """Connection bursts and the listen backlog."""

    timeout = 120

    async def test_burst2000(self) -> None:
        """
        2000 clients connecting at once (wsload --max-pending 0) all get in:
        the default backlog is the OS maximum (ss shows somaxconn).
        """
        _needWsload()
        server = await startServer(self)
        if shutil.which("ss"):
            self.assertEqual(await inThread(_listenBacklog, server.port), _somaxconn())
        t0 = time.monotonic()
        result, _code, text = await runWsload(
            self,
            [
                "--connect-only",
                "2000",
                "--hold",
                "2",
                "--max-pending",
                "0",
                "--quiet",
                f"ws://127.0.0.1:{server.port}/",
            ],
            timeout=60,
        )
        took = time.monotonic() - t0
        self.assertIsNotNone(result, text)
        print(
            f"\nburst: {result.get('succeeded')}/2000 open in "
            f"{result.get('connect_all_s')} s (run {took:.1f} s), "
            f"hs p50 {result.get('hs_p50_us')} us"
        )
        self.assertEqual(result["succeeded"], 2000, text)

    async def test_backlogOption(self) -> None:
        """--backlog 77 is the listen backlog the kernel reports (ss Send-Q)."""
        if not shutil.which("ss"):
            raise unittest.SkipTest("ss (iproute2) is not installed: cannot read the backlog")
        server = await startServer(self, "--backlog", "77")
        self.assertEqual(await inThread(_listenBacklog, server.port), 77)

    async def test_listenBacklogArgument(self) -> None:
        """
        --listen tcp:PORT:backlog=33 reaches the kernel: ss shows 33 on that
        listener (and on --port's: the engine has one backlog).
        """
        if not shutil.which("ss"):
            raise unittest.SkipTest("ss (iproute2) is not installed: cannot read the backlog")
        extra = freePort()
        server = await startServer(self, "--listen", f"tcp:{extra}:backlog=33")
        self.assertEqual(await inThread(_listenBacklog, extra), 33)
        self.assertEqual(await inThread(_listenBacklog, server.port), 33)


class LoadTests(unittest.TestCase):
    """Many concurrent connections with stable memory (10,000: scripts/soak)."""

    timeout = 150

    async def _concurrent(self, n: int, rounds: int) -> None:
        """
        Open C{n} connections with wsload C{rounds} times (hold 3 s, 64
        handshakes in flight); print the rate and KiB per connection; check
        every one opened without errors, per-connection memory is small and
        a second round does not grow the peak much (memory is reused).
        """
        _needWsload()
        server = await startServer(self, "--tick", "0.5")
        base = server.rssKiB()
        peaks = []
        for r in range(rounds):
            peak = [server.rssKiB()]
            sampling = [True]

            def sample(peak: list = peak, sampling: list = sampling) -> None:
                while sampling[0]:
                    peak[0] = max(peak[0], procStatus(server.pid).get("VmRSS", 0))
                    time.sleep(0.1)  # a worker thread, never the reactor

            sampler = inThread(sample)
            start = len(server.output)
            t0 = time.monotonic()
            try:
                result, _code, text = await runWsload(
                    self,
                    [
                        "--connect-only",
                        str(n),
                        "--hold",
                        "3",
                        "--max-pending",
                        "64",
                        "--quiet",
                        f"ws://127.0.0.1:{server.port}/",
                    ],
                    timeout=150,
                )
            finally:
                sampling[0] = False
                await sampler
            took = time.monotonic() - t0
            await _countAfter(server, 0, 15, start)
            peaks.append(peak[0])
            end = server.rssKiB()
            perConn = (peak[0] - base) / n
            rate = n / result["connect_all_s"] if result and result.get("connect_all_s") else 0
            print(
                f"\nload round {r + 1}: {result and result.get('succeeded')}/{n} open in "
                f"{result and result.get('connect_all_s')} s ({rate:.0f} handshakes/s), "
                f"RSS {base / 1024:.1f} -> peak {peak[0] / 1024:.1f} -> end {end / 1024:.1f} MiB, "
                f"{perConn:.1f} KiB/conn, run {took:.1f} s"
            )
            self.assertIsNotNone(result, text)
            self.assertEqual(result["succeeded"], n, text)
            self.assertEqual(result.get("errors", 0), 0, text)
            self.assertLess(perConn, 64.0)
        if rounds > 1:
            firstGrowth = peaks[0] - base
            self.assertLess(max(peaks[1:]) - peaks[0], max(firstGrowth * 0.25, 4096))

    async def test_concurrent3000(self) -> None:
        """
        3000 concurrent WebSocket connections (wsload --connect-only 3000
        --hold 3 --max-pending 64) all open, under 64 KiB each.
        """
        await self._concurrent(3000, rounds=1)

    async def test_concurrent10000(self) -> None:
        """
        10,000 concurrent connections, twice: all open, memory per
        connection small and the second round reuses the first's memory.
        Takes ~35-40 s per round here, so it runs only with
        HARDENING_10K=1 (scripts/soak runs the 10k load every cycle).
        """
        if os.environ.get("HARDENING_10K") != "1":
            raise unittest.SkipTest("set HARDENING_10K=1 (slow: ~80 s); scripts/soak covers it")
        await self._concurrent(10000, rounds=2)

    test_concurrent10000.timeout = 300  # type: ignore[attr-defined]


class FaultTests(unittest.TestCase):
    """Descriptor exhaustion, resets mid-message, peers vanishing."""

    timeout = 60

    async def test_emfileAtAccept(self) -> None:
        """
        With RLIMIT_NOFILE 64, opening 100 connections exhausts the server's
        descriptors (EMFILE at accept): it keeps running without spinning
        (Twisted's reserved-descriptor recovery accepts and closes the
        surplus), and once we close ours it accepts and echoes again.  The
        refusals are logged as one warning naming the limit (64) and the
        remedies, at most one every 10 s with the count since the last
        (Twisted logged three lines per refused connection).
        """
        server = await startServer(self, "--open-handshake-timeout", "30", nofile=64)

        def scenario() -> tuple:
            socks = []
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                socks.append(s)
            full = pollUntil(lambda: openFds(server.pid) >= 60, 5)
            held = time.monotonic()
            cpu0 = _cpuSeconds(server.pid)
            time.sleep(1.0)  # a worker thread, not the reactor: let accept() keep failing
            cpu = _cpuSeconds(server.pid) - cpu0
            held = time.monotonic() - held
            for s in socks:
                s.close()
            freed = pollUntil(lambda: openSockets(server.pid) <= 2, 10)

            def works() -> bool:
                try:
                    c = WSClient(server.port, timeout=2)
                    ok = c.echo(b"back") == b"back"
                    c.close()
                    return ok
                except (AssertionError, Closed, OSError, TimeoutError):
                    return False

            again = pollUntil(works, 10, 0.2)
            return full, freed, again, cpu / held

        full, freed, again, busy = await inThread(scenario)
        warnings = re.findall(
            r"^(\S+) .*#warn\] refused (\d+) connection\(s\) since the last such warning: "
            r"this process is at its open-file limit \(RLIMIT_NOFILE 64\); raise the limit "
            r"\(LimitNOFILE= in the systemd unit, ulimit -n\) or keep connections below it "
            r"\(gnetecho --max-connections\)",
            server.output,
            re.M,
        )
        print(
            f"\nEMFILE: server CPU while out of descriptors: {busy * 100:.0f}% of a core; "
            f"refusals logged: {[int(n) for _, n in warnings]}"
        )
        self.assertGreaterEqual(len(warnings), 1, server.output)
        self.assertNotIn("EMFILE", server.output)
        self.assertNotIn("Could not accept", server.output)
        # at most one every 10 s: pinned on a fake clock
        # (test_twistedcompat's test_throttled), not on log timestamps here
        self.assertLess(busy, 0.5)
        self.assertFalse(server.exited)
        self.assertTrue(full, "the server never ran out of descriptors")
        self.assertTrue(freed)
        self.assertTrue(again)

    async def test_resetMidMessage(self) -> None:
        """
        A client that resets (SO_LINGER 0) in the middle of a 1 MiB frame
        leaves the server healthy: the connection count drops back and
        another client echoes.
        """
        server = await startServer(self, "--tick", "0.2")

        def scenario() -> bytes:
            good = WSClient(server.port)
            for _ in range(5):
                c = WSClient(server.port)
                whole = frame(2, os.urandom(_MIB))
                c.send(whole[: len(whole) // 2])
                c.abort()
            echo = good.echo(b"x" * 1000)
            good.close()
            return echo

        start = len(server.output)
        self.assertEqual(await inThread(scenario), b"x" * 1000)
        await _countAfter(server, 0, 10, start)
        self.assertNotIn("Traceback", server.output)

    async def test_peerVanishesMidHandshake(self) -> None:
        """
        A peer that sends half an upgrade request and then goes silent (no
        FIN) is cleaned up by the open-handshake timeout; the count drops.
        (When: C{test_wsproto}'s C{test_openHandshakeTimeout}, fake clock.)
        """
        server = await startServer(self, "--open-handshake-timeout", "0.5", "--tick", "0.2")

        def scenario() -> tuple:
            fds = openSockets(server.pid)
            c = WSClient(server.port, connect=False)
            c.send(upgradeRequest(port=server.port)[:40])
            gone = c.waitEOF(15)
            freed = pollUntil(lambda: openSockets(server.pid) <= fds, 15)
            c.close()
            return gone, freed

        start = len(server.output)
        gone, freed = await inThread(scenario)
        self.assertTrue(gone)
        self.assertTrue(freed)
        await _countAfter(server, 0, 15, start)
