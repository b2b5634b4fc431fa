"""Shared field types and Octavia's enumerations."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from shoal.addresses import parse_address

__all__ = [
    "AdminState",
    "Description",
    "IpAddressStr",
    "Name",
    "OctaviaModel",
    "Port",
    "Tags",
    "Uuid",
    "WsBool",
    "WsInt",
    "parse_bool",
]


class OctaviaModel(BaseModel):
    """Unknown attributes are refused, as Octavia does."""

    model_config = ConfigDict(extra="forbid")


# WSME (Octavia's type layer) reads a JSON string of digits as an integer and the usual
# spellings of yes/no as booleans; the stock clients rely on it (python-octaviaclient sends
# connection_limit as "5", tempest sends protocol_port "80"). Anything else is refused.
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("Value should be a valid boolean")


def _int(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("Value should be a valid integer, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,20}", text):
            raise ValueError("Value should be a valid integer")
        return int(text)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("Value should be a valid integer")
    if isinstance(value, int | float):
        return int(value)
    raise ValueError("Value should be a valid integer")


WsInt = Annotated[int, BeforeValidator(_int)]
WsBool = Annotated[bool, BeforeValidator(parse_bool)]


def _ip(value: str) -> str:
    return str(parse_address(value))


def _printable(value: str) -> str:
    """Control characters (NUL, escapes, newlines) in a name end up in logs, configs and
    terminals: refused."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc" or c in _BIDI), None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} is not allowed")
    return value


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # reorder text


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR") from None


IpAddressStr = Annotated[str, Field(max_length=64), AfterValidator(_ip)]
CidrStr = Annotated[str, Field(max_length=64), AfterValidator(_cidr)]
Name = Annotated[str, Field(max_length=255), AfterValidator(_printable)]
Description = Annotated[str, Field(max_length=255), AfterValidator(_printable)]
Uuid = Annotated[str, Field(min_length=1, max_length=64)]
Port = Annotated[WsInt, Field(ge=1, le=65535)]
# Octavia bounds each tag (255 characters), not their number; 1024 keeps one object's
# row and every revision of it a sane size.
MAX_TAGS = 1024
Tags = Annotated[
    list[Annotated[str, Field(max_length=255), AfterValidator(_printable)]],
    Field(max_length=MAX_TAGS),
]
AdminState = WsBool
MAX_TIMEOUT_MS = 24 * 24 * 60 * 60 * 1000  # Octavia's ceiling: 24 days
TimeoutMs = Annotated[WsInt, Field(ge=0, le=MAX_TIMEOUT_MS)]

ListenerProtocol = Literal["TCP", "UDP", "HTTP", "HTTPS", "TERMINATED_HTTPS", "SCTP", "PROMETHEUS"]
PoolProtocol = Literal["TCP", "UDP", "HTTP", "HTTPS", "PROXY", "PROXYV2", "SCTP"]
Algorithm = Literal["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT"]
MonitorType = Literal["HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO", "UDP-CONNECT", "SCTP"]
HttpMethod = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]
L7Action = Literal["REDIRECT_TO_POOL", "REDIRECT_TO_URL", "REDIRECT_PREFIX", "REJECT"]
L7RuleType = Literal[
    "HOST_NAME",
    "PATH",
    "FILE_TYPE",
    "HEADER",
    "COOKIE",
    "SSL_CONN_HAS_CERT",
    "SSL_VERIFY_RESULT",
    "SSL_DN_FIELD",
]
CompareType = Literal["REGEX", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "EQUAL_TO"]
PersistenceType = Literal["SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"]


def _redirect_code(value: int) -> int:
    if value not in (301, 302, 303, 307, 308):
        raise ValueError("Value should be one of 301, 302, 303, 307, 308")
    return value


RedirectCode = Annotated[WsInt, AfterValidator(_redirect_code)]
