"""A small PKI for tests: a root, an intermediate and leaf certificates, as PEM."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self, passphrase: str | None = None) -> str:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        ).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make(
    cn: str | None,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    dns: list[str] | None = None,
    days: int = 365,
    start_days: int = -1,
) -> Issued:
    """cn None: a subject with an organisation only (no host name anywhere)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = (
        _name(cn) if cn else x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Nameless")])
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Issued(cert, key)


class Pki:
    def __init__(self) -> None:
        self.root = make("Test Root", ca=True, days=3650)
        self.intermediate = make("Test Intermediate", self.root, ca=True, days=1800)

    def leaf(self, *hosts: str, **kw: object) -> Issued:
        return make(hosts[0], self.intermediate, dns=list(hosts), **kw)  # type: ignore[arg-type]

    def upload(self, leaf: Issued, name: str = "") -> dict[str, str]:
        return {
            "name": name,
            "certificate": leaf.cert_pem,
            "private_key": leaf.key_pem(),
            "chain": self.intermediate.cert_pem,
        }

    def pkcs12(self, leaf: Issued, passphrase: str) -> str:
        blob = pkcs12.serialize_key_and_certificates(
            b"t",
            leaf.key,
            leaf.cert,
            [self.intermediate.cert],
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
        return base64.b64encode(blob).decode()
