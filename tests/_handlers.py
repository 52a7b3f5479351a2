"""
Shared test handlers: L{Recorder}, a handler that records every callback,
and L{booted}, a booted L{HandlerDriver} for it (used by the unit tests of
Conn, the protocol, the testing driver, and the loopback suites).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gnetcompat as gnet
from gnetcompat.testing import HandlerDriver


class Recorder(gnet.BuiltinEventEngine):
    """
    A handler whose callbacks are plain functions given by the test; it
    records every call as C{(name, ...)} in C{events}.
    """

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        self.hooks = hooks
        self.events: list[tuple] = []

    def _hook(self, name: str, *args: Any) -> Any:
        fn = self.hooks.get(name)
        return fn(*args) if fn is not None else None

    def OnBoot(self, eng: Any) -> Any:
        self.events.append(("boot",))
        return self._hook("OnBoot", eng)

    def OnShutdown(self, eng: Any) -> None:
        self.events.append(("shutdown",))
        self._hook("OnShutdown", eng)

    def OnOpen(self, c: Any) -> Any:
        self.events.append(("open", c))
        return self._hook("OnOpen", c)

    def OnTraffic(self, c: Any) -> Any:
        self.events.append(("traffic", c))
        return self._hook("OnTraffic", c)

    def OnClose(self, c: Any, err: Any) -> Any:
        self.events.append(("close", c, err))
        return self._hook("OnClose", c, err)

    def OnTick(self) -> Any:
        self.events.append(("tick",))
        return self._hook("OnTick")

    def names(self) -> list[str]:
        """The names of the recorded events, in order."""
        return [e[0] for e in self.events]

    def closes(self) -> list[tuple]:
        """The recorded OnClose events."""
        return [e for e in self.events if e[0] == "close"]

    def traffic(self) -> int:
        """How many OnTraffic calls were made."""
        return self.names().count("traffic")


def booted(handler: Any, *opts: Any, **kw: Any) -> HandlerDriver:
    """A booted driver for C{handler}."""
    driver = HandlerDriver(handler, *opts, **kw)
    driver.boot()
    return driver
