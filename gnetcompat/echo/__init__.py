"""
The gnet WebSocket echo service (C{twistd -n gnetecho}): an application
on gnetcompat, using the library through its public names only.

  - L{server}: the handler, L{WebSocketEchoServer}
  - L{metrics}: engine-wide statistics and the Prometheus endpoint
  - L{status}: the HTML status page (served through the WebSocket layer's
    status-page hook, L{gnetcompat.websocket.WebSocketOptions.statusPage})
  - L{limits}: process limits (the open-file limit)
  - L{service}: the process-level services (open-file limit at start,
    SIGHUP, TLS reload, statistics clean-up)

L{gnetcompat.tap} turns the command line into this service tree.
"""

from gnetcompat.echo.server import WebSocketEchoServer, checkNvx
from gnetcompat.echo.service import EchoService, TLSReloadService

__all__ = ["EchoService", "TLSReloadService", "WebSocketEchoServer", "checkNvx"]
