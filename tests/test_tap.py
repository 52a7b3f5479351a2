"""
Tests for L{gnetcompat.tap} and the C{gnetecho} twistd plugin.

The option parsing, service tree and plugin discovery are tested in
memory; one set of end-to-end tests starts the real
C{twistd -n gnetecho} with C{spawnProcess}, waits (bounded) for its
"is listening" log line, echoes through it, and stops it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat import tap
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.options import loadOptions
from gnetcompat.websocket import WebSocketOptions

from ._procs import LISTENING, freePort, spawnTwistd

MIB = 1024 * 1024

#: every option's value when none is given (the seed's defaults, and safe limits)
DEFAULTS = {
    "port": "9080",
    "multicore": True,
    "num-event-loop": 0,
    "workers": 0,
    "reuseport": True,
    "tick": 3.0,
    "max-message-size": 16 * MIB,
    "max-frame-size": 16 * MIB,
    "max-header-size": 16 * 1024,
    "open-handshake-timeout": 5.0,
    "close-handshake-timeout": 1.0,
    "auto-ping-interval": 20.0,
    "auto-ping-timeout": 20.0,
    "message-timeout": 60.0,
    "partial-message-budget": 64 * MIB,
    "allowed-origins": "*",
    "compression": True,
    "max-connections": 0,
    "backlog": 0,
    "read-buffer-size": 256 * 1024,
    "write-buffer-size": 64 * 1024,
    "log-level": "info",
    "shutdown-timeout": 5.0,
    "listen": [],
    "addresses": ["tcp://127.0.0.1:9080"],
    "origins": ["*"],
}


def parse(*argv: str) -> tap.Options:
    """Parse C{argv} with a fresh L{tap.Options}."""
    o = tap.Options()
    o.parseOptions(list(argv))
    return o


class OptionsTests(SynchronousTestCase):
    """
    L{tap.Options} turns the command line into checked values.
    """

    def assertUsageError(self, argv: list[str], *fragments: str) -> str:
        """Parsing C{argv} raises UsageError whose message holds every fragment."""
        e = self.assertRaises(usage.UsageError, parse, *argv)
        msg = str(e)
        for f in fragments:
            self.assertIn(f, msg, f"{argv!r}: {msg!r} lacks {f!r}")
        return msg

    def test_defaults(self) -> None:
        """
        With no arguments every option has the seed's default (port 9080 on
        loopback, multicore, reuseport, a 3 s tick) or a safe limit.
        """
        o = parse()
        self.assertEqual({k: o[k] for k in DEFAULTS}, DEFAULTS)
        self.assertEqual(
            o["wsOptions"],
            WebSocketOptions(
                maxMessagePayloadSize=16 * MIB,
                maxFramePayloadSize=16 * MIB,
                maxRequestHeaderSize=16 * 1024,
                openHandshakeTimeout=5.0,
                closeHandshakeTimeout=1.0,
                autoPingInterval=20.0,
                autoPingTimeout=20.0,
                messageTimeout=60.0,
                partialMessageBudget=64 * MIB,
                allowedOrigins=["*"],
                compression=True,
                webStatus=True,  # --status-page defaults to true
                keepRequest=False,  # the echo never reads the request
            ),
        )

    def test_everyOption(self) -> None:
        """
        Every option given on the command line is coerced to its type and
        reaches the WebSocket settings.
        """
        o = parse(
            "--port=tcp:9100:interface=0.0.0.0",
            "--multicore=false",
            "--num-event-loop=3",
            "--workers=5",
            "--reuseport=no",
            "--tick=0.5",
            "--max-message-size=1024",
            "--max-frame-size=512",
            "--max-header-size=4096",
            "--open-handshake-timeout=2.5",
            "--close-handshake-timeout=0.25",
            "--auto-ping-interval=10",
            "--auto-ping-timeout=4",
            "--message-timeout=7.5",
            "--partial-message-budget=4096",
            "--allowed-origins=http://a.example, https://*.b.example",
            "--compression=off",
            "--max-connections=100",
            "--backlog=64",
            "--read-buffer-size=100000",
            "--log-level=debug",
            "--shutdown-timeout=1.5",
        )
        expected = {
            "multicore": False,
            "num-event-loop": 3,
            "workers": 5,
            "reuseport": False,
            "tick": 0.5,
            "max-message-size": 1024,
            "max-frame-size": 512,
            "max-header-size": 4096,
            "open-handshake-timeout": 2.5,
            "close-handshake-timeout": 0.25,
            "auto-ping-interval": 10.0,
            "auto-ping-timeout": 4.0,
            "message-timeout": 7.5,
            "partial-message-budget": 4096,
            "compression": False,
            "max-connections": 100,
            "backlog": 64,
            "read-buffer-size": 100000,
            "log-level": "debug",
            "shutdown-timeout": 1.5,
            "addresses": ["tcp://0.0.0.0:9100"],
            "origins": ["http://a.example", "https://*.b.example"],
        }
        self.assertEqual({k: o[k] for k in expected}, expected)
        ws = o["wsOptions"]
        self.assertEqual(
            (
                ws.maxMessagePayloadSize,
                ws.maxFramePayloadSize,
                ws.maxRequestHeaderSize,
                ws.openHandshakeTimeout,
                ws.closeHandshakeTimeout,
                ws.autoPingInterval,
                ws.autoPingTimeout,
                ws.messageTimeout,
                ws.partialMessageBudget,
                ws.allowedOrigins,
                ws.compression,
            ),
            (
                1024,
                512,
                4096,
                2.5,
                0.25,
                10.0,
                4.0,
                7.5,
                4096,
                ["http://a.example", "https://*.b.example"],
                False,
            ),
        )

    def test_booleanSpellings(self) -> None:
        """
        Boolean options take true/false, yes/no, on/off and 1/0, any case.
        """
        for text, value in [
            ("true", True),
            ("FALSE", False),
            ("yes", True),
            ("no", False),
            ("on", True),
            ("Off", False),
            ("1", True),
            ("0", False),
        ]:
            self.assertEqual(parse(f"--multicore={text}")["multicore"], value, text)

    def test_portForms(self) -> None:
        """
        C{--port} takes a bare number (loopback), endpoint strings or gnet
        addresses.
        """
        cases = {
            "9081": "tcp://127.0.0.1:9081",
            "tcp:9082": "tcp://127.0.0.1:9082",
            "tcp6:9083": "tcp6://[::1]:9083",
            r"tcp6:9084:interface=\:\:": "tcp6://[::]:9084",
            "tcp://0.0.0.0:9085": "tcp://0.0.0.0:9085",
            "tcp://[::1]:9086": "tcp://[::1]:9086",
            "unix:///tmp/gnetecho.sock": "unix:///tmp/gnetecho.sock",
        }
        for given, address in cases.items():
            self.assertEqual(parse("--port", given)["addresses"], [address], given)

    def test_listenRepeatable(self) -> None:
        """
        C{--listen} adds one address per use (tcp:, tcp6:, unix:, gnet
        addresses) after the C{--port} one, in order.
        """
        o = parse(
            "--port=9090",
            "--listen",
            "tcp:9091",
            "--listen",
            "tcp6:9092",
            "--listen",
            r"tcp:9093:interface=\:\:1",
            "--listen",
            "unix:/tmp/gnetecho-test.sock",
            "--listen",
            "tcp://0.0.0.0:9094",
        )
        self.assertEqual(
            o["listen"],
            [
                "tcp:9091",
                "tcp6:9092",
                r"tcp:9093:interface=\:\:1",
                "unix:/tmp/gnetecho-test.sock",
                "tcp://0.0.0.0:9094",
            ],
        )
        self.assertEqual(
            o["addresses"],
            [
                "tcp://127.0.0.1:9090",
                "tcp://127.0.0.1:9091",
                "tcp6://[::1]:9092",
                "tcp://[::1]:9093",
                "unix:///tmp/gnetecho-test.sock",
                "tcp://0.0.0.0:9094",
            ],
        )

    def test_relativeUnixPath(self) -> None:
        """
        A relative C{unix:} path is made absolute (twistd may chdir later).
        """
        self.assertEqual(
            parse("--listen", "unix:rel.sock")["addresses"],
            ["unix://" + os.path.abspath("rel.sock")],
        )

    def test_listenAloneHasNoDefaultPort(self) -> None:
        """
        The default C{--port 9080} applies only when neither C{--port} nor
        C{--listen} is given (as C{twistd web --listen}), so a
        socket-activated service binds nothing of its own.
        """
        self.assertEqual(parse()["addresses"], ["tcp://127.0.0.1:9080"])
        self.assertEqual(parse("--listen", "tcp:9300")["addresses"], ["tcp://127.0.0.1:9300"])
        self.assertEqual(
            parse("--port", "9301", "--listen", "tcp:9302")["addresses"],
            ["tcp://127.0.0.1:9301", "tcp://127.0.0.1:9302"],
        )

    def test_invalidBooleans(self) -> None:
        """
        A boolean option with another word is refused, naming the option.
        """
        for name in ("multicore", "reuseport", "compression"):
            self.assertUsageError([f"--{name}=maybe"], f"--{name}", "maybe")

    def test_invalidNumbers(self) -> None:
        """
        Negative, non-numeric, NaN or infinite numbers are refused, naming
        the option.
        """
        bad = [
            ("tick", "-1"),
            ("tick", "nan"),
            ("tick", "inf"),
            ("max-message-size", "abc"),
            ("max-message-size", "-5"),
            ("max-frame-size", "1.5"),
            ("max-header-size", "0"),
            ("open-handshake-timeout", "soon"),
            ("close-handshake-timeout", "-0.1"),
            ("auto-ping-interval", "x"),
            ("message-timeout", "-1"),
            ("message-timeout", "inf"),
            ("message-timeout", "nan"),
            ("partial-message-budget", "-1"),
            ("partial-message-budget", "1e9"),
            ("max-connections", "-1"),
            ("backlog", "many"),
            ("read-buffer-size", "0"),
            ("read-buffer-size", str(2**70)),
            ("write-buffer-size", "0"),
            ("write-buffer-size", "lots"),
            ("write-buffer-size", str(1024**3 + 1)),
            ("num-event-loop", "-2"),
            ("num-event-loop", "257"),
            ("workers", "-1"),
            ("workers", "257"),
            ("workers", "two"),
            ("shutdown-timeout", "forever"),
        ]
        for name, value in bad:
            self.assertUsageError([f"--{name}={value}"], f"--{name}")

    def test_bufferSizeLimits(self) -> None:
        """
        The largest accepted buffer sizes (64 MiB read, 1 GiB write) pass;
        one byte more is refused with a message naming the option and the
        limit.
        """
        o = parse(f"--read-buffer-size={64 * 1024**2}", f"--write-buffer-size={1024**3}")
        self.assertEqual((o["read-buffer-size"], o["write-buffer-size"]), (64 * 1024**2, 1024**3))
        self.assertUsageError(
            [f"--read-buffer-size={64 * 1024**2 + 1}"], "--read-buffer-size", "<="
        )
        self.assertUsageError([f"--write-buffer-size={1024**3 + 1}"], "--write-buffer-size", "<=")

    def test_unsupportedListen(self) -> None:
        """
        C{--listen ssl6:443} (and other unknown forms) is refused with a
        message that names the option and says what is accepted; C{ssl:443}
        is served (native TLS) and, as in Twisted, reads C{server.pem}: its
        absence is named.
        """
        msg = self.assertUsageError(["--listen", "ssl6:443"], "--listen", "ssl6:443")
        self.assertUsageError(["--listen", "ssl:443"], "--listen", "'server.pem': cannot read it")
        for accepted in ("tcp:PORT", "tcp6:PORT", "unix:PATH", "tcp://"):
            self.assertIn(accepted, msg)
        for bad in ("systemd:domain=INET:index=0", "unix:", "tcp:http", "bogus"):
            self.assertUsageError(["--listen", bad], "--listen")

    def test_badAddresses(self) -> None:
        """
        Addresses that cannot be served are refused at parse time: a port
        out of range, a gnet address without a port, UDP, an unknown
        endpoint argument.
        """
        self.assertUsageError(["--port", "70000"], "--port", "70000")
        self.assertUsageError(["--port", "tcp://127.0.0.1"], "--port", "port")
        self.assertUsageError(["--listen", "udp://127.0.0.1:9000"], "--listen", "tcp or unix")
        self.assertUsageError(["--listen", "tcp:9000:foo=bar"], "--listen", "foo=bar")
        self.assertUsageError(["--listen", "ssl://127.0.0.1:443"], "--listen")

    def test_endpointBacklog(self) -> None:
        """
        C{backlog=N} of a C{tcp:}/C{tcp6:} endpoint is not dropped: it
        becomes the engine's listen backlog (C{WithBacklog}), which the
        service's engine gets; the same value given twice, or with
        C{--backlog}, is accepted.
        """
        o = parse(
            "--listen", "tcp:9300:backlog=17", "--listen", r"tcp6:9301:interface=\:\:1:backlog=17"
        )
        self.assertEqual(o["addresses"], ["tcp://127.0.0.1:9300", "tcp6://[::1]:9301"])
        self.assertEqual(o["backlog"], 17)
        svc = tap.makeService(o).getServiceNamed("gnetecho")
        self.assertEqual(loadOptions(*svc.opts).normalized().Backlog, 17)
        self.assertEqual(parse("--backlog=9", "--port", "tcp:9302:backlog=9")["backlog"], 9)
        self.assertEqual(tap.parseListen("tcp:9303:backlog=65535"), ("tcp://127.0.0.1:9303", 65535))
        self.assertEqual(tap.parseListen("tcp:9304"), ("tcp://127.0.0.1:9304", None))

    def test_endpointBacklogInvalid(self) -> None:
        """
        A C{backlog=} that is not a whole number 1-65535 is refused naming
        the option and the value; so are listeners asking for different
        backlogs (the engine has one), and C{--backlog} above 65535.
        """
        for bad in ("0", "-1", "abc", "", "1.5", "65536", "99999999999", " 5", "0x10"):
            self.assertUsageError(["--listen", f"tcp:9300:backlog={bad}"], "--listen", "backlog=")
        msg = self.assertUsageError(
            ["--listen", "tcp:9300:backlog=10", "--listen", "tcp:9301:backlog=20"],
            "--listen",
            "backlog",
        )
        self.assertIn("tcp:9301:backlog=20", msg)
        self.assertUsageError(
            ["--backlog=5", "--listen", "tcp:9300:backlog=6"], "--backlog 5", "backlog=6"
        )
        for bad in ("65536", str(2**31), str(10**12)):
            self.assertUsageError([f"--backlog={bad}"], "--backlog", "65535")

    def test_autoPingTimeoutNeedsInterval(self) -> None:
        """
        C{--auto-ping-timeout} without C{--auto-ping-interval} is refused.
        """
        self.assertUsageError(
            ["--auto-ping-interval=0", "--auto-ping-timeout=3"],
            "--auto-ping-timeout",
            "--auto-ping-interval",
        )
        parse("--auto-ping-timeout=3", "--auto-ping-interval=1")

    def test_partialMessageBudgetBelowMessageSize(self) -> None:
        """
        A budget for partly received messages smaller than the largest
        message (which could then never be received) is refused, naming both
        options; 0 switches the budget off.
        """
        self.assertUsageError(
            ["--partial-message-budget=1000"], "--partial-message-budget", "--max-message-size"
        )
        self.assertUsageError(
            ["--max-message-size=0"], "--partial-message-budget", "--max-message-size"
        )
        parse("--partial-message-budget=0")
        parse("--partial-message-budget=1000", "--max-message-size=1000")

    def test_invalidLogLevel(self) -> None:
        """
        C{--log-level} takes debug, info, warn or error only.
        """
        self.assertUsageError(["--log-level=loud"], "--log-level", "loud")
        for level in ("debug", "info", "warn", "error"):
            self.assertEqual(parse(f"--log-level={level}")["log-level"], level)

    def test_emptyOrigins(self) -> None:
        """
        C{--allowed-origins} must keep at least one pattern.
        """
        self.assertUsageError(["--allowed-origins= , "], "--allowed-origins")

    def test_unknownOption(self) -> None:
        """
        An unknown flag is a usage error (twistd prints it with the usage).
        """
        self.assertUsageError(["--colour=blue"], "colour")


class MakeServiceTests(SynchronousTestCase):
    """
    L{tap.makeService} builds the service tree twistd runs.
    """

    def test_tree(self) -> None:
        """
        The result is a C{MultiService} holding one C{EngineService} named
        C{gnetecho}, with the echo handler, every address and the gnet
        options from the command line.
        """
        o = parse(
            "--port=9200",
            "--listen=tcp6:9201",
            "--multicore=false",
            "--tick=2",
            "--backlog=32",
            "--shutdown-timeout=3",
            "--max-connections=7",
            "--read-buffer-size=100000",
            "--write-buffer-size=3000000",
            "--max-message-size=4096",
            "--log-level=debug",
        )
        top = tap.makeService(o)
        self.assertIsInstance(top, MultiService)
        services = list(top)
        self.assertEqual(len(services), 1)
        svc = top.getServiceNamed("gnetecho")
        self.assertIsInstance(svc, gnet.EngineService)
        self.assertFalse(svc.running)
        self.assertEqual(svc.addrs, ["tcp://127.0.0.1:9200", "tcp6://[::1]:9201"])
        h = svc.handler
        self.assertIsInstance(h, WebSocketEchoServer)
        self.assertEqual(h.addr, "tcp://127.0.0.1:9200, tcp6://[::1]:9201")
        self.assertEqual((h.multicore, h.tick, h.maxConnections, h.debug), (False, 2.0, 7, True))
        self.assertEqual(h.wsOptions.maxMessagePayloadSize, 4096)
        opts = loadOptions(*svc.opts)
        self.assertEqual(
            (
                opts.numWorkers(),
                opts.NumEventLoop,
                opts.ReusePort,
                opts.Ticker,
                opts.Backlog,
                opts.ShutdownTimeout,
                opts.ReadBufferCap,
                opts.WriteBufferCap,
            ),
            (0, 0, True, True, 32, 3.0, 100000, 3000000),
        )
        # powers of two, as gnet
        self.assertEqual(opts.normalized().ReadBufferCap, 131072)
        self.assertEqual(opts.normalized().WriteBufferCap, 4 * 1024 * 1024)

    def test_openFileLimitRaisedByTheService(self) -> None:
        """
        The echo service raises the open-file limit when it starts (one
        descriptor per connection), once, before its children start.
        """
        from gnetcompat.echo import service

        calls: list = []
        self.patch(service, "raiseOpenFileLimit", lambda **kw: calls.append(kw))
        top = tap.makeService(parse("--port=9200", "--multicore=false"))
        self.assertIsInstance(top, service.EchoService)
        engine = top.getServiceNamed("gnetecho")
        started: list = []
        self.patch(engine, "startService", lambda: started.append(len(calls)))
        self.patch(engine, "stopService", lambda: None)
        top.startService()
        self.addCleanup(top.stopService)
        self.assertEqual(len(calls), 1)
        self.assertEqual(started, [1])

    def test_workersMapToProcessWorkers(self) -> None:
        """
        gnetecho serves from worker processes: C{--workers N} gives N,
        C{--multicore} one per CPU or C{--num-event-loop} of them,
        C{--multicore=false} one process; never event loops sharing one
        process (C{WithMulticore} is not passed on).
        """
        cases = [
            ((), True, os.cpu_count() or 1),
            (("--workers=3",), 3, 3),
            (("--workers=3", "--multicore=false"), 3, 3),
            (("--num-event-loop=2",), True, 2),
            (("--multicore=false",), 0, 0),
            (("--multicore=false", "--num-event-loop=1"), 0, 0),
        ]
        for argv, asked, workers in cases:
            opts = loadOptions(*parse(*argv).gnetOptions())
            self.assertEqual((opts.ProcessWorkers, opts.numWorkers()), (asked, workers), argv)
            self.assertEqual(opts.numLoops() if not workers else 1, 1, argv)
            self.assertFalse(opts.Multicore)

    def test_defaultsTree(self) -> None:
        """
        With defaults the engine runs one worker process per CPU (process
        workers: the echo handler is stateless) with reuse-port and the
        ticker on, listening on 127.0.0.1:9080.
        """
        svc = tap.makeService(parse()).getServiceNamed("gnetecho")
        self.assertEqual(svc.addrs, ["tcp://127.0.0.1:9080"])
        opts = loadOptions(*svc.opts)
        self.assertEqual((opts.ProcessWorkers, opts.ReusePort, opts.Ticker), (True, True, True))
        self.assertEqual(opts.numWorkers(), os.cpu_count() or 1)
        self.assertTrue(svc.handler.multicore)
        self.assertFalse(svc.handler.debug)

    def test_tickZeroDisablesTicker(self) -> None:
        """
        C{--tick=0} turns the ticker (the count log) off.
        """
        svc = tap.makeService(parse("--tick=0")).getServiceNamed("gnetecho")
        self.assertFalse(loadOptions(*svc.opts).Ticker)


def listeningSocket(family: int = socket.AF_INET, address: Any = ("127.0.0.1", 0)) -> socket.socket:
    """A bound, listening socket, as systemd would pass one."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(address)
    s.listen(128)
    return s


class SystemdTests(SynchronousTestCase):
    """
    C{systemd:} descriptions (Twisted's syntax and parser) name the sockets
    systemd passes for socket activation; they become C{fd://N} addresses.
    """

    def setUp(self) -> None:
        from twisted.internet.endpoints import _SystemdParser
        from twisted.python.systemd import ListenFDs

        # what Twisted read from LISTEN_FDS/LISTEN_FDNAMES at import (as its own tests do)
        self.patch(_SystemdParser, "_sddaemon", ListenFDs([3, 4], ("web", "admin")))

    def test_indexAndName(self) -> None:
        """
        C{index=N} is descriptor 3 + N; C{name=NAME} looks the name up.
        """
        self.assertEqual(tap.systemdDescriptor("systemd:domain=INET:index=0"), 3)
        self.assertEqual(tap.systemdDescriptor("systemd:domain=UNIX:index=1"), 4)
        self.assertEqual(tap.systemdDescriptor("systemd:domain=INET:name=admin"), 4)

    def test_refused(self) -> None:
        """
        Out of range, unknown name, bad arguments: a ValueError that says why.
        """
        cases = [
            ("systemd:domain=INET:index=2", "systemd passed no such socket"),
            ("systemd:domain=INET:name=nope", "systemd passed no such socket"),
            ("systemd:domain=INET", "exactly one of descriptor index or name"),
            ("systemd:domain=INET:index=0:name=web", "exactly one of descriptor index or name"),
            ("systemd:domain=BLUETOOTH:index=0", "domain must be"),
            ("systemd:domain=INET:index=0:port=80", "port"),
            ("systemd:name=web", "give domain=INET|INET6|UNIX"),
        ]
        for description, text in cases:
            e = self.assertRaises(ValueError, tap.systemdDescriptor, description)
            self.assertIn(text, str(e), description)

    def test_optionErrorNamesTheOption(self) -> None:
        """
        Outside socket activation C{--listen systemd:...} is a usage error
        naming the option.
        """
        from twisted.internet.endpoints import _SystemdParser
        from twisted.python.systemd import ListenFDs

        self.patch(_SystemdParser, "_sddaemon", ListenFDs([], ()))
        e = self.assertRaises(usage.UsageError, parse, "--listen", "systemd:domain=INET:index=0")
        self.assertIn("--listen", str(e))
        self.assertIn("systemd passed no such socket", str(e))

    def test_fdAddress(self) -> None:
        """
        C{fd://N} of a listening socket passes through; anything else on
        that descriptor is refused with a message naming the option.
        """
        lst = listeningSocket()
        self.addCleanup(lst.close)
        self.assertEqual(
            parse("--port", f"fd://{lst.fileno()}")["addresses"], [f"fd://{lst.fileno()}"]
        )
        idle = socket.socket()
        self.addCleanup(idle.close)
        e = self.assertRaises(usage.UsageError, parse, "--listen", f"fd://{idle.fileno()}")
        self.assertIn("--listen", str(e))
        self.assertIn("not a listening stream socket", str(e))


class PluginTests(SynchronousTestCase):
    """
    twistd finds the C{gnetecho} plugin.
    """

    def test_discovered(self) -> None:
        """
        C{getPlugins(IServiceMaker)} yields C{gnetecho}, whose options class
        is L{tap.Options} and whose C{makeService} is L{tap.makeService}.
        """
        from twisted import plugins

        makers = {p.tapname: p for p in getPlugins(IServiceMaker, plugins)}
        self.assertIn("gnetecho", makers)
        maker = makers["gnetecho"]
        self.assertIs(maker.options, tap.Options)
        self.assertEqual(maker.makeService, tap.makeService)
        self.assertIn("WebSocket", maker.description)


def _syncEcho(port: int, messages: list[str | bytes], timeout: float = 10.0) -> list[str | bytes]:
    """In a thread: connect with the websockets sync client, echo each message, close."""
    from websockets.sync.client import connect

    out: list[str | bytes] = []
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=timeout, close_timeout=timeout) as ws:
        for m in messages:
            ws.send(m)
            out.append(ws.recv(timeout=timeout))
    return out


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:C{port}."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _unixGet(path: str) -> bytes:
    """In a thread: a plain HTTP GET over the unix socket; the whole response."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _connectRetrying(port: int, deadline: float) -> list[str | bytes]:
    """In a thread: L{_syncEcho} until the port accepts (bounded by C{deadline})."""
    while True:
        try:
            return _syncEcho(port, ["héllo ✓", b"\x00\x01\xff"])
        except (ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # off the reactor thread


class TwistdEndToEndTests(TestCase):
    """
    The real C{twistd -n gnetecho}, spawned, echoes and shuts down cleanly.
    """

    timeout = 60

    async def test_serveEchoAndStop(self) -> None:
        """
        C{twistd -n --pidfile= gnetecho --port P --multicore=false} logs
        "is listening", echoes text and binary over a real WebSocket, and
        on SIGTERM ends as twistd does after a handled SIGTERM (the signal re-raised
        once shut down) after logging its shutdown.
        """
        port = freePort()
        proc = spawnTwistd(self, ["gnetecho", "--port", str(port), "--multicore=false"])
        out = await proc.waitFor(LISTENING, 20)
        self.assertIn(f"tcp://127.0.0.1:{port}", out)
        if sys.platform.startswith("linux"):  # without -r, gnetcompat's reactor
            self.assertIn("reactor class: gnetcompat.reactor.GnetEPollReactor", out)
        await proc.waitFor(re.escape("[connected-count=0]"), 10)
        echoed = await deferToThread(_syncEcho, port, ["héllo wörld ✓", b"\x00\xff" * 1000])
        self.assertEqual(echoed, ["héllo wörld ✓", b"\x00\xff" * 1000])
        await proc.terminate(15)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))
        self.assertIn("Received SIGTERM", proc.output)
        self.assertIn("Server Shut Down", proc.output)
        self.assertNotIn("Traceback", proc.output)

    async def test_socketActivation(self) -> None:
        """
        Started as systemd starts a socket-activated service (the socket on
        descriptor 3, C{LISTEN_FDS}/C{LISTEN_PID} set), C{--listen
        systemd:domain=INET:index=0} serves on that socket with the default
        two workers, binds nothing else, and logs the socket's address.
        """
        lst = listeningSocket()
        port = lst.getsockname()[1]
        proc = spawnTwistd(
            self, ["gnetecho", "--listen", "systemd:domain=INET:index=0"], activate=[lst]
        )
        lst.close()  # the service holds it now
        out = await proc.waitFor(LISTENING, 30)
        self.assertIn(f"fd://3 (tcp4://127.0.0.1:{port})", out)
        results = await defer.gatherResults(
            [deferToThread(_syncEcho, port, [f"m{i}", b"\x00" * i]) for i in range(8)]
        )
        self.assertEqual(results, [[f"m{i}", b"\x00" * i] for i in range(8)])
        self.assertFalse(_accepts(9080), "bound the default port as well")
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))
        self.assertNotIn("Traceback", proc.output)

    async def test_socketActivationUnix(self) -> None:
        """
        A passed unix socket (C{domain=UNIX:name=...}) is served, and its file, which
        systemd owns, is left in place when the service stops.
        """
        path = os.path.abspath(self.mktemp())
        lst = listeningSocket(socket.AF_UNIX, path)
        proc = spawnTwistd(
            self,
            [
                "-r",
                "poll",
                "gnetecho",
                "--multicore=false",
                "--listen",
                "systemd:domain=UNIX:name=s0",
            ],
            activate=[lst],
        )
        lst.close()
        out = await proc.waitFor(LISTENING, 30)
        self.assertIn("reactor class: twisted.internet.pollreactor.PollReactor", out)  # -r is kept
        self.assertIn(f"(unix://{path})", out)
        response = await deferToThread(_unixGet, path)
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK"), response[:80])
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))
        self.assertTrue(os.path.exists(path), "the engine removed systemd's socket file")

    async def test_bindFailure(self) -> None:
        """
        When the port is taken, twistd exits non-zero (without hanging)
        and its output says that address is in use, naming it.
        """
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        proc = spawnTwistd(self, ["gnetecho", "--port", str(port), "--multicore=false"])
        code = await proc.waitForExit(20)
        self.assertNotEqual(code, 0, proc.output)
        self.assertIsNotNone(code, proc.output)
        self.assertIn(f"listen tcp 127.0.0.1:{port}: address already in use", proc.output)
        self.assertNotRegex(proc.output, LISTENING)

    async def test_bindFailureDefaultOptions(self) -> None:
        """
        With the default options (multicore), a port already in use also
        makes twistd exit non-zero with a clear message naming the address,
        instead of running on without listening.
        """
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        proc = spawnTwistd(self, ["gnetecho", "--port", str(port)])
        code = await proc.waitForExit(20)
        self.assertIsNotNone(code, proc.output)
        self.assertNotEqual(code, 0, proc.output)
        self.assertIn(f"listen tcp 127.0.0.1:{port}: address already in use", proc.output)

    async def test_badOptionExits(self) -> None:
        """
        A bad option value makes twistd exit non-zero, printing the message
        that names the option.
        """
        proc = spawnTwistd(self, ["gnetecho", "--multicore=maybe"])
        code = await proc.waitForExit(20)
        self.assertNotEqual(code, 0, proc.output)
        self.assertIn("--multicore", proc.output)

    async def test_multicore(self) -> None:
        """
        With C{--multicore=true} (the default) twistd starts, says how many
        workers it runs (or that it runs one), echoes, and stops cleanly on
        SIGTERM.
        """
        if importlib.util.find_spec("gnetcompat._workers") is None:
            raise SkipTest("gnetcompat._workers (multicore worker processes) does not exist yet")
        port = freePort()
        proc = spawnTwistd(self, ["gnetecho", "--port", str(port), "--multicore=true"])
        await proc.waitFor(LISTENING, 30)
        # the parent says how many workers serve (or that one does)
        await proc.waitFor(r"(?i)\d+ workers? serving|one worker|single worker", 30)
        echoed = await deferToThread(_connectRetrying, port, time.monotonic() + 10)
        self.assertEqual(echoed, ["héllo ✓", b"\x00\x01\xff"])
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))
        self.assertNotIn("Traceback", proc.output)

    async def test_multicoreUnixStop(self) -> None:
        """
        Two workers sharing one unix socket (C{--listen unix:PATH
        --num-event-loop 2}) echo, and on SIGTERM every worker exits with
        status 0, nothing is logged as a traceback or as critical (each
        worker used to unlink the shared path at stop: the second unlink
        failed with C{FileNotFoundError}), and the socket file, which the
        service created, is gone.
        """
        tmp = tempfile.mkdtemp()  # short: unix paths are limited to ~107 bytes
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "echo.sock")
        proc = spawnTwistd(self, ["gnetecho", "--listen", f"unix:{path}", "--num-event-loop", "2"])
        await proc.waitFor(r"2 workers serving", 30)
        echoed = await deferToThread(_unixEcho, path, ["héllo ✓", b"\x00\x01\xff"])
        self.assertEqual(echoed, ["héllo ✓", b"\x00\x01\xff"])
        await proc.terminate(20)
        self.assertTrue(proc.endedCleanlyOnTerm, (proc.exitCode, proc.exitSignal, proc.output))
        self.assertEqual(
            len(re.findall(r"worker \d \(pid \d+\) exited: exit status 0\b", proc.output)),
            2,
            proc.output,
        )
        for bad in ("Traceback", "critical", "Unhandled", "FileNotFoundError"):
            self.assertNotIn(bad.lower(), proc.output.lower(), proc.output)
        self.assertIn("Server Shut Down", proc.output)
        self.assertFalse(os.path.exists(path), "the service left its unix socket file behind")


def _unixEcho(path: str, messages: list[str | bytes], timeout: float = 10.0) -> list[str | bytes]:
    """In a thread: L{_syncEcho} over the unix socket C{path}."""
    from websockets.sync.client import unix_connect

    out: list[str | bytes] = []
    with unix_connect(
        path, uri="ws://localhost/", open_timeout=timeout, close_timeout=timeout
    ) as ws:
        for m in messages:
            ws.send(m)
            out.append(ws.recv(timeout=timeout))
    return out


def _unixConnect(path: str) -> bool:
    """Thread: whether a connection to the unix socket C{path} is accepted."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.1")


class UnixSocketModeTests(TestCase):
    """
    The mode of the unix socket files the engine creates: the umask's by
    default (Twisted's adopted port used to chmod them to 0666), exactly
    C{mode=} / L{gnet.WithUnixSocketMode} when given; single-process and
    multicore (the parent binds, every worker adopts the socket).
    """

    timeout = 90

    def setUp(self) -> None:
        """Run under umask 022 (restored afterwards)."""
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)

    def test_option(self) -> None:
        """
        C{unix:PATH:mode=0660} (or C{660}, C{0o660}) sets the engine's
        mode; none leaves it to the umask; a bad mode, another argument or
        two different modes stop twistd naming C{--listen}.
        """
        for text in ("0660", "660", "0o660"):
            o = parse("--listen", f"unix:/tmp/x.sock:mode={text}")
            self.assertEqual(o["unix-mode"], 0o660)
            self.assertEqual(loadOptions(*o.gnetOptions()).UnixSocketMode, 0o660)
        self.assertIsNone(
            loadOptions(*parse("--listen", "unix:/tmp/x.sock").gnetOptions()).UnixSocketMode
        )
        for bad in (
            "unix:/tmp/x:mode=999",
            "unix:/tmp/x:mode=",
            "unix:/tmp/x:mode=rw",
            "unix:/tmp/x:mode=1777",
            "unix:/tmp/x:lockfile=1",
        ):
            e = self.assertRaises(usage.UsageError, parse, "--listen", bad)
            self.assertIn("--listen", str(e))
        e = self.assertRaises(
            usage.UsageError,
            parse,
            "--listen",
            "unix:/tmp/a:mode=600",
            "--listen",
            "unix:/tmp/b:mode=660",
        )
        self.assertIn("mode", str(e))
        self.assertRaises(gnet.GnetError, loadOptions(gnet.WithUnixSocketMode(0o1777)).normalized)

    async def serveUnix(self, *options: Any, workers: int = 1) -> str:
        import shutil

        path = os.path.abspath(self.mktemp())
        handler = WebSocketEchoServer(
            multicore=workers > 1, wsOptions=WebSocketOptions(webStatus=True)
        )
        if workers > 1:
            options += (gnet.WithProcessWorkers(workers),)
        engine = await gnet.Serve(handler, f"unix://{path}", *options).addTimeout(
            30, __import__("twisted.internet.reactor", fromlist=["reactor"])
        )
        if handler.statsDir is not None:
            self.addCleanup(shutil.rmtree, handler.statsDir, True)
        self.addCleanup(lambda: None if engine.stopping else engine.Stop())
        return path

    def mode(self, path: str) -> int:
        import stat

        return stat.S_IMODE(os.stat(path).st_mode)

    async def test_umaskSingleProcess(self) -> None:
        """Under umask 022 the socket is 0755: not connectable by others."""
        path = await self.serveUnix()
        self.assertEqual(self.mode(path), 0o755)
        self.assertTrue(await deferToThread(_unixConnect, path))

    async def test_explicitSingleProcess(self) -> None:
        """WithUnixSocketMode(0o600) gives exactly 0600."""
        path = await self.serveUnix(gnet.WithUnixSocketMode(0o600))
        self.assertEqual(self.mode(path), 0o600)
        self.assertTrue(await deferToThread(_unixConnect, path))

    async def test_multicore(self) -> None:
        """
        With two workers adopting the parent's socket, the umask's 0755
        and an explicit 0660 are kept once every worker is serving.
        """
        for options, expected in (((), 0o755), ((gnet.WithUnixSocketMode(0o660),), 0o660)):
            path = await self.serveUnix(*options, workers=2)
            self.assertEqual(self.mode(path), expected)
            self.assertTrue(await deferToThread(_unixConnect, path))
