"""Certificates: upload (PEM or PKCS#12), issue from the internal CA, list, show, delete.
Private keys go in and never come out of this API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field, StrictInt, model_validator
from sqlalchemy import select

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.api.lbaas._shared import target_project
from shoal.controller.db.models import Certificate, Listener, utcnow
from shoal.controller.errors import Conflict, NotFound
from shoal.controller.schemas.common import Name, OctaviaModel
from shoal.controller.services import certs
from shoal.controller.services.keyring import load_keyring
from shoal.controller.views import ts

router = APIRouter(tags=["certificates"])
PEM_MAX = 200_000


DnsName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9*.-]+$")]


class IssueSpec(OctaviaModel):
    common_name: DnsName
    dns_names: list[DnsName] = Field(default_factory=list, max_length=100)
    days: StrictInt = Field(default=90, ge=1, le=825)


class CertificateCreate(OctaviaModel):
    name: Name = ""
    project_id: str | None = Field(default=None, max_length=64)
    certificate: str | None = Field(default=None, max_length=PEM_MAX)
    private_key: str | None = Field(default=None, max_length=PEM_MAX)
    chain: str = Field(default="", max_length=PEM_MAX)
    passphrase: str | None = Field(default=None, max_length=1024)
    pkcs12: str | None = Field(default=None, max_length=PEM_MAX)  # base64
    issue: IssueSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CertificateCreate:
        sources = [self.certificate is not None, self.pkcs12 is not None, self.issue is not None]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one of: certificate + private_key (PEM), pkcs12 "
                "(base64), or issue (from the internal CA)"
            )
        if self.certificate is not None and self.private_key is None:
            raise ValueError("a PEM certificate needs its private_key")
        return self


class CertificateCreateBody(OctaviaModel):
    certificate: CertificateCreate


def view(cert: Certificate, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    days = (cert.not_after - now).total_seconds() / 86400
    return {
        "id": cert.id,
        "name": cert.name,
        "project_id": cert.project_id,
        "common_name": cert.common_name,
        "dns_names": cert.dns_names,
        "issuer": cert.issuer,
        "not_before": ts(cert.not_before),
        "not_after": ts(cert.not_after),
        "expires_in_days": int(days),
        "expiring_soon": days < certs.EXPIRY_WARNING_DAYS,
        "fingerprint": cert.fingerprint,
        "source": cert.source,
        "chain_length": cert.chain.count("BEGIN CERTIFICATE"),
        "certificate": cert.certificate,
        "chain": cert.chain,
        "created_at": ts(cert.created_at),
    }


def _visible(session: Any, principal: CurrentPrincipal, cert_id: str) -> Certificate:
    cert = session.get(Certificate, cert_id)
    if cert is None or not principal.can_read(cert.project_id):
        raise NotFound.of("Certificate", cert_id)
    return cert  # type: ignore[no-any-return]


@router.post("/certificates", status_code=201)
def create_certificate(
    body: CertificateCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    spec = body.certificate
    principal.require_write()
    project = target_project(principal, spec.project_id)
    keyring = load_keyring(state.settings)
    with state.db.write() as session:
        if spec.issue is not None:
            parsed = certs.issue(
                session, keyring, spec.issue.common_name, spec.issue.dns_names, spec.issue.days
            )
            source = "internal-ca"
        elif spec.pkcs12 is not None:
            parsed = certs.parse_pkcs12(spec.pkcs12, spec.passphrase)
            source = "pkcs12"
        else:
            parsed = certs.parse_pem(
                spec.certificate or "", spec.private_key or "", spec.chain, spec.passphrase
            )
            source = "upload"
        leaf = parsed.leaf
        cert = Certificate(
            project_id=project,
            name=spec.name,
            certificate=parsed.pem(leaf),
            chain="".join(parsed.pem(c) for c in parsed.chain),
            private_key=keyring.encrypt(parsed.key_pem),
            common_name=parsed.common_name,
            dns_names=parsed.dns_names,
            issuer=leaf.issuer.rfc4514_string(),
            not_before=leaf.not_valid_before_utc.replace(tzinfo=None),
            not_after=leaf.not_valid_after_utc.replace(tzinfo=None),
            fingerprint=parsed.fingerprint,
            source=source,
        )
        session.add(cert)
        session.flush()
        return {"certificate": view(cert)}


@router.get("/certificates")
def list_certificates(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(Certificate).order_by(Certificate.created_at)
        if not principal.is_admin:
            query = query.where(Certificate.project_id == principal.project_id)
        now = utcnow()
        return {"certificates": [view(c, now) for c in session.scalars(query)]}


@router.get("/certificates/{cert_id}")
def get_certificate(cert_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        return {"certificate": view(_visible(session, principal, cert_id))}


@router.get("/ca")
def internal_ca(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    """The internal CA's certificate, for clients that must trust what it issues."""
    keyring = load_keyring(state.settings)
    with state.db.write() as session:
        return {"ca": {"certificate": certs.ca_certificate(session, keyring)}}


@router.delete("/certificates/{cert_id}", status_code=204)
def delete_certificate(cert_id: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_write()
    with state.db.write() as session:
        cert = _visible(session, principal, cert_id)
        for li in session.scalars(select(Listener).where(Listener.project_id == cert.project_id)):
            refs = [li.default_tls_container_ref, *(li.sni_container_refs or [])]
            if cert_id in {certs.cert_id_of(r) for r in refs if r}:
                raise Conflict(f"certificate {cert_id} is used by listener {li.id}")
        session.delete(cert)
    return Response(status_code=204)
