"""
Pins the public surface: C{gnetcompat.__all__} and the error and interface
modules' exports, and checks that every public name is documented.
"""

from __future__ import annotations

import inspect

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementedBy

import gnetcompat
from gnetcompat import errors, interfaces

EXPECTED_ALL = [
    "Action",
    "Addr",
    "BuiltinEventEngine",
    "Close",
    "Conn",
    "Engine",
    "EngineService",
    "EventLoop",
    "GnetError",
    "IAddr",
    "IConn",
    "IEngine",
    "IEventHandler",
    "IEventLoop",
    "LeastConnections",
    "LoadBalancing",
    "MaxStreamBufferCap",
    "None_",
    "Option",
    "Options",
    "RoundRobin",
    "Rotate",
    "Run",
    "Serve",
    "Shutdown",
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
    "WithSocketRecvBuffer",
    "WithSocketSendBuffer",
    "WithTCPKeepAlive",
    "WithTCPKeepCount",
    "WithTCPKeepInterval",
    "WithTCPNoDelay",
    "WithTicker",
    "WithUnixSocketMode",
    "WithWriteBufferCap",
    "__version__",
    # the client API (gnetcompat.client, spec §12) and gnet's context helpers (§6.4)
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
    # gnet's RunnableFunc (spec §8.2) and the deprecated package-level Stop (§6.3)
    "RunnableFunc",
    "Stop",
    # native TLS (gnetcompat._tls)
    "ClientTLS",
    "ReloadCertificates",
    "TLSConfig",
    "TLSState",
    "WithClientTLS",
    "WithTLS",
    # process workers: the engine-wide API (Conn.Handle, Engine.Broadcast/Counter...)
    "ConnHandle",
    "Counter",
    "WithConnRegistry",
    "WithProcessWorkers",
    "WithTickEveryWorker",
    # process-worker supervision and address parsing, for applications such as gnetcompat.echo
    "ErrWorkerFailed",
    "ListenSpec",
    "SupervisionPolicy",
    "parseProtoAddr",
    "installReloadOnSIGHUP",
    # Twisted endpoint descriptions, split once for tap, the metrics site and
    # TLSConfig.fromDescription (issue 20)
    "EndpointDescription",
    "parseEndpoint",
    # a loop-only Conn method called from another thread (issue 18)
    "ErrNotOnEventLoop",
]

EXPECTED_ERRORS = [
    "GnetError",
    "ErrEmptyEngine",
    "ErrEngineShutdown",
    "ErrEngineInShutdown",
    "ErrAcceptSocket",
    "ErrTooManyEventLoopThreads",
    "ErrUnsupportedProtocol",
    "ErrUnsupportedTCPProtocol",
    "ErrUnsupportedUDPProtocol",
    "ErrUnsupportedUDSProtocol",
    "ErrUnsupportedOp",
    "ErrNegativeSize",
    "ErrNoIPv4AddressOnInterface",
    "ErrInvalidNetworkAddress",
    "ErrInvalidNetConn",
    "ErrNilRunnable",
    "ErrShortBuffer",
    "ErrClosed",
    "ErrEOF",
    "ErrInvalidTimeDuration",
    "ErrInvalidURL",
    "ErrInvalidOption",
    "ErrBusOverflow",
    "ErrNotOnEventLoop",
]

#: gnet's message texts (spec §9) for the sentinels users compare against.
MESSAGES = {
    "ErrEmptyEngine": "gnet: the internal engine is empty",
    "ErrEngineShutdown": "gnet: server is going to be shutdown",
    "ErrEngineInShutdown": "gnet: server is already in shutdown",
    "ErrTooManyEventLoopThreads": "gnet: too many event-loops under LockOSThread mode",
    "ErrUnsupportedProtocol": "gnet: only unix, tcp/tcp4/tcp6, udp/udp4/udp6 are supported",
    "ErrUnsupportedOp": "gnet: unsupported operation",
    "ErrInvalidNetworkAddress": "gnet: invalid network address",
    "ErrInvalidNetConn": "gnet: the net.Conn is empty",
    "ErrNilRunnable": "gnet: nil runnable is not allowed",
    "ErrShortBuffer": "short buffer",
    "ErrClosed": "use of closed network connection",
    "ErrInvalidTimeDuration": "invalid time duration",
}


def documented(obj: object) -> bool:
    """True when C{obj} carries its own non-empty docstring."""
    doc = getattr(obj, "__doc__", None)
    return bool(doc and doc.strip())


class ExportTests(SynchronousTestCase):
    """The public names of the package."""

    def test_all(self) -> None:
        """C{gnetcompat.__all__} is exactly the pinned list, and every name exists."""
        self.assertEqual(sorted(gnetcompat.__all__), sorted(EXPECTED_ALL))
        for name in gnetcompat.__all__:
            self.assertTrue(hasattr(gnetcompat, name), name)

    def test_everyNameDocumented(self) -> None:
        """
        Every public class, function and alias has a docstring; constants
        (Action and balancing members, the buffer cap, the version) are
        documented through their type or their module.
        """
        undocumented = []
        for name in gnetcompat.__all__:
            obj = getattr(gnetcompat, name)
            if isinstance(obj, (int, str)):  # enum members, MaxStreamBufferCap, __version__
                owner = type(obj) if type(obj) not in (int, str) else None
                if owner is not None and not documented(owner):
                    undocumented.append(name)
                continue
            if not documented(obj):
                undocumented.append(name)
        self.assertEqual(undocumented, [])

    def test_publicMethodsDocumented(self) -> None:
        """
        Every public method of the exported classes has a docstring (its own,
        or that of the method or interface method it implements).
        """
        missing = []
        for name in gnetcompat.__all__:
            obj = getattr(gnetcompat, name)
            if not inspect.isclass(obj) or issubclass(obj, int):
                continue
            for attr, value in list(vars(obj).items()):
                if attr.startswith("_") or not inspect.isfunction(value):
                    continue
                inherited = any(
                    documented(getattr(base, attr, None)) for base in obj.__mro__[1:]
                ) or any(
                    attr in iface and iface[attr].getDoc().strip()
                    for iface in implementedBy(obj).flattened()
                )
                if not documented(value) and not inherited:
                    missing.append(f"{name}.{attr}")
        self.assertEqual(missing, [])

    def test_packageDocstring(self) -> None:
        """The package itself is documented and has a version string."""
        self.assertTrue(documented(gnetcompat))
        self.assertIsInstance(gnetcompat.__version__, str)

    def test_actionValues(self) -> None:
        """The module-level action aliases are the L{Action} members."""
        self.assertIs(gnetcompat.None_, gnetcompat.Action.NONE)
        self.assertIs(gnetcompat.Close, gnetcompat.Action.CLOSE)
        self.assertIs(gnetcompat.Shutdown, gnetcompat.Action.SHUTDOWN)


class ErrorsTests(SynchronousTestCase):
    """C{gnetcompat.errors}: gnet's sentinels as exception classes."""

    def test_all(self) -> None:
        """
        C{errors.__all__} is the pinned list; every class derives from
        L{GnetError} and is documented.
        """
        self.assertEqual(sorted(errors.__all__), sorted(EXPECTED_ERRORS))
        for name in errors.__all__:
            cls = getattr(errors, name)
            self.assertTrue(issubclass(cls, errors.GnetError), name)
            self.assertTrue(documented(cls), name)

    def test_messages(self) -> None:
        """A fresh instance's text is gnet's message; a given text replaces it."""
        for name, text in MESSAGES.items():
            self.assertEqual(str(getattr(errors, name)()), text)
        self.assertEqual(str(errors.ErrEOF("read: EOF")), "read: EOF")
        self.assertIsInstance(errors.ErrEOF("read: EOF"), errors.ErrEOF)

    def test_interfaces(self) -> None:
        """C{gnetcompat.interfaces} exports the five interfaces, each documented."""
        self.assertEqual(
            sorted(interfaces.__all__), ["IAddr", "IConn", "IEngine", "IEventHandler", "IEventLoop"]
        )
        for name in interfaces.__all__:
            iface = getattr(interfaces, name)
            self.assertTrue(documented(iface), name)
            for method in iface.names():
                self.assertTrue(iface[method].getDoc().strip(), f"{name}.{method}")
