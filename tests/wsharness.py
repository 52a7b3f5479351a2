"""
A minimal Twisted echo server over L{gnetcompat.websocket.WebSocketSession}.

Temporary: it drives the session the way the gnet layer will (feed, answer
every message, flush the held failure) so the Autobahn TestSuite can be run
against the session before the gnet core exists.

Run it with::

    python -m tests.wsharness --port 9001
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from gnetcompat.websocket import WebSocketOptions, WebSocketSession

log = Logger()


class EchoProtocol(Protocol):
    """
    Echo every WebSocket message back, with the same opcode.
    """

    session: WebSocketSession | None = None

    def connectionMade(self) -> None:
        """
        Create the session over this transport.
        """
        self.transport.setTcpNoDelay(True)
        self.session = WebSocketSession(
            self.transport,
            self.factory.options,
            peer=self.transport.getPeer(),
            host=self.transport.getHost(),
            reactor=self.factory.reactor,
        )

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the session, echo what it decoded, then release a held close.
        """
        session = self.session
        assert session is not None
        for message in session.feed(data):
            session.sendMessage(message.opcode, message.payload)
        session.flushFailure()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Tell the session the stream is gone.
        """
        if self.session is not None:
            self.session.connectionLost(reason)


class EchoFactory(Factory):
    """
    Build L{EchoProtocol}s sharing one L{WebSocketOptions}.
    """

    protocol = EchoProtocol

    def __init__(self, options: WebSocketOptions | None = None, reactor: Any = None):
        """
        :param options: the session settings (defaults when C{None}).
        :param reactor: the reactor for the sessions' timers (global if None).
        """
        self.options = options if options is not None else WebSocketOptions()
        self.reactor = reactor


def main(argv: list[str] | None = None) -> None:
    """
    Listen on C{--host}:C{--port} and run the reactor.
    """
    parser = argparse.ArgumentParser(description="WebSocketSession echo harness")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log at debug level")
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    level = LogLevel.debug if args.verbose else LogLevel.info
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=level)],
            )
        ]
    )
    reactor.listenTCP(args.port, EchoFactory(reactor=reactor), interface=args.host)
    log.info("wsharness listening on {host}:{port}", host=args.host, port=args.port)
    reactor.run()


if __name__ == "__main__":
    main()
