# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics of the echo service, and the engine-wide statistics
behind them and behind the status page (L{gnetcompat.echo.status}).

Design
======

Hot path: a handler counts in plain C{int} attributes of an L{EchoStats}
(C{__slots__}, no locks, no C{prometheus_client} call per message).  The
numbers become Prometheus samples only when the endpoint is scraped: a
custom collector (L{EchoCollector}) reads a L{Snapshot} and builds the
C{CounterMetricFamily}/C{GaugeMetricFamily} objects, and
C{prometheus_client} writes the exposition format.

Single process: the snapshot is read straight from the handler's
L{EchoStats}.

Multicore: each worker process counts its own connections in its own
L{EchoStats} and publishes it, every L{PUBLISH_INTERVAL} seconds (and when
it shuts down), into I{its own} small file C{<dir>/<pid>.stats}, C{mmap}ed
as fixed C{int64} slots (L{_LAYOUT}).  The directory is named by the
parent when it pickles the handler for the workers (so every worker gets its
name; pickling creates nothing), created private by the first worker that
boots, and removed when the parent's handler is collected or the process
exits; one left by a parent that was killed (C{SIGKILL}: no clean-up runs)
is removed by a later start (L{removeStaleStatsDirs}: every process using a
directory holds a shared C{flock} on its C{owner.lock}, and the locks go
with the processes).  The parent (which runs the twistd reactor and serves the metrics
site) sums the files at scrape time: counters of workers that died stay in
the sum (counters never go down), while the open-connections gauge only
counts workers whose pid is alive.  We did not use C{prometheus_client}'s
multiprocess mode: it needs C{PROMETHEUS_MULTIPROC_DIR} before the library
is imported and a C{Counter.inc()} (a lock and an mmap write) per event,
which is what the hot path must avoid; per-pid files also need no worker
index, which the engine does not give handlers.

Consequences: in multicore mode a scrape can lag the workers by up to
L{PUBLISH_INTERVAL}; a word is written with one aligned 8-byte store, so a
reader never sees a torn value, but two slots of one file may be from two
consecutive publications.  Connection closes, handshake failures and
protocol errors are counted when the connection is closed.

Metrics (prefix C{gnetecho_}): C{open_connections}, C{connections_accepted_total},
C{connections_closed_total{code}} (WebSocket close code of the closing
handshake, C{none} for a TCP drop or a connection that never upgraded,
C{other} for codes outside L{CLOSE_CODES}), C{messages_total{direction}},
C{payload_bytes_total{direction}} (message payload bytes, C{in}/C{out}),
C{handshake_failures_total}, C{protocol_errors_total{code}}, C{workers},
C{start_time_seconds}.

The endpoint is a separate C{twisted.web} site (C{--metrics DESCRIPTION},
any Twisted server endpoint string) serving the registry at C{/metrics}
with C{prometheus_client}'s encoders (the text format, or OpenMetrics when
the C{Accept} header asks for it; C{?name[]=} selects metrics), rendered
on the reactor thread; the echo port never serves it.

The site only answers C{GET} and C{HEAD} (the headers of the C{GET}
response, no body) without a body: another method, C{OPTIONS} included,
gets 405 with C{Allow: GET, HEAD} and a request announcing a body (C{Content-Length} > 0 or
C{Transfer-Encoding}) 413, as soon as its headers are in and before any of
the body is read, and the connection is closed.  The request line and each
header line are at most L{MAX_LINE} bytes (longer: 431), the whole header
block at most L{MAX_HEADERS_SIZE} bytes in at most L{MAX_HEADERS} headers,
and an idle connection is closed after L{IDLE_TIMEOUT} seconds.  A bare
port (C{9100}, C{tcp:9100}) binds loopback as C{--port} does
(L{metricsEndpoint}); an explicit non-loopback C{interface=} is honoured
with a warning.
"""

from __future__ import annotations

import ipaddress
import mmap
import os
import secrets
import shutil
import stat
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gnetcompat as gnet

__all__ = [
    "CLOSE_CODES",
    "PROTOCOL_ERROR_CODES",
    "EchoStats",
    "Snapshot",
    "StatsPublisher",
    "readStatsDir",
    "makeStatsDir",
    "ensureStatsDir",
    "removeStaleStatsDirs",
    "EchoCollector",
    "metricsRegistry",
    "metricsSite",
    "MetricsService",
    "RateMeter",
    "metricsEndpoint",
]

#: longest request line or header line of the metrics site
MAX_LINE = 4096
#: most bytes of request line and headers together
MAX_HEADERS_SIZE = 8192
#: most header lines in a request
MAX_HEADERS = 32
#: seconds an idle connection to the metrics site stays open
IDLE_TIMEOUT = 60.0

#: close codes with their own label value (others: C{other})
CLOSE_CODES = (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011)
#: close codes a protocol error fails a connection with (others: C{other})
PROTOCOL_ERROR_CODES = (1002, 1007, 1009)
#: seconds between two publications of a worker's counters
PUBLISH_INTERVAL = 0.5

_MAGIC = 0x676E657473746174  # "gnetstat"
# word layout of a worker's file
_SCALARS = (
    "magic",
    "pid",
    "open",
    "accepted",
    "messagesIn",
    "messagesOut",
    "bytesIn",
    "bytesOut",
    "handshakeFailures",
)
_CLOSED_LABELS = ("none", *(str(c) for c in CLOSE_CODES), "other")
_PROTO_LABELS = (*(str(c) for c in PROTOCOL_ERROR_CODES), "other")
_LAYOUT = (
    _SCALARS
    + tuple("closed:" + x for x in _CLOSED_LABELS)
    + tuple("proto:" + x for x in _PROTO_LABELS)
)
_WORDS = len(_LAYOUT)
_SIZE = _WORDS * 8
_CLOSED_AT = {x: _LAYOUT.index("closed:" + x) for x in _CLOSED_LABELS}
_PROTO_AT = {x: _LAYOUT.index("proto:" + x) for x in _PROTO_LABELS}
_SCALAR_AT = {x: _LAYOUT.index(x) for x in _SCALARS}


def _closedLabel(code: int | None) -> str:
    if code is None:
        return "none"
    return str(code) if code in CLOSE_CODES else "other"


def _protoLabel(code: int) -> str:
    return str(code) if code in PROTOCOL_ERROR_CODES else "other"


class EchoStats:
    """
    One process's counters: plain C{int}s, incremented on the hot path.

    C{closed} and C{protocolErrors} map a label (see L{CLOSE_CODES}) to a
    count; update them with L{connectionClosed}.
    """

    __slots__ = (
        "open",
        "accepted",
        "messagesIn",
        "messagesOut",
        "bytesIn",
        "bytesOut",
        "handshakeFailures",
        "closed",
        "protocolErrors",
    )

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.messagesIn = 0
        self.messagesOut = 0
        self.bytesIn = 0
        self.bytesOut = 0
        self.handshakeFailures = 0
        self.closed: dict[str, int] = {}
        self.protocolErrors: dict[str, int] = {}

    def connectionClosed(
        self, closeCode: int | None, handshakeFailed: bool = False, protocolError: int | None = None
    ) -> None:
        """
        Count a closed connection (C{open} is the caller's business).

        @param closeCode: the close code of its closing handshake, or
            C{None} (dropped, never upgraded).
        @param handshakeFailed: its opening handshake got an HTTP error.
        @param protocolError: the close code of the protocol error that
            failed it, or C{None}.
        """
        label = _closedLabel(closeCode)
        self.closed[label] = self.closed.get(label, 0) + 1
        if handshakeFailed:
            self.handshakeFailures += 1
        if protocolError is not None:
            p = _protoLabel(protocolError)
            self.protocolErrors[p] = self.protocolErrors.get(p, 0) + 1

    def snapshot(self, workers: int = 1) -> Snapshot:
        """These counters as a L{Snapshot}."""
        return Snapshot(
            open=self.open,
            accepted=self.accepted,
            messagesIn=self.messagesIn,
            messagesOut=self.messagesOut,
            bytesIn=self.bytesIn,
            bytesOut=self.bytesOut,
            handshakeFailures=self.handshakeFailures,
            closed=dict(self.closed),
            protocolErrors=dict(self.protocolErrors),
            workers=workers,
        )


@dataclass
class Snapshot:
    """Engine-wide numbers at one moment (the sum over the workers)."""

    open: int = 0
    accepted: int = 0
    messagesIn: int = 0
    messagesOut: int = 0
    bytesIn: int = 0
    bytesOut: int = 0
    handshakeFailures: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    protocolErrors: dict[str, int] = field(default_factory=dict)
    workers: int = 1


# -- the multicore files -----------------------------------------------------------


_STATS_PREFIX = "gnetecho-stats-"
#: the file in a stats directory its owner holds an exclusive C{flock} on
_OWNER_LOCK = "owner.lock"
#: a directory younger than this is never taken for stale (its owner may be locking it)
_STALE_AFTER = 10.0


def makeStatsDir(owner: Any) -> str:
    """
    Name a directory for the workers' files, without creating it (this
    runs when the handler is pickled, which must have no side effects): an
    unpredictable path in the temp directory, created by the first worker
    that boots (L{ensureStatsDir}).  It is removed, and this process's lock
    on it released, when C{owner} is collected or the process exits.
    """
    path = os.path.join(tempfile.gettempdir(), f"{_STATS_PREFIX}{secrets.token_hex(8)}")
    weakref.finalize(owner, _removeStatsDir, path)
    return path


#: the C{owner.lock} descriptors this process holds, by directory
_heldLocks: dict[str, int] = {}


def _removeStatsDir(path: str) -> None:
    shutil.rmtree(path, True)
    fd = _heldLocks.pop(path, None)
    if fd is not None:
        os.close(fd)


def holdStatsDir(path: str) -> bool:
    """
    Hold a shared C{flock} on C{path}'s C{owner.lock} for the life of this
    process (once per directory), creating the lock file if needed: while
    any process holds it, L{removeStaleStatsDirs} leaves the directory
    alone.  Returns C{False} when C{path} is not there (yet).
    """
    import fcntl

    if path in _heldLocks:
        return True
    try:
        fd = os.open(os.path.join(path, _OWNER_LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        # a stale-directory sweep that took the lock first removes the
        # directory: then the lock file we hold is no longer its
        if not os.path.samestat(os.fstat(fd), os.stat(os.path.join(path, _OWNER_LOCK))):
            raise OSError(f"{path} was removed")
    except OSError:
        os.close(fd)
        return False
    _heldLocks[path] = fd
    return True


def ensureStatsDir(path: str) -> None:
    """
    Create C{path} private (0700) unless another worker did, and hold its
    lock (L{holdStatsDir}); an existing one must be a directory of this
    user that no one else can open.  Directories left by killed services
    are removed first (L{removeStaleStatsDirs}).

    @raise OSError: C{path} exists as anything else (a symlink, another
        user's directory): nothing is published there.
    """
    removeStaleStatsDirs(os.path.dirname(path))
    for _ in range(3):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise OSError(
                    f"{path} exists and is not a private directory of this user"
                ) from None
        if holdStatsDir(path):
            return
    raise OSError(f"{path} keeps disappearing")


def removeStaleStatsDirs(parent: str | None = None, now: float | None = None) -> list[str]:
    """
    Remove the statistics directories in C{parent} (the temporary
    directory) that belong to this user and whose owner is gone: their
    C{owner.lock} is older than ten seconds and nobody holds its lock.
    Anything else (another user's, a symbolic link, a live owner's, a
    directory just being created) is left alone.

    @return: the directories removed.
    """
    import fcntl
    import stat

    parent = parent or tempfile.gettempdir()
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(_STATS_PREFIX):
            continue
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(path, _OWNER_LOCK), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # gone, not ours, or no lock file (not a directory we made)
        try:
            if now - os.fstat(fd).st_mtime < _STALE_AFTER:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner is alive
            shutil.rmtree(path, True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


class StatsPublisher:
    """A worker's file C{<dir>/<pid>.stats}: L{publish} copies an L{EchoStats} in."""

    def __init__(self, directory: str, stats: EchoStats) -> None:
        self.stats = stats
        self.path = os.path.join(directory, f"{os.getpid()}.stats")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, _SIZE)
            self._map: mmap.mmap | None = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._view: Any = memoryview(self._map).cast("q")
        self._view[_SCALAR_AT["pid"]] = os.getpid()
        self.publish()
        self._view[_SCALAR_AT["magic"]] = _MAGIC

    def publish(self) -> None:
        """Write the current counters (cheap: about 30 aligned stores)."""
        v, s = self._view, self.stats
        if v is None:
            return
        for name in _SCALARS[2:]:
            v[_SCALAR_AT[name]] = getattr(s, name)
        for label, n in s.closed.items():
            v[_CLOSED_AT[label]] = n
        for label, n in s.protocolErrors.items():
            v[_PROTO_AT[label]] = n

    def close(self) -> None:
        """Publish a last time and unmap (the file stays for the totals)."""
        if self._view is None:
            return
        self.stats.open = 0
        self.publish()
        self._view.release()
        self._view = None
        assert self._map is not None
        self._map.close()
        self._map = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def readStatsDir(directory: str) -> Snapshot:
    """
    Sum the workers' files: every counter of every file, the open gauge and
    the worker count of the files whose process is alive.
    """
    snap = Snapshot(workers=0)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return snap
    holdStatsDir(directory)  # the reader (the parent) keeps it from being taken for stale
    for name in names:
        if not name.endswith(".stats"):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as f:
                data = f.read(_SIZE)
        except OSError:
            continue
        if len(data) != _SIZE:
            continue
        v = memoryview(data).cast("q")
        if v[_SCALAR_AT["magic"]] != _MAGIC:
            continue
        if _alive(v[_SCALAR_AT["pid"]]):
            snap.workers += 1
            snap.open += v[_SCALAR_AT["open"]]
        for n in _SCALARS[3:]:
            setattr(snap, n, getattr(snap, n) + v[_SCALAR_AT[n]])
        for label, i in _CLOSED_AT.items():
            if v[i]:
                snap.closed[label] = snap.closed.get(label, 0) + v[i]
        for label, i in _PROTO_AT.items():
            if v[i]:
                snap.protocolErrors[label] = snap.protocolErrors.get(label, 0) + v[i]
    return snap


class RateMeter:
    """
    Messages per second, sampled when asked (no timer): over the last
    C{window} seconds of samples, or since C{start} on the first call.
    """

    def __init__(self, window: float = 10.0, now: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._now = now
        self._samples: deque[tuple[float, int]] = deque()
        self.start = now()

    def rate(self, total: int) -> float:
        """Record C{total} (a message count) now and return the rate."""
        t = self._now()
        samples = self._samples
        while samples and t - samples[0][0] > self.window:
            samples.popleft()
        if not samples or t - samples[-1][0] >= 1.0:
            samples.append((t, total))
        t0, n0 = samples[0] if t - samples[0][0] >= 1.0 else (self.start, 0)
        dt = t - t0
        return (total - n0) / dt if dt > 0 else 0.0


# -- prometheus ---------------------------------------------------------------------


class EchoCollector:
    """A C{prometheus_client} collector reading a L{Snapshot} at scrape time."""

    def __init__(self, source: Callable[[], Snapshot], startTime: float | None = None) -> None:
        self.source = source
        self.startTime = time.time() if startTime is None else startTime

    def collect(self) -> Iterator[Any]:
        """Build the metric families from one snapshot."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.source()
        yield GaugeMetricFamily("gnetecho_open_connections", "Open connections.", value=s.open)
        yield CounterMetricFamily(
            "gnetecho_connections_accepted", "Connections accepted.", value=s.accepted
        )
        closed = CounterMetricFamily(
            "gnetecho_connections_closed",
            "Connections closed, by WebSocket close code (none: TCP drop, never upgraded).",
            labels=["code"],
        )
        for label in _CLOSED_LABELS:
            if label in s.closed:
                closed.add_metric([label], s.closed[label])
        yield closed
        msgs = CounterMetricFamily("gnetecho_messages", "WebSocket messages.", labels=["direction"])
        msgs.add_metric(["in"], s.messagesIn)
        msgs.add_metric(["out"], s.messagesOut)
        yield msgs
        octets = CounterMetricFamily(
            "gnetecho_payload_bytes", "WebSocket message payload bytes.", labels=["direction"]
        )
        octets.add_metric(["in"], s.bytesIn)
        octets.add_metric(["out"], s.bytesOut)
        yield octets
        yield CounterMetricFamily(
            "gnetecho_handshake_failures",
            "Opening handshakes refused with an HTTP error.",
            value=s.handshakeFailures,
        )
        proto = CounterMetricFamily(
            "gnetecho_protocol_errors",
            "Connections failed for a protocol error, by close code.",
            labels=["code"],
        )
        for label in _PROTO_LABELS:
            if label in s.protocolErrors:
                proto.add_metric([label], s.protocolErrors[label])
        yield proto
        yield GaugeMetricFamily("gnetecho_workers", "Serving processes.", value=s.workers)
        yield GaugeMetricFamily(
            "gnetecho_start_time_seconds", "Start time (Unix seconds).", value=self.startTime
        )


def metricsRegistry(source: Callable[[], Snapshot], startTime: float | None = None) -> Any:
    """A fresh C{CollectorRegistry} holding an L{EchoCollector} (not the global one)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(EchoCollector(source, startTime))
    return registry


def _channel() -> Any:
    """
    The C{HTTPChannel} of the metrics site: GET and HEAD without a body,
    bounded lines and headers (see the module docstring).  A refused
    request is answered when its headers are complete, before any body is
    read; whatever follows on the connection is ignored.
    """
    from twisted.web.http import HTTPChannel

    class MetricsChannel(HTTPChannel):
        MAX_LENGTH = MAX_LINE
        totalHeadersSize = MAX_HEADERS_SIZE
        maxHeaders = MAX_HEADERS
        _refused = False
        #: the method of the request whose headers are being read (taken from
        #: its request line here: HTTPChannel keeps it only in a private)
        _method: bytes | None = None

        def _refuse(self, status: bytes, extra: bytes = b"") -> None:
            self._refused = True
            # connected: Twisted types the transport as Optional
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 "
                + status
                + b"\r\n"
                + extra
                + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.loseConnection()  # type: ignore[union-attr]

        def lineReceived(self, line: bytes) -> None:
            if self._refused:
                return
            if (
                self._method is None and line
            ):  # the request line (empty lines before it are skipped)
                self._method = line.split(b" ", 1)[0]
            super().lineReceived(line)

        def lineLengthExceeded(self, line: bytes) -> None:
            if not self._refused:
                self._refuse(b"431 Request Header Fields Too Large")

        def allHeadersReceived(self) -> None:
            # the Request learns its method only once the body is in: use
            # the request line's, before any of the body is read
            method, self._method = self._method, None
            if method not in ALLOWED_METHODS:
                self._refuse(
                    b"405 Method Not Allowed", b"Allow: " + b", ".join(ALLOWED_METHODS) + b"\r\n"
                )
            elif self.length != 0:  # a Content-Length > 0, or chunked (None)
                self._refuse(b"413 Content Too Large")
            else:
                super().allHeadersReceived()

        def allContentReceived(self) -> None:
            if not self._refused:
                super().allContentReceived()

        def rawDataReceived(self, data: bytes) -> None:
            if not self._refused:
                super().rawDataReceived(data)

    return MetricsChannel


#: the methods the metrics site serves (the C{Allow} header of its 405s)
ALLOWED_METHODS = (b"GET", b"HEAD")


def _metricsResource(registry: Any) -> Any:
    """
    The C{/metrics} resource: C{GET} renders C{registry} in the format the
    C{Accept} header asks for (C{prometheus_client.exposition.choose_encoder}:
    the text format, or OpenMetrics), restricted to the C{name[]} query
    arguments when there are any; C{HEAD} answers the same headers
    (C{Content-Type}, C{Content-Length}) without the body.
    (C{prometheus_client}'s own WSGI exporter refuses C{HEAD} with 405.)
    """
    from prometheus_client.exposition import choose_encoder
    from twisted.web.resource import Resource

    class MetricsResource(Resource):
        isLeaf = True
        allowedMethods = ALLOWED_METHODS

        def render_GET(self, request: Any) -> bytes:
            accept = request.getHeader(b"accept")
            encoder, contentType = choose_encoder(accept.decode("latin-1") if accept else "")
            names = [n.decode("utf-8", "replace") for n in request.args.get(b"name[]", [])]
            output: bytes = encoder(registry.restricted_registry(names) if names else registry)
            request.setHeader(b"content-type", contentType.encode("ascii"))
            return output

        def render_HEAD(self, request: Any) -> bytes:
            body = self.render_GET(request)
            request.setHeader(b"content-length", b"%d" % len(body))
            return b""

    return MetricsResource()


def metricsSite(registry: Any) -> Any:
    """
    A C{twisted.web} C{Site} serving C{registry} at C{/metrics} (nothing
    else), to GET and HEAD requests without a body, with bounded headers
    and an idle timeout (see the module docstring).
    """
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"metrics", _metricsResource(registry))
    site = Site(root, timeout=IDLE_TIMEOUT)
    # Twisted declares Factory.protocol as a method-like callable; it is a class
    site.protocol = _channel()  # type: ignore[method-assign]
    site.displayTracebacks = False
    return site


_LOOPBACK = {"tcp": "127.0.0.1", "tcp6": "\\:\\:1", "ssl": "127.0.0.1"}


def metricsEndpoint(description: str) -> tuple[str, str | None]:
    """
    The endpoint C{--metrics DESCRIPTION} listens on: a bare port (C{9100},
    C{tcp:9100}, C{tcp6:9100}, C{ssl:9100:...}) binds loopback
    (C{interface=127.0.0.1}, or C{::1} for C{tcp6}), as C{--port} does; an
    explicit interface (C{interface=}, or positional in Twisted's order) is
    kept.  Other endpoint types (C{unix:}, C{systemd:}) pass through.  The
    description is split by L{gnetcompat.parseEndpoint}, as Twisted splits
    it.

    @return: the description to listen on, and a warning to log when it
        binds an interface that is not loopback (else C{None}).
    @raise ValueError: a malformed description, or an argument the
        endpoint type does not take.
    """
    d = description.strip()
    if d.isdigit():
        d = f"tcp:{d}"
    endpoint = gnet.parseEndpoint(d)
    loopback = _LOOPBACK.get(endpoint.kind.lower())
    if loopback is None:
        return d, None
    interface = endpoint.named().get("interface")
    if interface is None:
        return f"{d}:interface={loopback}", None
    try:
        isLoopback = ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        isLoopback = False
    if isLoopback:
        return d, None
    return d, (
        f"--metrics listens on interface {interface}, not loopback: anyone who can reach "
        "it reads the metrics (put a firewall or an authenticating proxy in front)"
    )


def MetricsService(
    description: str,
    source: Callable[[], Snapshot],
    reactor: Any = None,
    startTime: float | None = None,
) -> Any:
    """
    A service listening on the endpoint C{description} (e.g.
    C{tcp:9100:interface=127.0.0.1}; a bare port binds loopback, see
    L{metricsEndpoint}) with L{metricsSite}; as with
    C{strports.service}, a bind failure at start stops twistd.

    @param description: a Twisted server endpoint description.
    @param source: returns the engine-wide L{Snapshot} at scrape time.
    @param reactor: the reactor to listen with (the global one by default).
    @param startTime: the Unix start time to report (now by default).
    @raise ValueError: for a bad endpoint description.
    """
    from twisted.application import strports
    from twisted.logger import Logger

    description, warning = metricsEndpoint(description)
    if warning is not None:
        Logger().warn("{why}", why=warning)
    site = metricsSite(metricsRegistry(source, startTime))
    if reactor is None:
        return strports.service(description, site)
    return strports.service(description, site, reactor=reactor)
