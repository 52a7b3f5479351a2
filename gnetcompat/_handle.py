# -*- test-case-name: tests.test_engineapi -*-
"""
Engine-wide names for connections and counters (gnetcompat extensions):
L{ConnHandle}, what C{Conn.Handle()} returns and C{Engine.AsyncWrite},
C{Engine.Close}, C{Engine.Wake} and C{Engine.Broadcast(exclude=...)} take,
valid in every worker process of an engine; and L{Counter}, what
C{Engine.Counter(name)} returns.

gnet shares memory between its loops, so a handler keeps C{Conn}s in a map
and writes to any of them.  With process workers (L{WithProcessWorkers})
a C{Conn} lives in one process: a handle names it everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "ConnHandle",
    "HandleCallback",
    "Counter",
    "LocalCounter",
    "MAX_COUNTERS",
    "MAX_COUNTER_NAME",
]

#: how many counters an engine can have (process workers keep them in a
#: fixed block of shared memory)
MAX_COUNTERS = 64
#: the longest counter name, in UTF-8 bytes
MAX_COUNTER_NAME = 48


class ConnHandle(NamedTuple):
    """
    A connection's name in its engine, valid in every worker process
    (gnet's old C{Gfd}): the worker that owns it, that worker's generation
    (a replacement worker has a new one, so a handle of a dead worker never
    reaches a new connection), an id unique in that worker, and the peer's
    address text (C{""} for unix sockets).  Hashable and picklable.
    """

    worker: int
    generation: int
    id: int
    remote: str

    def __repr__(self) -> str:
        return f"ConnHandle(worker={self.worker}, id={self.id}, remote={self.remote!r})"


#: C{callback(handle, err)} of the engine-wide operations (C{Engine.AsyncWrite},
#: C{Close}, C{Wake} by handle): C{err} is C{None} on success
HandleCallback = Callable[[ConnHandle, "BaseException | None"], object]


class Counter:
    """
    An engine-wide integer counter (C{Engine.Counter(name)}).  C{Add} is
    safe from any thread; with process workers each worker adds to its own
    slot and C{Value} is the sum over the workers (not a snapshot across
    them, as gnet's per-loop atomics are not either).
    """

    name: str

    def Add(self, delta: int = 1) -> int:
        """Add C{delta} (may be negative); returns the engine-wide value after it."""
        raise NotImplementedError

    def Value(self) -> int:
        """The engine-wide value."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Counter {self.name!r} = {self.Value()}>"


class LocalCounter(Counter):
    """A L{Counter} of a one-process engine (a lock-protected integer)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._value = 0
        self._lock = threading.Lock()

    def Add(self, delta: int = 1) -> int:
        with self._lock:
            self._value += delta
            return self._value

    def Value(self) -> int:
        return self._value


def checkCounterName(name: object) -> str:
    """
    C{name} if it can name a counter.

    @raise TypeError: not a string.
    @raise ValueError: empty or longer than L{MAX_COUNTER_NAME} UTF-8 bytes.
    """
    if not isinstance(name, str):
        raise TypeError(f"Engine.Counter: name must be a str, got {name!r}")
    size = len(name.encode("utf-8"))
    if not 0 < size <= MAX_COUNTER_NAME:
        raise ValueError(
            f"Engine.Counter: name must be 1-{MAX_COUNTER_NAME} UTF-8 bytes, got {size}"
        )
    return name
