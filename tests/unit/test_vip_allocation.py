"""VIP allocation as a property: whatever pools exist and whatever a tenant asks for, an
accepted VIP lies in a pool that tenant may use, is an ordinary address, and is nobody
else's; everything else is refused with a 4xx. With the noop provider, a subnet that names no
pool is taken as given, but its VIP is still ordinary, unique and in no other tenant's pool."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shoal.addresses import address_refusal
from shoal.controller.db.models import Base, LoadBalancer, VipPool
from shoal.controller.errors import ApiError
from shoal.controller.services import vips

PROJECTS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


pool_specs = st.lists(
    st.tuples(
        st.sampled_from(["10.7.{}.0/28", "10.7.{}.0/30", "fd00:7:{}::/126"]),
        st.booleans(),  # shared
        st.sets(st.sampled_from(PROJECTS), max_size=2),
    ),
    min_size=0,
    max_size=4,
)
some_address = st.one_of(
    st.none(),
    st.sampled_from(["8.8.8.8", "127.0.0.1", "0.0.0.0", "224.0.0.1", "fd00:7:1::", "::1"]),
    st.builds(lambda i, h: f"10.7.{i}.{h}", st.integers(0, 3), st.integers(0, 16)),
    st.builds(lambda i, h: f"fd00:7:{i}::{h:x}", st.integers(0, 3), st.integers(0, 4)),
)
requests = st.lists(
    st.tuples(
        st.sampled_from(PROJECTS),
        some_address,
        st.one_of(st.none(), st.integers(0, 4)),  # index of the pool named, maybe absent
        st.booleans(),  # the noop provider (any_subnet)
    ),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pool_specs, requests)
def test_an_accepted_vip_is_always_the_tenants_to_take(engine: Engine, pools, asks) -> None:
    with Session(engine) as session:
        made = []
        for i, (template, shared, projects) in enumerate(pools):
            cidr = template.format(i)
            pool = VipPool(
                name=f"p{i}",
                network_id=f"n{i}",
                cidr=cidr,
                ip_version=ipaddress.ip_network(cidr).version,
                shared=shared,
                project_ids=sorted(projects),
            )
            session.add(pool)
            made.append(pool)
        session.flush()
        taken: set[str] = set()
        for project, address, index, noop in asks:
            ref = made[index].name if index is not None and index < len(made) else None
            if noop and index is not None and ref is None:
                ref = "a-subnet-of-no-pool"
            try:
                vip, subnet_id, network_id = vips.allocate(
                    session, project, address, ref, any_subnet=noop
                )
            except ApiError as exc:
                assert 400 <= exc.status < 500
                continue
            ip = ipaddress.ip_address(vip)
            usable = vips.usable_pools(session, project)
            assert address_refusal(ip) is None
            assert vip not in taken
            assert address is None or ipaddress.ip_address(address) == ip
            for other in made:
                if other not in usable:
                    assert ip not in ipaddress.ip_network(other.cidr)
            pool = session.get(VipPool, subnet_id)
            if ref == "a-subnet-of-no-pool":
                assert noop and subnet_id == network_id == ref
            else:
                assert pool is not None and network_id == pool.network_id
                assert pool in usable
                assert ip in ipaddress.ip_network(pool.cidr)
                assert ip != ipaddress.ip_network(pool.cidr).network_address
                assert ref is None or pool.name == ref
            taken.add(vip)
            session.add(LoadBalancer(project_id=project, vip_address=vip, vip_subnet_id=subnet_id))
            session.flush()
        session.rollback()
