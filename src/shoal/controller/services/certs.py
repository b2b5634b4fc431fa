"""Certificates: validation of uploads (PEM or PKCS#12) and a built-in internal CA; private
keys are encrypted at rest by the keyring. Each refusal names the part and the reason, and
nothing is stored unless all of it is valid."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from shoal.controller.db.models import Certificate, Secret
from shoal.controller.errors import BadRequest
from shoal.controller.services.keyring import Keyring
from shoal.wire.feed import cert_id_of

__all__ = [
    "Keyring",
    "ParsedCertificate",
    "bundle",
    "cert_id_of",
    "is_barbican_ref",
    "issue",
    "parse_pem",
    "parse_pkcs12",
]

EXPIRY_WARNING_DAYS = 30


def is_barbican_ref(ref: str) -> bool:
    """A Barbican container or secret URL (what Octavia clients pass by default):
    https://<barbican>/v1/containers/<uuid> or .../v1/secrets/<uuid>."""
    return ref.startswith(("http://", "https://")) and ("/containers/" in ref or "/secrets/" in ref)


@dataclass
class ParsedCertificate:
    leaf: x509.Certificate
    chain: list[x509.Certificate]
    key_pem: bytes
    dns_names: list[str] = field(default_factory=list)

    @property
    def common_name(self) -> str | None:
        attrs = self.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    @property
    def fingerprint(self) -> str:
        return self.leaf.fingerprint(hashes.SHA256()).hex()

    def pem(self, cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"


def _load_certs(data: str, what: str) -> list[x509.Certificate]:
    if not data.strip():
        return []
    try:
        certs = x509.load_pem_x509_certificates(data.encode())
    except ValueError:
        raise BadRequest(f"{what}: not PEM certificates (-----BEGIN CERTIFICATE-----)") from None
    return certs


def _load_key(data: str, passphrase: str | None) -> bytes:
    try:
        key = serialization.load_pem_private_key(
            data.encode(), passphrase.encode() if passphrase else None
        )
    except TypeError:
        raise BadRequest("private_key: it is encrypted; give its passphrase") from None
    except ValueError:
        raise BadRequest("private_key: not a PEM private key, or a wrong passphrase") from None
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    public = parent.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            assert child.signature_hash_algorithm is not None
            public.verify(
                child.signature,
                child.tbs_certificate_bytes,
                padding.PKCS1v15(),
                child.signature_hash_algorithm,
            )
        elif isinstance(public, ec.EllipticCurvePublicKey):
            assert child.signature_hash_algorithm is not None
            public.verify(
                child.signature,
                child.tbs_certificate_bytes,
                ec.ECDSA(child.signature_hash_algorithm),
            )
        else:
            child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def validate(
    leaf: x509.Certificate,
    chain: list[x509.Certificate],
    key_pem: bytes,
    now: dt.datetime | None = None,
) -> ParsedCertificate:
    now = now or dt.datetime.now(dt.UTC)
    key = serialization.load_pem_private_key(key_pem, None)
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise BadRequest("private_key: does not match the certificate's public key")
    if leaf.not_valid_after_utc <= now:
        raise BadRequest(f"certificate: expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if leaf.not_valid_before_utc > now:
        raise BadRequest(
            f"certificate: not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    sequence = [leaf, *chain]
    for i in range(1, len(sequence)):
        if not _issued_by(sequence[i - 1], sequence[i]):
            raise BadRequest(
                f"chain: certificate {i + 1} ({_describe(sequence[i])}) did not issue "
                f"certificate {i} ({_describe(sequence[i - 1])}); give the chain leaf-first, "
                "each certificate followed by its issuer"
            )
    for i, cert in enumerate(chain, start=2):
        if cert.not_valid_after_utc <= now:
            raise BadRequest(
                f"chain: certificate {i} ({_describe(cert)}) expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d}"
            )
    names: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    parsed = ParsedCertificate(leaf, chain, key_pem, names)
    if not names and not parsed.common_name:
        raise BadRequest("certificate: names no host (no subjectAltName DNS names, no CN)")
    for name in names + ([parsed.common_name] if parsed.common_name else []):
        label = name.removeprefix("*.")
        if not label or any(c.isspace() for c in label) or ".." in label:
            raise BadRequest(f"certificate: {name!r} is not a valid DNS name")
    return parsed


def parse_pem(
    certificate: str, private_key: str, chain: str = "", passphrase: str | None = None
) -> ParsedCertificate:
    """A PEM upload. Extra certificates after the leaf in `certificate` count as chain."""
    certs = _load_certs(certificate, "certificate")
    if not certs:
        raise BadRequest("certificate: empty")
    key_pem = _load_key(private_key, passphrase)
    return validate(certs[0], certs[1:] + _load_certs(chain, "chain"), key_pem)


def parse_pkcs12(data_b64: str, passphrase: str | None = None) -> ParsedCertificate:
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except ValueError:
        raise BadRequest("pkcs12: not base64") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            raw, passphrase.encode() if passphrase else None
        )
    except ValueError:
        raise BadRequest("pkcs12: not a PKCS#12 file, or a wrong passphrase") from None
    if cert is None or key is None:
        raise BadRequest("pkcs12: needs both a certificate and its private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return validate(cert, list(extra or []), key_pem)


# ---- the internal CA ---------------------------------------------------------------------

CA_SECRET = "internal-ca"


def _ca(session: Session, keyring: Keyring) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The controller's CA, created on first use (EC P-256, 10 years)."""
    row = session.get(Secret, CA_SECRET)
    if row is not None:
        cert_pem, key_pem = keyring.decrypt(row.value).split(b"\n\n", 1)
        key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_pem), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shoal internal CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    blob = (
        cert.public_bytes(serialization.Encoding.PEM)
        + b"\n"
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    session.add(Secret(name=CA_SECRET, value=keyring.encrypt(blob)))
    session.flush()
    return cert, key


def ca_certificate(session: Session, keyring: Keyring) -> str:
    return _ca(session, keyring)[0].public_bytes(serialization.Encoding.PEM).decode()


def issue(
    session: Session,
    keyring: Keyring,
    common_name: str,
    dns_names: list[str],
    days: int,
    ip_addresses: list[str] | None = None,
) -> ParsedCertificate:
    """A server certificate from the internal CA, for internal services (the controller's
    own HTTPS too: reached by address, hence ip_addresses)."""
    ca_cert, ca_key = _ca(session, keyring)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = list(dict.fromkeys([common_name, *dns_names]))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return validate(cert, [ca_cert], key_pem)


def bundle(cert: Certificate, keyring: Keyring) -> str:
    """The PEM an L7 node loads: leaf, chain, then the decrypted key (HAProxy's order)."""
    key = keyring.decrypt(cert.private_key).decode().strip()
    parts = [cert.certificate.strip(), cert.chain.strip(), key]
    return "\n".join(p for p in parts if p) + "\n"
