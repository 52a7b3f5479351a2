# -*- test-case-name: tests.test_origin,tests.test_addr -*-
"""
Text from outside for a log line or an error message: bounded in length
and with every control or non-ASCII character backslash-escaped, so that
hostile input (an address, a handler's return value, an HTTP header) can
never put raw control bytes or a terminal escape in a log.
"""

from __future__ import annotations

import re

__all__ = ["printable", "shown"]

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str, limit: int = 200) -> str:
    """
    C{text} for a log line or an HTTP status line: at most C{limit}
    characters of it, everything outside printable ASCII backslash-escaped
    (C{\\x1b}, C{\\u2028}), C{...} when cut.
    """
    cut = len(text) > limit
    out = _UNPRINTABLE.sub(
        lambda m: m.group().encode("unicode_escape").decode("ascii"), text[:limit]
    )
    return out + "..." if cut else out


def shown(value: object, limit: int = 120) -> str:
    """
    C{repr(value)} through L{printable}: how an error message shows a value
    it did not expect (a str in quotes, bytes as C{b'...'}), whatever its
    own C{__repr__} returns or raises.
    """
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object (its repr failed)>"
    if not isinstance(text, str):  # a __repr__ returning something else
        text = f"<{type(value).__name__} object>"
    return printable(text, limit)
