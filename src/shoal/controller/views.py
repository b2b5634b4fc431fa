"""Database rows as Octavia v2 response objects."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shoal.controller.db.models import (
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Pool,
)
from shoal.controller.services import status

__all__ = [
    "healthmonitor",
    "l7policy",
    "l7rule",
    "listener",
    "loadbalancer",
    "member",
    "pool",
]


def ts(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value else None


def _base(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "admin_state_up": row.admin_state_up,
        "provisioning_status": row.provisioning_status,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "tags": list(row.tags or []),
    }


def loadbalancer(lb: LoadBalancer) -> dict[str, Any]:
    return {
        **_base(lb),
        "description": lb.description,
        "operating_status": status.lb_operating_status(lb),
        "vip_address": lb.vip_address,
        "vip_subnet_id": lb.vip_subnet_id,
        "vip_network_id": lb.vip_network_id,
        "vip_port_id": lb.vip_port_id,
        "vip_qos_policy_id": None,
        "vip_vnic_type": "normal",
        "additional_vips": [],
        "listeners": [{"id": li.id} for li in lb.listeners],
        "pools": [{"id": p.id} for p in lb.pools],
        "provider": lb.provider,
        "flavor_id": lb.flavor_id,
        "availability_zone": lb.availability_zone,
    }


def listener(li: Listener) -> dict[str, Any]:
    pools = {p.id: p for p in li.load_balancer.pools}
    return {
        **_base(li),
        "description": li.description,
        "protocol": li.protocol,
        "protocol_port": li.protocol_port,
        "connection_limit": li.connection_limit,
        "default_pool_id": li.default_pool_id,
        "default_tls_container_ref": li.default_tls_container_ref,
        "sni_container_refs": list(li.sni_container_refs or []),
        "insert_headers": dict(li.insert_headers or {}),
        "timeout_client_data": li.timeout_client_data,
        "timeout_member_connect": li.timeout_member_connect,
        "timeout_member_data": li.timeout_member_data,
        "timeout_tcp_inspect": li.timeout_tcp_inspect,
        "allowed_cidrs": list(li.allowed_cidrs or []) or None,
        "loadbalancers": [{"id": li.load_balancer_id}],
        "l7policies": [{"id": p.id} for p in li.l7policies],
        "operating_status": status.listener_operating_status(li, pools),
        "tls_ciphers": None,
        "tls_versions": None,
        "alpn_protocols": None,
        "client_ca_tls_container_ref": None,
        "client_authentication": "NONE",
        "client_crl_container_ref": None,
        "hsts_include_subdomains": li.hsts_include_subdomains,
        "hsts_max_age": li.hsts_max_age,
        "hsts_preload": li.hsts_preload,
    }


def pool(p: Pool) -> dict[str, Any]:
    listeners = [li for li in p.load_balancer.listeners if li.default_pool_id == p.id]
    return {
        **_base(p),
        "description": p.description,
        "protocol": p.protocol,
        "lb_algorithm": p.lb_algorithm,
        "session_persistence": p.session_persistence,
        "loadbalancers": [{"id": p.load_balancer_id}],
        "listeners": [{"id": li.id} for li in listeners],
        "members": [{"id": m.id} for m in p.members],
        "healthmonitor_id": p.healthmonitor.id if p.healthmonitor else None,
        "operating_status": status.pool_operating_status(p),
        "tls_enabled": p.tls_enabled,
        "tls_container_ref": None,
        "ca_tls_container_ref": None,
        "crl_container_ref": None,
        "tls_ciphers": None,
        "tls_versions": None,
        "alpn_protocols": None,
    }


def member(m: Member) -> dict[str, Any]:
    hm = m.pool.healthmonitor
    monitored = hm is not None and hm.admin_state_up
    return {
        **_base(m),
        "address": m.address_given or m.address,  # as the client wrote it
        "protocol_port": m.protocol_port,
        "weight": m.weight,
        "backup": m.backup,
        "subnet_id": m.subnet_id,
        "monitor_address": m.monitor_address_given or m.monitor_address,
        "monitor_port": m.monitor_port,
        "operating_status": status.member_operating_status(m, monitored),
        "vnic_type": "normal",
    }


def healthmonitor(hm: HealthMonitor) -> dict[str, Any]:
    return {
        **_base(hm),
        "type": hm.type,
        "delay": hm.delay,
        "timeout": hm.timeout,
        "max_retries": hm.max_retries,
        "max_retries_down": hm.max_retries_down,
        "http_method": hm.http_method,
        "url_path": hm.url_path,
        "expected_codes": hm.expected_codes,
        "http_version": hm.http_version,
        "domain_name": hm.domain_name,
        "pools": [{"id": hm.pool_id}],
        "operating_status": "ONLINE" if hm.admin_state_up else "OFFLINE",
    }


def l7policy(p: L7Policy) -> dict[str, Any]:
    return {
        **_base(p),
        "description": p.description,
        "listener_id": p.listener_id,
        "action": p.action,
        "position": p.position,
        "redirect_pool_id": p.redirect_pool_id,
        "redirect_url": p.redirect_url,
        "redirect_prefix": p.redirect_prefix,
        "redirect_http_code": p.redirect_http_code,
        "rules": [{"id": r.id} for r in p.rules],
        "operating_status": "ONLINE" if p.admin_state_up else "OFFLINE",
    }


def l7rule(r: L7Rule) -> dict[str, Any]:
    base = _base(r)
    del base["name"]
    return {
        **base,
        "type": r.type,
        "compare_type": r.compare_type,
        "key": r.key,
        "value": r.value,
        "invert": r.invert,
        "operating_status": "ONLINE" if r.admin_state_up else "OFFLINE",
    }
