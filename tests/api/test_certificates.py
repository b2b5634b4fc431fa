"""Certificates: what is refused and why, what is stored (keys encrypted, never returned),
the internal CA, and listeners that use certificates."""

from __future__ import annotations

import pytest
from cryptography import x509
from sqlalchemy import create_engine, text

from ..pki import Pki, make
from .helpers import Api

PKI = Pki()


def upload(api: Api, body: dict) -> dict:
    return api.ok("POST", "/v2/shoal/certificates", {"certificate": body}, expect=201)[
        "certificate"
    ]


def refused(api: Api, body: dict) -> str:
    r = api.request("POST", "/v2/shoal/certificates", {"certificate": body})
    assert r.status_code == 400, r.text
    return str(r.json()["faultstring"])


def test_pem_upload_and_no_key_ever_comes_back(alice: Api, database_url: str) -> None:
    leaf = PKI.leaf("www.example.com", "example.com")
    cert = upload(alice, PKI.upload(leaf, "www"))
    assert cert["common_name"] == "www.example.com"
    assert cert["dns_names"] == ["www.example.com", "example.com"]
    assert cert["chain_length"] == 1 and cert["source"] == "upload"
    assert 360 <= cert["expires_in_days"] <= 365 and not cert["expiring_soon"]
    shown = alice.ok("GET", f"/v2/shoal/certificates/{cert['id']}")["certificate"]
    listed = alice.ok("GET", "/v2/shoal/certificates")["certificates"]
    for doc in (cert, shown, *listed):
        assert "private_key" not in doc and "PRIVATE KEY" not in str(doc)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT private_key FROM certificates")).scalar_one()
    engine.dispose()
    assert "PRIVATE KEY" not in stored and len(stored) > 100  # encrypted at rest


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("garbage", "not PEM certificates"),
        ("key mismatch", "does not match the certificate's public key"),
        ("chain order", "did not issue certificate"),
        ("expired", "expired on"),
        ("not yet valid", "not valid before"),
        ("no names", "names no host"),
        ("bad key", "not a PEM private key"),
        ("encrypted key without passphrase", "give its passphrase"),
        ("wrong passphrase", "wrong passphrase"),
        ("two sources", "exactly one of"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_nothing_is_stored(
    alice: Api, case: str, needle: str
) -> None:
    leaf = PKI.leaf("a.example")
    body = PKI.upload(leaf)
    if case == "garbage":
        body["certificate"] = "hello"
    elif case == "key mismatch":
        body["private_key"] = PKI.leaf("b.example").key_pem()
    elif case == "chain order":
        body["chain"] = PKI.root.cert_pem + PKI.intermediate.cert_pem
    elif case == "expired":
        old = PKI.leaf("a.example", days=-1, start_days=-30)
        body = PKI.upload(old)
    elif case == "not yet valid":
        body = PKI.upload(PKI.leaf("a.example", start_days=2))
    elif case == "no names":
        body = PKI.upload(make(None, PKI.intermediate))
    elif case == "bad key":
        body["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    elif case == "encrypted key without passphrase":
        body["private_key"] = leaf.key_pem("s3cret")
    elif case == "wrong passphrase":
        body["private_key"], body["passphrase"] = leaf.key_pem("s3cret"), "nope"
    elif case == "two sources":
        body["pkcs12"] = PKI.pkcs12(leaf, "x")
    assert needle in refused(alice, body)
    assert alice.ok("GET", "/v2/shoal/certificates")["certificates"] == []


def test_pkcs12_and_passphrase(alice: Api) -> None:
    leaf = PKI.leaf("p12.example")
    cert = upload(alice, {"pkcs12": PKI.pkcs12(leaf, "pw"), "passphrase": "pw", "name": "p"})
    assert cert["source"] == "pkcs12" and cert["chain_length"] == 1
    assert "wrong passphrase" in refused(
        alice, {"pkcs12": PKI.pkcs12(leaf, "pw"), "passphrase": "nope"}
    )
    assert "not base64" in refused(alice, {"pkcs12": "@@@"})
    encrypted = PKI.upload(leaf)
    encrypted["private_key"], encrypted["passphrase"] = leaf.key_pem("k"), "k"
    assert upload(alice, encrypted)["common_name"] == "p12.example"


def test_expiring_soon(alice: Api) -> None:
    cert = upload(alice, PKI.upload(PKI.leaf("soon.example", days=10)))
    assert cert["expiring_soon"] and cert["expires_in_days"] <= 10


def test_internal_ca_issues_certificates_it_can_verify(alice: Api) -> None:
    cert = upload(
        alice,
        {
            "name": "internal",
            "issue": {"common_name": "api.internal", "dns_names": ["api2.internal"], "days": 30},
        },
    )
    assert cert["source"] == "internal-ca" and cert["dns_names"] == [
        "api.internal",
        "api2.internal",
    ]
    ca = x509.load_pem_x509_certificate(
        alice.ok("GET", "/v2/shoal/ca")["ca"]["certificate"].encode()
    )
    leaf = x509.load_pem_x509_certificate(cert["certificate"].encode())
    leaf.verify_directly_issued_by(ca)


def test_listeners_use_certificates_by_id_or_ref(alice: Api, bob: Api) -> None:
    cert = upload(alice, PKI.upload(PKI.leaf("shop.example")))
    lb = alice.lb()
    li = alice.listener(
        lb["id"],
        443,
        "TERMINATED_HTTPS",
        default_tls_container_ref=f"https://keys.example/v1/containers/{cert['id']}",
    )
    assert li["default_tls_container_ref"].endswith(cert["id"])
    r = alice.request(
        "POST",
        "/v2/lbaas/listeners",
        {
            "listener": {
                "loadbalancer_id": lb["id"],
                "protocol": "TERMINATED_HTTPS",
                "protocol_port": 8443,
                "default_tls_container_ref": "no-such-cert",
            }
        },
    )
    assert r.status_code == 400 and "does not exist" in r.json()["faultstring"]
    r = alice.request("DELETE", f"/v2/shoal/certificates/{cert['id']}")
    assert r.status_code == 409 and "used by listener" in r.json()["faultstring"]
    other = bob.lb()  # bob cannot use alice's certificate
    r = bob.request(
        "POST",
        "/v2/lbaas/listeners",
        {
            "listener": {
                "loadbalancer_id": other["id"],
                "protocol": "TERMINATED_HTTPS",
                "protocol_port": 443,
                "default_tls_container_ref": cert["id"],
            }
        },
    )
    assert r.status_code == 400
    assert bob.request("GET", f"/v2/shoal/certificates/{cert['id']}").status_code == 404


def test_issue_refuses_names_that_are_not_ascii_dns(alice: Api) -> None:
    r = alice.request(
        "POST",
        "/v2/shoal/certificates",
        {"certificate": {"issue": {"common_name": "api.internal", "dns_names": ["\u0080"]}}},
    )
    assert r.status_code == 400 and "dns_names" in r.json()["faultstring"]
