"""The hostile tenant against the live lab (router, two L4 nodes, controller, in namespaces):
no hijack attempt ends as a route on the router, and the router ignores anything an L4 node
announces outside the VIP pool."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shoal import netns
from shoal.lab.lab import Lab, LabSpec

pytestmark = pytest.mark.netns
NODES = ("l4a", "l4b")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab(LabSpec(prefix=f"sa{os.getpid() % 100000}"))
    lab.up()
    try:
        yield lab
    finally:
        lab.down(quiet=True)


@pytest.fixture(scope="module")
def tenant(lab: Lab) -> Iterator[httpx.Client]:
    secret = lab.api(
        "POST",
        "/v2/shoal/tokens",
        {"token": {"name": "mallory", "project_id": "mallory", "role": "member"}},
    )["token"]["secret"]
    with netns.entered(lab.state.ctl_ns):
        client = httpx.Client(
            base_url=lab.state.controller_url,
            headers={"X-Auth-Token": secret},
            timeout=30,
            verify=ssl.create_default_context(cafile=lab.state.ca_bundle),
        )
    try:
        yield client
    finally:
        client.close()


def tenant_call(lab: Lab, tenant: httpx.Client, method: str, path: str, body: Any) -> Any:
    with netns.entered(lab.state.ctl_ns):
        return tenant.request(method, path, json=body)


def router_routes(lab: Lab) -> set[str]:
    out = netns.run(["ip", "-j", "route", "show"], f"{lab.spec.prefix}-rtr").stdout
    return {r["dst"] for r in json.loads(out or "[]")}


def l4_stack(lab: Lab, tenant: httpx.Client, **lb: Any) -> dict[str, Any]:
    """An L4 load balancer with a listener, so its VIP is something the nodes would announce."""
    r = tenant_call(
        lab, tenant, "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"flavor_id": "l4", **lb}}
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()["loadbalancer"]
    lab.wait_lb(created["id"])
    r = tenant_call(
        lab,
        tenant,
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": created["id"], "protocol": "TCP", "protocol_port": 80}},
    )
    assert r.status_code == 201, r.text
    lab.wait_lb(created["id"])
    return created


def wait_route(lab: Lab, dst: str, present: bool, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (dst in router_routes(lab)) == present:
            return True
        time.sleep(0.2)
    return False


def test_hijack_attempts_are_refused_and_reach_no_router(lab: Lab, tenant: httpx.Client) -> None:
    legit = l4_stack(lab, tenant)
    assert ipaddress.ip_address(legit["vip_address"]) in ipaddress.ip_network(lab.state.vip_pool)
    assert wait_route(lab, legit["vip_address"], True), "the legitimate VIP is routed"
    before = router_routes(lab)
    for vip in ("8.8.8.8", "0.0.0.0", "127.0.0.1", "224.0.0.1", "10.88.200.1", "10.88.1.1"):
        body = {"loadbalancer": {"flavor_id": "l4", "vip_address": vip}}
        r = tenant_call(lab, tenant, "POST", "/v2/lbaas/loadbalancers", body)
        assert r.status_code == 400, (vip, r.text)
        assert "lab" in r.json()["faultstring"], "names the pool the tenant may use"
    time.sleep(2)  # what would have been announced has had time to arrive
    assert router_routes(lab) == before
    lbs = lab.api("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
    assert all(
        ipaddress.ip_address(lb["vip_address"]) in ipaddress.ip_network(lab.state.vip_pool)
        for lb in lbs
    )


def test_a_pool_outside_the_served_prefixes_is_never_announced(
    lab: Lab, tenant: httpx.Client
) -> None:
    """An admin's mistake (a pool no node is set to serve): the nodes refuse it, report it,
    and announce nothing."""
    pool = lab.api(
        "POST",
        "/v2/shoal/vip-pools",
        {"vip_pool": {"name": "unserved", "cidr": "10.89.0.0/24", "shared": True}},
    )["vip_pool"]
    lb = l4_stack(lab, tenant, vip_subnet_id=pool["id"])
    assert lb["vip_address"] == "10.89.0.1"
    assert lab.wait_lb(lb["id"]) == "ERROR"
    status = lab.api("GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")["statuses"]
    assert "outside the prefixes this node serves" in status["loadbalancer"]["provisioning_reason"]
    assert not wait_route(lab, "10.89.0.1", True, timeout=3)
    for name in NODES:
        assert "10.89.0.1" not in (lab.node_dir(name) / "vips4.conf").read_text()


def test_the_router_imports_only_vip_host_routes(lab: Lab) -> None:
    """A compromised L4 node announces what it likes: the router keeps only host routes of
    the VIP pool."""
    name = NODES[0]
    include = lab.node_dir(name) / "vips4.conf"
    original = include.read_text()
    ctl = str(lab.node_dir(name) / "bird.ctl")
    rogue = ["8.8.8.8/32", "0.0.0.0/0", "10.88.100.0/24", "192.0.2.0/24"]
    inside = str(ipaddress.ip_network(lab.state.vip_pool)[250]) + "/32"
    before = router_routes(lab)
    try:
        include.write_text(original + "".join(f"route {r} blackhole;\n" for r in [*rogue, inside]))
        netns.run(["birdc", "-s", ctl, "configure"], lab.state.hosts[name]["ns"])
        exported = netns.run(
            ["birdc", "-s", ctl, "show", "route", "export", "uplink"], lab.state.hosts[name]["ns"]
        ).stdout
        assert all(r in exported for r in rogue), exported
        assert wait_route(lab, inside.removesuffix("/32"), True), "a VIP host route still arrives"
        arrived = router_routes(lab) - before
        assert arrived == {inside.removesuffix("/32")}, arrived
    finally:
        include.write_text(original)
        netns.run(["birdc", "-s", ctl, "configure"], lab.state.hosts[name]["ns"])
