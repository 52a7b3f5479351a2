# -*- test-case-name: tests.test_wsproto -*-
"""
The partial-message budget: what the WebSocket connections of one reactor
(one worker process) hold in partly received frames and messages, bounded
together by C{WebSocketOptions.partialMessageBudget}, and the
C{messageTimeout} deadline of each.

L{PartialMessages} tracks L{PartialHolder}s (the Autobahn protocols of the
sessions, L{gnetcompat.websocket._autobahncompat.SessionProtocol}): the
session reports after each feed (L{PartialMessages.update}) and when its
stream is gone (L{PartialMessages.forget}); the pool fails the holders that
go over the budget or past their deadline.
"""

from __future__ import annotations

from typing import Any, Protocol
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["PartialHolder", "PartialMessages", "partialsFor"]


class PartialHolder(Protocol):
    """
    What L{PartialMessages} needs from a connection holding partial data.
    """

    #: the C{partialMessageBudget} of its options (0: none)
    budget: int
    #: the C{messageTimeout} of its options (0: none)
    messageTimeout: float

    @property
    def isOpen(self) -> bool:
        """Whether the WebSocket connection is open (partial data can complete)."""

    @property
    def hasPartialInput(self) -> bool:
        """Whether a frame or message is partly received, or input waits."""

    def partialBytes(self) -> int:
        """Bytes held for the partly received frame or message and the input."""

    def failPartial(self, code: int, reason: str) -> None:
        """Fail the connection with C{code}, freeing what it holds."""


class PartialMessages:
    """
    The connections of one reactor holding partly received data: the bytes
    they hold together, and the deadlines of C{messageTimeout} checked by a
    sweep once a second while any connection has one.

    @ivar held: bytes held by all tracked connections.
    @ivar holders: tracked connection -> the bytes it holds, the one holding
        partial data the longest first (a connection moves to the end when a
        message completes and it still holds the start of the next): who
        pays first when the budget is exceeded.
    @ivar deadlines: tracked connection -> time its partial data expires.
    """

    SWEEP_INTERVAL = 1.0

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.held = 0
        self.holders: dict[PartialHolder, int] = {}
        self.deadlines: dict[PartialHolder, float] = {}
        self._call: IDelayedCall | None = None

    def update(self, holder: PartialHolder, completed: bool) -> None:
        """
        After a feed of C{holder}'s session: account for its partly received
        frame or message (and unprocessed input), or stop when it has none.
        Its bytes count against its C{partialMessageBudget}, and it must
        complete before its C{messageTimeout} deadline, restarted (and the
        holder made the youngest) when C{completed} (a message completed in
        this feed) or when it was not tracked.
        """
        if not holder.isOpen or not holder.hasPartialInput:
            self.forget(holder)
            return
        holders = self.holders
        held = holder.partialBytes()
        before = holders.get(holder)
        grown = held - (before or 0)
        self.held += grown
        if before is None or completed:
            holders.pop(holder, None)
            timeout = holder.messageTimeout
            if timeout:
                self.deadlines[holder] = self.clock.seconds() + timeout
                self._arm()
        holders[holder] = held
        budget = holder.budget
        if grown > 0 and budget and self.held > budget:
            self._overBudget(holder, budget)

    def forget(self, holder: PartialHolder) -> None:
        """
        Stop accounting for C{holder}'s partial data (no sweep stays
        scheduled for nobody).
        """
        held = self.holders.pop(holder, None)
        if held is None:
            return
        self.held -= held
        self.deadlines.pop(holder, None)
        if not self.deadlines and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _fail(self, holder: PartialHolder, code: int, reason: str) -> None:
        self.forget(holder)
        holder.failPartial(code, reason)

    def _overBudget(self, holder: PartialHolder, budget: int) -> None:
        """
        C{holder}'s data took the reactor over C{partialMessageBudget}: fail
        the connections that have held partial data the longest (1013) until
        the rest fits; C{holder} pays only when it is the oldest.
        """
        while self.held > budget and self.holders:
            oldest, held = next(iter(self.holders.items()))
            self.log.info(
                "closing the connection holding a partly received message the longest "
                "({bytes} bytes; 1013): this worker's partly received messages would hold "
                "{held} bytes, over partialMessageBudget {budget}",
                bytes=held,
                held=self.held,
                budget=budget,
            )
            self._fail(oldest, 1013, "server busy: too much partly received data")
            if oldest is holder:
                return

    def _arm(self) -> None:
        """
        Make sure a sweep is scheduled.
        """
        if self._call is None:
            self._call = self.clock.callLater(self.SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        self._call = None
        now = self.clock.seconds()
        for holder, deadline in list(self.deadlines.items()):
            if deadline <= now:
                self.log.info(
                    "closing a connection (1008): a frame or message stayed partly "
                    "received for over {timeout} s (messageTimeout)",
                    timeout=holder.messageTimeout,
                )
                self._fail(holder, 1008, "message timeout")
        if self.deadlines:
            self._arm()


_pools: WeakKeyDictionary[Any, PartialMessages] = WeakKeyDictionary()


def partialsFor(reactor: IReactorTime) -> PartialMessages:
    """
    The L{PartialMessages} of C{reactor}, created on first use.
    """
    pool = _pools.get(reactor)
    if pool is None:
        pool = _pools[reactor] = PartialMessages(reactor)
    return pool
