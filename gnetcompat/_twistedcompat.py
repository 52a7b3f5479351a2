# -*- test-case-name: tests.test_twistedcompat -*-
"""
Where gnetcompat leans on Twisted internals, and where Twisted's exception
types are turned into the built-in ones a gnet user catches.

Twisted's TCP transport drops the errno of a failed C{recv}/C{send}: it
returns the bare C{main.CONNECTION_LOST} (C{tcp.Connection.doRead} and
C{writeSomeData}), so C{connectionLost} cannot tell a reset from any other
loss.  gnet hands the syscall error to C{OnClose} (C{read: connection reset
by peer}).  L{keepSocketErrors} gives a plain TCP transport the same two
methods with one change: the error is returned as a L{SocketError}, still a
C{ConnectionLost} for every Twisted consumer, carrying the C{OSError}.
C{tests.test_twistedcompat} notices when Twisted changes these methods.

Twisted's listening unix C{Port} unlinks its path when it stops listening
(C{unix.Port.connectionLost}), an adopted socket's too, and raises when the
file is already gone.  The file of a socket shared by worker processes, or
passed by systemd, is not any one port's to remove: L{UnixPortKeepingFile}
leaves it in place, and the engine that created the file removes it.

The rest of gnetcompat's uses of Twisted internals live here too, each
pinned by a canary in C{tests.test_twistedcompat}: the write buffer of a
C{FileDescriptor} (L{writeBacklog}, L{sendNow}'s direct send, behind the
capability check L{hasWriteBuffer}, with C{transport.write} as the public
fallback), the TLS layer under a listener or a dial (L{GnetTLSFactory}: the
choice of C{TLSMemoryBIOProtocol}, the handshake deadline, the socket
transport under the TLS one, the TLS protocol's plaintext buffer
L{tlsPlaintextBuffered}, its OpenSSL connection L{tlsConnection}),
the endpoint-description parser (L{twistedParse}), the adoption of a
listening unix socket (L{adoptUnixPortKeepingFile}), the epoll reactor's
C{doPoll} (L{doPollWithoutLogContext}, for L{gnetcompat.reactor}), the
signal a reactor stopped for (L{forgetExitSignal}), the log of a
listening port's accept loop (L{throttleAcceptErrors}) and whether a
reactor has already run (L{reactorHasRun}, for a clear error instead of
C{ReactorNotRestartable}).
"""

from __future__ import annotations

import errno
import operator
import os
import resource
import socket
from collections.abc import Callable
from typing import Any, cast

from OpenSSL.SSL import Connection as OpenSSLConnection
from twisted.internet import endpoints, tcp, unix
from twisted.internet import error as terror
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
)
from twisted.logger import ILogObserver, Logger, globalLogBeginner
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.util import untilConcludes

from .errors import ErrEOF, GnetError

__all__ = [
    "AcceptRefusals",
    "GnetTLSFactory",
    "SocketError",
    "TLSCreator",
    "UnixPortKeepingFile",
    "adoptUnixPortKeepingFile",
    "awaitHandshake",
    "builtinError",
    "directSocket",
    "doPollWithoutLogContext",
    "forgetExitSignal",
    "hasWriteBuffer",
    "isTLS",
    "keepSocketErrors",
    "loggingBegun",
    "plaintextWaiting",
    "rawTransport",
    "sendNow",
    "throttleAcceptErrors",
    "tlsConnection",
    "tlsPlaintextBuffered",
    "twistedParse",
    "writeBacklog",
]


class SocketError(terror.ConnectionLost):
    """
    A C{ConnectionLost} that keeps the C{OSError} of the failed syscall
    (C{osError}, its message prefixed with the syscall as gnet's are).
    """

    def __init__(self, syscall: str, err: OSError) -> None:
        code = err.errno
        if code is None:
            self.osError = err
        else:
            # OSError(errno, text) builds the matching subclass (ConnectionResetError, ...)
            self.osError = OSError(code, f"{syscall}: {err.strerror}")
        super().__init__(str(self.osError))


class _KeepErrors:
    """C{doRead}/C{writeSomeData} of C{tcp.Connection}, returning L{SocketError}s."""

    def doRead(self: Any) -> Any:
        try:
            data = self.socket.recv(self.bufferSize)
        except OSError as se:
            if se.args[0] == errno.EWOULDBLOCK:
                return None
            return SocketError("read", se)
        return self._dataReceived(data)

    def writeSomeData(self: Any, data: bytes) -> Any:
        try:
            return untilConcludes(self.socket.send, memoryview(data)[: self.SEND_LIMIT])
        except OSError as se:
            if se.args[0] in (errno.EWOULDBLOCK, errno.ENOBUFS):
                return 0
            return SocketError("write", se)


class _Server(_KeepErrors, tcp.Server):
    """C{tcp.Server} keeping socket errors."""


class _Client(_KeepErrors, tcp.Client):
    """C{tcp.Client} keeping socket errors."""


_SWAP = {tcp.Server: _Server, tcp.Client: _Client}


def keepSocketErrors(transport: Any) -> None:
    """
    Make a plain TCP transport report the C{OSError} of a failed read or
    write (as a L{SocketError}) instead of a bare C{ConnectionLost}.  Other
    transports (unix, TLS, test doubles) are left as they are.  The class
    is swapped for a subclass that overrides two methods: nothing is added
    per call or per connection.
    """
    kind = _SWAP.get(type(transport))
    if kind is not None:
        transport.__class__ = kind


class UnixPortKeepingFile(unix.Port):
    """
    A listening unix C{Port} that does not unlink its socket file when it
    stops listening: C{unix.Port.connectionLost} without the C{os.unlink}.
    Whoever created the file removes it (L{gnetcompat._engine.Engine} for
    the sockets it bound, the multicore parent for the one its workers
    share; never for a socket systemd passed).
    """

    def connectionLost(self, reason: Any) -> None:
        if self.lockFile is not None:
            self.lockFile.unlock()
        tcp.Port.connectionLost(self, reason)


def builtinError(exc: BaseException, where: str = "") -> BaseException:
    """
    The exception a gnet user catches for C{exc}: Twisted's connection
    errors become built-in C{OSError}s (refused: C{ConnectionRefusedError},
    time-outs: C{TimeoutError}, DNS: C{socket.gaierror}), naming C{where}
    (e.g. C{dial tcp 127.0.0.1:9}); a clean close is L{ErrEOF}.  Anything
    else (gnetcompat's own errors, built-ins) is returned unchanged.
    """
    if isinstance(exc, GnetError) or not isinstance(exc, Exception):
        return exc
    prefix = f"{where}: " if where else ""
    if isinstance(exc, SocketError):
        return exc.osError
    if isinstance(exc, terror.ConnectionDone):
        return ErrEOF("read: EOF")
    if isinstance(exc, terror.ConnectionRefusedError):
        return ConnectionRefusedError(errno.ECONNREFUSED, f"{prefix}{_os('ECONNREFUSED')}")
    if isinstance(exc, (terror.TCPTimedOutError, terror.TimeoutError)):
        return TimeoutError(errno.ETIMEDOUT, f"{prefix}{_os('ETIMEDOUT')}")
    if isinstance(exc, terror.DNSLookupError):
        return socket.gaierror(socket.EAI_NONAME, f"{prefix}{exc}")
    if isinstance(exc, terror.ConnectionLost):
        # a hang-up/error event without a readable error: gnet's bare io.EOF
        return ErrEOF("EOF")
    if isinstance(exc, terror.ConnectError):
        code = exc.osError if isinstance(exc.osError, int) else None
        if code is None and isinstance(exc.osError, OSError):
            code = exc.osError.errno
        if code:
            return OSError(code, f"{prefix}{_strerror(code)}")
        return OSError(f"{prefix}{exc}")
    if isinstance(exc, terror.CannotListenError):
        inner = exc.socketError
        if isinstance(inner, OSError) and inner.errno:
            return OSError(inner.errno, f"{prefix}{inner.strerror}")
        return OSError(f"{prefix}{exc}")
    if type(exc).__module__.startswith("twisted."):
        return OSError(f"{prefix}{exc}")
    if isinstance(exc, OSError) and where and exc.errno and not isinstance(exc, socket.gaierror):
        return OSError(exc.errno, f"{prefix}{exc.strerror}")
    if isinstance(exc, socket.gaierror) and where:
        return socket.gaierror(exc.errno, f"{prefix}{exc.strerror}")
    return exc


def _strerror(code: int) -> str:
    return os.strerror(code).lower()


def _os(name: str) -> str:
    return _strerror(getattr(errno, name))


# -- a FileDescriptor's write buffer --------------------------------------------

#: the attributes in which Twisted's C{FileDescriptor} keeps unsent bytes:
#: C{dataBuffer} from C{offset}, plus C{_tempDataLen} bytes not yet joined
_BUFFER_ATTRS = ("dataBuffer", "offset", "_tempDataLen", "connected", "disconnecting")
#: L{_BUFFER_ATTRS} in one call: the first that is missing raises
_readBufferAttrs = operator.attrgetter(*_BUFFER_ATTRS)

#: the transports whose socket we may send on directly (plain TCP and unix)
_DIRECT_KINDS: tuple = (tcp.Server, tcp.Client, unix.Server, unix.Client)


def hasWriteBuffer(transport: Any) -> bool:
    """
    The capability check for L{writeBacklog} and L{sendNow}: whether
    C{transport} keeps its write buffer in the attributes Twisted's
    C{FileDescriptor} has used so far.  False (TLS, test doubles, or a
    Twisted that changed them): callers use only the public API then
    (C{transport.write}; no C{WriteBufferCap} push-back, no backlog count).
    Checked once per connection, not per write: one C{attrgetter} call
    (a loop of C{hasattr} cost a generator and five calls per check).
    """
    try:
        _readBufferAttrs(transport)
    except AttributeError:
        return False
    return True


def directSocket(transport: Any) -> socket.socket | None:
    """
    The socket of a plain TCP/unix transport that L{sendNow} may send on
    directly, or C{None} (every other transport, and any transport whose
    write buffer fails L{hasWriteBuffer}: C{sendNow} then only calls
    C{transport.write}).
    """
    if isinstance(transport, _DIRECT_KINDS) and hasWriteBuffer(transport):
        return transport.socket
    return None


def writeBacklog(transport: Any) -> int:
    """
    The bytes a Twisted C{FileDescriptor} transport (TCP, unix) holds in its
    write buffer, not yet taken by the kernel.  Twisted has no public
    accessor: this reads C{dataBuffer}, C{offset} and C{_tempDataLen}.

    @raise AttributeError: not a C{FileDescriptor} (L{hasWriteBuffer} is False).
    """
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # noqa: SLF001  (Twisted has no public accessor; canary: tests.test_twistedcompat)


def sendNow(transport: Any, sock: socket.socket | None, data: bytes) -> bool:
    """
    Write C{data} the way gnet does: when nothing is queued, try the send
    syscall at once and queue only what the kernel did not take (Twisted
    would arm write-readiness and send on the next reactor iteration: two
    extra epoll calls per message).  Order is kept: with bytes already
    queued, C{data} is queued behind them.  C{sock} is L{directSocket}'s
    answer; with C{None} this is C{transport.write(data)} (the public
    fallback).  The per-message path: a plain function, its checks inline.

    @return: whether bytes were left queued in the transport (the caller
        then checks its outbound limit).
    """
    if (
        sock is not None
        and not transport._tempDataLen  # noqa: SLF001  (see writeBacklog)
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
    ):
        try:
            n = sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0  # Twisted's own write path will meet the error and close
        if n == len(data):
            return False
        if n:
            data = data[n:]
    transport.write(data)
    return True


def tlsPlaintextBuffered(transport: Any) -> int:
    """
    Plaintext a C{TLSMemoryBIOProtocol} holds (written before the handshake
    completed, or while OpenSSL waits to read): its C{_appSendBuffer}, a
    list of bytes; 0 when the attribute is not there.
    """
    return sum(map(len, getattr(transport, "_appSendBuffer", ())))


# -- the TLS layer (twisted.protocols.tls) ---------------------------------------


#: what C{TLSMemoryBIOFactory} takes as its C{contextFactory} (Twisted's own
#: alias for it lives in a private module)
TLSCreator = (
    IOpenSSLServerConnectionCreator | IOpenSSLClientConnectionCreator | IOpenSSLContextFactory
)


class GnetTLSFactory(TLSMemoryBIOFactory):
    """
    Twisted's TLS factory under a L{gnetcompat._protocol.GnetFactory}, with
    three changes, each pinned by a canary: its protocol is the plain
    C{TLSMemoryBIOProtocol}, not Twisted's default C{BufferingTLSTransport}
    (L{Conn} already joins a callback's writes, and the buffering transport
    would delay every reply by a reactor iteration); it carries the
    handshake deadline (L{awaitHandshake} reads it); and when a listener's
    port stops, it aborts the connections still in their handshake (no
    L{Conn} yet), which would otherwise outlive the port.

    @ivar handshakeTimeout: seconds a peer has to complete the handshake.
    """

    protocol = TLSMemoryBIOProtocol

    def __init__(
        self,
        creator: TLSCreator,
        isClient: bool,
        wrapped: IProtocolFactory,
        clock: IReactorTime,
        handshakeTimeout: float,
    ) -> None:
        super().__init__(creator, isClient, wrapped, clock)
        self.handshakeTimeout = handshakeTimeout

    def stopFactory(self) -> None:
        # WrappingFactory.protocols: every TLS protocol of this factory still connected
        for p in list(self.protocols):
            if getattr(p.wrappedProtocol, "conn", None) is None:
                p.abortConnection()
        super().stopFactory()


def isTLS(transport: object) -> bool:
    """Whether C{transport} is a TLS transport."""
    return ISSLTransport.providedBy(transport)


def awaitHandshake(
    proto: Any, clock: IReactorTime, onTimeout: Callable[[], object], defaultTimeout: float
) -> IDelayedCall | None:
    """
    For a protocol over TLS: arm the handshake deadline (C{onTimeout} then
    runs) and return the delayed call; C{None} for any other transport.
    The deadline is the L{GnetTLSFactory}'s (the TLS protocol's C{factory});
    C{defaultTimeout} for a TLS transport built by another factory.
    """
    t = proto.transport
    if not ISSLTransport.providedBy(t):
        return None
    timeout = getattr(getattr(t, "factory", None), "handshakeTimeout", defaultTimeout)
    return clock.callLater(timeout, onTimeout)


def rawTransport(transport: Any) -> Any:
    """The socket transport under a TLS transport (C{transport} itself otherwise)."""
    if ISSLTransport.providedBy(transport):
        inner = getattr(transport, "transport", None)
        if inner is not None:
            return inner
    return transport


def plaintextWaiting(transport: Any) -> int:
    """
    Bytes of a TLS transport not yet taken by the kernel: plaintext the TLS
    layer holds (written before the handshake completed, or while OpenSSL
    waits to read) plus the encrypted bytes queued in the socket transport
    (each 16 KiB record adds 22-29 bytes of framing).  Reads Twisted's
    C{TLSMemoryBIOProtocol._appSendBuffer} (L{tlsPlaintextBuffered}).
    """
    pending = tlsPlaintextBuffered(transport)
    inner = getattr(transport, "transport", None)
    if hasWriteBuffer(inner):
        pending += writeBacklog(inner)
    return pending


def tlsConnection(transport: object) -> tuple[OpenSSLConnection, bytes | None] | None:
    """
    The OpenSSL C{Connection} of a TLS transport and its ALPN result
    (C{None}: none negotiated), or C{None} for any other transport.
    C{getHandle} and C{negotiatedProtocol} are C{TLSMemoryBIOProtocol}'s,
    beyond what C{ISSLTransport} declares.
    """
    if not isinstance(transport, TLSMemoryBIOProtocol):
        return None
    return cast(OpenSSLConnection, transport.getHandle()), transport.negotiatedProtocol


# -- endpoint descriptions ------------------------------------------------------


def twistedParse(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint description exactly as Twisted's endpoint parser
    does (C{:} separators, C{key=value}, backslash escapes): Twisted's
    C{endpoints._parse}, which has no public equivalent.
    """
    args, kw = endpoints._parse(description)  # noqa: SLF001  (no public parser; canary: tests.test_twistedcompat)
    return [str(a) for a in args], {str(k): str(v) for k, v in kw.items()}


# -- adopting a listening unix socket ---------------------------------------------


def adoptUnixPortKeepingFile(reactor: Any, fd: int, factory: Any) -> UnixPortKeepingFile:
    """
    A L{UnixPortKeepingFile} for the listening unix socket C{fd}, built as
    C{reactor.adoptStreamPort} builds a unix port (C{unix.Port.
    _fromListeningDescriptor}, Twisted's own constructor for it), not yet
    listening: the caller sets C{mode} and C{backlog} first.
    """
    return UnixPortKeepingFile._fromListeningDescriptor(reactor, fd, factory)  # noqa: SLF001  (adoptStreamPort's own constructor; canary: tests.test_twistedcompat)


# -- the epoll reactor's doPoll -----------------------------------------------------


def doPollWithoutLogContext(reactor: Any, timeout: float | None) -> None:
    """
    C{EPollReactor.doPoll} without C{log.callWithLogger} around each event
    (see L{gnetcompat.reactor}): the same poll, the same dispatch through
    C{_doReadOrWrite}, which still catches and logs what a selectable
    raises.  A copy of Twisted's method; its canary pins the source.
    """
    if timeout is None:
        timeout = -1
    selectables = reactor._selectables  # noqa: SLF001  (EPollReactor internals, copied doPoll)
    try:
        events = reactor._poller.poll(timeout, len(selectables))  # noqa: SLF001  (copied doPoll)
    except OSError as err:
        if err.errno == errno.EINTR:
            return
        raise
    drdw = reactor._doReadOrWrite  # noqa: SLF001  (copied doPoll)
    for fd, event in events:
        selectable: Any = selectables.get(fd)
        if selectable is not None:
            drdw(selectable, fd, event)


def loggingBegun(beginner: Any = None) -> bool:
    """
    Whether C{globalLogBeginner.beginLoggingTo} has been called (by twistd,
    by the program, or by L{gnetcompat._logging}): until then Twisted keeps
    events in a buffer and shows none.  Twisted has no public accessor: its
    C{LogBeginner} drops C{_temporaryObserver} when logging begins.
    """
    if beginner is None:
        beginner = globalLogBeginner
    return beginner._temporaryObserver is None  # noqa: SLF001  (no public accessor; canary: tests.test_twistedcompat)


# -- the signal twistd re-raises ------------------------------------------------------


def forgetExitSignal(reactor: Any) -> None:
    """
    Let a process that stopped gracefully on C{SIGTERM}/C{SIGINT} exit with
    status 0.  Twisted's reactor notes the signal that stopped it
    (C{ReactorBase.sigTerm}/C{sigInt} set C{_exitSignal}), and twistd
    (C{ApplicationRunner.startReactor}, then C{twistd.runApp}) re-raises
    it once shut down, so the process ends "killed by SIGTERM" (a shell
    says 143) even after a clean drain.  Clearing the attribute once the
    engine stopped makes twistd end normally instead; a reactor without
    the attribute is left alone.  (An engine that failed while stopping
    keeps Twisted's behaviour.)
    """
    if getattr(reactor, "_exitSignal", None) is not None:
        reactor._exitSignal = None  # noqa: SLF001  (no public way; canary: tests.test_twistedcompat)


# -- the log of a listening port's accept loop ---------------------------------------

#: what Twisted's accept loop (C{tcp._accept}) logs, each at info, when the
#: process is out of descriptors: three events for every refused connection
_EMFILE_RELEASE = "EMFILE encountered; releasing reserved file descriptor."
_EMFILE_CLOSED = "EMFILE recovery: Closed socket from {address}"
_EMFILE_REARM = "Re-reserving EMFILE recovery file descriptor."
#: ... and for the other resource errors (ENFILE, ENOBUFS, ENOMEM; and
#: ECONNABORTED, a client that gave up, which is left as it is)
_COULD_NOT_ACCEPT = "Could not accept new connection ({acceptError})"


class AcceptRefusals:
    """
    Connections a listener could not accept for lack of a resource
    (descriptors, memory), logged as one warning at most every
    L{INTERVAL} seconds with the count since the last one, the limit
    (C{RLIMIT_NOFILE}) and the remedies, instead of Twisted's three
    unthrottled lines per refused connection (L{throttleAcceptErrors}).
    The first refusals are logged at the end of the reactor turn that
    met them; those within the next L{INTERVAL} seconds are counted and
    logged together at its end.

    @ivar count: refusals not logged yet.
    """

    #: seconds between two warnings
    INTERVAL = 10.0

    def __init__(self, log: Logger, clock: Any) -> None:
        self.log = log
        self.clock = clock
        self.count = 0
        self._reason = "EMFILE"
        self._call: Any = None

    def refused(self, reason: str) -> None:
        """One connection refused because of C{reason} (an errno name)."""
        self.count += 1
        self._reason = reason
        if self._call is None:
            # after this reactor turn: a burst refused in one accept loop is one line
            self._call = self.clock.callLater(0, self._report)

    def _report(self) -> None:
        self._call = None
        if not self.count:
            return
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if self._reason == "EMFILE":
            why = f"this process is at its open-file limit (RLIMIT_NOFILE {soft})"
        elif self._reason == "ENFILE":
            why = "the system is at its open-file limit (fs.file-max)"
        else:
            why = f"the kernel is out of memory for sockets ({self._reason})"
        self.log.warn(
            "refused {count} connection(s) since the last such warning: {why}; raise the "
            "limit (LimitNOFILE= in the systemd unit, ulimit -n) or keep connections below it "
            "(gnetecho --max-connections); at most one such warning every {interval:g} s",
            count=self.count,
            why=why,
            interval=self.INTERVAL,
        )
        self.count = 0
        self._call = self.clock.callLater(self.INTERVAL, self._report)


def throttleAcceptErrors(port: Any, refusals: AcceptRefusals) -> None:
    """
    Send what the accept loop of the listening C{port} (a C{tcp.Port} or
    C{unix.Port}) logs about refused connections to C{refusals}; its other
    events go where they went.  Twisted's C{Port.doRead} buffers the
    accept loop's events and hands them to C{self._logger.observer}: this
    gives the port a C{_logger} of its own whose observer filters them.  A
    port without that attribute is left alone.
    """
    original = getattr(port, "_logger", None)
    if not isinstance(original, Logger):
        return
    forward = original.observer

    def observer(event: Any) -> None:
        fmt = event.get("log_format")
        if fmt == _EMFILE_CLOSED:
            refusals.refused("EMFILE")
        elif fmt in (_EMFILE_RELEASE, _EMFILE_REARM):
            pass
        elif fmt == _COULD_NOT_ACCEPT and event.get("acceptError") != "ECONNABORTED":
            refusals.refused(str(event.get("acceptError")))
        else:
            forward(event)

    port._logger = Logger(namespace=original.namespace, observer=cast(ILogObserver, observer))  # noqa: SLF001  (doRead logs through it; canary: tests.test_twistedcompat)


# -- whether a reactor can still run -----------------------------------------------


def reactorHasRun(reactor: Any) -> bool:
    """
    Whether C{reactor} ran and stopped: C{run()} would raise
    C{ReactorNotRestartable}.  Twisted keeps it in C{ReactorBase.
    _startedBefore}; reactors without it (test doubles) never ran.
    """
    return bool(getattr(reactor, "_startedBefore", False)) and not reactor.running
