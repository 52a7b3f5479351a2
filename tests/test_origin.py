"""
Tests for the origin check of the opening handshake (L{gnetcompat.websocket._origin}):
the matcher alone, and real handshakes over loopback against an echo
engine (raw upgrade requests in threads, every socket call bounded).
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat import tap
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.websocket import WebSocketOptions
from gnetcompat.websocket._origin import OriginPolicy, printable

from ._hardening_util import upgradeRequest

IO_TIMEOUT = 10.0


class OriginPolicyTests(SynchronousTestCase):
    """
    L{OriginPolicy} compares origins, not strings.
    """

    def test_listedOriginAsBrowsersSendIt(self) -> None:
        """
        A listed origin is allowed as a browser sends it (no port), with its
        default port spelled out, and in any case; another scheme or port
        is not.
        """
        p = OriginPolicy(["https://good.example", "http://local.test:8080"])
        for origin in (
            "https://good.example",
            "https://good.example:443",
            "HTTPS://Good.Example",
            "http://local.test:8080",
        ):
            self.assertTrue(p.allows(origin), origin)
        for origin in (
            "http://good.example",
            "https://good.example:8443",
            "wss://good.example",
            "http://local.test",
            "http://local.test:80",
        ):
            self.assertFalse(p.allows(origin), origin)

    def test_noPrefixOrSuffixMatch(self) -> None:
        """
        A listed host admits nothing that merely starts or ends with it, and
        nothing with a path, user info or junk after it.
        """
        p = OriginPolicy(["https://good.example"])
        for origin in (
            "https://good.example.evil.com",
            "https://evilgood.example",
            "https://good.examplex",
            "https://good.example/",
            "https://u@good.example",
            "https://good.example:443/x",
            "https://good.example\x1b",
            "",
            " ",
            "https://good.example:99999",
        ):
            self.assertFalse(p.allows(origin), repr(origin))

    def test_wildcardWholeLabels(self) -> None:
        """
        C{*.} matches one or more whole labels in front of the rest; not
        the bare domain, nor a host that only ends with the same characters.
        """
        p = OriginPolicy(["https://*.example.com"])
        for origin in (
            "https://a.example.com",
            "https://a.b.example.com",
            "https://A.Example.COM:443",
        ):
            self.assertTrue(p.allows(origin), origin)
        for origin in (
            "https://example.com",
            "https://evilexample.com",
            "https://.example.com",
            "https://a.example.com.evil.net",
            "http://a.example.com",
        ):
            self.assertFalse(p.allows(origin), origin)

    def test_anyPort(self) -> None:
        """C{:*} allows any port of that scheme and host."""
        p = OriginPolicy(["http://127.0.0.1:*", "http://[::1]:*"])
        for origin in ("http://127.0.0.1:1", "http://127.0.0.1", "http://[::1]:9080"):
            self.assertTrue(p.allows(origin), origin)
        self.assertFalse(p.allows("https://127.0.0.1:1"))

    def test_null(self) -> None:
        """
        C{null} (and Chromium's C{file://}) is refused unless allowed,
        even by C{*}; C{*} alone allows every real origin.
        """
        for patterns in (["*"], ["https://good.example"]):
            p = OriginPolicy(patterns)
            for origin in ("null", "NULL", "file://", "file:///etc/passwd"):
                self.assertFalse(p.allows(origin), (patterns, origin))
            self.assertTrue(OriginPolicy(patterns, allowNull=True).allows("null"))
        self.assertTrue(OriginPolicy(["*"]).allows("https://anything.example:1234"))
        self.assertFalse(OriginPolicy(["*"]).allowsEverything)
        self.assertTrue(OriginPolicy(["*"], allowNull=True).allowsEverything)

    def test_badPatterns(self) -> None:
        """
        A pattern that is not C{*} or an origin is an error quoting it:
        C{*} elsewhere than a leading label, a path, no scheme, a bad port.
        """
        for pattern in (
            "https://good.example*",
            "https://a.*.example",
            "*.example.com",
            "good.example",
            "https://x/y",
            "https://x:0",
            "https://x:70000",
            "https://*.[::1]",
            "https://bad\x1bhost",
        ):
            e = self.assertRaises(ValueError, OriginPolicy, [pattern])
            self.assertIn("bad origin pattern", str(e))
            self.assertNotIn("\x1b", str(e))

    def test_options(self) -> None:
        """
        C{WebSocketOptions.validate} and C{--allowed-origins} refuse a bad
        pattern naming the option; C{--allow-null-origin} is off by default.
        """
        e = self.assertRaises(
            ValueError, WebSocketOptions(allowedOrigins=["https://good.example*"]).validate
        )
        self.assertIn("allowedOrigins", str(e))
        o = tap.Options()
        e = self.assertRaises(
            usage.UsageError, o.parseOptions, ["--allowed-origins", "https://good.example*"]
        )
        self.assertIn("--allowed-origins", str(e))
        o = tap.Options()
        o.parseOptions([])
        self.assertFalse(o["wsOptions"].allowNullOrigin)
        self.assertFalse(WebSocketOptions().allowNullOrigin)
        o = tap.Options()
        o.parseOptions(["--allow-null-origin"])
        self.assertTrue(o["wsOptions"].allowNullOrigin)

    def test_printable(self) -> None:
        """Control bytes and non-ASCII are escaped, long text cut."""
        self.assertEqual(
            printable("a\x1b[2J\x00\r\n\xe9\u2028"), "a\\x1b[2J\\x00\\r\\n\\xe9\\u2028"
        )
        self.assertEqual(printable("x" * 300, 10), "x" * 10 + "...")


def _handshake(port: int, origin: bytes | None) -> bytes:
    """Thread: an upgrade request with this Origin; the response's status line."""
    extra = b"Origin: %s\r\n" % origin if origin is not None else b""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        s.sendall(upgradeRequest(port=port, extra=extra))
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


class OriginHandshakeTests(TestCase):
    """
    Real opening handshakes against an echo engine with an origin list.
    """

    timeout = 60

    async def serve(self, **kw: Any) -> int:
        options = WebSocketOptions(openHandshakeTimeout=30.0, **kw)
        engine = await gnet.Serve(
            WebSocketEchoServer(multicore=False, wsOptions=options), "tcp://127.0.0.1:0"
        )
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        return engine.listeningPorts[0].getHost().port

    def captureLog(self) -> list[dict]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    async def test_allowAndDeny(self) -> None:
        """
        With C{https://good.example} and C{https://*.example.com} listed,
        the listed origins as browsers send them and requests without
        Origin get 101; the old workaround's victim
        (C{https://good.example.evil.com}), other sites and C{null} get 403,
        each with exactly one info log line, its origin escaped.
        """
        from twisted.logger import formatEvent

        port = await self.serve(allowedOrigins=["https://good.example", "https://*.example.com"])
        events = self.captureLog()
        for origin in (
            b"https://good.example",
            b"https://good.example:443",
            b"https://a.b.example.com",
            None,
        ):
            status = await deferToThread(_handshake, port, origin)
            self.assertIn(b" 101 ", status, origin)
        self.assertEqual(
            [
                e
                for e in events
                if e.get("log_level", LogLevel.info) >= LogLevel.info and "origin" in formatEvent(e)
            ],
            [],
        )
        refused = (
            b"https://good.example.evil.com",
            b"https://evil.example",
            b"null",
            b"file://",
            b"https://ev\x1bil.example",
        )
        for origin in refused:
            status = await deferToThread(_handshake, port, origin)
            self.assertTrue(status.startswith(b"HTTP/1.1 403 "), (origin, status))
            self.assertNotIn(b"\x1b", status)
        shown = [e for e in events if e.get("log_level", LogLevel.info) >= LogLevel.info]
        lines = [formatEvent(e) for e in shown if "origin" in formatEvent(e)]
        self.assertEqual(len(lines), len(refused), lines)
        self.assertTrue(all(e["log_level"] == LogLevel.info for e in shown), shown)
        self.assertIn("https://good.example.evil.com", lines[0])
        self.assertIn("\\x1b", lines[-1])
        self.assertFalse(any("\x1b" in line for line in lines))

    async def test_nullOriginAllowed(self) -> None:
        """C{allowNullOrigin=True} (C{--allow-null-origin}) admits C{null}."""
        port = await self.serve(allowedOrigins=["https://good.example"], allowNullOrigin=True)
        self.assertIn(b" 101 ", await deferToThread(_handshake, port, b"null"))
        status = await deferToThread(_handshake, port, b"https://evil.example")
        self.assertTrue(status.startswith(b"HTTP/1.1 403 "), status)

    async def test_defaultAllowsAnyRealOrigin(self) -> None:
        """The default C{*} admits any site's origin, not C{null}."""
        port = await self.serve()
        self.assertIn(b" 101 ", await deferToThread(_handshake, port, b"https://x.example:8443"))
        status = await deferToThread(_handshake, port, b"null")
        self.assertTrue(status.startswith(b"HTTP/1.1 403 "), status)
