# -*- test-case-name: tests.test_wsecho -*-
"""
The echo service's handler: the gnet WebSocket echo server (gnet-examples'
websocket/server, whose short port is L{gnetcompat.examples.wsecho}) with
what a production service adds: statistics for the metrics endpoint and the
status page, a connection limit, per-message logging at debug level only,
and a graceful 1001 shutdown.

Same observable behaviour as the seed: every text or binary message is echoed
with its opcode, a per-connection codec lives in the Conn's context, the
connection count is logged every 3 s as C{[connected-count=N]} (engine-wide,
in multicore mode too).  Fixed where the seed is wrong (spec §17.3): split
and batched handshakes and frames, bytes after the handshake, control frames
between fragments, bounded sizes, close codes on violations, echoes before a
close.

Run it as the service: C{twistd -n gnetecho --port 9080}.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

import gnetcompat as gnet
from gnetcompat.echo.metrics import (
    PUBLISH_INTERVAL,
    EchoStats,
    RateMeter,
    Snapshot,
    StatsPublisher,
    ensureStatsDir,
    makeStatsDir,
    readStatsDir,
)
from gnetcompat.echo.status import STATUS_HEADERS, StatusInfo, renderStatus
from gnetcompat.errors import ErrEOF
from gnetcompat.websocket import WebSocketConn, WebSocketOptions

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n"
    b"too many connections"
)


def checkNvx(log: Logger) -> bool:
    """
    Report whether Autobahn's NVX C helpers (masking, UTF-8 validation) are
    in use; without them large messages are about 80 times slower.
    """
    from autobahn.websocket import USES_NVX

    if USES_NVX:
        log.debug("autobahn NVX (C masking and UTF-8 validation) is on")
    else:
        log.warn(
            "autobahn NVX is off (AUTOBAHN_USE_NVX=0 or not built): masking and UTF-8 "
            "validation fall back to pure Python, about 80x slower for large messages"
        )
    return bool(USES_NVX)


class WebSocketEchoServer(gnet.BuiltinEventEngine):
    """
    The seed's C{wsServer}: an echo handler speaking WebSocket on every Conn.

    @ivar connected: this worker's open connections (the tick log uses the
        engine-wide C{CountConnections()} instead).
    @ivar stats: this process's counters (L{gnetcompat.echo.metrics.EchoStats});
        L{engineStats} gives the engine-wide numbers.
    @ivar statsDir: in multicore mode, the directory where every worker
        publishes its counters (named when the handler is pickled for the
        workers, created by the first worker's C{OnBoot}), else C{None}.
    """

    log = Logger(namespace="gnetecho")

    def __init__(
        self,
        addr: str = "tcp://127.0.0.1:9080",
        multicore: bool = True,
        wsOptions: WebSocketOptions | None = None,
        tick: float = 3.0,
        maxConnections: int = 0,
        debug: bool = False,
    ) -> None:
        self.addr = addr
        self.multicore = multicore
        # the echo never reads the request's headers: let them go after the handshake
        self.wsOptions = wsOptions or WebSocketOptions(keepRequest=False)
        self.wsOptions.validate()
        #: what every connection's session gets: C{wsOptions} with this
        #: server's status page (built on first use, L{_connOptions})
        self._sessionOptions: WebSocketOptions | None = None
        self.tick = tick
        self.maxConnections = maxConnections
        #: per-message and per-connection debug logs (off: nothing is formatted)
        self.debug = debug
        self.eng: Any = None
        self.connected = 0
        self._sockets: dict = {}
        self._drained: Deferred | None = None
        self.stats = EchoStats()
        self.statsDir: str | None = None
        self.startedAt: float | None = None
        self._publisher: StatsPublisher | None = None
        self._publishing: Any = None
        self._rate: RateMeter | None = None

    def __getstate__(self) -> dict:
        # a handler travels to worker processes before OnBoot: only settings,
        # plus the name of the directory where the workers publish their
        # counters (no file or directory is created here: pickling has no
        # side effects; the workers create it in OnBoot)
        if self.statsDir is None:
            self.statsDir = makeStatsDir(self)
        if self.startedAt is None:
            self.startedAt = time.time()
        state = self.__dict__.copy()
        state.update(
            eng=None,
            connected=0,
            _sockets={},
            _drained=None,
            stats=EchoStats(),
            _publisher=None,
            _publishing=None,
            _rate=None,
            _sessionOptions=None,
        )
        return state

    def engineStats(self) -> Snapshot:
        """Engine-wide numbers: this process's, or the sum of the workers' files."""
        if self.statsDir is not None:
            return readStatsDir(self.statsDir)
        return self.stats.snapshot()

    def statusPage(self) -> str:
        """The HTML status page (L{gnetcompat.echo.status}) with engine-wide numbers."""
        snap = self.engineStats()
        if self._rate is None:
            self._rate = RateMeter()
        conns = self.eng.CountConnections() if self.eng is not None else snap.open
        return renderStatus(
            StatusInfo(
                version=gnet.__version__,
                uptime=time.time() - (self.startedAt or time.time()),
                workers=max(snap.workers, 1),
                connections=conns,
                messages=snap.messagesIn,
                rate=self._rate.rate(snap.messagesIn),
            )
        )

    def OnBoot(self, eng: Any) -> gnet.Action:
        self.eng = eng
        checkNvx(self.log)
        if self.startedAt is None:
            self.startedAt = time.time()
        if self.statsDir is not None:
            # a multicore worker: publish this process's counters for the parent
            from twisted.internet.task import LoopingCall

            try:
                ensureStatsDir(self.statsDir)  # pickling only named it
                self._publisher = StatsPublisher(self.statsDir, self.stats)
            except OSError as e:
                self.log.warn("not publishing this worker's statistics: {err}", err=e)
            else:
                self._publishing = LoopingCall(self._publisher.publish)
                self._publishing.clock = eng.reactor
                self._publishing.start(PUBLISH_INTERVAL, now=False)
        self.log.info(
            "echo server with multi-core={multicore} is listening on {addr}",
            multicore=self.multicore,
            addr=self.addr,
        )
        return gnet.None_

    def OnOpen(self, c: Any) -> tuple[bytes | None, gnet.Action]:
        self.connected += 1
        stats = self.stats
        stats.accepted += 1
        stats.open += 1
        if self.maxConnections and self.eng.CountConnections() > self.maxConnections:
            self.log.warn(
                "refusing conn[{remote}]: {n} connections open (--max-connections {m})",
                remote=c.RemoteAddr(),
                n=self.eng.CountConnections(),
                m=self.maxConnections,
            )
            return _BUSY, gnet.Close
        ws = WebSocketConn(c, self._sessionOptions or self._connOptions())
        c.SetContext(ws)
        self._sockets[c] = ws
        return None, gnet.None_

    def _connOptions(self) -> WebSocketOptions:
        """
        The sessions' options: C{wsOptions}, with this server's status page
        (L{statusPage}, L{STATUS_HEADERS}) unless they name their own.
        """
        options = self.wsOptions
        if options.statusPage is None:
            options = dataclasses.replace(
                options, statusPage=self.statusPage, statusPageHeaders=STATUS_HEADERS
            )
        self._sessionOptions = options
        return options

    def OnClose(self, c: Any, err: BaseException | None) -> gnet.Action:
        if err is not None and not isinstance(err, ErrEOF):
            self.log.warn(
                "error occurred on connection={remote}, {err}", remote=c.RemoteAddr(), err=err
            )
        self.connected -= 1
        self.stats.open -= 1
        ws = self._sockets.pop(c, None)
        if ws is not None:
            ws.ConnectionLost(err)
            s = ws.session
            self.stats.connectionClosed(s.closeCode, s.handshakeFailed, s.protocolError)
        else:
            self.stats.connectionClosed(None)
        if self.debug:
            self.log.debug("conn[{remote}] disconnected", remote=c.RemoteAddr())
        if self._drained is not None and not self._sockets:
            d, self._drained = self._drained, None
            d.callback(None)
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        ws = c.Context()
        if ws is None:
            c.Discard(-1)
            return gnet.None_
        msgs = ws.ReadClientData()
        if not msgs:
            return gnet.None_
        size = 0
        for msg in msgs:
            size += len(msg.payload)
            if self.debug:
                self.log.debug(
                    "conn[{remote}] receive [op={op}] [msg={size} bytes]",
                    remote=c.RemoteAddr(),
                    op=msg.opcode,
                    size=len(msg.payload),
                )
            ws.WriteServerMessage(msg.opcode, msg.payload)
        stats = self.stats
        stats.messagesIn += len(msgs)
        stats.messagesOut += len(msgs)
        stats.bytesIn += size
        stats.bytesOut += size
        return gnet.None_

    def OnTick(self) -> tuple[float, gnet.Action]:
        self.log.info("[connected-count={count}]", count=self.eng.CountConnections())
        return self.tick, gnet.None_

    # gnetcompat extension: the engine waits for a returned Deferred
    def OnShutdown(self, eng: Any) -> Deferred[Any] | None:
        """Going away: start a 1001 closing handshake on every WebSocket and wait for them."""
        if not self._sockets:
            self._stopPublishing(None)
            return succeed(None)
        self.log.info("shutting down: closing {n} WebSocket(s) with 1001", n=len(self._sockets))
        self._drained = Deferred()
        for c, ws in list(self._sockets.items()):
            if ws.upgraded:
                ws.Close(1001, "going away")
            else:
                c.Close()
        return self._drained.addBoth(self._stopPublishing)

    def _stopPublishing(self, result: Any) -> Any:
        if self._publishing is not None and self._publishing.running:
            self._publishing.stop()
        if self._publisher is not None:
            self._publisher.close()
        return result
