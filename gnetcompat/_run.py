# -*- test-case-name: tests.test_engine,tests.test_run -*-
"""
The entry points: C{Run}/C{Rotate} (blocking, as gnet's), C{Serve}
(non-blocking, Deferreds), the deprecated C{Stop} with its registry of
started engines, L{EngineService} (an C{IService} for applications and
twistd), the process-level C{SIGHUP} wiring of a TLS certificate reload
(L{installReloadOnSIGHUP}, L{ReloadCertificates}), and the adapter that
makes any L{IEventHandler} an C{IProtocolFactory}.  The top of the
library's layers: single-process
engines come from L{gnetcompat._engine}, multicore ones from
L{gnetcompat._workers}.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory, IReactorFromThreads
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger, LogLevel
from twisted.python import threadable
from twisted.python.components import registerAdapter
from twisted.python.failure import Failure

from ._addr import ListenSpec, parseProtoAddr
from ._context import checkContext, contextTimeout
from ._engine import Engine, globalReactor, normalizeTopology, stopFromAnyThread, stopReactor
from ._logging import setupProgramLogging
from ._protocol import GnetFactory
from ._twistedcompat import forgetExitSignal, reactorHasRun
from ._workers import MulticoreEngine, SupervisionPolicy, serveMulticore
from .errors import ErrEngineInShutdown, ErrInvalidNetworkAddress
from .interfaces import IEventHandler
from .options import Option, Options, loadOptions

__all__ = [
    "Run",
    "Rotate",
    "Serve",
    "Stop",
    "EngineService",
    "ReloadCertificates",
    "installReloadOnSIGHUP",
    "startEngine",
]


#: a started engine: single-process, or process workers (C{WithProcessWorkers})
ServedEngine = Engine | MulticoreEngine
_E = TypeVar("_E", Engine, MulticoreEngine)
#: what C{signal.signal}/C{signal.getsignal} give back (typeshed's C{signal._HANDLER})
_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _specs(addrs: Sequence[str]) -> list[ListenSpec]:
    if isinstance(addrs, str):
        addrs = [addrs]
    if not addrs:
        raise ErrInvalidNetworkAddress("gnet: no address given")
    return [parseProtoAddr(a) for a in addrs]


def startEngine(
    handler: Any, addrs: Sequence[str], options: Options, reactor: Any = None
) -> Engine:
    """Parse, bind and boot a single-process engine now (on the reactor thread)."""
    specs = _specs(addrs)
    opts = normalizeTopology(specs, options.normalized())
    eng = Engine(handler, specs, opts, reactor)
    eng.bind()
    eng.boot()
    return eng


#: gnet's process-wide registry for the deprecated L{Stop}: the address
#: string given to Run/Rotate/Serve -> the engine started with it (the most
#: recent one); an entry goes when its engine stops.
_registry: dict[str, ServedEngine] = {}


def _remember(eng: _E, addrs: str | Sequence[str]) -> _E:
    names = [addrs] if isinstance(addrs, str) else list(addrs)
    if eng.stopped:
        return eng
    for name in names:
        _registry[name] = eng

    def forget(_: Any) -> None:
        # whatever the outcome: an engine failure is reported by whoever
        # waits on its own whenStopped(); returning it here left an
        # "Unhandled error in Deferred" (a critical traceback) behind
        for name in names:
            if _registry.get(name) is eng:
                del _registry[name]

    eng.whenStopped().addBoth(forget)
    return eng


def Stop(ctx: Any = None, protoAddr: str | None = None) -> Deferred[None] | None:
    """
    gnet's deprecated C{Stop(ctx, protoAddr)}: stop the engine started
    (with L{Run}, L{Rotate} or L{Serve}) under exactly the address string
    C{protoAddr}, and wait for it as C{Engine.Stop(ctx)} does (a Deferred
    on the reactor thread, blocking elsewhere; C{ctx}'s deadline ends the
    wait with C{TimeoutError}).  Use C{Engine.Stop}: two engines started
    with one string share one entry, so only the latest can be stopped.

    @raise TypeError: C{ctx} is not C{None} or a C{Context}, or
        C{protoAddr} is not a string.
    @raise ErrEngineInShutdown: no running engine was started under
        C{protoAddr} (gnet's odd but documented answer).
    """
    wait = contextTimeout(checkContext(ctx, "Stop"), None)
    if not isinstance(protoAddr, str):
        raise TypeError(
            f"Stop: protoAddr must be the address string given to Run, got {protoAddr!r}"
        )
    eng = _registry.pop(protoAddr, None)
    if eng is None or eng.stopping:
        raise ErrEngineInShutdown()
    return stopFromAnyThread(eng, eng.onReactorThread(), wait)


def Serve(
    handler: Any,
    addrs: str | Sequence[str],
    *opts: Option | Options,
    reactor: Any = None,
    policy: SupervisionPolicy | None = None,
) -> Deferred[ServedEngine]:
    """
    Start an engine without blocking, inside a running (or about to run)
    reactor.  Returns a Deferred firing with the started L{Engine} (already
    stopped if C{OnBoot} returned Shutdown), or failing with the setup error
    (bad address, bad option, bind failure).  C{engine.whenStopped()} fires
    when it has shut down.

    With C{WithProcessWorkers} it starts worker processes, each with its
    own copy of the handler (see L{gnetcompat._workers}), supervised by
    C{policy} (a L{gnetcompat._workers.SupervisionPolicy}; the default when
    C{None}).  C{WithMulticore}/C{WithNumEventLoop} alone give event loops
    in this process, sharing the handler, as gnet's do.
    """
    try:
        options = loadOptions(*opts)
        if options.numWorkers() > 0:
            d = serveMulticore(handler, _specs(addrs), options, reactor, policy)
            served: Deferred[ServedEngine] = d.addCallback(_remember, addrs)
            return served
        return defer.succeed(_remember(startEngine(handler, addrs, options, reactor), addrs))
    except Exception:
        return defer.fail()


def Rotate(handler: Any, addrs: Sequence[str], *opts: Option | Options) -> None:
    """
    gnet's C{Rotate}: serve several addresses with one handler and block
    until the engine has shut down, running the reactor if needed.

    Setup errors raise at once.  Called from a thread other than a running
    reactor's (e.g. a plain script's, beside the reactor a
    L{gnetcompat.Client} runs), it starts the engine on the reactor and
    blocks that thread; from the main thread, Ctrl-C and SIGTERM then stop
    the engine gracefully.  On the reactor thread it cannot block: use
    L{Serve}.

    Like gnet's default logger, it makes log lines visible: what the
    program has not configured of C{twisted.logger} and C{logging} is
    connected to standard error (see L{gnetcompat._logging}).

    @raise RuntimeError: on the reactor thread; or the reactor already ran
        and stopped in this process (Twisted reactors cannot be restarted).
    """
    options = loadOptions(*opts)
    setupProgramLogging(LogLevel.debug if _logLevelOf(options) < 0 else LogLevel.info)
    reactor = options.Reactor or globalReactor()
    if getattr(reactor, "running", False):
        if threadable.isInIOThread():  # type: ignore[no-untyped-call]  # Twisted: untyped
            raise RuntimeError("Run/Rotate block; on the reactor thread use gnetcompat.Serve()")

        # (Serve's reactor= goes through a closure: blockingCallFromThread
        # takes the reactor as its own first argument, named reactor)
        def serve() -> Deferred[ServedEngine]:
            return Serve(handler, addrs, options, reactor=reactor)

        # (Twisted's annotation, a union of "returns R" and "returns Deferred[R]",
        # leaves mypy no solution for a Deferred[R]: it waits for it all the same)
        served: ServedEngine = blockingCallFromThread(reactor, serve)  # type: ignore[arg-type]
        done = threading.Event()
        reactor.callFromThread(lambda: served.whenStopped().addBoth(lambda _: done.set()))
        with _signalsStop(reactor, served):
            done.wait()
        return None
    if reactorHasRun(reactor):
        raise RuntimeError(
            "gnetcompat: Run/Rotate: the reactor already ran and stopped in this process "
            "(an earlier Run, or a Client.Stop(), ended it) and a Twisted reactor cannot "
            "be restarted: call Run once per process, before stopping a Client"
        )
    result: list[ServedEngine | Failure] = []
    later: list[Callable[[ServedEngine | Failure], None]] = []

    def settled(r: ServedEngine | Failure) -> None:
        result.append(r)
        for f in later:
            f(r)

    d = Serve(handler, addrs, options, reactor=reactor)
    d.addBoth(settled)
    if result:
        eng = result[0]
        if isinstance(eng, Failure):
            eng.raiseException()
        if eng.stopped:
            return None
        _runUntilStopped(reactor, eng)
        return None
    # multicore: the workers start once the reactor runs; serve until every
    # worker has exited (SIGTERM/SIGINT stop them gracefully first)
    errors: list[Failure] = []

    def stop(_: object = None) -> None:
        stopReactor(reactor)

    def multicoreSettled(r: ServedEngine | Failure) -> None:
        if isinstance(r, Failure):
            errors.append(r)
            stop()
            return
        eng = r

        def beforeShutdown() -> Deferred[None] | None:
            if not eng.stopping:
                eng.requestShutdown(fromLoop=False)
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


def _logLevelOf(options: Options) -> int:
    """gnet's level for the default logger: C{WithLogLevel}, else C{GNET_LOGGING_LEVEL}."""
    level = options.LogLevel if isinstance(options.LogLevel, int) else 0
    if not level:
        try:
            level = int(os.environ.get("GNET_LOGGING_LEVEL", "0"))
        except ValueError:
            level = 0
    return level


@contextmanager
def _signalsStop(reactor: Any, eng: ServedEngine) -> Iterator[None]:
    """
    While C{Run} blocks the main thread beside a reactor running in another
    thread (a plain script's L{gnetcompat.Client} runs one), Ctrl-C and
    SIGTERM stop the engine gracefully, as they do when C{Run} runs the
    reactor itself, and C{Run} returns.  Handlers the program installed
    itself, and other threads, are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopEngine() -> None:
        if not eng.stopping:
            eng.requestShutdown(fromLoop=False)

    def onSignal(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(stopEngine)

    saved: dict[signal.Signals, _SignalHandler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            saved[sig] = signal.signal(sig, onSignal)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _runUntilStopped(reactor: Any, eng: ServedEngine) -> None:
    def beforeShutdown() -> Deferred[None] | None:
        if not eng.stopping:
            eng.requestShutdown(fromLoop=False)
        if not eng.stopped:
            return eng.whenStopped()
        return None

    reactor.addSystemEventTrigger("before", "shutdown", beforeShutdown)
    eng.whenStopped().addBoth(lambda _: stopReactor(reactor))
    reactor.run()


def Run(handler: Any, protoAddr: str, *opts: Option | Options) -> None:
    """
    gnet's C{Run}: serve C{protoAddr} (C{tcp://:9000}, C{udp4://...},
    C{unix:///path}) with C{handler} and block until the engine has shut
    down.  See L{Rotate} for threads and errors.
    """
    return Rotate(handler, [protoAddr], *opts)


#: the exit status the hook of L{_installExitHook} ends the process with
#: (None: leave it to the program)
_exitStatus: int | None = None
_exitHookInstalled = False


def _installExitHook() -> None:
    """
    Once per process: an C{atexit} hook that ends the process with
    L{_exitStatus} when an engine failure asked for one.  It runs after the
    program's own clean-up (twistd removes its pid file and logs "Server
    Shut Down." once the reactor has stopped), which twistd offers no other
    way to follow with a non-zero status.  Installed when a service starts,
    so clean-up hooks registered later (while it serves) still run first.
    """
    global _exitHookInstalled
    if _exitHookInstalled:
        return
    _exitHookInstalled = True

    def exitWithStatus() -> None:
        if _exitStatus is None:
            return
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        os._exit(_exitStatus)

    atexit.register(exitWithStatus)


class EngineService(Service):
    """
    An C{IService} running an engine: sockets are bound in
    C{privilegedStartService} (so a bind failure stops twistd with an
    error), served from C{startService}, and C{stopService} returns a
    Deferred that fires once the engine shut down gracefully.  Once it
    did, the reactor forgets the signal that stopped it, so twistd stopped
    by C{SIGTERM}/C{SIGINT} exits with status 0 (Twisted would re-raise
    the signal: status 143/130 in a shell; see
    L{gnetcompat._twistedcompat.forgetExitSignal}).

    When the engine fails on its own (multicore: the workers cannot start,
    or keep crashing; see L{gnetcompat._workers}), the service logs one
    critical line, stops the reactor and the process exits with
    L{exitStatusOnFailure} (1) once the program has cleaned up, so a
    supervisor (C{Restart=on-failure}) sees the failure; L{failure} holds
    the reason.

    @ivar failure: why the engine failed (a
        C{twisted.python.failure.Failure}), or C{None}.
    @ivar exitStatusOnFailure: the process's exit status after a failure
        (C{None}: only log and stop the reactor).
    """

    exitStatusOnFailure: int | None = 1
    log = Logger(namespace="gnetcompat")

    def __init__(
        self,
        handler: Any,
        addrs: str | Sequence[str],
        *opts: Option | Options,
        policy: SupervisionPolicy | None = None,
    ) -> None:
        """
        @param policy: a L{gnetcompat._workers.SupervisionPolicy} for
            multicore mode (restarts, heartbeat), or C{None} for the default.
        """
        self.handler = handler
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.opts = opts
        self.policy = policy
        self.engine: ServedEngine | None = None
        self.failure: Failure | None = None
        self._started: Deferred[ServedEngine] | None = None

    def privilegedStartService(self) -> None:
        _installExitHook()
        options = loadOptions(*self.opts)
        if options.numWorkers() == 0:
            specs = _specs(self.addrs)
            opts = normalizeTopology(specs, options.normalized())
            eng = Engine(self.handler, specs, opts, options.Reactor)
            eng.bind()
            self.engine = eng
        else:
            # multicore binds now too (workers spawn once the reactor runs),
            # so a bind failure stops twistd before it daemonizes
            d = Serve(self.handler, self.addrs, *self.opts, policy=self.policy)
            # a setup error (bind, option) fails d at once: raise it here; a
            # later failure (the workers cannot start) must reach startService
            early: list[Failure] = []
            duringCall = True

            def raiseEarly(r: ServedEngine | Failure) -> ServedEngine | Failure | None:
                if duringCall and isinstance(r, Failure):
                    early.append(r)
                    return None
                return r

            d.addBoth(raiseEarly)
            duringCall = False
            if early:
                early[0].raiseException()
            self._started = d
        super().privilegedStartService()  # type: ignore[no-untyped-call]  # Twisted: untyped

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Twisted: untyped
        # (only a single-process engine exists before the start: bound above)
        if isinstance(self.engine, Engine):
            if not self.engine.boot():
                self._stopReactor()
            else:
                self.engine.whenStopped().addCallback(lambda _: self._engineStopped())
            return
        d = self._started
        if d is None:  # privilegedStartService was not called (plain startService)
            _installExitHook()
            d = Serve(self.handler, self.addrs, *self.opts, policy=self.policy)

        def started(eng: ServedEngine) -> None:
            self.engine = eng

            def stopped(r: Failure | None) -> None:
                if isinstance(r, Failure):
                    self._failed(r)
                else:
                    self._engineStopped()

            eng.whenStopped().addBoth(stopped)

        d.addCallbacks(started, self._failed)

    def _failed(self, f: Failure) -> None:
        """The engine failed (to start, or later): say so once, stop, exit non-zero."""
        global _exitStatus
        self.failure = f
        status = self.exitStatusOnFailure
        if status is not None and _exitStatus is None:
            _exitStatus = status
        # one line, no traceback: the reason is the error's message
        self.log.critical(
            "engine failed, stopping and exiting with status {status}: {error}",
            error=str(f.value) or getattr(f.type, "__name__", "error"),
            status=status if status is not None else "(unchanged)",
        )
        self._stopReactor()

    def _engineStopped(self) -> None:
        # the engine stopped by itself (a Shutdown action): stop the program too
        if self.running:
            self._stopReactor()

    def _stopReactor(self) -> None:
        reactor = (self.engine.reactor if self.engine is not None else None) or globalReactor()
        # (stopReactor: a signal may have begun stopping it meanwhile)
        if reactor.running:
            reactor.callLater(0, stopReactor, reactor)
        else:
            reactor.callWhenRunning(stopReactor, reactor)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # Twisted: untyped
        eng = self.engine
        if eng is None or eng.stopped:
            return defer.succeed(None)
        if not eng.stopping:
            eng.requestShutdown(fromLoop=False)

        def drained(_: None) -> None:
            # a clean stop on SIGTERM/SIGINT: the process exits 0 (twistd
            # would re-raise the signal once shut down)
            forgetExitSignal(eng.reactor or globalReactor())

        return eng.whenStopped().addCallback(drained)


# -- any handler as a Twisted protocol factory -------------------------------


def handlerFactory(handler: Any) -> GnetFactory:
    """
    Adapt any L{IEventHandler} to C{IProtocolFactory} with default options,
    so a handler plugs into any Twisted endpoint::

        endpoint.listen(IProtocolFactory(MyHandler()))
    """
    eng = Engine(handler, [])
    return GnetFactory(eng, network=None, ownsEngine=True)


# the one registration (a second one raises): gnetcompat/__init__ imports this module
registerAdapter(handlerFactory, IEventHandler, IProtocolFactory)  # type: ignore[no-untyped-call]  # Twisted: untyped


# -- TLS certificate reload -----------------------------------------------------------


def ReloadCertificates(engine: Engine | MulticoreEngine) -> list[str]:
    """
    Load the engine's TLS certificate and key files again (on the reactor
    thread): C{engine.reloadCertificates()}.  New connections get the new
    certificate, open ones keep theirs; a file that cannot be used leaves
    its listener's current certificate in place, and the messages say why
    (an empty list: reloaded).  Files are read without ever blocking.  A
    process-worker engine checks the files in the parent and sends the
    checked bytes to every worker over its bus: workers never read the
    disk (L{MulticoreEngine.reloadCertificates}).
    """
    return engine.reloadCertificates()


def installReloadOnSIGHUP(
    reload: Callable[[], object], reactor: IReactorFromThreads
) -> Callable[[], None]:
    """
    Run C{reload()} on the reactor at every C{SIGHUP}, after any handler
    installed before (which keeps running).  Returns a function that puts
    the previous handler back.  Main thread only.
    """
    previous = signal.getsignal(signal.SIGHUP)

    def onHup(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(reload)
        if callable(previous):  # (SIG_IGN and SIG_DFL are not: they are Handlers numbers)
            previous(signum, frame)

    signal.signal(signal.SIGHUP, onHup)

    def restore() -> None:
        if signal.getsignal(signal.SIGHUP) is onHup:
            signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)

    return restore
