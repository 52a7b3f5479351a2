# -*- test-case-name: tests.test_engine,tests.test_protocol -*-
"""
gnet's C{Action} and the checking of what callbacks return.

A handler's callback result decides what the engine does next, so a result
of the wrong shape must not pass silently: L{CallbackResults} (one per
engine) turns each result into what the engine does and logs one clear
line naming the callback and what it returned, escaped and bounded
(L{gnetcompat._text.shown}), at most once per L{CallbackResults.interval}
seconds per mistake, so a hot path cannot flood the log.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

from ._text import shown

__all__ = ["Action", "None_", "Close", "Shutdown", "toAction", "CallbackResults"]


class Action(IntEnum):
    """What the engine does after a callback returns."""

    NONE = 0
    CLOSE = 1
    SHUTDOWN = 2


#: gnet's names, so ported code reads C{return gnet.Close}.
None_ = Action.NONE
Close = Action.CLOSE
Shutdown = Action.SHUTDOWN

#: what C{OnOpen} may return as its C{out}, besides C{None}
_BYTES_LIKE = (bytes, bytearray, memoryview)


def toAction(value: object) -> Action:
    """
    Any callback result as an L{Action}: C{None}, unknown integers (gnet's
    tests return -1) and other values mean L{Action.NONE}.
    """
    if value is None:
        return Action.NONE
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 1:
            return Action.CLOSE
        if value == 2:
            return Action.SHUTDOWN
    return Action.NONE


def _isAction(value: object) -> bool:
    """C{None}, an L{Action} or another int (gnet's tests return -1); not a bool."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _isDelay(value: object) -> bool:
    """A finite number of seconds (not a bool, not an L{Action})."""
    if isinstance(value, (bool, Action)) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


class CallbackResults:
    """
    One engine's check of its handler's results (spec §3, §4): the shapes
    gnet's signatures allow pass through as L{Action}s; anything else is
    logged to the engine's logger (critical, as a callback that raises)
    and made harmless.

      - C{OnTraffic}, C{OnClose}, C{OnBoot}: C{None}, an L{Action} or any
        other int (no action, as gnet's tests return -1).  Anything else (a
        str, a tuple, a bool) is logged and means no action.
      - C{OnOpen}: C{(out, action)} with C{out} bytes-like or C{None}; a
        bare L{Action}, bare bytes-like C{out} or C{None} are accepted too.
        Anything else (a reversed pair, a str) is logged and the connection
        is closed, with nothing sent.
      - C{OnTick}: C{(delay_seconds, action)} (a number or a C{timedelta}),
        or a bare number.  C{None} (a forgotten C{return}) or anything else
        is logged and the next tick comes after L{fallbackTickDelay}
        seconds; a bare L{Action} is applied, with the same delay.  Delays
        below L{minTickDelay} (gnet calls again at once for 0 or less,
        spinning a core) are raised to it, with one warning per engine.

    @ivar interval: seconds during which a mistake already logged is only
        counted; the next report says how many were not logged.
    """

    interval = 60.0
    #: the shortest time between two ticks (seconds)
    minTickDelay = 0.001
    #: the time to the next tick after a wrong-shaped C{OnTick} result
    fallbackTickDelay = 1.0

    def __init__(self, log: Any, clock: Any) -> None:
        """
        @param log: the engine's C{twisted.logger.Logger}.
        @param clock: the engine's C{IReactorTime} (for the rate limit).
        """
        self.log = log
        self.clock = clock
        #: per mistake: (when it was last logged, how many since)
        self._reported: dict[str, list[float]] = {}
        self._warnedShortDelay = False

    def _report(self, key: str, message: str, value: object) -> None:
        """
        Log C{message} (a format with the fields C{value}, C{callback} and
        C{suffix}) unless the mistake C{key} was logged within L{interval}.
        """
        now = self.clock.seconds()
        seen = self._reported.get(key)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return
        skipped = int(seen[1]) if seen is not None else 0
        self._reported[key] = [now, 0]
        suffix = f" ({skipped} more times since the last report)" if skipped else ""
        self.log.critical(message, value=shown(value), callback=key, suffix=suffix)

    def action(self, callback: str, value: object) -> Action:
        """
        The action of C{OnTraffic}, C{OnClose} or C{OnBoot} (named by
        C{callback}) returning C{value}; a wrong shape is logged and means
        no action.
        """
        if type(value) is Action:
            return value
        if _isAction(value):
            return toAction(value)
        self._report(
            callback,
            "{callback} must return an Action (gnet.None_, gnet.Close, gnet.Shutdown) "
            "or None, got {value}; taken as no action{suffix}",
            value,
        )
        return Action.NONE

    def openResult(self, value: object) -> tuple[Any, Action] | None:
        """
        C{OnOpen}'s C{(out, action)}, or C{None} for a wrong shape (logged:
        the caller closes the connection and sends nothing).
        """
        if value is None:
            return None, Action.NONE
        if isinstance(value, tuple):
            if len(value) == 2:
                out, action = value
                if (out is None or isinstance(out, _BYTES_LIKE)) and _isAction(action):
                    return out, toAction(action)
        elif type(value) is Action:
            return None, value
        elif isinstance(value, _BYTES_LIKE):
            return value, Action.NONE
        self._report(
            "OnOpen",
            "OnOpen must return (out: bytes-like | None, action), got {value}; "
            "closing the connection{suffix}",
            value,
        )
        return None

    def tickResult(self, value: object) -> tuple[float, Action]:
        """C{OnTick}'s C{(delay, action)}: the seconds to the next tick and the action."""
        delay: Any = None
        action: object = None
        if isinstance(value, tuple) and len(value) == 2:
            delay, action = value
            if hasattr(delay, "total_seconds"):  # a datetime.timedelta
                delay = delay.total_seconds()
        elif _isDelay(value):
            delay = value
        if _isDelay(delay) and _isAction(action):
            return self._tickDelay(delay), toAction(action)
        if value is None:
            self._report(
                "OnTick",
                "OnTick returned {value}; it must return (delay_seconds, action); "
                "ticking again in 1 s{suffix}",
                value,
            )
            return self.fallbackTickDelay, Action.NONE
        self._report(
            "OnTick",
            "OnTick must return (delay_seconds, action), got {value}; ticking again in 1 s{suffix}",
            value,
        )
        if type(value) is Action:  # the action is clear; only the delay is missing
            return self.fallbackTickDelay, value
        return self.fallbackTickDelay, Action.NONE

    def _tickDelay(self, delay: float) -> float:
        """C{delay}, at least L{minTickDelay} (warned about once per engine)."""
        if delay >= self.minTickDelay:
            return float(delay)
        if not self._warnedShortDelay:
            self._warnedShortDelay = True
            self.log.warn(
                "OnTick returned a delay of {delay} s: ticks come at most every "
                "{minimum} s (gnet would call OnTick again at once, spinning a core)",
                delay=delay,
                minimum=self.minTickDelay,
            )
        return self.minTickDelay
