"""
Tests for L{gnetcompat.testing}: the in-memory driver users test their own
handlers with.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IProtocolFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat.errors import ErrEOF
from gnetcompat.testing import FakePeer, HandlerDriver, MemoryReactor

from ._handlers import Recorder
from ._loopback import StreamClient


class Echo(gnet.BuiltinEventEngine):
    def OnTraffic(self, c: Any) -> Any:
        c.Write(c.Next(-1))


class CloseOnTraffic(gnet.BuiltinEventEngine):
    """
    Returns C{Close} from C{OnTraffic}; records its callbacks, and whether
    C{OnClose} ran while C{OnTraffic} was still on the stack.
    """

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.inTraffic = False

    def OnTraffic(self, c: Any) -> Any:
        self.inTraffic = True
        try:
            self.events.append("OnTraffic")
            c.Write(c.Next(-1))
            return gnet.Close
        finally:
            self.inTraffic = False
            self.events.append("OnTraffic returned")

    def OnClose(self, c: Any, err: Any) -> Any:
        self.events.append("OnClose(reentrant)" if self.inTraffic else "OnClose")
        return gnet.None_


def instrument(proto: Any, events: list[str], lost: Deferred | None = None) -> Any:
    """
    Record, on the server protocol C{proto}, when C{dataReceived} returns
    and when the transport delivers C{connectionLost} (then fire C{lost}).
    """
    dataReceived, connectionLost = proto.dataReceived, proto.connectionLost

    def recDataReceived(data: bytes) -> None:
        dataReceived(data)
        events.append("dataReceived returned")

    def recConnectionLost(reason: Any = None) -> None:
        events.append("connectionLost " + type(reason.value).__name__)
        connectionLost(reason)
        if lost is not None:
            lost.callback(None)

    proto.dataReceived, proto.connectionLost = recDataReceived, recConnectionLost
    return proto


# What a real TCP connection does when OnTraffic returns Close (pinned by
# CloseTimingLoopbackTests): OnClose after OnTraffic returned, and the
# transport's connectionLost only once dataReceived has returned.
REAL_CLOSE_ORDER = [
    "OnTraffic",
    "OnTraffic returned",
    "OnClose",
    "dataReceived returned",
    "connectionLost ConnectionDone",
]


class CloseTimingTests(SynchronousTestCase):
    """The driver's transport closes with a real transport's timing, not synchronously."""

    def test_closeFromOnTrafficNotReentrant(self) -> None:
        """
        A handler returning C{Close} from C{OnTraffic}: C{OnClose} runs after
        C{OnTraffic} returned, and C{connectionLost} is delivered after
        C{dataReceived} returned (on the next iteration), in the order a real
        loopback connection shows; C{send} has run it before returning.
        """
        events: list[str] = []
        driver = HandlerDriver(CloseOnTraffic(events))
        driver.boot()
        peer = driver.connect()
        instrument(peer.protocol, events)
        peer.send(b"bye")
        self.assertEqual(events, REAL_CLOSE_ORDER)
        self.assertEqual(peer.received(), b"bye")
        self.assertTrue(peer.closedByServer)
        self.assertTrue(peer.transport.disconnected)

    def test_loseConnectionDeliveredOnRunPending(self) -> None:
        """
        C{loseConnection} only marks the transport disconnecting (writes made
        meanwhile still reach the peer); C{connectionLost} comes, once, from
        C{runPending}.
        """
        events: list[str] = []
        driver = HandlerDriver(Echo())
        driver.boot()
        peer = driver.connect()
        instrument(peer.protocol, events)
        peer.transport.loseConnection()
        peer.transport.write(b"late")
        peer.transport.loseConnection()
        self.assertTrue(peer.transport.disconnecting)
        self.assertFalse(peer.transport.disconnected)
        self.assertEqual(events, [])
        driver.runPending()
        self.assertEqual(events, ["connectionLost ConnectionDone"])
        self.assertEqual(peer.received(), b"late")
        self.assertEqual(driver.engine.CountConnections(), 0)

    def test_abortConnectionDeliveredOnRunPending(self) -> None:
        """C{abortConnection}, as TCP's, delivers C{ConnectionAborted} on the next iteration."""
        events: list[str] = []
        driver = HandlerDriver(Echo())
        driver.boot()
        peer = driver.connect()
        instrument(peer.protocol, events)
        peer.transport.abortConnection()
        self.assertEqual(events, [])
        driver.runPending()
        self.assertEqual(events, ["connectionLost " + ConnectionAborted.__name__])

    def test_peerCloseBeforeDeliveryWinsOnce(self) -> None:
        """
        A peer close arriving before a pending server close is delivered gives
        one C{connectionLost}.
        """
        events: list[str] = []
        handler = Recorder()
        driver = HandlerDriver(handler)
        driver.boot()
        peer = driver.connect()
        instrument(peer.protocol, events)
        peer.transport.loseConnection()
        peer.disconnect()
        driver.runPending()
        self.assertEqual(events, ["connectionLost " + ConnectionDone.__name__])
        self.assertEqual(len(handler.closes()), 1)

    def test_stopWaitsForTransports(self) -> None:
        """
        The engine counts as stopped only once its transports are gone, as
        over sockets: C{Stop} alone leaves it stopping; the driver's
        C{stop} pumps, and its Deferred has fired.
        """
        driver = HandlerDriver(Recorder())
        driver.boot()
        driver.connect()
        d = driver.engine.Stop()
        self.assertNoResult(d)
        self.assertFalse(driver.engine.stopped)
        driver.runPending()
        self.successResultOf(d)
        self.assertTrue(driver.engine.stopped)


class CloseTimingLoopbackTests(TestCase):
    """The scenario of L{CloseTimingTests} over a real loopback socket."""

    timeout = 30

    @inlineCallbacks
    def test_realSocketOrderMatchesDriver(self) -> None:
        """
        Over a real TCP connection, a handler returning C{Close} from
        C{OnTraffic} sees the callback order the driver gives
        (L{REAL_CLOSE_ORDER}): the driver's transport is faithful.
        """
        events: list[str] = []
        lost: Deferred = Deferred()
        factory = IProtocolFactory(CloseOnTraffic(events))
        build = factory.buildProtocol
        factory.buildProtocol = lambda addr: instrument(build(addr), events, lost)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), StreamClient()
        )
        self.addCleanup(
            lambda: client.transport.abortConnection() if client.transport.connected else None
        )
        client.transport.write(b"bye")
        self.assertEqual((yield client.read(3)), b"bye")
        yield lost
        yield client.lost
        self.assertEqual(events, REAL_CLOSE_ORDER)


class MemoryReactorTests(SynchronousTestCase):
    """L{MemoryReactor}: queued thread calls and the fake clock."""

    def test_callFromThreadQueuedFIFO(self) -> None:
        """
        C{callFromThread} queues; C{runPending} runs in order, including calls
        queued meanwhile.
        """
        r = MemoryReactor()
        order: list[Any] = []
        r.callFromThread(order.append, 1)
        r.callFromThread(lambda: r.callFromThread(order.append, 3))
        r.callFromThread(order.append, 2)
        self.assertEqual(order, [])
        self.assertEqual(r.runPending(), 4)
        self.assertEqual(order, [1, 2, 3])
        self.assertEqual(r.runPending(), 0)

    def test_advanceRunsQueuedAndTimed(self) -> None:
        """C{advance} runs queued calls and timed calls that come due."""
        r = MemoryReactor()
        order: list[str] = []
        r.callLater(1, order.append, "timed")
        r.callFromThread(order.append, "queued")
        r.advance(1)
        self.assertEqual(order, ["queued", "timed"])
        self.assertEqual(r.seconds(), 1)


class HandlerDriverTests(SynchronousTestCase):
    """L{HandlerDriver} and L{FakePeer}."""

    def test_echoRoundTrip(self) -> None:
        """C{connect}/C{send}/C{received}: the module docstring's usage works."""
        driver = HandlerDriver(Echo())
        self.assertTrue(driver.boot())
        peer = driver.connect()
        self.assertIsInstance(peer, FakePeer)
        peer.send(b"ping")
        self.assertEqual(peer.received(), b"ping")
        self.assertEqual(peer.received(), b"")
        self.assertIsInstance(peer.conn, gnet.Conn)

    def test_disconnectAndReset(self) -> None:
        """
        C{disconnect} gives OnClose an L{ErrEOF}; C{reset} a
        C{ConnectionResetError}, as a socket does.
        """
        handler = Recorder()
        driver = HandlerDriver(handler)
        driver.boot()
        driver.connect().disconnect()
        driver.connect().reset()
        errs = [e[2] for e in handler.closes()]
        self.assertIsInstance(errs[0], ErrEOF)
        self.assertIsInstance(errs[1], ConnectionResetError)

    def test_disconnectTwiceIsHarmless(self) -> None:
        """Disconnecting an already closed peer calls OnClose only once."""
        handler = Recorder()
        driver = HandlerDriver(handler)
        driver.boot()
        peer = driver.connect()
        peer.disconnect()
        peer.disconnect()
        self.assertEqual(len(handler.closes()), 1)

    def test_closedByServer(self) -> None:
        """C{closedByServer} turns true once the handler closed the connection."""
        driver = HandlerDriver(Recorder(OnTraffic=lambda c: gnet.Close))
        driver.boot()
        peer = driver.connect()
        self.assertFalse(peer.closedByServer)
        peer.send(b"x")
        self.assertTrue(peer.closedByServer)

    def test_peerAddresses(self) -> None:
        """
        Peers get distinct ports by default; a given (host, port) is used as
        the remote address.
        """
        driver = HandlerDriver(Recorder())
        driver.boot()
        a, b = driver.connect(), driver.connect()
        self.assertNotEqual(str(a.conn.RemoteAddr()), str(b.conn.RemoteAddr()))
        c = driver.connect(("10.1.2.3", 777))
        self.assertEqual(str(c.conn.RemoteAddr()), "10.1.2.3:777")

    def test_unixDriver(self) -> None:
        """A unix address gives unix connections; a peer path may be given."""
        driver = HandlerDriver(Recorder(), address="unix:///tmp/d.sock")
        driver.boot()
        peer = driver.connect("/tmp/peer.sock")
        self.assertEqual(peer.conn.RemoteAddr().String(), "/tmp/peer.sock")

    def test_datagram(self) -> None:
        """C{datagram} delivers one datagram and returns what the handler sent, with addresses."""
        driver = HandlerDriver(Echo(), address="udp://127.0.0.1:9000")
        driver.boot()
        self.assertEqual(driver.datagram(b"x", ("127.0.0.1", 5)), [(b"x", ("127.0.0.1", 5))])
        self.assertEqual(driver.datagram(b"y"), [(b"y", ("127.0.0.1", 40000))])

    def test_advanceDrivesTicker(self) -> None:
        """C{advance} moves the fake clock the ticker runs on."""
        ticks: list[int] = []
        driver = HandlerDriver(
            Recorder(OnTick=lambda: ticks.append(1) or (3, None)), gnet.WithTicker(True)
        )
        driver.boot()
        driver.advance(2.9)
        self.assertEqual(len(ticks), 1)
        driver.advance(0.1)
        self.assertEqual(len(ticks), 2)

    def test_runPendingRunsQueuedOps(self) -> None:
        """Queued operations wait for C{runPending}; it returns how many ran."""
        driver = HandlerDriver(Echo())
        driver.boot()
        peer = driver.connect()
        peer.conn.AsyncWrite(b"a")
        peer.conn.AsyncWrite(b"b")
        self.assertEqual(peer.transport.value(), b"")
        self.assertEqual(driver.runPending(), 2)
        self.assertEqual(peer.received(), b"ab")

    def test_stop(self) -> None:
        """
        C{stop} returns a Deferred that has fired once the engine shut down;
        connect then fails.
        """
        handler = Recorder()
        driver = HandlerDriver(handler)
        driver.boot()
        driver.connect()
        self.successResultOf(driver.stop())
        self.assertTrue(driver.engine.stopped)
        self.assertIn("shutdown", handler.names())
        self.assertRaises(RuntimeError, driver.connect)

    def test_bootShutdown(self) -> None:
        """C{boot} returns False when OnBoot returns Shutdown."""
        self.assertFalse(HandlerDriver(Recorder(OnBoot=lambda e: gnet.Shutdown)).boot())

    def test_optionsApplied(self) -> None:
        """Options given to the driver reach the engine, normalised."""
        driver = HandlerDriver(Echo(), gnet.WithReadBufferCap(2000), gnet.WithTicker(True))
        self.assertEqual(
            (driver.engine.options.ReadBufferCap, driver.engine.options.Ticker), (2048, True)
        )
