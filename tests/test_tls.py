"""
Native TLS (L{gnetcompat._tls}): settings and their errors, the Twisted
internals it relies on (canaries), and real peers over loopback with
certificates generated at test time (L{tests._tlscerts}): the
C{websockets} client over C{wss://}, Python's C{ssl} module, the gnet
C{Client}, multicore workers, certificate reload, and C{twistd gnetecho}.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat import _tls
from gnetcompat._protocol import GnetFactory
from gnetcompat._twistedcompat import rawTransport
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.errors import ErrInvalidOption
from gnetcompat.options import loadOptions
from gnetcompat.tap import Options as TapOptions
from gnetcompat.testing import HandlerDriver
from gnetcompat.websocket import WebSocketOptions

from ._procs import freePort, spawnTwistd
from ._tlscerts import Certs, certsFor, makeRsaServer, peerCN, reissueServer
from .mc_handlers import PidEcho

IO_TIMEOUT = 10.0
#: the descriptor through which only twistd (not its workers) sees the certificates
PARENT_ONLY_FD = 50


async def poll(check: Any, what: str, timeout: float = 15.0) -> Any:
    """Wait (bounded) until C{check()} is truthy (it may return a Deferred or a coroutine)."""
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Deferred) or inspect.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.05, lambda: None)


def tlsConnect(port: int, ca: str, host: str = "localhost", **kw: Any) -> ssl.SSLSocket:
    """A blocking TLS client socket to 127.0.0.1:C{port} trusting C{ca}."""
    ctx = ssl.create_default_context(cafile=ca)
    alpn = kw.pop("alpn", None)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if "cert" in kw:
        ctx.load_cert_chain(kw.pop("cert"), kw.pop("key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname=host, **kw)


def workerPidsAndNames(port: int, certs: Certs, n: int) -> list[tuple[int, str]]:
    """
    (Thread) C{n} TLS connections open together to a L{PidEcho} engine:
    each one's worker pid and the server certificate's CN.
    """
    out = []
    socks = [tlsConnect(port, certs.caCert) for _ in range(n)]
    for s in socks:
        s.sendall(b"pid\n")
        out.append((int(readLine(s)), peerCN(s.getpeercert(True))))
    for s in socks:
        s.close()
    return out


def wssEcho(url: str, certs: Certs, text: str) -> tuple[str, str]:
    """(Thread) echo C{text} over one wss:// session: (the reply, the server certificate's CN)."""
    from websockets.sync.client import connect

    with connect(url, ssl=certs.clientContext(), open_timeout=IO_TIMEOUT, close_timeout=3) as ws:
        ws.send(text)
        reply = ws.recv(timeout=IO_TIMEOUT)
        der = ws.socket.getpeercert(True)
    return str(reply), peerCN(der)


def readLine(s: Any) -> bytes:
    """Read one line from a blocking socket (bounded by its timeout)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


# -- settings, errors, canaries --------------------------------------------------


class TwistedInternalsCanaryTests(SynchronousTestCase):
    """
    The TLS protocol's plaintext buffer, which L{gnetcompat._twistedcompat}
    reads for a TLS L{Conn} (the other canaries: tests.test_twistedcompat).
    """

    def test_appSendBuffer(self) -> None:
        """
        Twisted's TLS protocol still keeps plaintext written before the
        handshake in C{_appSendBuffer} (a list of bytes), and
        L{Conn.OutboundBuffered} counts it: a Conn over a TLS transport
        whose handshake has not happened reports the plaintext it wrote.
        (Before this module, C{OutboundBuffered} returned 0 here.)
        """
        from twisted.internet.protocol import Protocol
        from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

        certs = certsFor(self)
        config = gnet.TLSConfig(certs.serverCert, certs.serverKey)
        factory = TLSMemoryBIOFactory(config.creator(), False, None)
        proto = TLSMemoryBIOProtocol(factory, Protocol())
        proto.makeConnection(StringTransport())
        self.assertIsInstance(proto._appSendBuffer, list)
        eng = gnet.Engine(PidEcho(), [])
        conn = gnet.Conn(eng, proto)
        conn.Write(b"x" * 1000)
        self.assertEqual(proto._appSendBuffer, [b"x" * 1000])
        self.assertEqual(conn.OutboundBuffered(), 1000)
        self.assertIsNone(conn._sock)  # never the direct-send path under TLS


class DescriptionTests(SynchronousTestCase):
    """C{ssl:} endpoint descriptions, as Twisted's C{serverFromString} reads them."""

    def test_keywords(self) -> None:
        """Every key Twisted's ssl: parser takes maps to the config; the address is loopback."""
        addr, cfg = gnet.TLSConfig.fromDescription(
            r"ssl:9443:privateKey=/k\:ey.pem:certKey=/c.pem:extraCertChain=/ch.pem"
            ":dhParameters=/dh.pem:interface=0.0.0.0:backlog=10",
            alpn=["http/1.1"],
        )
        self.assertEqual(addr, "tcp://0.0.0.0:9443")
        self.assertEqual(
            (cfg.certFile, cfg.keyFile, cfg.extraCertChain, cfg.dhParameters, tuple(cfg.alpn)),
            ("/c.pem", "/k:ey.pem", "/ch.pem", "/dh.pem", ("http/1.1",)),
        )

    def test_defaultsAndPositional(self) -> None:
        """
        As in Twisted: privateKey defaults to server.pem, certKey to
        privateKey; positional arguments follow Twisted's order; the
        interface defaults to 127.0.0.1 (gnetecho's loopback default), IPv6
        hosts are bracketed.
        """
        addr, cfg = gnet.TLSConfig.fromDescription("ssl:443")
        self.assertEqual(
            (addr, cfg.certFile, cfg.keyFile), ("tcp://127.0.0.1:443", "server.pem", "server.pem")
        )
        addr, cfg = gnet.TLSConfig.fromDescription(r"ssl:443:k.pem:c.pem:interface=\:\:1")
        self.assertEqual((addr, cfg.certFile, cfg.keyFile), ("tcp://[::1]:443", "c.pem", "k.pem"))

    def test_sslmethod(self) -> None:
        """TLS 1.2 stays the minimum: old methods are refused, TLSv1_2_METHOD pins 1.2."""
        _, cfg = gnet.TLSConfig.fromDescription("ssl:1:sslmethod=TLSv1_2_METHOD")
        self.assertEqual((cfg.minimumVersion, cfg.maximumVersion), ("1.2", "1.2"))
        for bad in ("SSLv3_METHOD", "TLSv1_METHOD", "TLSv1_1_METHOD", "nonsense"):
            e = self.assertRaises(
                ValueError, gnet.TLSConfig.fromDescription, f"ssl:1:sslmethod={bad}"
            )
            self.assertIn("TLS 1.2 is the minimum", str(e))

    def test_hostile(self) -> None:
        """Unknown keys, bad ports and backlogs, and extra arguments are refused by name."""
        for text, needle in [
            ("ssl:9443:privateKey=k:bogus=1", "unsupported argument 'bogus'"),
            ("ssl:99999", "bad port"),
            ("ssl:x", "bad port"),
            ("ssl:1:backlog=-1", "bad backlog"),
            ("ssl:1:a:b:c:d:e:f:g:h:i", "too many arguments"),
            ("ssl:1:k.pem:privateKey=k.pem", "privateKey given twice"),
        ]:
            e = self.assertRaises(ValueError, gnet.TLSConfig.fromDescription, text)
            self.assertIn(needle, str(e))

    def test_trailingBackslash(self) -> None:
        """
        A description ending in a lone backslash is a C{ValueError} naming
        it (Twisted's tokenizer raised C{RuntimeError} through
        C{fromDescription}, and C{twistd gnetecho --listen} crashed with a
        traceback instead of a usage error).
        """
        e = self.assertRaises(ValueError, gnet.TLSConfig.fromDescription, "ssl:9443\\")
        self.assertIn("lone backslash", str(e))
        e = self.assertRaises(usage.UsageError, TapOptions().parseOptions, ["--listen", "ssl:1\\"])
        self.assertIn("--listen", str(e))


class SettingErrorTests(SynchronousTestCase):
    """Bad files and settings fail at start, naming the file or setting."""

    def setUp(self) -> None:
        self.certs = certsFor(self)

    def check(self, needle: str, *args: Any, **kw: Any) -> None:
        e = self.assertRaises(ErrInvalidOption, gnet.TLSConfig(*args, **kw).check)
        self.assertIn(needle, str(e))

    def test_files(self) -> None:
        """Missing, non-PEM, oversized files and a key of another certificate."""
        c = self.certs
        missing = os.path.join(c.directory, "nope.pem")
        self.check(f"certificate file {missing!r}: cannot read it", missing, c.serverKey)
        self.check(f"private key file {missing!r}: cannot read it", c.serverCert, missing)
        self.check("no PEM certificate in it", c.serverKey, c.serverKey)
        self.check("no PEM private key in it", c.serverCert, c.serverCert)
        self.check(
            f"private key file {c.clientKey!r} does not match the certificate in {c.serverCert!r}",
            c.serverCert,
            c.clientKey,
        )
        big = os.path.join(c.directory, "big.pem")
        with open(big, "wb") as f:
            f.write(b"A" * (_tls.MAX_PEM_FILE + 1))
        self.check("not a PEM file", big, c.serverKey)
        self.check("extraCertChain file", c.serverCert, c.serverKey, extraCertChain=c.serverKey)
        self.check("clientCA file", c.serverCert, c.serverKey, clientCA=missing)

    def test_notRegularFiles(self) -> None:
        """
        A FIFO, a character device (C{/dev/zero}) and a directory in place
        of a certificate or key are refused at once, naming the kind of
        file: the FIFO is opened without waiting for a writer (it used to
        block the reactor for ever, on C{SIGHUP} too), the device without
        reading a byte.  (A watchdog timer turns a blocking open into a
        failure instead of a hung test run.)
        """
        c = self.certs
        fifo = os.path.join(c.directory, "cert.fifo")
        os.mkfifo(fifo)

        def watchdog(signum: int, frame: Any) -> None:
            raise TimeoutError("reading the TLS files blocked")

        previous = signal.signal(signal.SIGALRM, watchdog)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_REAL, 10)
        self.check(f"certificate file {fifo!r}: a FIFO, not a regular file", fifo, c.serverKey)
        self.check(f"private key file {fifo!r}: a FIFO, not a regular file", c.serverCert, fifo)
        self.check("'/dev/zero': a character device, not a regular file", "/dev/zero")
        self.check(f"{c.directory!r}: a directory, not a regular file", c.directory)
        signal.setitimer(signal.ITIMER_REAL, 0)

    def test_noCertificate(self) -> None:
        """
        C{WithTLS()} without a certificate is refused at once with an
        C{ErrInvalidOption} naming it (it was a bare C{TypeError} from
        deep inside the file check).
        """
        with self.assertRaises(ErrInvalidOption) as e:
            gnet.WithTLS()
        self.assertIn("WithTLS", str(e.exception))
        self.assertIn("certificate", str(e.exception))

    def test_settings(self) -> None:
        """Hostile values of every setting are refused by name."""
        c = self.certs
        for kw, needle in [
            ({"handshakeTimeout": 0}, "handshakeTimeout"),
            ({"handshakeTimeout": 1e9}, "handshakeTimeout"),
            ({"handshakeTimeout": float("nan")}, "handshakeTimeout"),
            ({"handshakeTimeout": True}, "handshakeTimeout"),
            ({"minimumVersion": "1.0"}, "minimumVersion"),
            ({"maximumVersion": "1.1"}, "maximumVersion"),
            ({"minimumVersion": "1.3", "maximumVersion": "1.2"}, "below minimumVersion"),
            ({"alpn": "http/1.1"}, "alpn"),
            ({"alpn": ["x" * 300]}, "alpn"),
            ({"alpn": ["h\u00e9"]}, "alpn"),
        ]:
            self.check(needle, c.serverCert, c.serverKey, **kw)
        self.assertRaises(ErrInvalidOption, gnet.WithTLS, c.serverCert, c.serverKey, bogus=1)

    def test_optionsChecked(self) -> None:
        """
        Options.normalized() loads the files (so Serve fails at start);
        multicore refuses a ready-made context object (workers load paths);
        a single process refuses anything that is neither files nor a
        Twisted connection creator or context factory (it used to be
        accepted, and fail at the first connection); WithTLS(address=)
        must name one of the engine's addresses.
        """
        from twisted.internet import ssl as tssl

        c = self.certs
        bad = loadOptions(gnet.WithTLS(c.serverCert, c.clientKey))
        self.assertRaises(ErrInvalidOption, bad.normalized)
        loadOptions(gnet.WithTLS(tssl.CertificateOptions())).normalized()
        e = self.assertRaises(ErrInvalidOption, loadOptions(gnet.WithTLS(42)).normalized)
        self.assertIn("TLS: WithTLS takes certificate files", str(e))
        obj = tssl.CertificateOptions()
        multi = loadOptions(gnet.WithTLS(obj), gnet.WithProcessWorkers(2))
        e = self.assertRaises(ErrInvalidOption, multi.normalized)
        self.assertIn("process workers load the certificate themselves", str(e))
        d = gnet.Serve(
            PidEcho(),
            "tcp://127.0.0.1:0",
            gnet.WithTLS(c.serverCert, c.serverKey, address="tcp://127.0.0.1:1"),
        )
        f = self.failureResultOf(d, ErrInvalidOption)
        self.assertIn("not one of the engine's tcp/unix addresses", str(f.value))

    def test_picklesPaths(self) -> None:
        """
        A loaded TLSConfig pickles as paths with the validated bytes of
        its files, no OpenSSL object; the copy (a worker's) builds its
        context from those bytes, not from the disk: the files may be
        broken by then.  L{TLSConfig.changedOnDisk} names the files whose
        bytes on disk differ from the validated ones.
        """
        import pickle

        c = self.certs
        cfg = gnet.TLSConfig(c.serverCert, c.serverKey)
        cfg.check()
        self.assertIsNotNone(cfg._creator)
        self.assertEqual(cfg.changedOnDisk(), [])
        copy = pickle.loads(pickle.dumps(cfg))
        self.assertIsNone(copy._creator)
        self.assertEqual(copy, cfg)
        for path in (c.serverCert, c.serverKey):
            with open(path, "wb") as f:
                f.write(b"renewal in progress")
        self.assertEqual(cfg.changedOnDisk(), [c.serverCert, c.serverKey])
        copy.check()
        self.assertIsNotNone(copy._creator)
        self.assertRaises(ErrInvalidOption, gnet.TLSConfig(c.serverCert, c.serverKey).check)


class TapOptionTests(SynchronousTestCase):
    """C{twistd gnetecho} TLS options."""

    def setUp(self) -> None:
        self.certs = certsFor(self)

    def test_sslListen(self) -> None:
        """--listen ssl:... serves TLS (HTTP/1.1 ALPN) beside a plain --port."""
        c = self.certs
        o = TapOptions()
        o.parseOptions(
            [
                "--port",
                "9080",
                "--listen",
                f"ssl:9443:privateKey={c.serverKey}:certKey={c.serverCert}",
            ]
        )
        self.assertEqual(o["addresses"], ["tcp://127.0.0.1:9080", "tcp://127.0.0.1:9443"])
        self.assertEqual(list(o["tls"]), ["tcp://127.0.0.1:9443"])
        cfg = o["tls"]["tcp://127.0.0.1:9443"]
        self.assertEqual(tuple(cfg.alpn), ("http/1.1",))
        opts = loadOptions(*o.gnetOptions())
        self.assertIs(opts.TLS["tcp://127.0.0.1:9443"], cfg)

    def test_tlsCert(self) -> None:
        """--tls-cert/--tls-key serve TLS on every address."""
        c = self.certs
        o = TapOptions()
        o.parseOptions(["--port", "9443", "--tls-cert", c.serverCert, "--tls-key", c.serverKey])
        self.assertEqual(list(o["tls"]), [None])

    def test_errorsNameTheFile(self) -> None:
        """Bad paths and a mismatched key stop twistd with one message naming the file."""
        c = self.certs
        missing = os.path.join(c.directory, "missing.key")
        for args, needle in [
            (
                ["--listen", f"ssl:9443:privateKey={missing}:certKey={c.serverCert}"],
                f"--listen: TLS private key file {missing!r}: cannot read it",
            ),
            (
                ["--tls-cert", c.serverCert, "--tls-key", c.clientKey],
                f"--tls-cert: TLS private key file {c.clientKey!r} does not match",
            ),
            (["--tls-key", c.serverKey], "--tls-key needs --tls-cert"),
            (["--listen", "ssl:9443:sslmethod=TLSv1_METHOD"], "TLS 1.2 is the minimum"),
        ]:
            e = self.assertRaises(usage.UsageError, TapOptions().parseOptions, args)
            self.assertIn(needle, str(e))


# -- real peers ----------------------------------------------------------------


class LineEcho(gnet.BuiltinEventEngine):
    """
    Greets with C{hello} from OnOpen (the direct-send path of a plain
    connection), echoes lines, answers C{state} with the TLS state and
    C{async} with an C{AsyncWrite} from another thread.
    """

    def __init__(self) -> None:
        self.opened: list = []
        self.closed: list = []

    def OnOpen(self, c: Any) -> tuple[bytes, Any]:
        self.opened.append(c)
        return b"hello\n", gnet.None_

    def OnTraffic(self, c: Any) -> Any:
        buf = c.Peek(-1)
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            c.Discard(len(line) + 1)
            if line == b"state":
                st = c.ConnectionState()
                peer = (
                    st.PeerCertificates[0].subject.rfc4514_string() if st.PeerCertificates else "-"
                )
                proto, name = st.NegotiatedProtocol or "-", st.ServerName or "-"
                c.Write(f"{st.Version} {proto} {name} {peer}\n".encode())
            elif line == b"async":
                threading.Thread(target=c.AsyncWrite, args=(b"from a thread\n",)).start()
            else:
                c.Write(line + b"\n")
        return gnet.None_

    def OnClose(self, c: Any, err: Any) -> Any:
        self.closed.append(err)
        return gnet.None_


class HandshakeDeadlineTests(SynchronousTestCase):
    """
    The TLS handshake deadline on a listener's factory, driven in memory
    (L{HandlerDriver}'s fake clock, a C{StringTransport} peer that never
    sends a byte).
    """

    def test_abortedWhenDue(self) -> None:
        """
        A peer that never completes the handshake is aborted exactly when
        C{handshakeTimeout} (0.5 s) has passed, not before, and the
        handler never hears of it (no C{OnOpen}, no C{OnClose}).
        """
        certs = certsFor(self)
        handler = LineEcho()
        driver = HandlerDriver(handler)
        self.assertTrue(driver.boot())
        tls = _tls.TLSConfig(certs.serverCert, certs.serverKey, handshakeTimeout=0.5)
        factory = tls.wrapFactory(GnetFactory(driver.engine, "tcp"), driver.reactor)
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        peer = StringTransport()
        proto.makeConnection(peer)
        driver.advance(0.499)
        self.assertFalse(peer.disconnecting)
        driver.advance(0.001)
        self.assertTrue(peer.disconnecting)
        self.assertEqual((handler.opened, handler.closed), ([], []))


class ServerTests(TestCase):
    """One process serving TLS, real clients."""

    timeout = 60

    async def serve(self, handler: Any, *opts: Any) -> tuple[Any, int]:
        eng = await gnet.Serve(handler, "tcp://127.0.0.1:0", *opts)
        self.addCleanup(lambda: None if eng.stopping else eng.Stop())
        return eng, eng.listeningPorts[0].getHost().port

    def setUp(self) -> None:
        self.certs = certsFor(self)

    async def test_wssEcho(self) -> None:
        """
        The websockets client trusting our CA echoes text and binary
        messages of 1 B to 1 MiB over wss://, with HTTP/1.1 ALPN; five
        sessions in a row each end with the server closing the connection
        (a TLS close that waited for the peer would leave the client to end
        it at its close timeout).
        """
        c = self.certs
        _, port = await self.serve(
            WebSocketEchoServer(multicore=False),
            gnet.WithTLS(c.serverCert, c.serverKey, alpn=["http/1.1"]),
        )

        def run() -> list:
            from websockets.sync.client import connect

            out = []
            with connect(
                f"wss://localhost:{port}/",
                ssl=c.clientContext(),
                max_size=None,
                open_timeout=IO_TIMEOUT,
                close_timeout=3,
            ) as ws:
                ws.send("héllo wörld")
                out.append(ws.recv(timeout=IO_TIMEOUT))
                for n in (1, 125, 126, 65535, 65536, 1 << 20):
                    payload = os.urandom(n)
                    ws.send(payload)
                    out.append(ws.recv(timeout=IO_TIMEOUT) == payload)
            for _ in range(5):
                with connect(
                    f"wss://127.0.0.1:{port}/",
                    ssl=c.clientContext(),
                    open_timeout=IO_TIMEOUT,
                    close_timeout=IO_TIMEOUT,
                ) as ws:
                    ws.send(b"x")
                    ws.recv(timeout=IO_TIMEOUT)
                # the server ended the connection itself: the client's close did
                # not run into close_timeout (websockets then records a TimeoutError)
                out.append(ws.connection_exc is None)
            return out

        out = await deferToThread(run)
        self.assertEqual(out, ["héllo wörld"] + [True] * 6 + [True] * 5)

    async def test_untrustedAndPlaintextClients(self) -> None:
        """
        A client that does not trust the CA fails the handshake; a plaintext
        WebSocket client on the TLS port is dropped; neither reaches the
        handler (no OnOpen), and an open TLS connection keeps working.
        """
        c = self.certs
        handler = LineEcho()
        _, port = await self.serve(handler, gnet.WithTLS(c.serverCert, c.serverKey))

        def run() -> list:
            good = tlsConnect(port, c.caCert)
            out = [readLine(good)]
            try:
                tlsConnect(port, c.otherCaCert).close()
                out.append("trusted?!")
            except ssl.SSLCertVerificationError:
                out.append("untrusted")
            plain = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = plain.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            plain.close()
            out.append(b"HTTP" not in data and b"hello" not in data)
            good.sendall(b"still\n")
            out.append(readLine(good))
            good.close()
            return out

        out = await deferToThread(run)
        self.assertEqual(out, [b"hello\n", "untrusted", True, b"still\n"])
        self.assertEqual(len(handler.opened), 1)

    async def test_alpnNoOverlap(self) -> None:
        """
        A client offering only C{h2} in ALPN to a server offering
        C{http/1.1} gets RFC 7301's fatal C{no_application_protocol} alert
        (it got C{internal_error}), never reaches the handler, and nothing
        is logged at warning or above; a client offering C{h2} and
        C{http/1.1} negotiates C{http/1.1}, and one offering no ALPN is
        served without it.
        """
        from twisted.logger import LogLevel, globalLogPublisher

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        c = self.certs
        handler = LineEcho()
        _, port = await self.serve(
            handler, gnet.WithTLS(c.serverCert, c.serverKey, alpn=["http/1.1"])
        )

        def run() -> list:
            out: list = []
            try:
                tlsConnect(port, c.caCert, alpn=["h2"]).close()
                out.append("accepted?!")
            except ssl.SSLError as e:
                out.append("no application protocol" in str(e).lower() or str(e))
            for alpn in (["h2", "http/1.1"], None):
                s = tlsConnect(port, c.caCert, alpn=alpn)
                out.append((s.selected_alpn_protocol(), readLine(s)))
                s.close()
            return out

        out = await deferToThread(run)
        self.assertEqual(out, [True, ("http/1.1", b"hello\n"), (None, b"hello\n")])
        self.assertEqual(len(handler.opened), 2)
        loud = [e for e in events if e.get("log_level", LogLevel.info) >= LogLevel.warn]
        self.assertEqual(loud, [])

    async def test_dhParametersFromCheckedBytes(self) -> None:
        """
        C{dhParameters} reach OpenSSL from the bytes that were checked (a
        memfd), not by opening the path again: a client that only speaks
        DHE over TLS 1.2 completes the handshake with a DHE cipher, no
        descriptor of that copy stays open, and a copy of the config (a
        worker's) builds its context from the checked bytes after the file
        on disk became a FIFO.
        """
        import pickle

        cert, key, dh = makeRsaServer(self.certs.directory)
        cfg = gnet.TLSConfig(cert, key, dhParameters=dh)
        _, port = await self.serve(LineEcho(), gnet.WithTLS(cfg))

        def memfds() -> int:
            found = 0
            for n in os.listdir("/proc/self/fd"):
                try:
                    found += "gnetcompat-pem" in os.readlink(f"/proc/self/fd/{n}")
                except OSError:  # the listing's own descriptor, closed by now
                    pass
            return found

        def run() -> tuple[str, bytes]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
            raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                cipher = s.cipher()
                return cipher[0] if cipher else "", readLine(s)

        cipher, greeting = await deferToThread(run)
        self.assertTrue(cipher.startswith("DHE-RSA-"), cipher)
        self.assertEqual(greeting, b"hello\n")
        self.assertEqual(memfds(), 0)
        copy = pickle.loads(pickle.dumps(cfg))
        os.unlink(dh)
        os.mkfifo(dh)
        copy.check()
        self.assertEqual(memfds(), 0)

    async def test_noDirectSendUnderTLS(self) -> None:
        """
        OnOpen's greeting and an AsyncWrite from another thread (the paths
        that send at once on a plain socket) arrive decrypted: nothing is
        written around the TLS layer.
        """
        c = self.certs
        _, port = await self.serve(LineEcho(), gnet.WithTLS(c.serverCert, c.serverKey))

        def run() -> list:
            s = tlsConnect(port, c.caCert)
            out = [readLine(s)]
            s.sendall(b"async\n")
            out.append(readLine(s))
            s.sendall(b"a\nb\n")
            out.append(readLine(s) + (readLine(s) if out[-1] == b"a\n" else b""))
            s.close()
            return out

        out = await deferToThread(run)
        self.assertEqual(out[:2], [b"hello\n", b"from a thread\n"])
        self.assertIn(out[2], (b"a\nb\n",))

    async def test_connectionState(self) -> None:
        """
        ConnectionState gives version (TLS 1.2 at least), ALPN result, SNI
        and, with clientCA, the client's certificate; TLS 1.1 clients are
        refused; a plain connection has no state.
        """
        c = self.certs
        _, port = await self.serve(
            LineEcho(),
            gnet.WithTLS(c.serverCert, c.serverKey, alpn=["http/1.1"], clientCA=c.caCert),
        )

        def run() -> list:
            out = []
            s = tlsConnect(
                port, c.caCert, alpn=["h2", "http/1.1"], cert=c.clientCert, key=c.clientKey
            )
            readLine(s)
            s.sendall(b"state\n")
            out.append(readLine(s).decode())
            out.append(s.selected_alpn_protocol())
            s.close()
            try:  # clientCA given and requireClientCert (the default): no certificate, no entry
                s = tlsConnect(port, c.caCert)
                s.sendall(b"state\n")
                out.append(readLine(s))
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                out.append(b"")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(c.caCert)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                ctx.wrap_socket(
                    socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT),
                    server_hostname="localhost",
                )
                out.append("tls1.1 accepted")
            except (ssl.SSLError, ConnectionResetError):
                out.append("tls1.1 refused")
            return out

        out = await deferToThread(run)
        version, alpn, sni, peer = out[0].split(" ", 3)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual((alpn, sni), ("http/1.1", "localhost"))
        self.assertIn("gnetcompat test client", peer)
        self.assertEqual(out[1:], ["http/1.1", b"", "tls1.1 refused"])

    async def test_handshakeTimeout(self) -> None:
        """
        A peer that connects and never completes the handshake is dropped
        (handshakeTimeout 0.5 s; when exactly: L{HandshakeDeadlineTests}),
        without OnOpen/OnClose; the engine then stops, a connection still
        in its handshake included.
        """
        c = self.certs
        handler = LineEcho()
        eng, port = await self.serve(
            handler, gnet.WithTLS(c.serverCert, c.serverKey, handshakeTimeout=0.5)
        )

        def run() -> None:
            # bounded: recv fails with TimeoutError after IO_TIMEOUT
            s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
            try:
                while s.recv(100):
                    pass
            except ConnectionResetError:
                pass
            s.close()

        await deferToThread(run)
        self.assertEqual((handler.opened, handler.closed), ([], []))
        idle = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.addCleanup(idle.close)
        await eng.Stop().addTimeout(IO_TIMEOUT, reactor)

    async def test_sessionResumption(self) -> None:
        """A client reconnecting with its session resumes it (TLS 1.2 and 1.3)."""
        c = self.certs
        _, port = await self.serve(LineEcho(), gnet.WithTLS(c.serverCert, c.serverKey))

        def run(version: ssl.TLSVersion) -> bool:
            ctx = ssl.create_default_context(cafile=c.caCert)
            ctx.maximum_version = version
            s = ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT),
                server_hostname="localhost",
            )
            readLine(s)  # TLS 1.3 tickets arrive after the handshake
            session = s.session
            s.close()
            s = ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT),
                server_hostname="localhost",
                session=session,
            )
            readLine(s)
            reused = s.session_reused
            s.close()
            return reused

        self.assertTrue(await deferToThread(run, ssl.TLSVersion.TLSv1_2))
        self.assertTrue(await deferToThread(run, ssl.TLSVersion.TLSv1_3))

    async def test_httpsStatusPage(self) -> None:
        """The status page is served over HTTPS on the wss:// listener."""
        import urllib.request

        c = self.certs
        handler = WebSocketEchoServer(multicore=False, wsOptions=WebSocketOptions(webStatus=True))
        _, port = await self.serve(handler, gnet.WithTLS(c.serverCert, c.serverKey))
        ctx = ssl.create_default_context(cafile=c.caCert)

        def get() -> bytes:
            with urllib.request.urlopen(
                f"https://localhost:{port}/", context=ctx, timeout=IO_TIMEOUT
            ) as r:
                return r.read()

        body = await deferToThread(get)
        self.assertIn(b'location.protocol === "https:" ? "wss://"', body)
        self.assertIn(b"Echo console", body)

    async def test_reload(self) -> None:
        """
        ReloadCertificates: new connections get the new certificate, an
        open one keeps its own and keeps working; files that cannot be used
        leave the current certificate in place and say why.
        """
        c = self.certs
        eng, port = await self.serve(LineEcho(), gnet.WithTLS(c.serverCert, c.serverKey))
        old = await deferToThread(tlsConnect, port, c.caCert)
        self.addCleanup(old.close)
        self.assertEqual(peerCN(old.getpeercert(True)), "gnetcompat test server")
        reissueServer(c, "renewed server")
        self.assertEqual(gnet.ReloadCertificates(eng), [])

        def cn() -> str:
            s = tlsConnect(port, c.caCert)
            name = peerCN(s.getpeercert(True))
            s.close()
            return name

        self.assertEqual(await deferToThread(cn), "renewed server")
        with open(c.serverKey, "wb") as f:
            f.write(b"garbage")
        errors = gnet.ReloadCertificates(eng)
        self.assertEqual(len(errors), 1)
        self.assertIn(c.serverKey, errors[0])
        self.assertEqual(await deferToThread(cn), "renewed server")

        def talk() -> bytes:
            readLine(old)
            old.sendall(b"old\n")
            return readLine(old)

        self.assertEqual(await deferToThread(talk), b"old\n")


class BackpressureTests(TestCase):
    """C{WriteBufferCap} bounds what waits for a TLS peer, as for plain TCP."""

    timeout = 60

    async def test_pausedUntilDrained(self) -> None:
        """
        A TLS peer that does not read makes the server stop reading past
        C{WriteBufferCap}: the socket below the TLS layer leaves the
        reactor's readers and C{OutboundBuffered} counts what waits.  Once
        the peer read everything, the connection reads and echoes again;
        a Close after another big write still ends in all bytes, then EOF.
        """
        big = 4 << 20
        conns: list = []
        closed: list = []

        class Big(gnet.BuiltinEventEngine):
            def OnOpen(self, c: Any) -> Any:
                conns.append(c)
                return None, gnet.None_

            def OnTraffic(self, c: Any) -> Any:
                data = c.Next(-1)
                if data in (b"go\n", b"bye\n"):
                    c.Write(b"y" * big)
                    return gnet.Close if data == b"bye\n" else gnet.None_
                c.Write(data)
                return gnet.None_

            def OnClose(self, c: Any, err: Any) -> Any:
                closed.append(err)
                return gnet.None_

        certs = certsFor(self)
        eng = await gnet.Serve(
            Big(),
            "tcp://127.0.0.1:0",
            gnet.WithTLS(certs.serverCert, certs.serverKey),
            gnet.WithSocketSendBuffer(4096),
        )
        self.addCleanup(lambda: None if eng.stopping else eng.Stop())
        port = eng.listeningPorts[0].getHost().port

        def connect() -> ssl.SSLSocket:
            ctx = ssl.create_default_context(cafile=certs.caCert)
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.settimeout(IO_TIMEOUT)
            raw.connect(("127.0.0.1", port))
            return ctx.wrap_socket(raw, server_hostname="localhost")

        s = await deferToThread(connect)
        self.addCleanup(s.close)
        await poll(lambda: conns, "OnOpen")
        conn = conns[0]
        fd = rawTransport(conn.driverTransport).fileno()

        def reading() -> bool:
            return any(r.fileno() == fd for r in reactor.getReaders())

        self.assertTrue(reading())
        s.sendall(b"go\n")
        await poll(lambda: not reading(), "reading to pause")
        self.assertGreater(conn.OutboundBuffered(), 64 * 1024)

        def drain(n: int) -> tuple[int, bytes]:
            got = 0
            while got < n:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            s.sendall(b"ping\n")
            return got, readLine(s)

        got, echo = await deferToThread(drain, big)
        self.assertEqual((got, echo), (big, b"ping\n"))
        self.assertTrue(reading())

        def lastWords() -> tuple[int, bool]:
            s.sendall(b"bye\n")
            got = 0
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return got, True
                got += len(chunk)

        got, eof = await deferToThread(lastWords)
        self.assertEqual((got, eof), (big, True))
        await poll(lambda: closed, "OnClose")
        self.assertEqual(closed, [None])


class ClientTests(TestCase):
    """TLS through the gnet Client API."""

    timeout = 60

    async def test_dialTLS(self) -> None:
        """
        A Client with WithClientTLS(caFile, serverName) dials the TLS
        server, its OnOpen runs after the handshake (ConnectionState shows
        the server's certificate), and it echoes; a client trusting another
        CA fails the Dial with the verification error.
        """
        c = certsFor(self)
        eng = await gnet.Serve(
            LineEcho(), "tcp://127.0.0.1:0", gnet.WithTLS(c.serverCert, c.serverKey)
        )
        self.addCleanup(lambda: None if eng.stopping else eng.Stop())
        port = eng.listeningPorts[0].getHost().port
        got: Deferred = Deferred()

        class H(gnet.BuiltinEventEngine):
            def OnOpen(self, conn: Any) -> Any:
                self.state = conn.ConnectionState()
                return b"ping\n", gnet.None_

            def OnTraffic(self, conn: Any) -> Any:
                data = conn.Peek(-1)
                if data.count(b"\n") >= 2 and not got.called:
                    got.callback(conn.Next(-1))
                return gnet.None_

        h = H()
        client = gnet.NewClient(h, gnet.WithClientTLS(c.caCert, serverName="localhost"))
        client.Start()
        self.addCleanup(lambda: client.Stop())
        conn = await client.Dial("tcp", f"127.0.0.1:{port}").addTimeout(IO_TIMEOUT, reactor)
        self.assertIsNotNone(conn.ConnectionState())
        self.assertEqual(
            h.state.PeerCertificates[0].subject.rfc4514_string(), "CN=gnetcompat test server"
        )
        self.assertEqual(await got.addTimeout(IO_TIMEOUT, reactor), b"hello\nping\n")

        bad = gnet.NewClient(gnet.BuiltinEventEngine(), gnet.WithClientTLS(c.otherCaCert))
        bad.Start()
        self.addCleanup(lambda: bad.Stop())
        from OpenSSL.SSL import Error

        d = bad.Dial("tcp", f"127.0.0.1:{port}").addTimeout(IO_TIMEOUT, reactor)
        await self.assertFailure(d, Error)

    async def test_optionsForClientTLS(self) -> None:
        """Twisted's optionsForClientTLS works as the client's creator."""
        from twisted.internet import ssl as tssl

        c = certsFor(self)
        eng = await gnet.Serve(
            LineEcho(), "tcp://127.0.0.1:0", gnet.WithTLS(c.serverCert, c.serverKey)
        )
        self.addCleanup(lambda: None if eng.stopping else eng.Stop())
        port = eng.listeningPorts[0].getHost().port
        with open(c.caCert, "rb") as f:
            ca = tssl.Certificate.loadPEM(f.read())
        creator = tssl.optionsForClientTLS("localhost", trustRoot=ca)
        client = gnet.NewClient(gnet.BuiltinEventEngine(), gnet.WithClientTLS(creator=creator))
        client.Start()
        self.addCleanup(lambda: client.Stop())
        conn = await client.Dial("tcp", f"127.0.0.1:{port}").addTimeout(IO_TIMEOUT, reactor)
        self.assertIn(conn.ConnectionState().Version, ("TLSv1.2", "TLSv1.3"))


class MulticoreTests(TestCase):
    """Each worker loads the certificate; reuse-port spreads TLS connections."""

    timeout = 90

    async def serveTLS(self, c: Certs, *opts: Any) -> tuple[Any, int]:
        """Two reuse-port workers of L{PidEcho} serving TLS: (the engine, its port)."""
        eng = await gnet.Serve(
            PidEcho(),
            "tcp://127.0.0.1:0",
            gnet.WithProcessWorkers(2),
            gnet.WithReusePort(True),
            gnet.WithTLS(c.serverCert, c.serverKey),
            *opts,
        ).addTimeout(30, reactor)
        self.addCleanup(lambda: None if eng.stopping else eng.Stop().addTimeout(20, reactor))
        [(_, port)] = eng.addresses
        return eng, port

    async def test_workersServeTLS(self) -> None:
        """
        Two reuse-port workers each serve TLS: 30 TLS connections reach
        both workers' pids; ReloadCertificates checks the files and makes
        each worker reload (new connections on both get the new name).
        """
        c = certsFor(self)
        eng, port = await self.serveTLS(c)

        def pids(n: int) -> list:
            return workerPidsAndNames(port, c, n)

        seen = await deferToThread(pids, 30)
        self.assertEqual({p for p, _ in seen}, set(eng.workerPids()))
        self.assertEqual({n for _, n in seen}, {"gnetcompat test server"})
        reissueServer(c, "renewed server")
        self.assertEqual(gnet.ReloadCertificates(eng), [])

        async def renewedOnBoth() -> bool:
            seen = await deferToThread(pids, 20)
            names = dict(seen)
            return len(names) == 2 and set(names.values()) == {"renewed server"}

        await poll(renewedOnBoth, "both workers serving the renewed certificate", timeout=20)

    async def test_replacementUsesValidatedCertificate(self) -> None:
        """
        With the certificate and key files on disk made unloadable (a
        renewal written in place, half done), a killed worker's
        replacement starts and serves TLS with the certificate the parent
        validated last (handed over, not read from disk); the parent logs
        one warning naming the changed files; the engine keeps running
        and both workers serve.  (Each replacement used to re-read the
        files, fail at start, and five failures stopped the engine.)
        """
        from twisted.logger import Logger, formatEvent

        events: list[dict] = []
        c = certsFor(self)
        eng, port = await self.serveTLS(c, gnet.WithLogger(Logger(observer=events.append)))
        for path in (c.serverCert, c.serverKey):
            with open(path, "wb") as f:
                f.write(b"-----BEGIN CERTIFICATE-----\nrenewal in progr")
        victim = eng.workerPids()[1]
        os.kill(victim, signal.SIGKILL)

        def logged(needle: str) -> list[str]:
            return [formatEvent(e) for e in events if needle in formatEvent(e)]

        await poll(lambda: logged("worker 1 restarted"), "the replacement of worker 1", 30)
        self.assertNotIn(victim, eng.workerPids())
        self.assertFalse(eng.stopping)
        [warning] = logged("changed on disk")
        self.assertIn(c.serverCert, warning)
        self.assertIn(c.serverKey, warning)
        self.assertEqual(logged("died unexpectedly")[1:], [])

        seen = await deferToThread(workerPidsAndNames, port, c, 30)
        self.assertEqual({p for p, _ in seen}, set(eng.workerPids()))
        self.assertEqual({n for _, n in seen}, {"gnetcompat test server"})


class TwistdTests(TestCase):
    """The real C{twistd -n gnetecho} with TLS."""

    timeout = 90

    async def startTLS(self, parentOnly: bool = False) -> tuple[Certs, int, Any]:
        """
        C{twistd gnetecho --tls-cert/--tls-key} with two workers, once they
        serve: (the certificates, the port, the process).

        @param parentOnly: name the files by paths that only the parent
            can open: through a descriptor of the certificates' directory
            that twistd inherits (C{/proc/self/fd/N/server.crt}) and that
            its workers, spawned with their own descriptors only, lack.  A
            worker that read a TLS file from disk would fail.
        """
        c = certsFor(self)
        port = freePort()
        cert, key, fds = c.serverCert, c.serverKey, {}
        if parentOnly:
            fd = os.open(c.directory, os.O_RDONLY | os.O_DIRECTORY)
            self.addCleanup(os.close, fd)
            fds = {PARENT_ONLY_FD: fd}
            cert, key = (
                f"/proc/self/fd/{PARENT_ONLY_FD}/{os.path.basename(p)}" for p in (cert, key)
            )
        argv = ["gnetecho", "--port", str(port), "--num-event-loop", "2"]
        proc = spawnTwistd(self, [*argv, "--tls-cert", cert, "--tls-key", key], inheritFDs=fds)
        await proc.waitFor(r"process workers: 2 workers serving", 30)
        return c, port, proc

    async def test_sighupReload(self) -> None:
        """
        twistd gnetecho --tls-cert/--tls-key with two workers serves wss://;
        SIGHUP to twistd reloads the certificate in every worker (new
        connections get it, an open WebSocket keeps working), and a bad
        file on a later SIGHUP keeps the current certificate and logs why.
        The files are named by paths only the parent can open: the parent
        reads and checks them and sends their bytes over the bus, and the
        workers never read the disk (they used to be sent C{SIGHUP} and read
        the files again themselves, possibly other bytes than those checked:
        here they would fail and keep the old certificate).
        """
        c, port, proc = await self.startTLS(parentOnly=True)
        self.assertIn("(TLS)", proc.output)

        def echo(url: str) -> tuple[str, str]:
            return wssEcho(url, c, "hi")

        self.assertEqual(
            await deferToThread(echo, f"wss://localhost:{port}/"), ("hi", "gnetcompat test server")
        )
        from websockets.sync.client import connect

        held = await deferToThread(
            connect,
            f"wss://localhost:{port}/",
            ssl=c.clientContext(),
            open_timeout=IO_TIMEOUT,
            close_timeout=3,
        )
        self.addCleanup(held.close)
        reissueServer(c, "renewed server")
        proc.signal(signal.SIGHUP)
        await proc.waitFor(r"TLS certificates checked; their bytes sent to 2 of 2 workers", 15)
        await poll(
            lambda: proc.output.count("TLS certificates reloaded") >= 2, "two workers reloaded"
        )

        async def renewed() -> bool:
            names = {(await deferToThread(echo, f"wss://localhost:{port}/"))[1] for _ in range(6)}
            return names == {"renewed server"}

        await poll(lambda: defer.ensureDeferred(renewed()), "the renewed certificate", timeout=20)

        def heldEcho() -> str:
            held.send("still")
            return held.recv(timeout=IO_TIMEOUT)

        self.assertEqual(await deferToThread(heldEcho), "still")
        with open(c.serverCert, "wb") as f:
            f.write(b"not a certificate")
        proc.signal(signal.SIGHUP)
        await proc.waitFor(r"TLS reload failed, keeping the current certificate", 15)
        self.assertEqual(
            (await deferToThread(echo, f"wss://localhost:{port}/"))[1], "renewed server"
        )
        self.assertFalse(proc.exited)
        await proc.terminate()

    async def test_sighupFifoNeverBlocks(self) -> None:
        """
        A FIFO put in place of the certificate, then C{SIGHUP}: twistd
        refuses it at once ("a FIFO, not a regular file"), keeps the
        current certificate, keeps serving wss://, and a later C{SIGTERM}
        stops it with status 0.  (Opening the FIFO used to block the parent's
        reactor for ever: no supervision, and SIGTERM did nothing.)
        """
        c, port, proc = await self.startTLS()
        os.unlink(c.serverCert)
        os.mkfifo(c.serverCert)
        proc.signal(signal.SIGHUP)
        await proc.waitFor(
            r"TLS reload failed, keeping the current certificate: .*a FIFO, not a regular file", 15
        )

        self.assertEqual(
            await deferToThread(wssEcho, f"wss://localhost:{port}/", c, "after the FIFO"),
            ("after the FIFO", "gnetcompat test server"),
        )
        proc.signal(signal.SIGHUP)
        await proc.waitFor(r"(?s)a FIFO, not a regular file.*a FIFO, not a regular file", 15)
        await proc.terminate(20)
        self.assertEqual((proc.exitCode, proc.exitSignal), (0, None), proc.output)

    async def test_sslListenMulticore(self) -> None:
        """
        --listen ssl:PORT:privateKey=...:certKey=... with extraCertChain
        and the default worker count serves wss:// with the chain, beside a
        plain --port.
        """
        c = certsFor(self)
        tlsPort, plainPort = freePort(), freePort()
        proc = spawnTwistd(
            self,
            [
                "gnetecho",
                "--num-event-loop",
                "2",
                "--port",
                str(plainPort),
                "--listen",
                f"ssl:{tlsPort}:privateKey={c.serverKey}:certKey={c.serverCert}"
                f":extraCertChain={c.caCert}",
            ],
        )
        await proc.waitFor(r"process workers: 2 workers serving", 30)

        def run() -> list:
            from websockets.sync.client import connect

            out = []
            with connect(
                f"wss://localhost:{tlsPort}/", ssl=c.clientContext(), open_timeout=IO_TIMEOUT
            ) as ws:
                ws.send(b"\x00" * 70000)
                out.append(len(ws.recv(timeout=IO_TIMEOUT)))
            with connect(f"ws://127.0.0.1:{plainPort}/", open_timeout=IO_TIMEOUT) as ws:
                ws.send("plain")
                out.append(ws.recv(timeout=IO_TIMEOUT))
            return out

        self.assertEqual(await deferToThread(run), [70000, "plain"])
        await proc.terminate()


def _browseHttps(url: str, profile: str, text: str) -> dict[str, Any]:
    """
    Thread: load the status page over https:// in headless chromium
    (C{--ignore-certificate-errors}: our CA is not in its store), type
    C{text} into the echo console, wait (bounded) for the echo over wss://.
    """
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from ._browser import startChromium

    driver = startChromium(profile, "--ignore-certificate-errors")
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait = WebDriverWait(driver, 20, poll_frequency=0.1)
        wait.until(lambda d: d.find_element("id", "state").text == "open")
        box = driver.find_element("id", "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
        echoes = wait.until(
            lambda d: d.execute_script("return window.__echo.length ? window.__echo : null")
        )
        return {"echoes": echoes, "protocol": driver.execute_script("return location.protocol")}
    finally:
        driver.quit()


class BrowserTests(TestCase):
    """Chromium over https:// and wss://."""

    timeout = 120

    def setUp(self) -> None:
        """Skip (or, under CI=true, fail) when the browser stack is missing."""
        from ._browser import requireBrowser

        requireBrowser(self)

    async def test_statusConsoleOverHttps(self) -> None:
        """
        Chromium loads the status page over https:// and its console
        echoes a typed message over wss:// to the same TLS listener.
        """
        c = certsFor(self)
        handler = WebSocketEchoServer(multicore=False, wsOptions=WebSocketOptions(webStatus=True))
        eng = await gnet.Serve(
            handler, "tcp://127.0.0.1:0", gnet.WithTLS(c.serverCert, c.serverKey, alpn=["http/1.1"])
        )
        self.addCleanup(lambda: None if eng.stopping else eng.Stop())
        port = eng.listeningPorts[0].getHost().port
        profile = tempfile.mkdtemp(prefix="gnetecho-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        result = await deferToThread(
            _browseHttps, f"https://localhost:{port}/", profile, "über TLS"
        )
        self.assertEqual(result, {"echoes": ["über TLS"], "protocol": "https:"})
