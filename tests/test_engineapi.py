"""
One-process multicore and the engine-wide API, in memory: C{WithMulticore}
/ C{WithNumEventLoop} give event loops sharing the one handler (load
balancing, C{Conn.EventLoop()}, the start-up line), and C{Conn.Handle()},
C{Engine.AsyncWrite/AsyncWritev/Close/Wake} by handle, C{Engine.Broadcast},
C{Engine.Conns()} and C{Engine.Counter} work the same in one process as
across process workers (tests.test_workers covers those).
"""

from __future__ import annotations

import zlib
from typing import Any

from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat.errors import ErrClosed, ErrEngineInShutdown, ErrEngineShutdown
from gnetcompat.testing import HandlerDriver


class Keeper(gnet.BuiltinEventEngine):
    """Keeps its connections by remote address, as gnet's push example does."""

    def __init__(self) -> None:
        self.conns: dict[str, Any] = {}
        self.traffic: list[bytes] = []
        self.eng: Any = None

    def OnBoot(self, eng: Any) -> Any:
        self.eng = eng

    def OnOpen(self, c: Any) -> Any:
        self.conns[c.RemoteAddr().String()] = c
        return None

    def OnClose(self, c: Any, err: Any) -> Any:
        self.conns.pop(c.RemoteAddr().String(), None)

    def OnTraffic(self, c: Any) -> Any:
        self.traffic.append(c.Next(-1))


class LoopTests(SynchronousTestCase):
    """Several event loops in one process share the handler."""

    def test_oneHandlerAcrossLoops(self) -> None:
        """
        With C{WithNumEventLoop(4)} every connection reaches the same
        handler object (gnet's loops share it: the push example's map holds
        every connection), and C{CountConnections} counts them all.
        """
        h = Keeper()
        d = HandlerDriver(h, gnet.WithNumEventLoop(4))
        d.boot()
        for _ in range(8):
            d.connect()
        self.assertEqual(len(h.conns), 8)
        self.assertEqual(d.engine.CountConnections(), 8)

    def test_roundRobin(self) -> None:
        """RoundRobin (the default) gives loops 0, 1, 2, 3, 0, 1, ... in turn."""
        h = Keeper()
        d = HandlerDriver(h, gnet.WithNumEventLoop(4))
        d.boot()
        peers = [d.connect() for _ in range(6)]
        self.assertEqual([p.conn.EventLoop().index for p in peers], [0, 1, 2, 3, 0, 1])
        self.assertEqual([lp.connections for lp in d.engine.loops], [2, 2, 1, 1])

    def test_leastConnections(self) -> None:
        """LeastConnections picks the loop with the fewest (lowest index on a tie)."""
        h = Keeper()
        d = HandlerDriver(
            h, gnet.WithNumEventLoop(3), gnet.WithLoadBalancing(gnet.LeastConnections)
        )
        d.boot()
        peers = [d.connect() for _ in range(3)]
        self.assertEqual([p.conn.EventLoop().index for p in peers], [0, 1, 2])
        peers[1].disconnect()
        self.assertEqual(d.connect().conn.EventLoop().index, 1)

    def test_sourceAddrHash(self) -> None:
        """SourceAddrHash: CRC-32 of the peer's C{ip:port} text, modulo the loops, as gnet."""
        h = Keeper()
        d = HandlerDriver(h, gnet.WithNumEventLoop(4), gnet.WithLoadBalancing(gnet.SourceAddrHash))
        d.boot()
        for port in (40001, 40002, 40003, 40004, 40005):
            conn = d.connect(("10.0.0.1", port)).conn
            want = zlib.crc32(f"10.0.0.1:{port}".encode()) % 4
            self.assertEqual(conn.EventLoop().index, want)

    def test_loopCountsFollowCloses(self) -> None:
        """A loop's count drops when its connection closes (whoever closes it)."""
        d = HandlerDriver(Keeper(), gnet.WithNumEventLoop(2))
        d.boot()
        a, b = d.connect(), d.connect()
        a.conn.Close()
        d.runPending()
        b.disconnect()
        self.assertEqual([lp.connections for lp in d.engine.loops], [0, 0])

    def test_startupLineOnce(self) -> None:
        """
        Several loops are announced in one info line at boot that says they
        share the reactor thread and points at process workers; one loop
        says nothing.
        """
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        HandlerDriver(Keeper()).boot()
        self.assertEqual([e for e in events if "event loops" in e.get("log_format", "")], [])
        HandlerDriver(Keeper(), gnet.WithNumEventLoop(3)).boot()
        lines = [e for e in events if "event loops" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["log_level"], LogLevel.info)
        self.assertEqual(lines[0]["n"], 3)
        self.assertIn("WithProcessWorkers", lines[0]["log_format"])

    def test_multicoreIsOneProcess(self) -> None:
        """C{WithMulticore(True)} alone asks for no worker process."""
        o = gnet.Options(Multicore=True).normalized()
        self.assertEqual(o.numWorkers(), 0)
        self.assertGreaterEqual(o.numLoops(), 1)


class HandleTests(SynchronousTestCase):
    """C{Conn.Handle()} and the engine's operations by handle, in one process."""

    def setUp(self) -> None:
        self.h = Keeper()
        self.d = HandlerDriver(self.h)
        self.d.boot()

    def test_handleIsStable(self) -> None:
        """One handle per connection: equal every time, carrying the peer's address."""
        peer = self.d.connect(("127.0.0.1", 41000))
        h1, h2 = peer.conn.Handle(), peer.conn.Handle()
        self.assertEqual(h1, h2)
        self.assertIsInstance(h1, gnet.ConnHandle)
        self.assertEqual((h1.worker, h1.remote), (0, "127.0.0.1:41000"))
        self.assertNotEqual(self.d.connect().conn.Handle(), h1)

    def test_asyncWriteByHandle(self) -> None:
        """C{Engine.AsyncWrite(handle, data, cb)} writes (queued) and calls back with no error."""
        peer = self.d.connect()
        handle = peer.conn.Handle()
        results: list[tuple[Any, Any]] = []
        self.d.engine.AsyncWrite(handle, b"one", lambda h, err: results.append((h, err)))
        self.d.engine.AsyncWritev(handle, [b"two", bytearray(b"three")])
        self.assertEqual(peer.received(), b"")  # queued, as AsyncWrite is
        self.d.runPending()
        self.assertEqual(peer.received(), b"onetwothree")
        self.assertEqual(results, [(handle, None)])

    def test_mutableBufferCopied(self) -> None:
        """A bytearray given to AsyncWrite/Broadcast is copied at the call."""
        peer = self.d.connect()
        buf = bytearray(b"AAAA")
        self.d.engine.AsyncWrite(peer.conn.Handle(), buf)
        self.d.engine.Broadcast(buf)
        buf[:] = b"BBBB"
        self.d.runPending()
        self.assertEqual(peer.received(), b"AAAAAAAA")

    def test_closedHandle(self) -> None:
        """An operation on a closed connection's handle calls back with L{ErrClosed}."""
        peer = self.d.connect()
        handle = peer.conn.Handle()
        peer.disconnect()
        errors: list[Any] = []
        self.d.engine.AsyncWrite(handle, b"x", lambda h, err: errors.append(err))
        self.d.engine.Close(handle, lambda h, err: errors.append(err))
        self.d.runPending()
        self.assertEqual([type(e) for e in errors], [ErrClosed, ErrClosed])

    def test_handleAfterCloseRefused(self) -> None:
        """A connection first asked for its handle after it closed raises L{ErrClosed}."""
        peer = self.d.connect()
        conn = peer.conn
        peer.disconnect()
        self.assertRaises(ErrClosed, conn.Handle)

    def test_closeByHandle(self) -> None:
        """C{Engine.Close(handle)} closes with C{OnClose(c, None)}, as C{c.Close()}."""
        seen: list[Any] = []

        class H(Keeper):
            def OnClose(self, c: Any, err: Any) -> Any:
                seen.append(err)
                return gnet.Shutdown

        d = HandlerDriver(H())
        d.boot()
        peer = d.connect()
        results: list[Any] = []
        d.engine.Close(peer.conn.Handle(), lambda h, err: results.append(err))
        d.runPending()
        self.assertEqual(seen, [None])
        self.assertTrue(peer.closedByServer)
        self.assertIsInstance(results[0], ErrEngineShutdown)

    def test_wakeByHandle(self) -> None:
        """C{Engine.Wake(handle)} runs C{OnTraffic} with no new bytes."""
        peer = self.d.connect()
        self.d.engine.Wake(peer.conn.Handle())
        self.d.runPending()
        self.assertEqual(self.h.traffic, [b""])

    def test_wrongHandleType(self) -> None:
        """A Conn (or anything else) where a handle belongs is a TypeError in the caller."""
        peer = self.d.connect()
        with self.assertRaises(TypeError) as e:
            self.d.engine.AsyncWrite(peer.conn, b"x")
        self.assertIn("ConnHandle", str(e.exception))
        self.assertRaises(TypeError, self.d.engine.AsyncWrite, peer.conn.Handle(), "text")
        self.assertRaises(TypeError, self.d.engine.Broadcast, b"x", exclude=peer.conn)

    def test_broadcast(self) -> None:
        """C{Broadcast} reaches every connection but the excluded one, queued."""
        peers = [self.d.connect() for _ in range(3)]
        self.d.engine.Broadcast(b"hi", exclude=peers[1].conn.Handle())
        self.d.runPending()
        self.assertEqual([p.received() for p in peers], [b"hi", b"", b"hi"])

    def test_broadcastKeepsOrderWithAsyncWrite(self) -> None:
        """Queued operations of one thread reach a connection in the order they were made."""
        peer = self.d.connect()
        c = peer.conn
        c.AsyncWrite(b"1")
        self.d.engine.Broadcast(b"2")
        self.d.engine.AsyncWrite(c.Handle(), b"3")
        c.AsyncWrite(b"4")
        self.d.runPending()
        self.assertEqual(peer.received(), b"1234")

    def test_conns(self) -> None:
        """C{Engine.Conns()} lists the live connections' handles."""
        peers = [self.d.connect() for _ in range(3)]
        peers[0].disconnect()
        self.assertEqual(sorted(self.d.engine.Conns()), sorted(p.conn.Handle() for p in peers[1:]))

    def test_afterStop(self) -> None:
        """Operations on a stopped engine raise L{ErrEngineInShutdown}."""
        peer = self.d.connect()
        handle = peer.conn.Handle()
        self.d.stop()
        self.d.runPending()
        self.assertRaises(ErrEngineInShutdown, self.d.engine.Broadcast, b"x")
        self.assertRaises(ErrEngineInShutdown, self.d.engine.AsyncWrite, handle, b"x")


class CounterTests(SynchronousTestCase):
    """C{Engine.Counter} in one process."""

    def test_addAndValue(self) -> None:
        """A counter starts at 0, C{Add} returns the new value; one name is one counter."""
        d = HandlerDriver(Keeper())
        d.boot()
        c = d.engine.Counter("requests")
        self.assertEqual(c.Value(), 0)
        self.assertEqual(c.Add(), 1)
        self.assertEqual(d.engine.Counter("requests").Add(4), 5)
        self.assertEqual(c.Add(-2), 3)

    def test_badNames(self) -> None:
        """Names are non-empty strings of at most 48 UTF-8 bytes; at most 64 counters."""
        d = HandlerDriver(Keeper())
        d.boot()
        self.assertRaises(TypeError, d.engine.Counter, 3)
        self.assertRaises(ValueError, d.engine.Counter, "")
        self.assertRaises(ValueError, d.engine.Counter, "x" * 49)
        for i in range(64):
            d.engine.Counter(f"c{i}")
        self.assertRaises(ValueError, d.engine.Counter, "one-too-many")
