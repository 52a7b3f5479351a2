# -*- test-case-name: tests.test_options -*-
"""
gnet's options: the L{Options} object and the C{With*} functional options.

Options apply in order; C{WithOptions(o)} replaces everything applied before
it, as in gnet.  Values are checked when the engine starts
(L{Options.normalized}), and a bad value raises L{ErrInvalidOption} naming
the option.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Callable  # noqa: UP035  (typing's alias takes the Option.__doc__ below)

from ._tls import ClientTLS as _ClientTLS
from ._tls import ServerTLS, TLSConfig, TLSError, isServerTLS
from .errors import (
    ErrInvalidOption,
    ErrInvalidTimeDuration,
    ErrTooManyEventLoopThreads,
    ErrUnsupportedOp,
)

__all__ = [
    "Options",
    "Option",
    "TCPSocketOpt",
    "TCPNoDelay",
    "TCPDelay",
    "LoadBalancing",
    "RoundRobin",
    "LeastConnections",
    "SourceAddrHash",
    "MaxStreamBufferCap",
    "loadOptions",
    "WithOptions",
    "WithMulticore",
    "WithNumEventLoop",
    "WithProcessWorkers",
    "WithTickEveryWorker",
    "WithConnRegistry",
    "WithLoadBalancing",
    "WithReusePort",
    "WithReuseAddr",
    "WithTicker",
    "WithTCPKeepAlive",
    "WithTCPKeepInterval",
    "WithTCPKeepCount",
    "WithTCPNoDelay",
    "WithReadBufferCap",
    "WithWriteBufferCap",
    "WithSocketRecvBuffer",
    "WithSocketSendBuffer",
    "WithLockOSThread",
    "WithEdgeTriggeredIO",
    "WithEdgeTriggeredIOChunk",
    "WithMulticastInterfaceIndex",
    "WithBindToDevice",
    "WithLogger",
    "WithLogPath",
    "WithLogLevel",
    "WithBacklog",
    "WithShutdownTimeout",
    "WithUnixSocketMode",
    "WithTLS",
    "WithClientTLS",
]

#: Default for ReadBufferCap and WriteBufferCap, as gnet's package variable.
MaxStreamBufferCap = 64 * 1024

_MAX_LOOPS = 256


class TCPSocketOpt(IntEnum):
    """Whether TCP_NODELAY is set (gnet's default) or Nagle is left on."""

    TCPNoDelay = 0
    TCPDelay = 1


TCPNoDelay = TCPSocketOpt.TCPNoDelay
TCPDelay = TCPSocketOpt.TCPDelay


class LoadBalancing(IntEnum):
    """How new connections are spread over event loops (workers)."""

    RoundRobin = 0
    LeastConnections = 1
    SourceAddrHash = 2


RoundRobin = LoadBalancing.RoundRobin
LeastConnections = LoadBalancing.LeastConnections
SourceAddrHash = LoadBalancing.SourceAddrHash


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ErrInvalidOption(f"{name}: expected seconds (a number or timedelta), got {value!r}")
    return float(value)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ErrInvalidOption(f"{name}: expected an integer, got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ErrInvalidOption(f"{name}: expected True or False, got {value!r}")
    return value


def _bufferCap(value: int) -> int:
    """gnet's rounding: <= 0 -> default, 1..1024 -> 1024, else next power of two."""
    if value <= 0:
        return MaxStreamBufferCap
    if value <= 1024:
        return 1024
    return 1 << (value - 1).bit_length()


MAX_BACKLOG = 65535  # listen() takes a C int; Linux caps it at somaxconn (at most 65535 here)


@dataclass
class Options:
    """
    Every gnet option, with gnet's field names and defaults, except
    C{ReuseAddr}: on, as Go's C{net.Listen} and Twisted set it (gnet: off),
    so a restart binds while old connections are in C{TIME_WAIT}.

    The last ten fields are gnetcompat extensions: C{ProcessWorkers},
    C{TickEveryWorker} and C{ConnRegistry} (the process-worker mode, see
    L{WithProcessWorkers}), C{Backlog} (listen
    backlog; 0 = the OS maximum, as gnet), C{ShutdownTimeout} (seconds a
    graceful shutdown waits for connections to flush before aborting them,
    and how long a closed connection's unsent bytes may make no progress
    before they are dropped), C{UnixSocketMode} (the permission bits of unix
    socket files; C{None}: the umask decides), C{Clock} (an C{IReactorTime}
    driving the ticker, for tests), C{Reactor}, and C{TLS}/C{ClientTLS}
    (native TLS: L{gnetcompat.WithTLS}, L{gnetcompat.WithClientTLS}).
    """

    Multicore: bool = False
    NumEventLoop: int = 0
    LB: LoadBalancing = LoadBalancing.RoundRobin
    ReuseAddr: bool = True
    ReusePort: bool = False
    MulticastInterfaceIndex: int = 0
    BindToDevice: str = ""
    ReadBufferCap: int = 0
    WriteBufferCap: int = 0
    LockOSThread: bool = False
    Ticker: bool = False
    TCPKeepAlive: float = 0.0
    TCPKeepInterval: float = 0.0
    TCPKeepCount: int = 0
    TCPNoDelay: TCPSocketOpt = TCPSocketOpt.TCPNoDelay
    SocketRecvBuffer: int = 0
    SocketSendBuffer: int = 0
    EdgeTriggeredIO: bool = False
    EdgeTriggeredIOChunk: int = 0
    LogPath: str = ""
    LogLevel: int = 0
    Logger: Any = None
    ProcessWorkers: int = 0
    TickEveryWorker: bool = False
    ConnRegistry: bool = False
    Backlog: int = 0
    ShutdownTimeout: float = 5.0
    UnixSocketMode: int | None = None
    Clock: Any = field(default=None, repr=False)
    Reactor: Any = field(default=None, repr=False)
    #: native TLS (gnetcompat): set with C{WithTLS}: each listener's setting by
    #: its address as given, C{None} for every listener without its own
    TLS: dict[str | None, ServerTLS] | None = field(default=None, repr=False)
    #: native TLS for dials (gnetcompat): set with C{WithClientTLS}
    ClientTLS: _ClientTLS | None = field(default=None, repr=False)

    def numLoops(self) -> int:
        """
        The number of event loops gnet would use: C{NumEventLoop} if > 0,
        else one per CPU with C{Multicore}, else 1; at most 256.  Without
        process workers they are loops of this process, sharing its reactor
        thread and the one handler (L{WithMulticore}).
        """
        if self.NumEventLoop > 0:
            n = self.NumEventLoop
        elif self.Multicore:
            n = os.cpu_count() or 1
        else:
            n = 1
        return min(n, _MAX_LOOPS)

    def numWorkers(self) -> int:
        """
        The number of worker processes (L{WithProcessWorkers}): 0 (none,
        the default: one process), the number given, or for C{True}
        C{NumEventLoop} if > 0, else one per CPU; at most 256.
        """
        w = self.ProcessWorkers
        if w is True:
            n = self.NumEventLoop if self.NumEventLoop > 0 else (os.cpu_count() or 1)
        elif w is False or not w:
            return 0
        else:
            n = w
        return min(n, _MAX_LOOPS)

    def serverTLS(self, address: str) -> ServerTLS | None:
        """
        The TLS setting of the stream listener at C{address} (as given):
        its own (C{WithTLS(address=...)}), else the engine-wide one, else
        C{None} (plain).
        """
        tls = self.TLS
        if not tls:
            return None
        value = tls.get(address)
        return value if value is not None else tls.get(None)

    def checkTLSAddresses(self, streamAddresses: Collection[str]) -> None:
        """
        @raise ErrInvalidOption: a C{WithTLS(address=...)} names none of
            C{streamAddresses} (the engine's tcp/unix addresses, as given).
        """
        for addr in self.TLS or {}:
            if addr is not None and addr not in streamAddresses:
                raise TLSError(
                    f"WithTLS(address={addr!r}): not one of the engine's tcp/unix addresses "
                    f"({', '.join(sorted(streamAddresses)) or 'none'})"
                )

    def normalized(self) -> Options:
        """
        Check every field and return a copy normalised as gnet does at start
        (buffer caps rounded, keep-alive defaults filled in).

        @raise ErrInvalidOption: naming the first bad option.
        @raise ErrTooManyEventLoopThreads: LockOSThread with more than 10000 loops.
        """
        o = replace(self)
        for name in (
            "Multicore",
            "ReuseAddr",
            "ReusePort",
            "LockOSThread",
            "Ticker",
            "EdgeTriggeredIO",
            "TickEveryWorker",
            "ConnRegistry",
        ):
            _bool(name, getattr(o, name))
        pw = o.ProcessWorkers
        if not isinstance(pw, bool) and (not isinstance(pw, int) or pw < 0):
            raise ErrInvalidOption(
                "ProcessWorkers (WithProcessWorkers): expected True, False or a number of "
                f"worker processes (0-{_MAX_LOOPS}), got {pw!r}"
            )
        if not isinstance(pw, bool) and pw > _MAX_LOOPS:
            raise ErrInvalidOption(
                f"ProcessWorkers (WithProcessWorkers): at most {_MAX_LOOPS} worker processes, "
                f"got {pw}"
            )
        for name in (
            "NumEventLoop",
            "MulticastInterfaceIndex",
            "ReadBufferCap",
            "WriteBufferCap",
            "TCPKeepCount",
            "SocketRecvBuffer",
            "SocketSendBuffer",
            "EdgeTriggeredIOChunk",
            "LogLevel",
            "Backlog",
        ):
            _int(name, getattr(o, name))
        for name in (
            "NumEventLoop",
            "TCPKeepCount",
            "SocketRecvBuffer",
            "SocketSendBuffer",
            "Backlog",
            "MulticastInterfaceIndex",
        ):
            if getattr(o, name) < 0:
                raise ErrInvalidOption(f"{name}: must not be negative, got {getattr(o, name)}")
        if o.Backlog > MAX_BACKLOG:
            raise ErrInvalidOption(
                f"Backlog (WithBacklog): at most {MAX_BACKLOG} (the kernel caps it at "
                f"net.core.somaxconn), got {o.Backlog}"
            )
        try:
            o.LB = LoadBalancing(o.LB)
        except ValueError:
            raise ErrInvalidOption(f"LB (WithLoadBalancing): unknown value {o.LB!r}") from None
        try:
            o.TCPNoDelay = TCPSocketOpt(o.TCPNoDelay)
        except ValueError:
            raise ErrInvalidOption(
                f"TCPNoDelay (WithTCPNoDelay): unknown value {o.TCPNoDelay!r}"
            ) from None
        if not isinstance(o.BindToDevice, str):
            raise ErrInvalidOption(
                f"BindToDevice: expected an interface name, got {o.BindToDevice!r}"
            )
        if o.BindToDevice and not sys.platform.startswith("linux"):
            raise ErrUnsupportedOp()
        if not isinstance(o.LogPath, str):
            raise ErrInvalidOption(f"LogPath: expected a path, got {o.LogPath!r}")
        o.TCPKeepAlive = _seconds("TCPKeepAlive", o.TCPKeepAlive)
        o.TCPKeepInterval = _seconds("TCPKeepInterval", o.TCPKeepInterval)
        o.ShutdownTimeout = _seconds("ShutdownTimeout", o.ShutdownTimeout)
        if o.ShutdownTimeout < 0:
            raise ErrInvalidOption(
                f"ShutdownTimeout: must not be negative, got {o.ShutdownTimeout}"
            )
        mode = o.UnixSocketMode
        if mode is not None and (
            isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777
        ):
            raise ErrInvalidOption(
                "UnixSocketMode (WithUnixSocketMode): permission bits 0o000-0o777 "
                f"or None, got {mode!r}"
            )
        if o.TLS is not None or o.ClientTLS is not None:
            _checkTLS(o)
        if o.LockOSThread and o.NumEventLoop > 10000:
            raise ErrTooManyEventLoopThreads()
        o.ReadBufferCap = _bufferCap(o.ReadBufferCap)
        o.WriteBufferCap = _bufferCap(o.WriteBufferCap)
        if o.EdgeTriggeredIOChunk > 0:
            o.EdgeTriggeredIO = True
            o.EdgeTriggeredIOChunk = 1 << (o.EdgeTriggeredIOChunk - 1).bit_length()
        elif o.EdgeTriggeredIO:
            o.EdgeTriggeredIOChunk = 1 << 20
        if o.TCPKeepAlive > 0:
            if o.TCPKeepInterval <= 0:
                o.TCPKeepInterval = o.TCPKeepAlive / 5
            if o.TCPKeepCount <= 0:
                o.TCPKeepCount = 5
            if int(o.TCPKeepAlive) < 1 or int(o.TCPKeepInterval) < 1:
                raise ErrInvalidTimeDuration(
                    "TCPKeepAlive/TCPKeepInterval: invalid time duration (whole seconds "
                    f"must be >= 1; got idle {o.TCPKeepAlive}s, interval {o.TCPKeepInterval}s)"
                )
        return o


def _checkTLS(o: Options) -> None:
    """
    Check the TLS options (from L{Options.normalized}): every server
    setting is usable and every L{TLSConfig} loads; process workers get
    file-based configs (each worker builds its own context from them).

    @raise ErrInvalidOption: naming the problem.
    """
    if o.TLS is not None:
        if not isinstance(o.TLS, dict):
            raise TLSError(f"TLS: set it with WithTLS(), got {o.TLS!r}")
        multi = o.numWorkers() > 0
        for value in o.TLS.values():
            if isinstance(value, TLSConfig):
                value.check()
            elif multi:
                raise TLSError(
                    "TLS: process workers load the certificate themselves: give "
                    "WithTLS(certFile, keyFile, ...) or a TLSConfig, not "
                    f"{type(value).__name__}"
                )
            elif not isServerTLS(value):
                raise TLSError(
                    "TLS: WithTLS takes certificate files, a TLSConfig, or a Twisted "
                    f"IOpenSSLServerConnectionCreator or CertificateOptions, not {value!r}"
                )
    if o.ClientTLS is not None:
        if not isinstance(o.ClientTLS, _ClientTLS):
            raise TLSError(f"ClientTLS: set it with WithClientTLS(), got {o.ClientTLS!r}")
        o.ClientTLS.check()


Option = Callable[[Options], Any]
Option.__doc__ = "A functional option: a callable that updates an L{Options} in place."


def loadOptions(*opts: Option | Options) -> Options:
    """
    Apply functional options (or whole L{Options} objects) in order.

    @raise ErrInvalidOption: an argument is neither.
    """
    o = Options()
    for opt in opts:
        if isinstance(opt, Options):
            o = replace(opt)
        elif callable(opt):
            res = opt(o)
            if isinstance(res, Options):
                o = res
        else:
            raise ErrInvalidOption(f"not an option: {opt!r}")
    return o


def _setter(name: str) -> Callable[[Any], Option]:
    def make(value: Any) -> Option:
        def apply(o: Options) -> None:
            setattr(o, name, value)

        apply.__name__ = f"With{name}"
        return apply

    return make


def WithOptions(options: Options) -> Option:
    """Replace every option with C{options} (earlier options are discarded)."""

    def apply(o: Options) -> Options:
        return replace(options)

    return apply


WithMulticore = _setter("Multicore")
WithMulticore.__doc__ = (
    "One event loop per CPU, as gnet: in ONE process, sharing the one handler (on CPython "
    "with a GIL the loops share the reactor thread; see WithProcessWorkers for parallelism)."
)
WithNumEventLoop = _setter("NumEventLoop")
WithNumEventLoop.__doc__ = (
    "The exact number of event loops (overrides Multicore), at most 256; with "
    "WithProcessWorkers(True), the number of worker processes."
)
WithLoadBalancing = _setter("LB")
WithLoadBalancing.__doc__ = (
    "How connections are spread over event loops (see the docs for what is honoured)."
)


def WithProcessWorkers(workers: bool | int) -> Option:
    """
    gnetcompat: serve from worker processes, B{each with its own copy of the
    handler} (handler state is not shared).  C{True}: one per CPU (or
    C{NumEventLoop} if set); a number: that many (1-256); C{False}/C{0}:
    off (the default: one process).  The engine-wide API
    (C{Engine.Broadcast}, C{Engine.AsyncWrite(handle, ...)},
    C{Conn.Handle()}, C{Engine.Counter}, C{CountConnections}) reaches
    every worker; C{OnTick} runs in worker 0 (L{WithTickEveryWorker}).
    """

    def apply(o: Options) -> None:
        o.ProcessWorkers = workers

    apply.__name__ = "WithProcessWorkers"
    return apply


WithTickEveryWorker = _setter("TickEveryWorker")
WithTickEveryWorker.__doc__ = (
    "gnetcompat, process workers: call OnTick in every worker (each with its own handler) "
    "instead of in worker 0 only."
)
WithConnRegistry = _setter("ConnRegistry")
WithConnRegistry.__doc__ = (
    "gnetcompat, process workers: every worker keeps a copy of the engine-wide table of "
    "connection handles, so Engine.Conns() lists the connections of all workers (each "
    "open and close is announced to every worker)."
)
WithReusePort = _setter("ReusePort")
WithReusePort.__doc__ = (
    "SO_REUSEPORT on listeners; in multicore mode each worker binds its own socket."
)
WithReuseAddr = _setter("ReuseAddr")
WithReuseAddr.__doc__ = (
    "SO_REUSEADDR on listeners: on by default, as Go's net.Listen (which gnet uses) "
    "and Twisted set it, so a restarted server can bind while its old connections "
    "are in TIME_WAIT (gnet's own default is off); WithReuseAddr(False) turns it off."
)
WithTicker = _setter("Ticker")
WithTicker.__doc__ = "Enable OnTick."
WithTCPKeepAlive = _setter("TCPKeepAlive")
WithTCPKeepAlive.__doc__ = "TCP keep-alive idle time in seconds (0: off)."
WithTCPKeepInterval = _setter("TCPKeepInterval")
WithTCPKeepInterval.__doc__ = "TCP keep-alive probe interval in seconds (0: idle/5)."
WithTCPKeepCount = _setter("TCPKeepCount")
WithTCPKeepCount.__doc__ = "TCP keep-alive probe count (0: 5)."
WithTCPNoDelay = _setter("TCPNoDelay")
WithTCPNoDelay.__doc__ = "TCPNoDelay (default) sets TCP_NODELAY; TCPDelay leaves Nagle on."
WithReadBufferCap = _setter("ReadBufferCap")
WithReadBufferCap.__doc__ = "Bytes per read (and the largest UDP datagram received)."
WithWriteBufferCap = _setter("WriteBufferCap")
WithWriteBufferCap.__doc__ = (
    "Bytes of a stream connection's output that may wait unsent before reading from it "
    "pauses (until all of it is sent); gnet's outbound buffer is unbounded."
)
WithSocketRecvBuffer = _setter("SocketRecvBuffer")
WithSocketRecvBuffer.__doc__ = "SO_RCVBUF on listeners and connections."
WithSocketSendBuffer = _setter("SocketSendBuffer")
WithSocketSendBuffer.__doc__ = "SO_SNDBUF on listeners and connections."
WithLockOSThread = _setter("LockOSThread")
WithLockOSThread.__doc__ = "Accepted for compatibility; only its 10000-loop check applies."
WithEdgeTriggeredIO = _setter("EdgeTriggeredIO")
WithEdgeTriggeredIO.__doc__ = (
    "Accepted for compatibility; Twisted's reactor decides the polling mode."
)
WithEdgeTriggeredIOChunk = _setter("EdgeTriggeredIOChunk")
WithEdgeTriggeredIOChunk.__doc__ = (
    "Accepted for compatibility (normalised as gnet does, no effect)."
)
WithMulticastInterfaceIndex = _setter("MulticastInterfaceIndex")
WithMulticastInterfaceIndex.__doc__ = "Interface index used to join a multicast UDP listen address."
WithBindToDevice = _setter("BindToDevice")
WithBindToDevice.__doc__ = "SO_BINDTODEVICE on listeners (Linux only)."
WithLogger = _setter("Logger")
WithLogger.__doc__ = (
    "A twisted.logger.Logger, or a gnet-style logger with Debugf/Infof/Warnf/Errorf."
)
WithLogPath = _setter("LogPath")
WithLogPath.__doc__ = "Log to this file when no Logger is given."
WithLogLevel = _setter("LogLevel")
WithLogLevel.__doc__ = "Level for the LogPath logger (gnet's: -1 debug, 0 info, 1 warn, 2 error)."
WithBacklog = _setter("Backlog")
WithBacklog.__doc__ = "Listen backlog (gnetcompat; 0: the OS maximum, as gnet)."
WithShutdownTimeout = _setter("ShutdownTimeout")
WithShutdownTimeout.__doc__ = "Seconds a shutdown waits for connections to flush (gnetcompat)."
WithUnixSocketMode = _setter("UnixSocketMode")
WithUnixSocketMode.__doc__ = (
    "Permission bits of the unix socket files the engine creates, e.g. 0o660 (gnetcompat; "
    "None, the default: as the process umask leaves them, like Go's listener)."
)


def WithTLS(
    certFile: str | ServerTLS | None = None,
    keyFile: str | None = None,
    *,
    address: str | None = None,
    **settings: Any,
) -> Option:
    """
    gnetcompat: serve TLS: C{WithTLS("cert.pem", "key.pem")} on every
    tcp/unix listener, or only on C{address} (one of the engine's
    addresses, as given).  Keyword settings are those of L{TLSConfig}
    (C{extraCertChain}, C{dhParameters}, C{clientCA}, C{requireClientCert},
    C{alpn}, C{minimumVersion}, C{handshakeTimeout}, C{sessions}).
    C{certFile} may instead be a L{TLSConfig}, or (single process only) any
    Twisted C{IOpenSSLServerConnectionCreator} or C{CertificateOptions}.
    """
    value: ServerTLS
    if isinstance(certFile, str):
        try:
            value = TLSConfig(certFile, keyFile, **settings)
        except TypeError as e:
            raise TLSError(f"WithTLS: {e}") from None
    elif certFile is None:
        raise TLSError("WithTLS: give the certificate file (PEM), a TLSConfig or a creator")
    else:
        if keyFile is not None or settings:
            raise TLSError("WithTLS: give either a TLSConfig/creator or files and settings")
        value = certFile

    def apply(o: Options) -> None:
        current = dict(o.TLS or {})  # copy: Options copies share the dict otherwise
        current[address] = value
        o.TLS = current

    apply.__name__ = "WithTLS"
    return apply


def WithClientTLS(
    caFile: str | None = None, serverName: str | None = None, **settings: Any
) -> Option:
    """
    gnetcompat: a L{gnetcompat.Client} dials TLS on every tcp/unix C{Dial}:
    trusting C{caFile} (default: the platform's CAs), verifying
    C{serverName} (default: the dialled host).  Settings as L{ClientTLS}
    (C{certFile}, C{keyFile}, C{alpn}, C{creator}, e.g. Twisted's
    C{optionsForClientTLS}).
    """
    try:
        value = _ClientTLS(caFile=caFile, serverName=serverName, **settings)
    except TypeError as e:
        raise TLSError(f"WithClientTLS: {e}") from None

    def apply(o: Options) -> None:
        o.ClientTLS = value

    apply.__name__ = "WithClientTLS"
    return apply
