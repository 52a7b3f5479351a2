"""
gnetcompat: gnet v2's event-handler networking model on Twisted.

Implement an L{IEventHandler} (subclass L{BuiltinEventEngine}), then::

    import gnetcompat as gnet

    class Echo(gnet.BuiltinEventEngine):
        def OnTraffic(self, c):
            c.Write(c.Next(-1))
            return gnet.None_

    gnet.Run(Echo(), "tcp://:9000", gnet.WithMulticore(True))
"""

from __future__ import annotations

# first: turns a script named like a standard module (http.py) into a clear error
import gnetcompat._shadow  # noqa: F401  (installs its import hook when imported)

from ._action import Action, Close, None_, Shutdown
from ._addr import Addr, ListenSpec, parseProtoAddr
from ._conn import Conn, UDPConn
from ._endpoint import EndpointDescription, parseEndpoint
from ._engine import Engine, EventLoop, RunnableFunc
from ._handle import ConnHandle, Counter
from ._handler import BuiltinEventEngine
from ._run import (  # also registers IEventHandler -> IProtocolFactory
    EngineService,
    ReloadCertificates,
    Rotate,
    Run,
    Serve,
    Stop,
    installReloadOnSIGHUP,
)
from ._tls import ClientTLS, TLSConfig, TLSState
from ._workers import ErrWorkerFailed, SupervisionPolicy
from .client import (
    Client,
    Context,
    ErrClientNotStarted,
    FromContext,
    FromNetAddrContext,
    FromNetConnContext,
    NewClient,
    NewContext,
    NewNetAddrContext,
    NewNetConnContext,
    RegisteredResult,
)
from .errors import ErrNotOnEventLoop, GnetError
from .interfaces import IAddr, IConn, IEngine, IEventHandler, IEventLoop
from .options import (
    LeastConnections,
    LoadBalancing,
    MaxStreamBufferCap,
    Option,
    Options,
    RoundRobin,
    SourceAddrHash,
    TCPDelay,
    TCPNoDelay,
    TCPSocketOpt,
    WithBacklog,
    WithBindToDevice,
    WithClientTLS,
    WithConnRegistry,
    WithEdgeTriggeredIO,
    WithEdgeTriggeredIOChunk,
    WithLoadBalancing,
    WithLockOSThread,
    WithLogger,
    WithLogLevel,
    WithLogPath,
    WithMulticastInterfaceIndex,
    WithMulticore,
    WithNumEventLoop,
    WithOptions,
    WithProcessWorkers,
    WithReadBufferCap,
    WithReuseAddr,
    WithReusePort,
    WithShutdownTimeout,
    WithSocketRecvBuffer,
    WithSocketSendBuffer,
    WithTCPKeepAlive,
    WithTCPKeepCount,
    WithTCPKeepInterval,
    WithTCPNoDelay,
    WithTicker,
    WithTickEveryWorker,
    WithTLS,
    WithUnixSocketMode,
    WithWriteBufferCap,
)

__version__ = "0.1.0"

__all__ = [
    # gnetcompat extensions: process workers and their engine-wide API,
    # their supervision, address parsing
    "ConnHandle",
    "Counter",
    "WithConnRegistry",
    "WithProcessWorkers",
    "WithTickEveryWorker",
    "ErrWorkerFailed",
    "ListenSpec",
    "SupervisionPolicy",
    "parseProtoAddr",
    "EndpointDescription",
    "parseEndpoint",
    "installReloadOnSIGHUP",
    "Action",
    "Addr",
    "BuiltinEventEngine",
    "Client",
    "Close",
    "Conn",
    "Context",
    "Engine",
    "EngineService",
    "ErrClientNotStarted",
    "ErrNotOnEventLoop",
    "EventLoop",
    "FromContext",
    "FromNetAddrContext",
    "FromNetConnContext",
    "GnetError",
    "IAddr",
    "IConn",
    "IEngine",
    "IEventHandler",
    "IEventLoop",
    "LeastConnections",
    "LoadBalancing",
    "MaxStreamBufferCap",
    "NewClient",
    "NewContext",
    "NewNetAddrContext",
    "NewNetConnContext",
    "None_",
    "Option",
    "Options",
    "RegisteredResult",
    "Rotate",
    "RoundRobin",
    "Run",
    "RunnableFunc",
    "Serve",
    "Shutdown",
    "Stop",
    "SourceAddrHash",
    "TCPDelay",
    "TCPNoDelay",
    "TCPSocketOpt",
    "UDPConn",
    "WithBacklog",
    "WithBindToDevice",
    "WithEdgeTriggeredIO",
    "WithEdgeTriggeredIOChunk",
    "WithLoadBalancing",
    "WithLockOSThread",
    "WithLogLevel",
    "WithLogPath",
    "WithLogger",
    "WithMulticastInterfaceIndex",
    "WithMulticore",
    "WithNumEventLoop",
    "WithOptions",
    "WithReadBufferCap",
    "WithReuseAddr",
    "WithReusePort",
    "WithShutdownTimeout",
    "WithUnixSocketMode",
    "WithSocketRecvBuffer",
    "WithSocketSendBuffer",
    "WithTCPKeepAlive",
    "WithTCPKeepCount",
    "WithTCPKeepInterval",
    "WithTCPNoDelay",
    "WithTicker",
    "WithWriteBufferCap",
    "__version__",
    # native TLS (gnetcompat._tls; gnet has none)
    "ClientTLS",
    "ReloadCertificates",
    "TLSConfig",
    "TLSState",
    "WithClientTLS",
    "WithTLS",
]
