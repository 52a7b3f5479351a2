"""
Tests for the Twisted skin (L{gnetcompat._protocol}): the
C{IProtocolFactory(handler)} adapter, driven with C{StringTransport} and
C{twisted.test.iosim}, and backpressure.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import gnetcompat as gnet
from gnetcompat._engine import Engine
from gnetcompat._protocol import GnetFactory
from gnetcompat.errors import ErrEOF
from gnetcompat.options import loadOptions

from ._handlers import Recorder

ADDR = IPv4Address("TCP", "127.0.0.1", 12345)


class Echo(Recorder):
    """Echo, plus the recording of L{Recorder}."""

    def OnTraffic(self, c: Any) -> Any:
        super().OnTraffic(c)
        data = c.Next(-1)
        c.Write(data)
        return gnet.Close if data == b"quit" else gnet.None_


class AdapterTests(SynchronousTestCase):
    """C{IProtocolFactory(handler)}: any handler plugs into a Twisted endpoint."""

    def test_adapts(self) -> None:
        """An event handler adapts to a valid C{IProtocolFactory}."""
        factory = IProtocolFactory(Echo())
        self.assertTrue(verifyObject(IProtocolFactory, factory))

    def test_startFactoryCallsOnBoot(self) -> None:
        """C{doStart} calls C{OnBoot} with a valid engine; C{doStop} calls C{OnShutdown}."""
        engines: list[Any] = []
        handler = Recorder(OnBoot=lambda e: engines.append(e))
        factory = IProtocolFactory(handler)
        self.assertEqual(handler.names(), [])
        factory.doStart()
        self.assertEqual(handler.names(), ["boot"])
        self.assertIsNone(engines[0].Validate())
        self.assertEqual(engines[0].CountConnections(), 0)
        factory.doStop()
        self.assertEqual(handler.names(), ["boot", "shutdown"])

    def test_stringTransport(self) -> None:
        """A protocol built by the adapter runs OnOpen, OnTraffic and OnClose(ErrEOF)."""
        handler = Echo(OnOpen=lambda c: (b"hi\r\n", None))
        factory = IProtocolFactory(handler)
        factory.doStart()
        proto = factory.buildProtocol(ADDR)
        transport = StringTransport(peerAddress=ADDR)
        proto.makeConnection(transport)
        self.assertEqual(transport.value(), b"hi\r\n")
        transport.clear()
        proto.dataReceived(b"echo me")
        self.assertEqual(transport.value(), b"echo me")
        conn = handler.events[1][1]
        self.assertEqual(str(conn.RemoteAddr()), "127.0.0.1:12345")
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertIsInstance(handler.closes()[0][2], ErrEOF)
        factory.doStop()

    def test_iosim(self) -> None:
        """Over C{iosim}, a client gets its echo; a Close action ends the connection."""
        handler = Echo()
        factory = IProtocolFactory(handler)
        factory.doStart()
        self.addCleanup(factory.doStop)
        received: list[bytes] = []

        class Client(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        client, server, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(ADDR), Client
        )
        client.transport.write(b"hello")
        pump.flush()
        self.assertEqual(b"".join(received), b"hello")
        client.transport.write(b"quit")
        pump.flush()
        self.assertEqual(b"".join(received), b"helloquit")
        self.assertIsNone(handler.closes()[0][2])
        self.assertTrue(server.transport.disconnecting or server.transport.disconnected)

    def test_noConnectionsAfterStop(self) -> None:
        """After C{doStop} the factory builds no more protocols."""
        factory = IProtocolFactory(Recorder())
        factory.doStart()
        factory.doStop()
        self.assertIsNone(factory.buildProtocol(ADDR))


class BackpressureTests(SynchronousTestCase):
    """
    The skin sets the read size and registers no producer (the L{Conn}
    pauses reading for C{WriteBufferCap} itself; see
    L{tests.test_backpressure}).
    """

    def connect(self, *opts: Any) -> StringTransport:
        factory = GnetFactory(
            Engine(Recorder(), [], loadOptions(*opts)), network=None, ownsEngine=True
        )
        factory.doStart()
        self.addCleanup(factory.doStop)
        transport = StringTransport(peerAddress=ADDR)
        proto = factory.buildProtocol(ADDR)
        proto.makeConnection(transport)
        self.addCleanup(proto.connectionLost, Failure(ConnectionDone()))
        return transport

    def test_readSizeIsReadBufferCap(self) -> None:
        """The transport reads C{ReadBufferCap} bytes at a time, whatever C{WriteBufferCap} is."""
        t = self.connect(gnet.WithReadBufferCap(256 * 1024), gnet.WithWriteBufferCap(4096))
        self.assertEqual(t.bufferSize, 256 * 1024)

    def test_noProducerRegistered(self) -> None:
        """
        No producer is registered on a new connection: Twisted's
        C{loseConnection} never closes a socket whose producer is still
        registered.
        """
        t = self.connect()
        self.assertIsNone(t.producer)
