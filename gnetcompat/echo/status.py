# -*- test-case-name: tests.test_status -*-
"""
The HTML status page of the echo service: answered by the WebSocket session
layer to a plain C{GET /} (no C{Upgrade} header) on the echo port, see
L{gnetcompat.websocket.WebSocketOptions.statusPage}; C{--status-page=false}
turns it off (a plain GET then gets HTTP 426).

It shows the version, uptime, workers, open connections (engine-wide),
message counts and rate, and holds an echo console: a few lines of
JavaScript open a WebSocket back to the same host and port (C{wss:} when
the page came over HTTPS, e.g. behind a TLS-terminating proxy) and echo what
is typed.  Numbers are in elements with stable ids (C{version}, C{uptime},
C{workers}, C{connections}, C{messages}, C{rate}) for scripts and health
checks.  The page is tiny and self-contained: no external resources.  It is
sent with L{STATUS_HEADERS}: a Content-Security-Policy that allows only its
own inline script and style (by SHA-256 hash) and a WebSocket to its own
origin, C{nosniff}, and no framing (C{X-Frame-Options: DENY},
C{frame-ancestors 'none'}).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

__all__ = ["StatusInfo", "renderStatus", "CONTENT_SECURITY_POLICY", "STATUS_HEADERS"]


@dataclass
class StatusInfo:
    """The numbers shown on the page."""

    version: str
    uptime: float
    workers: int
    connections: int
    messages: int
    rate: float


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:42em;color:#222}
h1{font-size:1.4em} table{border-collapse:collapse}
td,th{padding:.2em 1em .2em 0;text-align:left} td{font-variant-numeric:tabular-nums}
#log{background:#f4f4f4;border:1px solid #ccc;min-height:6em;padding:.5em;white-space:pre-wrap}
input{width:70%}
"""

_SCRIPT = """
(function () {
  var log = document.getElementById("log"), state = document.getElementById("state");
  function line(t) { log.appendChild(document.createTextNode(t + "\\n")); }
  var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
  window.__echo = [];
  ws.onopen = function () { state.textContent = "open"; };
  ws.onclose = function (e) { state.textContent = "closed (" + e.code + ")"; };
  ws.onerror = function () { state.textContent = "error"; };
  ws.onmessage = function (e) { window.__echo.push(e.data); line("< " + e.data); };
  document.getElementById("console").onsubmit = function (e) {
    e.preventDefault();
    var input = document.getElementById("text");
    if (ws.readyState === 1 && input.value) { line("> " + input.value); ws.send(input.value); input.value = ""; }
  };
})();
"""  # noqa: E501  (the served script, kept as written: its hash is the CSP)


def _hash(source: str) -> str:
    digest = base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


#: The page's policy: its own inline script and style (by hash) and a
#: WebSocket back to its own host and port; nothing else loads, no form
#: posts anywhere, no framing.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: The response headers of the page (the session's C{statusPageHeaders}).
STATUS_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gnetecho status</title>
<style>{style}</style></head>
<body>
<h1>gnetecho <small>WebSocket echo service</small></h1>
<table>
<tr><th>Version</th><td id="version">{version}</td></tr>
<tr><th>Uptime</th><td id="uptime" data-seconds="{uptimeSeconds}">{uptime}</td></tr>
<tr><th>Workers</th><td id="workers">{workers}</td></tr>
<tr><th>Connections</th><td id="connections">{connections}</td></tr>
<tr><th>Messages echoed</th><td id="messages">{messages}</td></tr>
<tr><th>Message rate</th><td><span id="rate">{rate:.1f}</span> msg/s</td></tr>
</table>
<h2>Echo console</h2>
<form id="console"><input id="text" autocomplete="off" placeholder="type and press Enter">
<button id="send" type="submit">Send</button></form>
<p>Socket: <span id="state">connecting</span></p>
<div id="log"></div>
<script>{script}</script>
</body></html>
"""


def renderStatus(info: StatusInfo) -> str:
    """The page for these numbers."""
    return _PAGE.format(
        version=escape(info.version),
        uptime=_duration(info.uptime),
        uptimeSeconds=int(info.uptime),
        workers=int(info.workers),
        connections=int(info.connections),
        messages=int(info.messages),
        rate=float(info.rate),
        style=_STYLE,
        script=_SCRIPT,
    )
