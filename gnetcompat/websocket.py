# -*- test-case-name: tests.test_wsecho,tests.test_wsfuzz -*-
"""
WebSocket for gnet handlers, with Autobahn doing all protocol work.

Shaped like the gobwas/ws calls the gnet WebSocket example uses, so it ports
line by line::

    class Server(gnet.BuiltinEventEngine):
        def OnOpen(self, c):
            c.SetContext(websocket.WebSocketConn(c))        # the per-conn codec
            return None, gnet.None_

        def OnTraffic(self, c):
            ws = c.Context()
            for msg in ws.ReadClientData():                  # upgrade + decode
                ws.WriteServerMessage(msg.opcode, msg.payload)  # echo
            return gnet.None_

        def OnClose(self, c, err):
            c.Context().ConnectionLost(err)

Unlike the seed (spec §17.3) it is correct for handshakes and frames split
or batched across reads, bytes right after the handshake, control frames
between fragments, invalid UTF-8 (1007), oversized messages (1009) and
protocol errors (1002): a violation closes only its connection, with a
closing handshake, after the echoes of the messages decoded before it.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from ._wsproto import (
    OPCODE_BINARY,
    OPCODE_TEXT,
    STATUS_PAGE_HEADERS,
    Message,
    WebSocketOptions,
    WebSocketSession,
)

__all__ = [
    "WebSocketConn",
    "WebSocketOptions",
    "Message",
    "OPCODE_TEXT",
    "OPCODE_BINARY",
    "WebSocketSession",
    "STATUS_PAGE_HEADERS",
]


class _ConnSink:
    """What Autobahn writes goes to the gnet Conn, in order."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        conn = self.conn
        if not conn.closed:
            conn.driverWrite(data)

    def writeSequence(self, data: list[bytes]) -> None:
        conn = self.conn
        if not conn.closed:
            conn.driverWriteSequence(data)

    def loseConnection(self) -> None:
        conn = self.conn
        if not conn.closed and not conn.driverEngineStopped:
            conn.Close()

    def abortConnection(self) -> None:
        conn = self.conn
        conn.driverAbort()


class WebSocketConn:
    """
    The WebSocket state of one gnet Conn (keep it as the Conn's Context).

    @ivar session: the L{WebSocketSession} (Autobahn's protocol inside).
    """

    __slots__ = ("conn", "session", "_readPaused")

    def __init__(
        self, conn: Any, options: WebSocketOptions | None = None, reactor: Any = None
    ) -> None:
        """
        @param conn: the gnet Conn, in its C{OnOpen}.
        @param options: limits, timeouts, compression; safe defaults when C{None}.
        @param reactor: the clock for the session's timers (the engine's reactor by default).
        """
        self.conn = conn
        self._readPaused = False
        t = conn.driverTransport
        self.session = WebSocketSession(
            _ConnSink(conn),
            options,
            peer=t.getPeer(),
            host=t.getHost(),
            reactor=reactor or conn.driverClock,
        )

    @property
    def upgraded(self) -> bool:
        """True once the opening handshake completed."""
        return self.session.upgraded

    @property
    def request(self) -> Any:
        """
        Autobahn's C{ConnectionRequest} (path, headers...) after the upgrade
        (C{None} before it, and after it with C{keepRequest=False}).
        """
        return self.session.request

    def ReadClientData(self) -> list[Message]:
        """
        Drain the Conn's inbound bytes into the session (the upgrade happens
        on the first traffic) and return the complete client messages.

        If a violation or a Close frame followed those messages in the same
        read, the close waits until they were answered: it is sent by
        L{Flush}, or on the next call (a C{Wake} is queued for that).

        A compressed message is inflated in bounded steps: while the session
        is L{busy<WebSocketSession.busy>}, reading from
        the connection is paused and a C{Wake} brings the next step, after
        the reactor served the other connections and, when more than
        C{WriteBufferCap} bytes of replies wait, after the peer took them.
        """
        conn = self.conn
        data = conn.Next(-1)
        session = self.session
        msgs = session.feed(data)
        if session.busy:
            # the next step after the reactor served the others, and after
            # the peer took our replies when they are over WriteBufferCap
            # (an echo of inflated input must not queue without bound)
            conn.driverWhenDrained(conn.Wake)
            if not self._readPaused:
                self._readPaused = True
                conn.driverPauseReading()
        elif self._readPaused:
            self._readPaused = False
            conn.driverResumeReading()
        if msgs and session.holding:  # a close waits behind these messages
            conn.Wake()
        return msgs

    def WriteServerMessage(self, opcode: int, payload: bytes) -> None:
        """Send a message with this opcode (1 text, 2 binary) to the client."""
        self.session.sendMessage(opcode, payload)

    def Flush(self) -> None:
        """Send a close held back behind the replies of the last read now."""
        self.session.flushFailure()

    def Close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (1001 when the server goes away)."""
        self.session.close(code, reason)

    def ConnectionLost(self, err: BaseException | None = None) -> None:
        """Tell the session the Conn closed (call from C{OnClose}); stops its timers."""
        self.session.connectionLost(Failure(err) if err is not None else None)
