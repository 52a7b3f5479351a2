# -*- test-case-name: tests.test_client -*-
"""
Dialling and adopting connections for an engine: TCP, unix and I{connected}
UDP sockets, the protocol and factory of a dialled or adopted connection,
and the registration paths of a running engine (C{EventLoop.Register/
Enroll}, C{Engine.Register}).  Used by the engine's loop (L{gnetcompat._engine})
and by the public client (L{gnetcompat.client}).

Every outgoing or adopted connection is driven by the same L{IEventHandler}
callbacks as an accepted one: C{OnOpen} (with C{Context()} and
C{SafeContext()} already set to the value given at dial/registration time),
C{OnTraffic}, C{OnClose}.  A client UDP connection does get
C{OnOpen}/C{OnClose}, and the C{out} of its C{OnOpen} is sent as one
datagram.

This module sits below the engine: it sees the engine only through
L{ConnOwner} (with the few registration extras of L{LoopOwner}).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, cast

from twisted.internet import defer, threads
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
)
from twisted.internet.error import ConnectionLost, NoProtocol
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._addr import Addr, applyKeepAlive, parseProtoAddr, splitHostPort
from ._conn import Conn, ConnOwner, ownBytes
from ._context import (
    Context,
    FromContext,
    FromNetAddrContext,
    FromNetConnContext,
    RegisteredResult,
)
from ._protocol import GnetProtocol
from ._text import printable, shown
from ._twistedcompat import builtinError, rawTransport
from .errors import (
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrInvalidNetConn,
    ErrInvalidNetworkAddress,
    ErrUnsupportedOp,
    ErrUnsupportedProtocol,
)
from .options import Options, TCPSocketOpt


class LoopOwner(ConnOwner, Protocol):
    """
    What dialling and registration need from the engine beyond a
    L{ConnOwner}: whether its loop still takes connections, whether it has
    booted, and gnet's C{Validate}.
    """

    @property
    def loopRunning(self) -> bool:
        """The loop takes new connections (not shutting down; a client: not stopped)."""

    @property
    def booted(self) -> bool:
        """C{OnBoot} has run."""

    def pickLoop(self, key: str) -> Any:
        """The event loop for a new connection to or from C{key} (its load balancer)."""

    def Validate(self) -> None:
        """gnet's C{Engine.Validate}: raise when the engine cannot be used."""


def _applySocketOptions(sock: socket.socket, o: Options) -> None:
    """The client socket options of gnet: buffers; for TCP no-delay and keep-alive."""
    if o.SocketRecvBuffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, o.SocketRecvBuffer)
    if o.SocketSendBuffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, o.SocketSendBuffer)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        if o.TCPNoDelay == TCPSocketOpt.TCPNoDelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if o.TCPKeepAlive > 0:
            applyKeepAlive(sock, o.TCPKeepAlive, o.TCPKeepInterval, o.TCPKeepCount)


#: a socket address as C{socket} gives it: C{(host, port)}, or IPv6's 4-tuple
SockAddr = tuple[Any, ...]


def _twistedAddr(sockaddr: SockAddr, kind: Literal["TCP", "UDP"]) -> IPv4Address | IPv6Address:
    host, port = sockaddr[0], sockaddr[1]
    if ":" in host:
        return IPv6Address(kind, host, port)
    return IPv4Address(kind, host, port)


class _ClientUDPConn(Conn):
    """A connected UDP client conn: a stream-like lifecycle, datagram writes."""

    __slots__ = ()
    _streamWrites = False  # one datagram per Write, never joined

    def Writev(self, bufs: Any) -> int:
        """Unsupported on UDP, as in gnet."""
        raise ErrUnsupportedOp()

    def AsyncWritev(self, bufs: Any, callback: Any = None) -> None:
        """Unsupported on UDP, as in gnet."""
        raise ErrUnsupportedOp()


class _ConnectedUDPTransport:
    """The transport a L{Conn} sees for a connected UDP port."""

    disconnecting = False

    def __init__(self, port: Any, peer: SockAddr) -> None:
        self.port = port
        self.peer = _twistedAddr(peer, "UDP")

    def write(self, data: bytes) -> None:
        self.port.write(bytes(data))

    def writeSequence(self, seq: Any) -> None:
        raise ErrUnsupportedOp()

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.port.stopListening()

    abortConnection = loseConnection

    def getHost(self) -> Any:
        return self.port.getHost()

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self.peer

    def getHandle(self) -> Any:
        return self.port.socket

    def fileno(self) -> int:
        return int(self.port.fileno())


class _ConnectedUDPProtocol(DatagramProtocol):
    """One connected UDP socket as a connection: OnOpen, OnTraffic per datagram, OnClose."""

    log = Logger()
    noisy = False
    conn: _ClientUDPConn | None = None
    _udp: _ConnectedUDPTransport | None = None

    def __init__(self, engine: LoopOwner, value: Any, hasValue: bool, loop: Any = None) -> None:
        self.engine = engine
        self._value = value
        self._hasValue = hasValue
        #: the event loop the connection joins (None: the engine picks)
        self.loop = loop

    def open(self, peer: SockAddr) -> _ClientUDPConn:
        """The port is connected: create the Conn and run OnOpen."""
        eng = self.engine
        t = self._udp = _ConnectedUDPTransport(self.transport, peer)
        conn = self.conn = _ClientUDPConn(eng, t, "udp")
        if self._hasValue:
            conn.SetContext(self._value)
            conn.SetSafeContext(self._value)
        eng.connAdded(conn, self)
        try:
            result = eng.results.openResult(eng.handler.OnOpen(conn))
        except Exception:
            eng.log.failure("OnOpen raised; closing {conn!r}", conn=conn)
            result = None
        if result is None:  # raised, or a wrong shape (logged): close, send nothing
            conn.driverCloseLocal(propagate=True)
            return conn
        out, action = result
        if out is not None and type(out) is not bytes:
            out = ownBytes(out, "OnOpen's out")
        if out and not conn.closed:
            try:
                t.write(out)
            except Exception:
                eng.log.failure("sending the OnOpen datagram failed")
        if action:
            conn.driverApply(action)
        return conn

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        if not data:
            # gnet's default build reads an empty datagram as EOF
            self._peerGone(None)
            return
        conn.driverFeed(data)
        conn.driverTraffic()

    def connectionRefused(self) -> None:
        self._peerGone(
            Failure(  # type: ignore[no-untyped-call]  # Twisted: untyped
                ConnectionRefusedError(errno.ECONNREFUSED, "read: connection refused")
            )
        )

    def _peerGone(self, reason: Failure | None) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.driverLost(reason)
        if self._udp is not None:
            self._udp.loseConnection()

    def stopProtocol(self) -> None:
        self.engine.transportGone(self)
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.driverLost(Failure(self._pendingError()))  # type: ignore[no-untyped-call]  # Twisted: untyped

    def _pendingError(self) -> BaseException:
        """
        Why the port went away without our asking: the reactor drops a UDP
        socket on an error event (an ICMP refusal), before it is closed.
        """
        if self._udp is None:
            return ConnectionLost("UDP port closed")
        try:
            port = self._udp.port  # self.transport is None by now
            code = port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except (AttributeError, OSError):
            code = 0
        if code:
            return OSError(code, os.strerror(code))
        return ConnectionLost("UDP port closed")


class _RegisteredProtocol(GnetProtocol):
    """A dialled or adopted stream connection: contexts and options set before OnOpen."""

    def __init__(
        self,
        engine: LoopOwner,
        network: str,
        value: Any,
        hasValue: bool,
        applyOptions: bool,
        loop: Any = None,
    ) -> None:
        super().__init__(engine, network)
        self._value = value
        self._hasValue = hasValue
        self._applyOptions = applyOptions
        self.loop = loop

    #: a TLS dial: fires with the Conn once the handshake completed and OnOpen ran
    whenOpen: Deferred[Conn] | None = None

    def prepareConn(self, conn: Conn) -> None:
        if self._hasValue:
            conn.SetContext(self._value)
            conn.SetSafeContext(self._value)
        if self._applyOptions:
            handle = cast(Any, rawTransport(self.transport)).getHandle()
            if isinstance(handle, socket.socket):
                _applySocketOptions(handle, self.engine.options)

    def _open(self) -> None:
        super()._open()
        d, self.whenOpen = self.whenOpen, None
        if d is not None:
            assert self.conn is not None  # (super()._open() created it)
            d.callback(self.conn)

    def connectionLost(self, reason: Any = None) -> None:
        d, self.whenOpen = self.whenOpen, None
        super().connectionLost(reason)
        if d is not None:  # the TLS handshake failed or timed out
            d.errback(reason if reason is not None else ConnectionLost())


class _OneShotFactory(Factory):
    """Builds the one protocol of a dial or an adoption, and keeps it."""

    noisy = False
    protocol = None

    def __init__(
        self,
        engine: LoopOwner,
        network: str,
        value: Any,
        hasValue: bool,
        applyOptions: bool,
        loop: Any = None,
    ) -> None:
        self.engine = engine
        self.args = (network, value, hasValue, applyOptions, loop)
        self.built: _RegisteredProtocol | None = None

    def buildProtocol(self, addr: Any) -> _RegisteredProtocol | None:
        if not self.engine.loopRunning:
            return None
        p = self.built = _RegisteredProtocol(self.engine, *self.args)
        p.factory = self
        return p


def _tlsOpened(engine: LoopOwner, factory: _OneShotFactory) -> Conn | Deferred[Conn]:
    """The Conn of a TLS dial, once its handshake completed (a Deferred until then)."""
    proto = factory.built
    if proto is None:
        raise ErrEngineInShutdown()
    if proto.conn is not None:
        return proto.conn
    d: Deferred[Conn] = Deferred()
    proto.whenOpen = d
    return d


def _openedConn(engine: LoopOwner, proto: IProtocol | None) -> Conn:
    """The Conn of a dialled or adopted connection (the protocol L{_OneShotFactory} built)."""
    conn = proto.conn if isinstance(proto, GnetProtocol) else None
    if conn is None:
        raise ErrEngineInShutdown()
    return conn


def _adoptNow(
    engine: LoopOwner,
    sock: socket.socket,
    value: Any,
    hasValue: bool,
    applyOptions: bool,
    loop: Any = None,
) -> Conn:
    """
    Adopt a connected socket on the reactor thread: its OnOpen runs inside
    this call.  C{sock} stays the caller's to close (Twisted duplicates it).
    """
    if not engine.loopRunning:
        raise ErrEngineInShutdown()
    family, kind = sock.family, sock.type
    sock.setblocking(False)
    if applyOptions:
        _applySocketOptions(sock, engine.options)
    reactor = engine.reactor
    if kind == socket.SOCK_STREAM and family in (
        socket.AF_INET,
        socket.AF_INET6,
        socket.AF_UNIX,
    ):
        network = "unix" if family == socket.AF_UNIX else "tcp"
        factory = _OneShotFactory(engine, network, value, hasValue, False, loop)
        reactor.adoptStreamConnection(sock.fileno(), family, factory)
        return _openedConn(engine, factory.built)
    if kind == socket.SOCK_DGRAM and family in (socket.AF_INET, socket.AF_INET6):
        try:
            peer = sock.getpeername()
        except OSError:
            raise ErrInvalidNetConn("gnetcompat: the UDP socket is not connected") from None
        proto = _ConnectedUDPProtocol(engine, value, hasValue, loop)
        port = reactor.adoptDatagramPort(
            sock.fileno(), family, proto, maxPacketSize=engine.options.ReadBufferCap
        )
        port.connect(peer[0], peer[1])
        return proto.open(peer)
    raise ErrUnsupportedProtocol()


def takeSocket(sock: Any) -> socket.socket:
    """
    Duplicate the caller's socket and close it, as gnet does with a
    C{net.Conn}.  Returns the duplicate (ours to close).
    """
    if sock is None:
        raise ErrInvalidNetConn()
    if not isinstance(sock, socket.socket):
        raise ErrUnsupportedProtocol(
            f"gnetcompat: expected a connected socket.socket, got {sock!r}"
        )
    if (
        sock.type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
        or sock.family
        not in (
            socket.AF_INET,
            socket.AF_INET6,
            socket.AF_UNIX,
        )
        or (sock.family == socket.AF_UNIX and sock.type != socket.SOCK_STREAM)
    ):
        raise ErrUnsupportedProtocol()
    dup = sock.dup()
    sock.close()
    return dup


def adopt(
    engine: LoopOwner,
    dup: socket.socket,
    value: Any,
    hasValue: bool,
    applyOptions: bool,
    loop: Any = None,
) -> Deferred[Conn]:
    """L{_adoptNow} as a Deferred of the Conn; always closes C{dup}."""
    try:
        return defer.succeed(_adoptNow(engine, dup, value, hasValue, applyOptions, loop))
    except Exception:
        return defer.fail()
    finally:
        dup.close()


def _resolve(network: str, host: str, port: int) -> Deferred[tuple[int, SockAddr]]:
    """C{(family, sockaddr)} for a tcp*/udp* dial, resolving names off the reactor thread."""
    suffix = network[-1]
    if host == "":
        host = "::1" if suffix == "6" else "127.0.0.1"
    kind = socket.SOCK_STREAM if network.startswith("tcp") else socket.SOCK_DGRAM
    family = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(suffix, socket.AF_UNSPEC)

    def pick(infos: Sequence[tuple[Any, ...]]) -> tuple[int, SockAddr]:
        infos = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
        if not infos:
            raise ErrInvalidNetworkAddress(f"dial {network} {host}: no suitable address")
        infos.sort(key=lambda i: i[0] != socket.AF_INET)
        return infos[0][0], infos[0][4]

    bare = host.split("%", 1)[0]
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        d = threads.deferToThread(socket.getaddrinfo, host, port, family, kind)
        return d.addCallback(pick)
    try:
        infos = socket.getaddrinfo(host, port, family, kind, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        return defer.fail(
            ErrInvalidNetworkAddress(f"dial {network} {host}: address family mismatch")
        )
    return defer.succeed(pick(infos))


def dial(
    engine: LoopOwner,
    network: str,
    address: str,
    value: Any,
    hasValue: bool,
    applyOptions: bool,
    loop: Any = None,
) -> Deferred[Conn]:
    """
    Dial C{address} over C{network} (Go's C{net.Dial} syntax) and register
    the connection with C{engine} (on C{loop}, or the one its load balancer
    picks); a Deferred firing with the Conn once its OnOpen has run.
    """
    net = network.lower() if isinstance(network, str) else network
    where = f"dial {printable(str(net), 40)} {printable(str(address), 200)}"

    def builtin(f: Failure) -> Failure:
        # no Twisted exception type crosses the gnet API (refused, time-out, DNS)
        # (Failure.value is declared Optional; a Failure always carries one)
        return Failure(builtinError(f.value, where))  # type: ignore[arg-type,no-untyped-call]

    if net == "unix":
        if not address:
            return defer.fail(
                ErrInvalidNetworkAddress(f"{ErrInvalidNetworkAddress.message}: {where}: no path")
            )
        factory = _OneShotFactory(engine, "unix", value, hasValue, applyOptions, loop)
        tls = engine.options.ClientTLS
        # (Twisted's UNIXClientEndpoint is untyped: its connect is typed through the interface)
        unix: IStreamClientEndpoint = UNIXClientEndpoint(engine.reactor, address)  # type: ignore[no-untyped-call]
        if tls is not None:
            wrapped = tls.wrapFactory(factory, tls.serverName or "localhost", engine.reactor)
            connected = unix.connect(wrapped)
            return connected.addCallback(lambda _: _tlsOpened(engine, factory)).addErrback(builtin)
        connected = unix.connect(factory)
        return connected.addCallback(lambda p: _openedConn(engine, p)).addErrback(builtin)
    if net not in ("tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"):
        return defer.fail(
            ErrUnsupportedProtocol(
                f"{ErrUnsupportedProtocol.message}: dial {shown(network, 40)} {shown(address, 100)}"
            )
        )
    try:
        host, port = splitHostPort(address)
    except ErrInvalidNetworkAddress:
        return defer.fail()
    d = _resolve(net, host, port)

    def connect(resolved: tuple[int, SockAddr]) -> Deferred[Conn]:
        family, sockaddr = resolved
        if net.startswith("udp"):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(sockaddr)
            except BaseException:
                sock.close()
                raise
            return adopt(engine, sock, value, hasValue, applyOptions, loop)
        factory = _OneShotFactory(engine, "tcp", value, hasValue, applyOptions, loop)
        kind = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
        ep = kind(engine.reactor, sockaddr[0], sockaddr[1])
        tls = engine.options.ClientTLS
        if tls is not None:
            wrapped = tls.wrapFactory(factory, host, engine.reactor)
            return ep.connect(wrapped).addCallback(lambda _: _tlsOpened(engine, factory))
        return ep.connect(factory).addCallback(lambda p: _openedConn(engine, p))

    def noProtocol(f: Failure) -> Failure:
        if f.check(NoProtocol):  # type: ignore[no-untyped-call]  # Twisted: untyped
            return Failure(ErrEngineInShutdown())  # type: ignore[no-untyped-call]  # Twisted: untyped
        return f

    return d.addCallback(connect).addErrback(noProtocol).addErrback(builtin)


def _addrTarget(addr: Any) -> tuple[str, str]:
    """C{(network, address)} of an L{Addr}, a Twisted address, or a C{scheme://} string."""
    if isinstance(addr, Addr):
        return addr.Network(), addr.String()
    if isinstance(addr, (IPv4Address, IPv6Address)):
        net = "udp" if addr.type == "UDP" else "tcp"
        host = f"[{addr.host}]" if ":" in addr.host else addr.host
        return net, f"{host}:{addr.port}"
    if isinstance(addr, UNIXAddress):
        raw = addr.name
        path = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        return "unix", path or ""
    if isinstance(addr, str):
        spec = parseProtoAddr(addr)
        return spec.network, spec.address
    if callable(getattr(addr, "Network", None)) and callable(getattr(addr, "String", None)):
        return addr.Network(), addr.String()
    raise ErrInvalidNetworkAddress(f"gnet: invalid network address {shown(addr)}")


# -- EventLoop.Register / Enroll, Engine.Register ------------------------------


def _registration(
    engine: LoopOwner, work: Callable[[], Deferred[Conn]], cleanup: Callable[[], None] | None
) -> Deferred[RegisteredResult]:
    """
    Queue C{work} on the loop (gnet's normal-priority task) and return a
    Deferred that fires with a L{RegisteredResult} once OnOpen ran (or with
    the error in C{Err}); it never fails.
    """
    result: Deferred[RegisteredResult] = Deferred()

    def report(value: Conn | Failure) -> None:
        if isinstance(value, Failure):
            result.callback(RegisteredResult(None, value.value))
        else:
            result.callback(RegisteredResult(value, None))

    def run() -> None:
        if not engine.loopRunning:
            if cleanup is not None:
                cleanup()
            result.callback(RegisteredResult(None, ErrEngineInShutdown()))
            return
        defer.maybeDeferred(work).addBoth(report)

    engine.reactor.callFromThread(run)
    return result


def _checkLoop(engine: LoopOwner) -> None:
    if engine.stopped or not engine.loopRunning:
        raise ErrEngineInShutdown()


def registerOnLoop(
    engine: LoopOwner, addr: Any, ctx: Context | None, loop: Any = None
) -> Deferred[RegisteredResult]:
    """
    C{EventLoop.Register(addr, ctx)}: dial C{addr} (an L{Addr}, a Twisted
    address or a C{scheme://} string) and add the connection to the loop.
    Returns a Deferred firing with a L{RegisteredResult} after the new
    conn's OnOpen; its C{Context()}/C{SafeContext()} are C{FromContext(ctx)}.
    The engine's socket options are applied to the dialled socket.

    @raise ErrEngineInShutdown: the engine is shutting down or has stopped.
    @raise ErrInvalidNetworkAddress: C{addr} is C{None} or not an address.
    """
    _checkLoop(engine)
    if addr is None:
        raise ErrInvalidNetworkAddress()
    network, address = _addrTarget(addr)
    value = FromContext(ctx)
    if loop is None:
        loop = engine.pickLoop(address)
    return _registration(
        engine, lambda: dial(engine, network, address, value, True, True, loop), None
    )


def enrollOnLoop(
    engine: LoopOwner, sock: Any, ctx: Context | None, loop: Any = None
) -> Deferred[RegisteredResult]:
    """
    C{EventLoop.Enroll(sock, ctx)}: adopt a connected socket (TCP, unix or
    connected UDP) on the loop.  The caller's socket is closed at once (gnet
    closes the C{net.Conn}); as in gnet, no socket options are applied on
    this path.  Returns a Deferred of a L{RegisteredResult}, as C{Register}.

    @raise ErrEngineInShutdown: the engine is shutting down or has stopped.
    @raise ErrInvalidNetConn: C{sock} is C{None}.
    @raise ErrUnsupportedProtocol: not a TCP, unix-stream or UDP socket.
    """
    _checkLoop(engine)
    dup = takeSocket(sock)
    value = FromContext(ctx)
    if loop is None:
        loop = engine.pickLoop(_peerText(dup))
    return _registration(engine, lambda: adopt(engine, dup, value, True, False, loop), dup.close)


def _peerText(sock: socket.socket) -> str:
    """A connected socket's peer as gnet's address text (the load balancer's key)."""
    try:
        peer = sock.getpeername()
    except OSError:
        return ""
    if isinstance(peer, tuple):
        host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
        return f"{host}:{peer[1]}"
    return os.fsdecode(peer) if isinstance(peer, bytes) else str(peer)


def registerOnEngine(engine: LoopOwner, ctx: Context | None) -> Deferred[RegisteredResult]:
    """
    C{Engine.Register(ctx)}: enrol the socket of C{NewNetConnContext}, or
    dial the address of C{NewNetAddrContext} (the socket wins when both are
    present), on the engine's loop.

    @raise ErrEmptyEngine: a client engine, or before the engine has booted
        (inside C{OnBoot}).
    @raise ErrEngineInShutdown: the engine has stopped.
    @raise ErrInvalidNetworkAddress: C{ctx} carries neither.
    """
    engine.Validate()
    if not engine.booted:
        raise ErrEmptyEngine()
    if engine.stopping:
        raise ErrEngineInShutdown()
    sock, ok = FromNetConnContext(ctx)
    if ok:
        return enrollOnLoop(engine, sock, ctx)
    addr, ok = FromNetAddrContext(ctx)
    if ok:
        return registerOnLoop(engine, addr, ctx)
    raise ErrInvalidNetworkAddress()
