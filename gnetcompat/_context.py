# -*- test-case-name: tests.test_client -*-
"""
gnet's contexts: L{Context} (a stand-in for Go's C{context.Context}), the
helpers that carry registration arguments in one (L{NewContext},
L{NewNetConnContext}, L{NewNetAddrContext} and their C{From*}), and
L{RegisteredResult}.  Pure definitions, at the bottom of the layers: the
engine, its loop and the client all take contexts.  Public through
L{gnetcompat.client} and L{gnetcompat}.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

__all__ = [
    "Context",
    "FromContext",
    "FromNetAddrContext",
    "FromNetConnContext",
    "NewContext",
    "NewNetAddrContext",
    "NewNetConnContext",
    "RegisteredResult",
    "checkContext",
    "contextTimeout",
]

# -- contexts ---------------------------------------------------------------


class _Key:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<context key {self.name}>"


_NOKEY = _Key("root")
_VALUE = _Key("gnet value")
_NETCONN = _Key("net.Conn")
_NETADDR = _Key("net.Addr")
_DEADLINE = _Key("deadline")


class Context:
    """
    A tiny immutable stand-in for Go's C{context.Context} values: each
    C{withValue} returns a new context whose lookups see the new value first
    and the parent's values otherwise.  C{Context()} is the empty
    (background) context.  Build gnet contexts with L{NewContext},
    L{NewNetConnContext} and L{NewNetAddrContext}.
    """

    __slots__ = ("_key", "_parent", "_value")
    _parent: Context | None
    _key: Any
    _value: Any

    def __init__(self, parent: Context | None = None, key: Any = _NOKEY, value: Any = None) -> None:
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Context is immutable; use withValue()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Context is immutable")

    def withValue(self, key: Any, value: Any) -> Context:
        """A child context where C{key} maps to C{value}."""
        return Context(self, key, value)

    def withDeadline(self, when: float) -> Context:
        """
        A child context that ends at C{when} (a C{time.time()} timestamp, or
        an aware C{datetime}), or at the parent's deadline if that is sooner
        (Go's C{context.WithDeadline}).  C{Engine.Stop} and the deprecated
        C{Stop} stop waiting then, with C{TimeoutError}.
        """
        if hasattr(when, "timestamp"):
            when = when.timestamp()
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            raise TypeError(f"when: expected a time.time() timestamp, got {when!r}")
        parent = self.deadline()
        if parent is not None and parent < when:
            when = parent
        return Context(self, _DEADLINE, float(when))

    def withTimeout(self, seconds: float) -> Context:
        """C{withDeadline(time.time() + seconds)} (Go's C{context.WithTimeout})."""
        if hasattr(seconds, "total_seconds"):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds: expected a number of seconds, got {seconds!r}")
        return self.withDeadline(time.time() + seconds)

    def deadline(self) -> float | None:
        """When this context ends (a C{time.time()} timestamp), or C{None}."""
        return self.value(_DEADLINE)

    def value(self, key: Any, default: Any = None) -> Any:
        """The nearest value stored under C{key}, or C{default}."""
        c: Context | None = self
        while c is not None:
            # a Context walking its own parent chain (same class)
            if c._key is not _NOKEY and (c._key is key or c._key == key):  # noqa: SLF001  (own chain)
                return c._value  # noqa: SLF001  (own chain)
            c = c._parent  # noqa: SLF001  (own chain)
        return default

    def __repr__(self) -> str:
        items = []
        c: Context | None = self
        while c is not None:
            if c._key is not _NOKEY:  # noqa: SLF001  (own chain)
                items.append(f"{c._key!r}={c._value!r}")  # noqa: SLF001  (own chain)
            c = c._parent  # noqa: SLF001  (own chain)
        return f"Context({', '.join(items)})"


def _ctx(ctx: Context | None, name: str = "ctx") -> Context:
    if ctx is None:
        return Context()
    if not isinstance(ctx, Context):
        raise TypeError(f"{name}: expected a gnetcompat.Context or None, got {ctx!r}")
    return ctx


def checkContext(ctx: Any, where: str) -> Context | None:
    """
    C{ctx} if it is C{None} or a L{Context}; otherwise a C{TypeError}
    naming the argument (so a call in another order than gnet's fails
    loudly instead of being misread).
    """
    if ctx is None or isinstance(ctx, Context):
        return ctx
    raise TypeError(
        f"{where}: ctx (the first argument, as in gnet) must be None or a "
        f"gnetcompat.Context, got {ctx!r}"
    )


def contextTimeout(ctx: Context | None, timeout: float | None) -> float | None:
    """
    Seconds left before C{ctx}'s deadline or C{timeout}, whichever is
    sooner (C{None}: wait for ever; never negative).
    """
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout: expected a number of seconds, got {timeout!r}")
    left: float | None = timeout
    when = ctx.deadline() if ctx is not None else None
    if when is not None:
        rest = when - time.time()
        left = rest if left is None else min(left, rest)
    return None if left is None else max(left, 0.0)


def NewContext(ctx: Context | None, v: Any) -> Context:
    """
    C{ctx} (or an empty context) carrying C{v}: the value that becomes the
    C{Context()} and C{SafeContext()} of a connection created by
    C{EventLoop.Register/Enroll} or C{Engine.Register}.
    """
    return _ctx(ctx).withValue(_VALUE, v)


def FromContext(ctx: Context | None) -> Any:
    """The value set with L{NewContext}, or C{None}."""
    if ctx is None:
        return None
    return _ctx(ctx).value(_VALUE)


def NewNetConnContext(ctx: Context | None, c: Any) -> Context:
    """C{ctx} carrying a connected socket for C{Engine.Register} to adopt."""
    return _ctx(ctx).withValue(_NETCONN, c)


def FromNetConnContext(ctx: Context | None) -> tuple[Any, bool]:
    """C{(socket, True)} when C{ctx} carries one, else C{(None, False)}."""
    c = None if ctx is None else _ctx(ctx).value(_NETCONN)
    return c, c is not None


def NewNetAddrContext(ctx: Context | None, a: Any) -> Context:
    """C{ctx} carrying an address for C{Engine.Register} to dial."""
    return _ctx(ctx).withValue(_NETADDR, a)


def FromNetAddrContext(ctx: Context | None) -> tuple[Any, bool]:
    """C{(address, True)} when C{ctx} carries one, else C{(None, False)}."""
    a = None if ctx is None else _ctx(ctx).value(_NETADDR)
    return a, a is not None


class RegisteredResult(NamedTuple):
    """What a registration Deferred fires with: the opened C{Conn} or the C{Err}."""

    Conn: Any
    Err: BaseException | None
