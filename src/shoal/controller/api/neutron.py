"""A read-only Neutron view of the VIP pools, at /v2.0/networks, /v2.0/subnets and /v2.0/ports.

OpenStack clients resolve `--vip-subnet-id`, `--vip-network-id`, `--vip-port-id` and a
member's `--subnet-id` through the cloud's `network` service (`GET /v2.0/subnets?id=X`, then
`?name=X`) before they call Octavia. Shoal has no Neutron: a VIP pool is shown as a subnet,
the pools of one `network_id` as a network, and each load balancer's VIP as a port. A caller
sees exactly the pools it may take VIPs from (admins and global observers: all), and the VIP
ports of the load balancers it may read. Shapes, filters and the 404 body follow Neutron's
API reference (docs.openstack.org/api-ref/network/v2)."""

# No `from __future__ import annotations`: FastAPI reads the path alias in _expose's
# handlers as an object.

import functools
import ipaddress
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.db.models import LoadBalancer, VipPool, utcnow
from shoal.controller.errors import Forbidden
from shoal.controller.services import vips
from shoal.controller.views import ts

__all__ = ["router"]

router = APIRouter(tags=["network (read-only view of VIP pools)"])

# Neutron's pagination and projection parameters; every other one filters.
RESERVED = frozenset({"fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"})
TAG_FILTERS = frozenset({"tags", "tags-any", "not-tags", "not-tags-any"})
_PORT_NAMESPACE = uuid.UUID("0c5f6a3e-5b1e-4c1d-9a57-5ea1f00d0002")


def neutron_error(status: int, kind: str, message: str) -> JSONResponse:
    """Neutron's fault body, which openstacksdk reads for its exception message."""
    return JSONResponse(
        {"NeutronError": {"type": kind, "message": message, "detail": ""}}, status_code=status
    )


def _readable_pools(session: Session, principal: Principal) -> list[VipPool]:
    if principal.role not in ("admin", "member", "reader") and not principal.global_read:
        raise Forbidden("this needs a role that reads load balancers")
    if principal.reads_all_projects:
        return list(session.scalars(select(VipPool).order_by(VipPool.created_at, VipPool.name)))
    return vips.usable_pools(session, principal.project_id)


def _owner(pool: VipPool, principal: Principal) -> str:
    """The project a subnet is shown as belonging to: never another tenant's id."""
    projects = list(pool.project_ids or [])
    if principal.reads_all_projects:
        return projects[0] if projects else ""
    return principal.project_id if principal.project_id in projects else ""


def subnet(pool: VipPool, principal: Principal) -> dict[str, Any]:
    net = vips.network_of(pool)
    hosts = (net[1], net[-2]) if net.num_addresses > 2 else (net[0], net[-1])
    owner = _owner(pool, principal)
    return {
        "id": pool.id,
        "name": pool.name,
        "description": pool.description,
        "network_id": pool.network_id,
        "tenant_id": owner,
        "project_id": owner,
        "cidr": pool.cidr,
        "ip_version": pool.ip_version,
        "gateway_ip": None,  # VIPs are announced over BGP; there is no gateway to name
        "enable_dhcp": False,
        "allocation_pools": [{"start": str(hosts[0]), "end": str(hosts[1])}],
        "dns_nameservers": [],
        "host_routes": [],
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "service_types": [],
        "shared": pool.shared,
        "tags": [],
        "revision_number": 0,
        "created_at": ts(pool.created_at),
        "updated_at": ts(pool.updated_at or pool.created_at),
    }


def networks(pools: list[VipPool], principal: Principal) -> list[dict[str, Any]]:
    """One network per network_id, holding the pools of it that the caller may see."""
    grouped: dict[str, list[VipPool]] = {}
    for pool in pools:
        grouped.setdefault(pool.network_id, []).append(pool)
    out = []
    for network_id, members in grouped.items():
        first = members[0]
        out.append(
            {
                "id": network_id,
                # A network of one pool carries its name, so --vip-network-id <pool> resolves.
                "name": first.name if network_id == first.id or len(members) == 1 else network_id,
                "description": first.description,
                "tenant_id": _owner(first, principal),
                "project_id": _owner(first, principal),
                "subnets": [p.id for p in members],
                "shared": all(p.shared for p in members),
                "admin_state_up": True,
                "status": "ACTIVE",
                "mtu": 1500,
                "router:external": False,
                "port_security_enabled": False,
                "availability_zone_hints": [],
                "availability_zones": [],
                "ipv4_address_scope": None,
                "ipv6_address_scope": None,
                "tags": [],
                "revision_number": 0,
                "created_at": ts(first.created_at),
                "updated_at": ts(first.updated_at or first.created_at),
            }
        )
    return out


def port_id(lb: LoadBalancer) -> str:
    return lb.vip_port_id or str(uuid.uuid5(_PORT_NAMESPACE, lb.id))


def port(lb: LoadBalancer) -> dict[str, Any]:
    return {
        "id": port_id(lb),
        "name": f"octavia-lb-{lb.id}",
        "description": "",
        "network_id": lb.vip_network_id,
        "tenant_id": lb.project_id,
        "project_id": lb.project_id,
        "fixed_ips": [{"subnet_id": lb.vip_subnet_id, "ip_address": lb.vip_address}],
        "device_id": f"lb-{lb.id}",
        "device_owner": "Octavia",
        "admin_state_up": True,
        "status": "ACTIVE",
        "mac_address": "",
        "security_groups": [],
        "allowed_address_pairs": [],
        "binding:vnic_type": "normal",
        "port_security_enabled": False,
        "tags": [],
        "revision_number": 0,
        "created_at": ts(lb.created_at),
        "updated_at": ts(lb.updated_at or lb.created_at),
    }


def _readable_ports(session: Session, principal: Principal) -> list[dict[str, Any]]:
    _readable_pools(session, principal)  # the same role check
    query = select(LoadBalancer).order_by(LoadBalancer.created_at, LoadBalancer.id)
    if not principal.reads_all_projects:
        query = query.where(LoadBalancer.project_id == principal.project_id)
    return [port(lb) for lb in session.scalars(query)]


def _matches(item: dict[str, Any], key: str, wanted: list[str]) -> bool:
    value = item[key]
    if isinstance(value, bool):
        return str(value).lower() in [w.lower() for w in wanted]
    if isinstance(value, list):  # e.g. a network's subnets: any of the values
        return any(str(v) in wanted for v in value)
    if key == "cidr" and isinstance(value, str):
        return any(_same_network(value, w) for w in wanted)
    return ("" if value is None else str(value)) in wanted


def _same_network(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return False


@functools.cache
def attributes(collection: str) -> frozenset[str]:
    """The attribute names of a collection's objects (what may filter and sort)."""
    pool = VipPool(
        id="x", name="x", description="", network_id="x", cidr="192.0.2.0/30", ip_version=4
    )
    pool.created_at, pool.project_ids, pool.shared = utcnow(), [], True
    lb = LoadBalancer(id="x", project_id="x", vip_address="192.0.2.1")
    lb.created_at = utcnow()
    anyone = Principal("x", "x", "admin")
    sample = {
        "subnets": subnet(pool, anyone),
        "networks": networks([pool], anyone)[0],
        "ports": port(lb),
    }[collection]
    return frozenset(sample)


def listing(request: Request, items: list[dict[str, Any]], collection: str) -> JSONResponse:
    """Neutron's list semantics: each attribute filters (repeated values: any of them), an
    unknown one is a 400, sort_key/sort_dir, limit/marker, fields."""
    params = request.query_params
    known = attributes(collection)
    for key in params:
        if key in RESERVED:
            continue
        wanted = params.getlist(key)
        if key in TAG_FILTERS:  # nothing here is tagged
            if key in ("tags", "tags-any"):
                items = []
            continue
        if key not in known:
            return neutron_error(
                400, "HTTPBadRequest", f"[{key}] is invalid attribute for filtering"
            )
        items = [i for i in items if _matches(i, key, wanted)]
    for key, direction in reversed(
        list(zip(params.getlist("sort_key"), params.getlist("sort_dir") or ["asc"], strict=False))
    ):
        if key not in known:
            return neutron_error(
                400, "HTTPBadRequest", f"{key} is an invalid attribute for sort_keys"
            )
        items.sort(key=lambda i: str(i.get(key) or ""), reverse=direction.lower() == "desc")
    items = _page(params, items)
    fields = [f for raw in params.getlist("fields") for f in raw.split(",") if f]
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    return JSONResponse({collection: items})


def _page(params: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [i["id"] for i in items]
    marker = params.get("marker")
    if marker in ids:
        at = ids.index(marker)
        reverse = params.get("page_reverse", "false").lower() == "true"
        items = items[:at] if reverse else items[at + 1 :]
    try:
        limit = int(params.get("limit", "0"))
    except ValueError:
        limit = 0
    return items[:limit] if limit > 0 else items


def _one(
    request: Request, items: list[dict[str, Any]], ident: str, key: str, kind: str
) -> JSONResponse:
    for item in items:
        if item["id"] == ident:
            fields = [
                f for raw in request.query_params.getlist("fields") for f in raw.split(",") if f
            ]
            if fields:
                item = {k: v for k, v in item.items() if k in fields}
            return JSONResponse({key: item})
    return neutron_error(404, f"{kind}NotFound", f"{kind} {ident} could not be found.")


def _collection(
    state: Any, principal: Principal, build: Callable[[Session, Principal], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    with state.db.read() as session:
        return build(session, principal)


def _subnets(session: Session, principal: Principal) -> list[dict[str, Any]]:
    return [subnet(p, principal) for p in _readable_pools(session, principal)]


def _networks(session: Session, principal: Principal) -> list[dict[str, Any]]:
    return networks(_readable_pools(session, principal), principal)


def _expose(
    collection: str,
    kind: str,
    param: str,
    build: Callable[[Session, Principal], list[dict[str, Any]]],
) -> None:
    """GET /<collection> and GET /<collection>/{<param>}: what build returns, as Neutron
    lists and shows it (a 404 names the kind: SubnetNotFound)."""
    key = collection.removesuffix("s")

    def list_all(request: Request, state: State, principal: CurrentPrincipal) -> JSONResponse:
        return listing(request, _collection(state, principal, build), collection)

    def show(
        ident: Annotated[str, Path(alias=param)],
        request: Request,
        state: State,
        principal: CurrentPrincipal,
    ) -> JSONResponse:
        return _one(request, _collection(state, principal, build), ident, key, kind)

    router.add_api_route(f"/{collection}", list_all, methods=["GET"], name=f"list_{collection}")
    router.add_api_route(f"/{collection}/{{{param}}}", show, methods=["GET"], name=f"get_{key}")


_expose("subnets", "Subnet", "subnet_id", _subnets)
_expose("networks", "Network", "network_id", _networks)
_expose("ports", "Port", "port_id", _readable_ports)
