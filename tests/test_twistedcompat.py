"""
Canaries for the Twisted internals L{gnetcompat._twistedcompat} relies on:
they fail when a Twisted upgrade changes what its overrides copy.
"""

from __future__ import annotations

import inspect

from twisted.internet import tcp, unix
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from gnetcompat._twistedcompat import (
    SocketError,
    UnixPortKeepingFile,
    _Client,
    _Server,
    keepSocketErrors,
)


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


class UnixPortKeepingFileCanaryTests(SynchronousTestCase):
    """What L{UnixPortKeepingFile} overrides is still what Twisted does."""

    def test_twistedUnlinksAtStop(self) -> None:
        """
        C{unix.Port.connectionLost} still unlinks the path (the override is
        still needed), and besides that only releases the lock file and
        hands over to C{tcp.Port.connectionLost}, as the override does.
        """
        source = inspect.getsource(unix.Port.connectionLost)
        for needle in ("os.unlink(self._bindPath)", "self.lockFile.unlock()",
                       "tcp.Port.connectionLost(self, reason)"):
            self.assertIn(needle, source)
        body = [line.strip() for line in source.splitlines()[1:] if line.strip()]
        self.assertEqual(len(body), 5, source)

    def test_adoptedPortKeepsTheFile(self) -> None:
        """
        C{_fromListeningDescriptor} (as the engine adopts a bound socket)
        gives a L{UnixPortKeepingFile}; when it stops listening the socket
        file stays, and a file already gone raises nothing.
        """
        import os
        import socket

        from twisted.internet.protocol import Factory
        from twisted.internet.testing import MemoryReactor

        path = os.path.relpath(self.mktemp())
        for removeFirst in (False, True):
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            sock.listen(1)
            sock.setblocking(False)
            port = UnixPortKeepingFile._fromListeningDescriptor(MemoryReactor(), sock.fileno(), Factory())
            sock.close()
            self.assertIsInstance(port, unix.Port)
            port.startListening()
            self.assertTrue(os.path.exists(path))
            if removeFirst:
                os.unlink(path)
            port.connectionLost(None)
            self.assertEqual(os.path.exists(path), not removeFirst)
            if not removeFirst:
                os.unlink(path)
