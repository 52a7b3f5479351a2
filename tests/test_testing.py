"""
Tests for L{gnetcompat.testing}: the in-memory driver users test their own
handlers with.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat.errors import ErrEOF
from gnetcompat.testing import FakePeer, HandlerDriver, MemoryReactor

from .test_conn import Recorder


class Echo(gnet.BuiltinEventEngine):
    def OnTraffic(self, c: Any) -> Any:
        c.Write(c.Next(-1))


class MemoryReactorTests(SynchronousTestCase):
    """L{MemoryReactor}: queued thread calls and the fake clock."""

    def test_callFromThreadQueuedFIFO(self) -> None:
        """C{callFromThread} queues; C{runPending} runs in order, including calls queued meanwhile."""
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
        """C{disconnect} gives OnClose an L{ErrEOF}; C{reset} a C{ConnectionResetError}, as a socket does."""
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
        """Peers get distinct ports by default; a given (host, port) is used as the remote address."""
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
        driver = HandlerDriver(Recorder(OnTick=lambda: ticks.append(1) or (3, None)), gnet.WithTicker(True))
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
        """C{stop} returns a Deferred that has fired once the engine shut down; connect then fails."""
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
        self.assertEqual((driver.engine.options.ReadBufferCap, driver.engine.options.Ticker), (2048, True))
