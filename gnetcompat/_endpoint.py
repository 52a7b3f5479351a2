# -*- test-case-name: tests.test_endpoint -*-
"""
Twisted endpoint descriptions (C{tcp:9080:interface=\\:\\:1},
C{ssl:443:privateKey=key.pem}, C{unix:/run/echo.sock:mode=660}), split the
way Twisted's C{serverFromString} splits them: the one parser behind
C{twistd gnetecho --port}/C{--listen} (L{gnetcompat.tap}), C{--metrics}
(L{gnetcompat.echo.metrics}) and L{gnetcompat.TLSConfig.fromDescription}.

Twisted has no public parser: the splitting is its private
C{endpoints._parse}, reached only through
L{gnetcompat._twistedcompat.twistedParse} (pinned by a canary).  This module
adds what every caller needs on top: a malformed description (a trailing
backslash, which makes Twisted's tokenizer raise C{RuntimeError}, or a
keyword that is not ASCII) is a C{ValueError} saying so, and
L{EndpointDescription.named} maps positional and keyword arguments onto
the parameters of Twisted's endpoint parsers, in their positional order
(L{ARGUMENTS}), refusing unknown, repeated and surplus arguments with a
message that names the description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._twistedcompat import twistedParse

__all__ = ["ARGUMENTS", "EndpointDescription", "parseEndpoint"]

#: the parameters of Twisted's server endpoint parsers, in their positional
#: order (C{endpoints._parseTCP}, C{_TCP6ServerParser}, C{_parseSSL},
#: C{_parseUNIX})
ARGUMENTS: Mapping[str, tuple[str, ...]] = {
    "tcp": ("port", "interface", "backlog"),
    "tcp6": ("port", "backlog", "interface"),
    "ssl": (
        "port",
        "privateKey",
        "certKey",
        "sslmethod",
        "interface",
        "backlog",
        "extraCertChain",
        "dhParameters",
    ),
    "unix": ("address", "mode", "backlog", "lockfile"),
}


@dataclass(frozen=True)
class EndpointDescription:
    """
    One endpoint description, split: C{tcp6:9080:interface=\\:\\:1} is
    C{kind="tcp6"}, C{args=("9080",)}, C{kwargs={"interface": "::1"}}
    (escapes undone).

    @ivar text: the description as given.
    @ivar kind: the endpoint type, the first field (C{"tcp"}, C{"ssl"}...).
    @ivar args: the positional arguments after it.
    @ivar kwargs: the C{key=value} arguments (the last one wins when a key
        repeats, as in Twisted).
    """

    text: str
    kind: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] = field(default_factory=dict)

    def named(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """
        The arguments by parameter name: positional ones take C{names} in
        order (as Twisted's parser functions take them), keyword ones their
        own name.  Parameters not given are absent.

        @param names: the parameters accepted, in positional order (default:
            all of L{ARGUMENTS} for this kind, looked up in lower case); a
            caller that takes fewer gives a prefix of them.
        @raise ValueError: more positional arguments than C{names}, a keyword
            not among them, or a parameter given both ways.
        """
        if names is None:
            names = ARGUMENTS.get(self.kind.lower(), ())
        if len(self.args) > len(names):
            raise ValueError(f"too many arguments in {self.text!r}")
        values = dict(zip(names, self.args, strict=False))  # fewer is normal
        for key, value in self.kwargs.items():
            if key not in names:
                raise ValueError(
                    f"unsupported argument {key!r} in {self.text!r} ({self.kind}: takes "
                    + ", ".join(names)
                    + ")"
                )
            if key in values:
                raise ValueError(f"{key} given twice in {self.text!r}")
            values[key] = value
        return values


def parseEndpoint(description: str) -> EndpointDescription:
    """
    Split a Twisted endpoint description as Twisted's own parser does
    (C{:} between arguments, C{key=value}, C{\\} escapes the next
    character).

    @raise ValueError: an empty description, one ending in a lone
        backslash, or a keyword that is not ASCII.
    """
    try:
        args, kwargs = twistedParse(description)
    except RuntimeError:  # the tokenizer ran past a trailing backslash
        raise ValueError(f"{description!r} ends with a lone backslash") from None
    except UnicodeError:  # Twisted makes keywords native (ASCII) strings
        raise ValueError(f"{description!r}: argument names must be ASCII") from None
    if not args or not args[0]:
        raise ValueError(f"{description!r}: no endpoint type (such as tcp: or ssl:)")
    return EndpointDescription(description, args[0], tuple(args[1:]), kwargs)
