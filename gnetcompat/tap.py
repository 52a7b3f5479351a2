# -*- test-case-name: tests.test_tap -*-
"""
C{twistd gnetecho}: the gnet WebSocket echo server as a twistd plugin.

    twistd -n gnetecho --port 9080

Every option is checked at start; a bad value stops twistd with a message
naming the option.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

from twisted.application.service import MultiService
from twisted.python import usage

import gnetcompat as gnet
from gnetcompat.websocket import WebSocketOptions

__all__ = ["Options", "makeService", "systemdDescriptor", "toGnetAddress"]

_MIB = 1024 * 1024


def _bool(name: str) -> Any:
    def coerce(value: str) -> bool:
        v = value.strip().lower()
        if v in ("true", "1", "yes", "on"):
            return True
        if v in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"--{name} takes true or false, not {value!r}")

    coerce.coerceDoc = "true or false."  # type: ignore[attr-defined]
    return coerce


def _count(name: str, minimum: int = 0) -> Any:
    def coerce(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--{name} takes an integer, not {value!r}") from None
        if n < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, not {n}")
        return n

    return coerce


def _seconds(name: str) -> Any:
    def coerce(value: str) -> float:
        try:
            n = float(value)
        except ValueError:
            raise ValueError(f"--{name} takes seconds, not {value!r}") from None
        if not n >= 0 or n == float("inf"):
            raise ValueError(f"--{name} must be a number of seconds >= 0, not {value!r}")
        return n

    return coerce


#: WebSocketOptions names in validation messages -> the command-line flags
_FLAGS = {
    "partialMessageBudget": "--partial-message-budget",
    "maxMessagePayloadSize": "--max-message-size",
    "messageTimeout": "--message-timeout",
}

_KV = re.compile(r"^(\w+)=(.*)$")


def _splitEndpoint(text: str) -> list[str]:
    """Split an endpoint description on C{:}, honouring C{\\:} escapes (as Twisted's parser)."""
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", text)]


def _portNumber(text: str, description: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"bad port {text!r} in {description!r}: give 0-65535")
    return int(text)


def toGnetAddress(description: str) -> str:
    """
    Turn a C{--port}/C{--listen} value into a gnet address.

    A bare number is C{tcp://127.0.0.1:N} (the seed's loopback bind); gnet
    addresses (C{tcp://...}, C{unix://...}, and gnetcompat's C{fd://N} for
    an inherited listening socket) pass through; the endpoint forms
    C{tcp:PORT[:interface=H][:backlog=N]}, C{tcp6:PORT[:interface=H]} and
    C{unix:PATH} are translated (colons inside values escaped as C{\\:}, as
    for Twisted's endpoint strings: C{tcp6:9080:interface=\\:\\:1});
    Twisted's C{systemd:domain=INET:index=N} (or C{name=NAME}) becomes
    C{fd://3+N}, the socket systemd passed (L{systemdDescriptor}).

    @raise ValueError: anything else (the message says what is accepted).
    """
    d = description.strip()
    if d.isdigit():
        return f"tcp://127.0.0.1:{_portNumber(d, description)}"
    if "://" in d:
        spec = gnet._addr.parseProtoAddr(d)  # raises with gnet's error for a bad one
        if not spec.stream:
            raise ValueError(
                f"cannot serve WebSocket on {description!r}: give a tcp or unix address"
            )
        if spec.network != "unix" and spec.fd is None:
            host, sep, port = spec.address.rpartition(":")
            if not sep or (host and ":" in host and not host.startswith("[")):
                raise ValueError(f"missing port in {description!r}: give HOST:PORT")
            _portNumber(port, description)
        return d
    kind, _, rest = d.partition(":")
    parts = _splitEndpoint(rest) if rest else []
    if kind == "systemd":
        return toGnetAddress(f"fd://{systemdDescriptor(d)}")
    if kind in ("tcp", "tcp6") and parts and parts[0].isdigit():
        port = _portNumber(parts[0], description)
        kw = {}
        for p in parts[1:]:
            m = _KV.match(p)
            if not m or m.group(1) not in ("interface", "backlog"):
                raise ValueError(f"unsupported endpoint argument {p!r} in {description!r}")
            kw[m.group(1)] = m.group(2)
        host = kw.get("interface", "127.0.0.1" if kind == "tcp" else "::1")
        if ":" in host:
            host = f"[{host}]"
        return f"{kind}://{host}:{port}"
    if kind == "unix" and parts and parts[0]:
        return f"unix://{os.path.abspath(parts[0])}"
    raise ValueError(
        f"cannot listen on {description!r}: give a port number, tcp:PORT[:interface=HOST], "
        "tcp6:PORT[:interface=HOST], unix:PATH, systemd:domain=INET:index=N, or a gnet "
        "address such as tcp://0.0.0.0:9080"
    )


def systemdDescriptor(description: str, reactor: Any = None) -> int:
    """
    The descriptor that a C{systemd:domain=INET|UNIX:index=N} or
    C{systemd:domain=...:name=NAME} description names.  Twisted's own
    C{systemd} endpoint parser reads systemd's socket-activation variables
    (C{LISTEN_PID}, C{LISTEN_FDS}, C{LISTEN_FDNAMES}) once, at import, and
    resolves the description; its descriptor is served as C{fd://N}.  The
    socket's own family decides, whatever C{domain} says.

    @raise ValueError: a malformed description, or no such socket passed.
    """
    from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString

    if reactor is None:
        from twisted.internet import reactor
    try:
        endpoint = serverFromString(reactor, description)
    except (IndexError, KeyError):
        raise ValueError(
            f"{description!r}: systemd passed no such socket to this process (LISTEN_PID, "
            "LISTEN_FDS, LISTEN_FDNAMES; start the service from its .socket unit)"
        ) from None
    except AttributeError:
        raise ValueError(f"{description!r}: domain must be INET, INET6 or UNIX") from None
    except TypeError as e:
        raise ValueError(
            f"{description!r}: give domain=INET|INET6|UNIX and index=N or name=NAME ({e})"
        ) from None
    assert isinstance(endpoint, AdoptedStreamServerEndpoint)
    return endpoint.fileno


def _preferGnetReactor() -> None:
    """
    Install gnetcompat's reactor (L{gnetcompat.reactor}: epoll without the
    per-event logging context: +30 % messages per second in pingpong 64 x 32 B,
    +12 % with 64 KiB messages; BENCHMARKS.rst) when
    nothing chose a reactor yet: twistd without C{-r}, on Linux.  C{twistd
    -r NAME gnetecho} installs NAME before this runs and keeps it.
    """
    import sys

    if "twisted.internet.reactor" in sys.modules or not sys.platform.startswith("linux"):
        return
    from gnetcompat.reactor import install

    install()


class Options(usage.Options):
    """Command-line options of C{twistd gnetecho}."""

    synopsis = "[options]"
    longdesc = (
        "The gnet WebSocket echo server on gnetcompat: every text or binary message is "
        "echoed with its opcode. Autobahn does the WebSocket protocol."
    )
    optParameters = [
        ["port", "p", None, "Port number (binds 127.0.0.1) or an address: tcp:PORT[:interface=H], "
         "tcp6:PORT, unix:PATH, systemd:domain=INET:index=N, tcp://HOST:PORT, unix:///PATH "
         "(default: 9080, unless --listen is given).", None],
        ["multicore", None, True, "One worker process per CPU (true/false).", _bool("multicore")],
        ["num-event-loop", None, 0, "Exact number of worker processes (0: by --multicore).",
         _count("num-event-loop")],
        ["reuseport", None, True, "Each worker binds its own SO_REUSEPORT socket (true/false).",
         _bool("reuseport")],
        ["tick", None, 3.0, "Seconds between [connected-count=N] log lines.", _seconds("tick")],
        ["max-message-size", None, 16 * _MIB, "Largest message in bytes (bigger: close 1009; 0: no limit).",
         _count("max-message-size")],
        ["max-frame-size", None, 16 * _MIB, "Largest frame payload in bytes (close 1009; 0: no limit).",
         _count("max-frame-size")],
        ["max-header-size", None, 16 * 1024, "Largest HTTP request header block of the handshake "
         "(bigger: HTTP 431).", _count("max-header-size", 1)],
        ["open-handshake-timeout", None, 5.0, "Seconds a client has to complete the opening "
         "handshake (0: none).", _seconds("open-handshake-timeout")],
        ["close-handshake-timeout", None, 1.0, "Seconds the peer has to answer our Close frame.",
         _seconds("close-handshake-timeout")],
        ["auto-ping-interval", None, 20.0, "Ping each connection every this many seconds "
         "(0: off).", _seconds("auto-ping-interval")],
        ["auto-ping-timeout", None, 20.0, "Drop a connection whose ping is not answered in this "
         "many seconds (0: never; needs --auto-ping-interval).", _seconds("auto-ping-timeout")],
        ["message-timeout", None, 60.0, "Seconds a frame or message may stay partly received "
         "(then close 1008; 0: no limit).", _seconds("message-timeout")],
        ["partial-message-budget", None, 64 * _MIB, "Bytes all connections of a worker may hold "
         "in partly received messages (the one going over: close 1013; 0: no limit; at least "
         "--max-message-size).", _count("partial-message-budget")],
        ["allowed-origins", None, "*", "Comma-separated Origin patterns allowed to connect "
         "(* wildcards).", None],
        ["compression", None, True, "Accept permessage-deflate (true/false).", _bool("compression")],
        ["max-connections", None, 0, "Refuse connections beyond this many, engine-wide, with "
         "HTTP 503 (0: no limit).", _count("max-connections")],
        ["backlog", None, 0, "Listen backlog (0: the OS maximum).", _count("backlog")],
        ["read-buffer-size", None, 256 * 1024, "Bytes taken per read from a connection "
         "(gnet's ReadBufferCap, rounded up to a power of two; 256 KiB reads a 64 KiB "
         "message at once, gnet's 64 KiB default needs two reads).",
         _count("read-buffer-size", 1)],
        ["log-level", None, "info", "debug shows every message and connection; info, warn, error.",
         None],
        ["shutdown-timeout", None, 5.0, "Seconds a graceful shutdown waits for closing "
         "handshakes before aborting connections.", _seconds("shutdown-timeout")],
        ["metrics", None, None, "Serve Prometheus metrics at /metrics on this Twisted endpoint, "
         "e.g. tcp:9100:interface=127.0.0.1 (default: off).", None],
        ["status-page", None, True, "Answer a plain GET / on the echo port with an HTML status "
         "page (false: HTTP 426).", _bool("status-page")],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on this address (repeatable; same forms as --port)."""
        self["listen"].append(description)

    def postOptions(self) -> None:
        _preferGnetReactor()
        addrs = []
        if self["port"] is None and not self["listen"]:
            self["port"] = "9080"
        given = [("port", self["port"])] if self["port"] is not None else []
        for name, value in given + [("listen", v) for v in self["listen"]]:
            try:
                addrs.append(toGnetAddress(str(value)))
            except (ValueError, gnet.GnetError) as e:
                raise usage.UsageError(f"--{name}: {e}") from None
        self["addresses"] = addrs
        if self["log-level"] not in ("debug", "info", "warn", "error"):
            raise usage.UsageError(f"--log-level: debug, info, warn or error, not {self['log-level']!r}")
        if self["auto-ping-timeout"] and not self["auto-ping-interval"]:
            raise usage.UsageError("--auto-ping-timeout needs --auto-ping-interval")
        origins = [o.strip() for o in self["allowed-origins"].split(",") if o.strip()]
        if not origins:
            raise usage.UsageError("--allowed-origins: give at least one pattern (* for any)")
        self["origins"] = origins
        if self["metrics"] is not None:
            from twisted.internet import reactor
            from twisted.internet.endpoints import serverFromString

            try:
                serverFromString(reactor, self["metrics"])
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError(f"--metrics: bad endpoint {self['metrics']!r}: {e}") from None
        try:
            self["wsOptions"] = self.wsOptions()
        except ValueError as e:
            message = str(e)
            for name, flag in _FLAGS.items():
                message = message.replace(name, flag)
            raise usage.UsageError(message) from None

    def wsOptions(self) -> WebSocketOptions:
        """The WebSocket settings these options describe."""
        o = WebSocketOptions(
            maxMessagePayloadSize=self["max-message-size"],
            maxFramePayloadSize=self["max-frame-size"],
            maxRequestHeaderSize=self["max-header-size"],
            openHandshakeTimeout=self["open-handshake-timeout"],
            closeHandshakeTimeout=self["close-handshake-timeout"],
            autoPingInterval=self["auto-ping-interval"],
            autoPingTimeout=self["auto-ping-timeout"],
            messageTimeout=self["message-timeout"],
            partialMessageBudget=self["partial-message-budget"],
            allowedOrigins=self["origins"],
            compression=self["compression"],
            webStatus=self["status-page"],
            keepRequest=False,  # the echo never reads the request's headers
        )
        o.validate()
        return o

    def gnetOptions(self) -> list:
        """The gnet options these command-line options describe."""
        return [
            gnet.WithMulticore(self["multicore"]),
            gnet.WithNumEventLoop(self["num-event-loop"]),
            gnet.WithReusePort(self["reuseport"]),
            gnet.WithTicker(self["tick"] > 0),
            gnet.WithBacklog(self["backlog"]),
            gnet.WithReadBufferCap(self["read-buffer-size"]),
            gnet.WithShutdownTimeout(self["shutdown-timeout"]),
        ]


class _EchoService(MultiService):
    """
    The service tree's top: once its children stopped (the engine drained),
    removes the workers' statistics directory (multicore mode).
    """

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self.handler = handler

    def stopService(self) -> Any:
        def remove(result: Any) -> Any:
            path = getattr(self.handler, "statsDir", None)
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
            return result

        return super().stopService().addBoth(remove)


def _describe(address: str) -> str:
    """An address for the log: C{fd://N} also says what the socket is bound to."""
    if not address.startswith("fd://"):
        return address
    spec = gnet._addr.parseProtoAddr(address)
    return f"{address} ({spec.network}://{spec.address})"


def makeService(options: Options) -> MultiService:
    """
    The echo service: one L{gnetcompat.EngineService} under a
    C{MultiService}, plus the metrics site with C{--metrics}.
    """
    from gnetcompat.examples.wsecho import WebSocketEchoServer

    addrs = options["addresses"]
    handler = WebSocketEchoServer(
        addr=", ".join(_describe(a) for a in addrs),
        multicore=options["multicore"] or options["num-event-loop"] > 1,
        wsOptions=options["wsOptions"],
        tick=options["tick"],
        maxConnections=options["max-connections"],
        debug=options["log-level"] == "debug",
    )
    top = _EchoService(handler)
    svc = gnet.EngineService(handler, addrs, *options.gnetOptions())
    svc.setName("gnetecho")
    svc.setServiceParent(top)
    if options["metrics"] is not None:
        from gnetcompat._metrics import MetricsService

        metrics = MetricsService(options["metrics"], handler.engineStats)
        metrics.setName("metrics")
        metrics.setServiceParent(top)
    return top
