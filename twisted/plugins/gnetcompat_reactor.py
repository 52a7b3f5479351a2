# -*- test-case-name: tests.test_reactor -*-
from twisted.application.reactors import Reactor

gnet = Reactor(
    "gnet", "gnetcompat.reactor", "epoll without per-event logging context (gnetcompat; Linux)"
)
