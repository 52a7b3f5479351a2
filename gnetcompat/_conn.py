# -*- test-case-name: tests.test_conn -*-
"""
L{Conn}: gnet's connection object over a Twisted transport.

All gnet semantics of the inbound buffer, writes, queued operations, the
close sequence and contexts live here; L{gnetcompat._protocol} only forwards
Twisted's events.  Bytes are C{bytes} copies, so the aliasing hazards of gnet's
slices do not exist: what the Reader methods return is the caller's, and every
write takes any bytes-like object and copies a mutable one (L{ownBytes}), as
Go's C{Write([]byte)} copies into the outbound buffer.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPullProducer, IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure
from zope.interface import implementer

from ._action import Action, CallbackResults
from ._addr import Addr, applyKeepAlive, fromTwisted
from ._tls import TLSState, connectionState
from ._twistedcompat import (
    builtinError,
    directSocket,
    hasWriteBuffer,
    isTLS,
    plaintextWaiting,
    rawTransport,
    sendNow,
    writeBacklog,
)
from .errors import (
    ErrClosed,
    ErrEngineInShutdown,
    ErrEngineShutdown,
    ErrEOF,
    ErrInvalidNetworkAddress,
    ErrInvalidTimeDuration,
    ErrNotOnEventLoop,
    ErrShortBuffer,
    ErrUnsupportedOp,
)
from .interfaces import IConn
from .options import Options


class ConnOwner(Protocol):
    """
    What a L{Conn} (and a L{UDPConn}) needs from the engine that owns it:
    the internal contract between a connection and L{gnetcompat._engine.Engine}
    (and the client's engine), so that neither reads the other's privates.
    Names are mixedCase, Twisted style: they are not gnet API.
    """

    #: the L{IEventHandler} whose callbacks the connection runs
    handler: Any
    #: the normalised options (C{WriteBufferCap}, C{ShutdownTimeout}, ...)
    options: Options
    #: where a failing callback is logged
    log: Logger
    #: checks what the handler's callbacks return (logs wrong shapes)
    results: CallbackResults
    #: runs queued operations (C{callFromThread})
    reactor: Any
    #: the timers of a closing connection
    clock: IReactorTime
    #: the connection's C{EventLoop()}
    loop: Any

    @property
    def stopping(self) -> bool:
        """Shutdown has begun."""

    @property
    def stopped(self) -> bool:
        """Shutdown is complete: queued operations no longer run."""

    def connAdded(self, conn: Any, proto: Any) -> None:
        """A connection opened (before its C{OnOpen}); C{proto} drives it."""

    def connRemoved(self, conn: Any) -> None:
        """A connection closed (before its C{OnClose})."""

    def transportGone(self, proto: Any) -> None:
        """The transport of C{proto} is gone (the engine's drain waits for this)."""

    def requestShutdown(self, fromLoop: bool) -> None:
        """Begin shutdown; C{fromLoop}: asked for by a connection's action."""

    def callback(self, cb: Callable[..., Any], conn: Any, err: BaseException | None) -> None:
        """Run an asynchronous operation's callback, logging what it raises."""

    def handleOf(self, conn: Any) -> Any:
        """A new engine-wide L{gnetcompat._handle.ConnHandle} for C{conn} (C{Conn.Handle()})."""


AsyncCallback = Callable[[Any, "BaseException | None"], Any]


@runtime_checkable
class ConnDriver(Protocol):
    """
    What a protocol layer on top of a L{Conn} uses of it (the WebSocket
    layer, L{gnetcompat.websocket.WebSocketConn}): the Reader call that
    drains a read, the queued C{Wake} and C{Close}, and the C{driver*}
    members of the driver API below.  Declared here, by the Conn layer, so
    that the layer above is type-checked against L{Conn} itself.
    """

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (writes go nowhere)."""

    def Next(self, n: int = -1) -> bytes:
        """Take C{n} inbound bytes (all with C{-1})."""

    def Wake(self, callback: AsyncCallback | None = None) -> None:
        """Queue an C{OnTraffic} with no new bytes."""

    def Close(self) -> None:
        """Queue a local close."""

    def driverWrite(self, data: bytes) -> None:
        """Write C{data} in order."""

    def driverWriteSequence(self, bufs: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write every buffer in order."""

    def driverAbort(self) -> None:
        """Close now, dropping what is queued."""

    def driverWhenDrained(self, callback: Callable[[], object]) -> None:
        """Call C{callback()} once the output over C{WriteBufferCap} was sent."""

    def driverPauseReading(self) -> None:
        """Stop reading from the peer until L{driverResumeReading}."""

    def driverResumeReading(self) -> None:
        """Undo L{driverPauseReading}."""

    @property
    def driverTransport(self) -> ITransport:
        """The Twisted transport (its addresses); write through the Conn."""

    @property
    def driverClock(self) -> IReactorTime:
        """The engine's clock, for the layer's timers."""

    @property
    def driverEngineStopped(self) -> bool:
        """Whether the engine has stopped (queued operations no longer run)."""


_EMPTY = b""
#: the calling thread's identifier (the loop-thread check of the writes)
_getIdent = threading.get_ident
#: reasons for a Conn to stop reading (bits of C{Conn._readHolds})
_HOLD_WRITE = 1
_HOLD_DRIVER = 2


def _secs(d: Any) -> int:
    """Seconds (a number or anything with C{total_seconds()}, as a timedelta) as an int."""
    if hasattr(d, "total_seconds"):
        d = d.total_seconds()
    return int(d)


def _isIP(host: object) -> bool:
    """True for an IP literal (a host name would make C{sendto} resolve, blocking)."""
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def ownBytes(data: Any, what: str) -> bytes:
    """
    C{data}, a bytes-like object, as C{bytes} the caller can no longer
    change: C{bytes} itself unchanged (never copied), a C{bytearray},
    C{memoryview} (any format or shape, as its raw bytes), C{array.array}
    or other buffer copied now.  The writes call it only for what is not
    exactly C{bytes} (C{type(data) is not bytes}), so the common case costs
    one type check.

    @param what: the caller, for the error (C{Conn.Write}, C{OnOpen}, ...).
    @raise TypeError: C{data} is not bytes-like (C{str}, C{int}, C{None},
        a list...): Go would not compile it, and C{bytes(5)}-style coercion
        would send garbage.
    """
    if isinstance(data, bytes):
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{what} takes a bytes-like object (bytes, bytearray, memoryview, "
            f"array), not {type(data).__name__}"
        ) from None
    with view:
        return view.tobytes()


def _ownSequence(bufs: Any, what: str) -> list[bytes]:
    """
    The buffers of a gather write as a list of C{bytes} (L{ownBytes} for
    each one that is not C{bytes}).

    @raise TypeError: C{bufs} is itself one buffer or a string (a gather
        write takes a list of them), or one of its items is not bytes-like.
    """
    if isinstance(bufs, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"{what} takes a list of bytes-like objects, not {type(bufs).__name__}")
    return [b if type(b) is bytes else ownBytes(b, what) for b in bufs]


def peerError(reason: Failure | None) -> BaseException:
    """
    The C{err} gnet passes to C{OnClose} for a connection lost for C{reason}:
    L{ErrEOF} for a clean close, the socket's C{OSError} (with its errno) for
    a failed read or write, never a Twisted exception type.
    """
    # Twisted's Failure.check is untyped, and Failure.value is declared
    # Optional although every Failure carries its exception.
    if reason is None or reason.check(ConnectionDone):  # type: ignore[no-untyped-call]
        return ErrEOF("read: EOF")
    return builtinError(reason.value)  # type: ignore[arg-type]


class _Reader:
    """
    gnet's Reader methods over an inbound buffer.

    C{_in} holds the readable bytes from C{_off}: a C{bytes} object while
    only one read's worth is buffered (the common case, copied never), a
    C{bytearray} once bytes are retained across reads.
    """

    if TYPE_CHECKING:
        # The slots that hold these two are the concrete classes' (Conn,
        # UDPConn); shown to mypy here so the methods below type-check.
        __slots__: tuple[str, ...] = ("_in", "_off")
    else:
        __slots__ = ()
    _in: bytes | bytearray
    _off: int

    def InboundBuffered(self) -> int:
        """The number of readable bytes."""
        return len(self._in) - self._off

    def Next(self, n: int = -1) -> bytes:
        """
        Return and consume the next C{n} bytes, or all of them for C{n <= 0}.

        @raise ErrShortBuffer: fewer than C{n} bytes are buffered (nothing is
            consumed; C{requested} and C{buffered} say how many).  Left to
            escape C{OnTraffic}, it means "wait for more data", as Go's
            C{if err != nil { return gnet.None }}.
        """
        buf, off = self._in, self._off
        avail = len(buf) - off
        if n <= 0 or n == avail:
            self._off = len(buf)
            if off == 0 and type(buf) is bytes:
                return buf
            return bytes(buf[off:])
        if n > avail:
            raise ErrShortBuffer(requested=n, buffered=avail)
        self._off = off + n
        return bytes(buf[off : off + n])

    def Peek(self, n: int = -1) -> bytes:
        """
        Return the next C{n} bytes (all for C{n <= 0}) without consuming.

        @raise ErrShortBuffer: fewer than C{n} bytes are buffered (see L{Next}).
        """
        buf, off = self._in, self._off
        avail = len(buf) - off
        if n <= 0 or n == avail:
            if off == 0 and type(buf) is bytes:
                return buf
            return bytes(buf[off:])
        if n > avail:
            raise ErrShortBuffer(requested=n, buffered=avail)
        return bytes(buf[off : off + n])

    def Discard(self, n: int = -1) -> int:
        """Drop C{n} bytes (all for C{n <= 0} or C{n} beyond what is buffered)."""
        avail = len(self._in) - self._off
        if n <= 0 or n >= avail:
            self._off = len(self._in)
            return avail
        self._off += n
        return n

    def Read(self, p: bytearray | memoryview) -> int:
        """
        Copy up to C{len(p)} bytes into the writable buffer C{p}, consuming them.

        @return: the number of bytes copied (0 for an empty C{p}).
        @raise ErrShortBuffer: nothing is buffered and C{p} is not empty.
        """
        want = len(p)
        if want == 0:
            return 0
        avail = len(self._in) - self._off
        if avail == 0:
            raise ErrShortBuffer(requested=want, buffered=0)
        n = min(want, avail)
        p[:n] = self._in[self._off : self._off + n]
        self._off += n
        return n

    def WriteTo(self, w: Any) -> int:
        """
        Drain every readable byte into C{w}: a Conn (its C{Write}) or any
        object with C{write}.  Returns the number of bytes.
        """
        data = self.Next(-1)
        if data:
            write = getattr(w, "Write", None) or w.write
            write(data)
        return len(data)

    def driverFeed(self, data: bytes) -> None:
        """Append a read to the inbound buffer (then L{Conn.driverTraffic} runs C{OnTraffic})."""
        if self._off == len(self._in):
            self._in = data
            self._off = 0
        else:
            if type(self._in) is bytes or self._off:
                self._in = bytearray(memoryview(self._in)[self._off :])
                self._off = 0
            self._in += data

    def _compact(self) -> None:
        if self._off == len(self._in):
            self._in = _EMPTY
            self._off = 0


@implementer(IPullProducer)
class _DrainWatcher:
    """
    Tells a L{Conn} that its transport's write buffer emptied.

    It is registered as the transport's I{pull} producer only while the
    connection's reading is paused for C{WriteBufferCap} (Twisted resumes a
    pull producer each time the buffer empties; the first call comes from
    C{registerProducer} itself, with the buffer still full, and is ignored).
    It is unregistered on resume and before any close: a registered producer
    keeps Twisted's C{loseConnection} from ever closing the socket.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def resumeProducing(self) -> None:
        conn = self.conn
        # the watcher is part of its Conn (same module): it reads the Conn's state
        if conn._drainWatch is self and not conn._backlog():  # noqa: SLF001  (Conn's own helper)
            conn._drained()  # noqa: SLF001  (Conn's own helper)

    def stopProducing(self) -> None:
        # the transport is gone (Twisted unregisters us itself)
        if self.conn._drainWatch is self:  # noqa: SLF001  (Conn's own helper)
            self.conn._drainWatch = None  # noqa: SLF001  (Conn's own helper)


@implementer(IConn)
class Conn(_Reader):
    """
    A gnet stream connection (TCP, unix, or a connected UDP client socket).

    Created by the engine; handlers receive it in every callback.
    """

    __slots__ = (
        "_engine",
        "_handler",
        "_transport",
        "_in",
        "_off",
        "_ctx",
        "_safe",
        "_lock",
        "_local",
        "_remote",
        "_network",
        "closed",
        "_inOnClose",
        "_fd",
        "_sock",
        "_cork",
        "_bufT",
        "_readHolds",
        "_drainWatch",
        "_whenDrained",
        "_closeTimer",
        "_loop",
        "_handle",
        "_loopThread",
        "_shortLogged",
        "__weakref__",
    )
    log = Logger()
    #: writes are a byte stream (and may be joined); False: each is a datagram
    _streamWrites = True

    def __init__(self, engine: ConnOwner, transport: Any, network: str = "tcp") -> None:
        self._engine = engine
        self._handler = engine.handler
        self._transport = transport
        self._in: bytes | bytearray = _EMPTY
        self._off = 0
        self._ctx: Any = None
        self._safe: Any = None
        self._lock = threading.Lock()
        self._local: Addr | bool | None = False  # False: not computed yet
        self._remote: Addr | bool | None = False
        self._network = network
        self.closed = False
        self._inOnClose = False  # writes stay allowed inside OnClose (spec §4.5)
        self._sock = directSocket(transport)
        #: the socket transport whose write buffer WriteBufferCap bounds (under
        #: TLS: the one below the TLS layer); None: a buffer we cannot see
        self._bufT: Any
        # kept from the start: Twisted forgets the number when the socket
        # closes, gnet's Fd() returns it even in OnClose and after
        if self._sock is not None:
            self._fd = self._sock.fileno()
            # a plain TCP/unix transport, whose buffer directSocket checked
            self._bufT = transport
        else:
            try:
                self._fd = transport.fileno()
            except Exception:
                self._fd = -1
            raw = rawTransport(transport)
            self._bufT = raw if hasWriteBuffer(raw) else None
        #: while OnTraffic runs: what it wrote, sent in one go when it returns
        self._cork: list[bytes] | None = None
        #: why reading is paused: _HOLD_WRITE (WriteBufferCap), _HOLD_DRIVER
        self._readHolds = 0
        #: while reading is paused for WriteBufferCap: the transport's producer
        self._drainWatch: _DrainWatcher | None = None
        #: callbacks for when the output held back by WriteBufferCap is sent
        self._whenDrained: list[Callable[[], object]] | None = None
        #: after a close with bytes queued: drops them after ShutdownTimeout
        self._closeTimer: Any = None
        #: the event loop the engine assigned (C{EventLoop()})
        self._loop: Any = engine.loop
        #: the engine-wide name, once asked for (L{Handle})
        self._handle: Any = None
        #: the thread of the connection's event loop: the one its transport
        #: connects on (connectionMade); see L{_offLoop}
        self._loopThread = _getIdent()
        #: an ErrShortBuffer escaping OnTraffic was logged once already
        self._shortLogged = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Conn {self._network} {self.RemoteAddr()} {state}>"

    # -- writing ---------------------------------------------------------

    def Write(self, data: bytes | bytearray | memoryview) -> int:
        """
        Send C{data}, any bytes-like object: bytes are queued in order and
        sent by the reactor.  A mutable buffer is copied now, so changing it
        after the call changes nothing sent (Go's C{Write} copies too).
        Loop-only: call it from the connection's callbacks (or OnTick, an
        async callback, a runnable), on the reactor thread.

        @return: the number of bytes (C{nbytes} of a C{memoryview}).
        @raise ErrClosed: the connection is closed.
        @raise ErrNotOnEventLoop: called from another thread (use
            C{AsyncWrite}).
        @raise TypeError: C{data} is not bytes-like.
        """
        if type(data) is not bytes:
            data = ownBytes(data, "Conn.Write")
        if self.closed and not self._inOnClose:
            raise ErrClosed()
        cork = self._cork
        if cork is not None:  # inside this conn's OnTraffic: on its loop
            cork.append(data)
        else:
            if _getIdent() != self._loopThread:
                self._offLoop("Write", "AsyncWrite(data, callback)")
            if sendNow(self._transport, self._sock, data):
                self._queued()
        return len(data)

    def Writev(self, bufs: Iterable[bytes | bytearray | memoryview]) -> int:
        """
        Gather write of every buffer (any bytes-like objects, copied as
        C{Write} copies) in order; returns the total length.  Loop-only.

        @raise ErrClosed: the connection is closed (not inside C{OnClose}).
        @raise ErrNotOnEventLoop: called from another thread (use
            C{AsyncWritev}).
        @raise TypeError: C{bufs} is not an iterable of bytes-like objects.
        """
        owned = _ownSequence(bufs, "Conn.Writev")
        if self.closed and not self._inOnClose:
            raise ErrClosed()
        if self._cork is None and _getIdent() != self._loopThread:
            self._offLoop("Writev", "AsyncWritev(bufs, callback)")
        self._sendSequence(owned)
        return sum(map(len, owned))

    def _offLoop(self, method: str, instead: str) -> None:
        """
        The slow path of the loop-thread check of C{method}: the caller is
        not on the thread recorded in C{_loopThread}.  That thread is where the
        transport connected, i.e. the reactor's, except for a socket adopted
        before the reactor ran (C{Client.Enroll}) on a thread that then did
        not run it: once the reactor runs, its thread (Twisted's I/O thread)
        is the loop, and is recorded.  Any other thread is refused.

        Skipped while the connection's own C{OnTraffic} runs (its writes
        are corked; the check would cost a third of a C{Write} there), so a
        stray thread is caught on every write except one that lands inside
        that window.

        @raise ErrNotOnEventLoop: naming the thread and the method to use.
        """
        ident = _getIdent()
        if getattr(self._engine.reactor, "running", False) and threadable.ioThread == ident:
            self._loopThread = ident
            return
        raise ErrNotOnEventLoop(
            f"gnet: Conn.{method} called from thread {threading.current_thread().name!r}, "
            f"not the connection's event loop: use c.{instead} from other threads"
        )

    def SendTo(self, data: bytes, addr: Any) -> int:
        """Only for UDP: stream connections raise L{ErrUnsupportedOp}."""
        raise ErrUnsupportedOp()

    def ReadFrom(self, r: Any) -> int:
        """Send what the file-like C{r} yields until EOF; returns the count."""
        total = 0
        while True:
            chunk = r.read(65536)
            if not chunk:
                return total
            self.Write(chunk)
            total += len(chunk)

    def Flush(self) -> None:
        """Twisted flushes as the socket allows; nothing to do."""
        return None

    def OutboundBuffered(self) -> int:
        """
        Bytes written but not yet taken by the kernel (Twisted's buffers).
        Over TLS: plaintext the TLS layer holds plus the encrypted bytes
        queued (L{gnetcompat._twistedcompat.plaintextWaiting}).
        """
        corked = sum(map(len, self._cork)) if self._cork else 0
        try:
            return self._backlog() + corked
        except AttributeError:  # not a FileDescriptor (StringTransport): nothing we can see
            return corked

    def ConnectionState(self) -> TLSState | None:
        """
        gnetcompat: the TLS parameters of this connection (Go's
        C{tls.Conn.ConnectionState()}: version, cipher suite, ALPN result,
        SNI name, peer certificates); C{None} when it is not TLS or closed.
        """
        if self.closed:
            return None
        return connectionState(self._transport)

    def _send(self, data: bytes) -> None:
        """
        Write C{data} in order: inside C{OnTraffic} it joins what the
        callback wrote so far and goes out when it returns (one send for
        all the replies to a read, as Twisted's own buffering would give,
        without its extra epoll calls); otherwise at once (L{sendNow}).
        C{data} may be any bytes-like object (copied unless C{bytes}).
        """
        if type(data) is not bytes:
            data = ownBytes(data, "Conn.driverWrite")
        cork = self._cork
        if cork is not None:
            cork.append(data)
        elif sendNow(self._transport, self._sock, data):
            self._queued()

    def _sendSequence(self, bufs: list[bytes]) -> None:
        """L{_send} for a gather write (every buffer C{bytes}: see L{_ownSequence})."""
        cork = self._cork
        if cork is not None:
            cork.extend(bufs)
        else:
            self._transport.writeSequence(bufs)
            self._queued()

    def _flushCork(self) -> None:
        """Send what the running C{OnTraffic} wrote so far (still corked)."""
        cork = self._cork
        if cork:
            self._cork = []
            if sendNow(self._transport, self._sock, cork[0] if len(cork) == 1 else b"".join(cork)):
                self._queued()

    # -- outbound limit (WriteBufferCap) ---------------------------------

    def _backlog(self) -> int:
        """
        The bytes waiting in the transport (over TLS: the plaintext the TLS
        layer holds plus the encrypted bytes below it).

        @raise AttributeError: a transport whose buffer we cannot see.
        """
        t = self._transport
        if self._bufT is t:
            return writeBacklog(t)
        if isTLS(t):
            return plaintextWaiting(t)
        return writeBacklog(t)

    def _queued(self) -> None:
        """
        Bytes were left in the transport's write buffer: past
        C{WriteBufferCap}, stop reading until the buffer has drained (gnet's
        outbound buffer is unbounded; ours is bounded by pushing back on the
        peer).  TCP and unix transports, TLS or not, whose buffer we can see.
        """
        raw = self._bufT
        if self._drainWatch is not None or raw is None or self.closed:
            return
        if self._backlog() > self._engine.options.WriteBufferCap:
            watch = self._drainWatch = _DrainWatcher(self)
            # on the socket transport itself (under TLS too: the TLS layer
            # then has no producer, so its close_notify is never held back)
            self._holdReading(_HOLD_WRITE)
            raw.registerProducer(watch, False)

    def _drained(self) -> None:
        """The write buffer emptied while reading was paused: read again."""
        self._unwatch()
        self._releaseReading(_HOLD_WRITE)
        waiting, self._whenDrained = self._whenDrained, None
        if waiting and not self.closed:
            for callback in waiting:
                callback()

    def _holdReading(self, why: int) -> None:
        """Stop reading (the first of the reasons in L{_readHolds})."""
        held = self._readHolds
        self._readHolds = held | why
        if not held:
            pause = getattr(self._bufT or self._transport, "pauseProducing", None)
            if pause is not None:
                pause()

    def _releaseReading(self, why: int) -> None:
        """Drop one reason to stop reading; read again once none is left."""
        held = self._readHolds
        self._readHolds = held & ~why
        if held and not self._readHolds and not self.closed:
            resume = getattr(self._bufT or self._transport, "resumeProducing", None)
            if resume is not None:
                resume()

    def _unwatch(self) -> None:
        if self._drainWatch is not None:
            self._drainWatch = None
            self._bufT.unregisterProducer()

    # -- queued operations (any thread) ----------------------------------

    def _queue(self, fn: Callable[..., Any], *args: Any) -> None:
        eng = self._engine
        if eng.stopped:
            raise ErrEngineInShutdown()
        eng.reactor.callFromThread(fn, *args)

    def _droppedByShutdown(self) -> bool:
        """
        Whether a queued operation must not run: gnet drops the tasks queued
        behind the stop (spec 15.3).  The engine only counts as stopped once
        every transport is gone, a reactor iteration after the teardown
        closed this conn, so a closed conn during shutdown counts too.
        """
        eng = self._engine
        return eng.stopped or (eng.stopping and self.closed)

    def AsyncWrite(self, data: bytes, callback: AsyncCallback | None = None) -> None:
        """
        Queue a write from any thread; C{callback(c, err)} runs on the
        reactor after it (C{err} is L{ErrClosed} when the connection had
        closed).  Any bytes-like object; mutable buffers are copied now.

        @raise TypeError: C{data} is not bytes-like.
        """
        if type(data) is not bytes:
            data = ownBytes(data, "Conn.AsyncWrite")
        self._queue(self._asyncWrite, data, callback, False)

    def AsyncWritev(self, bufs: Iterable[bytes], callback: AsyncCallback | None = None) -> None:
        """Queue a gather write from any thread, as C{AsyncWrite}."""
        self._queue(self._asyncWrite, _ownSequence(bufs, "Conn.AsyncWritev"), callback, True)

    def _asyncWrite(self, data: Any, callback: AsyncCallback | None, vector: bool) -> None:
        if self._droppedByShutdown():
            return
        err: BaseException | None = None
        if self.closed:
            err = ErrClosed()
        elif vector:
            self._sendSequence(data)
        else:
            self._send(data)
        if callback is not None:
            self._engine.callback(callback, self, err)

    def Wake(self, callback: AsyncCallback | None = None) -> None:
        """
        Queue an C{OnTraffic(c)} with no new bytes (retained bytes are
        readable); then C{callback(c, err)}.  On a closed connection
        C{OnTraffic} is skipped and the callback still runs with C{None}.
        """
        self._queue(self._wake, callback)

    def _wake(self, callback: AsyncCallback | None) -> None:
        if self._droppedByShutdown():
            return
        result: BaseException | None = None
        if not self.closed:
            result = self.driverTraffic()
        if callback is not None:
            self._engine.callback(callback, self, result)

    def Close(self) -> None:
        """
        Queue a local close (C{OnClose(c, None)}): asynchronous even inside
        the connection's own callback; return C{Close} for a synchronous one.
        """
        self._queue(self._closeTask, None)

    def CloseWithCallback(self, callback: AsyncCallback | None) -> None:
        """
        As C{Close}, then C{callback(c, result)}: L{ErrEngineShutdown} when
        OnClose returned Shutdown.
        """
        self._queue(self._closeTask, callback)

    def _closeTask(self, callback: AsyncCallback | None) -> None:
        if self._droppedByShutdown():
            return
        result = self.driverCloseLocal(propagate=True)
        if callback is not None:
            self._engine.callback(callback, self, result)

    # -- the driver API: for the layers that drive a Conn ----------------
    # Not gnet API (handlers use the PascalCase methods): what the Twisted
    # skin (_protocol), dialling (_dial), the engine and a protocol layer on
    # top of a Conn (the WebSocket layer) call, so none of them reads
    # Conn's privates.  driverFeed/driverTraffic/driverLost/driverApply/
    # driverCloseLocal are defined where their logic lives (below and in
    # _Reader); driverWrite is the write path itself, not a wrapper (the
    # per-message path gets no extra call); driverWriteSequence takes the
    # buffers' bytes first.

    #: C{driverWrite(data)}: write C{data} in order (joined with what the
    #: running C{OnTraffic} wrote; otherwise sent at once); any bytes-like
    #: object, copied unless C{bytes}
    driverWrite = _send

    def driverWriteSequence(self, bufs: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write every buffer in order, as C{driverWrite}; mutable ones are copied now."""
        self._sendSequence(_ownSequence(bufs, "Conn.driverWriteSequence"))

    def driverAbort(self) -> None:
        """Close now (C{OnClose} runs) and drop what is queued: a protocol failure."""
        if self.closed:
            return
        self.driverCloseLocal(propagate=True)
        abort = getattr(self._transport, "abortConnection", None)
        if abort is not None:
            abort()

    def driverWhenDrained(self, callback: Callable[[], object]) -> None:
        """
        Call C{callback()} once more than C{WriteBufferCap} bytes no longer
        wait to be sent: now if they do not, else when the peer has taken
        them (never if the connection closes first).  A layer that produces
        output from input it already read (the WebSocket layer inflating a
        message in steps) waits with it, so what it queues stays bounded.
        """
        if self._drainWatch is None or self.closed:
            callback()
            return
        if self._whenDrained is None:
            self._whenDrained = []
        self._whenDrained.append(callback)

    def driverPauseReading(self) -> None:
        """
        Stop reading from the peer until L{driverResumeReading} (the
        WebSocket layer, while it inflates a message in steps).  Independent
        of the pause for C{WriteBufferCap}: reading resumes when neither holds it.
        """
        self._holdReading(_HOLD_DRIVER)

    def driverResumeReading(self) -> None:
        """Undo L{driverPauseReading}."""
        self._releaseReading(_HOLD_DRIVER)

    @property
    def driverTransport(self) -> Any:
        """The Twisted transport (for its C{getPeer}/C{getHost}); write through the Conn."""
        return self._transport

    @property
    def driverClock(self) -> Any:
        """The engine's C{IReactorTime}, for a layer's timers."""
        return self._engine.clock

    @property
    def driverEngineStopped(self) -> bool:
        """Whether the engine has stopped (queued operations are no longer run)."""
        return bool(self._engine.stopped)

    # -- lifecycle, called by the protocol -------------------------------

    def driverTraffic(self) -> BaseException | None:
        """Run OnTraffic and apply its action; the result for a Wake callback."""
        if self._streamWrites:
            self._cork = []
        try:
            action = self._handler.OnTraffic(self)
        except ErrShortBuffer as e:
            # Go's "if err != nil { return gnet.None }": wait for more data
            self._shortBuffer(e)
            action = None
        except Exception:
            self._engine.log.failure("OnTraffic raised; closing {conn!r}", conn=self)
            self.driverCloseLocal(propagate=True)
            return None
        finally:
            self._flushCork()
            self._cork = None
        if self._off == len(self._in):  # _compact, inlined on the hot path
            self._in = _EMPTY
            self._off = 0
        if action:
            return self.driverApply(self._engine.results.action("OnTraffic", action))
        return None

    def _shortBuffer(self, e: ErrShortBuffer) -> None:
        """
        An L{ErrShortBuffer} escaped C{OnTraffic}: no action, the unread
        bytes stay buffered (what the handler consumed before stays
        consumed), and the first time per connection one debug line.
        """
        if not self._shortLogged:
            self._shortLogged = True
            self._engine.log.debug(
                "OnTraffic of {conn!r} stopped at a short buffer ({requested} bytes"
                " asked for, {buffered} buffered): waiting for more data",
                conn=self,
                requested=e.requested,
                buffered=e.buffered,
            )

    def driverApply(self, action: Action) -> BaseException | None:
        """Apply a callback's action (Close, Shutdown); the result for a callback."""
        if action == Action.CLOSE:
            return self.driverCloseLocal(propagate=True)
        if action == Action.SHUTDOWN:
            self._engine.requestShutdown(fromLoop=True)
            return ErrEngineShutdown()
        return None

    def driverCloseLocal(self, propagate: bool) -> BaseException | None:
        """The local close sequence; returns ErrEngineShutdown if OnClose asked for it."""
        if self.closed:
            return None
        self._flushCork()  # what OnTraffic wrote before closing goes out first,
        self._cork = None  # and what OnClose writes goes straight after it
        result = self._finish(None)
        self._unwatch()  # a registered producer would keep the socket open for ever
        t = self._transport
        t.loseConnection()
        self._limitFlush()
        if result is not None and propagate:
            self._engine.requestShutdown(fromLoop=True)
        return result

    def _limitFlush(self) -> None:
        """
        A closing connection writes what is queued as long as the peer keeps
        taking it; when C{ShutdownTimeout} seconds pass without progress the
        rest is dropped and the socket closed (gnet drops it at once), so a
        peer that stops reading cannot keep the descriptor.
        """
        raw = self._bufT
        if raw is None:
            return
        left = self._backlog()
        if left and raw.connected:
            eng = self._engine
            self._closeTimer = eng.clock.callLater(
                eng.options.ShutdownTimeout, self._checkFlush, left
            )

    def _checkFlush(self, before: int) -> None:
        self._closeTimer = None
        if not self._bufT.connected:
            return
        left = self._backlog()
        if left and left < before:
            self._limitFlush()
        elif left:
            self._transport.abortConnection()

    def driverLost(self, reason: Failure | None) -> None:
        """The transport is gone (peer close, error, or after our own close)."""
        timer = self._closeTimer
        if timer is not None:
            self._closeTimer = None
            if timer.active():
                timer.cancel()
        if self.closed:
            return
        if self._finish(peerError(reason)) is not None:
            self._engine.requestShutdown(fromLoop=True)

    def _finish(self, err: BaseException | None) -> BaseException | None:
        """Remove, call OnClose, release.  Returns ErrEngineShutdown for a Shutdown action."""
        self.closed = True
        eng = self._engine
        eng.connRemoved(self)
        self._inOnClose = True
        try:
            action = eng.results.action("OnClose", self._handler.OnClose(self, err))
        except Exception:
            eng.log.failure("OnClose raised for {conn!r}", conn=self)
            action = Action.NONE
        finally:
            self._inOnClose = False
        # release: contexts and addresses become nil, buffers are freed
        self._ctx = None
        with self._lock:
            self._safe = None
        self._local = self._remote = None
        self._in = _EMPTY
        self._off = 0
        if action == Action.SHUTDOWN:
            return ErrEngineShutdown()
        return None

    # -- context and addresses -------------------------------------------

    def Context(self) -> Any:
        """The per-connection value; C{None} initially and after close."""
        return self._ctx

    def SetContext(self, ctx: Any) -> None:
        """Set the per-connection value (reactor thread only)."""
        self._ctx = ctx

    def SafeContext(self) -> Any:
        """The thread-safe per-connection value, independent of C{Context}."""
        with self._lock:
            return self._safe

    def SetSafeContext(self, ctx: Any) -> None:
        """Set the thread-safe value from any thread."""
        with self._lock:
            self._safe = ctx

    def LocalAddr(self) -> Addr | None:
        """The socket's local address (C{None} once released)."""
        if self._local is False:
            self._local = fromTwisted(self._transport.getHost(), self._network)
        return self._local  # type: ignore[return-value]

    def RemoteAddr(self) -> Addr | None:
        """The peer's address (C{None} once released)."""
        if self._remote is False:
            self._remote = fromTwisted(self._transport.getPeer(), self._network)
        return self._remote  # type: ignore[return-value]

    def Handle(self) -> Any:
        """
        gnetcompat: this connection's engine-wide name, a
        L{gnetcompat.ConnHandle} (gnet's old C{Gfd}), valid in every worker
        process: C{Engine.AsyncWrite(handle, data)}, C{Engine.Close(handle)},
        C{Engine.Wake(handle)}, C{Engine.Broadcast(data, exclude=handle)}.
        The same handle every time; call it on the connection's loop.

        @raise ErrClosed: the connection closed before it was ever asked for.
        """
        h = self._handle
        if h is None:
            if self.closed and not self._inOnClose:
                raise ErrClosed()
            h = self._handle = self._engine.handleOf(self)
        return h

    @property
    def driverHandle(self) -> Any:
        """The handle given by L{Handle} so far, or C{None}."""
        return self._handle

    def driverSetLoop(self, loop: Any) -> None:
        """The engine assigns the connection to one of its event loops."""
        self._loop = loop

    def EventLoop(self) -> Any:
        """The loop owning this connection (one of the engine's loops)."""
        return self._loop

    # -- socket methods (any thread) -------------------------------------

    def _socket(self) -> socket.socket:
        if self.closed:
            raise ErrClosed()
        handle = rawTransport(self._transport).getHandle()
        if not isinstance(handle, socket.socket):
            raise ErrUnsupportedOp()
        return handle

    def _tcpSocket(self) -> socket.socket:
        s = self._socket()
        if s.family not in (socket.AF_INET, socket.AF_INET6) or s.type != socket.SOCK_STREAM:
            raise ErrUnsupportedOp()
        return s

    def Fd(self) -> int:
        """
        The socket's descriptor, kept from when the connection opened: the
        old number in C{OnClose} and after close, as in gnet (the OS may have
        reused it by then).  -1 for a transport without one.
        """
        return self._fd

    def Dup(self) -> int:
        """A close-on-exec duplicate of the socket's descriptor; the caller closes it."""
        return os.dup(self._socket().fileno())

    def SetReadBuffer(self, size: int) -> None:
        """C{SO_RCVBUF}."""
        self._socket().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def SetWriteBuffer(self, size: int) -> None:
        """C{SO_SNDBUF}."""
        self._socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def SetLinger(self, sec: int) -> None:
        """C{SO_LINGER}: off for C{sec < 0}, reset-on-close for 0, else a timeout."""
        onoff = 0 if sec < 0 else 1
        self._socket().setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", onoff, max(sec, 0))
        )

    def SetNoDelay(self, noDelay: bool) -> None:
        """C{TCP_NODELAY} on or off (an OS error on non-TCP sockets)."""
        self._socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if noDelay else 0)

    def SetKeepAlivePeriod(self, d: float) -> None:
        """
        Keep-alive on with idle C{d} seconds, interval C{max(1, d/5)}, 5 probes.

        @raise ErrUnsupportedOp: not a TCP connection.
        @raise ErrInvalidTimeDuration: C{d} below one second.
        """
        s = self._tcpSocket()
        secs = _secs(d)
        if secs < 1:
            raise ErrInvalidTimeDuration()
        applyKeepAlive(s, secs, max(1, secs // 5), 5)

    def SetKeepAlive(self, enabled: bool, idle: float, intvl: float, cnt: int) -> None:
        """
        Keep-alive with every parameter; disabled ignores the others.

        @raise ErrUnsupportedOp: not a TCP connection.
        @raise ErrInvalidTimeDuration: enabled with idle/intvl below 1 s or cnt below 1.
        """
        s = self._tcpSocket()
        if not enabled:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
            return
        if _secs(idle) < 1 or _secs(intvl) < 1 or cnt < 1:
            raise ErrInvalidTimeDuration()
        applyKeepAlive(s, _secs(idle), _secs(intvl), cnt)

    def SetDeadline(self, t: Any) -> None:
        """Unsupported, as in gnet."""
        raise ErrUnsupportedOp()

    SetReadDeadline = SetWriteDeadline = SetDeadline


@implementer(IConn)
class UDPConn(_Reader):
    """
    The throwaway Conn of one server-side UDP datagram: no OnOpen/OnClose, no
    count; C{Write} answers the sender, C{SendTo} any address, C{Close} is a
    no-op.  It keeps the sender's address, so writing after C{OnTraffic}
    returned (from any thread) still reaches the sender.
    """

    __slots__ = (
        "_engine",
        "_port",
        "_in",
        "_off",
        "_ctx",
        "_safe",
        "_peer",
        "_local",
        "_network",
        "closed",
    )

    def __init__(
        self, engine: ConnOwner, port: Any, data: bytes, peer: tuple[Any, ...], network: str = "udp"
    ) -> None:
        self._engine = engine
        self._port = port
        self._in = data
        self._off = 0
        self._ctx: Any = None
        self._safe: Any = None
        self._peer = peer
        self._local: Addr | bool | None = False
        self._network = network
        self.closed = False

    def Write(self, data: bytes) -> int:
        """
        Send one datagram to the sender of this datagram, at once (any thread).

        @return: the number of bytes.
        @raise OSError: the send failed (e.g. C{EMSGSIZE}).
        @raise TypeError: C{data} is not bytes-like.
        """
        if type(data) is not bytes:
            data = ownBytes(data, "UDPConn.Write")
        self._port.socket.sendto(data, self._peer)
        return len(data)

    def SendTo(self, data: bytes, addr: Any) -> int:
        """
        Send one datagram to C{addr} (an L{Addr} or a socket address tuple).

        @raise ErrInvalidNetworkAddress: C{addr} is C{None} or not an address.
        @raise TypeError: C{data} is not bytes-like.
        """
        if type(data) is not bytes:
            data = ownBytes(data, "UDPConn.SendTo")
        if isinstance(addr, Addr) and addr.network == "udp":
            target = addr.sockaddr()
        elif isinstance(addr, tuple) and len(addr) >= 2 and _isIP(addr[0]):
            target = addr
        else:
            raise ErrInvalidNetworkAddress()
        self._port.socket.sendto(data, target)
        return len(data)

    def Writev(self, bufs: Iterable[bytes]) -> int:
        """Unsupported on UDP, as in gnet."""
        raise ErrUnsupportedOp()

    def AsyncWritev(self, bufs: Iterable[bytes], callback: AsyncCallback | None = None) -> None:
        """Unsupported on UDP, as in gnet."""
        raise ErrUnsupportedOp()

    def ReadFrom(self, r: Any) -> int:
        """Unsupported on UDP."""
        raise ErrUnsupportedOp()

    def AsyncWrite(self, data: bytes, callback: AsyncCallback | None = None) -> None:
        """
        As gnet's UDP C{AsyncWrite}, not asynchronous: send the datagram now,
        on the calling thread (so it keeps its place among this thread's
        C{Write}s), then C{callback(None, err)} there (no conn, as gnet
        calls it; C{err} is the send error or C{None}).

        @raise ErrEngineInShutdown: the engine has stopped.
        @raise OSError: the send failed (after the callback ran).
        """
        eng = self._engine
        if eng.stopped:
            raise ErrEngineInShutdown()
        if type(data) is not bytes:
            data = ownBytes(data, "UDPConn.AsyncWrite")
        err: OSError | None = None
        try:
            self._port.socket.sendto(data, self._peer)
        except OSError as e:
            err = e
        if callback is not None:
            eng.callback(callback, None, err)
        if err is not None:
            raise err

    def Flush(self) -> None:
        """No-op."""

    def OutboundBuffered(self) -> int:
        """Always 0: datagrams are sent at once."""
        return 0

    def Wake(self, callback: AsyncCallback | None = None) -> None:
        """No connection to wake: the callback runs with C{(c, None)}."""
        if callback is not None:
            self._engine.reactor.callFromThread(self._engine.callback, callback, self, None)

    def Close(self) -> None:
        """No-op for a datagram."""

    def CloseWithCallback(self, callback: AsyncCallback | None) -> None:
        """No-op for a datagram; the callback runs with C{None}."""
        self.Wake(callback)

    def Context(self) -> Any:
        """Per-datagram value (never persists between datagrams)."""
        return self._ctx

    def SetContext(self, ctx: Any) -> None:
        """Set the per-datagram value."""
        self._ctx = ctx

    def SafeContext(self) -> Any:
        """The thread-safe per-datagram value, its own slot as in gnet."""
        return self._safe

    def SetSafeContext(self, ctx: Any) -> None:
        """Set the thread-safe value (any thread; an attribute store is atomic)."""
        self._safe = ctx

    def LocalAddr(self) -> Addr | None:
        """The listening socket's address."""
        if self._local is False:
            self._local = fromTwisted(self._port.getHost(), "udp")
        return self._local  # type: ignore[return-value]

    def RemoteAddr(self) -> Addr | None:
        """The sender's address."""
        return fromTwisted(self._peer, "udp")

    def EventLoop(self) -> Any:
        """The loop that received the datagram."""
        return self._engine.loop

    def Handle(self) -> Any:
        """A datagram is no connection: L{ErrUnsupportedOp}."""
        raise ErrUnsupportedOp()

    def Fd(self) -> int:
        """The listening socket's descriptor (shared by every datagram)."""
        fd: int = self._port.fileno()
        return fd

    def Dup(self) -> int:
        """A duplicate of the listening socket's descriptor."""
        return os.dup(self._port.fileno())

    def _sock(self) -> socket.socket:
        sock: socket.socket = self._port.socket
        return sock

    def SetReadBuffer(self, size: int) -> None:
        """C{SO_RCVBUF} on the listening socket."""
        self._sock().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def SetWriteBuffer(self, size: int) -> None:
        """C{SO_SNDBUF} on the listening socket."""
        self._sock().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def SetLinger(self, sec: int) -> None:
        """Meaningless for UDP; accepted."""

    def SetNoDelay(self, noDelay: bool) -> None:
        """Not a TCP socket: the OS error."""
        raise OSError("setsockopt: TCP_NODELAY on a UDP socket")

    def SetKeepAlivePeriod(self, d: float) -> None:
        """Unsupported on UDP."""
        raise ErrUnsupportedOp()

    def SetKeepAlive(self, enabled: bool, idle: float, intvl: float, cnt: int) -> None:
        """Unsupported on UDP."""
        raise ErrUnsupportedOp()

    def SetDeadline(self, t: Any) -> None:
        """Unsupported, as in gnet."""
        raise ErrUnsupportedOp()

    SetReadDeadline = SetWriteDeadline = SetDeadline


if TYPE_CHECKING:

    def _connDrives(conn: Conn) -> ConnDriver:
        # mypy's check that a Conn is everything ConnDriver declares
        return conn
