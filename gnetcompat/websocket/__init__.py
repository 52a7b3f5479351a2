# -*- test-case-name: tests.test_wsecho,tests.test_wsproto,tests.test_autobahncompat -*-
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

The package, one job per module (lowest first; the layers are import-linter
contracts in C{pyproject.toml}):

  - L{_origin}: which C{Origin} may connect;
  - L{_options}: the settings (L{WebSocketOptions}, the status page with
    them) and L{Message};
  - L{_budget}: the partial-message budget and message timeout of a reactor;
  - L{_xormask}: the masker for small payloads;
  - L{_autobahncompat}: every Autobahn subclass and override, and the
    Autobahn factory per settings;
  - L{_session}: the session (L{WebSocketSession} over any byte stream,
    L{WebSocketConn} over a gnet C{Conn}).

The path of one message
=======================

One object of this package per connection, the L{WebSocketConn} (a
L{WebSocketSession}), and its Autobahn protocol (a
L{SessionProtocol<_autobahncompat.SessionProtocol>}): two objects, and
four modules of the library (C{_protocol}, C{_conn}, C{websocket._session},
C{websocket._autobahncompat}), besides Twisted, Autobahn and the handler:

  - in: C{_protocol} (the Twisted skin's C{dataReceived}) → C{_conn}
    (C{Conn.driverFeed}, C{driverTraffic}) → the handler's C{OnTraffic} →
    C{_session} (C{WebSocketConn.ReadClientData}, C{feed}) →
    C{_autobahncompat} (C{SessionProtocol.receive}) → Autobahn's frame
    parser → C{_autobahncompat} (C{onMessageEnd}, C{onMessage}: the
    protocol's inbox) → returned by C{feed} to the handler;
  - out: the handler → C{_session} (C{WriteServerMessage}, C{sendMessage})
    → C{_autobahncompat} (C{SessionProtocol.sendMessage} builds the frame)
    → C{_session} (C{WebSocketConn.write}, the protocol's transport) →
    C{_conn} (C{Conn.driverWrite}).

The session reaches its C{Conn} through the typed
L{ConnDriver<gnetcompat._conn.ConnDriver>}; a partly received message also
passes L{_budget}, and a held close (see L{_session}) waits in the session.
"""

from ._options import OPCODE_BINARY, OPCODE_TEXT, STATUS_PAGE_HEADERS, Message, WebSocketOptions
from ._session import WebSocketConn, WebSocketSession

__all__ = [
    "WebSocketConn",
    "WebSocketOptions",
    "Message",
    "OPCODE_TEXT",
    "OPCODE_BINARY",
    "WebSocketSession",
    "STATUS_PAGE_HEADERS",
]
