"""A load balancer's whole desired configuration as one canonical document (what revisions
store and agents apply), its validation, and the way back from a document to rows (rollback)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from typing import Any

from sqlalchemy.orm import Session

from shoal.controller.db.models import (
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Pool,
)
from shoal.controller.errors import BadRequest
from shoal.controller.services import providers
from shoal.wire.config import SCHEMA_VERSION, upgrade_config

__all__ = ["canonical", "config_of", "digest", "materialize", "validate_tree"]

LB_FIELDS = (
    "id",
    "name",
    "description",
    "kind",
    "vip_address",
    "vip_subnet_id",
    "vip_network_id",
    "vip_port_id",
    "admin_state_up",
    "tags",
    "flavor_id",
    "provider",
    "availability_zone",
    "project_id",
)
LISTENER_FIELDS = (
    "id",
    "name",
    "description",
    "protocol",
    "protocol_port",
    "connection_limit",
    "default_pool_id",
    "admin_state_up",
    "timeout_client_data",
    "timeout_member_connect",
    "timeout_member_data",
    "timeout_tcp_inspect",
    "allowed_cidrs",
    "insert_headers",
    "default_tls_container_ref",
    "sni_container_refs",
    "tags",
)
POOL_FIELDS = (
    "id",
    "name",
    "description",
    "protocol",
    "lb_algorithm",
    "session_persistence",
    "tls_enabled",
    "admin_state_up",
    "tags",
)
MEMBER_FIELDS = (
    "id",
    "name",
    "address",
    "protocol_port",
    "weight",
    "backup",
    "admin_state_up",
    "subnet_id",
    "monitor_address",
    "monitor_port",
    "tags",
)
MONITOR_FIELDS = (
    "id",
    "name",
    "type",
    "delay",
    "timeout",
    "max_retries",
    "max_retries_down",
    "http_method",
    "url_path",
    "expected_codes",
    "http_version",
    "domain_name",
    "admin_state_up",
    "tags",
)
POLICY_FIELDS = (
    "id",
    "name",
    "description",
    "action",
    "position",
    "redirect_pool_id",
    "redirect_url",
    "redirect_prefix",
    "redirect_http_code",
    "admin_state_up",
    "tags",
)
RULE_FIELDS = ("id", "type", "compare_type", "key", "value", "invert", "admin_state_up", "tags")


def port_space(protocol: str) -> str:
    """What a listener's port is unique in, as in Octavia: UDP, SCTP and the TCP-based
    protocols (TCP, HTTP, HTTPS, TERMINATED_HTTPS, PROMETHEUS) each have their own ports."""
    return {"UDP": "udp", "SCTP": "sctp"}.get(protocol, "tcp")


def _check_hsts(li: Listener) -> None:
    """Octavia's rules (common/validate.py check_hsts_options), with its answers."""
    if (li.hsts_include_subdomains or li.hsts_preload) and li.hsts_max_age is None:
        raise BadRequest(
            "Validation failure: HSTS configuration options hsts_include_subdomains and "
            "hsts_preload only make sense if hsts_max_age is set as well."
        )
    if li.hsts_max_age is not None and li.protocol != "TERMINATED_HTTPS":
        raise BadRequest(
            "Validation failure: The HSTS feature can only be used for listeners using the "
            "TERMINATED_HTTPS protocol."
        )


def _pick(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: getattr(row, f) for f in fields}


def config_of(lb: LoadBalancer) -> dict[str, Any]:
    """The desired configuration: every user-set field, no statuses or timestamps."""
    doc = {"schema_version": SCHEMA_VERSION, **_pick(lb, LB_FIELDS)}
    doc["listeners"] = []
    for li in sorted(lb.listeners, key=lambda x: x.id):
        entry = _pick(li, LISTENER_FIELDS)
        if li.hsts_max_age is not None:  # only then: older revisions stay byte-identical
            entry["hsts"] = {
                "max_age": li.hsts_max_age,
                "include_subdomains": li.hsts_include_subdomains,
                "preload": li.hsts_preload,
            }
        entry["l7policies"] = [
            {
                **_pick(p, POLICY_FIELDS),
                "rules": [_pick(r, RULE_FIELDS) for r in sorted(p.rules, key=lambda x: x.id)],
            }
            for p in sorted(li.l7policies, key=lambda x: (x.position, x.id))
        ]
        doc["listeners"].append(entry)
    doc["pools"] = []
    for pool in sorted(lb.pools, key=lambda x: x.id):
        entry = _pick(pool, POOL_FIELDS)
        hm = pool.healthmonitor
        entry["healthmonitor"] = _pick(hm, MONITOR_FIELDS) if hm else None
        entry["members"] = [
            _pick(m, MEMBER_FIELDS) for m in sorted(pool.members, key=lambda x: x.id)
        ]
        doc["pools"].append(entry)
    return doc


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- validation of the whole tree ---------------------------------------------------------

POOL_FOR_LISTENER = {
    "HTTP": {"HTTP", "PROXY", "PROXYV2"},
    "HTTPS": {"HTTPS", "PROXY", "PROXYV2", "TCP"},
    "TCP": {"HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP"},
    "TERMINATED_HTTPS": {"HTTP", "PROXY", "PROXYV2"},
    "UDP": {"UDP"},
    "SCTP": {"SCTP"},
    "PROMETHEUS": set(),
}
L4_PROTOCOLS = {"TCP", "UDP"}
L4_ALGORITHMS = {"SOURCE_IP_PORT", "SOURCE_IP"}
L7_LISTENER_PROTOCOLS = {"TCP", "HTTP", "HTTPS", "TERMINATED_HTTPS"}
HTTP_MONITORS = {"HTTP", "HTTPS"}


def validate_tree(lb: LoadBalancer) -> None:
    """Every rule that spans resources, checked on the tree as a write would leave it. Raises
    BadRequest naming the resource; the write is then rolled back whole."""
    pools = {p.id: p for p in lb.pools}
    default_of: dict[str, str] = {}
    for li in lb.listeners:
        _check_listener(lb, li, pools)
        if li.default_pool_id:
            if li.default_pool_id in default_of:
                raise BadRequest(
                    f"pool {li.default_pool_id} is already the default pool of "
                    f"listener {default_of[li.default_pool_id]}"
                )
            default_of[li.default_pool_id] = li.id
    for pool in lb.pools:
        _check_pool(lb, pool)


def _serves_nodes(lb: LoadBalancer) -> bool:
    """Shoal's own rules (what each tier can serve) apply to what the agents configure; the
    noop provider keeps only Octavia's provider-independent ones."""
    return lb.provider != "noop"


def _check_listener(lb: LoadBalancer, li: Listener, pools: dict[str, Pool]) -> None:
    if _serves_nodes(lb) and li.protocol in ("SCTP", "PROMETHEUS"):
        raise providers.unsupported(lb.provider, f"{li.protocol} listeners are not implemented")
    if _serves_nodes(lb) and lb.kind == "l4" and li.protocol not in L4_PROTOCOLS:
        raise providers.unsupported(
            lb.provider,
            f"listener {li.id}: an L4 load balancer takes TCP and UDP listeners, "
            f"not {li.protocol} (use flavor l7)",
        )
    if _serves_nodes(lb) and lb.kind == "l7" and li.protocol not in L7_LISTENER_PROTOCOLS:
        raise providers.unsupported(
            lb.provider,
            f"listener {li.id}: {li.protocol} listeners need an L4 load balancer (flavor l4)",
        )
    _check_allowed_cidrs(lb, li)
    _check_hsts(li)
    if li.protocol == "TERMINATED_HTTPS" and not li.default_tls_container_ref:
        raise BadRequest(f"listener {li.id}: TERMINATED_HTTPS needs default_tls_container_ref")
    if li.default_pool_id:
        pool = pools.get(li.default_pool_id)
        if pool is None:
            raise BadRequest(
                f"listener {li.id}: default_pool_id {li.default_pool_id} is not a "
                "pool of this load balancer"
            )
        if pool.protocol not in POOL_FOR_LISTENER[li.protocol]:
            raise BadRequest(
                f"listener {li.id}: a {li.protocol} listener cannot use a {pool.protocol} pool"
            )
        if lb.kind == "l4" and _serves_nodes(lb):
            for m in pool.members:
                if m.protocol_port != li.protocol_port:
                    raise BadRequest(
                        f"member {m.address}:{m.protocol_port}: on an L4 load balancer a member's "
                        "protocol_port "
                        f"must equal the listener's ({li.protocol_port}): packets reach "
                        "members unchanged (direct server return)"
                    )
    for policy in li.l7policies:
        if li.protocol not in ("HTTP", "TERMINATED_HTTPS"):
            raise BadRequest(
                f"l7policy {policy.id}: L7 policies need an HTTP or TERMINATED_HTTPS listener"
            )
        _check_policy(policy, pools)


def _check_allowed_cidrs(lb: LoadBalancer, li: Listener) -> None:
    """A VIP has one address family: a prefix of the other could never match (Octavia)."""
    if not lb.vip_address:
        return
    vip = ipaddress.ip_address(lb.vip_address)
    for cidr in li.allowed_cidrs or []:
        if ipaddress.ip_network(cidr, strict=False).version != vip.version:
            raise BadRequest(
                f"Validation failure: CIDR {cidr} IP version incompatible with VIP "
                f"{lb.vip_address} IP version."
            )


def _check_policy(policy: L7Policy, pools: dict[str, Pool]) -> None:
    needs = {
        "REDIRECT_TO_POOL": "redirect_pool_id",
        "REDIRECT_TO_URL": "redirect_url",
        "REDIRECT_PREFIX": "redirect_prefix",
    }.get(policy.action)
    if needs and not getattr(policy, needs):
        raise BadRequest(f"l7policy {policy.id}: action {policy.action} needs {needs}")
    if policy.redirect_pool_id and policy.redirect_pool_id not in pools:
        raise BadRequest(
            f"l7policy {policy.id}: redirect_pool_id {policy.redirect_pool_id} is "
            "not a pool of this load balancer"
        )
    for rule in policy.rules:
        if rule.type in ("HEADER", "COOKIE", "SSL_DN_FIELD") and not rule.key:
            raise BadRequest(f"l7rule {rule.id}: a {rule.type} rule needs a key")
        if rule.type == "FILE_TYPE" and rule.compare_type not in ("EQUAL_TO", "REGEX"):
            raise BadRequest(f"l7rule {rule.id}: FILE_TYPE compares with EQUAL_TO or REGEX")
        if rule.compare_type == "REGEX":
            try:
                re.compile(rule.value)
            except re.error as exc:
                raise BadRequest(f"l7rule {rule.id}: invalid regular expression: {exc}") from None


def _check_pool(lb: LoadBalancer, pool: Pool) -> None:
    if not _serves_nodes(lb):
        pass
    elif lb.kind == "l4":
        if pool.protocol not in L4_PROTOCOLS:
            raise BadRequest(f"pool {pool.id}: an L4 load balancer takes TCP and UDP pools")
        if pool.lb_algorithm not in L4_ALGORITHMS:
            raise BadRequest(
                f"pool {pool.id}: {pool.lb_algorithm} is not available on an L4 load balancer; "
                "use SOURCE_IP_PORT (Maglev on the 5-tuple) or SOURCE_IP"
            )
        sp = pool.session_persistence
        if sp and sp.get("type") != "SOURCE_IP":
            raise BadRequest(
                f"pool {pool.id}: an L4 load balancer only offers SOURCE_IP session persistence"
            )
        vip_v6 = ":" in lb.vip_address
        for m in pool.members:
            if vip_v6 and ":" not in m.address:
                raise BadRequest(
                    f"member {m.address}:{m.protocol_port}: an IPv6 VIP cannot reach IPv4 members"
                )
    elif pool.protocol in ("UDP", "SCTP"):
        raise providers.unsupported(
            lb.provider, f"pool {pool.id}: {pool.protocol} pools need an L4 load balancer"
        )
    hm = pool.healthmonitor
    if hm is not None:
        if hm.type == "UDP-CONNECT" and pool.protocol != "UDP":
            raise BadRequest(f"healthmonitor {hm.id}: UDP-CONNECT is for UDP pools")
        if pool.protocol == "UDP" and hm.type not in ("UDP-CONNECT", "PING", "TCP", "HTTP"):
            raise BadRequest(
                f"healthmonitor {hm.id}: a UDP pool is checked with UDP-CONNECT, PING, TCP or HTTP"
            )
        if hm.type not in HTTP_MONITORS and (
            hm.url_path or hm.expected_codes or hm.http_method or hm.domain_name or hm.http_version
        ):
            raise BadRequest(
                f"healthmonitor {hm.id}: url_path, expected_codes, http_method, "
                f"http_version and domain_name are for HTTP/HTTPS monitors, not "
                f"{hm.type}"
            )


# ---- rollback: a document back into rows ---------------------------------------------------


def materialize(session: Session, lb: LoadBalancer, doc: dict[str, Any]) -> None:
    """Makes lb's rows equal to doc (a revision's config, of any schema this code reads),
    keeping ids. Used by rollback."""
    try:
        doc = upgrade_config(doc)
    except ValueError as exc:  # a newer schema, or a document that does not parse
        raise BadRequest(f"cannot roll back to this revision: {exc}") from None
    for f in ("name", "description", "admin_state_up", "tags"):
        setattr(lb, f, doc[f])
    want_pools = {p["id"]: p for p in doc["pools"]}
    want_listeners = {li["id"]: li for li in doc["listeners"]}
    for old_li in list(lb.listeners):
        if old_li.id not in want_listeners:
            lb.listeners.remove(old_li)
    for kept in lb.listeners:
        kept.default_pool_id = None  # re-pointed below, after pools exist
    session.flush()
    for old_pool in list(lb.pools):
        if old_pool.id not in want_pools:
            lb.pools.remove(old_pool)
    session.flush()
    existing_pools = {p.id: p for p in lb.pools}
    for pid, pdoc in want_pools.items():
        pool = existing_pools.get(pid)
        if pool is None:
            pool = Pool(
                id=pid,
                project_id=lb.project_id,
                load_balancer_id=lb.id,
                protocol=pdoc["protocol"],
                lb_algorithm=pdoc["lb_algorithm"],
            )
            lb.pools.append(pool)
        _set(pool, pdoc, POOL_FIELDS)
        _sync_members(pool, pdoc["members"], lb.project_id)
        _sync_monitor(pool, pdoc["healthmonitor"], lb.project_id)
    session.flush()
    existing_listeners = {li.id: li for li in lb.listeners}
    for lid, ldoc in want_listeners.items():
        li = existing_listeners.get(lid)
        if li is None:
            li = Listener(
                id=lid,
                project_id=lb.project_id,
                load_balancer_id=lb.id,
                protocol=ldoc["protocol"],
                protocol_port=ldoc["protocol_port"],
                l4_protocol=port_space(ldoc["protocol"]),
            )
            lb.listeners.append(li)
        _set(li, ldoc, LISTENER_FIELDS)
        hsts = ldoc.get("hsts") or {}
        li.hsts_max_age = hsts.get("max_age")
        li.hsts_include_subdomains = bool(hsts.get("include_subdomains", False))
        li.hsts_preload = bool(hsts.get("preload", False))
        _sync_policies(li, ldoc["l7policies"], lb.project_id)


def _set(row: Any, doc: dict[str, Any], fields: tuple[str, ...]) -> None:
    for f in fields:
        if f != "id" and getattr(row, f) != doc[f]:
            setattr(row, f, doc[f])


def _sync_members(pool: Pool, docs: list[dict[str, Any]], project_id: str) -> None:
    want = {m["id"]: m for m in docs}
    for old in list(pool.members):
        if old.id not in want:
            pool.members.remove(old)
    have = {m.id: m for m in pool.members}
    for mid, mdoc in want.items():
        m = have.get(mid)
        if m is None:
            m = Member(
                id=mid,
                project_id=project_id,
                address=mdoc["address"],
                protocol_port=mdoc["protocol_port"],
            )
            pool.members.append(m)
        _set(m, mdoc, MEMBER_FIELDS)


def _sync_monitor(pool: Pool, doc: dict[str, Any] | None, project_id: str) -> None:
    if doc is None:
        pool.healthmonitor = None
        return
    if pool.healthmonitor is None or pool.healthmonitor.id != doc["id"]:
        pool.healthmonitor = HealthMonitor(
            id=doc["id"],
            project_id=project_id,
            type=doc["type"],
            delay=doc["delay"],
            timeout=doc["timeout"],
            max_retries=doc["max_retries"],
        )
    _set(pool.healthmonitor, doc, MONITOR_FIELDS)


def _sync_policies(li: Listener, docs: list[dict[str, Any]], project_id: str) -> None:
    want = {p["id"]: p for p in docs}
    for old in list(li.l7policies):
        if old.id not in want:
            li.l7policies.remove(old)
    have = {p.id: p for p in li.l7policies}
    for pid, pdoc in want.items():
        p = have.get(pid)
        if p is None:
            p = L7Policy(
                id=pid, project_id=project_id, action=pdoc["action"], position=pdoc["position"]
            )
            li.l7policies.append(p)
        _set(p, pdoc, POLICY_FIELDS)
        rules_want = {r["id"]: r for r in pdoc["rules"]}
        for old_rule in list(p.rules):
            if old_rule.id not in rules_want:
                p.rules.remove(old_rule)
        rules_have = {r.id: r for r in p.rules}
        for rid, rdoc in rules_want.items():
            r = rules_have.get(rid)
            if r is None:
                r = L7Rule(
                    id=rid,
                    project_id=project_id,
                    type=rdoc["type"],
                    compare_type=rdoc["compare_type"],
                    value=rdoc["value"],
                )
                p.rules.append(r)
            _set(r, rdoc, RULE_FIELDS)
