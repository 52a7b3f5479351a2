# -*- test-case-name: tests.test_engine -*-
"""
The engine: listeners, connection table, ticker, binding and shutdown.
The entry points that create engines (C{Run}, C{Rotate}, C{Serve},
C{EngineService}) are in L{gnetcompat._run}.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import socket
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ._action import Action, CallbackResults
from ._addr import ListenSpec, createListener, normalizeNetwork, ownsPath, somaxconn
from ._conn import Conn, ownBytes
from ._context import checkContext, contextTimeout
from ._dial import enrollOnLoop, registerOnEngine, registerOnLoop
from ._handle import MAX_COUNTERS, ConnHandle, Counter, LocalCounter, checkCounterName
from ._logging import stdlibObserver
from ._protocol import GnetDatagramProtocol, GnetFactory
from ._tls import fileConfigs, reloadConfigs, serverTLSFactory
from ._twistedcompat import AcceptRefusals, adoptUnixPortKeepingFile, throttleAcceptErrors
from .errors import (
    ErrClosed,
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrEngineShutdown,
    ErrInvalidNetworkAddress,
    ErrInvalidOption,
    ErrNilRunnable,
    ErrUnsupportedOp,
)
from .interfaces import IConn, IEngine, IEventHandler, IEventLoop
from .options import LoadBalancing, Options

__all__ = ["Engine"]


def globalReactor() -> Any:
    """The global reactor, imported when first needed (never at import time)."""
    from twisted.internet import reactor

    return reactor


def stopReactor(reactor: Any) -> None:
    """
    Stop C{reactor} unless it is already stopping: a Ctrl-C or SIGTERM
    stops the reactor first, whose shutdown then stops the engine, whose
    end must not stop the reactor a second time (Twisted raises
    C{ReactorNotRunning}, printed as an unhandled error at exit).
    """
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


_LEVELS = {-1: LogLevel.debug, 0: LogLevel.info, 1: LogLevel.warn, 2: LogLevel.error}


@implementer(ILogObserver)
class _GnetLoggerObserver:
    """Feeds twisted.logger events to a gnet-style logger (Debugf/Infof/...)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level", LogLevel.info)
        name = {LogLevel.debug: "Debugf", LogLevel.info: "Infof", LogLevel.warn: "Warnf"}.get(
            level, "Errorf"
        )
        text = formatEvent(event)
        if event.get("log_failure") is not None:
            text += "\n" + event["log_failure"].getTraceback()
        getattr(self.target, name)("%s", text)


def makeLogger(options: Options, namespace: str = "gnetcompat") -> Logger:
    """
    The engine's logger from C{WithLogger} (a C{twisted.logger.Logger}, a
    C{logging.Logger}, or a gnet-style logger with C{Infof}...),
    C{WithLogPath} and C{WithLogLevel}.
    """
    target = options.Logger
    if isinstance(target, Logger):
        return target
    if isinstance(target, logging.Logger):
        return Logger(namespace=namespace, observer=stdlibObserver(target))
    if target is not None:
        if not hasattr(target, "Infof"):
            raise ErrInvalidOption(
                "Logger (WithLogger): expected a twisted.logger.Logger, a logging.Logger or "
                f"an object with Debugf/Infof/Warnf/Errorf, got {target!r}"
            )
        return Logger(namespace=namespace, observer=_GnetLoggerObserver(target))
    if options.LogPath:
        level = _LEVELS.get(max(-1, min(options.LogLevel, 2)), LogLevel.info)
        return Logger(namespace=namespace, observer=_LogFileObserver(options.LogPath, level))
    return Logger(namespace=namespace)


@implementer(ILogObserver)
class _LogFileObserver:
    """
    The text file of C{WithLogPath}, opened here and closed by L{closeLogger}
    when the engine stops; events after that go to Twisted's global log.
    """

    def __init__(self, path: str, level: LogLevel) -> None:
        self.file: Any = open(path, "a")
        self._write = FilteringLogObserver(
            textFileLogObserver(self.file), [LogLevelFilterPredicate(defaultLogLevel=level)]
        )

    def __call__(self, event: dict[str, Any]) -> None:
        if self.file is None:
            globalLogPublisher(event)
        else:
            self._write(event)

    def close(self) -> None:
        f, self.file = self.file, None
        if f is not None:
            f.close()


def closeLogger(logger: Logger) -> None:
    """Close the file a logger of L{makeLogger} writes to (C{WithLogPath}), if any."""
    obs = logger.observer
    if isinstance(obs, _LogFileObserver):
        obs.close()


@implementer(IEventLoop)
class EventLoop:
    """
    One of the engine's event loops, the one owning a connection (gnet's
    C{Conn.EventLoop()}).  An engine has C{WithNumEventLoop}/C{WithMulticore}
    of them; they share this process's reactor thread (see the README's
    Multicore section), each with its own connections, which the engine's
    load balancer assigns.  C{Register}/C{Enroll} dial and adopt onto this
    loop through L{gnetcompat._dial}.

    @ivar index: the loop's number, 0 to C{n - 1}.
    @ivar connections: how many live connections it owns.
    """

    def __init__(self, engine: Engine, index: int = 0) -> None:
        self._engine = engine
        self.index = index
        self.connections = 0

    def __repr__(self) -> str:
        return f"<EventLoop {self.index} of {self._engine!r}>"

    def Execute(self, ctx: Any = None, runnable: Any = None) -> None:
        """
        gnet's C{Execute(ctx, r)}: queue C{r.Run(ctx)} on the loop (a plain
        callable C{f} runs as C{f(ctx)}, as L{RunnableFunc} does).  A result
        of L{ErrEngineShutdown} (returned or raised) shuts the engine down;
        other failures are logged to the engine's logger.

        @raise TypeError: C{ctx} is neither C{None} nor a C{Context}, or
            C{runnable} cannot be called as C{Run(ctx)}.
        @raise ErrNilRunnable: C{runnable} is C{None}.
        @raise ErrEngineInShutdown: the engine has stopped.
        """
        checkContext(ctx, "EventLoop.Execute")
        if runnable is None:
            raise ErrNilRunnable()
        fn = runnableCall(runnable, ctx)
        eng = self._engine
        if eng.stopped:
            raise ErrEngineInShutdown()

        def run() -> None:
            if eng.stopped:
                return
            try:
                res = fn(ctx)
            except ErrEngineShutdown as e:
                res = e
            except Exception:
                eng.log.failure("runnable {r!r} failed", r=runnable)
                return
            if isinstance(res, ErrEngineShutdown):
                eng.requestShutdown(fromLoop=True)

        eng.reactor.callFromThread(run)

    def Schedule(self, ctx: Any = None, runnable: Any = None, delay: float = 0) -> None:
        """
        gnet's C{Schedule(ctx, r, delay)} is not implemented either: always
        L{ErrUnsupportedOp}.
        """
        raise ErrUnsupportedOp()

    def Close(self, c: IConn) -> BaseException | None:
        """
        Close C{c} now (loop only): its C{OnClose(c, None)} runs inside this
        call.  Returns L{ErrEngineShutdown} when that C{OnClose} returned
        Shutdown; the caller propagates it (gnet's rule), nothing else does.
        """
        # a loop's connections are the library's Conn (their driver method)
        return cast(Conn, c).driverCloseLocal(propagate=False)

    def Register(self, ctx: Any = None, addr: Any = None) -> Any:
        """
        gnet's C{Register(ctx, addr)}: dial C{addr} and add the connection
        to this loop (see L{gnetcompat._dial.registerOnLoop}).

        @raise TypeError: C{ctx} is neither C{None} nor a C{Context}.
        """
        return registerOnLoop(self._engine, addr, checkContext(ctx, "EventLoop.Register"), self)

    def Enroll(self, ctx: Any = None, sock: Any = None) -> Any:
        """
        gnet's C{Enroll(ctx, c)}: adopt a connected socket on this loop (see
        L{gnetcompat._dial.enrollOnLoop}).

        @raise TypeError: C{ctx} is neither C{None} nor a C{Context}.
        """
        return enrollOnLoop(self._engine, sock, checkContext(ctx, "EventLoop.Enroll"), self)


class RunnableFunc:
    """
    gnet's C{RunnableFunc}: makes a function C{f(ctx)} a runnable for
    C{EventLoop.Execute}; C{Run(ctx)} calls it and returns its result.
    """

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        if not callable(func):
            raise TypeError(f"RunnableFunc: func must be callable, got {func!r}")
        self.func = func

    def Run(self, ctx: Any) -> Any:
        """Call the function with C{ctx}."""
        return self.func(ctx)

    def __repr__(self) -> str:
        return f"RunnableFunc({self.func!r})"


def runnableCall(runnable: Any, ctx: Any) -> Callable[[Any], Any]:
    """
    What C{Execute} calls with C{ctx}: C{runnable.Run}, or C{runnable}
    itself for a plain callable.  Checked now, so a runnable that cannot
    take the context fails in the caller with a C{TypeError} naming it,
    not later on the loop with an error that is only logged.
    """
    fn = getattr(runnable, "Run", None)
    if fn is None:
        fn = runnable
    if not callable(fn):
        raise TypeError(
            f"EventLoop.Execute: runnable must have Run(ctx) or be callable, got {runnable!r}"
        )
    call: Callable[[Any], Any] = fn
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return call
    try:
        sig.bind(ctx)
    except TypeError:
        raise TypeError(
            f"EventLoop.Execute: runnable {runnable!r} must accept the context, as "
            f"gnet's Run(ctx) does (got signature {sig})"
        ) from None
    return call


class _Listener:
    """
    One bound listener: its spec, its socket until adopted, then its port;
    C{ownsFile}: this engine created the unix socket file, and so removes it
    when it stops (not a socket inherited from a multicore parent or systemd).
    """

    __slots__ = ("spec", "sock", "family", "port", "ownsFile")

    def __init__(
        self, spec: ListenSpec, sock: socket.socket | None, family: int, ownsFile: bool = False
    ) -> None:
        self.spec = spec
        self.sock = sock
        self.family = family
        self.port: Any = None
        self.ownsFile = ownsFile

    def fileno(self) -> int:
        if self.port is not None:
            fd: int = self.port.fileno()
            return fd
        assert self.sock is not None
        return self.sock.fileno()


class Ticker:
    """
    Calls C{OnTick} at once, then after each returned delay, on the given
    clock.  (C{LoopingCall} has a fixed interval; gnet's delay is chosen per
    call, so each tick schedules the next with C{callLater}.)  A tick may
    return a Deferred of its C{(delay, action)} pair.
    """

    def __init__(self, engine: Engine, clock: Any) -> None:
        self.engine = engine
        self.clock = clock
        self._call: Any = None
        self.running = False

    def start(self) -> None:
        self.running = True
        self._tick()

    def stop(self) -> None:
        self.running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        if not self.running:
            return
        try:
            res = self.engine.handler.OnTick()
        except Exception:
            self.engine.log.failure("OnTick raised")
            res = (1.0, Action.NONE)
        if isinstance(res, Deferred):
            res.addCallbacks(self._ticked, self._failed)
        else:
            self._ticked(res)

    def _failed(self, f: Any) -> None:
        self.engine.log.failure("OnTick failed", f)
        self._ticked((1.0, Action.NONE))

    def _ticked(self, res: Any) -> None:
        # a wrong shape (None: a forgotten return) is logged and ticks again
        # in 1 s; delays under 1 ms are raised to it: never a busy loop
        delay, action = self.engine.results.tickResult(res)
        if action == Action.SHUTDOWN:
            self.engine.requestShutdown(fromLoop=False)
        if self.running:
            self._call = self.clock.callLater(delay, self._tick)


@implementer(IEngine)
class Engine:
    """
    One gnet engine in this process: its listeners, connections, ticker and
    lifecycle.  Handlers see it as the C{IEngine} given to C{OnBoot} and
    C{OnShutdown}.  Create it with L{Serve}, L{Run}, L{Rotate} or
    L{EngineService}.
    """

    def __init__(
        self,
        handler: Any,
        specs: Sequence[ListenSpec],
        options: Options | None = None,
        reactor: Any = None,
    ) -> None:
        if not IEventHandler.providedBy(handler):
            missing = [m for m in IEventHandler.names() if not callable(getattr(handler, m, None))]
            if missing:
                raise TypeError(f"handler {handler!r} lacks {', '.join(missing)}")
        self.handler = handler
        self.specs = list(specs)
        self.options = (options or Options()).normalized()
        self.reactor = reactor or self.options.Reactor or globalReactor()
        self.clock = self.options.Clock or self.reactor
        self.log = makeLogger(self.options)
        #: checks what the handler's callbacks return (logs wrong shapes)
        self.results = CallbackResults(self.log, self.clock)
        self._listeners: list[_Listener] = []
        self._conns: set[Conn] = set()
        self._protos: set[Any] = set()
        #: the event loops (all on this reactor thread), and loop 0
        self.loops = [EventLoop(self, i) for i in range(self.options.numLoops())]
        self.loop = self.loops[0]
        self._nextLoop = 0  # RoundRobin
        #: process workers set these: this worker's number, its generation
        #: (replacements get a new one), the number of workers, and the link
        #: to the other workers (L{gnetcompat._bus}); one process: 0, 0, 1, None
        self.workerIndex = 0
        self.workerGeneration = 0
        self.numWorkers = 1
        self.bus: EngineBus | None = None
        self._handleIds = itertools.count(1)
        self._handles: dict[int, Conn] = {}
        self._counters: dict[str, Counter] = {}
        self._ticker: Ticker | None = None
        self._refusals: AcceptRefusals | None = None
        self._thread: threading.Thread | None = None
        self._adapted = False
        self._booted = False
        self._stopping = False
        self._stopped = False
        self._stoppedWaiters: list[Deferred[None]] = []
        self._drainCall: Any = None
        self._drainWaiter: Deferred[None] | None = None
        #: set by multicore workers: a callable giving the engine-wide count
        self.sharedCount: Callable[[], int] | None = None
        #: set by multicore workers: called when this worker wants all to stop
        self.onShutdownRequest: Callable[[], None] | None = None
        self.tickerEnabled = self.options.Ticker
        #: called with this process's connection count after each change
        #: (L{setConnectionObserver}); None: nobody is watching
        self._connObserver: Callable[[int], None] | None = None

    def __repr__(self) -> str:
        addrs = ", ".join(s.text for s in self.specs)
        state = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        return f"<Engine [{addrs}] {state}>"

    # -- IEngine ---------------------------------------------------------

    def Validate(self) -> None:
        """
        @raise ErrEmptyEngine: no listeners (and not an adapted factory).
        @raise ErrEngineInShutdown: the engine has shut down.
        """
        if not self.specs and not self._adapted:
            raise ErrEmptyEngine()
        if self._stopped:
            raise ErrEngineInShutdown()

    def CountConnections(self) -> int:
        """Live connections, engine-wide; -1 when the engine is not valid."""
        try:
            self.Validate()
        except (ErrEmptyEngine, ErrEngineInShutdown):
            return -1
        if self.sharedCount is not None:
            return self.sharedCount()
        return len(self._conns)

    def Dup(self) -> int:
        """
        Duplicate the only listener's descriptor (close-on-exec); the caller closes it.

        @raise ErrUnsupportedOp: more than one listener.
        """
        self.Validate()
        if len(self._listeners) != 1:
            raise ErrUnsupportedOp()
        return os.dup(self._listeners[0].fileno())

    def DupListener(self, network: str, addr: str) -> int:
        """
        Duplicate the descriptor of the listener with this normalised network
        and address text.

        @raise ErrInvalidNetworkAddress: no listener matches.
        """
        self.Validate()
        net = normalizeNetwork(network)
        for lst in self._listeners:
            if lst.spec.normalizedNetwork == net and lst.spec.address == addr:
                return os.dup(lst.fileno())
        raise ErrInvalidNetworkAddress()

    def Stop(self, ctx: Any = None, *, timeout: float | None = None) -> Deferred[None] | None:
        """
        gnet's C{Stop(ctx)}: shut the engine down (as a C{Shutdown} action
        would) and wait until it has.

        On the reactor thread this returns a Deferred that fires once
        shutdown is complete (it never blocks the reactor).  From another
        thread it blocks until then.  The wait ends at C{ctx}'s deadline
        (L{gnetcompat._context.Context.withTimeout}) or after C{timeout} seconds,
        whichever is sooner, with C{TimeoutError} (the Deferred fails with
        it); the shutdown itself goes on.

        @raise TypeError: C{ctx} is neither C{None} nor a C{Context} (a
            number of seconds goes in C{timeout=}).
        @raise ErrEngineInShutdown: already stopping or stopped.
        @raise ErrEmptyEngine: an engine without listeners.
        """
        wait = contextTimeout(checkContext(ctx, "Engine.Stop"), timeout)
        self.Validate()
        if self._stopping:
            raise ErrEngineInShutdown()
        return stopFromAnyThread(self, self.onReactorThread(), wait)

    def Register(self, ctx: Any) -> Any:
        """Add an outbound or adopted connection to this engine (see L{gnetcompat._dial})."""
        return registerOnEngine(self, ctx)

    # -- engine-wide operations (gnetcompat) -----------------------------
    # One API for one process and for process workers: a handle names a
    # connection in every worker; operations on another worker's connection
    # travel over the bus (gnetcompat._bus) and keep their order per sender.

    def AsyncWrite(
        self, handle: ConnHandle, data: Any, callback: Callable[..., Any] | None = None
    ) -> None:
        """
        gnetcompat: C{c.AsyncWrite(data)} for the connection named by
        C{handle} (from C{c.Handle()}), whichever worker process owns it;
        from any thread.  C{callback(handle, err)} runs in this process
        afterwards: C{err} is L{ErrClosed} when the connection is gone.

        @raise TypeError: C{handle} is not a L{ConnHandle}, C{data} not bytes-like.
        @raise ErrEngineInShutdown: the engine has stopped.
        """
        self._submit(OP_WRITE, handle, ownBytes(data, "Engine.AsyncWrite"), callback)

    def AsyncWritev(
        self, handle: ConnHandle, bufs: Iterable[Any], callback: Callable[..., Any] | None = None
    ) -> None:
        """gnetcompat: C{c.AsyncWritev(bufs)} by handle, as L{AsyncWrite}."""
        data = [ownBytes(b, "Engine.AsyncWritev") for b in bufs]
        self._submit(OP_WRITEV, handle, data, callback)

    def Close(self, handle: ConnHandle, callback: Callable[..., Any] | None = None) -> None:
        """
        gnetcompat: C{c.CloseWithCallback(...)} by handle, as L{AsyncWrite}:
        the owner runs C{OnClose(c, None)}; C{callback(handle, err)} gets
        L{ErrEngineShutdown} when that C{OnClose} returned Shutdown.
        """
        self._submit(OP_CLOSE, handle, None, callback)

    def Wake(self, handle: ConnHandle, callback: Callable[..., Any] | None = None) -> None:
        """gnetcompat: C{c.Wake(...)} by handle, as L{AsyncWrite}."""
        self._submit(OP_WAKE, handle, None, callback)

    def Broadcast(self, data: Any, exclude: ConnHandle | None = None) -> None:
        """
        gnetcompat: write C{data} to every connection of the engine
        (accepted, dialled and registered; in every worker process) except
        C{exclude}, as C{AsyncWrite} does: queued, from any thread, in order
        per connection with this thread's other queued operations.

        @raise TypeError: C{data} is not bytes-like or C{exclude} not a handle.
        @raise ErrEngineInShutdown: the engine has stopped.
        """
        data = ownBytes(data, "Engine.Broadcast")
        if exclude is not None and not isinstance(exclude, ConnHandle):
            raise TypeError(f"Engine.Broadcast: exclude must be a ConnHandle, got {exclude!r}")
        if self._stopped:
            raise ErrEngineInShutdown()
        self.reactor.callFromThread(self._broadcast, data, exclude)

    def Conns(self) -> list[ConnHandle]:
        """
        gnetcompat: the handles of the engine's live connections.  With
        process workers this needs L{WithConnRegistry}(True) (every worker
        then keeps a copy of the table); call it on the loop (callbacks,
        C{OnTick}).

        @raise ErrUnsupportedOp: process workers without the registry.
        """
        local: list[ConnHandle] = [c.Handle() for c in list(self._conns) if not c.closed]
        if self.bus is None:
            return local
        remote: list[ConnHandle] = self.bus.remoteHandles()
        return local + remote

    def Counter(self, name: str) -> Counter:
        """
        gnetcompat: the engine-wide counter C{name} (created at 0 on first
        use; at most 64 per engine): C{Add(n)} from any thread,
        C{Value()} summed over every worker process.

        @raise TypeError: C{name} is not a string.
        @raise ValueError: an empty or too long name, or too many counters.
        """
        name = checkCounterName(name)
        c = self._counters.get(name)
        if c is None:
            if len(self._counters) >= MAX_COUNTERS:
                raise ValueError(f"Engine.Counter: at most {MAX_COUNTERS} counters per engine")
            c = self.bus.counter(name) if self.bus is not None else LocalCounter(name)
            self._counters[name] = c
        return c

    def _submit(self, op: int, handle: Any, payload: Any, callback: Any) -> None:
        if not isinstance(handle, ConnHandle):
            raise TypeError(
                f"Engine.{OP_NAMES[op]}: expected a ConnHandle (from c.Handle()), got {handle!r}"
            )
        if callback is not None and not callable(callback):
            raise TypeError(f"Engine.{OP_NAMES[op]}: callback must be callable, got {callback!r}")
        if self._stopped:
            raise ErrEngineInShutdown()
        self.reactor.callFromThread(self._dispatch, op, handle, payload, callback)

    def _dispatch(self, op: int, handle: ConnHandle, payload: Any, callback: Any) -> None:
        if self._stopped:
            return
        if handle.worker != self.workerIndex and self.bus is not None:
            self.bus.submit(op, handle, payload, callback)
            return
        err = self.runHandleOp(op, handle, payload)
        if callback is not None:
            self.callback(callback, handle, err)

    def runHandleOp(self, op: int, handle: ConnHandle, payload: Any) -> BaseException | None:
        """
        Do C{op} on this process's connection named C{handle} (on the
        reactor thread; the bus calls this for other workers); returns the
        callback's error: L{ErrClosed} when the connection is gone.
        """
        conn = None
        if handle.worker == self.workerIndex and handle.generation == self.workerGeneration:
            conn = self._handles.get(handle.id)
        if conn is None or conn.closed or self._stopped:
            return ErrClosed()
        if op == OP_WRITE:
            conn.driverWrite(payload)
        elif op == OP_WRITEV:
            conn.driverWriteSequence(payload)
        elif op == OP_CLOSE:
            return conn.driverCloseLocal(propagate=True)
        elif op == OP_WAKE:
            return conn.driverTraffic()
        return None

    def _broadcast(self, data: bytes, exclude: ConnHandle | None) -> None:
        if self._stopped:
            return
        self.deliverBroadcast(data, exclude)
        if self.bus is not None:
            self.bus.broadcast(data, exclude)

    def deliverBroadcast(self, data: bytes, exclude: ConnHandle | None) -> int:
        """Write C{data} to this process's connections but C{exclude}; returns how many."""
        skip = None
        if exclude is not None and exclude.worker == self.workerIndex:
            skip = self._handles.get(exclude.id)
        n = 0
        for conn in list(self._conns):
            if conn is not skip and not conn.closed:
                conn.driverWrite(data)
                n += 1
        return n

    # -- non-gnet conveniences ------------------------------------------

    def reloadCertificates(self, files: Mapping[str, bytes] | None = None) -> list[str]:
        """
        gnetcompat: load the TLS certificate and key files of this engine's
        listeners (L{gnetcompat.WithTLS}) again: new connections get the
        new certificate, open ones keep theirs.  A file that cannot be used
        leaves its listener's current certificate in place and is logged,
        one line each; the messages are returned (an empty list: reloaded,
        or nothing to reload).  Files are read without ever blocking.

        @param files: the files' bytes by path, as the parent of a
            process-worker engine validated them (a worker gets them over
            the bus, L{gnetcompat._bus}): the new context is built from
            these and the disk is not read.
        """
        configs = fileConfigs(self.options.TLS)
        errors = reloadConfigs(configs, files)
        for e in errors:
            self.log.error("TLS reload failed, keeping the current certificate: {error}", error=e)
        if configs and not errors:
            self.log.info("TLS certificates reloaded")
        return errors

    def whenStopped(self) -> Deferred[None]:
        """A Deferred firing with C{None} once the engine has shut down."""
        d: Deferred[None] = Deferred()
        if self._stopped:
            d.callback(None)
        else:
            self._stoppedWaiters.append(d)
        return d

    @property
    def listeningPorts(self) -> list[Any]:
        """The Twisted ports of the listeners (for C{getHost()} in tests)."""
        return [lst.port for lst in self._listeners if lst.port is not None]

    @property
    def stopping(self) -> bool:
        """True once shutdown has begun."""
        return self._stopping

    @property
    def stopped(self) -> bool:
        """True once shutdown is complete."""
        return self._stopped

    @property
    def booted(self) -> bool:
        """True once C{OnBoot} has run and the engine serves."""
        return self._booted

    @property
    def loopRunning(self) -> bool:
        """Whether the loop takes new connections (dialled, adopted): not shutting down."""
        return not self._stopping

    def connections(self) -> list[Conn]:
        """This process's live connections (a copy)."""
        return list(self._conns)

    def setConnectionObserver(self, observer: Callable[[int], None] | None) -> None:
        """
        Call C{observer(count)} with this process's number of connections
        each time a connection is added or removed (C{None}: stop).  A
        multicore worker publishes its count to the parent with it.
        """
        self._connObserver = observer

    def startTicker(self) -> None:
        """Start calling C{OnTick} (at once, then after each returned delay)."""
        self._ticker = Ticker(self, self.clock)
        self._ticker.start()

    # -- start -----------------------------------------------------------

    def onReactorThread(self) -> bool:
        """Whether the caller runs on the thread that booted the engine (or it has not booted)."""
        return self._thread is None or threading.current_thread() is self._thread

    def bind(
        self, listeners: Iterable[tuple[ListenSpec, socket.socket, int]] | None = None
    ) -> None:
        """
        Create and bind every listening socket (or take C{listeners} made
        elsewhere, e.g. inherited by a worker).  Nothing is served yet.  The
        engine removes the unix socket files it created when it stops; the
        files of C{listeners} are their creator's to remove (the multicore
        parent removes the one its workers share once all have exited).

        @raise OSError: a bind failed; sockets made so far are closed.
        """
        try:
            if listeners is not None:
                for spec, sock, family in listeners:
                    self._listeners.append(_Listener(spec, sock, family))
            else:
                for spec in self.specs:
                    sock, family = createListener(spec, self.options)
                    self._listeners.append(_Listener(spec, sock, family, ownsPath(spec)))
        except BaseException:
            self._closeSockets()
            raise

    def boot(self) -> bool:
        """
        Call C{OnBoot}; unless it returned Shutdown, start serving on the
        bound sockets and start the ticker.  Returns False when OnBoot
        aborted the start (the engine is then stopped, without OnShutdown).
        """
        self._thread = threading.current_thread()
        try:
            action = self.results.action("OnBoot", self.handler.OnBoot(self))
        except BaseException:
            self._closeSockets()
            self._markStopped()
            raise
        if action == Action.SHUTDOWN:
            self._closeSockets()
            self._markStopped()
            return False
        self._booted = True
        for lst in self._listeners:
            spec = lst.spec
            assert lst.sock is not None
            if spec.stream:
                factory: IProtocolFactory = GnetFactory(
                    self, "unix" if spec.network == "unix" else "tcp"
                )
                tls = self.options.serverTLS(spec.text)
                if tls is not None:
                    factory = serverTLSFactory(tls, factory, self.reactor)
                if lst.family == socket.AF_UNIX:
                    lst.port = _adoptUnixPort(self.reactor, lst.sock, factory, self.options.Backlog)
                else:
                    lst.port = self.reactor.adoptStreamPort(lst.sock.fileno(), lst.family, factory)
                # out of descriptors: one warning every 10 s, not 3 lines a connection
                throttleAcceptErrors(lst.port, self._acceptRefusals())
            else:
                proto = GnetDatagramProtocol(self)
                lst.port = self.reactor.adoptDatagramPort(
                    lst.sock.fileno(), lst.family, proto, maxPacketSize=self.options.ReadBufferCap
                )
            lst.sock.close()
            lst.sock = None
        self._announceLoops()
        if self.tickerEnabled:
            self.startTicker()
        return True

    def _announceLoops(self) -> None:
        """
        One line when several event loops share the reactor thread: gnet
        runs them in parallel, here they keep gnet's meaning (one handler)
        but not its parallelism.
        """
        n = len(self.loops)
        if n <= 1:
            return
        self.log.info(
            "{n} event loops (WithMulticore/WithNumEventLoop) share one handler and this "
            "process's reactor thread, as gnet's loops share one handler; {why} For "
            "parallelism use WithProcessWorkers(True): one process per CPU, each with its own "
            "copy of the handler.",
            n=n,
            why=loopThreadsReason(),
        )

    def _acceptRefusals(self) -> AcceptRefusals:
        """The engine's one L{AcceptRefusals} (all its listeners share it)."""
        if self._refusals is None:
            self._refusals = AcceptRefusals(self.log, self.reactor)
        return self._refusals

    def startAdapted(self) -> None:
        """As the engine of C{IProtocolFactory(handler)}: OnBoot when the first port starts."""
        self._adapted = True
        self._thread = threading.current_thread()
        self._stopping = self._stopped = False
        self.results.action("OnBoot", self.handler.OnBoot(self))
        self._booted = True
        self._announceLoops()
        if self.tickerEnabled:
            self.startTicker()

    def stopAdapted(self) -> None:
        """As the engine of C{IProtocolFactory(handler)}: shut down when the last port stops."""
        if not self._stopping:
            self.requestShutdown(fromLoop=False)

    # -- connections -----------------------------------------------------

    # the ConnOwner contract (gnetcompat._conn): what connections call

    def connAdded(self, conn: Any, proto: Any) -> None:
        """
        A connection opened; C{proto} drives its transport.  It joins
        C{proto.loop} (a dialled connection's loop) or the loop the load
        balancer picks.
        """
        loops = self.loops
        if len(loops) > 1:
            loop = getattr(proto, "loop", None)
            if loop is None:
                if self.options.LB == LoadBalancing.SourceAddrHash:
                    addr = conn.RemoteAddr()
                    loop = self.pickLoop(addr.String() if addr is not None else "")
                else:
                    loop = self.pickLoop("")
            conn.driverSetLoop(loop)
            loop.connections += 1
        else:
            loops[0].connections += 1
        self._conns.add(conn)
        self._protos.add(proto)
        if self._connObserver is not None:
            self._connObserver(len(self._conns))
        if self.bus is not None and self.options.ConnRegistry:
            self.bus.announceOpen(conn.Handle())

    def connRemoved(self, conn: Any) -> None:
        """A connection closed (its transport may still be draining)."""
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        conn.EventLoop().connections -= 1
        handle = conn.driverHandle
        if handle is not None:
            self._handles.pop(handle.id, None)
            if self.bus is not None and self.options.ConnRegistry:
                self.bus.announceClose(handle)
        if self._connObserver is not None:
            self._connObserver(len(self._conns))

    def pickLoop(self, key: str) -> EventLoop:
        """
        The loop for a new connection, by C{WithLoadBalancing}: RoundRobin
        (loops in turn), LeastConnections (the fewest live connections,
        the lowest index on a tie) or SourceAddrHash (CRC-32 of the peer's
        address text C{key}, as gnet).
        """
        loops = self.loops
        if len(loops) == 1:
            return loops[0]
        lb = self.options.LB
        if lb == LoadBalancing.LeastConnections:
            return min(loops, key=lambda lp: lp.connections)
        if lb == LoadBalancing.SourceAddrHash:
            return loops[zlib.crc32(key.encode("utf-8", "surrogateescape")) % len(loops)]
        i = self._nextLoop
        self._nextLoop = (i + 1) % len(loops)
        return loops[i]

    def handleOf(self, conn: Any) -> ConnHandle:
        """A new L{ConnHandle} for C{conn} (C{Conn.Handle()}), registered until it closes."""
        addr = conn.RemoteAddr()
        h = ConnHandle(
            self.workerIndex,
            self.workerGeneration,
            next(self._handleIds),
            addr.String() if addr is not None else "",
        )
        if not conn.closed:
            self._handles[h.id] = conn
        return h

    def transportGone(self, proto: Any) -> None:
        """The transport of C{proto} is gone; the last one ends the shutdown's drain."""
        self._protos.discard(proto)
        if self._drainWaiter is not None and not self._protos:
            d, self._drainWaiter = self._drainWaiter, None
            d.callback(None)

    def callback(self, cb: Callable[..., Any], conn: Any, err: BaseException | None) -> None:
        """Run an asynchronous operation's C{cb(conn, err)}, logging what it raises."""
        try:
            cb(conn, err)
        except Exception:
            self.log.failure("callback {cb!r} raised", cb=cb)

    # -- shutdown --------------------------------------------------------

    def requestShutdown(self, fromLoop: bool) -> None:
        """
        Begin shutdown (idempotent).  A loop-initiated shutdown (an action
        from a connection callback) closes connections before C{OnShutdown};
        an external one (C{Stop}, C{OnTick}) calls C{OnShutdown} while they
        are still open, as gnet does.
        """
        if self._stopping or self._stopped:
            return
        if self.onShutdownRequest is not None:
            self.onShutdownRequest()
        self._stopping = True
        if self._ticker is not None:
            self._ticker.stop()
        if fromLoop:
            self._closeAll()
        res = None
        if self._booted:
            try:
                res = self.handler.OnShutdown(self)
            except Exception:
                self.log.failure("OnShutdown raised")
        if isinstance(res, Deferred):
            # gnetcompat extension: OnShutdown may return a Deferred (e.g. until
            # every WebSocket finished its closing handshake); it is waited
            # for, at most ShutdownTimeout seconds, before the rest is closed.
            timer = self.clock.callLater(self.options.ShutdownTimeout, res.cancel)

            def proceed(result: Any) -> None:
                if timer.active():
                    timer.cancel()
                # (Twisted's Failure.check is untyped)
                if isinstance(result, Failure) and not result.check(defer.CancelledError):  # type: ignore[no-untyped-call]
                    self.log.failure("OnShutdown failed", result)
                self._closeAll()
                defer.ensureDeferred(self._finishShutdown())

            res.addBoth(proceed)
            return
        self._closeAll()
        defer.ensureDeferred(self._finishShutdown())

    def _closeAll(self) -> None:
        for conn in list(self._conns):
            conn.driverCloseLocal(propagate=False)

    async def _finishShutdown(self) -> None:
        ports = [lst.port for lst in self._listeners if lst.port is not None]
        for port in ports:
            try:
                await defer.maybeDeferred(port.stopListening)
            except Exception:
                self.log.failure("stopListening failed")
        await self._drain()
        self._closeSockets()
        self._markStopped()

    def _drain(self) -> Deferred[None]:
        """Wait until every transport is gone; abort stragglers after ShutdownTimeout."""
        if not self._protos:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._drainWaiter = d

        def abort() -> None:
            for p in list(self._protos):
                t = p.transport
                if hasattr(t, "abortConnection"):
                    t.abortConnection()
                else:
                    self.transportGone(p)

        call = self.clock.callLater(self.options.ShutdownTimeout, abort)

        def done(r: Any) -> Any:
            if call.active():
                call.cancel()
            return r

        return d.addBoth(done)

    def _closeSockets(self) -> None:
        for lst in self._listeners:
            if lst.sock is not None:
                lst.sock.close()
                lst.sock = None
            if lst.ownsFile and (lst.port is not None or not self._booted):
                try:
                    os.unlink(lst.spec.address)
                except OSError:
                    pass

    def _markStopped(self) -> None:
        self._stopping = True
        self._stopped = True
        closeLogger(self.log)  # before the waiters: they may end the program
        waiters, self._stoppedWaiters = self._stoppedWaiters, []
        for d in waiters:
            d.callback(None)


#: the engine-wide operations on a handle (L{Engine._submit}, the bus)
OP_WRITE, OP_WRITEV, OP_CLOSE, OP_WAKE = 1, 2, 3, 4
OP_NAMES = {OP_WRITE: "AsyncWrite", OP_WRITEV: "AsyncWritev", OP_CLOSE: "Close", OP_WAKE: "Wake"}


def loopThreadsReason() -> str:
    """Why this interpreter runs gnetcompat's event loops on one thread (for the start-up line)."""
    gil = getattr(sys, "_is_gil_enabled", None)
    if gil is not None and not gil():
        return (
            "this free-threaded CPython could run loop threads, but gnetcompat does not yet "
            "(Twisted's reactor, Autobahn and txaio assume one reactor per process)."
        )
    return (
        "this CPython has a GIL, so loop threads would not run handlers in parallel (measured: "
        "threads are slower than one loop)."
    )


class EngineBus(Protocol):
    """
    What an engine of a worker process drives of its link to the other
    workers (L{gnetcompat._bus.WorkerBus}): the engine-wide operations on
    another worker's connections, broadcasts, shared counters and the
    connection registry.
    """

    def submit(self, op: int, handle: ConnHandle, payload: Any, callback: Any) -> None:
        """Run C{op} on another worker's connection; C{callback(handle, err)} once done."""

    def broadcast(self, data: bytes, exclude: ConnHandle | None) -> None:
        """Send C{data} to every other worker's connections."""

    def counter(self, name: str) -> Counter:
        """The engine-wide counter C{name}, summed over every worker."""

    def remoteHandles(self) -> list[ConnHandle]:
        """The other workers' connections (C{WithConnRegistry})."""

    def announceOpen(self, handle: ConnHandle) -> None:
        """Tell the other workers about a new connection of this one."""

    def announceClose(self, handle: ConnHandle) -> None:
        """Tell the other workers that connection C{handle} closed."""


class StoppableEngine(Protocol):
    """
    What L{stopFromAnyThread} needs of an engine, single-process (L{Engine})
    or multicore (L{gnetcompat._workers.MulticoreEngine}).
    """

    #: the reactor the engine runs on (C{callFromThread}; its clock by default)
    reactor: Any

    def requestShutdown(self, fromLoop: bool) -> None:
        """Begin an external shutdown (idempotent)."""

    def whenStopped(self) -> Deferred[None]:
        """A Deferred firing once the engine has shut down."""


def stopFromAnyThread(
    eng: StoppableEngine, onReactorThread: bool, timeout: float | None
) -> Deferred[None] | None:
    """
    gnet's C{Engine.Stop} for an engine (single or multicore): request an
    external shutdown; on the reactor thread return C{whenStopped()}, from
    another thread block until it fired, up to C{timeout} seconds.
    """
    if onReactorThread:
        eng.requestShutdown(fromLoop=False)
        d: Deferred[None] = eng.whenStopped()
        if timeout is not None and not d.called:
            clock = getattr(eng, "clock", None) or eng.reactor

            def timedOut(f: Failure) -> Failure:
                f.trap(defer.TimeoutError)  # type: ignore[no-untyped-call]  # Twisted: untyped
                return Failure(  # type: ignore[no-untyped-call]  # Twisted: untyped
                    TimeoutError(f"engine did not stop within {timeout:g} s")
                )

            d.addTimeout(timeout, clock).addErrback(timedOut)
        return d
    done = threading.Event()

    def stop() -> None:
        eng.requestShutdown(fromLoop=False)
        eng.whenStopped().addBoth(lambda _: done.set())

    eng.reactor.callFromThread(stop)
    if not done.wait(timeout):
        raise TimeoutError(f"engine did not stop within {timeout:g} s")
    return None


# -- binding helpers ----------------------------------------------------


def _adoptUnixPort(reactor: Any, sock: socket.socket, factory: Any, backlog: int) -> Any:
    """
    C{reactor.adoptStreamPort} for a listening unix socket, keeping its
    file's mode and the file itself.  Twisted's unix C{Port} chmods its
    path to its C{mode} (0666 by default) when it starts listening, an
    adopted socket's too: every socket would be world-connectable whatever
    the umask, L{WithUnixSocketMode} or systemd's C{SocketMode=} said.  The port is
    built as C{adoptStreamPort} builds it (L{adoptUnixPortKeepingFile})
    with C{mode} set to the file's current mode, and
    the engine's backlog instead of Twisted's 50.  Abstract-namespace
    sockets (no file) and reactors that are not Twisted's posix ones go
    through C{adoptStreamPort}.

    The port does not unlink the path when it stops listening
    (L{gnetcompat._twistedcompat.UnixPortKeepingFile}): worker processes
    adopt one shared socket, and each one's port unlinking it made every
    stop after the first fail with
    C{FileNotFoundError}.  The file is removed once, by whoever created it
    (L{Engine._closeSockets} for its own sockets, the multicore parent for
    the shared one), and never when systemd passed it.
    """
    name = sock.getsockname()
    path = os.fsdecode(name) if isinstance(name, bytes) else name
    try:
        mode = None if not path or path[0] == "\0" else stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None
    if mode is None or not isinstance(reactor, PosixReactorBase):
        return reactor.adoptStreamPort(sock.fileno(), socket.AF_UNIX, factory)
    port = adoptUnixPortKeepingFile(reactor, sock.fileno(), factory)
    port.mode = mode
    port.backlog = backlog or somaxconn()
    port.startListening()  # type: ignore[no-untyped-call]  # Twisted: untyped
    return port


def normalizeTopology(specs: list[ListenSpec], options: Options) -> Options:
    """gnet's ReusePort rules (spec §10.2): off with unix addresses, on with UDP."""
    o = options
    loops = o.numLoops()
    if loops > 1 and not sys.platform.startswith(("linux", "freebsd", "dragonfly")):
        o.ReusePort = False
    if any(s.network == "unix" or s.fd is not None for s in specs):
        o.ReusePort = False
    if any(not s.stream for s in specs):
        o.ReusePort = True
    if o.TLS:
        o.checkTLSAddresses([s.text for s in specs if s.stream])
    return o
