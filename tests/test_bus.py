"""
The bus between process workers (L{gnetcompat._bus}) in memory: its frames,
a worker's end (L{WorkerBus}) applying frames to its engine, the parent's
router (C{MulticoreEngine}) passing them on, the bounds, and the shared
counters, and a TLS certificate reload carried as the files' validated
bytes.  Real worker processes: tests.test_workers (and tests.test_tls for
the reload).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat import _bus
from gnetcompat._bus import (
    PARENT,
    BusProtocol,
    SharedCounter,
    SharedCounters,
    WorkerBus,
    decode,
    encodeAck,
    encodeBroadcast,
    encodeOp,
    encodeRegistry,
    encodeTLSFiles,
)
from gnetcompat._engine import OP_CLOSE, OP_WRITE, OP_WRITEV
from gnetcompat._workers import DEFAULT_POLICY, MulticoreEngine
from gnetcompat.errors import ErrBusOverflow, ErrClosed, ErrEngineShutdown, ErrUnsupportedOp
from gnetcompat.options import loadOptions
from gnetcompat.testing import HandlerDriver, MemoryReactor

from ._handlers import Recorder
from ._tlscerts import certsFor, reissueServer


def readFiles(*paths: str) -> dict[str, bytes]:
    """The bytes of C{paths}, by path (as a parent validated them)."""
    files = {}
    for path in paths:
        with open(path, "rb") as f:
            files[path] = f.read()
    return files


def servedCN(config: gnet.TLSConfig) -> str:
    """The common name of the certificate C{config} serves new connections now."""
    return str(config.creator().options.certificate.get_subject().CN)


def frames(transport: StringTransport) -> list[bytes]:
    """The length-prefixed frames written to C{transport} (and clear it)."""
    data = transport.value()
    transport.clear()
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out


def connected(proto: BusProtocol) -> StringTransport:
    t = StringTransport()
    proto.makeConnection(t)
    return t


class FrameTests(SynchronousTestCase):
    """Frames decode to what was encoded; bad ones are refused."""

    def test_roundTrips(self) -> None:
        """Every frame kind survives encode/decode."""
        h = gnet.ConnHandle(2, 7, 99, "[::1]:5000")
        self.assertEqual(decode(encodeBroadcast(b"data", None)), ("B", None, b"data"))
        kind, ex, data = decode(encodeBroadcast(b"d", h))
        self.assertEqual((kind, ex[:3], data), ("B", (2, 7, 99), b"d"))
        kind, op, worker, handle, req, payload = decode(encodeOp(OP_WRITE, 1, h, 5, b"p"))
        self.assertEqual(
            (kind, op, worker, handle[:3], req, payload), ("O", 1, 1, (2, 7, 99), 5, b"p")
        )
        kind, worker, req, err = decode(encodeAck(PARENT, 8, ErrClosed()))
        self.assertEqual((kind, worker, req, type(err)), ("A", PARENT, 8, ErrClosed))
        self.assertEqual(decode(encodeAck(3, 1, None))[3], None)
        self.assertIsInstance(decode(encodeAck(3, 1, ErrEngineShutdown()))[3], ErrEngineShutdown)
        self.assertEqual(decode(encodeRegistry(True, h)), ("N", h))
        self.assertEqual(decode(encodeRegistry(False, h))[1][:3], (2, 7, 99))

    def test_malformed(self) -> None:
        """Empty, truncated and unknown frames raise C{ValueError}."""
        for frame in (b"", b"B\x00", b"O" + b"\x00" * 5, b"Z1234"):
            self.assertRaises(ValueError, decode, frame)

    def test_tlsFilesRoundTrip(self) -> None:
        """
        The TLS files of a reload (path -> bytes) survive encode/decode,
        whatever the bytes and even a path that is not UTF-8; a frame cut
        short, or with bytes after its last file, raises C{ValueError}.
        """
        files = {
            "/etc/tls/cert.pem": b"-----BEGIN CERTIFICATE-----\n\x00\xff",
            "/etc/tls/k\udcffey.pem": b"",
            "rel:with:colons": os.urandom(3000),
        }
        frame = encodeTLSFiles(files)
        self.assertEqual(decode(frame), ("T", files))
        self.assertEqual(decode(encodeTLSFiles({})), ("T", {}))
        for bad in (frame[:-1], frame + b"x", frame[:3]):
            self.assertRaises(ValueError, decode, bad)


class BusProtocolTests(SynchronousTestCase):
    """The bounds of one bus socket."""

    def test_oversizedFrameDropped(self) -> None:
        """A frame over L{MAX_FRAME} is not sent; the drop is counted."""
        self.patch(_bus, "MAX_FRAME", 10)
        p = BusProtocol(lambda f: None, lambda: None)
        t = connected(p)
        self.assertFalse(p.send(b"x" * 11))
        self.assertTrue(p.send(b"x" * 10))
        self.assertEqual((p.dropped, len(frames(t))), (1, 1))

    def test_slowPeerBounded(self) -> None:
        """
        Once L{QUEUE_CAP} bytes wait for a peer that does not read, further
        frames are dropped and counted, and one warning says so.
        """
        self.patch(_bus, "QUEUE_CAP", 100)

        class Backlogged(StringTransport):
            dataBuffer = b""
            offset = 0
            _tempDataLen = 0

            def write(self, data: bytes) -> None:
                self._tempDataLen += len(data)

        p = BusProtocol(lambda f: None, lambda: None)
        p.makeConnection(Backlogged())
        sent = [p.send(b"x" * 40) for _ in range(5)]
        self.assertEqual(sent, [True, True, True, False, False])
        self.assertEqual(p.dropped, 2)

    def test_hostileLengthClosesTheSocket(self) -> None:
        """A peer announcing a frame over the limit loses the socket, nothing is buffered."""
        lost: list[bool] = []
        p = BusProtocol(lambda f: self.fail("no frame"), lambda: lost.append(True))
        t = connected(p)
        p.dataReceived((1 << 31).to_bytes(4, "big") + b"junk")
        self.assertTrue(t.disconnecting)


class FakeEngine:
    """What a L{WorkerBus} drives: records the calls."""

    def __init__(self, index: int = 1, registry: bool = False) -> None:
        self.workerIndex = index
        self.options = gnet.Options(ConnRegistry=registry)
        self.ops: list[tuple[Any, ...]] = []
        self.broadcasts: list[tuple[bytes, Any]] = []
        self.callbacks: list[tuple[Any, Any]] = []
        self.result: BaseException | None = None

    def runHandleOp(self, op: int, handle: Any, payload: Any) -> BaseException | None:
        self.ops.append((op, handle[:3], payload))
        return self.result

    def deliverBroadcast(self, data: bytes, exclude: Any) -> int:
        self.broadcasts.append((data, exclude))
        return 1

    def callback(self, cb: Any, handle: Any, err: Any) -> None:
        cb(handle, err)


class WorkerBusTests(SynchronousTestCase):
    """A worker's end of the bus."""

    def setUp(self) -> None:
        self.shm = SharedCounters(2)
        self.addCleanup(self.shm.close)
        self.eng = FakeEngine()
        self.bus = WorkerBus(self.eng, self.shm)
        self.t = connected(self.bus.proto)

    def test_submitAndAck(self) -> None:
        """An operation goes out with a request id; its ack calls the callback back."""
        h = gnet.ConnHandle(0, 1, 5, "x")
        got: list[Any] = []
        self.bus.submit(OP_WRITEV, h, [b"a", b"b"], lambda hh, err: got.append((hh, err)))
        (frame,) = frames(self.t)
        _, op, target, handle, req, payload = decode(frame)
        self.assertEqual((op, target, handle[:3], payload), (OP_WRITEV, 0, (0, 1, 5), b"ab"))
        self.bus.frameReceived(encodeAck(1, req, ErrClosed()))
        self.assertEqual(len(got), 1)
        self.assertIsInstance(got[0][1], ErrClosed)

    def test_noCallbackNoRequest(self) -> None:
        """Without a callback the request id is 0: no ack is asked for."""
        self.bus.submit(OP_WRITE, gnet.ConnHandle(0, 1, 5, ""), b"a", None)
        self.assertEqual(decode(frames(self.t)[0])[4], 0)

    def test_incomingOpAcked(self) -> None:
        """An operation from another worker runs on the engine; the ack goes to its sender."""
        self.eng.result = ErrEngineShutdown()
        h = gnet.ConnHandle(1, 1, 9, "")
        self.bus.frameReceived(encodeOp(OP_CLOSE, 0, h, 4, b""))
        self.assertEqual(self.eng.ops, [(OP_CLOSE, (1, 1, 9), b"")])
        kind, worker, req, err = decode(frames(self.t)[0])
        self.assertEqual((kind, worker, req), ("A", 0, 4))
        self.assertIsInstance(err, ErrEngineShutdown)

    def test_incomingBroadcast(self) -> None:
        """A broadcast from the parent is delivered to this worker's connections."""
        self.bus.frameReceived(encodeBroadcast(b"hi", None))
        self.assertEqual(self.eng.broadcasts, [(b"hi", None)])

    def test_lostFailsPending(self) -> None:
        """Callbacks still waiting when the bus goes get L{ErrClosed}."""
        got: list[Any] = []
        self.bus.submit(OP_WRITE, gnet.ConnHandle(0, 1, 5, ""), b"a", lambda h, e: got.append(e))
        self.bus.lost()
        self.assertIsInstance(got[0], ErrClosed)

    def test_overflowCallsBackAtOnce(self) -> None:
        """An operation the bus cannot queue calls back with L{ErrBusOverflow}."""
        self.patch(_bus, "MAX_FRAME", 8)
        got: list[Any] = []
        self.bus.submit(
            OP_WRITE, gnet.ConnHandle(0, 1, 5, ""), b"a" * 64, lambda h, e: got.append(e)
        )
        self.assertIsInstance(got[0], ErrBusOverflow)

    def test_registryNeedsTheOption(self) -> None:
        """Without WithConnRegistry, C{Conns()} across workers refuses loudly."""
        self.assertRaises(ErrUnsupportedOp, self.bus.remoteHandles)
        self.eng.options.ConnRegistry = True
        h = gnet.ConnHandle(0, 1, 5, "1.2.3.4:5")
        self.bus.frameReceived(encodeRegistry(True, h))
        self.assertEqual(self.bus.remoteHandles(), [h])
        self.bus.frameReceived(encodeRegistry(False, h))
        self.assertEqual(self.bus.remoteHandles(), [])

    def test_badFrameIgnored(self) -> None:
        """A malformed frame is logged and dropped; the bus carries on."""
        self.bus.frameReceived(b"Zjunk")
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        self.bus.frameReceived(encodeBroadcast(b"ok", None))
        self.assertEqual(self.eng.broadcasts, [(b"ok", None)])


class WorkerTLSReloadTests(SynchronousTestCase):
    """
    A worker's engine reloads its TLS certificate from the bytes of a bus
    frame, never from the disk.
    """

    def setUp(self) -> None:
        self.certs = c = certsFor(self)
        self.events: list[dict[str, Any]] = []
        self.eng = gnet.Engine(
            Recorder(),
            [],
            loadOptions(
                gnet.WithTLS(c.serverCert, c.serverKey),
                gnet.WithLogger(Logger(observer=self.events.append)),
            ),
            MemoryReactor(),
        )
        [self.config] = self.eng.options.TLS.values()  # type: ignore[union-attr]
        self.shm = SharedCounters(1)
        self.addCleanup(self.shm.close)
        self.bus = WorkerBus(self.eng, self.shm)
        connected(self.bus.proto)

    def logged(self, level: LogLevel) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] == level]

    def test_appliesTheBytesNotTheDisk(self) -> None:
        """
        A C{T} frame with a renewed certificate's bytes makes new
        connections get it, while the files on disk are gone: the worker
        builds its context from the frame alone.  One info line says so.
        """
        c = self.certs
        self.assertEqual(servedCN(self.config), "gnetcompat test server")
        reissueServer(c, "renewed server")
        files = readFiles(c.serverCert, c.serverKey)
        os.unlink(c.serverCert)
        os.unlink(c.serverKey)
        self.bus.frameReceived(encodeTLSFiles(files))
        self.assertEqual(servedCN(self.config), "renewed server")
        self.assertEqual(self.logged(LogLevel.info), ["TLS certificates reloaded"])
        self.assertEqual(self.logged(LogLevel.error), [])

    def test_badBytesKeepTheCertificate(self) -> None:
        """
        Bytes that do not load (a key of another certificate, or a file
        missing from the frame) are refused with one error line each; the
        current certificate stays, and a later good frame still applies.
        """
        c = self.certs
        mismatched = readFiles(c.serverCert) | {c.serverKey: readFiles(c.clientKey)[c.clientKey]}
        self.bus.frameReceived(encodeTLSFiles(mismatched))
        self.bus.frameReceived(encodeTLSFiles(readFiles(c.serverCert)))
        errors = self.logged(LogLevel.error)
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("does not match the certificate", errors[0])
        self.assertIn("not among the validated files", errors[1])
        for e in errors:
            self.assertIn("TLS reload failed, keeping the current certificate", e)
            self.assertNotIn("\n", e)
        self.assertEqual(servedCN(self.config), "gnetcompat test server")
        reissueServer(c, "renewed server")
        self.bus.frameReceived(encodeTLSFiles(readFiles(c.serverCert, c.serverKey)))
        self.assertEqual(servedCN(self.config), "renewed server")


class ParentTLSReloadTests(SynchronousTestCase):
    """
    The parent of a process-worker engine checks the TLS files and sends
    their bytes to every worker over the bus (no signal to the workers).
    """

    def setUp(self) -> None:
        self.certs = c = certsFor(self)
        opts = loadOptions(gnet.WithProcessWorkers(3), gnet.WithTLS(c.serverCert, c.serverKey))
        self.eng = MulticoreEngine(Recorder(), [], opts, MemoryReactor(), DEFAULT_POLICY)
        self.ts: list[StringTransport | None] = []
        for i in range(3):
            if i == 1:  # being replaced: no bus
                self.ts.append(None)
                continue
            p = BusProtocol(lambda f: None, lambda: None)
            self.ts.append(connected(p))
            self.eng._buses[i] = p
        self.patch(os, "kill", lambda pid, sig: self.fail("no signal to a worker"))

    def test_checkedBytesToEveryWorker(self) -> None:
        """
        C{reloadCertificates} reads the renewed files and sends exactly
        their bytes, in one C{T} frame, to each worker with a bus; the
        slot being replaced is skipped (its replacement starts with them).
        """
        c = self.certs
        reissueServer(c, "renewed server")
        self.assertEqual(self.eng.reloadCertificates(), [])
        want = ("T", readFiles(c.serverCert, c.serverKey))
        for i, t in enumerate(self.ts):
            if t is not None:
                self.assertEqual([decode(f) for f in frames(t)], [want], i)

    def test_badFilesSendNothing(self) -> None:
        """Files that do not load are refused in the parent: no frame, the messages returned."""
        with open(self.certs.serverKey, "wb") as f:
            f.write(b"garbage")
        errors = self.eng.reloadCertificates()
        self.assertEqual(len(errors), 1)
        self.assertIn(self.certs.serverKey, errors[0])
        for t in self.ts:
            if t is not None:
                self.assertEqual(frames(t), [])


class RouterTests(SynchronousTestCase):
    """The parent passes frames between workers."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        opts = gnet.Options(ProcessWorkers=3, ConnRegistry=True)
        self.eng = MulticoreEngine(Recorder(), [], opts, self.reactor, DEFAULT_POLICY)
        self.ts = []
        for i in range(3):
            p = BusProtocol(lambda f: None, lambda: None)
            self.ts.append(connected(p))
            self.eng._buses[i] = p
            self.eng._generations[i] = 1

    def route(self, index: int, frame: bytes) -> None:
        self.eng._busFrame(index, self.eng._buses[index], frame)

    def test_broadcastToOthers(self) -> None:
        """A worker's broadcast goes to every other worker, not back to it."""
        self.route(1, encodeBroadcast(b"x", None))
        self.assertEqual([len(frames(t)) for t in self.ts], [1, 0, 1])

    def test_opRoutedAndAcked(self) -> None:
        """An operation reaches its target marked with its sender; the ack goes back."""
        h = gnet.ConnHandle(2, 1, 7, "")
        self.route(0, encodeOp(OP_WRITE, 2, h, 11, b"data"))
        _, op, sender, handle, req, payload = decode(frames(self.ts[2])[0])
        self.assertEqual(
            (op, sender, handle[:3], req, payload), (OP_WRITE, 0, (2, 1, 7), 11, b"data")
        )
        self.route(2, encodeAck(0, 11, None))
        self.assertEqual(decode(frames(self.ts[0])[0])[:3], ("A", 0, 11))

    def test_staleGenerationRefused(self) -> None:
        """A handle of a replaced worker is answered L{ErrClosed} by the parent."""
        h = gnet.ConnHandle(2, 0, 7, "")
        self.route(0, encodeOp(OP_WRITE, 2, h, 3, b"data"))
        self.assertEqual(frames(self.ts[2]), [])
        self.assertIsInstance(decode(frames(self.ts[0])[0])[3], ErrClosed)

    def test_deadWorkerAnswersWhatItOwed(self) -> None:
        """When a worker dies, requests it had not acknowledged fail with L{ErrClosed}."""
        h = gnet.ConnHandle(2, 1, 7, "r")
        self.route(0, encodeOp(OP_WRITE, 2, h, 5, b"d"))
        self.route(2, encodeRegistry(True, h))
        frames(self.ts[0])
        frames(self.ts[1])
        self.eng._detachBus(2)
        sent = [decode(f) for f in frames(self.ts[0])]
        self.assertIn(("A", 0, 5), [m[:3] for m in sent])
        self.assertIn(("X", (2, 1, 7)), [(m[0], m[1][:3]) for m in sent if m[0] == "X"])
        self.assertEqual(self.eng.Conns(), [])

    def test_registryOnlyOwnConnections(self) -> None:
        """A worker may announce only its own connections."""
        self.route(1, encodeRegistry(True, gnet.ConnHandle(0, 1, 1, "")))
        self.assertEqual(self.eng.Conns(), [])
        self.route(1, encodeRegistry(True, gnet.ConnHandle(1, 1, 1, "a")))
        self.assertEqual(len(self.eng.Conns()), 1)

    def test_parentOperations(self) -> None:
        """The parent's C{AsyncWrite(handle)} reaches the owner; its callback runs on the ack."""
        got: list[Any] = []
        h = gnet.ConnHandle(1, 1, 3, "")
        self.eng.AsyncWrite(h, b"p", lambda hh, e: got.append(e))
        self.reactor.runPending()
        _, op, sender, _, req, payload = decode(frames(self.ts[1])[0])
        self.assertEqual((op, sender, payload), (OP_WRITE, PARENT, b"p"))
        self.route(1, encodeAck(PARENT, req, None))
        self.assertEqual(got, [None])
        self.eng.Broadcast(b"all")
        self.reactor.runPending()
        self.assertEqual([len(frames(t)) for t in self.ts], [1, 1, 1])


class SharedCounterTests(SynchronousTestCase):
    """Counters in the shared memory of a process-worker engine."""

    def test_columnsSum(self) -> None:
        """Two workers (two mappings of one block) add to their own columns; both read the sum."""
        shm = SharedCounters(2)
        self.addCleanup(shm.close)
        other = SharedCounters(2, fd=os.dup(shm.fd))
        self.addCleanup(other.close)
        a = SharedCounter(shm, "hits", 0)
        b = SharedCounter(other, "hits", 1)
        parent = SharedCounter(shm, "hits", shm.parentColumn)
        self.assertEqual(a.Add(2), 2)
        self.assertEqual(b.Add(3), 5)
        self.assertEqual(parent.Add(1), 6)
        self.assertEqual((a.Value(), b.Value()), (6, 6))
        self.assertEqual(SharedCounter(other, "misses", 1).Value(), 0)

    def test_tableFull(self) -> None:
        """The 65th name is refused."""
        shm = SharedCounters(1)
        self.addCleanup(shm.close)
        for i in range(64):
            shm.counterIndex(f"n{i}")
        self.assertRaises(ValueError, shm.counterIndex, "overflow")

    def test_connectionCounts(self) -> None:
        """C{CountConnections}' slots: each worker's own, summed."""
        shm = SharedCounters(3)
        self.addCleanup(shm.close)
        shm.set(0, 4)
        shm.set(2, 5)
        self.assertEqual(shm.total(), 9)

    def test_engineCounterInOneProcess(self) -> None:
        """The same API in one process (HandlerDriver): the shared and local counters agree."""
        d = HandlerDriver(Recorder())
        d.boot()
        self.assertEqual(d.engine.Counter("x").Add(2), 2)
