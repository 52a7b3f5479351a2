# -*- test-case-name: tests.test_client -*-
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

Threads: a L{Client}'s C{Dial*}/C{Enroll*}/C{Stop} block like gnet's when
called from a thread other than the reactor's (through
C{blockingCallFromThread}); on the reactor thread (or before the reactor
runs) they cannot block and return Deferreds instead.  A client and any
number of server engines share one reactor.
"""

from __future__ import annotations

import socket
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
from ._engine import Engine
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


def _onReactorThread(reactor: Any) -> bool:
    """True on the reactor thread, and whenever the reactor is not running."""
    if not getattr(reactor, "running", False):
        return True
    return bool(threadable.isInIOThread())


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

    def stopClient(self) -> Deferred:
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
    fewest, as gnet's client does).  C{engine} is the "empty" engine its callbacks receive.
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

    def __repr__(self) -> str:
        return f"<Client {self.engine!r}>"

    # -- lifecycle -------------------------------------------------------

    def Start(self) -> None:
        """
        Call C{OnBoot} (its result is ignored, as in gnet) on the calling
        thread, then start the ticker when C{WithTicker(True)}.

        @raise ErrEngineInShutdown: the client was stopped.
        @raise RuntimeError: it was already started.
        """
        eng = self.engine
        with self._lock:
            if self._stopCalled or eng.stopping:
                raise ErrEngineInShutdown()
            if self._started:
                raise RuntimeError("gnetcompat: Client.Start() called twice")
            self._started = True
        eng.boot()
        if eng.tickerEnabled:
            self._call(eng.startTicker)

    def Stop(self) -> Deferred | None:
        """
        Stop the client: C{OnShutdown}, then every open connection's
        C{OnClose(c, None)}.  On the reactor thread this returns a Deferred
        firing once every transport is gone; from another thread it blocks
        until then.

        @raise ErrEngineInShutdown: already stopped.
        """
        eng = self.engine
        with self._lock:
            if self._stopCalled:
                raise ErrEngineInShutdown()
            self._stopCalled = True
        if _onReactorThread(self.reactor):
            return eng.stopClient()
        blockingCallFromThread(self.reactor, eng.stopClient)
        return None

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

        From a foreign thread this blocks and returns the L{Conn} after its
        C{OnOpen} ran (or raises the dial error); on the reactor thread it
        returns a Deferred of the same.

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
