"""
Wrong-shaped callback results (issue 18, spec §3, §4): each is logged once
to the engine's logger, naming the callback and showing what it returned
(escaped, bounded), and made harmless: C{OnOpen} closes the connection with
nothing sent, C{OnTraffic}/C{OnClose}/C{OnBoot} take it as no action,
C{OnTick} ticks again in 1 s; delays under 1 ms are raised to 1 ms.

Unit tier: L{HandlerDriver} (in-memory transports, a fake clock).
"""

from __future__ import annotations

import datetime
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat._action import CallbackResults
from gnetcompat.testing import HandlerDriver

from ._handlers import Recorder

#: more OnTick calls than any test makes: a busy loop
_BUSY = 10000


class _Log:
    """A C{twisted.logger.Logger} for C{WithLogger}, keeping its events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.logger = Logger(namespace="test", observer=self.events.append)

    def lines(self, level: LogLevel = LogLevel.critical) -> list[str]:
        """The formatted lines logged at C{level}."""
        return [formatEvent(e) for e in self.events if e["log_level"] == level]

    def failures(self) -> list[dict[str, Any]]:
        """Events carrying a traceback (C{log.failure})."""
        return [e for e in self.events if e.get("log_failure") is not None]


def driven(handler: Any, *opts: Any) -> tuple[HandlerDriver, _Log]:
    """A booted driver whose engine logs to a L{_Log}."""
    log = _Log()
    driver = HandlerDriver(handler, gnet.WithLogger(log.logger), *opts)
    driver.boot()
    return driver, log


class OnOpenResultTests(SynchronousTestCase):
    """What C{OnOpen} may return, and what a wrong shape does."""

    def test_reversedPairClosesAndSendsNothing(self) -> None:
        """
        C{(gnet.Close, b"bye")} (the pair reversed) sends nothing (it used to
        send one NUL byte, C{bytes(Action.CLOSE)}, and keep the connection),
        closes the connection and logs one line naming C{OnOpen} and the value.
        """
        handler = Recorder(OnOpen=lambda c: (gnet.Close, b"bye"))
        driver, log = driven(handler)
        peer = driver.connect()
        self.assertEqual(peer.received(), b"")
        self.assertTrue(peer.closedByServer)
        self.assertEqual(handler.closes()[0][2], None)
        self.assertEqual(driver.engine.CountConnections(), 0)
        [line] = log.lines()
        self.assertIn("OnOpen must return (out: bytes-like | None, action)", line)
        self.assertIn("(<Action.CLOSE: 1>, b'bye')", line)
        self.assertEqual(log.failures(), [])

    def test_strIsRefusedEscaped(self) -> None:
        """
        A C{str} greeting (not bytes) closes the connection with nothing sent
        and one line, no traceback, showing the value escaped: a control
        character in it never reaches the log raw.
        """
        driver, log = driven(Recorder(OnOpen=lambda c: "hello\x1b[2J\n"))
        peer = driver.connect()
        self.assertEqual(peer.received(), b"")
        self.assertTrue(peer.closedByServer)
        [line] = log.lines()
        self.assertIn("got 'hello\\x1b[2J\\n'", line)
        self.assertNotIn("\x1b", line)
        self.assertEqual(log.failures(), [])

    def test_otherWrongShapes(self) -> None:
        """
        A list, a 1-tuple, a 3-tuple, a str or bool action, a number: each
        closes its connection, sends nothing and is logged; a long value is
        shown cut.
        """
        for bad in (
            [b"x", gnet.None_],
            (b"x",),
            (b"x", gnet.None_, 0),
            (b"x", "close"),
            (b"x", True),
            ("x", gnet.None_),
            42,
            b"y" * 5000 + b"!",
        ):
            if isinstance(bad, bytes):
                bad = (gnet.None_, bad)
            driver, log = driven(Recorder(OnOpen=lambda c, bad=bad: bad))
            peer = driver.connect()
            self.assertEqual(peer.received(), b"", bad)
            self.assertTrue(peer.closedByServer, bad)
            [line] = log.lines()
            self.assertLess(len(line), 400, bad)

    def test_acceptedShapes(self) -> None:
        """
        C{(out, action)} with C{out} bytes, bytearray, memoryview or C{None}
        and the action an L{Action}, another int or C{None}; bare bytes; a
        bare L{Action}; C{None}: all accepted, nothing logged.
        """
        cases: list[tuple[Any, bytes, bool]] = [
            ((b"hi", gnet.None_), b"hi", False),
            ((bytearray(b"hi"), None), b"hi", False),
            ((memoryview(b"hi"), -1), b"hi", False),
            ((None, gnet.None_), b"", False),
            ((b"bye", gnet.Close), b"bye", True),
            (b"hi", b"hi", False),
            (gnet.Close, b"", True),
            (None, b"", False),
        ]
        for result, sent, closed in cases:
            driver, log = driven(Recorder(OnOpen=lambda c, r=result: r))
            peer = driver.connect()
            self.assertEqual(peer.received(), sent, result)
            self.assertEqual(peer.closedByServer, closed, result)
            self.assertEqual(log.events, [], result)


class ActionResultTests(SynchronousTestCase):
    """C{OnTraffic}, C{OnClose}, C{OnBoot}: junk is logged (rate-limited) and means no action."""

    def test_onTrafficJunkLoggedRateLimited(self) -> None:
        """
        C{OnTraffic} returning a str is logged once, naming the callback; the
        connection stays open (no action).  Repeats within 60 s are only
        counted; the next line after that says how many there were.
        """

        def onTraffic(c: Any) -> Any:
            c.Discard(-1)
            return "close"

        driver, log = driven(Recorder(OnTraffic=onTraffic))
        peer = driver.connect()
        for _ in range(100):
            peer.send(b"x")
        self.assertFalse(peer.closedByServer)
        [line] = log.lines()
        self.assertIn("OnTraffic must return an Action", line)
        self.assertIn("got 'close'", line)
        driver.advance(59)
        peer.send(b"x")
        self.assertEqual(len(log.lines()), 1)
        driver.advance(1)
        peer.send(b"x")
        self.assertEqual(len(log.lines()), 2)
        self.assertIn("(100 more times since the last report)", log.lines()[1])

    def test_onTrafficActionsAndIntsNotLogged(self) -> None:
        """Actions, other ints (gnet's tests return -1) and C{None} are not logged."""
        results = iter([None, gnet.None_, -1, 7, gnet.Close])
        driver, log = driven(Recorder(OnTraffic=lambda c: next(results)))
        peer = driver.connect()
        for _ in range(4):
            peer.send(b"x")
        self.assertFalse(peer.closedByServer)
        peer.send(b"x")
        self.assertTrue(peer.closedByServer)
        self.assertEqual(log.events, [])

    def test_onCloseAndOnBootJunk(self) -> None:
        """C{OnClose} and C{OnBoot} returning a tuple or a bool are logged, naming each."""
        handler = Recorder(OnBoot=lambda e: ("x", 1), OnClose=lambda c, err: True)
        driver, log = driven(handler)
        self.assertTrue(driver.engine.booted)
        driver.connect().disconnect()
        self.assertFalse(driver.engine.stopping)
        lines = log.lines()
        self.assertEqual(len(lines), 2)
        self.assertIn("OnBoot must return an Action", lines[0])
        self.assertIn("got ('x', 1)", lines[0])
        self.assertIn("OnClose must return an Action", lines[1])
        self.assertIn("got True", lines[1])

    def test_datagramJunk(self) -> None:
        """A server-side UDP C{OnTraffic} returning junk is logged too."""
        driver, log = driven(Recorder(OnTraffic=lambda c: {"action": "shutdown"}))
        driver.datagram(b"x")
        self.assertFalse(driver.engine.stopping)
        [line] = log.lines()
        self.assertIn("OnTraffic must return an Action", line)

    def test_ratePerEngine(self) -> None:
        """Each engine reports its own mistakes: the rate limit is per engine."""
        logs = []
        for _ in range(2):
            driver, log = driven(Recorder(OnTraffic=lambda c: "x"))
            driver.connect().send(b"x")
            logs.append(log)
        self.assertEqual([len(log.lines()) for log in logs], [1, 1])


class OnTickResultTests(SynchronousTestCase):
    """C{OnTick} never busy-loops, whatever it returns."""

    def tick(self, onTick: Any) -> tuple[HandlerDriver, _Log, list[float]]:
        times: list[float] = []
        box: list[HandlerDriver] = []

        def record() -> Any:
            times.append(box[0].reactor.seconds())
            if len(times) > _BUSY:  # a regression must fail, not hang in Clock.advance
                raise AssertionError("OnTick busy loop")
            return onTick()

        log = _Log()
        driver = HandlerDriver(
            Recorder(OnTick=record), gnet.WithTicker(True), gnet.WithLogger(log.logger)
        )
        box.append(driver)
        driver.boot()
        return driver, log, times

    def test_noneTicksOncePerSecond(self) -> None:
        """
        C{OnTick} without a C{return} (None) is called once per second, not
        as often as the clock allows (it was called 541,109 times in 2 s on
        the real reactor), with one error line per engine.
        """
        driver, log, times = self.tick(lambda: None)
        for _ in range(1000):
            driver.advance(0)
        self.assertEqual(times, [0.0])
        for _ in range(10):
            driver.advance(0.5)
        self.assertEqual(times, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
        [line] = log.lines()
        self.assertEqual(
            line,
            "OnTick returned None; it must return (delay_seconds, action); ticking again in 1 s",
        )

    def test_junkTicksOncePerSecond(self) -> None:
        """A str, a 3-tuple, a NaN or a str delay: logged, next tick in 1 s, no action."""
        for junk in ("soon", (1, 2, 3), (float("nan"), None), ("1", None), (1, "stop")):
            driver, log, times = self.tick(lambda junk=junk: junk)
            driver.advance(0)
            driver.advance(0.999)
            self.assertEqual(times, [0.0], junk)
            driver.advance(0.001)
            self.assertEqual(times, [0.0, 1.0], junk)
            self.assertFalse(driver.engine.stopping, junk)
            [line] = log.lines()
            self.assertIn("OnTick must return (delay_seconds, action), got", line)

    def test_zeroAndNegativeDelaysWaitOneMillisecond(self) -> None:
        """
        A delay of 0 or less (gnet: call again at once, a busy loop) waits
        1 ms; the first such delay logs one warning per engine.
        """
        delays = iter([0, -5, 0.0001, 0, 2])
        driver, log, times = self.tick(lambda: (next(delays), None))
        for _ in range(100):
            driver.advance(0)
        self.assertEqual(times, [0.0])
        for _ in range(4):
            driver.advance(0.001)
        self.assertEqual(len(times), 5)
        self.assertEqual(len(log.lines(LogLevel.warn)), 1)
        self.assertIn("at most every 0.001 s", log.lines(LogLevel.warn)[0])
        self.assertEqual(log.lines(), [])

    def test_builtinTickWarns(self) -> None:
        """C{BuiltinEventEngine.OnTick} (a zero delay) ticks every 1 ms, with a warning."""
        calls = [0]

        class Builtin(gnet.BuiltinEventEngine):
            def OnTick(self) -> Any:
                calls[0] += 1
                if calls[0] > _BUSY:
                    raise AssertionError("OnTick busy loop")
                return super().OnTick()

        log = _Log()
        driver = HandlerDriver(Builtin(), gnet.WithTicker(True), gnet.WithLogger(log.logger))
        driver.boot()
        driver.advance(0)
        driver.advance(0.001)
        self.assertEqual(calls[0], 2)
        self.assertEqual(len(log.lines(LogLevel.warn)), 1)

    def test_acceptedShapes(self) -> None:
        """C{(delay, action)} with a number or a timedelta, and a bare number: no log."""
        results = iter(
            [(2, gnet.None_), (datetime.timedelta(seconds=3), None), 4, (1, -1), (100, None)]
        )
        driver, log, times = self.tick(lambda: next(results))
        for _ in range(10):
            driver.advance(1)
        self.assertEqual(times, [0.0, 2.0, 5.0, 9.0, 10.0])
        self.assertEqual(log.events, [])

    def test_bareShutdownApplied(self) -> None:
        """A bare C{gnet.Shutdown} (no delay) still shuts down; the missing delay is logged."""
        driver, log, _times = self.tick(lambda: gnet.Shutdown)
        self.assertTrue(driver.engine.stopping)
        [line] = log.lines()
        self.assertIn("got <Action.SHUTDOWN: 2>", line)

    def test_deferredNone(self) -> None:
        """A Deferred firing with C{None} is checked as a direct result is."""
        driver, log, times = self.tick(lambda: succeed(None))
        driver.advance(0)
        self.assertEqual(times, [0.0])
        driver.advance(1)
        self.assertEqual(times, [0.0, 1.0])
        self.assertEqual(len(log.lines()), 1)


class CallbackResultsTests(SynchronousTestCase):
    """L{CallbackResults} itself: a value whose C{repr} misbehaves is still shown safely."""

    def test_badRepr(self) -> None:
        """A result whose C{__repr__} raises, or returns control characters, is shown safely."""

        class Raises:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        class Evil:
            def __repr__(self) -> str:
                return "\x1b]0;owned\x07" + "z" * 1000

        log = _Log()
        results = CallbackResults(log.logger, Clock())
        self.assertEqual(results.action("OnTraffic", Raises()), gnet.None_)
        self.assertEqual(results.action("OnClose", Evil()), gnet.None_)
        first, second = log.lines()
        self.assertIn("<Raises object (its repr failed)>", first)
        self.assertIn("\\x1b]0;owned\\x07", second)
        self.assertNotIn("\x1b", second)
        self.assertLess(len(second), 400)
