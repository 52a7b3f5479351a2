"""
Certificates for the TLS tests, generated at test time with C{cryptography}:
a private CA, a server certificate for C{localhost}, 127.0.0.1 and ::1
signed by it, a client certificate, and a second (untrusted) CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Certs:
    """Paths of one generated set (PEM files in C{directory})."""

    directory: str
    caCert: str
    caKey: str
    serverCert: str
    serverKey: str
    serverChain: str  # leaf + CA in one file
    clientCert: str
    clientKey: str
    otherCaCert: str  # a CA nobody trusts
    otherServerCert: str  # a server certificate from that CA
    otherServerKey: str

    def clientContext(self, ca: str | None = None) -> ssl.SSLContext:
        """A Python client context trusting C{ca} (default: our CA)."""
        ctx = ssl.create_default_context(cafile=ca or self.caCert)
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _keyPem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str,
    ca: x509.Certificate,
    caKey: ec.EllipticCurvePrivateKey,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False
        )
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    return b.sign(caKey, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def makeCerts(directory: str, serverCN: str = "gnetcompat test server") -> Certs:
    """Generate a full set into C{directory} (created if needed)."""
    os.makedirs(directory, exist_ok=True)
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    ca, caKey = _ca("gnetcompat test CA")
    server, serverKey = _leaf(serverCN, ca, caKey, server=True)
    client, clientKey = _leaf("gnetcompat test client", ca, caKey, server=False)
    other, otherKey = _ca("untrusted CA")
    otherServer, otherServerKey = _leaf("impostor", other, otherKey, server=True)
    return Certs(
        directory=directory,
        caCert=_write(p("ca.pem"), _pem(ca)),
        caKey=_write(p("ca.key"), _keyPem(caKey)),
        serverCert=_write(p("server.crt"), _pem(server)),
        serverKey=_write(p("server.key"), _keyPem(serverKey)),
        serverChain=_write(p("server-chain.pem"), _pem(server) + _pem(ca)),
        clientCert=_write(p("client.crt"), _pem(client)),
        clientKey=_write(p("client.key"), _keyPem(clientKey)),
        otherCaCert=_write(p("other-ca.pem"), _pem(other)),
        otherServerCert=_write(p("other-server.crt"), _pem(otherServer)),
        otherServerKey=_write(p("other-server.key"), _keyPem(otherServerKey)),
    )


def certsFor(case: Any) -> Certs:
    """A fresh certificate set in a temporary directory removed after C{case} (a trial test)."""
    d = tempfile.mkdtemp(prefix="gnetcompat-tls-")
    case.addCleanup(shutil.rmtree, d, True)
    return makeCerts(d)


def reissueServer(certs: Certs, serverCN: str) -> None:
    """Write a new server certificate and key (same CA) over the old files."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    with open(certs.caCert, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(certs.caKey, "rb") as f:
        caKey = load_pem_private_key(f.read(), None)
    server, key = _leaf(serverCN, ca, caKey, server=True)  # type: ignore[arg-type]
    _write(certs.serverCert, _pem(server))
    _write(certs.serverKey, _keyPem(key))


#: the RFC 7919 ffdhe2048 group as PEM Diffie-Hellman parameters (public, fixed)
FFDHE2048_PEM = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def makeRsaServer(directory: str) -> tuple[str, str, str]:
    """
    A self-signed RSA certificate for C{localhost} (DHE key exchange needs
    an RSA key), its key and ffdhe2048 parameters, written into
    C{directory}: their paths (certificate, key, DH parameters).
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(_name("localhost"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    keyPem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    return (
        _write(p("rsa.crt"), _pem(cert)),
        _write(p("rsa.key"), keyPem),
        _write(p("dh.pem"), FFDHE2048_PEM),
    )


def peerCN(der: bytes) -> str:
    """The common name of a DER certificate (as C{SSLSocket.getpeercert(True)} gives)."""
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore[return-value]
