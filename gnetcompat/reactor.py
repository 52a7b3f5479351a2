# -*- test-case-name: tests.test_reactor -*-
"""
C{GnetEPollReactor}: Twisted's epoll reactor without the per-event logging
context.

Twisted's reactor wraps every I/O event in C{log.callWithLogger} (a context
push and pop that only sets the "system" prefix of log lines emitted during
the event); on a small-message echo workload that wrapper costs about a
quarter of the server's CPU.  This reactor dispatches events directly.
Exceptions are still caught and logged by C{_doReadOrWrite} exactly as
before, and every other behaviour is the epoll reactor's.  Log lines emitted
while handling an event carry the system C{-} instead of the protocol's
prefix.

Use it with C{twistd -r gnet ...}, or call L{install} before anything imports
the global reactor.  gnetcompat's multicore workers use it by default.
"""

from __future__ import annotations

from twisted.internet.epollreactor import EPollReactor

from ._twistedcompat import doPollWithoutLogContext

__all__ = ["GnetEPollReactor", "install"]


class GnetEPollReactor(EPollReactor):
    """The epoll reactor, dispatching I/O events without a logging context."""

    def doPoll(self, timeout: float | None) -> None:
        """Poll for events and dispatch each to its selectable."""
        doPollWithoutLogContext(self, timeout)

    doIteration = doPoll


def install() -> GnetEPollReactor:
    """Install L{GnetEPollReactor} as the global reactor and return it."""
    from twisted.internet.main import installReactor

    r = GnetEPollReactor()
    installReactor(r)
    return r
