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
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import error as terror
from twisted.internet import tcp, unix
from twisted.python.util import untilConcludes

from .errors import ErrEOF, GnetError

__all__ = ["SocketError", "keepSocketErrors", "builtinError", "UnixPortKeepingFile"]


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
        return ConnectionRefusedError(
            errno.ECONNREFUSED, f"{prefix}{_os('ECONNREFUSED')}"
        )
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
    import os

    return os.strerror(code).lower()


def _os(name: str) -> str:
    return _strerror(getattr(errno, name))
