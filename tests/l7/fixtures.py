"""Revision documents in the shape the controller sends, for the L7 tests. test_fixtures.py
checks that every object here has exactly the keys of a revision the controller made."""

from __future__ import annotations

from typing import Any

from shoal.wire.config import SCHEMA_VERSION

LB_ID = "lb000000-0000-4000-8000-000000000001"


def listener(id_: str, protocol: str, port: int, default_pool: str | None, **kw: Any) -> dict:
    base = {
        "id": id_,
        "name": "",
        "description": "",
        "protocol": protocol,
        "protocol_port": port,
        "connection_limit": -1,
        "default_pool_id": default_pool,
        "admin_state_up": True,
        "timeout_client_data": 50000,
        "timeout_member_connect": 5000,
        "timeout_member_data": 50000,
        "timeout_tcp_inspect": 0,
        "allowed_cidrs": [],
        "insert_headers": {},
        "default_tls_container_ref": None,
        "sni_container_refs": [],
        "tags": [],
        "l7policies": [],
    }
    return {**base, **kw}


def pool(id_: str, protocol: str, algorithm: str, members: list[dict], **kw: Any) -> dict:
    base = {
        "id": id_,
        "name": "",
        "description": "",
        "protocol": protocol,
        "lb_algorithm": algorithm,
        "session_persistence": None,
        "tls_enabled": False,
        "admin_state_up": True,
        "tags": [],
        "healthmonitor": None,
        "members": members,
    }
    return {**base, **kw}


def member(id_: str, address: str, port: int, **kw: Any) -> dict:
    base = {
        "id": id_,
        "name": "",
        "address": address,
        "protocol_port": port,
        "weight": 1,
        "backup": False,
        "admin_state_up": True,
        "subnet_id": None,
        "monitor_address": None,
        "monitor_port": None,
        "tags": [],
    }
    return {**base, **kw}


def monitor(type_: str, **kw: Any) -> dict:
    base = {
        "id": "hm000000-0000-4000-8000-000000000001",
        "name": "",
        "type": type_,
        "delay": 1,
        "timeout": 1,
        "max_retries": 2,
        "max_retries_down": 2,
        "http_method": "GET" if type_.startswith("HTTP") else None,
        "url_path": "/" if type_.startswith("HTTP") else None,
        "expected_codes": "200" if type_.startswith("HTTP") else None,
        "http_version": None,
        "domain_name": None,
        "admin_state_up": True,
        "tags": [],
    }
    return {**base, **kw}


def policy(id_: str, position: int, action: str, rules: list[dict], **kw: Any) -> dict:
    base = {
        "id": id_,
        "name": "",
        "description": "",
        "action": action,
        "position": position,
        "redirect_pool_id": None,
        "redirect_url": None,
        "redirect_prefix": None,
        "redirect_http_code": None,
        "admin_state_up": True,
        "tags": [],
        "rules": rules,
    }
    return {**base, **kw}


def rule(
    id_: str, type_: str, compare: str, value: str, key: str | None = None, invert: bool = False
) -> dict:
    return {
        "id": id_,
        "type": type_,
        "compare_type": compare,
        "key": key,
        "value": value,
        "invert": invert,
        "admin_state_up": True,
        "tags": [],
    }


def lb(vip: str, listeners: list[dict], pools: list[dict], id_: str = LB_ID) -> dict:
    return {
        "id": id_,
        "name": "",
        "description": "",
        "kind": "l7",
        "vip_address": vip,
        "vip_subnet_id": None,
        "vip_network_id": None,
        "vip_port_id": None,
        "admin_state_up": True,
        "tags": [],
        "flavor_id": None,
        "provider": "shoal",
        "availability_zone": None,
        "project_id": "p",
        "listeners": listeners,
        "pools": pools,
        "schema_version": SCHEMA_VERSION,
    }
