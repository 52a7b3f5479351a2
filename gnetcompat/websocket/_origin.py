# -*- test-case-name: tests.test_origin -*-
"""
Which C{Origin} may open a WebSocket: the check of the opening handshake.

Autobahn's own check (C{allowedOrigins}) turns each pattern into a regular
expression and matches it against C{scheme://host:port}, so
C{https://good.example} refuses the very origin a browser sends for that
site (C{https://good.example}, no port) and the workaround
C{https://good.example*} also admits C{https://good.example.evil.com}.
L{OriginPolicy} compares origins, not strings:

  - a pattern is C{*} (every origin, C{null} excepted) or
    C{scheme://host[:port]}, as a browser sends an origin;
  - the scheme and the host compare case-insensitively; a missing port is
    the scheme's default (80 for C{http}/C{ws}, 443 for C{https}/C{wss}),
    so C{https://a.example} and C{https://a.example:443} are the same
    pattern; C{:*} allows any port;
  - the host may start with C{*.}: it matches B{one or more} whole DNS
    labels in front of the rest (as a CSP host source does):
    C{https://*.example.com} admits C{https://a.example.com} and
    C{https://a.b.example.com}, but neither C{https://example.com} nor
    C{https://evilexample.com} nor C{https://example.com.evil.net};
  - C{*} appears nowhere else (C{https://good.example*} is an error);
  - the C{null} origin (sandboxed iframes, C{file:} pages, which Chromium
    sends as C{file://}) is allowed only with C{allowNull}.

A request without an C{Origin} header (non-browser clients) is not
checked: an origin check protects browsers' users from other sites' pages,
it is not authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .._text import printable

__all__ = ["OriginPolicy", "DEFAULT_PORTS", "printable"]

#: the port an origin without one has
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

#: longest Origin header considered (browsers send short ones)
MAX_ORIGIN_LENGTH = 1024

_ANY_PORT = -1

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST = rf"(?:\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)"
_PATTERN = re.compile(
    rf"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<wild>\*\.)?(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}|\*))?"
)
_ORIGIN = re.compile(
    rf"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
)


def _port(scheme: str, text: str | None) -> int | None:
    if text is None:
        return DEFAULT_PORTS.get(scheme)
    if text == "*":
        return _ANY_PORT
    port = int(text)
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} out of range")
    return port


def _parseOrigin(origin: str) -> tuple[str, str, int | None] | str | None:
    """
    An C{Origin} header value as C{(scheme, host, port)}, C{"null"}, or
    C{None} when it is not an origin.
    """
    if len(origin) > MAX_ORIGIN_LENGTH:
        return None
    text = origin.strip().lower()
    if text == "null" or text == "file://" or text.startswith("file:"):
        return "null"
    m = _ORIGIN.fullmatch(text)
    if m is None:
        return None
    scheme = m.group("scheme")
    try:
        port = _port(scheme, m.group("port"))
    except ValueError:
        return None
    return scheme, m.group("host"), port


class OriginPolicy:
    """
    The origins allowed to open a WebSocket (see the module docstring).

    @ivar allowAll: C{*} was among the patterns.
    @ivar allowNull: the C{null} origin is allowed.
    """

    def __init__(self, patterns: Iterable[str], allowNull: bool = False) -> None:
        """
        @param patterns: C{*} or C{scheme://host[:port]} patterns.
        @param allowNull: allow the C{null} origin.
        @raise ValueError: for a malformed pattern (the message quotes it).
        """
        self.allowAll = False
        self.allowNull = bool(allowNull)
        self._exact: set[tuple[str, str, int | None]] = set()
        self._wild: list[tuple[str, str, int | None]] = []
        for raw in patterns:
            pattern = raw.strip()
            if pattern == "*":
                self.allowAll = True
                continue
            m = _PATTERN.fullmatch(pattern.lower())
            if m is None or (m.group("wild") and m.group("host").startswith("[")):
                raise ValueError(
                    f"bad origin pattern {printable(pattern, 100)!r}: give * or "
                    "scheme://host[:port] as a browser sends it (port * for any; the host may "
                    "start with *. for one or more subdomain labels; no path, no other *)"
                )
            scheme = m.group("scheme")
            try:
                port = _port(scheme, m.group("port"))
            except ValueError as e:
                raise ValueError(f"bad origin pattern {pattern!r}: {e}") from None
            entry = (scheme, m.group("host"), port)
            if m.group("wild"):
                self._wild.append(entry)
            else:
                self._exact.add(entry)

    @property
    def allowsEverything(self) -> bool:
        """C{*} and the C{null} origin: no request needs checking."""
        return self.allowAll and self.allowNull

    def allows(self, origin: str) -> bool:
        """
        Whether a request with this C{Origin} header value may connect.

        @param origin: the header's value, as sent.
        """
        parsed = _parseOrigin(origin)
        if parsed is None:
            return False
        if isinstance(parsed, str):  # "null", the only string _parseOrigin gives
            return self.allowNull
        if self.allowAll:
            return True
        scheme, host, port = parsed
        exact = self._exact
        if (scheme, host, port) in exact or (scheme, host, _ANY_PORT) in exact:
            return True
        for wScheme, suffix, wPort in self._wild:
            if (
                wScheme == scheme
                and (wPort == port or wPort == _ANY_PORT)
                and len(host) > len(suffix) + 1
                and host.endswith(suffix)
                and host[-len(suffix) - 1] == "."
            ):
                return True
        return False
