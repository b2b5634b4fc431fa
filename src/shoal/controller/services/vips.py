"""VIP pools and VIP addresses. A VIP comes only from a pool the project may use: the lowest
free address of the pool named by vip_subnet_id (or of the project's first pool), or a given
vip_address that lies in such a pool and is free. No tenant input becomes a route the L4
nodes announce unless an admin put its range in a pool."""

from __future__ import annotations

import ipaddress
import logging
import uuid

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shoal.addresses import IpAddress, address_refusal
from shoal.controller.db.engine import Database
from shoal.controller.db.models import LoadBalancer, Member, VipPool
from shoal.controller.errors import BadRequest, Conflict
from shoal.controller.settings import ControllerSettings

__all__ = [
    "allocate",
    "check_new_pool",
    "describe",
    "network_of",
    "release",
    "seed_once",
    "serialize",
    "stable_id",
    "usable_pools",
]

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("0c5f6a3e-5b1e-4c1d-9a57-5ea1f00d0001")


def stable_id(name: str) -> str:
    """The id of a pool seeded from settings: the same on every controller that seeds it."""
    return str(uuid.uuid5(_NAMESPACE, f"vip-pool:{name}"))


def network_of(pool: VipPool) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(pool.cidr)


def seed(db: Database, settings: ControllerSettings) -> None:
    """Creates the configured pools in a database that holds none (first start, or the first
    after the upgrade that introduced pools). Later the API owns them."""
    with db.write() as session:
        existing = session.scalar(select(VipPool.id).limit(1))
        if existing is not None:
            return
        for spec in settings.vip_pools:
            pool_id = spec.id or stable_id(spec.name)
            session.add(
                VipPool(
                    id=pool_id,
                    name=spec.name,
                    network_id=spec.network_id or pool_id,
                    cidr=str(spec.cidr),
                    ip_version=spec.cidr.version,
                    shared=spec.shared,
                    project_ids=list(spec.project_ids),
                )
            )
    log.info("seeded %d VIP pool(s) from the settings", len(settings.vip_pools))


def seed_once(db: Database, settings: ControllerSettings) -> None:
    """seed, tolerating another controller seeding the same pools at the same moment."""
    try:
        seed(db, settings)
    except IntegrityError:
        log.info("VIP pools were seeded by another controller")


def usable_pools(session: Session, project_id: str) -> list[VipPool]:
    """The pools project_id may take VIPs from: its own first, then shared ones."""
    pools = list(session.scalars(select(VipPool).order_by(VipPool.created_at, VipPool.name)))
    own = [p for p in pools if project_id in (p.project_ids or [])]
    return own + [p for p in pools if p.shared and p not in own]


def describe(pools: list[VipPool]) -> str:
    if not pools:
        return "none (an admin creates them: shoal vip-pool create)"
    return ", ".join(f"{p.name} ({p.cidr}, id {p.id})" for p in pools)


def serialize(session: Session) -> None:
    """Holds VIP allocation and pool changes to one at a time across controllers until the
    transaction ends (SQLite write transactions are serial already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7364)"))


def check_new_pool(
    session: Session, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str
) -> None:
    """A new pool overlaps no other pool and no member (members are real servers, never
    VIPs), and its name is free (409 otherwise)."""
    for other in session.scalars(select(VipPool)):
        if other.name == name:
            raise Conflict(f"a VIP pool named {name} already exists ({other.id})")
        if cidr.version == other.ip_version and cidr.overlaps(network_of(other)):
            raise Conflict(f"{cidr} overlaps VIP pool {other.name} ({other.cidr})")
    for member_id, address in session.execute(select(Member.id, Member.address)):
        ip = ipaddress.ip_address(address)
        if ip.version == cidr.version and ip in cidr:
            raise Conflict(f"{cidr} holds the address {ip} of member {member_id}")


def _choose(
    pools: list[VipPool], ref: str | None, network: str | None, project_id: str
) -> tuple[VipPool | None, list[VipPool]]:
    """The pool vip_subnet_id names (if any), and the pools a VIP may come from."""
    if network is not None:
        pools_in = [p for p in pools if p.network_id == network]
        if not pools_in:
            raise BadRequest(
                f"vip_network_id {network} is not a VIP network project {project_id} may use; "
                f"VIP pools it may use: {describe(pools)}"
            )
        pools = pools_in
    if ref is None:
        return None, pools
    for pool in pools:
        if ref in (pool.id, pool.name):
            return pool, pools
    raise BadRequest(
        f"vip_subnet_id {ref} is not a VIP pool project {project_id} may use"
        f"{' in network ' + network if network else ''}; VIP pools it may use: {describe(pools)}"
    )


def _check_given(
    ip: IpAddress, chosen: VipPool | None, pools: list[VipPool], project: str
) -> VipPool:
    usable = describe(pools)
    if refusal := address_refusal(ip):
        raise BadRequest(
            f"vip_address {ip} is {refusal} and can never be a VIP; "
            f"VIP pools project {project} may use: {usable}"
        )
    candidates = [chosen] if chosen else pools
    pool = next((p for p in candidates if ip in network_of(p)), None)
    if pool is None:
        where = f"VIP pool {chosen.name} ({chosen.cidr})" if chosen else "a VIP pool"
        raise BadRequest(
            f"vip_address {ip} is not in {where} project {project} may use; "
            f"VIP pools it may use: {usable}"
        )
    net = network_of(pool)
    # IPv4: network and broadcast; IPv6: the subnet-router anycast address (RFC 4291).
    edges = (net.network_address, net.broadcast_address) if net.version == 4 else (net[0],)
    if net.num_addresses > 2 and ip in edges:
        raise BadRequest(
            f"vip_address {ip} is the network or broadcast address of VIP pool {pool.name}"
        )
    return pool


def allocate(
    session: Session,
    project_id: str,
    address: str | None,
    pool_ref: str | None,
    network_ref: str | None = None,
    any_subnet: bool = False,
) -> tuple[str, str, str]:
    """(address, subnet id, network id) for a new load balancer of project_id. vip_network_id
    (network_ref) narrows the choice to the pools of one network, as Neutron networks group
    subnets.

    any_subnet (the noop provider, which configures nothing on any node): a subnet or network
    that names no VIP pool at all is taken as given, as Octavia's noop network driver takes
    it. The address is still unique, never a refused one and never one of a pool the project
    may not use; without one, it comes from the project's first pool."""
    usable = usable_pools(session, project_id)
    given = pool_ref is not None or network_ref is not None
    if any_subnet and given and not _names_a_pool(session, pool_ref, network_ref):
        return _unpooled(session, project_id, usable, address, pool_ref, network_ref)
    chosen, pools = _choose(usable, pool_ref, network_ref, project_id)
    if address is not None:
        ip = ipaddress.ip_address(address)
        holder = _check_given(ip, chosen, pools, project_id)
        return _take(session, ip, any_subnet), holder.id, holder.network_id
    pool = chosen or (pools[0] if pools else None)
    if pool is None:
        raise BadRequest(f"project {project_id} may use no VIP pool: {describe(pools)}")
    return _lowest_free(session, pool), pool.id, pool.network_id


def _names_a_pool(session: Session, pool_ref: str | None, network_ref: str | None) -> bool:
    """Whether the subnet or the network names any VIP pool (the project's or not)."""
    for pool in session.scalars(select(VipPool)):
        if pool_ref in (pool.id, pool.name) or network_ref == pool.network_id:
            return True
    return False


def _unpooled(
    session: Session,
    project_id: str,
    usable: list[VipPool],
    address: str | None,
    pool_ref: str | None,
    network_ref: str | None,
) -> tuple[str, str, str]:
    subnet = pool_ref or network_ref or ""
    network = network_ref or subnet
    if address is None:
        if not usable:
            raise BadRequest(f"project {project_id} may use no VIP pool: {describe(usable)}")
        return _lowest_free(session, usable[0]), subnet, network
    ip = ipaddress.ip_address(address)
    if refusal := address_refusal(ip):
        raise BadRequest(f"vip_address {ip} is {refusal} and can never be a VIP")
    for pool in session.scalars(select(VipPool)):
        if pool.ip_version == ip.version and ip in network_of(pool) and pool not in usable:
            raise BadRequest(
                f"vip_address {ip} is not in a VIP pool project {project_id} may use; "
                f"VIP pools it may use: {describe(usable)}"
            )
    return _take(session, ip, noop=True), subnet, network


def _take(session: Session, ip: IpAddress, noop: bool = False) -> str:
    """A free address. A noop balancer (it configures nothing) may repeat another noop
    balancer's, as Octavia's noop drivers allow (tempest creates its VIPs at fixed test
    addresses); never one a serving balancer holds."""
    query = select(LoadBalancer.id).where(LoadBalancer.vip_address == str(ip))
    if noop:
        query = query.where(LoadBalancer.provider != "noop")
    owner = session.scalar(query)
    if owner:
        raise Conflict(f"VIP address {ip} is already used by load balancer {owner}")
    return str(ip)


_PROBE = 64  # candidate addresses looked up per query


def _host_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """[first, last] offsets of the usable hosts, as ip_network().hosts() yields them:
    IPv4 without network and broadcast, IPv6 without the subnet-router anycast address,
    all of a /31, /32, /127 or /128."""
    if net.num_addresses <= 2:
        return 0, net.num_addresses - 1
    return 1, net.num_addresses - (2 if net.version == 4 else 1)


def _lowest_free(session: Session, pool: VipPool) -> str:
    """The pool's lowest free host. Every host below pool.free_from is taken, so the search
    starts there and looks up _PROBE candidates per query: one query in the usual case,
    whatever the number of load balancers (callers hold serialize()'s lock)."""
    net = network_of(pool)
    first, last = _host_range(net)
    offset = max(first, pool.free_from or 0)
    while offset <= last:
        batch = [
            str(net.network_address + i) for i in range(offset, min(last, offset + _PROBE - 1) + 1)
        ]
        taken = set(
            session.scalars(
                select(LoadBalancer.vip_address).where(LoadBalancer.vip_address.in_(batch))
            )
        )
        for i, address in enumerate(batch):
            if address not in taken:
                pool.free_from = offset + i + 1
                return address
        offset += len(batch)
    pool.free_from = last + 1
    raise Conflict(f"VIP pool {pool.name} ({pool.cidr}) has no free address")


def release(session: Session, lb: LoadBalancer) -> None:
    """lb's VIP is free again (it is being deleted): its pool's search starts there next."""
    pool = session.get(VipPool, lb.vip_subnet_id) if lb.vip_subnet_id else None
    if pool is None:
        return  # a noop balancer's subnet that names no pool
    ip = ipaddress.ip_address(lb.vip_address)
    net = network_of(pool)
    if ip.version != net.version or ip not in net:
        return
    serialize(session)  # against an allocation moving the start past it meanwhile
    offset = int(ip) - int(net.network_address)
    session.execute(
        update(VipPool)
        .where(VipPool.id == pool.id, VipPool.free_from > offset)
        .values(free_from=offset)
    )
