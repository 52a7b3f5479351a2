# -*- test-case-name: tests.test_bus -*-
"""
The bus between the worker processes of an engine (L{WithProcessWorkers}):
what makes C{Engine.Broadcast}, C{Engine.AsyncWrite(handle, ...)},
C{Engine.Close/Wake(handle)}, C{Engine.Conns()} and C{Engine.Counter} reach
every worker, each of which has its own copy of the handler.

Each worker has one stream socket (a C{socketpair}) to the parent, which
routes: a worker sends a broadcast once and the parent copies it to every
other worker; an operation on another worker's connection goes to the parent
and on to that worker, whose acknowledgement comes back the same way when the
caller gave a callback.  Sockets are FIFO, so the operations of one sender
reach one connection in the order they were made.

Frames are length-prefixed (L{BusProtocol}, at most L{MAX_FRAME} bytes).
Every queue is bounded: a frame that would leave more than L{QUEUE_CAP}
bytes waiting for a peer, or that is larger than L{MAX_FRAME}, is dropped and
counted (the operation's callback gets L{ErrBusOverflow}); one warning line
says so at most every L{WARN_EVERY} seconds.

Counters (C{Engine.Counter}) live in the engine's shared memory
(L{SharedCounters}): each worker adds to its own column, readers sum.

A TLS certificate reload (C{MulticoreEngine.reloadCertificates}) travels
the bus too: the parent reads and checks the files, then sends their bytes
to every worker in one frame (L{encodeTLSFiles}); a worker builds its new
context from those bytes (C{Engine.reloadCertificates(files)}) and never
reads the disk.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver

from ._engine import OP_WRITEV, Engine
from ._handle import MAX_COUNTER_NAME, MAX_COUNTERS, ConnHandle, Counter
from ._twistedcompat import writeBacklog
from .errors import ErrBusOverflow, ErrClosed, ErrEngineShutdown, ErrUnsupportedOp

__all__ = [
    "BusProtocol",
    "MAX_FRAME",
    "PARENT",
    "QUEUE_CAP",
    "SharedCounters",
    "WorkerBus",
    "decode",
    "encodeAck",
    "encodeBroadcast",
    "encodeOp",
    "encodeRegistry",
    "encodeTLSFiles",
]

#: the largest frame (so the largest message one AsyncWrite/Broadcast can carry to another worker)
MAX_FRAME = 64 << 20
#: bytes that may wait to be sent to one peer before frames are dropped
QUEUE_CAP = 64 << 20
#: at most one "dropped" warning per this many seconds
WARN_EVERY = 10.0
#: the worker number of the parent process, as a sender
PARENT = -1

# frame kinds
K_BROADCAST = ord("B")
K_OP = ord("O")
K_ACK = ord("A")
K_OPEN = ord("N")
K_CLOSE = ord("X")
K_TLS = ord("T")

# error codes of an acknowledgement
_E_NONE, _E_CLOSED, _E_SHUTDOWN, _E_OVERFLOW = 0, 1, 2, 3

_BCAST = struct.Struct("!Biiq")  # kind, excluded worker (or -2: none), its generation, its id
_OP = struct.Struct("!BBiiiqq")  # kind, op, target/source worker, peer worker, generation, id, req
_ACK = struct.Struct("!Biqb")  # kind, worker (the request's sender), request id, error code
_REG = struct.Struct("!Biiq")  # kind, worker, generation, id (+ the remote text)
_TLS = struct.Struct("!BI")  # kind, number of files (+ each: _TLS_FILE, its path, its bytes)
_TLS_FILE = struct.Struct("!II")  # length of the path (UTF-8), length of the bytes
_NONE = -2


def errorCode(err: BaseException | None) -> int:
    """An acknowledgement's code for a callback's error."""
    if err is None:
        return _E_NONE
    if isinstance(err, ErrEngineShutdown):
        return _E_SHUTDOWN
    if isinstance(err, ErrBusOverflow):
        return _E_OVERFLOW
    return _E_CLOSED


def errorOf(code: int) -> BaseException | None:
    """The callback's error for an acknowledgement's code."""
    if code == _E_NONE:
        return None
    if code == _E_SHUTDOWN:
        return ErrEngineShutdown()
    if code == _E_OVERFLOW:
        return ErrBusOverflow()
    return ErrClosed()


def encodeBroadcast(data: bytes, exclude: ConnHandle | None) -> bytes:
    if exclude is None:
        return _BCAST.pack(K_BROADCAST, _NONE, 0, 0) + data
    return _BCAST.pack(K_BROADCAST, exclude.worker, exclude.generation, exclude.id) + data


def encodeOp(op: int, worker: int, handle: ConnHandle, req: int, payload: bytes) -> bytes:
    """
    An operation on C{handle}: from a worker to the parent C{worker} is the
    target; from the parent to the target it is the sender (for the ack).
    """
    return _OP.pack(K_OP, op, worker, handle.worker, handle.generation, handle.id, req) + payload


def encodeAck(worker: int, req: int, err: BaseException | None) -> bytes:
    return _ACK.pack(K_ACK, worker, req, errorCode(err))


def encodeRegistry(opened: bool, handle: ConnHandle) -> bytes:
    head = _REG.pack(K_OPEN if opened else K_CLOSE, handle.worker, handle.generation, handle.id)
    return head + handle.remote.encode("utf-8", "surrogateescape") if opened else head


def encodeTLSFiles(files: dict[str, bytes]) -> bytes:
    """
    The TLS files a worker reloads from (parent to worker): each file's
    bytes by path, as the parent validated them.
    """
    parts = [_TLS.pack(K_TLS, len(files))]
    for path, data in files.items():
        raw = path.encode("utf-8", "surrogateescape")
        parts += [_TLS_FILE.pack(len(raw), len(data)), raw, data]
    return b"".join(parts)


def _decodeTLSFiles(frame: bytes) -> dict[str, bytes]:
    _, count = _TLS.unpack_from(frame)
    at = _TLS.size
    files: dict[str, bytes] = {}
    for _ in range(count):
        pathLength, dataLength = _TLS_FILE.unpack_from(frame, at)
        at += _TLS_FILE.size
        end = at + pathLength + dataLength
        if end > len(frame):
            raise ValueError("truncated bus frame: a TLS file runs past its end")
        path = frame[at : at + pathLength].decode("utf-8", "surrogateescape")
        files[path] = frame[at + pathLength : end]
        at = end
    if at != len(frame):
        raise ValueError("bus frame: bytes after the last TLS file")
    return files


def decode(frame: bytes) -> tuple[Any, ...]:
    """
    A frame as a tuple: C{("B", exclude | None, data)}, C{("O", op, worker,
    handle, req, payload)}, C{("A", worker, req, err)}, C{("N"|"X", handle)},
    C{("T", files)}.

    @raise ValueError: a malformed frame.
    """
    if not frame:
        raise ValueError("empty bus frame")
    kind = frame[0]
    try:
        if kind == K_BROADCAST:
            _, w, g, i = _BCAST.unpack_from(frame)
            ex = None if w == _NONE else ConnHandle(w, g, i, "")
            return ("B", ex, frame[_BCAST.size :])
        if kind == K_OP:
            _, op, worker, hw, hg, hi, req = _OP.unpack_from(frame)
            return ("O", op, worker, ConnHandle(hw, hg, hi, ""), req, frame[_OP.size :])
        if kind == K_ACK:
            _, worker, req, code = _ACK.unpack_from(frame)
            return ("A", worker, req, errorOf(code))
        if kind in (K_OPEN, K_CLOSE):
            _, w, g, i = _REG.unpack_from(frame)
            remote = frame[_REG.size :].decode("utf-8", "surrogateescape")
            return ("N" if kind == K_OPEN else "X", ConnHandle(w, g, i, remote))
        if kind == K_TLS:
            return ("T", _decodeTLSFiles(frame))
    except struct.error as e:
        raise ValueError(f"truncated bus frame: {e}") from None
    raise ValueError(f"unknown bus frame kind {kind!r}")


class BusProtocol(Int32StringReceiver):
    """
    One end of a bus socket: length-prefixed frames in and out, with the
    bounds of the module docstring.  C{onFrame(frame)} gets each frame,
    C{onLost()} the end of the socket.
    """

    MAX_LENGTH = MAX_FRAME
    log = Logger()

    def __init__(self, onFrame: Callable[[bytes], None], onLost: Callable[[], None]) -> None:
        self.onFrame = onFrame
        self.onLost = onLost
        self.dropped = 0
        self._warned = -WARN_EVERY
        self.clock: Any = None
        self.name = "bus"

    def stringReceived(self, frame: bytes) -> None:
        self.onFrame(frame)

    def lengthLimitExceeded(self, length: int) -> None:
        self.log.error(
            "{name}: frame of {length} bytes over the limit of {limit}; closing",
            name=self.name,
            length=length,
            limit=MAX_FRAME,
        )
        self.transport.loseConnection()  # type: ignore[union-attr]  # connected here

    def connectionLost(self, reason: Any = None) -> None:
        self.onLost()

    def send(self, frame: bytes) -> bool:
        """
        Queue C{frame}; C{False} (dropped and counted) when it is too large
        or the peer has L{QUEUE_CAP} bytes waiting already, or the socket is gone.
        """
        t = self.transport
        if t is None or not getattr(t, "connected", True):
            return False
        try:
            backlog = writeBacklog(t)
        except AttributeError:
            backlog = 0
        if len(frame) > MAX_FRAME or backlog > QUEUE_CAP:
            self.dropped += 1
            now = self.clock.seconds() if self.clock is not None else 0.0
            if now - self._warned >= WARN_EVERY:
                self._warned = now
                self.log.warn(
                    "{name}: {n} message(s) dropped so far: the peer has {backlog} bytes "
                    "waiting (limit {cap}) or a message is over {limit} bytes",
                    name=self.name,
                    n=self.dropped,
                    backlog=backlog,
                    cap=QUEUE_CAP,
                    limit=MAX_FRAME,
                )
            return False
        self.sendString(frame)  # type: ignore[no-untyped-call]  # Twisted: untyped
        return True


def adoptBus(reactor: Any, fd: int, proto: BusProtocol) -> Any:
    """Adopt the connected unix socket C{fd} (ours to close afterwards) for C{proto}."""
    proto.clock = reactor
    return reactor.adoptStreamConnection(fd, socket.AF_UNIX, Factory.forProtocol(lambda: proto))


# -- counters in shared memory ----------------------------------------------------

#: bytes between two workers' connection-count slots (one cache line)
SLOT_STRIDE = 64
_SLOT_WORDS = SLOT_STRIDE // 8
#: bytes of one counter name entry (a length byte, then the UTF-8 name)
_NAME_ENTRY = 64


class SharedCounters:
    """
    The shared memory of a process-worker engine (a C{memfd}, or an
    unlinked temporary file elsewhere), created by the parent and inherited
    by every worker:

      - one connection-count slot per worker, L{SLOT_STRIDE} bytes apart
        (C{CountConnections}: each worker writes its own, readers sum);
      - a table of L{MAX_COUNTERS} counter names, allocated under a POSIX
        record lock (C{lockf}: it excludes other processes even through an
        inherited descriptor);
      - the counters: one C{int64} per counter and column (a column per
        worker, the last one the parent's), summed on read.
    """

    def __init__(self, slots: int, fd: int | None = None) -> None:
        self.slots = slots
        self._countsEnd = slots * SLOT_STRIDE
        self._namesAt = self._countsEnd
        self._gridAt = self._namesAt + MAX_COUNTERS * _NAME_ENTRY
        self._columns = slots + 1
        need = self._gridAt + MAX_COUNTERS * self._columns * 8
        size = -(-need // mmap.PAGESIZE) * mmap.PAGESIZE
        if fd is None:
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create("gnetcompat-counters")
            else:  # pragma: no cover - non-Linux
                import tempfile

                fd, path = tempfile.mkstemp(prefix="gnetcompat-counters-")
                os.unlink(path)
            os.ftruncate(fd, size)
        self.fd = fd
        self.size = size
        self._map: mmap.mmap | None = mmap.mmap(fd, size)
        self._view: memoryview | None = memoryview(self._map).cast("q")
        self._lock = threading.Lock()  # Add from several threads of one process
        self._index: dict[str, int] = {}

    # connection counts

    def total(self) -> int:
        """The sum of the connection-count slots."""
        v = self._view
        return sum(v[: self.slots * _SLOT_WORDS : _SLOT_WORDS]) if v is not None else 0

    def set(self, index: int, value: int) -> None:
        """Set worker C{index}'s connection count."""
        if self._view is not None:
            self._view[index * _SLOT_WORDS] = value

    # named counters

    def counterIndex(self, name: str) -> int:
        """
        The table index of counter C{name}, allocated on first use.

        @raise ValueError: the table is full.
        """
        i = self._index.get(name)
        if i is not None:
            return i
        raw = name.encode("utf-8")
        assert self._map is not None and len(raw) <= MAX_COUNTER_NAME
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            free = None
            for j in range(MAX_COUNTERS):
                at = self._namesAt + j * _NAME_ENTRY
                n = self._map[at]
                if n == 0:
                    if free is None:
                        free = j
                    continue
                if self._map[at + 1 : at + 1 + n] == raw:
                    self._index[name] = j
                    return j
            if free is None:
                raise ValueError(f"Engine.Counter: at most {MAX_COUNTERS} counters per engine")
            at = self._namesAt + free * _NAME_ENTRY
            self._map[at + 1 : at + 1 + len(raw)] = raw
            self._map[at] = len(raw)
            self._index[name] = free
            return free
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def add(self, index: int, column: int, delta: int) -> int:
        """Add C{delta} to counter C{index} in C{column}; returns the sum after it."""
        v = self._view
        assert v is not None
        base = (self._gridAt // 8) + index * self._columns
        with self._lock:
            v[base + column] += delta
        return sum(v[base : base + self._columns])

    def value(self, index: int) -> int:
        """The sum of counter C{index} over every column."""
        v = self._view
        if v is None:
            return 0
        base = (self._gridAt // 8) + index * self._columns
        return sum(v[base : base + self._columns])

    @property
    def parentColumn(self) -> int:
        """The column the parent process adds to."""
        return self.slots

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SharedCounter(Counter):
    """A L{Counter} in L{SharedCounters}, for one column (a worker, or the parent)."""

    def __init__(self, shm: SharedCounters, name: str, column: int) -> None:
        self.name = name
        self._shm = shm
        self._index = shm.counterIndex(name)
        self._column = column

    def Add(self, delta: int = 1) -> int:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"Counter.Add: delta must be an int, got {delta!r}")
        return self._shm.add(self._index, self._column, delta)

    def Value(self) -> int:
        return self._shm.value(self._index)


# -- the worker's end ---------------------------------------------------------------


class WorkerBus:
    """
    A worker's link to the other workers, set as its engine's C{bus}: the
    engine calls L{submit}, L{broadcast}, L{counter}, L{remoteHandles},
    L{announceOpen}/L{announceClose}; frames from the parent are applied to
    the engine (C{deliverBroadcast}, C{runHandleOp}).
    """

    log = Logger(namespace="gnetcompat.bus")

    def __init__(self, engine: Engine, shm: SharedCounters) -> None:
        self.engine = engine
        self.shm = shm
        self.proto = BusProtocol(self.frameReceived, self.lost)
        self.proto.name = f"worker {engine.workerIndex} bus"
        self._pending: dict[int, tuple[Callable[..., Any], ConnHandle]] = {}
        self._nextReq = 0
        #: the other workers' connections (WithConnRegistry), by (worker, generation, id)
        self._remote: dict[tuple[int, int, int], ConnHandle] = {}

    # what the engine calls (on the reactor thread)

    def submit(self, op: int, handle: ConnHandle, payload: Any, callback: Any) -> None:
        """Send C{op} on another worker's connection; C{callback(handle, err)} once acknowledged."""
        req = 0
        if callback is not None:
            self._nextReq += 1
            req = self._nextReq
        data = b"".join(payload) if isinstance(payload, list) else (payload or b"")
        if not self.proto.send(encodeOp(op, handle.worker, handle, req, data)):
            if callback is not None:
                self.engine.callback(callback, handle, ErrBusOverflow())
            return
        if callback is not None:
            self._pending[req] = (callback, handle)

    def broadcast(self, data: bytes, exclude: ConnHandle | None) -> None:
        """Send C{data} to every other worker's connections."""
        self.proto.send(encodeBroadcast(data, exclude))

    def counter(self, name: str) -> Counter:
        return SharedCounter(self.shm, name, self.engine.workerIndex)

    def remoteHandles(self) -> list[ConnHandle]:
        if not self.engine.options.ConnRegistry:
            raise ErrUnsupportedOp(
                "gnetcompat: Engine.Conns() across worker processes needs "
                "WithConnRegistry(True) (each worker then keeps the table of every connection)"
            )
        return list(self._remote.values())

    def announceOpen(self, handle: ConnHandle) -> None:
        self.proto.send(encodeRegistry(True, handle))

    def announceClose(self, handle: ConnHandle) -> None:
        self.proto.send(encodeRegistry(False, handle))

    # frames from the parent

    def frameReceived(self, frame: bytes) -> None:
        try:
            msg = decode(frame)
        except ValueError as e:
            self.log.error("bad frame from the parent: {error}", error=str(e))
            return
        kind = msg[0]
        eng = self.engine
        if kind == "B":
            eng.deliverBroadcast(msg[2], msg[1])
        elif kind == "O":
            _, op, source, handle, req, payload = msg
            err = eng.runHandleOp(op, handle, [payload] if op == OP_WRITEV else payload)
            if req:
                self.proto.send(encodeAck(source, req, err))
        elif kind == "A":
            entry = self._pending.pop(msg[2], None)
            if entry is not None:
                eng.callback(entry[0], entry[1], msg[3])
        elif kind == "N":
            h = msg[1]
            self._remote[(h.worker, h.generation, h.id)] = h
        elif kind == "X":
            h = msg[1]
            self._remote.pop((h.worker, h.generation, h.id), None)
        elif kind == "T":
            # the TLS files as the parent validated them: never the disk
            eng.reloadCertificates(msg[1])

    def lost(self) -> None:
        pending, self._pending = self._pending, {}
        for callback, handle in pending.values():
            self.engine.callback(callback, handle, ErrClosed())
