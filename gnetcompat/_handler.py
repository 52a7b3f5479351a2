"""L{BuiltinEventEngine}: the no-op event handler to subclass."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from ._action import Action
from .interfaces import IEventHandler

__all__ = ["BuiltinEventEngine"]


@implementer(IEventHandler)
class BuiltinEventEngine:
    """
    Every callback does nothing, as gnet's C{BuiltinEventEngine}: subclass
    it and override what you need.  Note that C{OnTick} returns a zero delay:
    with the ticker on and C{OnTick} not overridden it is called every
    millisecond, the shortest delay gnetcompat allows (gnet spins a core
    there), with a warning in the engine's log.
    """

    def OnBoot(self, eng: Any) -> Action:
        """Start serving."""
        return Action.NONE

    def OnShutdown(self, eng: Any) -> Deferred[Any] | None:
        """Nothing (an override may return a Deferred the engine waits for)."""
        return None

    def OnOpen(self, c: Any) -> tuple[bytes | None, Action]:
        """Send nothing, keep the connection."""
        return None, Action.NONE

    def OnClose(self, c: Any, err: BaseException | None) -> Action:
        """Nothing."""
        return Action.NONE

    def OnTraffic(self, c: Any) -> Action:
        """Leave the bytes buffered."""
        return Action.NONE

    def OnTick(self) -> tuple[float, Action]:
        """Call again at once."""
        return 0.0, Action.NONE
