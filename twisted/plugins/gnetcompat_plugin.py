# -*- test-case-name: tests.test_tap -*-
from twisted.application.service import ServiceMaker

gnetecho = ServiceMaker(
    "gnetecho",
    "gnetcompat.tap",
    "gnet's WebSocket echo server on gnetcompat (Autobahn)",
    "gnetecho",
)
