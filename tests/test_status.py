"""
Tests for the status page of the echo service (L{gnetcompat.echo.status}, served
by the WebSocket session layer to a plain C{GET /} on the echo port).

Raw HTTP clients run in threads; the browser test drives headless chromium
with selenium (as L{tests.test_browser}) against the echo port itself and
saves a screenshot in the trial temp directory.  Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

import gnetcompat as gnet
from gnetcompat import tap
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.websocket import WebSocketOptions

from ._browser import requireBrowser, startChromium
from ._clients import IO_TIMEOUT, echoSession, plainGet, poll, readAll


def rawRequest(port: int, request: bytes) -> bytes:
    """Send C{request} as it is on a new connection; the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(request)
        return readAll(s)


def field(page: bytes, ident: str) -> str:
    """The text of the element with id C{ident}."""
    m = re.search(rb'id="' + ident.encode() + rb'"[^>]*>([^<]*)<', page)
    assert m is not None, f"no #{ident} in the page"
    return m.group(1).decode()


def statusOptions(**kw: Any) -> WebSocketOptions:
    """Options with the status page on and a long opening-handshake timeout."""
    return WebSocketOptions(webStatus=True, openHandshakeTimeout=60.0, **kw)


class StatusPageTests(TestCase):
    """
    The page over plain HTTP.
    """

    timeout = 60

    async def serve(self, wsOptions: WebSocketOptions) -> tuple[WebSocketEchoServer, int]:
        handler = WebSocketEchoServer(multicore=False, wsOptions=wsOptions)
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        return handler, engine.listeningPorts[0].getHost().port

    async def test_pageHasTheNumbers(self) -> None:
        """
        C{GET /} answers 200 HTML with the version, one worker, the open
        connections (three idle ones plus the GET's own), the messages
        echoed so far, a rate, and the echo console; the connection closes.
        """
        handler, port = await self.serve(statusOptions())
        msgs = [f"m{i}" for i in range(7)]
        self.assertEqual(await deferToThread(echoSession, port, msgs), msgs)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) for _ in range(3)]
        self.addCleanup(lambda: [s.close() for s in idle])
        await poll(lambda: handler.engineStats().open == 3, "3 idle connections")
        response = await deferToThread(plainGet, port)
        head, _, body = response.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        self.assertIn(b"Content-Type: text/html; charset=utf-8", head)
        self.assertIn(b"Content-Length: %d" % len(body), head)
        self.assertEqual(field(body, "version"), gnet.__version__)
        self.assertEqual(field(body, "workers"), "1")
        self.assertEqual(field(body, "connections"), "4")
        self.assertEqual(field(body, "messages"), "7")
        self.assertGreater(float(field(body, "rate")), 0)
        self.assertRegex(field(body, "uptime"), r"^\d\d:\d\d:\d\d$")
        self.assertIn(b"new WebSocket(", body)

    async def test_otherPathsAndNoOpenRedirect(self) -> None:
        """
        Only C{/} is the page (others: 404), and Autobahn's C{?redirect=}
        does not turn the echo port into an open redirect (HTTP 400, no
        C{Location}); other query parameters are ignored.
        """
        _, port = await self.serve(statusOptions())
        missing = await deferToThread(plainGet, port, "/nope")
        self.assertTrue(missing.startswith(b"HTTP/1.1 404"), missing[:60])
        redirect = await deferToThread(plainGet, port, "/?redirect=http%3A%2F%2Fevil.example%2F")
        self.assertTrue(redirect.startswith(b"HTTP/1.1 400"), redirect[:60])
        self.assertNotIn(b"evil.example", redirect)
        self.assertNotIn(b"Location", redirect)
        page = await deferToThread(plainGet, port, "/?t=1")
        self.assertTrue(page.startswith(b"HTTP/1.1 200"), page[:60])

    async def test_securityHeaders(self) -> None:
        """
        The page is sent with a Content-Security-Policy that allows its own
        inline script and style (by hash) and a WebSocket to itself only,
        C{nosniff}, and no framing (C{X-Frame-Options: DENY} and
        C{frame-ancestors 'none'}); a 404 is sent with C{nosniff} too.
        """
        import base64
        import hashlib

        _, port = await self.serve(statusOptions())
        response = await deferToThread(plainGet, port)
        head, _, body = response.partition(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        csp = headers[b"Content-Security-Policy"].decode()
        self.assertEqual(headers[b"X-Content-Type-Options"], b"nosniff")
        self.assertEqual(headers[b"X-Frame-Options"], b"DENY")
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        for tag in (b"script", b"style"):
            inline = re.search(b"<" + tag + b">(.*?)</" + tag + b">", body, re.S)
            assert inline is not None
            digest = base64.b64encode(hashlib.sha256(inline.group(1)).digest()).decode()
            self.assertIn(f"{tag.decode()}-src 'sha256-{digest}'", csp)
        missing = await deferToThread(plainGet, port, "/nope")
        self.assertIn(b"\r\nX-Content-Type-Options: nosniff\r\n", missing)

    async def test_healthCheckRequests(self) -> None:
        """
        What load balancers send gets the page too: HTTP/1.0 with or without
        C{Host} (HAProxy's plain C{option httpchk}) and HTTP/1.1 without
        C{Host}; none of them logs a warning.  A request for the page that
        asks to upgrade (HTTP/1.0) is still refused by Autobahn.
        """
        from twisted.logger import LogLevel, globalLogPublisher

        warnings: list[dict] = []

        def observer(event: dict) -> None:
            if event.get("log_level", LogLevel.info) >= LogLevel.warn:
                warnings.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        _, port = await self.serve(statusOptions())
        for request in (
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: gnetecho\r\nUser-Agent: check\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: gnetecho\r\n\r\n",
        ):
            response = await deferToThread(rawRequest, port, request)
            head, _, body = response.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), (request, head))
            self.assertEqual(field(body, "workers"), "1")
        missing = await deferToThread(rawRequest, port, b"GET /x HTTP/1.0\r\n\r\n")
        self.assertTrue(missing.startswith(b"HTTP/1.1 404"), missing[:60])
        self.assertEqual(warnings, [])
        upgrade = await deferToThread(
            rawRequest, port, b"GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
        )
        self.assertTrue(upgrade.startswith(b"HTTP/1.1 505"), upgrade[:60])

    async def test_statusPageFalse(self) -> None:
        """
        C{--status-page=false}: a plain GET gets HTTP 426, as before.
        """
        o = tap.Options()
        o.parseOptions(["--status-page=false"])
        _, port = await self.serve(o["wsOptions"])
        response = await deferToThread(plainGet, port)
        self.assertTrue(response.startswith(b"HTTP/1.1 426"), response[:60])
        self.assertNotIn(b"<html", response)

    async def test_multicore(self) -> None:
        """
        With two workers the page (served by either) shows two workers and
        the engine-wide message count.
        """
        handler = WebSocketEchoServer(multicore=True, wsOptions=statusOptions())
        engine = await gnet.Serve(
            handler, "tcp://127.0.0.1:0", gnet.WithProcessWorkers(2), gnet.WithReusePort(True)
        ).addTimeout(30, reactor)
        self.addCleanup(shutil.rmtree, handler.statsDir, True)
        self.addCleanup(lambda: None if engine.stopping else engine.Stop().addTimeout(20, reactor))
        [(_, port)] = engine.addresses
        for i in range(4):
            await deferToThread(echoSession, port, [f"{i}"] * 3)

        async def page() -> bytes | None:
            body = await deferToThread(plainGet, port)
            return (
                body if field(body, "messages") == "12" and field(body, "workers") == "2" else None
            )

        body = await poll(page, "12 messages on 2 workers", timeout=20)
        self.assertEqual(field(body, "connections"), "1")


#: malformed and hostile requests for the echo port: each must get a 4xx
HOSTILE = [
    b"GET /?redirect=x&after=z HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /?redirect=http://[ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /?redirect=http%3A%2F%2F%5B HTTP/1.0\r\n\r\n",
    b"GET http://[ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x1b[2J\x1b]0;pwned\x07GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\x1b[31m\x00x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\x1b\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\rX: \x00\r\nHost: a\r\n\r\n",
    b"G\x00ET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\xff\x1b:1\r\nUpgrade: websocket\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /" + b"A" * 40_000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"\x1b" * 20_000 + b"\r\n\r\n",
]


class HostileRequestTests(TestCase):
    """
    Malformed requests on the echo port (status page on) over real
    sockets: a 4xx each, at most one log line, escaped; never a traceback.
    """

    timeout = 60

    def captureLog(self) -> list[dict]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    async def test_malformedRequests(self) -> None:
        """
        Each of L{HOSTILE} (Autobahn's C{?redirect=} with a bad URL or
        number, a bad request target, control bytes in the request line and
        headers, another method, an overlong line) gets a 4xx status with no
        raw control byte in it, and logs at most one line at info or above,
        with no raw control byte and no traceback; the server still echoes.
        """
        from twisted.logger import formatEvent

        handler = WebSocketEchoServer(multicore=False, wsOptions=statusOptions())
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        port = engine.listeningPorts[0].getHost().port
        events = self.captureLog()
        for request in HOSTILE:
            before = len(events)
            response = await deferToThread(rawRequest, port, request)
            status = response.split(b"\r\n", 1)[0]
            self.assertRegex(status, rb"^HTTP/1\.1 4\d\d ", request[:80])
            self.assertIsNone(
                re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]", response), response[:200]
            )
            await poll(lambda: handler.engineStats().open == 0, "the connection closed")
            shown = [
                e for e in events[before:] if e.get("log_level", LogLevel.info) >= LogLevel.info
            ]
            self.assertLessEqual(len(shown), 1, [formatEvent(e) for e in shown])
            for e in shown:
                text = formatEvent(e)
                self.assertLess(e["log_level"], LogLevel.error, text)
                self.assertNotIn("log_failure", e)
                self.assertIsNone(re.search(r"[\x00-\x1f\x7f-\uffff]", text), text)
                self.assertLess(len(text), 400, text)
        self.assertEqual(await deferToThread(echoSession, port, ["still up"]), ["still up"])

    async def test_floodLogIsBounded(self) -> None:
        """
        100 small bad-redirect requests (which used to cost a CRITICAL
        traceback, 121 KB of log) log at most 100 short lines.
        """
        from twisted.logger import formatEvent

        handler = WebSocketEchoServer(multicore=False, wsOptions=statusOptions())
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        port = engine.listeningPorts[0].getHost().port
        events = self.captureLog()

        def flood() -> list[bytes]:
            return [rawRequest(port, HOSTILE[i % 2])[:12] for i in range(100)]

        statuses = await deferToThread(flood)
        self.assertEqual(set(statuses), {b"HTTP/1.1 400"})
        shown = [
            formatEvent(e) for e in events if e.get("log_level", LogLevel.info) >= LogLevel.info
        ]
        self.assertLessEqual(len(shown), 100)
        self.assertLess(sum(len(t) for t in shown), 100 * 200)
        self.assertFalse(any("Traceback" in t for t in shown))


def _browse(url: str, profile: str, screenshot: str, text: str) -> dict[str, Any]:
    """
    Thread: load the status page in headless chromium, type C{text} into
    the echo console, wait (bounded) for its echo, take a screenshot.
    """
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = startChromium(profile, "--window-size=1024,768")
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait = WebDriverWait(driver, 20, poll_frequency=0.1)
        wait.until(lambda d: d.find_element("id", "state").text == "open")
        box = driver.find_element("id", "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
        echoes = wait.until(
            lambda d: d.execute_script("return window.__echo.length ? window.__echo : null")
        )
        driver.save_screenshot(screenshot)
        return {
            "echoes": echoes,
            "connections": driver.find_element("id", "connections").text,
            "title": driver.title,
            "log": driver.find_element("id", "log").text,
        }
    finally:
        driver.quit()


class BrowserStatusTests(TestCase):
    """
    Chromium renders the page and its echo console round-trips.
    """

    timeout = 120

    def setUp(self) -> None:
        """Skip (or, under CI=true, fail) when the browser stack is missing."""
        requireBrowser(self)

    async def test_pageInChromium(self) -> None:
        """
        The page served by the echo port loads, the console echoes a typed
        message over a WebSocket to the same host, the DOM shows the
        connection count (two idle ones plus the page's own GET, at least)
        and the screenshot is a real rendering (a PNG of the window size and
        of non-trivial size).
        """
        handler = WebSocketEchoServer(multicore=False, wsOptions=statusOptions())
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        port = engine.listeningPorts[0].getHost().port
        idle = [socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) for _ in range(2)]
        self.addCleanup(lambda: [s.close() for s in idle])
        await poll(lambda: handler.engineStats().open == 2, "2 idle connections")

        profile = tempfile.mkdtemp(prefix="gnetecho-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        outdir = self.mktemp()
        os.makedirs(outdir)
        shot = os.path.abspath(os.path.join(outdir, "status.png"))
        text = "héllo console ✓"
        result = await deferToThread(_browse, f"http://127.0.0.1:{port}/", profile, shot, text)

        self.assertEqual(result["echoes"], [text])
        self.assertIn("< " + text, result["log"])
        self.assertEqual(result["title"], "gnetecho status")
        self.assertRegex(result["connections"], r"^\d+$")
        self.assertGreaterEqual(int(result["connections"]), 3)
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        self.assertGreaterEqual((width, height), (800, 500))
        self.assertGreater(len(png), 10_000, "a blank page compresses to a few KiB")
        self.assertEqual(handler.stats.messagesIn, 1)
