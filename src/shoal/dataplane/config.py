"""The data plane's desired state: node settings and VIPs with their backends.

Read from YAML or JSON (`shoal dataplane apply FILE`) or built by the agent from the controller's
desired state. Validation is complete before anything is written: an invalid file is refused with
one line naming the field, and the data plane keeps its last good state."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from shoal.dataplane import maglev
from shoal.errors import ConfigError

__all__ = [
    "BackendSpec",
    "DataplaneConfig",
    "FloodSettings",
    "Settings",
    "VipSpec",
    "load_config",
    "parse_config",
]


def _ip_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IP address (give a string)")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _ip_network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR (give a string)")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 CIDR") from None


IpNet = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    PlainValidator(_ip_network),
    PlainSerializer(str),
]
IpAddr = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    PlainValidator(_ip_address),
    PlainSerializer(str),
]
Port = Annotated[StrictInt, Field(ge=0, le=65535)]
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSpec(_Strict):
    """A backend of a VIP. weight 0 = draining (keeps its flows, gets no new ones);
    healthy false = down (out of the table, its cached flows re-hashed)."""

    address: IpAddr
    weight: Annotated[StrictInt, Field(ge=0, le=maglev.MAX_WEIGHT)] = 1
    healthy: bool = True


class VipSpec(_Strict):
    address: IpAddr
    port: Port
    protocol: Literal["tcp", "udp"]
    any_port: bool = False
    # srv6: IPv6 + a segment routing header whose one segment is the backend's address, an
    # End.DX4/End.DX6 SID on the backend (docs/dataplane.md#srv6); IPv6 backends only.
    encap: Literal["ipip", "gue", "srv6"] = "ipip"
    hash: Literal["5tuple", "source_ip"] = "5tuple"
    table_size: StrictInt = maglev.DEFAULT_TABLE_SIZE
    backends: list[BackendSpec] = Field(default_factory=list)
    # Client prefixes allowed to reach the VIP (a listener's allowed_cidrs); None or empty =
    # everyone. Kept sorted and without duplicates, so equal lists compare equal.
    allowed_cidrs: list[IpNet] | None = None

    @field_validator("allowed_cidrs")
    @classmethod
    def _canonical_cidrs(
        cls, value: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None
    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
        if not value:
            return None
        return sorted(set(value), key=lambda n: (n.network_address.packed, n.prefixlen))

    @model_validator(mode="after")
    def _check(self) -> VipSpec:
        for net in self.allowed_cidrs or []:
            if net.version != self.address.version:
                raise ValueError(
                    f"allowed CIDR {net} is IPv{net.version}, VIP {self.address} is "
                    f"IPv{self.address.version}"
                )
        if not maglev.is_prime(self.table_size) or not (
            maglev.MIN_TABLE_SIZE <= self.table_size <= maglev.MAX_TABLE_SIZE
        ):
            raise ValueError(
                f"table_size {self.table_size} must be a prime between "
                f"{maglev.MIN_TABLE_SIZE} and {maglev.MAX_TABLE_SIZE}"
            )
        if self.any_port != (self.port == 0):
            raise ValueError("port must be 0 exactly when any_port is true")
        if self.encap == "srv6":
            for be in self.backends:
                if be.address.version != 6:
                    raise ValueError(
                        f"backend {be.address} is IPv4: srv6 sends to an IPv6 SID per backend"
                    )
        seen: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for be in self.backends:
            if be.address in seen:
                raise ValueError(f"duplicate backend {be.address}")
            seen.add(be.address)
            if self.address.version == 6 and be.address.version == 4:
                raise ValueError(f"IPv6 VIP {self.address} cannot use IPv4 backend {be.address}")
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> VipSpec:
        copied = super().model_copy(update=update, deep=deep)
        for cached in ("key", "name"):  # computed from fields the update may change
            copied.__dict__.pop(cached, None)
        return copied

    # Cached: an apply reads them for every VIP, and the model is frozen.
    @cached_property
    def key(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str]:
        return (self.address, self.port, self.protocol)

    @cached_property
    def name(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.protocol}://{host}:{self.port if not self.any_port else '*'}"


class FloodSettings(_Strict):
    """SYN-flood fallback. Rates are new flows per second per CPU; Katran's fixed threshold
    is 125,000 per core. enter_rate 0 turns the fallback off."""

    enter_rate: Annotated[StrictInt, Field(ge=0)] = 125_000
    exit_rate: Annotated[StrictInt, Field(ge=0)] = 60_000
    hold_down: Annotated[float, Field(gt=0, le=3600)] = 10.0
    window: Annotated[float, Field(ge=0.001, le=10)] = 0.1

    @model_validator(mode="after")
    def _check(self) -> FloodSettings:
        if self.exit_rate > self.enter_rate:
            raise ValueError(f"exit_rate {self.exit_rate} is above enter_rate {self.enter_rate}")
        return self


class Settings(_Strict):
    """Node-wide settings. `seed` must be the same on every L4 node (identical tables)."""

    seed: Annotated[str, Field(min_length=1, max_length=64)] = "shoal"
    udp_timeout: Annotated[float, Field(gt=0, le=86400)] = 30.0
    # Idle timeouts of TCP session entries (seconds); docs/dataplane.md says why these.
    tcp_timeout: Annotated[float, Field(gt=0, le=604800)] = 21600.0
    tcp_closing_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0
    flood: FloodSettings = Field(default_factory=FloodSettings)
    encap_source_v4: ipaddress.IPv4Network = ipaddress.IPv4Network("172.16.0.0/16")
    encap_source_v6: ipaddress.IPv6Network = ipaddress.IPv6Network("fd00:5ea1::/96")
    gateway_mac: str | None = None
    fib_lookup: bool = True
    # Carry a flow's previous owner (from the VIP's table before its last change) in the
    # tunnel of a TCP packet that misses the session cache, so the backends' decap can send
    # it on (docs/dataplane.md, "Second chance"). Off: such flows take the current pick.
    second_chance: bool = True
    gue_port: Annotated[StrictInt, Field(ge=1, le=65535)] = 6080
    mtu: Annotated[StrictInt, Field(ge=576, le=9216)] = 1500
    # Frag-needed / packet-too-big replies per second and CPU for packets that do not fit the
    # mtu once encapsulated (docs/dataplane.md); 0 = drop them silently.
    icmp_too_big_rate: Annotated[StrictInt, Field(ge=0, le=65535)] = 100
    # A FIB lookup per packet instead of one per backend, so ECMP routes towards backends
    # spread flows (costs the lookup on every packet).
    fib_per_flow: bool = False

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.gateway_mac is not None and not MAC_RE.match(self.gateway_mac):
            raise ValueError(
                f"gateway_mac {self.gateway_mac!r} is not a MAC like 02:00:00:00:00:01"
            )
        if not self.fib_lookup and self.gateway_mac is None:
            raise ValueError("fib_lookup false needs a gateway_mac")
        if self.encap_source_v6.prefixlen > 96:
            raise ValueError("encap_source_v6 must be a /96 or shorter (32 bits vary per flow)")
        return self


class DataplaneConfig(_Strict):
    settings: Settings = Field(default_factory=Settings)
    vips: list[VipSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DataplaneConfig:
        seen: set[tuple[object, int, str]] = set()
        for vip in self.vips:
            if vip.key in seen:
                raise ValueError(f"duplicate VIP {vip.name}")
            seen.add(vip.key)
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(data: Any, source: str = "config") -> DataplaneConfig:
    """Validates a decoded document; every error becomes one ConfigError line."""
    try:
        return DataplaneConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _location(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{msg}{more}") from None


def load_config(path: str | Path) -> DataplaneConfig:
    """Reads a YAML or JSON file (JSON is YAML, but .json gets the stricter parser)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise ConfigError(f"{p}: not valid {kind}: {first}") from None
    if data is None:
        data = {}
    return parse_config(data, str(p))
