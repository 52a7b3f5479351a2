"""Tests for L{gnetcompat.reactor}: the epoll reactor without logging context."""

from __future__ import annotations

import sys

from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.trial.unittest import SkipTest, TestCase

if not sys.platform.startswith("linux"):
    raise SkipTest("epoll is Linux-only")

from gnetcompat.reactor import GnetEPollReactor


class _Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class _Client(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        self.factory.got.append(data)
        self.transport.loseConnection()
        self.factory.reactor.stop()


class GnetEPollReactorTests(TestCase):
    """The reactor serves I/O like the epoll reactor it derives from."""

    timeout = 15

    def test_echoRoundTrip(self) -> None:
        """A private reactor instance accepts, reads, writes and stops."""
        r = GnetEPollReactor()
        port = r.listenTCP(0, Factory.forProtocol(_Echo), interface="127.0.0.1")
        cf = ClientFactory.forProtocol(_Client)
        cf.got = []
        cf.reactor = r
        r.connectTCP("127.0.0.1", port.getHost().port, cf)
        timer = r.callLater(10, r.stop)
        r.run(installSignalHandlers=False)
        if timer.active():
            timer.cancel()
        port.stopListening()
        self.assertEqual(cf.got, [b"ping"])

    def test_pluginListed(self) -> None:
        """twistd lists the reactor as 'gnet'."""
        from twisted.application.reactors import getReactorTypes

        names = {r.shortName: r.moduleName for r in getReactorTypes()}
        self.assertEqual(names.get("gnet"), "gnetcompat.reactor")
