"""SQLAlchemy models: one table per Octavia resource, plus revisions, changes, nodes, tokens,
quotas, audit and events. Pydantic schemas (controller/schemas) are the other representation;
there is no third."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditEntry",
    "AvailabilityZone",
    "AvailabilityZoneProfile",
    "Base",
    "Certificate",
    "Change",
    "Event",
    "FeedMark",
    "Flavor",
    "FlavorProfile",
    "HealthMonitor",
    "L7Policy",
    "L7Rule",
    "Listener",
    "LoadBalancer",
    "Member",
    "Node",
    "NodeCredential",
    "NodeLbDigest",
    "NodeLbError",
    "Placement",
    "Pool",
    "Quota",
    "Revision",
    "Secret",
    "Token",
    "VipPool",
    "new_id",
    "utcnow",
]


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Naive UTC. Stored with microseconds (liveness and timeouts compare them); the API shows
    seconds, as Octavia does."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class _Resource:
    """Columns every Octavia resource has."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    provisioning_status: Mapped[str] = mapped_column(String(16), default="PENDING_CREATE")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


class LoadBalancer(_Resource, Base):
    __tablename__ = "load_balancers"
    __table_args__ = (
        Index(
            "uq_load_balancers_served_vip",
            "vip_address",
            unique=True,
            sqlite_where=text("provider != 'noop'"),
            postgresql_where=text("provider != 'noop'"),
        ),
        # Every holder of an address, noop ones too: VIP allocation looks candidates up here
        # (the partial index above serves only queries that exclude noop balancers).
        Index("ix_load_balancers_vip_address", "vip_address"),
        # The few waiting for their nodes: status.refresh_pending runs on every report.
        Index(
            "ix_load_balancers_unsettled",
            "id",
            sqlite_where=text("provisioning_status != 'ACTIVE'"),
            postgresql_where=text("provisioning_status != 'ACTIVE'"),
        ),
    )

    description: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(8), default="l7")  # l4 | l7
    flavor_id: Mapped[str | None] = mapped_column(String(36), default=None)
    provider: Mapped[str] = mapped_column(String(64), default="shoal")
    availability_zone: Mapped[str | None] = mapped_column(String(255), default=None)
    # Unique among the balancers that serve traffic (index below); the noop provider's
    # configure nothing, so they may repeat one (tempest's fixed test VIPs, as in Octavia).
    vip_address: Mapped[str] = mapped_column(String(64))
    vip_subnet_id: Mapped[str | None] = mapped_column(String(64), default=None)
    vip_network_id: Mapped[str | None] = mapped_column(String(64), default=None)
    vip_port_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Revision bookkeeping: the latest revision, the change that published it, its config.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    revision_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The API request that published the current revision: agents log it when they apply it.
    revision_request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    current_config: Mapped[str] = mapped_column(Text, default="{}")
    provisioning_reason: Mapped[str | None] = mapped_column(Text, default=None)
    pending_since: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    listeners: Mapped[list[Listener]] = relationship(
        back_populates="load_balancer", cascade="all, delete-orphan", order_by="Listener.id"
    )
    pools: Mapped[list[Pool]] = relationship(
        back_populates="load_balancer", cascade="all, delete-orphan", order_by="Pool.id"
    )


class Listener(_Resource, Base):
    __tablename__ = "listeners"
    __table_args__ = (UniqueConstraint("load_balancer_id", "protocol_port", "l4_protocol"),)

    description: Mapped[str] = mapped_column(String(255), default="")
    load_balancer_id: Mapped[str] = mapped_column(ForeignKey("load_balancers.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(32))
    l4_protocol: Mapped[str] = mapped_column(String(8))  # tcp | udp: what the port is unique in
    protocol_port: Mapped[int] = mapped_column(Integer)
    connection_limit: Mapped[int] = mapped_column(Integer, default=-1)
    default_pool_id: Mapped[str | None] = mapped_column(
        ForeignKey("pools.id", use_alter=True, ondelete="SET NULL"), default=None
    )
    timeout_client_data: Mapped[int] = mapped_column(Integer, default=50000)
    timeout_member_connect: Mapped[int] = mapped_column(Integer, default=5000)
    timeout_member_data: Mapped[int] = mapped_column(Integer, default=50000)
    timeout_tcp_inspect: Mapped[int] = mapped_column(Integer, default=0)
    allowed_cidrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    insert_headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    default_tls_container_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    sni_container_refs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # HTTP Strict Transport Security on TERMINATED_HTTPS listeners (Octavia 2.27).
    hsts_max_age: Mapped[int | None] = mapped_column(Integer, default=None)
    hsts_include_subdomains: Mapped[bool] = mapped_column(Boolean, default=False)
    hsts_preload: Mapped[bool] = mapped_column(Boolean, default=False)

    load_balancer: Mapped[LoadBalancer] = relationship(back_populates="listeners")
    l7policies: Mapped[list[L7Policy]] = relationship(
        back_populates="listener", cascade="all, delete-orphan", order_by="L7Policy.position"
    )


class Pool(_Resource, Base):
    __tablename__ = "pools"

    description: Mapped[str] = mapped_column(String(255), default="")
    load_balancer_id: Mapped[str] = mapped_column(ForeignKey("load_balancers.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(32))
    lb_algorithm: Mapped[str] = mapped_column(String(32))
    session_persistence: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    tls_enabled: Mapped[bool] = mapped_column(Boolean, default=False)

    load_balancer: Mapped[LoadBalancer] = relationship(back_populates="pools")
    members: Mapped[list[Member]] = relationship(
        back_populates="pool", cascade="all, delete-orphan", order_by="Member.id"
    )
    healthmonitor: Mapped[HealthMonitor | None] = relationship(
        back_populates="pool", cascade="all, delete-orphan", uselist=False
    )


class Member(_Resource, Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("pool_id", "address", "protocol_port"),)

    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"), index=True)
    address: Mapped[str] = mapped_column(String(64))
    # The address as the client wrote it, when not canonical ("2001:db8:0:0:0:0:0:1"):
    # Octavia shows it back that way; everything else uses the canonical address.
    address_given: Mapped[str | None] = mapped_column(String(64), default=None)
    monitor_address_given: Mapped[str | None] = mapped_column(String(64), default=None)
    protocol_port: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    backup: Mapped[bool] = mapped_column(Boolean, default=False)
    subnet_id: Mapped[str | None] = mapped_column(String(64), default=None)
    monitor_address: Mapped[str | None] = mapped_column(String(64), default=None)
    monitor_port: Mapped[int | None] = mapped_column(Integer, default=None)
    # Health, decided here from the agents' check results (not part of revisions).
    health: Mapped[str] = mapped_column(String(8), default="UNKNOWN")  # UNKNOWN | UP | DOWN
    health_streak: Mapped[int] = mapped_column(Integer, default=0)  # +n successes, -n failures
    health_detail: Mapped[str | None] = mapped_column(Text, default=None)
    health_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    pool: Mapped[Pool] = relationship(back_populates="members")


class HealthMonitor(_Resource, Base):
    __tablename__ = "health_monitors"

    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    delay: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    max_retries_down: Mapped[int] = mapped_column(Integer, default=3)
    http_method: Mapped[str | None] = mapped_column(String(16), default=None)
    url_path: Mapped[str | None] = mapped_column(String(2048), default=None)
    expected_codes: Mapped[str | None] = mapped_column(String(64), default=None)
    http_version: Mapped[float | None] = mapped_column(default=None)
    domain_name: Mapped[str | None] = mapped_column(String(255), default=None)

    pool: Mapped[Pool] = relationship(back_populates="healthmonitor")


class L7Policy(_Resource, Base):
    __tablename__ = "l7policies"

    description: Mapped[str] = mapped_column(String(255), default="")
    listener_id: Mapped[str] = mapped_column(ForeignKey("listeners.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    redirect_pool_id: Mapped[str | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), default=None
    )
    redirect_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    redirect_prefix: Mapped[str | None] = mapped_column(String(2048), default=None)
    redirect_http_code: Mapped[int | None] = mapped_column(Integer, default=None)

    listener: Mapped[Listener] = relationship(back_populates="l7policies")
    rules: Mapped[list[L7Rule]] = relationship(
        back_populates="policy", cascade="all, delete-orphan", order_by="L7Rule.id"
    )


class L7Rule(_Resource, Base):
    __tablename__ = "l7rules"

    l7policy_id: Mapped[str] = mapped_column(ForeignKey("l7policies.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    compare_type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(255), default=None)
    value: Mapped[str] = mapped_column(String(255))
    invert: Mapped[bool] = mapped_column(Boolean, default=False)

    policy: Mapped[L7Policy] = relationship(back_populates="rules")


class Revision(Base):
    """An immutable snapshot of one load balancer's desired configuration."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("load_balancer_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_balancer_id: Mapped[str] = mapped_column(String(36), index=True)  # outlives the LB
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    number: Mapped[int] = mapped_column(Integer)
    parent: Mapped[int | None] = mapped_column(Integer, default=None)
    author: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    config: Mapped[str] = mapped_column(Text)  # canonical JSON; "null" when deleted
    digest: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)  # the API call's


class Change(Base):
    """The feed agents follow: each write appends one row per load balancer it changed (a
    revision, a health decision, a placement), or one without a load balancer for what
    concerns all of them (a node's state, the set of live nodes). The id is the position;
    services/feed.py assigns it at commit, in commit order."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    load_balancer_id: Mapped[str | None] = mapped_column(String(36), default=None)
    kind: Mapped[str] = mapped_column(String(16))  # revision | health | placement | node


class FeedMark(Base):
    """What the feed last told the agents about state no write changes: the set of live
    nodes (a digest), so that of several controllers noticing a node come or go, one
    records it."""

    __tablename__ = "feed_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Certificate(Base):
    """A TLS certificate with its chain; the private key is encrypted at rest and never
    leaves the controller except towards the L7 nodes that terminate TLS with it."""

    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    certificate: Mapped[str] = mapped_column(Text)  # PEM, the leaf
    chain: Mapped[str] = mapped_column(Text, default="")  # PEM, intermediates leaf-first
    private_key: Mapped[str] = mapped_column(Text)  # Fernet token of the PEM key
    common_name: Mapped[str | None] = mapped_column(String(255), default=None)
    dns_names: Mapped[list[Any]] = mapped_column(JSON, default=list)
    issuer: Mapped[str] = mapped_column(String(1024), default="")
    not_before: Mapped[dt.datetime] = mapped_column(DateTime)
    not_after: Mapped[dt.datetime] = mapped_column(DateTime)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the leaf, hex
    source: Mapped[str] = mapped_column(String(16), default="upload")  # upload|pkcs12|internal-ca
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Secret(Base):
    """Controller-wide secrets, encrypted like keys (the internal CA)."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Placement(Base):
    """Where an L7 load balancer runs: one row per (load balancer, L7 node). ACTIVE rows take
    new connections; DRAINING rows keep the ones they have until drain_until."""

    __tablename__ = "placements"

    load_balancer_id: Mapped[str] = mapped_column(
        ForeignKey("load_balancers.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # ACTIVE | DRAINING
    since: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    drain_until: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    # The change that made it ACTIVE: until the node has applied that, the L4 tier gives it
    # no new flows (HAProxy would not be listening yet).
    ready_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(8))  # l4 | l7
    cluster: Mapped[str] = mapped_column(String(255), default="default")
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    capacity: Mapped[int] = mapped_column(Integer, default=100)
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    admin_state: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # ACTIVE | DRAINING
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The node's own counters, routing and flood state from its last report (small). The
    # table digests are rows (NodeLbDigest) so that a report writes only the load balancers
    # it changed; per-LB and per-backend traffic (MBs at 10,000, sent every few seconds) are
    # their own columns, written by the reports that carry them and loaded only where read.
    counters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)
    lb_traffic: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, deferred=True)
    backend_traffic: Mapped[list[Any] | None] = mapped_column(JSON, default=None, deferred=True)
    # The number of the last report stored (None: none, or one from an agent that does not
    # number them): a delta report must name it as its base.
    report_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # L7 nodes: reachability as the L4 nodes' checks see it (decided here, like members).
    health: Mapped[str] = mapped_column(String(8), default="UNKNOWN")
    health_streak: Mapped[int] = mapped_column(Integer, default=0)
    data_address: Mapped[str | None] = mapped_column(String(64), default=None)


class NodeCredential(Base):
    """What an admin enrolled a node as, and the hash of the bearer credential its agent
    uses. The node's registrations must match it: a credential acts for this node only."""

    __tablename__ = "node_credentials"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # the node's name
    role: Mapped[str] = mapped_column(String(8))  # l4 | l7
    cluster: Mapped[str] = mapped_column(String(255), default="default")
    address: Mapped[str | None] = mapped_column(String(64), default=None)  # None: any
    data_address: Mapped[str | None] = mapped_column(String(64), default=None)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # After a rotation the old secret keeps working until previous_until (the grace).
    previous_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    previous_until: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


class NodeLbError(Base):
    """A node's report that it could not apply a load balancer's revision."""

    __tablename__ = "node_lb_errors"

    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    load_balancer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class NodeLbDigest(Base):
    """The Maglev table digests (VIP -> digest) a node last reported for one load balancer."""

    __tablename__ = "node_lb_digests"
    __table_args__ = (Index("ix_node_lb_digests_lb", "load_balancer_id"),)

    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    load_balancer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    digests: Mapped[Any] = mapped_column(JSON)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_lb_at", "load_balancer_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    project_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    load_balancer_id: Mapped[str | None] = mapped_column(String(36), default=None)
    node_id: Mapped[str | None] = mapped_column(String(36), default=None)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8), default="info")
    message: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | member | reader (agent: retired)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


class Quota(Base):
    """Per-project limits; None = the configured default, -1 = unlimited."""

    __tablename__ = "quotas"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    load_balancer: Mapped[int | None] = mapped_column(Integer, default=None)
    listener: Mapped[int | None] = mapped_column(Integer, default=None)
    pool: Mapped[int | None] = mapped_column(Integer, default=None)
    member: Mapped[int | None] = mapped_column(Integer, default=None)
    healthmonitor: Mapped[int | None] = mapped_column(Integer, default=None)
    l7policy: Mapped[int | None] = mapped_column(Integer, default=None)
    l7rule: Mapped[int | None] = mapped_column(Integer, default=None)


class AuditEntry(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))  # create | update | delete | rollback
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(36))
    load_balancer_id: Mapped[str | None] = mapped_column(String(36), default=None)
    revision: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")


class VipPool(Base):
    """An admin-defined range VIP addresses come from, and the projects that may use it.
    Shaped like a Neutron subnet (one prefix, a network grouping subnets) so it can be
    offered to OpenStack clients as the vip_subnet_id it already is."""

    __tablename__ = "vip_pools"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    network_id: Mapped[str] = mapped_column(String(36))  # groups pools, like a Neutron network
    cidr: Mapped[str] = mapped_column(String(64), unique=True)
    ip_version: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)  # every project may use it
    project_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # or only these
    # Every host below this offset in the pool is taken: allocation starts here, a released
    # VIP lowers it (services/vips), so the lowest free address costs no scan of the others.
    free_from: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


class FlavorProfile(Base):
    """What a flavor means to its provider: the provider's name and its metadata (JSON text,
    as Octavia stores and shows it; for shoal, {"kind": "l4"} or {"kind": "l7"})."""

    __tablename__ = "flavor_profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    provider_name: Mapped[str] = mapped_column(String(64))
    flavor_data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Flavor(Base):
    """A flavor tenants choose (flavor_id of a load balancer); admins define them."""

    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    flavor_profile_id: Mapped[str] = mapped_column(ForeignKey("flavor_profiles.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    profile: Mapped[FlavorProfile] = relationship()


class AvailabilityZoneProfile(Base):
    __tablename__ = "availability_zone_profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    provider_name: Mapped[str] = mapped_column(String(64))
    availability_zone_data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AvailabilityZone(Base):
    """Named by its name, as in Octavia (load balancers refer to it by name); the id is
    internal (ordering and paging)."""

    __tablename__ = "availability_zones"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    availability_zone_profile_id: Mapped[str] = mapped_column(
        ForeignKey("availability_zone_profiles.id"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    profile: Mapped[AvailabilityZoneProfile] = relationship()
