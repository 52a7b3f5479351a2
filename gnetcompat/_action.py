"""gnet's C{Action} and the normalisation of callback results."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = ["Action", "None_", "Close", "Shutdown", "toAction"]


class Action(IntEnum):
    """What the engine does after a callback returns."""

    NONE = 0
    CLOSE = 1
    SHUTDOWN = 2


#: gnet's names, so ported code reads C{return gnet.Close}.
None_ = Action.NONE
Close = Action.CLOSE
Shutdown = Action.SHUTDOWN


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


def splitPair(value: object, what: str) -> tuple[Any, Action]:
    """
    Split an C{(x, action)} pair returned by C{OnOpen}/C{OnTick}; C{None}
    means C{(None, NONE)} and a bare Action means C{(None, action)}.
    """
    if value is None:
        return None, Action.NONE
    if isinstance(value, tuple):
        if len(value) == 2:
            return value[0], toAction(value[1])
        raise TypeError(
            f"{what} must return ({'out' if what == 'OnOpen' else 'delay'}, action), got {value!r}"
        )
    if isinstance(value, Action):
        return None, value
    if what == "OnOpen" and isinstance(value, (bytes, bytearray, memoryview)):
        return value, Action.NONE
    if what == "OnTick" and isinstance(value, (int, float)):
        return value, Action.NONE
    raise TypeError(
        f"{what} must return ({'out' if what == 'OnOpen' else 'delay'}, action), got {value!r}"
    )
