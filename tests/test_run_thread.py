"""
Tests for L{gnetcompat.Run}/L{gnetcompat.Rotate} called from a thread while
the reactor runs (found by mypy: the engine was started with a keyword that
collided with C{blockingCallFromThread}'s own C{reactor} argument).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

import gnetcompat as gnet


class _ShutdownAtBoot(gnet.BuiltinEventEngine):
    def OnBoot(self, eng: Any) -> gnet.Action:
        return gnet.Shutdown


class RotateFromThreadTests(TestCase):
    """C{Rotate}/C{Run} from another thread start the engine on the running reactor."""

    timeout = 20

    def test_rotateFromThread(self) -> Deferred[None]:
        """C{Rotate} returns once the engine (shut down by OnBoot) has stopped."""
        d: Deferred[None] = threads.deferToThread(
            gnet.Rotate, _ShutdownAtBoot(), ["tcp://127.0.0.1:0"]
        )
        d.addCallback(self.assertIsNone)
        return d

    def test_runFromThread(self) -> Deferred[None]:
        """C{Run} does the same for one address."""
        d: Deferred[None] = threads.deferToThread(gnet.Run, _ShutdownAtBoot(), "tcp://127.0.0.1:0")
        d.addCallback(self.assertIsNone)
        return d
