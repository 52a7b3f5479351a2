"""
The gnet surface as zope.interface interfaces.

Names at this surface are gnet's own (C{OnTraffic}, C{Next}, C{Write} ...),
so a gnet program ports line by line.  Durations are float seconds (a
C{datetime.timedelta} is accepted too).  Synchronous calls raise the
exceptions of L{gnetcompat.errors}; callbacks receive error values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

#: C{callback(c, err)} of the asynchronous calls (C{err} is C{None} on success).
AsyncCallback = Callable[[Any, "BaseException | None"], object]

__all__ = ["IEventHandler", "IEngine", "IConn", "IEventLoop", "IAddr"]


class IEventHandler(Interface):
    """
    The six callbacks of a gnet event handler.

    Subclass L{gnetcompat.BuiltinEventEngine} to get no-op defaults and
    override what you need.  Return values: an L{gnetcompat.Action} (or
    C{None}, meaning no action); C{OnOpen} returns C{(out, action)} and
    C{OnTick} returns C{(delay_seconds, action)}, either of which may also be
    plain C{None}.
    """

    def OnBoot(eng: IEngine) -> object:
        """
        Called once when the engine is ready: listeners are bound and
        listening, no connection has been served yet.  Returning C{Shutdown}
        aborts the start (C{OnShutdown} is then not called).
        """

    # (Deferred[Any]: its result is ignored, and Deferred is invariant, so a
    # Deferred[None] or any other would not match Deferred[object])
    def OnShutdown(eng: IEngine) -> Deferred[Any] | None:
        """
        Called once when the engine shuts down, while its listeners are still
        open (so C{Dup} works).  Connections of an external stop are still
        open here; their C{OnClose} follows.

        gnetcompat extension: it may return a C{Deferred} (e.g. until every
        WebSocket finished its closing handshake).  The engine waits for it,
        at most C{ShutdownTimeout} seconds (then cancels it), before it
        closes the remaining connections; its result is ignored, a failure
        is logged.  gnet's C{OnShutdown} returns nothing: return C{None}.
        """

    def OnOpen(c: IConn) -> object:
        """
        A connection was opened.  Return C{(out, action)}: C{out} (bytes, may
        be empty) is written before the action is applied.
        """

    def OnClose(c: IConn, err: BaseException | None) -> object:
        """
        A connection is closing.  C{err} is C{None} when the close was
        initiated locally (a C{Close} action, C{Conn.Close}, shutdown) and an
        error value for every peer or I/O cause, a clean remote close
        included (an L{gnetcompat.errors.ErrEOF}).  The context, addresses
        and inbound buffer are still readable here.
        """

    def OnTraffic(c: IConn) -> object:
        """
        Bytes arrived (or C{Wake} was called).  Read them with the Reader
        methods; bytes left unread are kept and shown first next time, but
        retained bytes alone never cause another call: only new data or
        C{Wake} does.
        """

    def OnTick() -> object:
        """
        Called by the ticker (C{WithTicker(True)}), first right after start,
        then after each returned delay.  Return C{(delay_seconds, action)};
        C{Shutdown} stops the engine.  Runs on the reactor thread: it must not
        block (use C{deferToThread} and return a Deferred of the pair).
        """


class IAddr(Interface):
    """A network address, like Go's C{net.Addr}."""

    def Network() -> str:
        """C{"tcp"}, C{"udp"} or C{"unix"}."""

    def String() -> str:
        """C{ip:port}, C{[ipv6]:port}, or a unix path."""


class IEngine(Interface):
    """A handle on a running engine, given to C{OnBoot} and C{OnShutdown}."""

    def Validate() -> None:
        """
        Raise L{ErrEmptyEngine} for an engine without listeners and
        L{ErrEngineInShutdown} once shutdown began; return C{None} otherwise.
        """

    def CountConnections() -> int:
        """Live connections, engine-wide (all workers); -1 for an invalid engine."""

    def Dup() -> int:
        """
        A close-on-exec duplicate of the only listening socket's descriptor;
        the caller closes it.  L{ErrUnsupportedOp} with several listeners.
        """

    def DupListener(network: str, addr: str) -> int:
        """
        Like C{Dup} for the listener whose normalised network (tcp, udp,
        unix) and address text match; L{ErrInvalidNetworkAddress} otherwise.
        """

    def Stop(ctx: object) -> object:
        """
        gnet's C{Stop(ctx)}: shut the engine down.  From another thread:
        block until it stopped.  On the reactor thread: return a Deferred
        firing when it stopped.  C{ctx} (C{None} or a C{Context}) may carry
        a deadline that ends the wait with C{TimeoutError}.  A second call
        raises L{ErrEngineInShutdown}.
        """

    # gnetcompat extensions: the engine-wide API (the same in one process
    # and across process workers; see README "Multicore")

    def AsyncWrite(handle: Any, data: Any, callback: Any = None) -> None:
        """
        C{c.AsyncWrite(data)} for the connection named by C{handle} (from
        C{c.Handle()}), in whichever worker process owns it; from any thread.
        C{callback(handle, err)} runs in this process afterwards.
        """

    def AsyncWritev(handle: Any, bufs: Any, callback: Any = None) -> None:
        """C{c.AsyncWritev(bufs)} by handle, as C{AsyncWrite}."""

    def Close(handle: Any, callback: Any = None) -> None:
        """C{c.CloseWithCallback(...)} by handle, as C{AsyncWrite}."""

    def Wake(handle: Any, callback: Any = None) -> None:
        """C{c.Wake(...)} by handle, as C{AsyncWrite}."""

    def Broadcast(data: Any, exclude: Any = None) -> None:
        """Write C{data} to every connection of the engine (every worker) but C{exclude}."""

    def Conns() -> list[Any]:
        """
        The handles of every live connection (across process workers only
        with C{WithConnRegistry(True)}, else L{ErrUnsupportedOp}).
        """

    def Counter(name: str) -> Any:
        """The engine-wide counter C{name} (C{Add(n)}, C{Value()})."""


class IEventLoop(Interface):
    """The loop owning a connection (gnet's C{Conn.EventLoop()})."""

    def Execute(ctx: object, runnable: object) -> None:
        """Queue C{runnable.Run(ctx)} (or a plain callable C{f(ctx)}) on the loop."""

    def Schedule(ctx: object, runnable: object, delay: float) -> None:
        """Not supported by gnet either: raises L{ErrUnsupportedOp}."""

    def Register(ctx: object, addr: object) -> object:
        """Dial C{addr} and add the connection to this loop (a Deferred of a result)."""

    def Enroll(ctx: object, sock: object) -> object:
        """Adopt the connected socket C{sock} on this loop (a Deferred of a result)."""

    def Close(c: IConn) -> BaseException | None:
        """Close C{c} synchronously (loop only); return the close result."""


class IConn(Interface):
    """
    One connection, with gnet's Reader, Writer and Socket methods.

    Loop-only methods (readers, C{Write}, contexts, addresses) must be called
    on the reactor thread (C{Write}, C{Writev} and C{ReadFrom} raise
    L{gnetcompat.errors.ErrNotOnEventLoop} elsewhere); C{AsyncWrite*},
    C{Wake}, C{Close*}, the safe context and the socket methods are safe
    from any thread, and the queued ones keep FIFO order.  Every write takes
    any bytes-like object and copies a mutable one at the call, as Go's
    C{Write([]byte)} does.
    """

    def Read(p: bytearray) -> int:
        """
        Copy up to C{len(p)} buffered bytes into the writable buffer C{p} and
        consume them; L{ErrShortBuffer} when nothing is buffered.
        """

    def Next(n: int = -1) -> bytes:
        """
        Return and consume the next C{n} bytes (C{n <= 0}: all of them);
        L{ErrShortBuffer}, consuming nothing, when fewer are buffered.
        """

    def Peek(n: int = -1) -> bytes:
        """As C{Next} without consuming."""

    def Discard(n: int = -1) -> int:
        """Drop C{n} bytes (C{n <= 0} or more than buffered: all); never fails."""

    def InboundBuffered() -> int:
        """The number of readable bytes."""

    def WriteTo(w: object) -> int:
        """Drain every readable byte into C{w} (a Conn or a file-like object)."""

    def Write(data: bytes) -> int:
        """
        Send C{data}, any bytes-like object (buffered in order, copied if
        mutable); returns its number of bytes.
        """

    def Writev(bufs: list[bytes]) -> int:
        """Gather write of bytes-like objects; returns the total number of bytes."""

    def SendTo(data: bytes, addr: IAddr) -> int:
        """UDP only: one datagram to C{addr}."""

    def ReadFrom(r: object) -> int:
        """Send everything a file-like object yields until EOF."""

    def Flush() -> None:
        """Twisted flushes by itself; kept for gnet programs."""

    def OutboundBuffered() -> int:
        """Bytes written but not yet taken by the kernel."""

    def AsyncWrite(data: bytes, callback: AsyncCallback | None = None) -> None:
        """Queue a write from any thread; C{callback(c, err)} runs after it."""

    def AsyncWritev(bufs: list[bytes], callback: AsyncCallback | None = None) -> None:
        """Queue a gather write from any thread."""

    def Wake(callback: AsyncCallback | None = None) -> None:
        """Queue an C{OnTraffic} call with no new bytes."""

    def Close() -> None:
        """Queue a local close (asynchronous even inside a callback)."""

    def CloseWithCallback(callback: AsyncCallback | None) -> None:
        """As C{Close}, then C{callback(c, result)}."""

    def Context() -> object:
        """The per-connection value (loop only)."""

    def SetContext(ctx: object) -> None:
        """Set the per-connection value (loop only)."""

    def SafeContext() -> object:
        """An independent, thread-safe per-connection value."""

    def SetSafeContext(ctx: object) -> None:
        """Set the thread-safe value."""

    def LocalAddr() -> IAddr | None:
        """The local address; C{None} once released."""

    def RemoteAddr() -> IAddr | None:
        """The peer's address; C{None} once released."""

    def EventLoop() -> IEventLoop:
        """The loop owning this connection."""

    def Handle() -> Any:
        """
        gnetcompat: the connection's engine-wide name (a C{ConnHandle}),
        valid in every worker process; L{ErrUnsupportedOp} for a server-side
        UDP datagram (it is no connection).
        """

    def Fd() -> int:
        """The socket's descriptor."""

    def Dup() -> int:
        """A close-on-exec duplicate of the descriptor."""

    def SetReadBuffer(size: int) -> None:
        """C{SO_RCVBUF}."""

    def SetWriteBuffer(size: int) -> None:
        """C{SO_SNDBUF}."""

    def SetLinger(sec: int) -> None:
        """C{SO_LINGER}: off below 0, reset on close at 0, else a timeout."""

    def SetNoDelay(noDelay: bool) -> None:
        """C{TCP_NODELAY}."""

    def SetKeepAlivePeriod(d: float) -> None:
        """TCP keep-alive with idle C{d} (whole seconds, at least 1)."""

    def SetKeepAlive(enabled: bool, idle: float, intvl: float, cnt: int) -> None:
        """TCP keep-alive with every parameter."""

    closed = Attribute("True once the connection was closed and released.")
