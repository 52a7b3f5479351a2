# -*- test-case-name: tests.test_tap -*-
"""
C{twistd gnetecho}: the gnet WebSocket echo server as a twistd plugin.

For example::

    twistd -n gnetecho --port 9080

Every option is checked at start; a bad value stops twistd with a message
naming the option.

Signals (the parent, twistd's pid): C{SIGTERM}/C{SIGINT} stop gracefully;
C{SIGUSR1} reopens the log file of C{--logfile PATH} (twistd's own: the
old file becomes C{PATH.1}); C{SIGHUP} reloads the TLS certificates when
TLS is served (the parent checks the files, then sends the checked bytes
to each worker over the engine's bus: workers never read them), else it is
logged and ignored.  Workers ignore C{SIGHUP} (a terminal hang-up reaches
the whole process group: the parent decides).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.python import usage

import gnetcompat as gnet
from gnetcompat.echo import EchoService, TLSReloadService, WebSocketEchoServer
from gnetcompat.echo.metrics import MetricsService, metricsEndpoint
from gnetcompat.options import MAX_BACKLOG
from gnetcompat.websocket import WebSocketOptions

_installGnetReactor: Callable[[], object] | None
try:
    from gnetcompat.reactor import install

    _installGnetReactor = install
except ImportError:  # pragma: no cover - no epoll (not Linux)
    _installGnetReactor = None

__all__ = [
    "Options",
    "makeService",
    "parseListen",
    "systemdDescriptor",
    "toGnetAddress",
    "unixMode",
]

_MIB = 1024 * 1024
#: ALPN protocols gnetecho offers over TLS (WebSocket and the status page are HTTP/1.1)
ALPN = ("http/1.1",)
#: --read-buffer-size: each read of a connection allocates this much
_MAX_READ_BUFFER = 64 * _MIB
#: --write-buffer-size: what each slow client may make us hold
_MAX_WRITE_BUFFER = 1024 * _MIB


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


def _count(name: str, minimum: int = 0, maximum: int | None = None) -> Any:
    def coerce(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--{name} takes an integer, not {value!r}") from None
        if n < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, not {n}")
        if maximum is not None and n > maximum:
            raise ValueError(f"--{name} must be <= {maximum}, not {n}")
        return n

    return coerce


def _backlog(value: str) -> int:
    """C{--backlog}: 0 (the OS maximum) to L{MAX_BACKLOG}."""
    n = _count("backlog")(value)
    if n > MAX_BACKLOG:
        raise ValueError(
            f"--backlog must be <= {MAX_BACKLOG} (the kernel caps it at somaxconn), not {n}"
        )
    return n


def _endpointBacklog(value: str, description: str) -> int:
    """The C{backlog=N} of an endpoint description: a whole number 1 to L{MAX_BACKLOG}."""
    if not value.isdigit() or not 1 <= int(value) <= MAX_BACKLOG:
        raise ValueError(
            f"backlog={value!r} in {description!r}: give a whole number 1-{MAX_BACKLOG}"
        )
    return int(value)


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
    "allowedOrigins": "--allowed-origins",
}

#: the arguments of a C{unix:} description gnetecho takes (Twisted's first two)
_UNIX_ARGUMENTS = ("address", "mode")


def _portNumber(text: str, description: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"bad port {text!r} in {description!r}: give 0-65535")
    return int(text)


def toGnetAddress(description: str) -> str:
    """
    Turn a C{--port}/C{--listen} value into a gnet address (L{parseListen}
    without the backlog).

    @raise ValueError: anything else (the message says what is accepted).
    """
    return parseListen(description)[0]


def parseListen(description: str) -> tuple[str, int | None]:
    """
    Turn a C{--port}/C{--listen} value into C{(gnet address, backlog)}:
    the backlog is the C{backlog=N} of a C{tcp:}/C{tcp6:} endpoint (1 to
    L{MAX_BACKLOG}), C{None} when not given.

    A bare number is C{tcp://127.0.0.1:N} (the seed's loopback bind); gnet
    addresses (C{tcp://...}, C{unix://...}, and gnetcompat's C{fd://N} for
    an inherited listening socket) pass through; the endpoint forms
    C{tcp:PORT[:interface=H][:backlog=N]}, C{tcp6:PORT[:interface=H][:backlog=N]}
    and C{unix:PATH[:mode=OCTAL]} are translated (C{ssl:} descriptions are taken by
    L{gnetcompat.TLSConfig.fromDescription} in L{Options.postOptions}); each
    is split by L{gnetcompat.parseEndpoint} as Twisted splits it (colons
    inside values escaped as C{\\:}: C{tcp6:9080:interface=\\:\\:1};
    positional arguments in the order of Twisted's parsers);
    Twisted's C{systemd:domain=INET:index=N} (or C{name=NAME}) becomes
    C{fd://3+N}, the socket systemd passed (L{systemdDescriptor}).

    @raise ValueError: anything else (the message says what is accepted).
    """
    d = description.strip()
    if d.isdigit():
        return f"tcp://127.0.0.1:{_portNumber(d, description)}", None
    if "://" in d:
        spec = gnet.parseProtoAddr(d)  # raises with gnet's error for a bad one
        if not spec.stream:
            raise ValueError(
                f"cannot serve WebSocket on {description!r}: give a tcp or unix address"
            )
        if spec.network != "unix" and spec.fd is None:
            host, sep, port = spec.address.rpartition(":")
            if not sep or (host and ":" in host and not host.startswith("[")):
                raise ValueError(f"missing port in {description!r}: give HOST:PORT")
            _portNumber(port, description)
        return d, None
    endpoint = gnet.parseEndpoint(d)
    kind = endpoint.kind
    if kind == "systemd":
        return toGnetAddress(f"fd://{systemdDescriptor(d)}"), None
    if kind in ("tcp", "tcp6"):
        values = endpoint.named()  # port, interface, backlog: nothing else
        if "port" in values:
            portNumber = _portNumber(values["port"], description)
            backlog = (
                _endpointBacklog(values["backlog"], description) if "backlog" in values else None
            )
            host = values.get("interface", "127.0.0.1" if kind == "tcp" else "::1")
            if ":" in host:
                host = f"[{host}]"
            return f"{kind}://{host}:{portNumber}", backlog
    if kind == "unix":
        path = endpoint.named(_UNIX_ARGUMENTS).get("address")
        if path:
            unixMode(description)  # mode= (the only other argument) is checked here
            return f"unix://{os.path.abspath(path)}", None
    raise ValueError(
        f"cannot listen on {description!r}: give a port number, tcp:PORT[:interface=HOST], "
        "tcp6:PORT[:interface=HOST], unix:PATH, systemd:domain=INET:index=N, or a gnet "
        "address such as tcp://0.0.0.0:9080"
    )


def unixMode(description: str) -> int | None:
    """
    The C{mode=} of a C{unix:PATH[:mode=OCTAL]} description (as Twisted's
    C{unix} endpoint: C{mode=660}, C{mode=0660}), or C{None}: the socket
    file then gets the mode the process umask leaves (0755 under umask 022:
    only its owner can connect), as Go's listener.

    @raise ValueError: another argument, or not permission bits in octal.
    """
    if not description.strip().startswith("unix:"):
        return None
    given = gnet.parseEndpoint(description.strip()).named(_UNIX_ARGUMENTS).get("mode")
    if given is None:
        return None
    text = given.lower().removeprefix("0o")
    if not text or not all(c in "01234567" for c in text) or int(text, 8) > 0o777:
        raise ValueError(
            f"bad mode {given!r} in {description!r}: give octal permission bits such as mode=0660"
        )
    return int(text, 8)


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
    if (
        _installGnetReactor is None
        or "twisted.internet.reactor" in sys.modules
        or not sys.platform.startswith("linux")
    ):
        return
    _installGnetReactor()


class Options(usage.Options):
    """Command-line options of C{twistd gnetecho}."""

    synopsis = "[options]"
    longdesc = (
        "The gnet WebSocket echo server on gnetcompat: every text or binary message is "
        "echoed with its opcode. Autobahn does the WebSocket protocol."
    )
    optParameters = [
        [
            "port",
            "p",
            None,
            "Port number (binds 127.0.0.1) or an address: tcp:PORT[:interface=H], "
            "tcp6:PORT, unix:PATH[:mode=0660] (default: the umask decides), "
            "systemd:domain=INET:index=N, tcp://HOST:PORT, unix:///PATH, "
            "ssl:PORT:privateKey=KEY:certKey=CERT[:extraCertChain=F][:dhParameters=F]"
            "[:interface=H] (TLS) "
            "(default: 9080, unless --listen is given).",
            None,
        ],
        [
            "multicore",
            None,
            True,
            "One worker process per CPU (true/false). Each process has its own copy of "
            "the echo handler: it keeps no state between connections, so the processes "
            "serve as one ([connected-count=N], the status page and the metrics are "
            "engine-wide). A library user's gnet.WithMulticore means event loops in one "
            "process; gnetecho uses process workers (gnet.WithProcessWorkers).",
            _bool("multicore"),
        ],
        [
            "num-event-loop",
            None,
            0,
            "Exact number of worker processes (0: by --multicore).",
            _count("num-event-loop", 0, 256),
        ],
        [
            "workers",
            None,
            0,
            "Exact number of worker processes; overrides --multicore and "
            "--num-event-loop (0: by them).",
            _count("workers", 0, 256),
        ],
        [
            "reuseport",
            None,
            True,
            "Each worker binds its own SO_REUSEPORT socket (true/false).",
            _bool("reuseport"),
        ],
        ["tick", None, 3.0, "Seconds between [connected-count=N] log lines.", _seconds("tick")],
        [
            "max-message-size",
            None,
            16 * _MIB,
            "Largest message in bytes (bigger: close 1009; 0: no limit).",
            _count("max-message-size"),
        ],
        [
            "max-frame-size",
            None,
            16 * _MIB,
            "Largest frame payload in bytes (close 1009; 0: no limit).",
            _count("max-frame-size"),
        ],
        [
            "max-header-size",
            None,
            16 * 1024,
            "Largest HTTP request header block of the handshake (bigger: HTTP 431).",
            _count("max-header-size", 1),
        ],
        [
            "open-handshake-timeout",
            None,
            5.0,
            "Seconds a client has to complete the opening handshake (0: none).",
            _seconds("open-handshake-timeout"),
        ],
        [
            "close-handshake-timeout",
            None,
            1.0,
            "Seconds the peer has to answer our Close frame.",
            _seconds("close-handshake-timeout"),
        ],
        [
            "auto-ping-interval",
            None,
            20.0,
            "Ping a connection once nothing was received from it for this many seconds (0: off).",
            _seconds("auto-ping-interval"),
        ],
        [
            "auto-ping-timeout",
            None,
            20.0,
            "Drop a connection from which nothing (pong or other) arrives "
            "this many seconds after a ping (0: never; needs --auto-ping-interval).",
            _seconds("auto-ping-timeout"),
        ],
        [
            "message-timeout",
            None,
            60.0,
            "Seconds a frame or message may stay partly received (then close 1008; 0: no limit).",
            _seconds("message-timeout"),
        ],
        [
            "partial-message-budget",
            None,
            64 * _MIB,
            "Bytes all connections of a worker may hold "
            "in partly received messages; going over closes the connection holding one the "
            "longest (1013), not the newcomer (0: no limit; at least --max-message-size).",
            _count("partial-message-budget"),
        ],
        [
            "allowed-origins",
            None,
            "*",
            "Comma-separated origins allowed to connect, as "
            "browsers send them: scheme://host[:port] (default ports implied; *.host for "
            "subdomains, :* for any port), or * for any (others: HTTP 403).",
            None,
        ],
        [
            "compression",
            None,
            True,
            "Accept permessage-deflate (true/false).",
            _bool("compression"),
        ],
        [
            "max-connections",
            None,
            0,
            "Refuse connections beyond this many, engine-wide, with HTTP 503 (0: no limit).",
            _count("max-connections"),
        ],
        [
            "backlog",
            None,
            0,
            f"Listen backlog of every listener (0: the OS maximum; at most {MAX_BACKLOG}).",
            _backlog,
        ],
        [
            "read-buffer-size",
            None,
            256 * 1024,
            "Bytes taken per read from a connection "
            "(gnet's ReadBufferCap, rounded up to a power of two; 256 KiB reads a 64 KiB "
            "message at once, gnet's 64 KiB default needs two reads). At most 64 MiB.",
            _count("read-buffer-size", 1, _MAX_READ_BUFFER),
        ],
        [
            "write-buffer-size",
            None,
            64 * 1024,
            "Bytes of replies that may wait for a slow "
            "client before reading from it pauses (gnet's WriteBufferCap, rounded up to a "
            "power of two). At most 1 GiB.",
            _count("write-buffer-size", 1, _MAX_WRITE_BUFFER),
        ],
        [
            "log-level",
            None,
            "info",
            "debug shows every message and connection; info, warn, error.",
            None,
        ],
        [
            "shutdown-timeout",
            None,
            5.0,
            "Seconds a graceful shutdown waits for closing handshakes before aborting connections.",
            _seconds("shutdown-timeout"),
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this Twisted endpoint; "
            "a bare port (9100, tcp:9100) binds 127.0.0.1, tcp:9100:interface=0.0.0.0 all "
            "interfaces (default: off).",
            None,
        ],
        [
            "heartbeat-timeout",
            None,
            5.0,
            "Seconds a worker process may go without a heartbeat "
            "(stopped, or blocked) before it is killed and replaced (0: never; else 0.5-3600).",
            _seconds("heartbeat-timeout"),
        ],
        [
            "status-page",
            None,
            True,
            "Answer a plain GET / on the echo port with an HTML status page (false: HTTP 426).",
            _bool("status-page"),
        ],
        [
            "tls-cert",
            None,
            None,
            "Serve TLS (wss://, https:// for the status page) on every "
            "--port/--listen address with this PEM certificate (chain may follow the leaf); "
            "ssl: descriptions keep their own files. SIGHUP reloads it.",
            None,
        ],
        [
            "tls-key",
            None,
            None,
            "The PEM private key for --tls-cert (default: in the --tls-cert file).",
            None,
        ],
    ]

    optFlags = [
        ["allow-null-origin", None, "Also allow Origin: null (sandboxed iframes, file: pages)."],
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
        backlogs: dict[int, str] = {}  # value -> the option that gave it
        if self["backlog"]:
            backlogs[self["backlog"]] = f"--backlog {self['backlog']}"
        tls: dict = {}
        modes = set()
        for name, value in given + [("listen", v) for v in self["listen"]]:
            backlog = None
            try:
                if str(value).strip().startswith("ssl:"):
                    addr, config = gnet.TLSConfig.fromDescription(str(value).strip(), ALPN)
                    config.check()
                    tls[addr] = config
                else:
                    addr, backlog = parseListen(str(value))
                    modes.add(unixMode(str(value)))
            except (ValueError, gnet.GnetError) as e:
                raise usage.UsageError(f"--{name}: {e}") from None
            addrs.append(addr)
            if backlog is not None:
                backlogs.setdefault(backlog, f"--{name} {value}")
        if len(backlogs) > 1:
            raise usage.UsageError(
                "--listen backlog=: the engine has one listen backlog for all its listeners; "
                f"these differ: {', '.join(backlogs.values())}"
            )
        if backlogs:  # backlog=N of an endpoint is the engine's (WithBacklog), for every listener
            self["backlog"] = next(iter(backlogs))
        self["addresses"] = addrs
        modes.discard(None)
        if len(modes) > 1:
            raise usage.UsageError(
                "--listen: give every unix socket the same mode= (one engine, one mode)"
            )
        self["unix-mode"] = modes.pop() if modes else None
        if self["tls-key"] is not None and self["tls-cert"] is None:
            raise usage.UsageError("--tls-key needs --tls-cert")
        if self["tls-cert"] is not None:
            config = gnet.TLSConfig(self["tls-cert"], self["tls-key"], alpn=ALPN)
            try:
                config.check()
            except gnet.GnetError as e:
                raise usage.UsageError(f"--tls-cert: {e}") from None
            tls[None] = config
        self["tls"] = tls
        if self["log-level"] not in ("debug", "info", "warn", "error"):
            raise usage.UsageError(
                f"--log-level: debug, info, warn or error, not {self['log-level']!r}"
            )
        if self["auto-ping-timeout"] and not self["auto-ping-interval"]:
            raise usage.UsageError("--auto-ping-timeout needs --auto-ping-interval")
        origins = [o.strip() for o in self["allowed-origins"].split(",") if o.strip()]
        if not origins:
            raise usage.UsageError("--allowed-origins: give at least one pattern (* for any)")
        self["origins"] = origins  # checked with the other WebSocket options below
        if self["metrics"] is not None:
            from twisted.internet import reactor
            from twisted.internet.endpoints import serverFromString

            try:
                serverFromString(reactor, metricsEndpoint(self["metrics"])[0])
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError(
                    f"--metrics: bad endpoint {self['metrics']!r}: {e}"
                ) from None
        try:
            self["policy"] = gnet.SupervisionPolicy(heartbeatTimeout=self["heartbeat-timeout"])
        except ValueError as e:
            raise usage.UsageError(f"--heartbeat-timeout: {e}") from None
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
            allowNullOrigin=bool(self["allow-null-origin"]),
            compression=self["compression"],
            webStatus=self["status-page"],
            keepRequest=False,  # the echo never reads the request's headers
        )
        o.validate()
        return o

    def processWorkers(self) -> bool | int:
        """
        C{WithProcessWorkers}' argument: C{--workers N}, else one per CPU
        (C{True}, or C{--num-event-loop} of them) with C{--multicore} or
        C{--num-event-loop} above 1, else 0 (one process).
        """
        if self["workers"]:
            return int(self["workers"])
        if self["multicore"] or self["num-event-loop"] > 1:
            return True
        return 0

    def gnetOptions(self) -> list:
        """The gnet options these command-line options describe."""
        return [
            gnet.WithProcessWorkers(self.processWorkers()),
            gnet.WithNumEventLoop(self["num-event-loop"] if self.processWorkers() is True else 0),
            gnet.WithReusePort(self["reuseport"]),
            gnet.WithTicker(self["tick"] > 0),
            gnet.WithBacklog(self["backlog"]),
            gnet.WithReadBufferCap(self["read-buffer-size"]),
            gnet.WithWriteBufferCap(self["write-buffer-size"]),
            gnet.WithShutdownTimeout(self["shutdown-timeout"]),
            gnet.WithUnixSocketMode(self.get("unix-mode")),
        ] + [gnet.WithTLS(config, address=addr) for addr, config in self["tls"].items()]


def _describe(address: str, tls: dict | None = None) -> str:
    """
    An address for the log: C{fd://N} also says what the socket is bound
    to; a TLS listener says so.
    """
    suffix = " (TLS)" if tls and (address in tls or None in tls) else ""
    if not address.startswith("fd://"):
        return address + suffix
    spec = gnet.parseProtoAddr(address)
    return f"{address} ({spec.network}://{spec.address}){suffix}"


def makeService(options: Options) -> MultiService:
    """
    The echo service: one L{gnetcompat.EngineService} under a
    C{MultiService}, plus the metrics site with C{--metrics}.
    """
    addrs = options["addresses"]
    handler = WebSocketEchoServer(
        addr=", ".join(_describe(a, options["tls"]) for a in addrs),
        multicore=bool(options.processWorkers()),
        wsOptions=options["wsOptions"],
        tick=options["tick"],
        maxConnections=options["max-connections"],
        debug=options["log-level"] == "debug",
    )
    top = EchoService(handler)
    svc = gnet.EngineService(handler, addrs, *options.gnetOptions(), policy=options["policy"])
    svc.setName("gnetecho")
    svc.setServiceParent(top)
    if options["tls"]:
        reload = TLSReloadService(svc)
        reload.setName("tls-reload")
        reload.setServiceParent(top)
    if options["metrics"] is not None:
        metrics = MetricsService(options["metrics"], handler.engineStats)
        metrics.setName("metrics")
        metrics.setServiceParent(top)
    return top
