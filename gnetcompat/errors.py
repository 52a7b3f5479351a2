# -*- test-case-name: tests.test_seams,tests.test_options,tests.test_exports -*-
"""
gnet's sentinel errors as exception classes.

Synchronous calls raise these; callback parameters (C{OnClose}'s C{err}, the
C{err} of an async callback) receive instances of them, or C{None}.  Every
class derives from L{GnetError}, and the message of a fresh instance is gnet's
own text, so C{str(ErrEmptyEngine())} reads exactly as gnet's error does.
"""

from __future__ import annotations

__all__ = [
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


class GnetError(Exception):
    """
    The base of every gnetcompat error.

    Subclasses carry gnet's message as C{message}; an instance created without
    arguments uses it, an instance created with a text uses that text.
    """

    message = "gnet: error"

    def __init__(self, *args: object) -> None:
        if not args:
            args = (self.message,)
        super().__init__(*args)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.message


class ErrEmptyEngine(GnetError):
    """The engine has no listeners (a client engine) or no loops yet."""

    message = "gnet: the internal engine is empty"


class ErrEngineShutdown(GnetError):
    """
    The result of an action that shut the engine down; given to C{Wake} and
    C{CloseWithCallback} callbacks when the resulting action was Shutdown.
    """

    message = "gnet: server is going to be shutdown"


class ErrEngineInShutdown(GnetError):
    """The engine is shutting down or has shut down."""

    message = "gnet: server is already in shutdown"


class ErrAcceptSocket(GnetError):
    """Accepting a new connection failed."""

    message = "gnet: accept a new connection error"


class ErrTooManyEventLoopThreads(GnetError):
    """More than 10000 event loops were asked for with LockOSThread on."""

    message = "gnet: too many event-loops under LockOSThread mode"


class ErrUnsupportedProtocol(GnetError, ValueError):
    """The address scheme is none of unix, tcp/tcp4/tcp6, udp/udp4/udp6."""

    message = "gnet: only unix, tcp/tcp4/tcp6, udp/udp4/udp6 are supported"


class ErrUnsupportedTCPProtocol(ErrUnsupportedProtocol):
    """A TCP operation was given another network."""

    message = "gnet: only tcp/tcp4/tcp6 are supported"


class ErrUnsupportedUDPProtocol(ErrUnsupportedProtocol):
    """A UDP operation was given another network."""

    message = "gnet: only udp/udp4/udp6 are supported"


class ErrUnsupportedUDSProtocol(ErrUnsupportedProtocol):
    """A unix-socket operation was given another network."""

    message = "gnet: only unix is supported"


class ErrUnsupportedOp(GnetError):
    """The operation is not supported on this connection or engine."""

    message = "gnet: unsupported operation"


class ErrNegativeSize(GnetError, ValueError):
    """A negative size was given."""

    message = "gnet: negative size is not allowed"


class ErrNoIPv4AddressOnInterface(GnetError):
    """An IPv4 multicast join named an interface without an IPv4 address."""

    message = "gnet: no IPv4 address on interface"


class ErrInvalidNetworkAddress(GnetError, ValueError):
    """The network address is malformed, unknown or missing."""

    message = "gnet: invalid network address"


class ErrInvalidNetConn(GnetError, ValueError):
    """No connection was given to adopt."""

    message = "gnet: the net.Conn is empty"


class ErrNilRunnable(GnetError, ValueError):
    """C{EventLoop.Execute} was given no runnable."""

    message = "gnet: nil runnable is not allowed"


class ErrShortBuffer(GnetError):
    """
    A Reader method asked for more bytes than are buffered (Go's
    C{io.ErrShortBuffer}); nothing was consumed.

    Go's C{buf, err := c.Next(n); if err != nil { return gnet.None }} is, in
    Python, to let it escape C{OnTraffic}: an C{ErrShortBuffer} raised out of
    C{OnTraffic} means "wait for more data" (no action, the unread bytes stay
    buffered for the next call, one debug line per connection), not a
    handler failure.  Catch it to act on it yourself.

    @ivar requested: the number of bytes asked for (C{len(p)} for C{Read}),
        or C{None} when not known.
    @ivar buffered: the number of bytes that were buffered, or C{None}.
    """

    message = "short buffer"

    def __init__(
        self, *args: object, requested: int | None = None, buffered: int | None = None
    ) -> None:
        super().__init__(*args)
        self.requested = requested
        self.buffered = buffered


class ErrClosed(GnetError):
    """The connection is closed (Go's C{net.ErrClosed})."""

    message = "use of closed network connection"


class ErrBusOverflow(GnetError):
    """
    gnetcompat, process workers: an engine-wide operation could not be
    passed to another worker process (its queue was full, or the message is
    over 64 MiB), and was dropped.
    """

    message = "gnetcompat: message to another worker process dropped (queue full or too large)"


class ErrEOF(GnetError):
    """
    The peer closed the connection cleanly (Go's C{io.EOF}).

    C{OnClose} receives an instance reading C{read: EOF} for a clean remote
    close; test with C{isinstance(err, ErrEOF)} as Go tests C{errors.Is(err,
    io.EOF)}.
    """

    message = "EOF"


class ErrInvalidURL(GnetError, ValueError):
    """The address could not be parsed as a URL (missing scheme, control characters)."""

    message = "invalid URL"


class ErrInvalidOption(GnetError, ValueError):
    """An option has an invalid value; the message names the option."""

    message = "gnet: invalid option"


class ErrInvalidTimeDuration(ErrInvalidOption):
    """
    A keep-alive duration is below one second: gnet's one error for it,
    from C{Conn.SetKeepAlivePeriod}/C{SetKeepAlive} and from the
    C{WithTCPKeepAlive}/C{WithTCPKeepInterval} options alike (so it is an
    L{ErrInvalidOption} too).
    """

    message = "invalid time duration"


class ErrNotOnEventLoop(GnetError, RuntimeError):
    """
    gnetcompat: a loop-only C{Conn} method (C{Write}, C{Writev},
    C{ReadFrom}) was called from a thread other than the one running the
    connection's event loop (the reactor thread).  In Go this is a data
    race; here it is refused.  From other threads use C{c.AsyncWrite(data,
    callback)} / C{c.AsyncWritev(bufs, callback)}, which queue the write on
    the loop.
    """

    message = "gnet: loop-only method called from outside the connection's event loop"
