"""A throw-away certificate authority and one server certificate for the emulated venues' hostnames."""

from __future__ import annotations

import atexit
import datetime as _dt
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every hostname that ccxt 4.5.90 uses for the endpoints the emulator serves (production URLs).
VENUE_HOSTS: dict[str, tuple[str, ...]] = {
    "binance": ("api.binance.com", "fapi.binance.com"),
    "bybit": ("api.bybit.com",),
    "okx": ("www.okx.com",),
}
ALL_HOSTS: tuple[str, ...] = tuple(h for hosts in VENUE_HOSTS.values() for h in hosts)


@dataclass(frozen=True)
class LoopbackPKI:
    """Paths of the generated CA certificate and the server's certificate chain and key."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_pem), str(self.key_pem))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA and verifies hostnames as in production."""
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


_lock = threading.Lock()
_pki: LoopbackPKI | None = None


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _generate(directory: Path, hosts: tuple[str, ...]) -> LoopbackPKI:
    # A fixed validity window keeps the certificates independent of when they were made;
    # only cryptographic randomness (keys, serials) varies between runs.
    not_before = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)
    not_after = _dt.datetime(2099, 1, 1, tzinfo=_dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("execution-ledger test CA"))
        .issuer_name(_name("execution-ledger test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = directory / "ca.pem"
    cert_pem = directory / "server.pem"
    key_pem = directory / "server.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return LoopbackPKI(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)


def get_pki() -> LoopbackPKI:
    """The process-wide test PKI, generated on first use into a temporary directory."""
    global _pki
    with _lock:
        if _pki is None:
            directory = Path(tempfile.mkdtemp(prefix="exchange-emulator-pki-"))
            atexit.register(shutil.rmtree, directory, True)
            _pki = _generate(directory, ALL_HOSTS)
        return _pki
