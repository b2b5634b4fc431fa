"""The controller-to-agent feed: what an agent is told, and how it folds the answers into
the state it holds.

An answer (`Feed`) is either a snapshot (every load balancer the node serves, in full) or a
delta since the agent's position: the load balancers that changed, each in full, and the
ids of those the node no longer holds (tombstones). Positions are the controller database's
change numbers, so they mean the same on every controller process: an agent that switches
controllers, or restarts with its saved position, carries on where it was.

`DesiredState.merge` is the one way an agent folds an answer in; a snapshot replaces, a
delta upserts and removes. Folding a sequence of deltas must give exactly what a snapshot at
the same position gives (tests/unit/test_feed_property.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from shoal.wire.config import SCHEMA_VERSION, LoadBalancerConfig

__all__ = [
    "SCHEMA_VERSION",
    "DesiredState",
    "Feed",
    "FeedNode",
    "FeedSettings",
    "L7Backend",
    "LbState",
    "NodeCheck",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FeedNode(_Wire):
    id: str = ""
    name: str = ""
    role: str = "l4"
    cluster: str = "default"
    admin_state: str = "ACTIVE"


class FeedSettings(_Wire):
    seed: str = ""


class NodeCheck(_Wire):
    """An L7 node's monitor endpoint this L4 node checks."""

    node_id: str
    address: str
    port: int
    interval: float


class L7Backend(_Wire):
    """An L7 node behind an L7 load balancer's VIP, as the L4 tier sees it."""

    id: str
    address: str
    state: str  # ACTIVE | DRAINING | PENDING (placed, not applied by the node yet)
    healthy: bool


class LbState(_Wire):
    """One load balancer as this node must run it."""

    id: str
    revision: int
    seq: int = 0  # the feed position of its latest change
    config: LoadBalancerConfig
    member_health: dict[str, str] = Field(default_factory=dict)  # monitored members only
    health_checks: list[str] = Field(default_factory=list)  # pools this node checks
    l7_nodes: list[L7Backend] | None = None  # L7 load balancers, on L4 nodes
    placement: str | None = None  # on L7 nodes: ACTIVE | DRAINING
    request_id: str | None = None  # the API request that wrote this revision (for logs)


class Feed(_Wire):
    schema_version: int = SCHEMA_VERSION
    seq: int = 0  # the position this answer brings the agent to
    snapshot: bool = True  # the complete state, not a delta
    more: bool = False  # a delta cut short: ask again at once from seq
    changed: bool = True  # False: a long poll that timed out (nothing else is set)
    node: FeedNode = Field(default_factory=FeedNode)
    settings: FeedSettings = Field(default_factory=FeedSettings)
    node_checks: list[NodeCheck] = Field(default_factory=list)
    certificates: dict[str, str] = Field(default_factory=dict)  # id -> PEM bundle (L7)
    load_balancers: list[LbState] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)  # tombstones (deltas only)


class DesiredState(_Wire):
    """What the node must hold, folded from the feed. Load balancers keep their order of
    arrival; an unchanged one keeps its LbState object, so appliers can skip it by identity."""

    seq: int = -1
    node: FeedNode = Field(default_factory=FeedNode)
    settings: FeedSettings = Field(default_factory=FeedSettings)
    node_checks: list[NodeCheck] = Field(default_factory=list)
    certificates: dict[str, str] = Field(default_factory=dict)
    lbs: dict[str, LbState] = Field(default_factory=dict)
    # Which load balancers each of the last merges touched, so that an applier that saw
    # this state at version v can look at those alone (touched_since).
    _version: int = PrivateAttr(default=0)
    _journal: list[tuple[int, set[str] | None]] = PrivateAttr(default_factory=list)

    @property
    def version(self) -> int:
        return self._version

    def touched_since(self, version: int) -> set[str] | None:
        """The ids of the load balancers merges after `version` touched; None when not known
        (too long ago, or a snapshot replaced everything): look at them all."""
        if version > self._version:
            return None
        out: set[str] = set()
        for v, touched in reversed(self._journal):
            if v <= version:
                return out
            if touched is None:
                return None
            out |= touched
        return (
            out
            if version == self._version or (self._journal and self._journal[0][0] == version + 1)
            else None
        )

    @property
    def load_balancers(self) -> list[LbState]:
        return list(self.lbs.values())

    @classmethod
    def of(cls, document: DesiredState | Feed | dict[str, Any]) -> DesiredState:
        """A desired state from a whole document (tests, benchmarks, the old endpoint)."""
        if isinstance(document, DesiredState):
            return document
        feed = document if isinstance(document, Feed) else Feed.model_validate(document)
        state = cls()
        state.merge(feed)
        return state

    def merge(self, feed: Feed) -> set[str]:
        """Folds one answer in; returns the ids of the load balancers it touched."""
        if not feed.changed:
            return set()
        touched = set(feed.deleted)
        if feed.snapshot:
            touched |= set(self.lbs)
            self.lbs = {}
            self.certificates = {}
        for lb_id in feed.deleted:
            self.lbs.pop(lb_id, None)
        for lb in feed.load_balancers:
            self.lbs.pop(lb.id, None)  # re-inserted last: the order of changes
            self.lbs[lb.id] = lb
            touched.add(lb.id)
        self.seq = feed.seq
        self.node, self.settings, self.node_checks = feed.node, feed.settings, feed.node_checks
        self.certificates.update(feed.certificates)
        self._version += 1
        self._journal.append((self._version, None if feed.snapshot else set(touched)))
        del self._journal[:-64]
        if self.certificates:  # L7 nodes: drop bundles no load balancer uses any more
            wanted = self.certificate_ids()
            self.certificates = {k: v for k, v in self.certificates.items() if k in wanted}
        return touched

    def certificate_ids(self) -> set[str]:
        out: set[str] = set()
        for lb in self.lbs.values():
            for li in lb.config.listeners:
                refs = [li.default_tls_container_ref, *li.sni_container_refs]
                out |= {cert_id_of(r) for r in refs if r}
        return out

    def comparable(self) -> dict[str, Any]:
        """The content, without arrival order or position: what two ways of reaching the
        same state must agree on."""
        doc = self.model_dump(exclude={"lbs", "seq"})
        doc["lbs"] = {k: v.model_dump(exclude={"seq"}) for k, v in sorted(self.lbs.items())}
        return doc


def cert_id_of(ref: str) -> str:
    """A listener's certificate reference: the certificate's id, or any URL ending with it
    (what clients used to Barbican container refs send)."""
    return ref.rstrip("/").rsplit("/", 1)[-1]
