# -*- test-case-name: tests.test_addr -*-
"""
gnet's address rules (spec §11): parsing C{scheme://address}, Go-style
address objects, and the listening sockets gnet would create.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from zope.interface import implementer

from ._text import printable, shown
from .errors import (
    ErrInvalidNetworkAddress,
    ErrInvalidURL,
    ErrNoIPv4AddressOnInterface,
    ErrUnsupportedProtocol,
)
from .interfaces import IAddr

_STREAM = {"tcp", "tcp4", "tcp6", "unix"}
_SCHEMES = {"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix"}
#: gnetcompat's extension: serve on an inherited listening socket.
FD_SCHEME = "fd"
#: the forms C{Run}/C{Rotate}/C{Serve} accept, shown by every address error
ACCEPTED_FORMS = (
    "tcp://:9000, tcp://127.0.0.1:9000, tcp6://[::1]:9000, udp://:9000, "
    "unix:///path/to.sock, fd://N"
)


def addressError(protoAddr: object, why: str) -> ErrInvalidNetworkAddress:
    """
    An L{ErrInvalidNetworkAddress} whose text starts with gnet's own
    (C{gnet: invalid network address}), then shows the input (escaped and
    bounded: it may be hostile), why it was refused and the accepted forms.
    """
    return ErrInvalidNetworkAddress(
        f"{ErrInvalidNetworkAddress.message} {shown(protoAddr, 100)}: {why}; "
        f"use one of {ACCEPTED_FORMS}"
    )


def _noScheme(protoAddr: str) -> str:
    """Why an address without C{scheme://} is refused, with the likely fix."""
    try:
        splitHostPort(protoAddr)
    except ErrInvalidNetworkAddress:
        if protoAddr.isdigit():
            return f"no scheme (did you mean {shown('tcp://:' + protoAddr, 100)}?)"
        return "no scheme"
    return f"no scheme (did you mean {shown('tcp://' + protoAddr, 100)}?)"


class ListenerOptions(Protocol):
    """
    The socket options L{createListener} reads: the matching fields of
    L{gnetcompat.options.Options} (which satisfies this protocol; C{options}
    sits beside this module in the layers, so it is named here, not imported).
    """

    @property
    def ReuseAddr(self) -> bool: ...
    @property
    def ReusePort(self) -> bool: ...
    @property
    def MulticastInterfaceIndex(self) -> int: ...
    @property
    def BindToDevice(self) -> str: ...
    @property
    def TCPKeepAlive(self) -> float: ...
    @property
    def TCPKeepInterval(self) -> float: ...
    @property
    def TCPKeepCount(self) -> int: ...
    @property
    def TCPNoDelay(self) -> int: ...
    @property
    def SocketRecvBuffer(self) -> int: ...
    @property
    def SocketSendBuffer(self) -> int: ...
    @property
    def Backlog(self) -> int: ...
    @property
    def UnixSocketMode(self) -> int | None: ...


@implementer(IAddr)
class Addr:
    """
    A network address like Go's C{net.TCPAddr}/C{UDPAddr}/C{UnixAddr}.

    C{str(addr)} and C{addr.String()} give C{ip:port}, C{[ipv6]:port} or the
    unix path; C{addr.Network()} gives C{tcp}, C{udp} or C{unix}.
    """

    __slots__ = ("network", "host", "port")

    def __init__(self, network: str, host: str, port: int = 0) -> None:
        self.network = network
        self.host = host
        self.port = port

    def Network(self) -> str:
        """The normalised network name."""
        return self.network

    def String(self) -> str:
        """The Go text form of the address."""
        if self.network == "unix":
            return self.host
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    __str__ = String

    def __repr__(self) -> str:
        return f"Addr({self.network!r}, {self.String()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Addr):
            return NotImplemented
        return (self.network, self.host, self.port) == (other.network, other.host, other.port)

    def __hash__(self) -> int:
        return hash((self.network, self.host, self.port))

    def sockaddr(self) -> tuple[str, int] | str:
        """The address as the socket module takes it."""
        if self.network == "unix":
            return self.host
        return (self.host, self.port)


def _unmap(host: str) -> str:
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def fromTwisted(address: object, network: str) -> Addr | None:
    """Convert a Twisted C{IAddress} (or a socket address tuple) to an L{Addr}."""
    if isinstance(address, (IPv4Address, IPv6Address)):
        return Addr(network, _unmap(address.host), address.port)
    if isinstance(address, UNIXAddress):
        name: str | bytes | None = address.name
        if isinstance(name, bytes):
            name = name.decode("utf-8", "surrogateescape")
        return Addr("unix", name or "")
    if isinstance(address, tuple) and len(address) >= 2:
        return Addr(network, _unmap(address[0]), address[1])
    if address is None:
        return None
    return Addr(network, str(address))


def normalizeNetwork(network: str) -> str:
    """C{tcp4}/C{tcp6} -> C{tcp}, C{udp4}/C{udp6} -> C{udp}, unix stays."""
    if network.startswith("tcp"):
        return "tcp"
    if network.startswith("udp"):
        return "udp"
    return network


@dataclass(frozen=True)
class ListenSpec:
    """One parsed C{scheme://address}."""

    text: str  # the whole string as given
    network: str  # tcp, tcp4, tcp6, udp, udp4, udp6, unix
    address: str  # the part after scheme:// (for fd://N: the socket's own address)
    #: C{fd://N}: the inherited listening socket to serve on (never bound,
    #: never unlinked by the engine; systemd socket activation)
    fd: int | None = None

    @property
    def stream(self) -> bool:
        """True for tcp* and unix."""
        return self.network in _STREAM

    @property
    def normalizedNetwork(self) -> str:
        """tcp, udp or unix."""
        return normalizeNetwork(self.network)


def parseProtoAddr(protoAddr: str) -> ListenSpec:
    """
    Parse a gnet address as gnet does (spec §11.1).

    @raise ErrUnsupportedProtocol: unknown scheme.
    @raise ErrInvalidNetworkAddress: no scheme, empty host, a path, empty unix path.
    @raise ErrInvalidURL: not parseable (control characters, missing scheme).
    """
    if not isinstance(protoAddr, str):
        raise addressError(protoAddr, f"not a string but {type(protoAddr).__name__}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in protoAddr):
        raise ErrInvalidURL(
            f"parse {shown(protoAddr, 100)}: net/url: invalid control character in URL"
        )
    if protoAddr.startswith(":"):
        raise ErrInvalidURL(
            f"parse {shown(protoAddr, 100)}: missing protocol scheme; use one of {ACCEPTED_FORMS}"
        )
    if "://" not in protoAddr:
        raise addressError(protoAddr, _noScheme(protoAddr))
    scheme, _, rest = protoAddr.partition("://")
    scheme = scheme.lower()
    if scheme == FD_SCHEME:
        return inheritedSocketSpec(protoAddr, rest)
    if scheme not in _SCHEMES:
        raise ErrUnsupportedProtocol(
            f"{ErrUnsupportedProtocol.message} (and fd://N), got {shown(protoAddr, 100)}; "
            f"use one of {ACCEPTED_FORMS}"
        )
    if scheme == "unix":
        path = os.path.normpath(rest) if rest else ""
        if not rest or path in ("", "."):
            raise addressError(protoAddr, "no socket path after unix://")
        if rest.startswith("/"):
            path = "/" + path.lstrip("/")
        return ListenSpec(protoAddr, "unix", path)
    try:
        parts = urlsplit(protoAddr.replace("%", "%25"))
    except ValueError as e:
        raise ErrInvalidURL(f"parse {shown(protoAddr, 100)}: {e}") from None
    if not parts.netloc:
        raise addressError(protoAddr, f"no host:port after {scheme}://")
    if parts.path or parts.query or parts.fragment:
        raise addressError(protoAddr, f"a {scheme} address is host:port, with no path after it")
    return ListenSpec(protoAddr, scheme, rest)


def inheritedSocketSpec(text: str, number: str) -> ListenSpec:
    """
    The spec of C{fd://N} (a gnetcompat extension, not gnet's): an already
    listening stream socket this process inherited, such as one systemd
    passes for socket activation.  Its network and address are read off the
    socket (C{tcp4}/C{tcp6} C{host:port}, or C{unix} and its path).

    @raise ErrInvalidNetworkAddress: C{N} is not a descriptor number, not
        open, not a socket, or not a listening stream socket.
    """
    if not number.isdigit():
        raise addressError(text, "fd://N takes a number")
    fd = int(number)
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        raise addressError(
            text, f"file descriptor {fd} is not an open socket ({e.strerror})"
        ) from None
    try:
        if probe.type != socket.SOCK_STREAM or not probe.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            raise addressError(text, f"file descriptor {fd} is not a listening stream socket")
        name = probe.getsockname()
        if probe.family == socket.AF_UNIX:
            path = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
            return ListenSpec(text, "unix", path, fd)
        if probe.family == socket.AF_INET6:
            return ListenSpec(text, "tcp6", f"[{name[0]}]:{name[1]}", fd)
        if probe.family == socket.AF_INET:
            return ListenSpec(text, "tcp4", f"{name[0]}:{name[1]}", fd)
        raise addressError(text, f"unsupported socket family {probe.family!r}")
    finally:
        probe.close()


def splitHostPort(address: str) -> tuple[str, int]:
    """
    Go's C{net.SplitHostPort} plus port parsing.

    @raise ErrInvalidNetworkAddress: no port, bad port.
    """
    where = printable(address, 100)  # the caller's text: escaped and bounded
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            raise ErrInvalidNetworkAddress(f"address {where}: missing port in address")
        host, port = address[1:end], address[end + 2 :]
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            raise ErrInvalidNetworkAddress(f"address {where}: missing port in address")
        if ":" in host:
            raise ErrInvalidNetworkAddress(f"address {where}: too many colons in address")
    try:
        portNumber = int(port) if port else 0
    except ValueError:
        try:
            portNumber = socket.getservbyname(port)
        except OSError:
            raise ErrInvalidNetworkAddress(f"address {where}: unknown port") from None
    if not 0 <= portNumber <= 65535:
        raise ErrInvalidNetworkAddress(f"address {where}: invalid port")
    return host, portNumber


def resolve(spec: ListenSpec) -> tuple[int, tuple[Any, ...], bool]:
    """
    Resolve a tcp/udp spec to C{(family, sockaddr, v6only)} by gnet's rules
    (spec §11.2): no host means dual stack for tcp/udp, IPv4 for *4, v6-only
    for *6; an IP decides the family; IPv6 literals are v6-only.
    """
    try:
        host, port = splitHostPort(spec.address)
    except ErrInvalidNetworkAddress as e:
        raise addressError(spec.text, str(e)) from None
    zone = ""
    if "%" in host:
        host, zone = host.split("%", 1)
    suffix = spec.network[-1]
    if not host:
        if suffix == "4":
            return socket.AF_INET, ("0.0.0.0", port), False
        if socket.has_ipv6 and _ipv6Available():
            return socket.AF_INET6, ("::", port, 0, 0), suffix == "6"
        if suffix == "6":
            raise addressError(spec.text, "IPv6 is not available")
        return socket.AF_INET, ("0.0.0.0", port), False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        family = {"4": socket.AF_INET, "6": socket.AF_INET6}.get(suffix, socket.AF_UNSPEC)
        kind = socket.SOCK_STREAM if spec.stream else socket.SOCK_DGRAM
        try:
            infos = socket.getaddrinfo(host, port, family, kind)
        except socket.gaierror as e:
            raise addressError(spec.text, f"lookup {shown(host, 100)}: {e.strerror}") from None
        infos.sort(key=lambda i: i[0] != socket.AF_INET)
        ip = ipaddress.ip_address(infos[0][4][0])
    if ip.version == 4:
        if suffix == "6":
            raise addressError(spec.text, "not an IPv6 address")
        return socket.AF_INET, (str(ip), port), False
    if suffix == "4":
        raise addressError(spec.text, "not an IPv4 address")
    scope = socket.if_nametoindex(zone) if zone and not zone.isdigit() else int(zone or 0)
    return socket.AF_INET6, (str(ip), port, 0, scope), True


_v6: bool | None = None


def _ipv6Available() -> bool:
    global _v6
    if _v6 is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
            _v6 = True
        except OSError:
            _v6 = False
    return _v6


def somaxconn() -> int:
    """The OS's maximum listen backlog (gnet's choice), capped at 65535."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return min(int(f.read().strip()), 65535)
    except (OSError, ValueError):
        return socket.SOMAXCONN


def applyKeepAlive(sock: socket.socket, idle: float, intvl: float, cnt: int) -> None:
    """Turn TCP keep-alive on with whole-second idle/interval and a count."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(idle))
    elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, int(idle))
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, int(intvl))
    if hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, int(cnt))


def createListener(spec: ListenSpec, options: ListenerOptions) -> tuple[socket.socket, int]:
    """
    Create, configure, bind and (for streams) listen on the socket gnet would
    create for C{spec}.  Returns C{(socket, family)}; the socket is
    non-blocking and close-on-exec.

    @raise OSError: binding failed (address in use ...), with its errno
        and a message naming the address (L{listenError}).
    """
    o = options
    if spec.fd is not None:
        return _adopted(spec, o)
    if spec.network == "unix":
        path = spec.address
        try:
            os.unlink(path)  # gnet removes whatever is there
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _bufferOptions(sock, o)
            sock.bind(path)  # the file's mode: 0777 less the umask
            mode: int | None = getattr(o, "UnixSocketMode", None)
            if mode is not None:
                os.chmod(path, mode)  # before anyone can connect
            sock.listen(o.Backlog or somaxconn())
        except OSError as e:
            sock.close()
            raise listenError(spec, e) from None
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        return sock, socket.AF_UNIX
    family, sockaddr, v6only = resolve(spec)
    kind = socket.SOCK_STREAM if spec.stream else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        if o.ReuseAddr or (kind == socket.SOCK_STREAM and o.ReusePort):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if o.ReusePort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        _bufferOptions(sock, o)
        if o.BindToDevice:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, o.BindToDevice.encode())
        if kind == socket.SOCK_STREAM:
            if o.TCPNoDelay == 0:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if o.TCPKeepAlive > 0:
                applyKeepAlive(sock, o.TCPKeepAlive, o.TCPKeepInterval, o.TCPKeepCount)
            sock.bind(sockaddr)
            sock.listen(o.Backlog or somaxconn())
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            ip = ipaddress.ip_address(sockaddr[0])
            if ip.is_multicast:
                _joinMulticast(sock, family, sockaddr, o.MulticastInterfaceIndex)
            sock.bind(sockaddr)
    except OSError as e:
        sock.close()
        raise listenError(spec, e) from None
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock, family


def listenError(spec: ListenSpec, e: OSError) -> OSError:
    """
    C{e} (same class, same errno) naming the listener, in Go's words:
    C{[Errno 98] listen tcp 127.0.0.1:9000: address already in use}.
    """
    where = f"listen {spec.network} {printable(spec.address, 200)}"
    if not e.errno:
        return type(e)(f"{where}: {e}")
    return type(e)(e.errno, f"{where}: {os.strerror(e.errno).lower()}")


def _adopted(spec: ListenSpec, o: ListenerOptions) -> tuple[socket.socket, int]:
    """
    A duplicate of the inherited listening socket of C{fd://N}, with the
    options that apply to a listener that is already bound (buffers,
    no-delay, keep-alive); the reuse and backlog options were the binder's.
    """
    assert spec.fd is not None  # only fd://N specs come here
    try:
        sock = socket.socket(fileno=os.dup(spec.fd))
    except OSError as e:
        raise addressError(spec.text, str(e.strerror)) from None
    try:
        _bufferOptions(sock, o)
        if sock.family != socket.AF_UNIX:
            if o.TCPNoDelay == 0:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if o.TCPKeepAlive > 0:
                applyKeepAlive(sock, o.TCPKeepAlive, o.TCPKeepInterval, o.TCPKeepCount)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, sock.family


def ownsPath(spec: ListenSpec) -> bool:
    """A unix socket file the engine created (and so removes when it stops)."""
    return spec.network == "unix" and spec.fd is None


def _bufferOptions(sock: socket.socket, o: ListenerOptions) -> None:
    if o.SocketRecvBuffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, o.SocketRecvBuffer)
    if o.SocketSendBuffer > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, o.SocketSendBuffer)


def _joinMulticast(sock: socket.socket, family: int, sockaddr: tuple[Any, ...], index: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET:
        iface = "0.0.0.0"
        if index:
            iface = _ipv4OfInterface(index)
        mreq = socket.inet_aton(sockaddr[0]) + socket.inet_aton(iface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    else:
        mreq = socket.inet_pton(socket.AF_INET6, sockaddr[0]) + struct.pack(
            "@I", index or sockaddr[3]
        )
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)


def _ipv4OfInterface(index: int) -> str:
    name = socket.if_indextoname(index)
    if sys.platform.startswith("linux"):
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                req = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
            except OSError as e:
                if e.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise ErrNoIPv4AddressOnInterface() from None
                raise
            return socket.inet_ntoa(res[20:24])
    raise ErrNoIPv4AddressOnInterface()
