"""
Tests for gnet's options (spec §10): every C{With*} option, the order rules,
normalisation at start and validation errors.  No socket is bound.
"""

from __future__ import annotations

import datetime
import os

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat.errors import ErrInvalidOption, ErrTooManyEventLoopThreads, ErrUnsupportedOp
from gnetcompat.options import Options, loadOptions
from gnetcompat.testing import HandlerDriver

#: Every option constructor with a valid value and the field it sets.
ALL = [
    (gnet.WithMulticore, True, "Multicore"),
    (gnet.WithNumEventLoop, 4, "NumEventLoop"),
    (gnet.WithLoadBalancing, gnet.LeastConnections, "LB"),
    (gnet.WithReusePort, True, "ReusePort"),
    (gnet.WithReuseAddr, True, "ReuseAddr"),
    (gnet.WithTicker, True, "Ticker"),
    (gnet.WithTCPKeepAlive, 60, "TCPKeepAlive"),
    (gnet.WithTCPKeepInterval, 10, "TCPKeepInterval"),
    (gnet.WithTCPKeepCount, 3, "TCPKeepCount"),
    (gnet.WithTCPNoDelay, gnet.TCPDelay, "TCPNoDelay"),
    (gnet.WithReadBufferCap, 4096, "ReadBufferCap"),
    (gnet.WithWriteBufferCap, 8192, "WriteBufferCap"),
    (gnet.WithSocketRecvBuffer, 4096, "SocketRecvBuffer"),
    (gnet.WithSocketSendBuffer, 4096, "SocketSendBuffer"),
    (gnet.WithLockOSThread, True, "LockOSThread"),
    (gnet.WithEdgeTriggeredIO, True, "EdgeTriggeredIO"),
    (gnet.WithEdgeTriggeredIOChunk, 1 << 16, "EdgeTriggeredIOChunk"),
    (gnet.WithMulticastInterfaceIndex, 1, "MulticastInterfaceIndex"),
    (gnet.WithBindToDevice, "lo", "BindToDevice"),
    (gnet.WithLogger, Logger(), "Logger"),
    (gnet.WithLogPath, "/tmp/gnet.log", "LogPath"),
    (gnet.WithLogLevel, 1, "LogLevel"),
    (gnet.WithBacklog, 128, "Backlog"),
    (gnet.WithShutdownTimeout, 2.5, "ShutdownTimeout"),
]


class ApplyTests(SynchronousTestCase):
    """Functional options apply in order."""

    def test_everyOptionAccepted(self) -> None:
        """Every C{With*} option sets its field and passes validation."""
        for make, value, name in ALL:
            o = loadOptions(make(value))
            self.assertEqual(getattr(o, name), value, name)
            o.normalized()

    def test_defaults(self) -> None:
        """
        Defaults are gnet's (one loop, RoundRobin, TCPNoDelay, no reuse-port,
        no ticker) except C{ReuseAddr}, on as in Go's C{net.Listen} (issue 18).
        """
        o = loadOptions()
        self.assertEqual(
            (o.Multicore, o.NumEventLoop, o.LB, o.ReuseAddr, o.ReusePort, o.Ticker, o.TCPNoDelay),
            (False, 0, gnet.RoundRobin, True, False, False, gnet.TCPNoDelay),
        )
        self.assertFalse(loadOptions(gnet.WithReuseAddr(False)).ReuseAddr)
        self.assertEqual(o.numLoops(), 1)

    def test_lastWins(self) -> None:
        """A later option overrides an earlier one."""
        self.assertEqual(loadOptions(gnet.WithTicker(True), gnet.WithTicker(False)).Ticker, False)

    def test_withOptionsReplacesEverything(self) -> None:
        """C{WithOptions(o)} discards what was applied before it; later options still apply."""
        o = loadOptions(
            gnet.WithTicker(True), gnet.WithOptions(Options(ReuseAddr=True)), gnet.WithBacklog(5)
        )
        self.assertEqual((o.Ticker, o.ReuseAddr, o.Backlog), (False, True, 5))

    def test_optionsObjectAccepted(self) -> None:
        """A whole L{Options} object may be passed in place of functional options; it is copied."""
        base = Options(Multicore=True)
        o = loadOptions(base, gnet.WithNumEventLoop(2))
        self.assertEqual((o.Multicore, o.NumEventLoop), (True, 2))
        self.assertEqual(base.NumEventLoop, 0)

    def test_notAnOption(self) -> None:
        """Something that is neither an option nor L{Options} raises L{ErrInvalidOption}."""
        self.assertRaises(ErrInvalidOption, loadOptions, 5)


class NormalizeTests(SynchronousTestCase):
    """Normalisation performed at start (spec §10.2)."""

    def test_bufferCaps(self) -> None:
        """
        Buffer caps: <= 0 -> 64 KiB, 1..1024 -> 1024, else the next power of
        two (2000 -> 2048).
        """
        for given, expected in [
            (0, 65536),
            (-5, 65536),
            (1, 1024),
            (512, 1024),
            (1024, 1024),
            (1025, 2048),
            (2000, 2048),
            (65536, 65536),
            (70000, 131072),
        ]:
            o = Options(ReadBufferCap=given, WriteBufferCap=given).normalized()
            self.assertEqual((o.ReadBufferCap, o.WriteBufferCap), (expected, expected), given)
        self.assertEqual(gnet.MaxStreamBufferCap, 65536)

    def test_keepAliveDefaults(self) -> None:
        """Keep-alive on: interval defaults to idle/5 and count to 5; given values are kept."""
        o = loadOptions(gnet.WithTCPKeepAlive(60)).normalized()
        self.assertEqual((o.TCPKeepAlive, o.TCPKeepInterval, o.TCPKeepCount), (60.0, 12.0, 5))
        o = loadOptions(
            gnet.WithTCPKeepAlive(60), gnet.WithTCPKeepInterval(10), gnet.WithTCPKeepCount(10)
        ).normalized()
        self.assertEqual((o.TCPKeepInterval, o.TCPKeepCount), (10.0, 10))
        o = loadOptions().normalized()
        self.assertEqual((o.TCPKeepAlive, o.TCPKeepInterval, o.TCPKeepCount), (0.0, 0.0, 0))

    def test_timedelta(self) -> None:
        """Durations accept C{datetime.timedelta} and become float seconds."""
        o = loadOptions(
            gnet.WithTCPKeepAlive(datetime.timedelta(minutes=1)),
            gnet.WithShutdownTimeout(datetime.timedelta(milliseconds=1500)),
        ).normalized()
        self.assertEqual((o.TCPKeepAlive, o.TCPKeepInterval, o.ShutdownTimeout), (60.0, 12.0, 1.5))

    def test_keepAliveTooShort(self) -> None:
        """
        A keep-alive whose idle or default interval truncates below 1 s is
        refused (gnet: "invalid time duration"), naming the option.
        """
        for idle in (0.5, 3):
            e = self.assertRaises(
                ErrInvalidOption, loadOptions(gnet.WithTCPKeepAlive(idle)).normalized
            )
            self.assertIn("TCPKeepAlive", str(e))
            self.assertIn("invalid time duration", str(e))
        loadOptions(gnet.WithTCPKeepAlive(3), gnet.WithTCPKeepInterval(1)).normalized()

    def test_edgeTriggered(self) -> None:
        """A chunk turns ET on and rounds to a power of two; ET alone gets a 1 MiB chunk."""
        o = Options(EdgeTriggeredIOChunk=300).normalized()
        self.assertEqual((o.EdgeTriggeredIO, o.EdgeTriggeredIOChunk), (True, 512))
        o = Options(EdgeTriggeredIO=True).normalized()
        self.assertEqual(o.EdgeTriggeredIOChunk, 1 << 20)

    def test_numLoops(self) -> None:
        """Loops: NumEventLoop if > 0 (capped at 256), else one per CPU with Multicore, else 1."""
        self.assertEqual(Options(NumEventLoop=4).numLoops(), 4)
        self.assertEqual(Options(NumEventLoop=1000).numLoops(), 256)
        self.assertEqual(Options(Multicore=True).numLoops(), min(os.cpu_count() or 1, 256))
        self.assertEqual(Options(Multicore=True, NumEventLoop=3).numLoops(), 3)

    def test_normalizedIsACopy(self) -> None:
        """C{normalized()} returns a copy and leaves the original untouched."""
        o = Options(ReadBufferCap=2000)
        self.assertEqual(o.normalized().ReadBufferCap, 2048)
        self.assertEqual(o.ReadBufferCap, 2000)

    def test_driverEngineNormalized(self) -> None:
        """An engine's options are the normalised ones."""
        eng = HandlerDriver(gnet.BuiltinEventEngine(), gnet.WithReadBufferCap(512)).engine
        self.assertEqual(eng.options.ReadBufferCap, 1024)


class InvalidTests(SynchronousTestCase):
    """Bad values raise L{ErrInvalidOption} naming the option."""

    BAD = [
        (gnet.WithMulticore("yes"), "Multicore"),
        (gnet.WithReusePort(1), "ReusePort"),
        (gnet.WithTicker(None), "Ticker"),
        (gnet.WithNumEventLoop(-1), "NumEventLoop"),
        (gnet.WithNumEventLoop(2.5), "NumEventLoop"),
        (gnet.WithReadBufferCap("big"), "ReadBufferCap"),
        (gnet.WithSocketRecvBuffer(-1), "SocketRecvBuffer"),
        (gnet.WithTCPKeepCount(-2), "TCPKeepCount"),
        (gnet.WithBacklog(-1), "Backlog"),
        (gnet.WithBacklog(2**31), "Backlog"),
        (gnet.WithLoadBalancing(7), "LB"),
        (gnet.WithTCPNoDelay(5), "TCPNoDelay"),
        (gnet.WithTCPKeepAlive("1m"), "TCPKeepAlive"),
        (gnet.WithTCPKeepInterval(True), "TCPKeepInterval"),
        (gnet.WithShutdownTimeout(-1), "ShutdownTimeout"),
        (gnet.WithBindToDevice(5), "BindToDevice"),
        (gnet.WithLogPath(3), "LogPath"),
    ]

    def test_badValues(self) -> None:
        """Each bad value raises L{ErrInvalidOption} whose message names the option."""
        for opt, name in self.BAD:
            e = self.assertRaises(ErrInvalidOption, loadOptions(opt).normalized)
            self.assertIn(name, str(e))

    def test_serveFailsWithBadOption(self) -> None:
        """C{Serve} with a bad option fails before binding anything."""
        for opt, name in self.BAD:
            f = self.failureResultOf(
                gnet.Serve(gnet.BuiltinEventEngine(), "tcp://127.0.0.1:0", opt), ErrInvalidOption
            )
            self.assertIn(name, str(f.value))

    def test_badLogger(self) -> None:
        """A logger that is neither a twisted Logger nor gnet-style raises L{ErrInvalidOption}."""
        e = self.assertRaises(
            ErrInvalidOption, HandlerDriver, gnet.BuiltinEventEngine(), gnet.WithLogger(object())
        )
        self.assertIn("Logger", str(e))

    def test_tooManyLoops(self) -> None:
        """LockOSThread with more than 10000 loops raises L{ErrTooManyEventLoopThreads}."""
        o = loadOptions(gnet.WithNumEventLoop(10001), gnet.WithLockOSThread(True))
        self.assertRaises(ErrTooManyEventLoopThreads, o.normalized)
        Options(NumEventLoop=10000, LockOSThread=True).normalized()
        Options(NumEventLoop=10001).normalized()

    def test_serveTooManyLoops(self) -> None:
        """C{Serve} with LockOSThread and 10001 loops fails with L{ErrTooManyEventLoopThreads}."""
        d = gnet.Serve(
            gnet.BuiltinEventEngine(),
            "tcp://127.0.0.1:0",
            gnet.WithNumEventLoop(10001),
            gnet.WithLockOSThread(True),
        )
        self.failureResultOf(d, ErrTooManyEventLoopThreads)

    def test_bindToDeviceOffLinux(self) -> None:
        """C{WithBindToDevice} off Linux raises L{ErrUnsupportedOp}; on Linux it validates."""
        import sys

        o = loadOptions(gnet.WithBindToDevice("lo"))
        if sys.platform.startswith("linux"):
            o.normalized()
        else:
            self.assertRaises(ErrUnsupportedOp, o.normalized)


class LoggerTests(SynchronousTestCase):
    """C{WithLogger}, C{WithLogPath}, C{WithLogLevel}."""

    def test_gnetStyleLogger(self) -> None:
        """A gnet-style logger (Infof/Errorf...) receives the engine's log lines at their level."""
        lines: list[tuple[str, str]] = []

        class L:
            def Debugf(self, fmt: str, *a: object) -> None:
                lines.append(("debug", fmt % a))

            def Infof(self, fmt: str, *a: object) -> None:
                lines.append(("info", fmt % a))

            def Warnf(self, fmt: str, *a: object) -> None:
                lines.append(("warn", fmt % a))

            def Errorf(self, fmt: str, *a: object) -> None:
                lines.append(("error", fmt % a))

        class Boom(gnet.BuiltinEventEngine):
            def OnTick(self) -> object:
                raise ValueError("tick failed")

        driver = HandlerDriver(Boom(), gnet.WithLogger(L()), gnet.WithTicker(True))
        driver.boot()
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0][0], "error")
        self.assertIn("tick failed", lines[0][1])

    def test_logPathLevel(self) -> None:
        """C{WithLogPath} logs to the file, filtered by C{WithLogLevel}."""
        path = self.mktemp()

        class Boom(gnet.BuiltinEventEngine):
            def OnTick(self) -> object:
                raise ValueError("tick failed")

        driver = HandlerDriver(
            Boom(), gnet.WithLogPath(path), gnet.WithLogLevel(2), gnet.WithTicker(True)
        )
        driver.engine.log.info("not at error level")
        driver.boot()
        with open(path) as f:
            text = f.read()
        self.assertIn("tick failed", text)
        self.assertNotIn("not at error level", text)
