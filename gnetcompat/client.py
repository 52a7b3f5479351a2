# -*- test-case-name: tests.test_client,tests.test_clientscript -*-
"""
gnet's client side: L{NewClient}/L{Client} (C{Dial}, C{Enroll}) and the
context helpers (L{Context}, L{NewContext}...; defined in
L{gnetcompat._context}, public here).  Dialling and adopting, shared with
the registration paths of a running engine (C{EventLoop.Register/Enroll},
C{Engine.Register}), live in L{gnetcompat._dial}.

Every outgoing or adopted connection is driven by the same L{IEventHandler}
callbacks as an accepted one: C{OnOpen} (with C{Context()} and
C{SafeContext()} already set to the value given at dial/registration time),
C{OnTraffic}, C{OnClose}.  TCP, unix and I{connected} UDP sockets are
supported; a client UDP connection does get C{OnOpen}/C{OnClose}, and the
C{out} of its C{OnOpen} is sent as one datagram.

Two ways to use it:

  - B{In a plain script}, as in gnet: when no reactor is running,
    C{Client.Start()} runs the global reactor in a daemon thread it owns
    (no signal handlers: it is not the main thread), waits until it runs
    and calls C{OnBoot}; C{Dial}/C{DialContext}/C{Enroll*} from the
    script's thread block and return the L{Conn} once its C{OnOpen} ran;
    C{Stop()} runs C{OnShutdown}, closes the connections, stops that
    reactor and joins its thread, so the script ends cleanly::

        client = gnet.NewClient(MyHandler())
        client.Start()
        c = client.Dial("tcp", "127.0.0.1:9000")
        c.AsyncWrite(b"hello", None)   # from the script's thread
        ...                            # replies arrive in MyHandler.OnTraffic
        client.Stop()

    The callbacks run on the reactor's thread; from the script's thread use
    the thread-safe methods (C{AsyncWrite}, C{Wake}, C{Close}).  A later
    C{gnet.Run} in the same script serves on that reactor (C{Run} blocks
    the script's thread, and Ctrl-C or SIGTERM stop its engine); once
    C{Stop()} stopped the reactor, nothing can run it again in this process
    (Twisted reactors do not restart): C{Run} and C{Start} then fail saying so.

  - B{Inside a Twisted application} the client never runs a reactor
    itself: when the reactor is running, when one was given
    (C{NewClient(h, reactor=reactor)}), and under Twisted's runners
    (C{twistd}, C{twist}, C{trial}: they load C{twisted.application.app}
    and run the reactor once services, or a test's first steps, are set
    up).  A program that calls C{reactor.run()} itself passes C{reactor=}
    or calls C{Start()} once the reactor runs (C{reactor.callWhenRunning});
    otherwise its C{reactor.run()} raises C{ReactorAlreadyRunning}.  On the
    reactor thread (and before the reactor runs) C{Dial*}/C{Enroll*}/C{Stop}
    cannot block and return Deferreds; from other threads they block
    (through C{blockingCallFromThread}).

A client and any number of server engines share one reactor.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger
from twisted.python import threadable

from ._context import (
    Context,
    FromContext,
    FromNetAddrContext,
    FromNetConnContext,
    NewContext,
    NewNetAddrContext,
    NewNetConnContext,
    RegisteredResult,
)
from ._dial import adopt, dial, takeSocket
from ._engine import Engine, stopReactor
from ._twistedcompat import reactorHasRun
from .errors import (
    ErrEngineInShutdown,
    GnetError,
)
from .options import LoadBalancing, Option, Options, loadOptions

__all__ = [
    "Client",
    "Context",
    "ErrClientNotStarted",
    "FromContext",
    "FromNetAddrContext",
    "FromNetConnContext",
    "NewClient",
    "NewContext",
    "NewNetAddrContext",
    "NewNetConnContext",
    "RegisteredResult",
]


class ErrClientNotStarted(GnetError, RuntimeError):
    """
    C{Dial}/C{Enroll} was called before C{Client.Start} (gnet panics there
    with an index error; gnetcompat raises this instead).
    """

    message = "gnetcompat: the client is not started; call Client.Start() before Dial/Enroll"


# -- helpers ----------------------------------------------------------------


#: loaded only by Twisted's own runners (twistd, twist, trial), which run the
#: reactor themselves once the application (or the test) is set up
_RUNNER_MODULE = "twisted.application.app"


def _runnerRunsReactor() -> bool:
    """
    Whether a Twisted runner (C{twistd}, C{twist}, C{trial}) drives this
    process: it runs the reactor after its services start (or between a
    test's synchronous start and its first wait), so a client must not.
    """
    return _RUNNER_MODULE in sys.modules


def _onReactorThread(reactor: Any) -> bool:
    """True on the reactor thread, and whenever the reactor is not running."""
    if not getattr(reactor, "running", False):
        return True
    return bool(threadable.isInIOThread())  # type: ignore[no-untyped-call]  # Twisted: untyped


class _ReactorThread:
    """
    The global reactor, run in a daemon thread for a L{Client} of a plain
    script (gnet's client runs its own event loops): started by
    C{Client.Start}, stopped and joined by C{Client.Stop}.
    """

    #: seconds L{start} waits for the reactor to run, L{stop} for the thread to end
    timeout = 30.0

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """
        Run the reactor in a new daemon thread and wait until it runs.

        @raise RuntimeError: it ran and stopped before (Twisted reactors do
            not restart), or it did not start.
        """
        reactor = self.reactor
        if reactorHasRun(reactor):
            raise RuntimeError(
                "gnetcompat: Client.Start(): the reactor already ran and stopped in this "
                "process (a Client.Stop() or gnet.Run ended it) and a Twisted reactor "
                "cannot be restarted: start and stop one client per process, or keep "
                "it running"
            )
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                reactor.run(installSignalHandlers=False)  # signals are the main thread's
            except BaseException as e:  # e.g. another thread started it meanwhile
                failed.append(e)
            finally:
                ready.set()

        reactor.callWhenRunning(ready.set)
        self.thread = threading.Thread(target=run, name="gnetcompat-client-reactor", daemon=True)
        self.thread.start()
        if not ready.wait(self.timeout) or failed:
            why = repr(failed[0]) if failed else f"not running after {self.timeout:g} s"
            raise RuntimeError(f"gnetcompat: Client.Start(): the reactor did not start: {why}")

    def stop(self) -> bool:
        """Stop the reactor (unless stopping already) and join its thread; False if it hangs."""
        self.reactor.callFromThread(stopReactor, self.reactor)
        thread = self.thread
        if thread is None or thread is threading.current_thread():
            return True  # (the reactor's own thread cannot join itself)
        thread.join(self.timeout)
        return not thread.is_alive()


# -- the client ----------------------------------------------------------------


class _ClientEngine(Engine):
    """
    The engine of a L{Client}: no listeners, so C{Validate} raises
    L{ErrEmptyEngine}, C{CountConnections} is -1 and C{Dup}/C{DupListener}/
    C{Register}/C{Stop} raise L{ErrEmptyEngine}.  A Shutdown action (or an
    OnTick Shutdown) stops only the client's loop, closing its connections;
    C{Client.Stop} ends the client and calls C{OnShutdown}, as in gnet.
    """

    def __init__(self, handler: Any, options: Options, reactor: Any) -> None:
        super().__init__(handler, [], options, reactor)
        self._loopStopped = False
        # gnet's client always balances its loops by LeastConnections
        self.options.LB = LoadBalancing.LeastConnections

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        return f"<client Engine {state}>"

    @property
    def loopRunning(self) -> bool:
        """The loop takes new connections: neither stopped by an action nor shut down."""
        return not (self._stopping or self._loopStopped)

    def boot(self) -> bool:
        """C{Client.Start}: C{OnBoot} (its result ignored, as in gnet); no listener to serve."""
        self.handler.OnBoot(self)
        self._booted = True
        return True

    def startTicker(self) -> None:
        """Start the ticker, unless the loop has stopped meanwhile."""
        if self.loopRunning:
            super().startTicker()

    def requestShutdown(self, fromLoop: bool) -> None:
        """A Shutdown action or an OnTick Shutdown: stop only the loop, closing its connections."""
        if self._stopping or self._loopStopped:
            return
        self._loopStopped = True
        if self._ticker is not None:
            self._ticker.stop()
        self._closeAll()

    def stopClient(self) -> Deferred[None]:
        """C{Client.Stop}: C{OnShutdown}, close everything; fires once every transport is gone."""
        self._loopStopped = False
        Engine.requestShutdown(self, fromLoop=False)
        self._loopStopped = True
        return self.whenStopped()


class Client:
    """
    gnet's C{Client}: drives outgoing (and adopted) connections with an
    L{IEventHandler}.  Create it with L{NewClient}, then C{Start()},
    C{Dial()}/C{Enroll()} as often as needed, and C{Stop()}.

    It runs on the reactor and may share it with any number of server
    engines; C{WithMulticore}/C{WithNumEventLoop} give it several event
    loops on that reactor thread (connections go to the loop with the
    fewest, as gnet's client does).  C{engine} is the "empty" engine its
    callbacks receive.  In a plain script (no reactor running, none given)
    it runs the global reactor in a thread of its own: see
    L{gnetcompat.client}.
    """

    log = Logger()

    def __init__(self, handler: Any, options: Options | None = None, reactor: Any = None) -> None:
        self.engine = _ClientEngine(handler, options or Options(), reactor)
        self.handler = handler
        self.reactor = self.engine.reactor
        self.options = self.engine.options
        self._started = False
        self._stopCalled = False
        self._lock = threading.Lock()
        #: a reactor given (C{reactor=}, options) is the application's to run
        self._mayRunReactor = reactor is None and self.options.Reactor is None
        #: the reactor thread this client started (a plain script), or None
        self._reactorThread: _ReactorThread | None = None

    def __repr__(self) -> str:
        return f"<Client {self.engine!r}>"

    # -- lifecycle -------------------------------------------------------

    def Start(self) -> None:
        """
        Call C{OnBoot} (its result is ignored, as in gnet) on the calling
        thread, then start the ticker when C{WithTicker(True)}.  When no
        reactor runs and none was given (a plain script), first run the
        global reactor in a daemon thread and wait until it runs (not
        under C{twistd}, C{twist} or C{trial}, which run it themselves).

        @raise ErrEngineInShutdown: the client was stopped.
        @raise RuntimeError: it was already started; or the reactor it had
            to run cannot run (it already ran and stopped in this process).
        """
        eng = self.engine
        with self._lock:
            if self._stopCalled or eng.stopping:
                raise ErrEngineInShutdown()
            if self._started:
                raise RuntimeError("gnetcompat: Client.Start() called twice")
            self._started = True
        if (
            self._mayRunReactor
            and not getattr(self.reactor, "running", False)
            and not _runnerRunsReactor()
        ):
            thread = _ReactorThread(self.reactor)
            try:
                thread.start()
            except BaseException:
                self._started = False
                raise
            self._reactorThread = thread
        try:
            eng.boot()
        except BaseException:
            self._stopOwnReactor()
            raise
        if eng.tickerEnabled:
            self._call(eng.startTicker)

    def Stop(self) -> Deferred[None] | None:
        """
        Stop the client: C{OnShutdown}, then every open connection's
        C{OnClose(c, None)}.  On the reactor thread this returns a Deferred
        firing once every transport is gone; from another thread it blocks
        until then.  A reactor that L{Start} ran in its own thread is then
        stopped (and, from another thread, its thread joined).

        @raise ErrEngineInShutdown: already stopped.
        """
        eng = self.engine
        with self._lock:
            if self._stopCalled:
                raise ErrEngineInShutdown()
            self._stopCalled = True
        if _onReactorThread(self.reactor):
            d = eng.stopClient()
            if self._reactorThread is not None:
                d.addBoth(self._stoppedOwnReactor)
            return d
        try:
            # (Twisted's annotation, a union of "returns R" and "returns Deferred[R]",
            # leaves mypy no solution for a Deferred[None]: it waits for it all the same)
            blockingCallFromThread(self.reactor, eng.stopClient)  # type: ignore[arg-type]
        finally:
            self._stopOwnReactor()
        return None

    def _stoppedOwnReactor(self, result: Any) -> Any:
        self._stopOwnReactor()
        return result

    def _stopOwnReactor(self) -> None:
        """Stop the reactor L{Start} ran in a thread (if it did) and join that thread."""
        thread, self._reactorThread = self._reactorThread, None
        if thread is not None and not thread.stop():
            self.log.warn(
                "Client.Stop(): the reactor thread did not end within {timeout} s",
                timeout=thread.timeout,
            )

    # -- connections -----------------------------------------------------

    def _check(self) -> None:
        eng = self.engine
        if self._stopCalled or not eng.loopRunning:
            raise ErrEngineInShutdown()
        if not self._started:
            raise ErrClientNotStarted()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if _onReactorThread(self.reactor):
            return fn(*args)
        return blockingCallFromThread(self.reactor, fn, *args)

    def Dial(self, network: str, address: str) -> Any:
        """C{DialContext(network, address, None)}."""
        return self.DialContext(network, address, None)

    def DialContext(self, network: str, address: str, ctx: Any = None) -> Any:
        """
        Dial C{address} (Go syntax: C{127.0.0.1:9000}, C{[::1]:9000},
        C{localhost:9000}, or a socket path for C{unix}) over C{network}
        (C{tcp}, C{tcp4}, C{tcp6}, C{udp}, C{udp4}, C{udp6}, C{unix}), apply
        the socket options, and register the connection; C{ctx} (any value)
        becomes its C{Context()} and C{SafeContext()} before C{OnOpen}.

        From a foreign thread (the script's, when L{Start} runs the reactor
        itself) this blocks and returns the L{Conn} after its C{OnOpen} ran
        (or raises the dial error); on the reactor thread it returns a
        Deferred of the same.

        @raise ErrClientNotStarted: before C{Start}.
        @raise ErrEngineInShutdown: after C{Stop} or a Shutdown action.
        """
        self._check()
        return self._call(dial, self.engine, network, address, ctx, True, True)

    def Enroll(self, sock: socket.socket) -> Any:
        """C{EnrollContext(sock, None)}."""
        return self.EnrollContext(sock, None)

    def EnrollContext(self, sock: socket.socket, ctx: Any = None) -> Any:
        """
        Adopt an already connected socket (TCP, unix stream or connected
        UDP): it is duplicated and the caller's C{sock} is closed, as gnet
        does; the socket options are applied; C{ctx} becomes C{Context()} and
        C{SafeContext()}.  Blocks (foreign thread) or returns a Deferred
        (reactor thread) like L{DialContext}.

        @raise ErrInvalidNetConn: C{sock} is C{None}.
        @raise ErrUnsupportedProtocol: another kind of socket.
        @raise ErrClientNotStarted: before C{Start}.
        """
        self._check()
        dup = takeSocket(sock)
        try:
            return self._call(adopt, self.engine, dup, ctx, True, True)
        finally:
            dup.close()


def NewClient(handler: Any, *opts: Option | Options, reactor: Any = None) -> Client:
    """
    gnet's C{NewClient}: a L{Client} for C{handler} with the given options
    (server-only options are accepted and ignored).

    @raise ErrInvalidOption: a bad option value.
    """
    options = loadOptions(*opts)
    return Client(handler, options, reactor)
