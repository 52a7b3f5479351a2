"""
Canaries for the Twisted internals L{gnetcompat._twistedcompat} relies on:
they fail when a Twisted upgrade changes what its overrides copy.
"""

from __future__ import annotations

import inspect

from twisted.internet import tcp
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat._twistedcompat import SocketError, _Client, _Server, keepSocketErrors


class CanaryTests(SynchronousTestCase):
    """What C{keepSocketErrors} overrides is still what Twisted does."""

    def test_twistedDropsTheErrno(self) -> None:
        """
        C{tcp.Connection.doRead}/C{writeSomeData} still return the bare
        C{CONNECTION_LOST} on a socket error (our override is still needed)
        and still read/send the way the copies in C{_KeepErrors} do.
        """
        read = inspect.getsource(tcp.Connection.doRead)
        write = inspect.getsource(tcp.Connection.writeSomeData)
        for needle in ("self.socket.recv(self.bufferSize)", "self._dataReceived(data)",
                       "main.CONNECTION_LOST"):
            self.assertIn(needle, read)
        for needle in ("self.SEND_LIMIT", "untilConcludes(self.socket.send",
                       "main.CONNECTION_LOST", "ENOBUFS"):
            self.assertIn(needle, write)

    def test_swapOnlyPlainTCP(self) -> None:
        """Only exact C{tcp.Server}/C{tcp.Client} get the subclass; others are untouched."""
        self.assertTrue(issubclass(_Server, tcp.Server))
        self.assertTrue(issubclass(_Client, tcp.Client))
        t = StringTransport()
        keepSocketErrors(t)
        self.assertIs(type(t), StringTransport)

    def test_socketErrorIsConnectionLost(self) -> None:
        """A L{SocketError} is a Twisted C{ConnectionLost} keeping the errno and the syscall."""
        from twisted.internet.error import ConnectionLost

        e = SocketError("write", BrokenPipeError(32, "Broken pipe"))
        self.assertIsInstance(e, ConnectionLost)
        self.assertIs(type(e.osError), BrokenPipeError)
        self.assertIn("write: Broken pipe", str(e.osError))
