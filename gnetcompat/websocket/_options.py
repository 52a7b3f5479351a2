# -*- test-case-name: tests.test_wsproto -*-
"""
Settings and messages of the WebSocket layer: L{WebSocketOptions} (with
their validation), L{Message} and the data opcodes.

Nothing here knows Autobahn: the options are turned into an Autobahn
factory by L{gnetcompat.websocket._autobahncompat.factoryFor}, once per
distinct settings (L{settingsKey}).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._origin import OriginPolicy

__all__ = [
    "Message",
    "OPCODE_BINARY",
    "OPCODE_TEXT",
    "STATUS_PAGE_HEADERS",
    "WebSocketOptions",
    "settingsKey",
]

#: Opcode of a text message (RFC 6455 section 5.2).
OPCODE_TEXT = 1
#: Opcode of a binary message (RFC 6455 section 5.2).
OPCODE_BINARY = 2

#: Response headers of the status page (and its 404s): nothing but the page
#: itself loads, no MIME sniffing, no framing (clickjacking), no referrer.
STATUS_PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

#: characters a header name may hold (RFC 9110 token)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclasses.dataclass
class WebSocketOptions:
    """
    Settings of a WebSocket server session, with safe defaults.

    Sizes are in bytes and times in seconds; 0 switches a limit or timer off.

    @ivar maxMessagePayloadSize: largest message accepted (after
        decompression); a bigger one closes the connection with 1009.
    @ivar maxFramePayloadSize: largest frame payload accepted (close 1009).
    @ivar maxRequestHeaderSize: largest HTTP request header block of the
        opening handshake; a longer request is answered with HTTP 431 and the
        connection is closed before more is buffered.
    @ivar openHandshakeTimeout: time allowed from the start of the session to
        a completed opening handshake.
    @ivar closeHandshakeTimeout: time the peer has to answer our Close frame
        before the connection is dropped.
    @ivar autoPingInterval: send a ping once nothing was received from the
        peer for this many seconds (0: off); a connection with traffic is
        never pinged.  With C{autoPingTimeout} it drops peers that went
        silent (a live but quiet client answers pings and stays).
    @ivar autoPingTimeout: drop the connection when nothing (the pong or
        anything else) is received in this time after a ping (0: never);
        needs C{autoPingInterval}.
    @ivar messageTimeout: time a frame or message may stay partly received:
        from the first byte after the last complete message until the next
        message is complete.  A connection that stalls part-way through a
        frame header, a frame or a fragmented message longer than this is
        failed with close code 1008 (policy violation) and dropped if it does
        not answer the Close (0: no limit).  Checked once a second.
    @ivar partialMessageBudget: bytes that all the sessions of one reactor
        (one worker process) may hold together in partly received messages
        (after decompression) and unprocessed input.  When a session's data
        would go beyond it, the session that has held partly received data
        the longest (since its last complete message) is failed with close
        code 1013 (try again later) and its buffers freed, then the next
        oldest while still over: holding costs nothing but the bytes sent
        once, so the budget goes to messages in progress rather than to
        the first to fill it, and a newcomer is refused only when it is
        itself the oldest holder.  At least C{maxMessagePayloadSize} (0: no
        limit).
    @ivar autoPingSize: size of an automatic ping payload, 12 to 125.
    @ivar allowedOrigins: the origins that may connect, as a browser sends
        them (C{scheme://host[:port]}, default ports implied; C{*.} at the
        start of the host for one or more subdomain labels, C{:*} for any
        port; L{gnetcompat.websocket._origin}); C{["*"]} allows every origin
        but C{null}.  A refused handshake gets HTTP 403.  Requests without an
        C{Origin} header (non-browser clients) are not checked.
    @ivar allowNullOrigin: allow the C{null} origin (sandboxed iframes,
        C{file:} pages); off by default.
    @ivar compression: accept permessage-deflate (RFC 7692) offers.
    @ivar maxCompressSize: with permessage-deflate, messages larger than
        this many bytes (default 1 MiB) are sent uncompressed (RFC 7692 lets a
        sender choose per message); C{0}: compress every message.
        Compressing a large message is one blocking call (a 15 MiB echo:
        tens to hundreds of milliseconds) during which every other
        connection of the process waits.  An uncompressed reply queues its
        full size; L{gnetcompat.websocket.WebSocketConn} keeps that bounded
        by inflating the next step of a compressed message only once the
        replies waiting for the peer are under C{WriteBufferCap}.
    @ivar autoFragmentSize: fragment sent messages into frames of at most this
        many bytes (0: one frame per message).
    @ivar webStatus: answer a plain HTTP GET with a status page
        (C{statusPage}, else Autobahn's) instead of HTTP 426.
    @ivar statusPage: with C{webStatus} on, a callable returning the HTML
        answered to a plain C{GET /} of HTTP/1.0 or 1.1 (other paths: 404;
        C{?redirect=}: 400); C{None} for Autobahn's own page.
    @ivar statusPageHeaders: the headers sent with the status page and its
        404s, as C{(name, value)} pairs (by default L{STATUS_PAGE_HEADERS}:
        a CSP allowing nothing but the page itself, no sniffing, no framing,
        no referrer); a page with inline script or style sends its own
        C{Content-Security-Policy} here.
    @ivar server: value of the C{Server} header of the handshake response, or
        C{None} for no header.
    @ivar keepRequest: keep Autobahn's C{ConnectionRequest} (path, headers,
        ...) as the session's C{request} for the connection's whole life;
        C{False} lets it go once the opening handshake is done (about 1 KiB
        per connection for a browser's headers), for services such as the
        echo server that never read it.
    """

    maxMessagePayloadSize: int = 16 * 1024 * 1024
    maxFramePayloadSize: int = 16 * 1024 * 1024
    maxRequestHeaderSize: int = 16 * 1024
    openHandshakeTimeout: float = 5.0
    closeHandshakeTimeout: float = 1.0
    autoPingInterval: float = 20.0
    autoPingTimeout: float = 20.0
    messageTimeout: float = 60.0
    partialMessageBudget: int = 64 * 1024 * 1024
    autoPingSize: int = 12
    allowedOrigins: list[str] = dataclasses.field(default_factory=lambda: ["*"])
    allowNullOrigin: bool = False
    compression: bool = True
    maxCompressSize: int = 1024 * 1024
    autoFragmentSize: int = 0
    webStatus: bool = False
    statusPage: Callable[[], str] | None = None
    statusPageHeaders: Sequence[tuple[str, str]] = STATUS_PAGE_HEADERS
    server: str | None = "gnetcompat"
    keepRequest: bool = True

    def validate(self) -> None:
        """
        Check every setting.

        @raise ValueError: naming the first invalid option.
        """
        for name in (
            "maxMessagePayloadSize",
            "maxFramePayloadSize",
            "maxRequestHeaderSize",
            "autoFragmentSize",
            "autoPingSize",
            "partialMessageBudget",
            "maxCompressSize",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        for name in (
            "openHandshakeTimeout",
            "closeHandshakeTimeout",
            "autoPingInterval",
            "autoPingTimeout",
            "messageTimeout",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value < float("inf")
            ):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not 12 <= self.autoPingSize <= 125:
            raise ValueError(f"autoPingSize must be between 12 and 125, not {self.autoPingSize!r}")
        if self.autoPingTimeout and not self.autoPingInterval:
            raise ValueError("autoPingTimeout needs autoPingInterval > 0")
        budget, biggest = self.partialMessageBudget, self.maxMessagePayloadSize
        if budget and (not biggest or budget < biggest):
            raise ValueError(
                f"partialMessageBudget ({budget}) must be 0 or at least "
                f"maxMessagePayloadSize ({biggest or 'unlimited'})"
            )
        if (
            isinstance(self.allowedOrigins, (str, bytes))
            or not isinstance(self.allowedOrigins, Sequence)
            or not all(isinstance(o, str) for o in self.allowedOrigins)
        ):
            raise ValueError(f"allowedOrigins must be a list of str, not {self.allowedOrigins!r}")
        try:
            OriginPolicy(self.allowedOrigins)
        except ValueError as e:
            raise ValueError(f"allowedOrigins: {e}") from None
        for name in ("allowNullOrigin", "compression", "webStatus", "keepRequest"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool")
        if self.statusPage is not None and not callable(self.statusPage):
            raise ValueError(f"statusPage must be a callable or None, not {self.statusPage!r}")
        _checkHeaders(self.statusPageHeaders)
        server = self.server
        if server is not None and (not isinstance(server, str) or "\r" in server or "\n" in server):
            raise ValueError(f"server must be a one-line str or None, not {server!r}")


def _checkHeaders(headers: object) -> None:
    """
    Check C{statusPageHeaders}: C{(name, value)} pairs of Latin-1 C{str},
    the name a token, the value on one line.

    @raise ValueError: naming the option and the bad header.
    """
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Sequence):
        raise ValueError(
            f"statusPageHeaders must be a list of (name, value) pairs, not {headers!r}"
        )
    for header in headers:
        if (
            isinstance(header, (str, bytes))
            or not isinstance(header, Sequence)
            or len(header) != 2
            or not all(isinstance(part, str) for part in header)
        ):
            raise ValueError(f"statusPageHeaders: {header!r} is not a (name, value) pair of str")
        name, value = header
        try:
            name.encode("latin-1")
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"statusPageHeaders: {header!r} is not Latin-1") from None
        if not name or not _TOKEN.issuperset(name):
            raise ValueError(f"statusPageHeaders: {name!r} is not a header name")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"statusPageHeaders: the value of {name!r} is not one line")


def settingsKey(options: WebSocketOptions) -> tuple[Any, ...]:
    """
    A hashable snapshot of C{options}, to share Autobahn factories: equal
    only for settings of the same types (C{True} is not C{1}), so options
    equal to validated ones are valid too.

    Not hashable when a value is not (a list of lists, say): a lookup with
    it raises C{TypeError}, and the caller validates the options and uses
    L{frozenSettingsKey}.
    """
    return tuple(
        (v.__class__, tuple(v) if v.__class__ is list else v) for v in vars(options).values()
    )


def frozenSettingsKey(options: WebSocketOptions) -> tuple[Any, ...]:
    """
    L{settingsKey} with every nested list or tuple made a tuple, for
    (validated) options whose own key is not hashable.
    """

    def frozen(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(frozen(v) for v in value)
        return value

    return tuple((v.__class__, frozen(v)) for v in vars(options).values())


class Message(NamedTuple):
    """
    A complete data message received from the peer.

    @ivar opcode: L{OPCODE_TEXT} (1) or L{OPCODE_BINARY} (2).
    @ivar payload: the message, decompressed; UTF-8 for text messages.
    """

    opcode: int
    payload: bytes
