"""The agent-to-controller report: what a node applied (or why not), its table digests, its
counters, and (L4 nodes) its routing state and per-backend traffic. The agents build it and
the controller validates it with the same models, so the contract lives here only.

Every list is bounded and every string short: one node's report can neither grow the
database without limit nor carry text that becomes a label or markup elsewhere. Unknown
fields are refused, as the rest of the controller's API does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

__all__ = [
    "MAX_BACKENDS",
    "MAX_PEERS",
    "REPORT_MAX",
    "BackendTraffic",
    "BgpPeer",
    "LbError",
    "NodeReport",
    "RoutingState",
]

MAX_PEERS = 64  # BGP sessions of one node: a few uplinks in practice
MAX_BACKENDS = 65536  # the L4 data plane's default backend capacity (max_backends)
COUNT_MAX = 2**64 - 1


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LbError(_Report):
    load_balancer_id: str = Field(max_length=36)
    revision: StrictInt = Field(ge=0, le=2**31 - 1)
    reason: str = Field(max_length=4000)


class BgpPeer(_Report):
    """One BGP session of the node's BIRD, with the BFD session to the same neighbour."""

    name: str = Field(max_length=64)  # the protocol's name in bird.conf
    neighbor: str = Field(default="", max_length=64)
    bgp_state: str = Field(max_length=32)  # Established, Active, Connect, Idle, ... or unknown
    bgp_since: str = Field(default="", max_length=32)  # BIRD's own time format
    bfd_state: str = Field(default="", max_length=16)  # Up, Down, Init, AdminDown; "": no BFD
    bfd_since: str = Field(default="", max_length=32)

    @property
    def established(self) -> bool:
        return self.bgp_state == "Established"


class RoutingState(_Report):
    """bird: "ok" when BIRD answered; "unknown" (with a one-line error) when it did not, or
    when the node has no BIRD ("none"). announced: VIPs the node announces now."""

    bird: Literal["ok", "unknown", "none"]
    error: str = Field(default="", max_length=200)
    peers: list[BgpPeer] = Field(default_factory=list, max_length=MAX_PEERS)
    announced: StrictInt = Field(default=0, ge=0, le=2**31 - 1)
    at: str = Field(default="", max_length=32)  # when the agent asked (UTC, ISO 8601)


class BackendTraffic(_Report):
    """One backend slot of one VIP of the node's data plane (packets and bytes sent)."""

    load_balancer_id: str = Field(max_length=36)
    vip: str = Field(max_length=64)  # "tcp://10.0.0.1:80"
    address: str = Field(max_length=45)
    packets: StrictInt = Field(default=0, ge=0, le=COUNT_MAX)
    bytes: StrictInt = Field(default=0, ge=0, le=COUNT_MAX)


REPORT_MAX = 2**62


class NodeReport(_Report):
    """Level-based: the node applied everything up to seq, except the listed errors.

    Whole (base None, what every agent before reports had sent): errors and digests are all
    of them. A delta (base set) holds only the load balancers whose digests or errors
    changed since the report numbered base, which the controller must have stored last:
    `digests` and `errors` replace those load balancers' entries, `removed` drops them,
    every other load balancer keeps what the controller has. A base that is not the
    controller's last is refused (409) and the agent sends a whole report. `report` numbers
    this one so that the next delta can name it.

    counters: "load_balancers" (per VIP traffic, heavy) may be absent: the controller keeps
    the last one it had."""

    seq: StrictInt = Field(ge=0, le=2**62)
    errors: list[LbError] = Field(default_factory=list, max_length=100000)
    # One row per load balancer on the controller: keys are load balancer ids.
    digests: dict[Annotated[str, Field(max_length=36)], Any] = Field(
        default_factory=dict, max_length=100000
    )
    counters: dict[str, Any] = Field(default_factory=dict)
    report: StrictInt | None = Field(default=None, ge=0, le=REPORT_MAX)
    base: StrictInt | None = Field(default=None, ge=0, le=REPORT_MAX)
    removed: list[Annotated[str, Field(max_length=36)]] = Field(
        default_factory=list, max_length=100000
    )
    version: str | None = Field(default=None, max_length=64)
    routing: RoutingState | None = None
    # None: not in this report (the agent sends traffic at most every few seconds, not with
    # every change); the controller keeps the last list it had.
    backends: list[BackendTraffic] | None = Field(default=None, max_length=MAX_BACKENDS)

    @model_validator(mode="after")
    def _delta_is_numbered(self) -> NodeReport:
        if self.base is not None and self.report is None:
            raise ValueError("a delta report (base) needs its own number (report)")
        if self.removed and self.base is None:
            raise ValueError("removed is only for a delta report (base)")
        if len({e.load_balancer_id for e in self.errors}) != len(self.errors):
            raise ValueError("one error per load balancer")
        return self
