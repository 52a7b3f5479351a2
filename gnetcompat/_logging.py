# -*- test-case-name: tests.test_logging -*-
"""
Logging for gnet programs: a plain script that calls C{Run} sees its log
lines (and its worker processes'), whichever of Python's two logging systems
it uses, on standard error with one timestamp and the right level.

gnet's default logger writes to the console at once.  A Python program has
two logging systems that both stay silent until configured: Twisted's
(C{twisted.logger}, what gnetcompat and Twisted log to) buffers its events
until C{globalLogBeginner.beginLoggingTo} is called, and the standard
library's C{logging} shows only warnings, without a timestamp, until
C{logging.basicConfig}.  L{setupProgramLogging} (called by C{Run}/C{Rotate}
and in every worker process, never by C{Serve} or C{EngineService}: an
application configures its own logging) connects what the program has not
configured:

  - neither configured: Twisted's events go to standard error (Twisted's
    text format: one ISO timestamp, C{[namespace#level]}), and C{logging}'s
    records go into Twisted's log (root level C{INFO} when still at its
    default C{WARNING});
  - only C{logging} configured (e.g. C{logging.basicConfig(...)} before
    C{Run}): Twisted's events go to C{logging}, formatted as the program
    asked;
  - Twisted's configured (twistd, or the program began it): C{logging}'s
    records go into it when C{logging} has no handler.

L{stdlibObserver} makes a C{logging.Logger} an engine's logger
(C{WithLogger(logging.getLogger("app"))}).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    STDLibLogObserver,
    formatEvent,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import implementer

from ._twistedcompat import loggingBegun

__all__ = [
    "StdlibBridge",
    "isTwistedChatter",
    "setupProgramLogging",
    "stdlibObserver",
    "toStdlibLevel",
]

_TO_STDLIB = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}


def toStdlibLevel(level: LogLevel | None) -> int:
    """A Twisted level as C{logging}'s."""
    return _TO_STDLIB.get(level, logging.INFO) if level is not None else logging.INFO


#: C{logging}'s thresholds, highest first, with Twisted's levels (the table
#: gives them the type Twisted declares: C{constantly}'s constants are untyped)
_FROM_STDLIB: tuple[tuple[int, LogLevel], ...] = (
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
)
_BELOW_INFO: LogLevel = LogLevel.debug


def fromStdlibLevel(level: int) -> LogLevel:
    """A C{logging} level as Twisted's (the nearest at or below it)."""
    for threshold, twistedLevel in _FROM_STDLIB:
        if level >= threshold:
            return twistedLevel
    return _BELOW_INFO


class StdlibBridge(logging.Handler):
    """
    A C{logging} handler that passes each record into Twisted's log, in
    the record's logger name as namespace and at its level (its timestamp
    is then Twisted's: one per line).
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        Logger(namespace=record.name).emit(
            fromStdlibLevel(record.levelno), "{text}", text=text, log_stdlib=True
        )


@implementer(ILogObserver)
class _ToStdlib:
    """Twisted events into one C{logging.Logger}, at their level."""

    def __init__(self, target: logging.Logger) -> None:
        self.target = target

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_stdlib"):
            return  # it came from this logger's own records: never loop
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        self.target.log(toStdlibLevel(event.get("log_level")), "%s", text)


def stdlibObserver(target: logging.Logger) -> ILogObserver:
    """An observer writing Twisted events to the C{logging.Logger} C{target}."""
    return _ToStdlib(target)


_done = False


def isTwistedChatter(event: dict[str, Any]) -> bool:
    """
    Twisted's own routine lines (a port starting or closing, the main loop
    ending): info or debug from Twisted's namespaces or its legacy log.
    gnet prints none of these; warnings and errors from Twisted still show.
    """
    level = event.get("log_level")
    if level is not None and level >= LogLevel.warn:
        return False
    ns = event.get("log_namespace") or ""
    return ns == "log_legacy" or ns.startswith("twisted.")


@implementer(ILogFilterPredicate)
class _NotChatter:
    """Filters out L{isTwistedChatter} events."""

    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        # (annotated: C{constantly}'s constants are untyped)
        result: PredicateResult = (
            PredicateResult.no if isTwistedChatter(event) else PredicateResult.maybe
        )
        return result


_notChatter = _NotChatter()


def setupProgramLogging(
    level: LogLevel = LogLevel.info,
    stream: Any = None,
    beginner: Any = None,
    root: logging.Logger | None = None,
) -> None:
    """
    Connect whatever logging the program has not configured (see the module
    docstring); C{level}: the lowest level shown on C{stream} (standard
    error by default).  Once per process; later calls do nothing
    (C{beginner} and C{root}, Twisted's C{LogBeginner} and C{logging}'s
    root logger, are for tests).
    """
    global _done
    if beginner is None:
        if _done:
            return
        _done = True
        beginner = globalLogBeginner
    if root is None:
        root = logging.getLogger()
    stdlibConfigured = bool(root.handlers)
    if not loggingBegun(beginner):
        if stdlibConfigured:
            observer: Any = FilteringLogObserver(STDLibLogObserver(), [_notChatter])
        else:
            observer = FilteringLogObserver(
                textFileLogObserver(stream if stream is not None else sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=level), _notChatter],
            )
        beginner.beginLoggingTo([observer], redirectStandardIO=False)
    if not stdlibConfigured:
        root.addHandler(StdlibBridge())
        if root.level == logging.WARNING:  # logging's default: the program set none
            root.setLevel(toStdlibLevel(level))
