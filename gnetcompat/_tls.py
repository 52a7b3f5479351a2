# -*- test-case-name: tests.test_tls -*-
"""
Native TLS settings on Twisted's own TLS layer (C{TLSMemoryBIOFactory} over
pyOpenSSL, which C{Twisted[tls]}, a requirement, brings): gnet has none.

This module holds the configuration and the loading of PEM files:
L{TLSConfig} (how a listener serves TLS), L{ClientTLS} (how a client dials
it) and L{TLSState} (what a connection negotiated).  The rest of TLS lives
with its job: the C{With*} options and their checks in
L{gnetcompat.options}; the TLS factory under a listener and the reading of
TLS transports (Twisted internals) in L{gnetcompat._twistedcompat}; reload
with the engines (C{Engine.reloadCertificates},
C{MulticoreEngine.reloadCertificates}) and the C{SIGHUP} wiring in
L{gnetcompat._run}.

A listener serves TLS when the options say so (L{gnetcompat.WithTLS}); its
C{GnetFactory} is then wrapped in a
L{gnetcompat._twistedcompat.GnetTLSFactory}, so a L{Conn}'s transport is
the TLS protocol: C{OnTraffic} sees plaintext, writes are plaintext, and
the direct-send fast path of L{gnetcompat._conn} (which only takes plain
C{tcp}/C{unix} transports) is never used underneath TLS.  C{OnOpen} runs
once the handshake completed (a peer that never finishes it, or speaks
plaintext, never reaches the handler) and L{Conn.ConnectionState} then
tells the version, cipher, ALPN result and peer certificates.

Settings travel as file paths (L{TLSConfig}, picklable) with the bytes of
those files as last validated: every process builds its own OpenSSL
context, a multicore worker from the bytes the parent validated (it never
reads the disk, neither at start nor on reload: a replacement started while
the files are being renewed, or are broken, serves the certificate the
parent checked last, and a reload hands every worker the bytes the parent
checked, over the bus).  L{TLSConfig.reload} swaps in a freshly loaded
certificate for new connections; open ones keep theirs.  Files are read
without ever blocking (L{_read}: C{O_NONBLOCK}, regular files only, at
most L{MAX_PEM_FILE} bytes), so a FIFO or a device put in place of a
certificate is refused instead of hanging the reactor on C{SIGHUP}.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL.SSL import Connection
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.filepath import FilePath
from zope.interface import implementer

from ._endpoint import ARGUMENTS, parseEndpoint
from ._twistedcompat import GnetTLSFactory, TLSCreator, tlsConnection
from .errors import ErrInvalidOption

__all__ = [
    "ClientTLS",
    "ServerTLS",
    "TLSConfig",
    "TLSError",
    "TLSState",
    "connectionState",
    "fileConfigs",
    "isServerTLS",
    "reloadConfigs",
    "serverTLSFactory",
    "validatedFiles",
]

#: seconds a peer has to complete the TLS handshake before it is dropped
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: the most a handshake timeout may be set to
MAX_HANDSHAKE_TIMEOUT = 300.0
#: the largest certificate, key, chain or DH file read (a PEM bundle of a
#: long chain is a few KiB; this stops a wrong path to a huge file)
MAX_PEM_FILE = 1024 * 1024

#: C{sslmethod=} values (the names of C{OpenSSL.SSL} constants, as in
#: Twisted's C{ssl:} endpoint) we accept, as (minimum, maximum) versions
_METHODS = {
    "SSLv23_METHOD": ("1.2", None),
    "TLS_METHOD": ("1.2", None),
    "TLS_SERVER_METHOD": ("1.2", None),
    "TLSv1_2_METHOD": ("1.2", "1.2"),
}
_VERSIONS = ("1.2", "1.3")


class TLSError(ErrInvalidOption):
    """A TLS setting cannot be used (a file, the key, a setting)."""


_TOO_BIG = f"larger than {MAX_PEM_FILE} bytes (1 MiB, the limit for a PEM file), not a PEM file"

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read(what: str, path: str) -> bytes:
    """
    The bytes of a PEM file, read without ever blocking the reactor: the
    path is opened with C{O_NONBLOCK} (a FIFO or a device put in place of
    a certificate opens at once instead of waiting for a writer), only a
    regular file is read (C{fstat}), and at most L{MAX_PEM_FILE} bytes.

    @raise TLSError: naming the file and why it cannot be used.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise TLSError(f"TLS {what} {path!r}: cannot read it: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd)
        if not stat.S_ISREG(mode.st_mode):
            kind = next((name for test, name in _KINDS if test(mode.st_mode)), "not a file")
            raise TLSError(f"TLS {what} {path!r}: {kind}, not a regular file: give a PEM file")
        if mode.st_size > MAX_PEM_FILE:
            raise TLSError(f"TLS {what} {path!r}: {_TOO_BIG}")
        chunks = []
        left = MAX_PEM_FILE + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as e:
        raise TLSError(f"TLS {what} {path!r}: cannot read it: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_PEM_FILE:  # it grew while we read it
        raise TLSError(f"TLS {what} {path!r}: {_TOO_BIG}")
    return data


#: how L{TLSConfig} gets a file's bytes: C{read(what, path)}
_Reader = Callable[[str, str], bytes]


def _bytesReader(files: Mapping[str, bytes]) -> _Reader:
    """
    A L{_Reader} that never touches the disk: the bytes of C{files} (path ->
    bytes, as a multicore parent validated them).
    """

    def read(what: str, path: str) -> bytes:
        data = files.get(path)
        if data is None:
            raise TLSError(f"TLS {what} {path!r}: not among the validated files")
        return data

    return read


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)


def _certificates(what: str, path: str, read: _Reader = _read) -> list[crypto.X509]:
    """Every PEM certificate in C{path} (pyOpenSSL X509 objects)."""
    blocks = _PEM_CERT.findall(read(what, path))
    if not blocks:
        raise TLSError(f"TLS {what} {path!r}: no PEM certificate in it")
    try:
        return [ssl.Certificate.loadPEM(b).original for b in blocks]
    except Exception as e:
        raise TLSError(f"TLS {what} {path!r}: not a valid certificate: {e}") from None


class NoApplicationProtocol(SSL.Error):
    """
    The client offered none of the ALPN protocols we serve: raised by our
    ALPN selection (L{_selectALPN}), an C{OpenSSL.SSL.Error}, so Twisted's
    TLS protocol treats it as the failed handshake it is (pyOpenSSL
    re-raises an exception of the callback from the handshake; no log line).
    """


def _selectALPN(context: SSL.Context, protocols: Sequence[bytes]) -> None:
    """
    Replace Twisted's ALPN selection on C{context} (public pyOpenSSL API):
    the first of C{protocols} the client offers, else a fatal
    C{no_application_protocol} alert (120), as RFC 7301 section 3.2 says.
    Twisted's callback answers an empty selection, which OpenSSL fails
    with C{internal_error}.  (A client that offers no ALPN at all is served
    without it, as before.)
    """
    ours = list(protocols)

    def select(conn: Connection, offered: list[bytes]) -> bytes:
        for p in ours:
            if p in offered:
                return p
        # raised from the callback: pyOpenSSL answers SSL_TLSEXT_ERR_ALERT_FATAL,
        # which OpenSSL sends as no_application_protocol; the argument has
        # the shape of OpenSSL's error queue, which Twisted reads
        raise NoApplicationProtocol([("SSL routines", "", "no application protocol")])

    context.set_alpn_select_callback(select)


class _BytesFile:
    """
    Bytes behind a path OpenSSL can open (it takes Diffie-Hellman
    parameters only as a file name): a C{memfd} named by
    C{/proc/self/fd/N}, or an unlinked-on-close temporary file where there
    is none.  The disk path itself is never handed to OpenSSL: it would
    open it again (blocking on a FIFO) and could read other bytes than
    those we checked.
    """

    def __init__(self, data: bytes) -> None:
        self._file: Any = None
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            self._fd = os.memfd_create("gnetcompat-pem", getattr(os, "MFD_CLOEXEC", 0))
            os.write(self._fd, data)
            self.path = FilePath(f"/proc/self/fd/{self._fd}")
        else:  # pragma: no cover - not Linux
            self._fd = -1
            self._file = tempfile.NamedTemporaryFile(prefix="gnetcompat-pem-")
            self._file.write(data)
            self._file.flush()
            self.path = FilePath(self._file.name)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._file is not None:
            self._file.close()
            self._file = None


_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@implementer(IOpenSSLServerConnectionCreator)
class _ReloadingCreator:
    """
    An C{IOpenSSLServerConnectionCreator} whose context can be replaced:
    every new connection takes the context loaded last.
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self.options = options

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:
        return Connection(self.options.getContext(), None)


def _checkHandshakeTimeout(what: str, t: object) -> None:
    """@raise TLSError: C{t} is not a number of seconds in (0, L{MAX_HANDSHAKE_TIMEOUT}]."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= MAX_HANDSHAKE_TIMEOUT:
        raise TLSError(
            f"{what} handshakeTimeout: seconds in (0, {MAX_HANDSHAKE_TIMEOUT:g}], got {t!r}"
        )


@dataclass
class TLSConfig:
    """
    How a listener serves TLS, as paths and settings (picklable: multicore
    workers build their own context, from the files' bytes as the parent
    last validated them).

    @ivar certFile: PEM certificate (the leaf; the chain may follow it in
        the same file, or be given as C{extraCertChain}).
    @ivar keyFile: PEM private key (default: C{certFile}, a combined file).
    @ivar extraCertChain: PEM file of intermediate certificates sent after
        the leaf.
    @ivar dhParameters: PEM Diffie-Hellman parameters (enables DHE ciphers).
    @ivar clientCA: PEM file of the CAs whose client certificates are
        accepted; the server then requests a client certificate.
    @ivar requireClientCert: with C{clientCA}: refuse clients without one
        (default); False: request but accept none.
    @ivar alpn: ALPN protocols offered, in preference order (e.g.
        C{["http/1.1"]}); empty: no ALPN.
    @ivar minimumVersion: C{"1.2"} (default) or C{"1.3"}.
    @ivar maximumVersion: C{None} (the newest OpenSSL has) or C{"1.2"}.
    @ivar handshakeTimeout: seconds a peer has to complete the handshake.
    @ivar sessions: TLS session resumption (session cache and tickets).
    """

    certFile: str
    keyFile: str | None = None
    extraCertChain: str | None = None
    dhParameters: str | None = None
    clientCA: str | None = None
    requireClientCert: bool = True
    alpn: Sequence[str] = ()
    minimumVersion: str = "1.2"
    maximumVersion: str | None = None
    handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    sessions: bool = True
    _creator: _ReloadingCreator | None = field(default=None, init=False, repr=False, compare=False)
    #: path -> the bytes of each file as last loaded successfully here (or,
    #: in a worker, as the parent last validated them)
    _validated: dict[str, bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, Any]:
        # OpenSSL objects stay in this process: a worker builds its own, from
        # the validated bytes (_validated) that travel with the paths
        state = self.__dict__.copy()
        state["_creator"] = None
        return state

    # -- checking and loading -------------------------------------------

    def check(self) -> None:
        """
        Check every setting and load the files now (once per process).  A
        copy unpickled in a worker builds its context from the bytes the
        parent validated last, without reading the disk: a certificate
        renewed non-atomically, or broken, while a worker is replaced never
        stops the replacement (L{changedOnDisk} tells the parent to say so).

        @raise TLSError: naming the bad setting or file.
        """
        if self._creator is None:
            if self._validated:
                options, _ = self._load(_bytesReader(self._validated))
            else:
                options, self._validated = self._load(_read)
            self._creator = _ReloadingCreator(options)

    def _checkSettings(self) -> None:
        for name in ("certFile", "keyFile", "extraCertChain", "dhParameters", "clientCA"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise TLSError(f"TLS {name}: expected a file path, got {v!r}")
        if self.minimumVersion not in _VERSIONS:
            raise TLSError(f"TLS minimumVersion: 1.2 or 1.3, not {self.minimumVersion!r}")
        if self.maximumVersion not in (None, *_VERSIONS):
            raise TLSError(f"TLS maximumVersion: None, 1.2 or 1.3, not {self.maximumVersion!r}")
        if self.maximumVersion is not None and self.maximumVersion < self.minimumVersion:
            raise TLSError("TLS maximumVersion is below minimumVersion")
        _checkHandshakeTimeout("TLS", self.handshakeTimeout)
        if isinstance(self.alpn, (str, bytes)) or not all(
            isinstance(p, str) and 0 < len(p) < 256 and p.isascii() for p in self.alpn
        ):
            raise TLSError(
                f"TLS alpn: a list of protocol names such as ['http/1.1'], got {self.alpn!r}"
            )

    def load(self) -> ssl.CertificateOptions:
        """
        Read the files and build Twisted's C{CertificateOptions} (its
        OpenSSL context built too, so a key that does not match the
        certificate fails here).

        @raise TLSError: naming the bad setting or file.
        """
        return self._load(_read)[0]

    def _load(self, read: _Reader) -> tuple[ssl.CertificateOptions, dict[str, bytes]]:
        """
        L{load} with the files' bytes from C{read(what, path)}; also
        return those bytes by path.
        """
        self._checkSettings()
        used: dict[str, bytes] = {}

        def reading(what: str, path: str) -> bytes:
            data = used[path] = read(what, path)
            return data

        keyFile = self.keyFile or self.certFile
        certs = _certificates("certificate file", self.certFile, reading)
        try:
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, reading("private key file", keyFile))
        except crypto.Error:
            raise TLSError(
                f"TLS private key file {keyFile!r}: no PEM private key in it "
                "(or it is encrypted: give an unencrypted key)"
            ) from None
        chain = certs[1:]
        if self.extraCertChain is not None:
            chain += _certificates("extraCertChain file", self.extraCertChain, reading)
        kw: dict[str, Any] = {}
        dh = None
        if self.dhParameters is not None:
            dh = _BytesFile(reading("dhParameters file", self.dhParameters))
            kw["dhParameters"] = ssl.DiffieHellmanParameters.fromFile(dh.path)  # type: ignore[no-untyped-call]  # Twisted: untyped
        if self.clientCA is not None:
            kw["verify"] = True
            kw["caCerts"] = _certificates("clientCA file", self.clientCA, reading)
            kw["requireCertificate"] = bool(self.requireClientCert)
        if self.alpn:
            kw["acceptableProtocols"] = [p.encode("ascii") for p in self.alpn]
        kw["raiseMinimumTo"] = _TLS_VERSIONS[self.minimumVersion]
        if self.maximumVersion is not None:
            kw["lowerMaximumSecurityTo"] = _TLS_VERSIONS[self.maximumVersion]
        try:
            options = ssl.CertificateOptions(
                privateKey=key,
                certificate=certs[0],
                extraCertChain=chain,
                enableSessions=bool(self.sessions),
                enableSessionTickets=bool(self.sessions),
                **kw,
            )
            context = options.getContext()
            if self.alpn:
                _selectALPN(context, kw["acceptableProtocols"])
        except SSL.Error:
            raise TLSError(
                f"TLS private key file {keyFile!r} does not match the certificate in "
                f"{self.certFile!r}"
            ) from None
        except (ValueError, TypeError) as e:
            raise TLSError(f"TLS settings for {self.certFile!r}: {e}") from None
        finally:
            if dh is not None:  # OpenSSL read it while building the context
                dh.close()
        return options, used

    # -- serving ---------------------------------------------------------

    def creator(self) -> _ReloadingCreator:
        """The connection creator of this process (loaded on first use)."""
        self.check()
        assert self._creator is not None
        return self._creator

    def reload(self, files: Mapping[str, bytes] | None = None) -> None:
        """
        Load the files again; new connections get the new certificate, open
        ones keep theirs.  On an error the current certificate stays.

        @param files: the files' bytes by path, as a multicore parent
            validated them (L{validatedFiles}): the context is built from
            these, the disk is not read.  C{None}: read the disk (without
            blocking, see L{_read}).
        @raise TLSError: the new files cannot be used (nothing changed).
        """
        options, self._validated = self._load(_read if files is None else _bytesReader(files))
        if self._creator is None:
            self._creator = _ReloadingCreator(options)
        else:
            self._creator.options = options

    def changedOnDisk(self) -> list[str]:
        """
        The files whose bytes on disk differ from those validated last (or
        that cannot be read now).  Each file is read as L{_read} reads it
        (never blocking).
        """
        changed: list[str] = []
        for path, data in self._validated.items():
            try:
                same = _read("file", path) == data
            except TLSError:
                same = False
            if not same:
                changed.append(path)
        return changed

    def wrapFactory(self, factory: IProtocolFactory, clock: IReactorTime) -> GnetTLSFactory:
        """C{factory} behind TLS on a server listener."""
        return GnetTLSFactory(self.creator(), False, factory, clock, self.handshakeTimeout)

    # -- endpoint descriptions ------------------------------------------

    @classmethod
    def fromDescription(cls, description: str, alpn: Sequence[str] = ()) -> tuple[str, TLSConfig]:
        """
        Parse a Twisted C{ssl:} server endpoint description (C{ssl:PORT
        [:privateKey=KEY][:certKey=CERT][:extraCertChain=CHAIN]
        [:dhParameters=DH][:sslmethod=M][:interface=HOST][:backlog=N]},
        positional arguments in Twisted's order, C{\\:} escapes; split by
        L{gnetcompat.parseEndpoint}) into a gnet address and a L{TLSConfig}.
        As in Twisted, C{privateKey} defaults to C{server.pem} and
        C{certKey} to C{privateKey}; the interface defaults to 127.0.0.1
        (gnetecho's loopback default).

        @raise ValueError: a malformed description (the message says why).
        """
        d = parseEndpoint(description)
        if d.kind != "ssl":
            raise ValueError(f"{description!r} is not an ssl: description")
        values = d.named(ARGUMENTS["ssl"])
        port = values.get("port", "")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"bad port {port!r} in {description!r}: give 0-65535")
        backlog = values.get("backlog")
        if backlog is not None and not backlog.isdigit():
            raise ValueError(f"bad backlog {backlog!r} in {description!r}")
        method = values.get("sslmethod")
        minimum, maximum = "1.2", None
        if method is not None:
            if method not in _METHODS:
                raise ValueError(
                    f"sslmethod {method!r} in {description!r}: TLS 1.2 is the minimum; give "
                    + ", ".join(sorted(_METHODS))
                )
            minimum, maximum = _METHODS[method]
        host = values.get("interface") or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        key = values.get("privateKey") or "server.pem"
        config = cls(
            certFile=values.get("certKey") or key,
            keyFile=key,
            extraCertChain=values.get("extraCertChain"),
            dhParameters=values.get("dhParameters"),
            alpn=tuple(alpn),
            minimumVersion=minimum,
            maximumVersion=maximum,
        )
        return f"tcp://{host}:{int(port)}", config


#: what a listener may serve TLS with: a L{TLSConfig} (files), or (single
#: process only) a ready Twisted connection creator or context factory
ServerTLS = TLSConfig | TLSCreator


def isServerTLS(value: object) -> bool:
    """Whether C{value} is something L{ServerTLS} allows."""
    return (
        isinstance(value, TLSConfig)
        or IOpenSSLServerConnectionCreator.providedBy(value)
        or hasattr(value, "getContext")  # an old-style context factory (CertificateOptions)
    )


def serverTLSFactory(
    value: ServerTLS, factory: IProtocolFactory, clock: IReactorTime
) -> GnetTLSFactory:
    """C{factory} behind TLS served with C{value} (a listener's setting)."""
    if isinstance(value, TLSConfig):
        return value.wrapFactory(factory, clock)
    return GnetTLSFactory(value, False, factory, clock, DEFAULT_HANDSHAKE_TIMEOUT)


def fileConfigs(tls: Mapping[str | None, ServerTLS] | None) -> list[TLSConfig]:
    """The L{TLSConfig}s among the listeners' settings C{tls}, each once."""
    seen: list[TLSConfig] = []
    for value in (tls or {}).values():
        if isinstance(value, TLSConfig) and all(v is not value for v in seen):
            seen.append(value)
    return seen


def reloadConfigs(
    configs: Iterable[TLSConfig], files: Mapping[str, bytes] | None = None
) -> list[str]:
    """
    L{TLSConfig.reload} each of C{configs} (from the disk, or from
    C{files}); the error messages (empty: all reloaded).  A config that
    fails keeps its certificate; the others are reloaded all the same.
    """
    errors = []
    for cfg in configs:
        try:
            cfg.reload(files)
        except TLSError as e:
            errors.append(str(e))
    return errors


def validatedFiles(configs: Iterable[TLSConfig]) -> dict[str, bytes]:
    """The bytes of the files of C{configs} as validated last, by path."""
    files: dict[str, bytes] = {}
    for cfg in configs:
        files.update(cfg._validated)  # noqa: SLF001  (TLSConfig's own, read in its module)
    return files


@dataclass(frozen=True)
class TLSState:
    """
    The negotiated parameters of a TLS connection, with the field names of
    Go's C{crypto/tls.ConnectionState}.

    @ivar Version: C{"TLSv1.2"} or C{"TLSv1.3"}.
    @ivar CipherSuite: OpenSSL's name of the cipher suite.
    @ivar NegotiatedProtocol: the ALPN result (C{""}: none).
    @ivar ServerName: the SNI name the client asked for (C{""}: none).
    @ivar PeerCertificates: the peer's certificates, leaf first
        (C{cryptography} C{x509.Certificate}s; empty when none was sent).
    @ivar HandshakeComplete: True once the handshake finished.
    """

    Version: str
    CipherSuite: str
    NegotiatedProtocol: str
    ServerName: str
    PeerCertificates: tuple[x509.Certificate, ...]
    HandshakeComplete: bool


def connectionState(transport: object, handshakeComplete: bool = True) -> TLSState | None:
    """The L{TLSState} of a TLS transport, C{None} for any other."""
    found = tlsConnection(transport)
    if found is None:
        return None
    c, proto = found
    name = c.get_servername()
    certs = []
    leaf = c.get_peer_certificate()
    if leaf is not None:
        certs.append(leaf.to_cryptography())
    chain = c.get_peer_cert_chain() or []
    for x in chain:
        cert = x.to_cryptography()
        if not certs or cert != certs[0]:
            certs.append(cert)
    return TLSState(
        Version=c.get_protocol_version_name() or "",
        CipherSuite=c.get_cipher_name() or "",
        NegotiatedProtocol=proto.decode("ascii", "replace") if proto else "",
        ServerName=name.decode("ascii", "replace") if name else "",
        PeerCertificates=tuple(certs),
        HandshakeComplete=handshakeComplete,
    )


# -- client ---------------------------------------------------------------------


@dataclass
class ClientTLS:
    """
    How a L{gnetcompat.Client} dials TLS.

    @ivar caFile: PEM CAs to trust (default: the platform's trust store).
    @ivar serverName: the name to verify and send as SNI (default: the host
        part of the dialled address).
    @ivar certFile: a client certificate (PEM) to present, with C{keyFile}
        (default: C{certFile}).
    @ivar alpn: ALPN protocols to offer.
    @ivar creator: a ready C{IOpenSSLClientConnectionCreator} (e.g. from
        C{twisted.internet.ssl.optionsForClientTLS}); overrides the rest.
    @ivar handshakeTimeout: seconds the handshake may take.
    """

    caFile: str | None = None
    serverName: str | None = None
    certFile: str | None = None
    keyFile: str | None = None
    alpn: Sequence[str] = ()
    creator: IOpenSSLClientConnectionCreator | None = None
    handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    _cache: dict[str, IOpenSSLClientConnectionCreator] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def check(self) -> None:
        """@raise TLSError: a bad setting or file (naming it)."""
        _checkHandshakeTimeout("ClientTLS", self.handshakeTimeout)
        if self.creator is None:
            self.creatorFor("localhost")

    def creatorFor(self, host: str) -> IOpenSSLClientConnectionCreator:
        """The connection creator for dialling C{host}."""
        if self.creator is not None:
            return self.creator
        name = self.serverName or host
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        kw: dict[str, Any] = {}
        if self.caFile is not None:
            # (Twisted's certificate helpers are untyped: hence the ignores)
            roots = [ssl.Certificate(c) for c in _certificates("caFile", self.caFile)]  # type: ignore[no-untyped-call]
            kw["trustRoot"] = ssl.trustRootFromCertificates(roots)  # type: ignore[no-untyped-call]
        if self.certFile is not None:
            keyFile = self.keyFile or self.certFile
            cert = _certificates("client certificate file", self.certFile)[0]
            try:
                key = crypto.load_privatekey(crypto.FILETYPE_PEM, _read("client key file", keyFile))
            except crypto.Error:
                raise TLSError(
                    f"TLS client key file {keyFile!r}: no PEM private key in it"
                ) from None
            # (Twisted: untyped, as above)
            certificate = ssl.Certificate(cert)  # type: ignore[no-untyped-call]
            keyPair = ssl.KeyPair(key)  # type: ignore[no-untyped-call]
            make = ssl.PrivateCertificate.fromCertificateAndKeyPair
            kw["clientCertificate"] = make(certificate, keyPair)  # type: ignore[no-untyped-call]
        if self.alpn:
            kw["acceptableProtocols"] = [p.encode("ascii") for p in self.alpn]
        creator = ssl.optionsForClientTLS(name, **kw)
        self._cache[name] = creator
        return creator

    def wrapFactory(
        self, factory: IProtocolFactory, host: str, clock: IReactorTime
    ) -> GnetTLSFactory:
        """C{factory} behind client TLS for a connection to C{host}."""
        return GnetTLSFactory(self.creatorFor(host), True, factory, clock, self.handshakeTimeout)
