"""
Tests for L{gnetcompat._endpoint}: the one parser of Twisted endpoint
descriptions, which splits exactly as Twisted's own does, maps arguments as
Twisted's endpoint parsers take them, and is what C{twistd gnetecho
--port/--listen}, C{--metrics} and L{gnetcompat.TLSConfig.fromDescription}
all use.
"""

from __future__ import annotations

import ast
import inspect
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import endpoints
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat import tap
from gnetcompat._endpoint import ARGUMENTS
from gnetcompat.echo.metrics import metricsEndpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: characters that matter to the tokenizer, and a few that do not
_ALPHABET = st.sampled_from(list(":=\\ab0é/ "))


class SplitTests(SynchronousTestCase):
    """L{gnetcompat.parseEndpoint} splits as Twisted's C{serverFromString} does."""

    @settings(max_examples=300, deadline=None)
    @given(st.text(_ALPHABET, min_size=1, max_size=24))
    def test_asTwistedSplits(self, description: str) -> None:
        """
        For any description, the kind, positional and keyword arguments
        are Twisted's; where Twisted's tokenizer fails (a trailing lone
        backslash) or finds no type, a C{ValueError}.
        """
        try:
            args, kwargs = endpoints._parse(description)
        except (RuntimeError, UnicodeError):  # a lone backslash at the end, a non-ASCII keyword
            self.assertRaises(ValueError, gnet.parseEndpoint, description)
            return
        if not args or not args[0]:
            self.assertRaises(ValueError, gnet.parseEndpoint, description)
            return
        d = gnet.parseEndpoint(description)
        self.assertEqual((d.kind, list(d.args), dict(d.kwargs)), (args[0], args[1:], kwargs))
        self.assertEqual(d.text, description)

    def test_escapes(self) -> None:
        """Backslash escapes are undone in positional and keyword values alike."""
        d = gnet.parseEndpoint(r"unix:/run/a\:b.sock:mode=0660")
        self.assertEqual(
            (d.kind, d.args, dict(d.kwargs)), ("unix", ("/run/a:b.sock",), {"mode": "0660"})
        )
        d = gnet.parseEndpoint(r"tcp6:9080:interface=\:\:1")
        self.assertEqual(d.named(), {"port": "9080", "interface": "::1"})

    def test_malformed(self) -> None:
        """An empty description, one without a type, a lone trailing backslash: C{ValueError}."""
        for bad, needle in [
            ("", "no endpoint type"),
            (":9000", "no endpoint type"),
            ("port=9000", "no endpoint type"),
            ("tcp:9000\\", "lone backslash"),
            ("tcp:9000:\u00e9=1", "argument names must be ASCII"),
        ]:
            e = self.assertRaises(ValueError, gnet.parseEndpoint, bad)
            self.assertIn(needle, str(e))


class NamedTests(SynchronousTestCase):
    """Arguments by name, in the positional order of Twisted's endpoint parsers."""

    def test_ordersAreTwisteds(self) -> None:
        """
        L{ARGUMENTS} lists the parameters of Twisted's C{tcp}, C{tcp6},
        C{ssl} and C{unix} server parsers in their order (a canary: a
        Twisted that reorders them changes what a positional argument means).
        """

        def params(f: object) -> tuple[str, ...]:
            names = list(inspect.signature(f).parameters)  # type: ignore[arg-type]
            return tuple(n for n in names if n not in ("self", "factory", "reactor"))

        self.assertEqual(ARGUMENTS["tcp"], params(endpoints._parseTCP))
        self.assertEqual(ARGUMENTS["ssl"], params(endpoints._parseSSL))
        self.assertEqual(ARGUMENTS["unix"], params(endpoints._parseUNIX))
        self.assertEqual(ARGUMENTS["tcp6"], params(endpoints._TCP6ServerParser._parseServer))

    def test_positionalAndKeywords(self) -> None:
        """Positional arguments take the names in order, keywords their own."""
        d = gnet.parseEndpoint("tcp:9100:0.0.0.0:backlog=5")
        self.assertEqual(d.named(), {"port": "9100", "interface": "0.0.0.0", "backlog": "5"})
        self.assertEqual(gnet.parseEndpoint("tcp:port=0").named(), {"port": "0"})
        self.assertEqual(gnet.parseEndpoint("TCP6:1:2").named(), {"port": "1", "backlog": "2"})
        self.assertEqual(
            gnet.parseEndpoint("unix:/s:0600").named(("address", "mode")),
            {"address": "/s", "mode": "0600"},
        )

    def test_refused(self) -> None:
        """Surplus, unknown and repeated arguments are refused, naming the description."""
        for text, names, needle in [
            ("tcp:1:h:2:extra", None, "too many arguments in 'tcp:1:h:2:extra'"),
            ("tcp:1:foo=bar", None, "unsupported argument 'foo' in 'tcp:1:foo=bar'"),
            ("tcp:1:port=2", None, "port given twice"),
            ("unix:/s:backlog=5", ("address", "mode"), "(unix: takes address, mode)"),
            ("bogus:1", None, "too many arguments"),
        ]:
            e = self.assertRaises(ValueError, gnet.parseEndpoint(text).named, names)
            self.assertIn(needle, str(e))


class OneParserTests(SynchronousTestCase):
    """
    C{--port}/C{--listen}, C{--metrics} and C{TLSConfig.fromDescription}
    read descriptions the same way: each used to split them itself, with
    different rules (positional arguments were refused by one, ignored by
    another; a trailing backslash crashed one).
    """

    def test_positionalInterface(self) -> None:
        """
        A positional interface (Twisted's C{tcp:PORT:INTERFACE}) is the
        interface for all three: C{--metrics tcp:9100:0.0.0.0} binds all
        interfaces with the warning (it used to get C{:interface=127.0.0.1}
        appended, which Twisted then refused), C{--listen tcp:9300:0.0.0.0}
        too (it was refused), as an C{ssl:} listener's does.
        """
        description, warning = metricsEndpoint("tcp:9100:0.0.0.0")
        self.assertEqual(description, "tcp:9100:0.0.0.0")
        assert warning is not None
        self.assertIn("0.0.0.0", warning)
        self.assertEqual(metricsEndpoint("tcp:9100:127.0.0.1"), ("tcp:9100:127.0.0.1", None))
        self.assertEqual(tap.parseListen("tcp:9300:0.0.0.0"), ("tcp://0.0.0.0:9300", None))
        addr, _ = gnet.TLSConfig.fromDescription("ssl:9443:k.pem:c.pem:TLS_METHOD:0.0.0.0")
        self.assertEqual(addr, "tcp://0.0.0.0:9443")

    def test_sameRefusals(self) -> None:
        """An unknown argument or a lone trailing backslash is a C{ValueError} for all three."""
        for parse, kind in [
            (tap.parseListen, "tcp"),
            (metricsEndpoint, "tcp"),
            (gnet.TLSConfig.fromDescription, "ssl"),
        ]:
            e = self.assertRaises(ValueError, parse, f"{kind}:9000:bogus=1")
            self.assertIn("unsupported argument 'bogus'", str(e))
            e = self.assertRaises(ValueError, parse, f"{kind}:9000\\")
            self.assertIn("lone backslash", str(e))
        self.assertEqual(tap.unixMode("unix:/run/s.sock:0660"), 0o660)

    def test_noPrivateParserElsewhere(self) -> None:
        """
        Twisted's private C{endpoints._parse} is used only in
        L{gnetcompat._twistedcompat} (which pins it): no other module of the
        library or the service names it.
        """
        users = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "gnetcompat")):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
                if any(
                    isinstance(node, ast.Attribute) and node.attr in ("_parse", "_tokenize")
                    for node in ast.walk(tree)
                ):
                    users.append(os.path.relpath(path, ROOT))
        self.assertEqual(users, [os.path.join("gnetcompat", "_twistedcompat.py")])
