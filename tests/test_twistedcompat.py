"""
Canaries for the Twisted internals L{gnetcompat._twistedcompat} relies on:
they fail when a Twisted upgrade changes what its overrides copy.
"""

from __future__ import annotations

import hashlib
import inspect
import socket
import sys
import warnings

from OpenSSL.SSL import Connection
from twisted.internet import abstract, endpoints, tcp, unix
from twisted.internet.error import ReactorNotRestartable
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from gnetcompat import _twistedcompat
from gnetcompat._twistedcompat import (
    AcceptRefusals,
    GnetTLSFactory,
    SocketError,
    UnixPortKeepingFile,
    _Client,
    _Server,
    awaitHandshake,
    directSocket,
    forgetExitSignal,
    hasWriteBuffer,
    isTLS,
    keepSocketErrors,
    rawTransport,
    reactorHasRun,
    sendNow,
    throttleAcceptErrors,
    tlsConnection,
    tlsPlaintextBuffered,
    twistedParse,
    writeBacklog,
)

from ._tlscerts import certsFor


def sourceHash(obj: object) -> str:
    """The SHA-256 of an object's source: a copy of it must be re-checked when this changes."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()  # type: ignore[arg-type]


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
        for needle in (
            "self.socket.recv(self.bufferSize)",
            "self._dataReceived(data)",
            "main.CONNECTION_LOST",
        ):
            self.assertIn(needle, read)
        for needle in (
            "self.SEND_LIMIT",
            "untilConcludes(self.socket.send",
            "main.CONNECTION_LOST",
            "ENOBUFS",
        ):
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
        for needle in (
            "os.unlink(self._bindPath)",
            "self.lockFile.unlock()",
            "tcp.Port.connectionLost(self, reason)",
        ):
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
            port = UnixPortKeepingFile._fromListeningDescriptor(
                MemoryReactor(), sock.fileno(), Factory()
            )
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


class WriteBufferCanaryTests(SynchronousTestCase):
    """
    L{writeBacklog} and L{sendNow} read a C{FileDescriptor}'s write buffer
    (C{dataBuffer}, C{offset}, C{_tempDataLen}); L{hasWriteBuffer} checks
    they are there, and without them only the public C{transport.write} is used.
    """

    def test_fileDescriptorHasTheAttributes(self) -> None:
        """A Twisted C{FileDescriptor} still keeps its buffer in the attributes we read."""
        fd = abstract.FileDescriptor()
        self.assertTrue(hasWriteBuffer(fd))
        self.assertEqual(writeBacklog(fd), 0)
        fd.dataBuffer, fd.offset, fd._tempDataLen = b"abcdef", 2, 3
        self.assertEqual(writeBacklog(fd), 7)
        self.assertTrue(issubclass(tcp.Server, abstract.FileDescriptor))
        self.assertTrue(issubclass(unix.Server, abstract.FileDescriptor))

    def test_otherTransportsHaveNoBuffer(self) -> None:
        """Test doubles (and TLS) fail the capability check: no direct socket."""
        t = StringTransport()
        self.assertFalse(hasWriteBuffer(t))
        self.assertIsNone(directSocket(t))

    def test_changedTwistedFallsBackToWrite(self) -> None:
        """
        A TCP transport without the buffer attributes (as after a Twisted
        upgrade that renamed them) gets no direct socket, and L{sendNow}
        then writes through C{transport.write}, the public API, instead of
        failing with an C{AttributeError}.
        """

        class Renamed(tcp.Server):
            def __init__(self) -> None:  # no FileDescriptor.__init__: no _tempDataLen
                self.written: list[bytes] = []
                a, self.peer = socket.socketpair()
                self.socket = a
                self.connected = 1
                self.disconnecting = 0

            def write(self, data: bytes) -> None:
                self.written.append(data)

        t = Renamed()
        self.addCleanup(t.socket.close)
        self.addCleanup(t.peer.close)
        self.assertFalse(hasWriteBuffer(t))
        sock = directSocket(t)
        self.assertIsNone(sock)
        self.assertTrue(sendNow(t, sock, b"hello"))
        self.assertEqual(t.written, [b"hello"])

    def test_directSendWhenIdle(self) -> None:
        """With an empty buffer, L{sendNow} sends on the socket at once and queues nothing."""
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        t = StringTransport()
        t.dataBuffer, t.offset, t._tempDataLen = b"", 0, 0
        t.connected, t.disconnecting = 1, 0
        self.assertFalse(sendNow(t, a, b"now"))
        self.assertEqual(b.recv(10), b"now")
        self.assertEqual(t.value(), b"")


class TLSBufferCanaryTests(SynchronousTestCase):
    """L{tlsPlaintextBuffered} reads C{TLSMemoryBIOProtocol._appSendBuffer}."""

    def test_appSendBufferIsAListOfBytes(self) -> None:
        """
        Twisted's TLS protocol still creates C{_appSendBuffer} as a list and
        appends plaintext to it (the behavioural probe is
        C{tests.test_tls.TwistedInternalsCanaryTests.test_appSendBuffer}).
        """
        source = inspect.getsource(TLSMemoryBIOProtocol)
        for needle in ("self._appSendBuffer = []", "self._appSendBuffer.append(octets)"):
            self.assertIn(needle, source)

        class Holder:
            _appSendBuffer = [b"ab", b"cde"]

        self.assertEqual(tlsPlaintextBuffered(Holder()), 5)
        self.assertEqual(tlsPlaintextBuffered(StringTransport()), 0)


class TLSFactoryCanaryTests(SynchronousTestCase):
    """
    L{GnetTLSFactory} and the readers of a TLS transport
    (L{tlsConnection}, L{rawTransport}, L{awaitHandshake}) lean on
    C{twisted.protocols.tls} beyond its interfaces: these notice when a
    Twisted upgrade changes what they rely on.
    """

    def tlsProtocol(self, handshakeTimeout: float = 7.0) -> tuple[GnetTLSFactory, Protocol]:
        """A server-side TLS protocol of a L{GnetTLSFactory} over a C{StringTransport}."""
        import gnetcompat as gnet

        certs = certsFor(self)
        creator = gnet.TLSConfig(certs.serverCert, certs.serverKey).creator()
        factory = GnetTLSFactory(
            creator, False, Factory.forProtocol(Protocol), Clock(), handshakeTimeout
        )
        proto = factory.buildProtocol(None)
        assert proto is not None
        proto.makeConnection(StringTransport())
        return factory, proto

    def test_plainProtocolIsOurChoice(self) -> None:
        """
        Twisted's factory still defaults to its buffering transport (a
        C{TLSMemoryBIOProtocol} subclass that holds writes for a reactor
        iteration), so choosing the plain protocol still matters; ours
        builds exactly C{TLSMemoryBIOProtocol}, a C{WrappingFactory}
        that tracks its protocols.
        """
        self.assertIs(TLSMemoryBIOFactory.protocol, BufferingTLSTransport)
        self.assertTrue(issubclass(BufferingTLSTransport, TLSMemoryBIOProtocol))
        self.assertIs(GnetTLSFactory.protocol, TLSMemoryBIOProtocol)
        self.assertTrue(issubclass(GnetTLSFactory, WrappingFactory))
        factory, proto = self.tlsProtocol()
        self.assertIs(type(proto), TLSMemoryBIOProtocol)
        self.assertIn(proto, factory.protocols)

    def test_stopAbortsHandshakes(self) -> None:
        """
        C{stopFactory} aborts a connection still in its handshake (its
        wrapped protocol has no C{conn} yet) through the public
        C{abortConnection}, which reaches the socket transport below.
        """
        factory, proto = self.tlsProtocol()
        below = rawTransport(proto)
        factory.doStart()
        self.assertFalse(below.disconnecting)
        factory.doStop()
        self.assertTrue(below.disconnecting)

    def test_readsOfATLSTransport(self) -> None:
        """
        A C{TLSMemoryBIOProtocol} is an C{ISSLTransport} with C{getHandle}
        (the OpenSSL C{Connection}), C{negotiatedProtocol} (C{None} before
        the handshake), C{transport} (the socket transport below) and
        C{factory} (whose C{handshakeTimeout} L{awaitHandshake} arms);
        other transports are none of it.
        """
        _, proto = self.tlsProtocol(handshakeTimeout=7.0)
        self.assertTrue(isTLS(proto))
        found = tlsConnection(proto)
        assert found is not None
        self.assertIsInstance(found[0], Connection)
        self.assertIsNone(found[1])
        self.assertIsInstance(rawTransport(proto), StringTransport)

        class Wrapped:
            transport = proto

        clock = Clock()
        call = awaitHandshake(Wrapped(), clock, lambda: None, 99.0)
        assert call is not None
        self.assertEqual(call.getTime(), 7.0)
        plain = StringTransport()
        self.assertFalse(isTLS(plain))
        self.assertIsNone(tlsConnection(plain))
        self.assertIs(rawTransport(plain), plain)


class EndpointParserCanaryTests(SynchronousTestCase):
    """L{twistedParse} is Twisted's private C{endpoints._parse}."""

    def test_parserSplitsAsBefore(self) -> None:
        """Positional and keyword parts, escaped colons: as C{serverFromString} reads them."""
        self.assertTrue(callable(getattr(endpoints, "_parse", None)))
        self.assertEqual(
            twistedParse(r"ssl:9443:privateKey=a\:b.pem:certKey=c.pem"),
            (["ssl", "9443"], {"privateKey": "a:b.pem", "certKey": "c.pem"}),
        )


class AdoptUnixPortCanaryTests(SynchronousTestCase):
    """L{adoptUnixPortKeepingFile} is C{unix.Port._fromListeningDescriptor}."""

    def test_constructorUnchanged(self) -> None:
        """
        C{_fromListeningDescriptor} is still the code we rely on (it builds
        the port around the descriptor without listening yet).  When this
        fails, re-read it and update the hash.
        """
        self.assertEqual(
            sourceHash(unix.Port._fromListeningDescriptor),
            "f024e35e9db37841804d1784e4269b242f258705cb0f8d1b8b05c304e8a2dc5c",
        )


class DoPollCanaryTests(SynchronousTestCase):
    """L{_twistedcompat.doPollWithoutLogContext} copies C{EPollReactor.doPoll}."""

    def test_doPollUnchanged(self) -> None:
        """
        Twisted's C{doPoll} is the one our copy was made from (only the
        C{log.callWithLogger} wrapper dropped).  When this fails, compare
        the copy with the new source and update the hash.
        """
        try:
            from twisted.internet.epollreactor import EPollReactor
        except ImportError:  # pragma: no cover - no epoll (not Linux)
            raise SkipTest("no epoll reactor here") from None
        self.assertEqual(
            sourceHash(EPollReactor.doPoll),
            "09b62ae68ef01b4bc5eaa170827e2baf0a2a5098e7e7ce7b5e1c80cda187c827",
        )
        source = inspect.getsource(EPollReactor.doPoll)
        self.assertIn("log.callWithLogger(selectable, _drdw, selectable, fd, event)", source)
        self.assertTrue(callable(_twistedcompat.doPollWithoutLogContext))


class LoggingBegunCanaryTests(SynchronousTestCase):
    """L{_twistedcompat.loggingBegun} reads C{LogBeginner._temporaryObserver}."""

    def test_tracksBeginLoggingTo(self) -> None:
        """
        A fresh C{LogBeginner} has not begun; after C{beginLoggingTo} it
        has (the private attribute still means what it meant).
        """
        import io
        import types

        from twisted.logger import LogBeginner, LogPublisher

        fakeWarnings = types.SimpleNamespace(showwarning=warnings.showwarning)
        beginner = LogBeginner(LogPublisher(), io.StringIO(), sys, fakeWarnings)
        self.assertFalse(_twistedcompat.loggingBegun(beginner))
        beginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
        self.assertTrue(_twistedcompat.loggingBegun(beginner))


class ExitSignalCanaryTests(SynchronousTestCase):
    """How twistd re-raises the stopping signal, which L{forgetExitSignal} clears."""

    def test_twistdReraisesTheReactorsSignal(self) -> None:
        """
        The reactor notes the signal it stopped for in C{_exitSignal}
        (C{None} by default), twistd copies it from the reactor after the
        run and re-raises it: clearing the attribute before the reactor's
        run ends is what makes twistd exit normally.
        """
        from twisted.application import app
        from twisted.internet.base import ReactorBase
        from twisted.scripts import twistd

        self.assertIsNone(ReactorBase._exitSignal)
        for handler in (ReactorBase.sigTerm, ReactorBase.sigInt):
            self.assertIn("self._exitSignal = number", inspect.getsource(handler))
        self.assertIn(
            "self._exitSignal = reactor._exitSignal",
            inspect.getsource(app.ApplicationRunner.startReactor),
        )
        self.assertIn("app._exitWithSignal(runner._exitSignal)", inspect.getsource(twistd.runApp))

    def test_forget(self) -> None:
        """
        L{forgetExitSignal} clears a noted signal and leaves a reactor
        without the attribute alone.
        """

        class Noted:
            _exitSignal: int | None = 15

        noted = Noted()
        forgetExitSignal(noted)
        self.assertIsNone(noted._exitSignal)
        bare = object()
        forgetExitSignal(bare)
        self.assertFalse(hasattr(bare, "_exitSignal"))


class AcceptErrorCanaryTests(SynchronousTestCase):
    """What L{throttleAcceptErrors} filters is what Twisted's accept loop logs."""

    def test_portLogsThroughItsLogger(self) -> None:
        """
        C{tcp.Port.doRead} (which C{unix.Port} inherits) hands the accept
        loop's buffered events to C{self._logger.observer}, a C{Logger}
        class attribute; the loop logs the formats we match.
        """
        from twisted.logger import Logger

        self.assertIsInstance(tcp.Port._logger, Logger)
        self.assertIs(unix.Port.doRead, tcp.Port.doRead)
        source = inspect.getsource(tcp.Port.doRead)
        self.assertIn("_BuffersLogs(", source)
        self.assertIn("self._logger.namespace, self._logger.observer", source)
        accept = inspect.getsource(tcp._accept)
        for fmt in (
            _twistedcompat._EMFILE_RELEASE,
            _twistedcompat._EMFILE_CLOSED,
            _twistedcompat._EMFILE_REARM,
            _twistedcompat._COULD_NOT_ACCEPT,
        ):
            self.assertIn(fmt.split("{")[0].rstrip(" ("), accept.replace('" "', ""))


class AcceptRefusalsTests(SynchronousTestCase):
    """Refused accepts become one warning every 10 s, with the count."""

    def setUp(self) -> None:
        from twisted.internet.task import Clock
        from twisted.logger import Logger

        self.clock = Clock()
        self.events: list[dict] = []
        self.forwarded: list[dict] = []
        self.refusals = AcceptRefusals(Logger(observer=self.events.append), self.clock)

        class Port:
            _logger = Logger(observer=self.forwarded.append)

        self.port = Port()
        throttleAcceptErrors(self.port, self.refusals)

    def acceptLoop(self, refused: int, error: str = "") -> None:
        """Log what Twisted's accept loop logs when it refuses C{refused} connections."""
        from twisted.logger import Logger

        log = Logger(namespace=self.port._logger.namespace, observer=self.port._logger.observer)
        if error:
            for _ in range(refused):
                log.info(_twistedcompat._COULD_NOT_ACCEPT, acceptError=error)
            return
        log.info(_twistedcompat._EMFILE_RELEASE)
        for _ in range(refused):
            log.info(_twistedcompat._EMFILE_CLOSED, address=("127.0.0.1", 5))
        log.info(_twistedcompat._EMFILE_REARM)

    def warnings(self) -> list[str]:
        from twisted.logger import LogLevel, formatEvent

        self.assertEqual({e["log_level"] for e in self.events} - {LogLevel.warn}, set())
        return [formatEvent(e) for e in self.events]

    def test_throttled(self) -> None:
        """
        A burst of 30 refusals in one accept loop is one warning naming
        the count, C{RLIMIT_NOFILE}'s value and the remedies; 100 more
        within 10 s are one more warning 10 s later; then nothing, and a
        refusal after a quiet period is reported in the same turn again.
        Other events of the port go where they went.
        """
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.acceptLoop(30)
        self.assertEqual(self.warnings(), [])
        self.clock.advance(0)
        [first] = self.warnings()
        self.assertIn("refused 30 connection(s)", first)
        self.assertIn(f"open-file limit (RLIMIT_NOFILE {soft})", first)
        self.assertIn("LimitNOFILE=", first)
        self.assertIn("--max-connections", first)
        for _ in range(10):
            self.acceptLoop(10)
            self.clock.advance(0.9)
        self.assertEqual(len(self.warnings()), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.warnings()), 2)
        self.assertIn("refused 100 connection(s)", self.warnings()[1])
        self.clock.advance(60)
        self.assertEqual(len(self.warnings()), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.acceptLoop(1, "ENFILE")
        self.clock.advance(0)
        self.assertIn("the system is at its open-file limit", self.warnings()[2])
        self.acceptLoop(3, "ECONNABORTED")
        self.port._logger.info("something else")
        self.assertEqual(
            [e["log_format"] for e in self.forwarded],
            [_twistedcompat._COULD_NOT_ACCEPT] * 3 + ["something else"],
        )

    def test_otherPortsLeftAlone(self) -> None:
        """A port without Twisted's C{_logger} is left as it is."""
        port = object()
        throttleAcceptErrors(port, self.refusals)
        self.assertFalse(hasattr(port, "_logger"))


class ReactorHasRunCanaryTests(SynchronousTestCase):
    """L{reactorHasRun} reads Twisted's C{ReactorBase._startedBefore}."""

    def test_startedBeforeAfterARun(self) -> None:
        """
        A fresh reactor has not run; once it ran and stopped, it has, and
        C{run()} raises C{ReactorNotRestartable} (what L{reactorHasRun}
        predicts); a test double without the attribute never ran.
        """
        r = SelectReactor()
        self.assertFalse(reactorHasRun(r))
        r.callWhenRunning(lambda: self.assertFalse(reactorHasRun(r)))
        r.callWhenRunning(r.stop)
        r.run(installSignalHandlers=False)
        self.assertTrue(reactorHasRun(r))
        self.assertRaises(ReactorNotRestartable, r.run, installSignalHandlers=False)
        self.assertFalse(reactorHasRun(MemoryReactorClock()))
