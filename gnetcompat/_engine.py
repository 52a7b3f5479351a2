# -*- test-case-name: tests.test_engine -*-
"""
The engine: listeners, connection table, ticker, shutdown, and the entry
points C{Run}/C{Rotate} (blocking, as gnet's), C{Serve} (non-blocking,
Deferreds) and L{EngineService} (an C{IService} for applications and twistd).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any, Callable, Iterable, Sequence

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    formatEvent,
    textFileLogObserver,
)
from zope.interface import implementer

from ._action import Action, splitPair, toAction
from ._addr import ListenSpec, createListener, normalizeNetwork, ownsPath, parseProtoAddr
from ._conn import EventLoop
from .errors import (
    ErrEmptyEngine,
    ErrEngineInShutdown,
    ErrInvalidNetworkAddress,
    ErrInvalidOption,
    ErrUnsupportedOp,
)
from .interfaces import IEngine, IEventHandler
from .options import Option, Options, loadOptions

__all__ = ["Engine", "Run", "Rotate", "Serve", "EngineService"]


def _globalReactor() -> Any:
    from twisted.internet import reactor

    return reactor


_LEVELS = {-1: LogLevel.debug, 0: LogLevel.info, 1: LogLevel.warn, 2: LogLevel.error}


@implementer(ILogObserver)
class _GnetLoggerObserver:
    """Feeds twisted.logger events to a gnet-style logger (Debugf/Infof/...)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __call__(self, event: dict) -> None:
        level = event.get("log_level", LogLevel.info)
        name = {LogLevel.debug: "Debugf", LogLevel.info: "Infof", LogLevel.warn: "Warnf"}.get(
            level, "Errorf"
        )
        text = formatEvent(event)
        if event.get("log_failure") is not None:
            text += "\n" + event["log_failure"].getTraceback()
        getattr(self.target, name)("%s", text)


def makeLogger(options: Options, namespace: str = "gnetcompat") -> Logger:
    """The engine's logger from C{WithLogger}/C{WithLogPath}/C{WithLogLevel}."""
    target = options.Logger
    if isinstance(target, Logger):
        return target
    if target is not None:
        if not hasattr(target, "Infof"):
            raise ErrInvalidOption(
                "Logger (WithLogger): expected a twisted.logger.Logger or an object with "
                f"Debugf/Infof/Warnf/Errorf, got {target!r}"
            )
        return Logger(namespace=namespace, observer=_GnetLoggerObserver(target))
    if options.LogPath:
        f = open(options.LogPath, "a")
        level = _LEVELS.get(max(-1, min(options.LogLevel, 2)), LogLevel.info)
        obs = FilteringLogObserver(
            textFileLogObserver(f), [LogLevelFilterPredicate(defaultLogLevel=level)]
        )
        return Logger(namespace=namespace, observer=obs)
    return Logger(namespace=namespace)


class _Listener:
    """One bound listener: its spec, its socket until adopted, then its port."""

    __slots__ = ("spec", "sock", "family", "port")

    def __init__(self, spec: ListenSpec, sock: socket.socket | None, family: int) -> None:
        self.spec = spec
        self.sock = sock
        self.family = family
        self.port: Any = None

    def fileno(self) -> int:
        if self.port is not None:
            return self.port.fileno()
        assert self.sock is not None
        return self.sock.fileno()


class _Ticker:
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
        try:
            delay, action = splitPair(res, "OnTick")
        except TypeError:
            self.engine.log.failure("OnTick returned a bad value")
            delay, action = 1.0, Action.NONE
        if hasattr(delay, "total_seconds"):
            delay = delay.total_seconds()  # type: ignore[union-attr]
        if action == Action.SHUTDOWN:
            self.engine._requestShutdown(fromLoop=False)
        if self.running:
            self._call = self.clock.callLater(max(float(delay or 0), 0.0), self._tick)


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
        self.reactor = reactor or self.options.Reactor or _globalReactor()
        self.clock = self.options.Clock or self.reactor
        self.log = makeLogger(self.options)
        self._listeners: list[_Listener] = []
        self._conns: set = set()
        self._protos: set = set()
        self._loop = EventLoop(self)
        self._ticker: _Ticker | None = None
        self._thread: threading.Thread | None = None
        self._adapted = False
        self._booted = False
        self._stopping = False
        self._stopped = False
        self._stoppedWaiters: list[Deferred] = []
        self._drainCall: Any = None
        self._drainWaiter: Deferred | None = None
        #: set by multicore workers: a callable giving the engine-wide count
        self.sharedCount: Callable[[], int] | None = None
        #: set by multicore workers: called when this worker wants all to stop
        self.onShutdownRequest: Callable[[], None] | None = None
        self.tickerEnabled = self.options.Ticker

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

    def Stop(self, timeout: float | None = None) -> Deferred | None:
        """
        Shut the engine down (as a C{Shutdown} action would).

        On the reactor thread this returns a Deferred that fires once
        shutdown is complete (it never blocks the reactor).  From another
        thread it blocks until then, up to C{timeout} seconds
        (C{TimeoutError} after that).

        @raise ErrEngineInShutdown: already stopping or stopped.
        @raise ErrEmptyEngine: an engine without listeners.
        """
        self.Validate()
        if self._stopping:
            raise ErrEngineInShutdown()
        return stopFromAnyThread(self, self._onReactorThread(), timeout)

    def Register(self, ctx: Any) -> Any:
        """Add an outbound or adopted connection to this engine (see L{gnetcompat.client})."""
        from .client import registerOnEngine

        return registerOnEngine(self, ctx)

    # -- non-gnet conveniences ------------------------------------------

    def whenStopped(self) -> Deferred:
        """A Deferred firing with C{None} once the engine has shut down."""
        d: Deferred = Deferred()
        if self._stopped:
            d.callback(None)
        else:
            self._stoppedWaiters.append(d)
        return d

    @property
    def listeningPorts(self) -> list:
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

    def connections(self) -> list:
        """This process's live connections (a copy)."""
        return list(self._conns)

    # -- start -----------------------------------------------------------

    def _onReactorThread(self) -> bool:
        return self._thread is None or threading.current_thread() is self._thread

    def bind(self, listeners: Iterable[tuple[ListenSpec, socket.socket, int]] | None = None) -> None:
        """
        Create and bind every listening socket (or take C{listeners} made
        elsewhere, e.g. inherited by a worker).  Nothing is served yet.

        @raise OSError: a bind failed; sockets made so far are closed.
        """
        try:
            if listeners is not None:
                for spec, sock, family in listeners:
                    self._listeners.append(_Listener(spec, sock, family))
            else:
                for spec in self.specs:
                    sock, family = createListener(spec, self.options)
                    self._listeners.append(_Listener(spec, sock, family))
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
            action = toAction(self.handler.OnBoot(self))
        except BaseException:
            self._closeSockets()
            self._markStopped()
            raise
        if action == Action.SHUTDOWN:
            self._closeSockets()
            self._markStopped()
            return False
        self._booted = True
        from ._protocol import GnetDatagramProtocol, GnetFactory

        for lst in self._listeners:
            spec = lst.spec
            assert lst.sock is not None
            if spec.stream:
                factory = GnetFactory(self, "unix" if spec.network == "unix" else "tcp")
                if self.options.TLS:
                    from ._tls import wrapListener

                    factory = wrapListener(self.options, spec, factory, self.reactor)
                lst.port = self.reactor.adoptStreamPort(lst.sock.fileno(), lst.family, factory)
                if spec.fd is not None and spec.network == "unix":
                    # Twisted's adopted unix port unlinks its path when it stops
                    # listening; an inherited socket's file belongs to whoever
                    # passed it (systemd), which may pass it again
                    lst.port._bindPath = b"\0"
            else:
                proto = GnetDatagramProtocol(self)
                lst.port = self.reactor.adoptDatagramPort(
                    lst.sock.fileno(), lst.family, proto, maxPacketSize=self.options.ReadBufferCap
                )
            lst.sock.close()
            lst.sock = None
        if self.tickerEnabled:
            self._ticker = _Ticker(self, self.clock)
            self._ticker.start()
        return True

    def _startAdapted(self) -> None:
        """As the engine of C{IProtocolFactory(handler)}: OnBoot when the first port starts."""
        self._adapted = True
        self._thread = threading.current_thread()
        self._stopping = self._stopped = False
        toAction(self.handler.OnBoot(self))
        self._booted = True
        if self.tickerEnabled:
            self._ticker = _Ticker(self, self.clock)
            self._ticker.start()

    def _stopAdapted(self) -> None:
        if not self._stopping:
            self._requestShutdown(fromLoop=False)

    # -- connections -----------------------------------------------------

    def _addConn(self, conn: Any, proto: Any) -> None:
        self._conns.add(conn)
        self._protos.add(proto)

    def _removeConn(self, conn: Any) -> None:
        self._conns.discard(conn)

    def _transportGone(self, proto: Any) -> None:
        self._protos.discard(proto)
        if self._drainWaiter is not None and not self._protos:
            d, self._drainWaiter = self._drainWaiter, None
            d.callback(None)

    def _callback(self, cb: Callable[..., Any], conn: Any, err: BaseException | None) -> None:
        try:
            cb(conn, err)
        except Exception:
            self.log.failure("callback {cb!r} raised", cb=cb)

    # -- shutdown --------------------------------------------------------

    def _requestShutdown(self, fromLoop: bool) -> None:
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
                if isinstance(result, Failure) and not result.check(defer.CancelledError):
                    self.log.failure("OnShutdown failed", result)
                self._closeAll()
                defer.ensureDeferred(self._finishShutdown())

            res.addBoth(proceed)
            return
        self._closeAll()
        defer.ensureDeferred(self._finishShutdown())

    def _closeAll(self) -> None:
        for conn in list(self._conns):
            conn._closeLocal(propagate=False)

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

    def _drain(self) -> Deferred:
        """Wait until every transport is gone; abort stragglers after ShutdownTimeout."""
        if not self._protos:
            return defer.succeed(None)
        d: Deferred = Deferred()
        self._drainWaiter = d

        def abort() -> None:
            for p in list(self._protos):
                t = p.transport
                if hasattr(t, "abortConnection"):
                    t.abortConnection()
                else:
                    self._transportGone(p)

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
            if ownsPath(lst.spec) and (lst.port is not None or not self._booted):
                try:
                    os.unlink(lst.spec.address)
                except OSError:
                    pass

    def _markStopped(self) -> None:
        self._stopping = True
        self._stopped = True
        waiters, self._stoppedWaiters = self._stoppedWaiters, []
        for d in waiters:
            d.callback(None)


def stopFromAnyThread(eng: Any, onReactorThread: bool, timeout: float | None) -> Deferred | None:
    """
    gnet's C{Engine.Stop} for an engine (single or multicore): request an
    external shutdown; on the reactor thread return C{whenStopped()}, from
    another thread block until it fired, up to C{timeout} seconds.
    """
    if onReactorThread:
        eng._requestShutdown(fromLoop=False)
        return eng.whenStopped()
    done = threading.Event()

    def stop() -> None:
        eng._requestShutdown(fromLoop=False)
        eng.whenStopped().addBoth(lambda _: done.set())

    eng.reactor.callFromThread(stop)
    if not done.wait(timeout):
        raise TimeoutError(f"engine did not stop within {timeout} s")
    return None


# -- entry points ---------------------------------------------------------


def _specs(addrs: Sequence[str]) -> list[ListenSpec]:
    if isinstance(addrs, str):
        addrs = [addrs]
    if not addrs:
        raise ErrInvalidNetworkAddress("gnet: no address given")
    return [parseProtoAddr(a) for a in addrs]


def _normalizeTopology(specs: list[ListenSpec], options: Options) -> Options:
    """gnet's ReusePort rules (spec §10.2): off with unix addresses, on with UDP."""
    import sys

    o = options
    loops = o.numLoops()
    if loops > 1 and not sys.platform.startswith(("linux", "freebsd", "dragonfly")):
        o.ReusePort = False
    if any(s.network == "unix" or s.fd is not None for s in specs):
        o.ReusePort = False
    if any(not s.stream for s in specs):
        o.ReusePort = True
    if o.TLS:
        from ._tls import checkAddresses

        checkAddresses(o, specs)
    return o


def startEngine(handler: Any, addrs: Sequence[str], options: Options, reactor: Any = None) -> Engine:
    """Parse, bind and boot a single-process engine now (on the reactor thread)."""
    specs = _specs(addrs)
    opts = _normalizeTopology(specs, options.normalized())
    eng = Engine(handler, specs, opts, reactor)
    eng.bind()
    eng.boot()
    return eng


def Serve(handler: Any, addrs: str | Sequence[str], *opts: Option | Options, reactor: Any = None) -> Deferred:
    """
    Start an engine without blocking, inside a running (or about to run)
    reactor.  Returns a Deferred firing with the started L{Engine} (already
    stopped if C{OnBoot} returned Shutdown), or failing with the setup error
    (bad address, bad option, bind failure).  C{engine.whenStopped()} fires
    when it has shut down.

    With C{WithMulticore(True)} or C{WithNumEventLoop(n > 1)} it starts
    worker processes (see L{gnetcompat._workers}).
    """
    try:
        options = loadOptions(*opts)
        if options.numLoops() > 1:
            from ._workers import serveMulticore

            return serveMulticore(handler, _specs(addrs), options, reactor)
        return defer.succeed(startEngine(handler, addrs, options, reactor))
    except Exception:
        return defer.fail()


def Rotate(handler: Any, addrs: Sequence[str], *opts: Option | Options) -> None:
    """
    gnet's C{Rotate}: serve several addresses with one handler and block
    until the engine has shut down, running the reactor if needed.

    Setup errors raise at once.  Called from a thread other than a running
    reactor's, it starts the engine on the reactor and blocks that thread.
    On the reactor thread it cannot block: use L{Serve}.
    """
    options = loadOptions(*opts)
    reactor = options.Reactor or _globalReactor()
    if getattr(reactor, "running", False):
        from twisted.internet.threads import blockingCallFromThread
        from twisted.python import threadable

        if threadable.isInIOThread():
            raise RuntimeError("Run/Rotate block; on the reactor thread use gnetcompat.Serve()")
        eng = blockingCallFromThread(reactor, Serve, handler, addrs, options, reactor=reactor)
        done = threading.Event()
        reactor.callFromThread(lambda: eng.whenStopped().addBoth(lambda _: done.set()))
        done.wait()
        return None
    result: list = []
    later: list = []

    def settled(r: Any) -> None:
        result.append(r)
        for f in later:
            f(r)

    d = Serve(handler, addrs, options, reactor=reactor)
    d.addBoth(settled)
    if result and isinstance(result[0], Failure):
        result[0].raiseException()
    if result:
        eng = result[0]
        if eng.stopped:
            return None
        _runUntilStopped(reactor, eng)
        return None
    # multicore: the workers start once the reactor runs; serve until every
    # worker has exited (SIGTERM/SIGINT stop them gracefully first)
    errors: list = []

    def stop(_: Any = None) -> None:
        from twisted.internet.error import ReactorNotRunning

        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    def multicoreSettled(r: Any) -> None:
        if isinstance(r, Failure):
            errors.append(r)
            stop()
            return
        eng = r

        def beforeShutdown() -> Deferred | None:
            if not eng.stopping:
                eng._requestShutdown(fromLoop=False)
            if not eng.stopped:
                return eng.whenStopped().addErrback(lambda f: None)
            return None

        reactor.addSystemEventTrigger("before", "shutdown", beforeShutdown)
        eng.whenStopped().addErrback(errors.append).addBoth(stop)

    later.append(multicoreSettled)
    reactor.run()
    if errors:
        errors[0].raiseException()
    return None


def _runUntilStopped(reactor: Any, eng: Any) -> None:
    def beforeShutdown() -> Deferred | None:
        if not eng.stopping:
            eng._requestShutdown(fromLoop=False)
        if not eng.stopped:
            return eng.whenStopped()
        return None

    reactor.addSystemEventTrigger("before", "shutdown", beforeShutdown)
    eng.whenStopped().addBoth(lambda _: reactor.stop() if reactor.running else None)
    reactor.run()


def Run(handler: Any, protoAddr: str, *opts: Option | Options) -> None:
    """
    gnet's C{Run}: serve C{protoAddr} (C{tcp://:9000}, C{udp4://...},
    C{unix:///path}) with C{handler} and block until the engine has shut
    down.  See L{Rotate} for threads and errors.
    """
    return Rotate(handler, [protoAddr], *opts)


class EngineService(Service):
    """
    An C{IService} running an engine: sockets are bound in
    C{privilegedStartService} (so a bind failure stops twistd with an
    error), served from C{startService}, and C{stopService} returns a
    Deferred that fires once the engine shut down gracefully.
    """

    def __init__(self, handler: Any, addrs: str | Sequence[str], *opts: Option | Options) -> None:
        self.handler = handler
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.opts = opts
        self.engine: Any = None
        self._started: Deferred | None = None

    def privilegedStartService(self) -> None:
        from ._limits import raiseOpenFileLimit

        raiseOpenFileLimit()
        options = loadOptions(*self.opts)
        if options.numLoops() <= 1:
            specs = _specs(self.addrs)
            opts = _normalizeTopology(specs, options.normalized())
            eng = Engine(self.handler, specs, opts, options.Reactor)
            eng.bind()
            self.engine = eng
        else:
            # multicore binds now too (workers spawn once the reactor runs),
            # so a bind failure stops twistd before it daemonizes
            d = Serve(self.handler, self.addrs, *self.opts)
            failure: list = []
            d.addErrback(failure.append)
            if failure:
                failure[0].raiseException()
            self._started = d
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        if self.engine is not None:
            if not self.engine.boot():
                self._stopReactor()
            else:
                self.engine.whenStopped().addCallback(lambda _: self._engineStopped())
            return
        d = self._started
        if d is None:  # privilegedStartService was not called (plain startService)
            d = Serve(self.handler, self.addrs, *self.opts)

        def started(eng: Any) -> None:
            self.engine = eng

            def stopped(r: Any) -> None:
                if isinstance(r, Failure):
                    Logger().failure("multicore engine failed", r)
                self._engineStopped()

            eng.whenStopped().addBoth(stopped)

        def failed(f: Any) -> None:
            Logger().failure("engine failed to start", f)
            self._stopReactor()

        d.addCallbacks(started, failed)

    def _engineStopped(self) -> None:
        # the engine stopped by itself (a Shutdown action): stop the program too
        if self.running:
            self._stopReactor()

    def _stopReactor(self) -> None:
        reactor = (self.engine.reactor if self.engine is not None else None) or _globalReactor()
        if reactor.running:
            reactor.callLater(0, reactor.stop)
        else:
            reactor.callWhenRunning(reactor.stop)

    def stopService(self) -> Deferred:
        super().stopService()
        eng = self.engine
        if eng is None or eng.stopped:
            return defer.succeed(None)
        if not eng.stopping:
            eng._requestShutdown(fromLoop=False)
        return eng.whenStopped()
