# -*- test-case-name: tests.test_gnet_examples -*-
"""
Command lines as Go's C{flag} package reads them, for the ported
gnet-examples: C{-port 9000}, C{--port=9000}, C{--multicore=true},
C{--multicore} (true), C{--tick 100ms}.

Go programs declare their flags with C{flag.IntVar(&port, "port", 9000,
"server port")}; a port declares the same with L{addInt} (and L{addBool},
L{addString}, L{addDuration}) on an L{newParser} and reads them with
C{parser.parse_args(argv)}.  Each flag is accepted with one dash or two, with
its value after C{=} or as the next argument, and never abbreviated (Go's
rules).  Booleans take Go's C{strconv.ParseBool} words (C{true}, C{false},
C{1}, C{0}, C{t}, C{f}, C{TRUE}, C{False}...); a bare C{--multicore} means
true.  Durations take Go's syntax (C{100ms}, C{1s}, C{1m30s}, C{250us}) or
plain seconds (C{0.1}).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = [
    "addBool",
    "addDuration",
    "addInt",
    "addString",
    "newParser",
    "parseBool",
    "parseDuration",
]

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parseBool(text: str) -> bool:
    """
    Go's C{strconv.ParseBool}: C{1 t T TRUE true True} or
    C{0 f F FALSE false False}.

    @raise argparse.ArgumentTypeError: any other text.
    """
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r} (use true or false)")


def parseDuration(text: str) -> float:
    """
    A Go duration (C{time.ParseDuration}: C{300ms}, C{1.5h}, C{2h45m},
    C{-1s}; units C{ns us ms s m h}) or a plain number of seconds, as float
    seconds.

    @raise argparse.ArgumentTypeError: neither.
    """
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    total, pos = 0.0, 0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not s or pos != len(s):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (use Go's syntax such as 100ms or 1s, or seconds)"
        )
    return sign * total


def newParser(description: str) -> argparse.ArgumentParser:
    """An argument parser that, like Go's C{flag}, never takes abbreviations."""
    return argparse.ArgumentParser(description=description, allow_abbrev=False)


def _names(name: str) -> tuple[str, str]:
    return f"-{name}", f"--{name}"


def addInt(parser: argparse.ArgumentParser, name: str, default: int, usage: str) -> None:
    """Go's C{flag.IntVar(&v, name, default, usage)}."""
    parser.add_argument(*_names(name), dest=name, type=int, default=default, help=usage)


def addString(parser: argparse.ArgumentParser, name: str, default: str, usage: str) -> None:
    """Go's C{flag.StringVar(&v, name, default, usage)}."""
    parser.add_argument(*_names(name), dest=name, default=default, help=usage)


def addBool(parser: argparse.ArgumentParser, name: str, default: bool, usage: str) -> None:
    """
    Go's C{flag.BoolVar(&v, name, default, usage)}: C{--name} alone is
    true, C{--name=false} (or C{--name false}) sets it.
    """
    parser.add_argument(
        *_names(name),
        dest=name,
        type=parseBool,
        nargs="?",
        const=True,
        default=default,
        metavar="true|false",
        help=f"{usage} (default {str(default).lower()})",
    )


def addDuration(
    parser: argparse.ArgumentParser, name: str, default: float, usage: str, **kw: Any
) -> None:
    """Go's C{flag.DurationVar(&v, name, default, usage)}, in float seconds."""
    parser.add_argument(
        *_names(name),
        dest=name,
        type=parseDuration,
        default=default,
        metavar="DURATION",
        help=f"{usage} (default {default:g}s)",
        **kw,
    )
