"""
Logging for plain gnet programs (L{gnetcompat._logging}): what a script
that calls C{Run} sees on standard error, in one process and with process
workers, from C{logging} and C{twisted.logger}; and C{WithLogger} with a
C{logging.Logger}.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import textwrap
import types
import warnings
from typing import Any

from twisted.logger import LogBeginner, Logger, LogLevel, LogPublisher, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat._engine import makeLogger
from gnetcompat._logging import StdlibBridge, isTwistedChatter, setupProgramLogging
from gnetcompat.options import loadOptions

from ._procs import freePort, spawn


def freshBeginner() -> tuple[LogBeginner, LogPublisher]:
    """A Twisted C{LogBeginner} of our own (not begun), and its publisher."""
    publisher = LogPublisher()
    fakeWarnings = types.SimpleNamespace(showwarning=warnings.showwarning)
    return LogBeginner(publisher, io.StringIO(), sys, fakeWarnings), publisher


class SetupTests(SynchronousTestCase):
    """L{setupProgramLogging} connects only what the program left unconfigured."""

    def test_neitherConfigured(self) -> None:
        """
        Nothing configured: Twisted's events go to the stream with one
        timestamp and their level; Twisted's routine info lines do not;
        C{logging} gets the bridge and level INFO.
        """
        beginner, publisher = freshBeginner()
        root = logging.Logger("fake-root", logging.WARNING)
        out = io.StringIO()
        setupProgramLogging(LogLevel.info, out, beginner, root)
        log = Logger(namespace="app", observer=publisher)
        log.info("opened {n}", n=3)
        log.debug("hidden")
        Logger(namespace="twisted.internet.base", observer=publisher).info("Main loop terminated.")
        Logger(namespace="twisted.internet.defer", observer=publisher).critical("Unhandled")
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(
            lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[app#info\] opened 3$"
        )
        self.assertIn("[twisted.internet.defer#critical] Unhandled", lines[1])
        self.assertEqual([type(h) for h in root.handlers], [StdlibBridge])
        self.assertEqual(root.level, logging.INFO)

    def test_debugLevel(self) -> None:
        """C{LogLevel.debug} (gnet's level -1) shows debug lines and sets C{logging} to DEBUG."""
        beginner, publisher = freshBeginner()
        root = logging.Logger("fake-root", logging.WARNING)
        out = io.StringIO()
        setupProgramLogging(LogLevel.debug, out, beginner, root)
        Logger(namespace="app", observer=publisher).debug("shown")
        self.assertIn("[app#debug] shown", out.getvalue())
        self.assertEqual(root.level, logging.DEBUG)

    def test_onlyStdlibConfigured(self) -> None:
        """C{logging} configured, Twisted not: Twisted's events go into C{logging}; no bridge."""
        beginner, publisher = freshBeginner()
        root = logging.Logger("fake-root", logging.DEBUG)
        root.addHandler(logging.NullHandler())
        setupProgramLogging(LogLevel.info, io.StringIO(), beginner, root)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("twisted").addHandler(handler)
        self.addCleanup(logging.getLogger("twisted").removeHandler, handler)
        Logger(namespace="app", observer=publisher).warn("careful")
        self.assertEqual(
            [(r.levelno, r.getMessage()) for r in records], [(logging.WARNING, "careful")]
        )
        self.assertEqual([type(h) for h in root.handlers], [logging.NullHandler])

    def test_twistedAlreadyBegun(self) -> None:
        """Twisted begun (twistd): left alone; C{logging} still gets the bridge."""
        beginner, publisher = freshBeginner()
        seen: list[dict] = []
        beginner.beginLoggingTo([seen.append], redirectStandardIO=False)
        root = logging.Logger("fake-root", logging.WARNING)
        out = io.StringIO()
        setupProgramLogging(LogLevel.info, out, beginner, root)
        Logger(namespace="app", observer=publisher).info("x")
        self.assertEqual((out.getvalue(), len(seen)), ("", 1))
        self.assertEqual([type(h) for h in root.handlers], [StdlibBridge])

    def test_bridgeKeepsLevelAndName(self) -> None:
        """A C{logging} record reaches Twisted's log in its logger's name, at its level."""
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        logger = logging.Logger("myapp.conn", logging.DEBUG)
        logger.addHandler(StdlibBridge())
        logger.warning("peer %s slow", "1.2.3.4")
        (event,) = [e for e in events if e.get("log_namespace") == "myapp.conn"]
        self.assertEqual((event["log_level"], event["text"]), (LogLevel.warn, "peer 1.2.3.4 slow"))

    def test_chatter(self) -> None:
        """Only Twisted's own info/debug lines count as chatter."""
        self.assertTrue(
            isTwistedChatter({"log_namespace": "log_legacy", "log_level": LogLevel.info})
        )
        self.assertTrue(
            isTwistedChatter({"log_namespace": "twisted.x", "log_level": LogLevel.debug})
        )
        self.assertFalse(
            isTwistedChatter({"log_namespace": "twisted.x", "log_level": LogLevel.warn})
        )
        self.assertFalse(
            isTwistedChatter({"log_namespace": "gnetcompat", "log_level": LogLevel.info})
        )


class StdlibLoggerOptionTests(SynchronousTestCase):
    """C{WithLogger(logging.Logger)}: the engine logs to it, at the right levels."""

    def test_levelsAndFailures(self) -> None:
        """Info, warnings and failures (with their traceback) reach the C{logging.Logger}."""
        target = logging.Logger("app", logging.DEBUG)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        target.addHandler(handler)
        log = makeLogger(loadOptions(gnet.WithLogger(target)).normalized())
        log.info("up on {addr}", addr="tcp://:9000")
        log.warn("slow")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.failure("OnTraffic raised")
        self.assertEqual(
            [(r.levelno, r.getMessage().splitlines()[0]) for r in records],
            [
                (logging.INFO, "up on tcp://:9000"),
                (logging.WARNING, "slow"),
                (logging.CRITICAL, "OnTraffic raised"),
            ],
        )
        self.assertIn("ZeroDivisionError", records[2].getMessage())


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from twisted.logger import Logger
    import gnetcompat as gnet

    applog = logging.getLogger("app")
    tlog = Logger(namespace="app.twisted")

    class H(gnet.BuiltinEventEngine):
        def OnOpen(self, c):
            applog.info("stdlib opened %s", c.RemoteAddr().String())
            tlog.info("twisted opened")
            return None
        def OnTraffic(self, c):
            applog.warning("stdlib warning")
            c.Next(-1)
            return gnet.Shutdown

    if __name__ == "__main__":
        opts = [gnet.WithProcessWorkers(2)] if sys.argv[2] == "workers" else []
        gnet.Run(H(), "tcp://127.0.0.1:" + sys.argv[1], *opts)
    """
)


async def connectRetrying(port: int, attempts: int) -> Any:
    """A loopback client of C{port}, trying every 50 ms while the server starts (bounded)."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.error import ConnectError
    from twisted.internet.task import deferLater

    from ._loopback import StreamClient

    for _ in range(attempts):
        try:
            return await connectProtocol(
                TCP4ClientEndpoint(reactor, "127.0.0.1", port), StreamClient()
            )
        except ConnectError:
            await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"nothing listens on port {port}")


STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


class PlainScriptTests(TestCase):
    """A plain script's log lines appear on standard error, once, with one timestamp."""

    async def runScript(self, mode: str) -> str:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "server.py")
        with open(path, "w") as f:
            f.write(SCRIPT)
        port = freePort()
        proc = spawn(self, [sys.executable, path, str(port), mode], cwd=folder)
        ready = "workers serving" if mode == "workers" else None
        if ready:
            await proc.waitFor(ready, 30)
        else:
            await proc.waitFor("", 1)
        client = await connectRetrying(port, 200)
        await proc.waitFor("stdlib opened", 20)
        client.transport.write(b"x")
        code = await proc.waitForExit(30)
        self.assertEqual(code, 0, proc.output)
        return proc.output

    def check(self, output: str) -> None:
        for text, level in (
            ("stdlib opened 127.0.0.1:", "info"),
            ("twisted opened", "info"),
            ("stdlib warning", "warn"),
        ):
            lines = [line for line in output.splitlines() if text in line]
            self.assertEqual(len(lines), 1, output)
            self.assertEqual(len(re.findall(STAMP, lines[0])), 1, lines[0])
            self.assertRegex(lines[0], rf"^{STAMP} \[[^\]]*#{level}\]", lines[0])
        self.assertNotIn("Traceback", output)

    async def test_oneProcess(self) -> None:
        """C{Run} in one process: C{logging} and C{twisted.logger} lines reach stderr."""
        self.check(await self.runScript("one"))

    async def test_processWorkers(self) -> None:
        """With process workers the workers' lines reach the script's stderr the same way."""
        self.check(await self.runScript("workers"))
