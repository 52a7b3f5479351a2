"""
Tests for L{gnetcompat.echo.metrics}: the Prometheus endpoint of the echo
service, single-process and multicore, scraped over loopback after real
traffic through an engine started with L{gnetcompat.Serve}.

Clients (C{websockets}' sync client, raw sockets) run in threads
(C{deferToThread}) so the reactor keeps serving; every socket operation has
a timeout and every wait is bounded.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import tempfile
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http import HTTPChannel

import gnetcompat as gnet
from gnetcompat import tap
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.echo.metrics import (
    EchoStats,
    MetricsService,
    RateMeter,
    StatsPublisher,
    metricsRegistry,
    metricsSite,
    readStatsDir,
)
from gnetcompat.websocket import WebSocketOptions

from ._clients import IO_TIMEOUT, echoSession, plainGet, poll, readAll


def tcpDrop(port: int) -> None:
    """Connect and hang up without a byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT):
        pass


def protocolError(port: int) -> bytes:
    """Upgrade, then send a frame with RSV bits set (1002); return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        s.sendall(bytes([0x81 | 0x70, 0x80 | 2]) + b"\x00\x00\x00\x00" + b"hi")
        return head + readAll(s)


# -- helpers ------------------------------------------------------------------------------


async def scrape(port: int, path: bytes = b"/metrics") -> tuple[int, bytes]:
    """GET C{path} from 127.0.0.1:C{port}; (status, body)."""
    agent = Agent(reactor, connectTimeout=IO_TIMEOUT)
    response = await agent.request(b"GET", b"http://127.0.0.1:%d%s" % (port, path)).addTimeout(
        IO_TIMEOUT, reactor
    )
    body = await readBody(response).addTimeout(IO_TIMEOUT, reactor)
    return response.code, body


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    """Parse an exposition with C{prometheus_client}: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def closedTotal(m: dict) -> float:
    return sum(v for (name, _), v in m.items() if name == "gnetecho_connections_closed_total")


TEXTS = [f"message {i} ✓" for i in range(10)]
BINARIES = [bytes(range(i % 256)) * (i + 1) for i in range(10)]


class SingleProcessMetricsTests(TestCase):
    """
    The endpoint of a single-process engine.
    """

    timeout = 60

    async def test_scrapeMatchesTraffic(self) -> None:
        """
        After 20 echoed messages, a TCP drop, a refused plain GET and a
        protocol error, the endpoint (a L{MetricsService} on a loopback
        endpoint) shows exactly those numbers; the open gauge is back to 0.
        """
        handler = WebSocketEchoServer(multicore=False, wsOptions=WebSocketOptions(webStatus=False))
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        port = engine.listeningPorts[0].getHost().port

        svc = MetricsService("tcp:0:interface=127.0.0.1", handler.engineStats)
        svc.startService()
        self.addCleanup(svc.stopService)
        metricsPort = (await svc._waitingForPort).getHost().port

        echoes = await deferToThread(echoSession, port, TEXTS + BINARIES)
        self.assertEqual(echoes, TEXTS + BINARIES)
        await deferToThread(tcpDrop, port)
        refused = await deferToThread(plainGet, port)
        self.assertTrue(refused.startswith(b"HTTP/1.1 426"), refused[:80])
        violated = await deferToThread(protocolError, port)
        self.assertIn(b"\x88", violated)  # a Close frame came back

        async def settled() -> dict | None:
            code, body = await scrape(metricsPort)
            self.assertEqual(code, 200)
            m = samples(body)
            return m if closedTotal(m) == 4 else None

        m = await poll(settled, "4 closed connections")
        size = sum(len(t.encode()) for t in TEXTS) + sum(len(b) for b in BINARIES)
        expected = {
            ("gnetecho_open_connections", ()): 0,
            ("gnetecho_connections_accepted_total", ()): 4,
            ("gnetecho_connections_closed_total", (("code", "1000"),)): 1,
            ("gnetecho_connections_closed_total", (("code", "1002"),)): 1,
            ("gnetecho_connections_closed_total", (("code", "none"),)): 2,
            ("gnetecho_messages_total", (("direction", "in"),)): 20,
            ("gnetecho_messages_total", (("direction", "out"),)): 20,
            ("gnetecho_payload_bytes_total", (("direction", "in"),)): size,
            ("gnetecho_payload_bytes_total", (("direction", "out"),)): size,
            ("gnetecho_handshake_failures_total", ()): 1,
            ("gnetecho_protocol_errors_total", (("code", "1002"),)): 1,
            ("gnetecho_workers", ()): 1,
        }
        self.assertEqual({k: m.get(k) for k in expected}, expected)
        self.assertLessEqual(m[("gnetecho_start_time_seconds", ())], time.time())

    async def test_openGaugeAndEchoPortIsClean(self) -> None:
        """
        The gauge counts connections while they are open; the echo port
        never serves the exposition: C{GET /metrics} there is a 404 with the
        status page on, a 426 with it off.
        """
        for webStatus, status in ((True, b"404"), (False, b"426")):
            handler = WebSocketEchoServer(
                multicore=False, wsOptions=WebSocketOptions(webStatus=webStatus)
            )
            engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
            port = engine.listeningPorts[0].getHost().port
            try:
                body = await deferToThread(plainGet, port, "/metrics")
                self.assertTrue(body.startswith(b"HTTP/1.1 " + status), body[:80])
                self.assertNotIn(b"gnetecho_", body)
                socks = [
                    socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
                    for _ in range(3)
                ]
                try:
                    await poll(lambda h=handler: h.engineStats().open == 3, "3 open")
                finally:
                    for s in socks:
                        s.close()
                await poll(lambda h=handler: h.engineStats().open == 0, "0 open")
            finally:
                await engine.Stop()

    async def test_notFound(self) -> None:
        """The metrics site serves C{/metrics} only."""
        site = metricsSite(metricsRegistry(EchoStats().snapshot))
        lp = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(lp.stopListening)
        code, _ = await scrape(lp.getHost().port, b"/")
        self.assertEqual(code, 404)
        code, body = await scrape(lp.getHost().port)
        self.assertEqual(code, 200)
        self.assertIn(b"# TYPE gnetecho_messages_total counter", body)


def rawHttp(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[bytes, bool]:
    """
    Send C{request} (headers only for the hostile cases: no body follows);
    read until EOF; (response, whether the server closed the connection).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(IO_TIMEOUT)
        s.connect((host, port))
        s.sendall(request)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out, True
            except TimeoutError:
                return out, False
            if not chunk:
                return out, True
            out += chunk


class MetricsHardeningTests(TestCase):
    """
    The metrics site refuses what it does not serve before reading it, and
    a bare port binds loopback.
    """

    timeout = 60

    async def startService(self, description: str) -> Any:
        svc = MetricsService(description, EchoStats().snapshot)
        svc.startService()
        self.addCleanup(svc.stopService)
        return await svc._waitingForPort

    async def test_barePortBindsLoopback(self) -> None:
        """
        C{0}, C{tcp:0} and C{tcp:port=0} bind 127.0.0.1, C{tcp6:0} binds
        ::1 (as C{--port}); an explicit interface is honoured, with a
        warning when it is not loopback.
        """
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        for description, host in (
            ("tcp:0", "127.0.0.1"),
            ("0", "127.0.0.1"),
            ("tcp:port=0", "127.0.0.1"),
            ("tcp6:0", "::1"),
            ("tcp:0:interface=127.0.0.1", "127.0.0.1"),
        ):
            port = await self.startService(description)
            self.assertEqual(port.getHost().host, host, description)
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        port = await self.startService("tcp:0:interface=0.0.0.0")
        self.assertEqual(port.getHost().host, "0.0.0.0")
        warnings = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("0.0.0.0", warnings[0])
        o = tap.Options()
        o.parseOptions(["--metrics", "9100"])
        self.assertEqual(o["metrics"], "9100")

    async def test_refusedBeforeTheBody(self) -> None:
        """
        The headers of a 1 GB POST get 405 (a GET announcing a body, or a
        chunked one, 413) and the connection is closed, without a byte of
        the body sent; other methods get 405, an overlong line 431, too
        many headers 400.  GET of C{/metrics} still works, HEAD gets no body.
        """
        port = (await self.startService("tcp:0")).getHost().port
        for request, status in (
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n", b"405"),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
            (
                b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
                b"Expect: 100-continue\r\n\r\n",
                b"405",
            ),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n", b"413"),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"413"),
            (b"GET /" + b"m" * 10_000 + b" HTTP/1.1\r\n", b"431"),
            (b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n", b"400"),
        ):
            response, closed = await deferToThread(rawHttp, port, request)
            self.assertTrue(
                response.startswith(b"HTTP/1.1 " + status + b" "), (request[:60], response[:80])
            )
            self.assertNotIn(b"100 Continue", response)
            self.assertTrue(closed, request[:60])
        code, body = await scrape(port)
        self.assertEqual(code, 200)
        self.assertIn(b"gnetecho_messages_total", body)

    async def test_headAndAllow(self) -> None:
        """
        C{HEAD /metrics} is served: 200 with the C{Content-Type} and the
        C{Content-Length} of the C{GET} response, and no body (it was 405
        with C{Allow: OPTIONS,GET}, from prometheus_client's exporter).
        Every method not served, C{OPTIONS} included, gets 405 with an
        C{Allow} header naming exactly the methods served: C{GET, HEAD}.
        """
        port = (await self.startService("tcp:0")).getHost().port

        def headers(response: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
            head, _, body = response.partition(b"\r\n\r\n")
            status, *lines = head.split(b"\r\n")
            fields = {}
            for line in lines:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip()
            return status, fields, body

        get, _ = await deferToThread(
            rawHttp, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head, closed = await deferToThread(
            rawHttp, port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        getStatus, getFields, getBody = headers(get)
        headStatus, headFields, headBody = headers(head)
        self.assertTrue(getStatus.startswith(b"HTTP/1.1 200 "), get[:80])
        self.assertIn(b"gnetecho_messages_total", getBody)
        self.assertTrue(headStatus.startswith(b"HTTP/1.1 200 "), head[:200])
        self.assertTrue(closed)
        self.assertEqual(headBody, b"")
        self.assertEqual(headFields[b"content-type"], getFields[b"content-type"])
        self.assertTrue(headFields[b"content-type"].startswith(b"text/plain"))
        self.assertGreater(int(headFields[b"content-length"]), 0)
        for method in (b"OPTIONS", b"POST", b"DELETE"):
            response, _ = await deferToThread(
                rawHttp, port, method + b" /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            status, fields, _ = headers(response)
            self.assertTrue(status.startswith(b"HTTP/1.1 405 "), (method, response[:80]))
            self.assertEqual(fields[b"allow"], b"GET, HEAD", method)


class HTTPChannelCanaryTests(SynchronousTestCase):
    """
    The metrics site's C{HTTPChannel} subclass overrides hooks of Twisted's
    HTTP server that no interface declares (C{allHeadersReceived},
    C{allContentReceived}, C{length}): these canaries notice when a Twisted
    upgrade changes how they are called.
    """

    #: what the subclass adds of its own (everything else it defines overrides Twisted)
    OWN = {
        "_refuse",
        "_refused",
        "_method",
        "__module__",
        "__qualname__",
        "__doc__",
        "__annotations__",
    }

    def channel(self) -> tuple[HTTPChannel, StringTransport]:
        """A metrics-site channel over a C{StringTransport}, timeouts on a fake clock."""
        site = metricsSite(metricsRegistry(EchoStats().snapshot))
        site.reactor = Clock()
        proto = site.buildProtocol(None)
        assert isinstance(proto, HTTPChannel)
        t = StringTransport()
        proto.makeConnection(t)
        return proto, t

    def test_hooksStillCalledAsWeRelyOn(self) -> None:
        """
        Every name the subclass overrides exists on C{HTTPChannel};
        C{lineReceived} still calls C{allHeadersReceived} at the end of
        the headers, before choosing C{allContentReceived} (no body:
        C{length == 0}) or raw mode (a body); C{length} is still set from
        C{Content-Length}, and to C{None} for a chunked body.
        """
        cls = type(self.channel()[0])
        overridden = set(vars(cls)) - self.OWN
        self.assertEqual(
            overridden,
            {
                "MAX_LENGTH",
                "totalHeadersSize",
                "maxHeaders",
                "lineReceived",
                "lineLengthExceeded",
                "allHeadersReceived",
                "allContentReceived",
                "rawDataReceived",
            },
        )
        for name in overridden:
            self.assertTrue(hasattr(HTTPChannel, name), name)
        source = inspect.getsource(HTTPChannel.lineReceived)
        at = [
            source.index(s)
            for s in (
                "self.allHeadersReceived()",
                "if self.length == 0:",
                "self.allContentReceived()",
                "self.setRawMode()",
            )
        ]
        self.assertEqual(at, sorted(at), source)
        chooser = inspect.getsource(HTTPChannel._maybeChooseTransferDecoder)
        for needle in ("length = int(data)", "length = None", "self.length = length"):
            self.assertIn(needle, chooser)

    def test_refusedBeforeTheBodyInMemory(self) -> None:
        """
        In memory: a GET announcing a body gets 413 as soon as its headers
        are in, a POST 405 with C{Allow}, and the connection closes; what
        follows is ignored.  A plain GET is served.
        """
        for request, status in [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", b"413"),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"413"),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        ]:
            proto, t = self.channel()
            proto.dataReceived(request)
            self.assertTrue(t.value().startswith(b"HTTP/1.1 " + status + b" "), t.value())
            self.assertTrue(t.disconnecting)
            written = t.value()
            proto.dataReceived(b"12345")
            self.assertEqual(t.value(), written)
        self.assertIn(b"Allow: GET, HEAD\r\n", written)
        proto, t = self.channel()
        proto.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(t.value().startswith(b"HTTP/1.1 200 "), t.value()[:80])
        self.assertIn(b"gnetecho_open_connections", t.value())


class MulticoreMetricsTests(TestCase):
    """
    Two worker processes: the parent serves the engine-wide sums.
    """

    timeout = 90

    async def test_engineWideSums(self) -> None:
        """
        Four sessions of five messages and a drop, spread over two workers
        by the kernel (reuse-port), add up at the parent's endpoint (within
        the publication lag); the workers gauge is 2.
        """
        handler = WebSocketEchoServer(multicore=True)
        engine = await gnet.Serve(
            handler, "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2), gnet.WithReusePort(True)
        ).addTimeout(30, reactor)
        self.addCleanup(shutil.rmtree, handler.statsDir, True)

        async def stop() -> None:
            if not engine.stopping:
                await engine.Stop().addTimeout(20, reactor)

        self.addCleanup(stop)
        [(_, port)] = engine.addresses
        self.assertIsNotNone(handler.statsDir)
        site = reactor.listenTCP(
            0, metricsSite(metricsRegistry(handler.engineStats)), interface="127.0.0.1"
        )
        self.addCleanup(site.stopListening)
        metricsPort = site.getHost().port

        for i in range(4):
            msgs = [f"{i}:{j}" for j in range(5)]
            self.assertEqual(await deferToThread(echoSession, port, msgs), msgs)
        await deferToThread(tcpDrop, port)

        async def settled() -> dict | None:
            m = samples((await scrape(metricsPort))[1])
            messagesIn = m[("gnetecho_messages_total", (("direction", "in"),))]
            return m if closedTotal(m) == 5 and messagesIn == 20 else None

        m = await poll(settled, "engine-wide sums", timeout=20)
        self.assertEqual(m[("gnetecho_connections_accepted_total", ())], 5)
        self.assertEqual(m[("gnetecho_connections_closed_total", (("code", "1000"),))], 4)
        self.assertEqual(m[("gnetecho_connections_closed_total", (("code", "none"),))], 1)
        self.assertEqual(m[("gnetecho_open_connections", ())], 0)
        self.assertEqual(m[("gnetecho_workers", ())], 2)
        files = [n for n in os.listdir(handler.statsDir) if n.endswith(".stats")]
        self.assertEqual(sorted(int(n.split(".")[0]) for n in files), sorted(engine.workerPids()))


class StatsFileTests(SynchronousTestCase):
    """
    The per-worker files and the rate meter, in memory.
    """

    def test_publishAndSum(self) -> None:
        """
        Two published L{EchoStats} sum up; the open gauge of a file whose
        pid is gone is left out, its counters are kept.
        """
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        s = EchoStats()
        s.accepted, s.open, s.messagesIn, s.bytesIn = 3, 2, 7, 70
        s.connectionClosed(1000)
        s.connectionClosed(None, handshakeFailed=True)
        s.connectionClosed(4000, protocolError=1009)
        p = StatsPublisher(d, s)
        self.addCleanup(p.close)
        # a dead worker's file: copy ours under a pid that cannot exist
        with open(p.path, "rb") as f:
            data = bytearray(f.read())
        view = memoryview(data).cast("q")
        view[1] = 2**22 + 12345  # above pid_max on Linux
        view.release()
        with open(os.path.join(d, "dead.stats"), "wb") as f:
            f.write(data)
        snap = readStatsDir(d)
        self.assertEqual((snap.workers, snap.open, snap.accepted), (1, 2, 6))
        self.assertEqual((snap.messagesIn, snap.bytesIn, snap.handshakeFailures), (14, 140, 2))
        self.assertEqual(snap.closed, {"1000": 2, "none": 2, "other": 2})
        self.assertEqual(snap.protocolErrors, {"1009": 2})

    def test_rate(self) -> None:
        """
        The first reading is the average since start; later ones cover the
        samples of the last window.
        """
        now = [100.0]
        r = RateMeter(window=10, now=lambda: now[0])
        now[0] = 104.0
        self.assertEqual(r.rate(40), 10.0)
        now[0] = 106.0
        self.assertEqual(r.rate(80), 20.0)
        now[0] = 120.0
        self.assertEqual(r.rate(100), 100 / 20)


class MetricsOptionTests(SynchronousTestCase):
    """
    C{twistd gnetecho --metrics}.
    """

    def test_off(self) -> None:
        """Off by default: the service has no metrics child."""
        o = tap.Options()
        o.parseOptions([])
        self.assertIsNone(o["metrics"])
        self.assertRaises(KeyError, tap.makeService(o).getServiceNamed, "metrics")

    def test_on(self) -> None:
        """An endpoint description adds a C{metrics} service."""
        o = tap.Options()
        o.parseOptions(["--metrics", "tcp:0:interface=127.0.0.1"])
        self.assertIsNotNone(tap.makeService(o).getServiceNamed("metrics"))

    def test_bad(self) -> None:
        """A bad description stops twistd with a message naming the option."""
        o = tap.Options()
        e = self.assertRaises(usage.UsageError, o.parseOptions, ["--metrics", "nosuch:1"])
        self.assertIn("--metrics", str(e))
