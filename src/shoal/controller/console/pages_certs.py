"""Certificates: the list with expiry warnings, upload (PEM or PKCS#12) and issue from the
internal CA."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from shoal.controller.console.apiclient import ApiFailureError
from shoal.controller.console.context import Console, ConsoleDep

router = APIRouter()


async def _page(c: Console, status: int = 200, notice: str = "", error: str = "") -> HTMLResponse:
    try:
        certificates = (await c.api.get("/v2/shoal/certificates"))["certificates"]
    except ApiFailureError as exc:
        certificates, error, status = [], exc.line, exc.status
    return c.page(
        "certificates.html", status, certificates=certificates, notice=notice, error=error
    )


@router.get("/certificates")
async def certificates(c: ConsoleDep) -> HTMLResponse:
    return await _page(c)


def certificate_body(form: dict[str, str]) -> dict[str, Any]:
    """The API's body for the chosen source; empty fields stay out so the API's own
    validation names what is missing."""
    body: dict[str, Any] = {"name": form.get("name", "").strip()}
    source = form.get("source", "")
    if source == "issue":
        names = [n for n in form.get("dns_names", "").replace(",", " ").split() if n]
        days = form.get("days", "").strip()
        body["issue"] = {
            "common_name": form.get("common_name", "").strip(),
            "dns_names": names,
            **({"days": int(days) if days.isdigit() else days} if days else {}),
        }
    elif source == "pkcs12":
        body["pkcs12"] = form.get("pkcs12", "").strip()
    elif source == "pem":
        body["certificate"] = form.get("certificate", "")
        body["private_key"] = form.get("private_key", "")
        body["chain"] = form.get("chain", "")
    if form.get("passphrase"):
        body["passphrase"] = form["passphrase"]
    return body


@router.post("/certificates")
async def add_certificate(c: ConsoleDep) -> HTMLResponse:
    form = await c.form()
    try:
        reply = await c.api.call(
            "POST", "/v2/shoal/certificates", {"certificate": certificate_body(form)}
        )
    except ApiFailureError as exc:
        return await _page(c, exc.status, error=exc.line)
    cert = reply.body["certificate"]
    return await _page(c, notice=f"Certificate {cert['name'] or cert['id']} stored")
