"""
Tests for gnet's address rules (spec §11): parsing C{scheme://address},
family selection, and the L{gnetcompat.Addr} objects.  No socket is bound.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import gnetcompat as gnet
from gnetcompat._addr import (
    _ipv6Available,
    fromTwisted,
    normalizeNetwork,
    ownsPath,
    parseProtoAddr,
    resolve,
    splitHostPort,
)
from gnetcompat.errors import (
    ErrInvalidNetworkAddress,
    ErrInvalidURL,
    ErrUnsupportedProtocol,
    GnetError,
)
from gnetcompat.interfaces import IAddr

#: The seven test-verified inputs of spec §11.1 (gnet's TestBadAddresses).
BAD = [
    ("tulip://howdy", ErrUnsupportedProtocol, None),
    ("howdy", ErrInvalidNetworkAddress, None),
    ("tcp://", ErrInvalidNetworkAddress, None),
    ("tcp://localhost:8080/foo", ErrInvalidNetworkAddress, None),
    ("unix://", ErrInvalidNetworkAddress, None),
    (":foo", ErrInvalidURL, "missing protocol scheme"),
    ("tcp://127.0.0.1\n", ErrInvalidURL, "invalid control character"),
]


class BadAddressTests(SynchronousTestCase):
    """gnet's TestBadAddresses: each bad input gives its listed error."""

    def test_parse(self) -> None:
        """C{parseProtoAddr} raises the listed error (with the URL error's text) for each input."""
        for text, exc, message in BAD:
            e = self.assertRaises(exc, parseProtoAddr, text)
            self.assertIsInstance(e, GnetError)
            if message:
                self.assertIn(message, str(e))

    def test_serveFails(self) -> None:
        """C{Serve} fails with the listed error and never calls C{OnBoot}."""
        booted: list[object] = []

        class H(gnet.BuiltinEventEngine):
            def OnBoot(self, eng: object) -> object:
                booted.append(eng)
                return gnet.Shutdown

        for text, exc, _ in BAD:
            self.failureResultOf(gnet.Serve(H(), text), exc)
        self.assertEqual(booted, [])

    def test_noAddress(self) -> None:
        """C{Serve} with an empty address list fails with L{ErrInvalidNetworkAddress}."""
        self.failureResultOf(gnet.Serve(gnet.BuiltinEventEngine(), []), ErrInvalidNetworkAddress)

    def test_unsupportedIsValueError(self) -> None:
        """Address errors are also C{ValueError}s, so generic code can catch them."""
        for text, _exc, _ in BAD:
            self.assertRaises(ValueError, parseProtoAddr, text)

    def test_nonString(self) -> None:
        """A non-string address raises L{ErrInvalidNetworkAddress}."""
        self.assertRaises(ErrInvalidNetworkAddress, parseProtoAddr, 9000)


#: the forms every address error lists (issue 18)
FORMS = (
    "tcp://:9000",
    "tcp://127.0.0.1:9000",
    "tcp6://[::1]:9000",
    "udp://:9000",
    "unix:///path/to.sock",
    "fd://N",
)


class AddressMessageTests(SynchronousTestCase):
    """
    Address errors keep gnet's classes and start with gnet's text, then
    echo the input (escaped, bounded) and show the accepted forms.
    """

    def assertExplains(self, text: str, exc: type[Exception], *hints: str) -> str:
        """C{parseProtoAddr(text)} raises C{exc}, whose text names it, the forms and C{hints}."""
        e = self.assertRaises(exc, parseProtoAddr, text)
        message = str(e)
        self.assertTrue(message.startswith(exc.message), message)  # type: ignore[attr-defined]
        self.assertIn(repr(text), message)
        for form in FORMS:
            self.assertIn(form, message)
        for hint in hints:
            self.assertIn(hint, message)
        return message

    def test_noScheme(self) -> None:
        """
        A bare port or C{host:port} (no C{scheme://}) says so and suggests
        the C{tcp://} form it probably meant.
        """
        self.assertExplains("9000", ErrInvalidNetworkAddress, "no scheme", "'tcp://:9000'")
        self.assertExplains(
            "127.0.0.1:9000", ErrInvalidNetworkAddress, "no scheme", "'tcp://127.0.0.1:9000'"
        )
        self.assertExplains("howdy", ErrInvalidNetworkAddress, "no scheme")

    def test_pathOrNothingAfterScheme(self) -> None:
        """A path after C{host:port}, or nothing after C{tcp://} or C{unix://}, says which."""
        self.assertExplains("tcp://h:p/", ErrInvalidNetworkAddress, "no path")
        self.assertExplains("tcp://localhost:8080/foo", ErrInvalidNetworkAddress, "no path")
        self.assertExplains("tcp://", ErrInvalidNetworkAddress, "no host:port after tcp://")
        self.assertExplains("unix://", ErrInvalidNetworkAddress, "no socket path")

    def test_unknownScheme(self) -> None:
        """An unknown scheme stays L{ErrUnsupportedProtocol}, naming the input."""
        self.assertExplains("tulip://howdy", ErrUnsupportedProtocol)

    def test_missingPortAtResolve(self) -> None:
        """C{tcp://9000} (a host, no port) fails when resolved, naming the input."""
        e = self.assertRaises(ErrInvalidNetworkAddress, resolve, parseProtoAddr("tcp://9000"))
        self.assertTrue(str(e).startswith("gnet: invalid network address 'tcp://9000'"), str(e))
        self.assertIn("missing port", str(e))
        self.assertIn("tcp://:9000", str(e))

    def test_hostileInputEscapedAndBounded(self) -> None:
        """
        Control characters, terminal escapes and bidirectional overrides
        in the input are escaped, and a long input is cut: the error text
        is safe to log.
        """
        for text, exc in [
            ("tcp://127.0.0.1\n\x1b[2J", ErrInvalidURL),
            ("\x1b]0;owned\x07" + "a" * 10000, ErrInvalidURL),
            ("h\u202e" + "b" * 10000, ErrInvalidNetworkAddress),
            ("tcp://h\u202e:1/x", ErrInvalidNetworkAddress),
        ]:
            message = str(self.assertRaises(exc, parseProtoAddr, text))
            self.assertTrue(message.isascii() and message.isprintable(), repr(message))
            self.assertLess(len(message), 400)
        message = str(self.assertRaises(ErrInvalidNetworkAddress, parseProtoAddr, 9000))
        self.assertIn("not a string", message)


class ParseTests(SynchronousTestCase):
    """The valid forms of spec §11.1."""

    def test_validForms(self) -> None:
        """Each usual form parses to its network and address text."""
        for text, network, address in [
            ("tcp://:9000", "tcp", ":9000"),
            ("tcp://127.0.0.1:9000", "tcp", "127.0.0.1:9000"),
            ("tcp4://0.0.0.0:9000", "tcp4", "0.0.0.0:9000"),
            ("tcp6://[::1]:9000", "tcp6", "[::1]:9000"),
            ("udp4://:9000", "udp4", ":9000"),
            ("udp://[ff02::3%lo]:9991", "udp", "[ff02::3%lo]:9991"),
            ("unix:///run/x.sock", "unix", "/run/x.sock"),
            ("unix://sock", "unix", "sock"),
            ("unix://a/../b//c.sock", "unix", "b/c.sock"),
            ("TCP://127.0.0.1:1", "tcp", "127.0.0.1:1"),
        ]:
            spec = parseProtoAddr(text)
            self.assertEqual((spec.network, spec.address, spec.text), (network, address, text))

    def test_streamAndNormalized(self) -> None:
        """tcp* and unix are streams, udp* are not; networks normalise to tcp/udp/unix."""
        self.assertTrue(parseProtoAddr("tcp6://[::1]:1").stream)
        self.assertTrue(parseProtoAddr("unix://x").stream)
        self.assertFalse(parseProtoAddr("udp4://:1").stream)
        self.assertEqual(parseProtoAddr("tcp6://[::1]:1").normalizedNetwork, "tcp")
        self.assertEqual(parseProtoAddr("udp4://:1").normalizedNetwork, "udp")
        for net, norm in [("tcp4", "tcp"), ("tcp6", "tcp"), ("udp6", "udp"), ("unix", "unix")]:
            self.assertEqual(normalizeNetwork(net), norm)

    def test_hostWithoutPort(self) -> None:
        """C{tcp://9000} parses but fails to resolve: missing port."""
        spec = parseProtoAddr("tcp://9000")
        e = self.assertRaises(ErrInvalidNetworkAddress, resolve, spec)
        self.assertIn("missing port", str(e))


class InheritedSocketTests(SynchronousTestCase):
    """
    gnetcompat's C{fd://N}: an inherited listening stream socket, its
    network and address read off the socket.
    """

    def listening(self, family: int, address: object) -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(address)
        s.listen(8)
        return s

    def test_tcpAndUnix(self) -> None:
        """IPv4, IPv6 and unix listeners give tcp4, tcp6 and unix specs."""
        v4 = self.listening(socket.AF_INET, ("127.0.0.1", 0))
        spec = parseProtoAddr(f"fd://{v4.fileno()}")
        self.assertEqual(
            (spec.network, spec.address, spec.fd, spec.stream),
            ("tcp4", f"127.0.0.1:{v4.getsockname()[1]}", v4.fileno(), True),
        )
        self.assertFalse(ownsPath(spec))
        if _ipv6Available():
            v6 = self.listening(socket.AF_INET6, ("::1", 0))
            spec = parseProtoAddr(f"fd://{v6.fileno()}")
            self.assertEqual((spec.network, spec.address), ("tcp6", f"[::1]:{v6.getsockname()[1]}"))
        path = self.mktemp()
        unix = self.listening(socket.AF_UNIX, path)
        spec = parseProtoAddr(f"fd://{unix.fileno()}")
        self.assertEqual(
            (spec.network, spec.address, spec.normalizedNetwork), ("unix", path, "unix")
        )
        self.assertFalse(ownsPath(spec))
        self.assertTrue(ownsPath(parseProtoAddr(f"unix://{path}")))

    def test_refused(self) -> None:
        """
        Not a number, not open, not a socket, not listening, a datagram
        socket: ErrInvalidNetworkAddress saying which.
        """
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        idle = socket.socket()
        self.addCleanup(idle.close)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(udp.close)
        udp.bind(("127.0.0.1", 0))
        closed = os.dup(r)
        os.close(closed)
        for text, message in [
            ("fd://x", "takes a number"),
            ("fd://", "takes a number"),
            (f"fd://{closed}", "not an open socket"),
            (f"fd://{r}", "not an open socket"),
            (f"fd://{idle.fileno()}", "not a listening stream socket"),
            (f"fd://{udp.fileno()}", "not a listening stream socket"),
        ]:
            e = self.assertRaises(ErrInvalidNetworkAddress, parseProtoAddr, text)
            self.assertIn(message, str(e), text)


class SplitHostPortTests(SynchronousTestCase):
    """Go's C{net.SplitHostPort} with port parsing."""

    def test_valid(self) -> None:
        """Hosts, bracketed IPv6, empty hosts and ports parse; an empty port is 0."""
        self.assertEqual(splitHostPort("127.0.0.1:80"), ("127.0.0.1", 80))
        self.assertEqual(splitHostPort("[::1]:443"), ("::1", 443))
        self.assertEqual(splitHostPort(":9000"), ("", 9000))
        self.assertEqual(splitHostPort("host:"), ("host", 0))

    def test_invalid(self) -> None:
        """
        Missing port, too many colons, a bad or out-of-range port raise
        L{ErrInvalidNetworkAddress}.
        """
        for text in ("abc", "::1:80", "[::1]80", "h:99999", "h:-1", "h:nosuchservice"):
            self.assertRaises(ErrInvalidNetworkAddress, splitHostPort, text)


class ResolveTests(SynchronousTestCase):
    """Family selection (spec §11.2)."""

    def test_ipv4(self) -> None:
        """An IPv4 literal or C{tcp4} with no host gives an IPv4 socket address."""
        self.assertEqual(
            resolve(parseProtoAddr("tcp://127.0.0.1:9")), (socket.AF_INET, ("127.0.0.1", 9), False)
        )
        self.assertEqual(
            resolve(parseProtoAddr("tcp4://:9")), (socket.AF_INET, ("0.0.0.0", 9), False)
        )
        self.assertEqual(resolve(parseProtoAddr("udp4://0.0.0.0:9"))[0], socket.AF_INET)

    def test_ipv6Literal(self) -> None:
        """IPv6 literals are v6-only."""
        family, addr, v6only = resolve(parseProtoAddr("tcp://[::1]:9"))
        self.assertEqual((family, addr[:2], v6only), (socket.AF_INET6, ("::1", 9), True))
        self.assertTrue(resolve(parseProtoAddr("tcp://[::]:9"))[2])

    def test_noHost(self) -> None:
        """No host: dual stack for tcp/udp, v6-only for tcp6 (when IPv6 exists)."""
        if not _ipv6Available():
            raise self.skipTest("no IPv6 here")
        self.assertEqual(resolve(parseProtoAddr("tcp://:9"))[0::2], (socket.AF_INET6, False))
        self.assertEqual(resolve(parseProtoAddr("udp://:9"))[0::2], (socket.AF_INET6, False))
        self.assertEqual(resolve(parseProtoAddr("tcp6://:9"))[0::2], (socket.AF_INET6, True))

    def test_familyMismatch(self) -> None:
        """An IPv4 address with tcp6 or an IPv6 address with tcp4 is refused."""
        self.assertRaises(ErrInvalidNetworkAddress, resolve, parseProtoAddr("tcp6://127.0.0.1:9"))
        self.assertRaises(ErrInvalidNetworkAddress, resolve, parseProtoAddr("tcp4://[::1]:9"))

    def test_hostName(self) -> None:
        """Host names are resolved, IPv4 first."""
        family, addr, _ = resolve(parseProtoAddr("tcp4://localhost:9"))
        self.assertEqual((family, addr), (socket.AF_INET, ("127.0.0.1", 9)))

    def test_unresolvable(self) -> None:
        """An unresolvable host name raises L{ErrInvalidNetworkAddress}."""
        self.assertRaises(
            ErrInvalidNetworkAddress, resolve, parseProtoAddr("tcp://no-such-host.invalid:9")
        )


class AddrTests(SynchronousTestCase):
    """L{gnetcompat.Addr}: Go's C{net.Addr}."""

    def test_text(self) -> None:
        """
        C{String()}/C{str()} give C{ip:port}, C{[ipv6]:port} or the path;
        C{Network()} the network.
        """
        self.assertEqual(gnet.Addr("tcp", "127.0.0.1", 80).String(), "127.0.0.1:80")
        self.assertEqual(str(gnet.Addr("udp", "::1", 53)), "[::1]:53")
        self.assertEqual(gnet.Addr("unix", "/tmp/s").String(), "/tmp/s")
        self.assertEqual(gnet.Addr("udp", "::1", 53).Network(), "udp")
        self.assertIn("127.0.0.1:80", repr(gnet.Addr("tcp", "127.0.0.1", 80)))

    def test_equality(self) -> None:
        """Addresses compare and hash by network, host and port."""
        a, b = gnet.Addr("tcp", "1.2.3.4", 5), gnet.Addr("tcp", "1.2.3.4", 5)
        self.assertEqual(a, b)
        self.assertEqual(len({a, b}), 1)
        self.assertNotEqual(a, gnet.Addr("udp", "1.2.3.4", 5))
        self.assertNotEqual(a, "1.2.3.4:5")

    def test_provides(self) -> None:
        """L{Addr} provides L{IAddr}."""
        self.assertTrue(verifyObject(IAddr, gnet.Addr("tcp", "1.2.3.4", 5)))

    def test_sockaddr(self) -> None:
        """C{sockaddr()} is what the socket module takes."""
        self.assertEqual(gnet.Addr("udp", "1.2.3.4", 5).sockaddr(), ("1.2.3.4", 5))
        self.assertEqual(gnet.Addr("unix", "/s").sockaddr(), "/s")

    def test_fromTwisted(self) -> None:
        """Twisted addresses convert; IPv4-mapped IPv6 peers read in dotted form."""
        self.assertEqual(
            fromTwisted(IPv4Address("TCP", "1.2.3.4", 5), "tcp"), gnet.Addr("tcp", "1.2.3.4", 5)
        )
        self.assertEqual(
            fromTwisted(IPv6Address("TCP", "::ffff:1.2.3.4", 5), "tcp").String(), "1.2.3.4:5"
        )
        self.assertEqual(fromTwisted(IPv6Address("TCP", "::1", 5), "tcp").String(), "[::1]:5")
        self.assertEqual(fromTwisted(UNIXAddress(b"/x.sock"), "unix"), gnet.Addr("unix", "/x.sock"))
        self.assertEqual(fromTwisted(UNIXAddress(None), "unix").String(), "")
        self.assertEqual(
            fromTwisted(("::ffff:10.0.0.1", 7, 0, 0), "udp"), gnet.Addr("udp", "10.0.0.1", 7)
        )
        self.assertIsNone(fromTwisted(None, "tcp"))
