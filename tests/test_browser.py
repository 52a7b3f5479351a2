"""
A real browser against the echo service: headless Debian chromium driven by
selenium through C{/usr/bin/chromedriver}.

The page (C{tests/browser_page.html}) is served by a separate
C{twisted.web} site on 127.0.0.1 from the test's own reactor; it opens a
WebSocket to the echo server, echoes a non-ASCII text message and binary
messages of 1, 125, 126, 65535, 65536 and 1 MiB bytes, checks each echo in
JavaScript and publishes the outcome in C{window.__result}.  Selenium runs
in a thread (C{deferToThread}) so the reactor keeps serving.

Skipped only when chromium, chromedriver or selenium is missing and C{CI}
is not C{true}; under C{CI=true} a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

import gnetcompat as gnet
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.websocket import WebSocketOptions

from ._browser import requireBrowser, startChromium

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser_page.html")

#: seconds for the whole page run (1 MiB echoes included)
PAGE_TIMEOUT = 60


def _runPage(url: str, profile: str) -> dict[str, Any]:
    """
    Thread: start headless chromium, load C{url}, wait (bounded) for
    C{window.__result}, return it; always quit the browser.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    driver = startChromium(profile)
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        result = WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.1).until(
            lambda d: d.execute_script("return window.__result || null")
        )
        result["dom"] = driver.find_element("id", "result").text
        return result
    finally:
        driver.quit()


class BrowserEchoTests(TestCase):
    """
    Chromium's WebSocket client against the echo server.
    """

    timeout = 120

    def setUp(self) -> None:
        """Skip (or, under CI=true, fail) when the browser stack is missing."""
        requireBrowser(self)

    def servePage(self) -> int:
        """Serve C{browser_page.html} on 127.0.0.1; its port."""
        with open(PAGE, "rb") as f:
            html = f.read()
        root = Resource()
        root.putChild(b"", Data(html, "text/html; charset=utf-8"))
        web = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(web.stopListening)
        return web.getHost().port

    async def runPage(self, allowedOrigins: list[str]) -> tuple[dict[str, Any], Any, int]:
        """
        Serve the page, and an echo engine allowing C{allowedOrigins}
        (C{{web}} stands for the page's port); run the page in chromium.
        """
        webPort = self.servePage()
        handler = WebSocketEchoServer(
            multicore=False,
            wsOptions=WebSocketOptions(
                allowedOrigins=[o.format(web=webPort) for o in allowedOrigins]
            ),
        )
        engine = await gnet.Serve(handler, "tcp://127.0.0.1:0")
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        echoPort = engine.listeningPorts[0].getHost().port
        profile = tempfile.mkdtemp(prefix="gnetecho-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        result = await deferToThread(
            _runPage, f"http://127.0.0.1:{webPort}/?port={echoPort}", profile
        )
        return result, handler, webPort

    async def test_chromiumEcho(self) -> None:
        """
        Chromium echoes non-ASCII text and binary messages of 1, 125, 126,
        65535, 65536 and 1 MiB bytes through the service, negotiates
        permessage-deflate, and closes cleanly with 1000; the service
        allows only the page's origin, exactly as Chromium sends it.
        """
        result, _handler, _ = await self.runPage(["http://127.0.0.1:{web}"])
        self.assertTrue(result["ok"], result)
        self.assertEqual(
            [c["message"] for c in result["checks"]],
            [
                "text",
                "binary 1",
                "binary 125",
                "binary 126",
                "binary 65535",
                "binary 65536",
                "binary 1048576",
            ],
        )
        self.assertTrue(all(c["ok"] for c in result["checks"]), result["checks"])
        self.assertEqual(result["checks"][0]["got"], "héllo wörld ✓ 日本語 🎉")
        self.assertEqual((result["closeCode"], result["wasClean"]), (1000, True))
        self.assertIn("permessage-deflate", result["extensions"])
        self.assertTrue(result["dom"].startswith("PASS"), result["dom"])

    async def test_chromiumRefusedOrigin(self) -> None:
        """
        A service that allows another origin refuses the page's WebSocket
        (HTTP 403: Chromium reports close code 1006 without one echo), and
        counts one failed handshake.
        """
        result, handler, _webPort = await self.runPage(
            ["https://good.example", "https://127.0.0.1:{web}", "http://localhost:{web}"]
        )
        self.assertFalse(result["ok"], result)
        self.assertEqual(result["closeCode"], 1006)
        self.assertEqual([c["message"] for c in result["checks"]], ["error event"])
        self.assertEqual(handler.stats.handshakeFailures, 1)
        self.assertEqual(handler.stats.messagesIn, 0)
