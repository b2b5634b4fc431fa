"""The stock `openstack loadbalancer` CLI (python-octaviaclient) and openstacksdk against the
controller, with Keystone users of each of Octavia's default roles."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

import openstack

from .cloud import PASSWORD, REGION
from .conftest import Cloud

pytestmark = pytest.mark.openstack

REQUEST_ID = re.compile(r"Request-ID: req-[0-9a-f-]{36}")


def sdk(cloud: Cloud, user: str, project: str, password: str = PASSWORD) -> Any:
    return openstack.connect(
        auth_url=cloud.keystone.url,
        username=user,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=REGION,
    )


def has_neutron_view(cloud: Cloud) -> bool:
    """The controller's Neutron-compatible VIP pool view, which `loadbalancer create
    --vip-subnet-id` resolves through (the catalog's `network` service names it)."""
    return httpx.get(f"{cloud.controller.url}/v2.0/subnets").status_code in (200, 401)


def create_lb(cloud: Cloud, as_user: Any, user: str, project: str) -> dict[str, Any]:
    name = f"lb-{uuid.uuid4().hex[:8]}"
    if has_neutron_view(cloud):
        lb: dict[str, Any] = as_user(user).ok(
            "loadbalancer", "create", "--name", name, "--vip-subnet-id", "default"
        )
        return lb
    # Without it the CLI cannot resolve --vip-subnet-id: the SDK sends the pool id as is.
    made = sdk(cloud, user, project).load_balancer.create_load_balancer(
        name=name, vip_subnet_id="default"
    )
    return {"id": made.id, "name": made.name, "vip_address": made.vip_address}


def test_member_builds_and_deletes_a_load_balancer_with_the_cli(cloud, as_user):
    alice = as_user("alice")  # load-balancer_member of alpha
    lb = create_lb(cloud, as_user, "alice", "alpha")
    listed = alice.ok("loadbalancer", "list")
    assert lb["id"] in [row["id"] for row in listed]
    shown = alice.ok("loadbalancer", "show", lb["name"])
    assert shown["vip_address"] == lb["vip_address"]
    assert shown["project_id"] == cloud.keystone.ids["project:alpha"]  # from the token

    listener = alice.ok(
        "loadbalancer",
        "listener",
        "create",
        "--name",
        f"{lb['name']}-http",
        "--protocol",
        "HTTP",
        "--protocol-port",
        "80",
        lb["id"],
    )
    assert listener["protocol_port"] == 80
    pool = alice.ok(
        "loadbalancer",
        "pool",
        "create",
        "--listener",
        listener["id"],
        "--protocol",
        "HTTP",
        "--lb-algorithm",
        "ROUND_ROBIN",
    )
    member = alice.ok(
        "loadbalancer",
        "member",
        "create",
        "--address",
        "192.0.2.10",
        "--protocol-port",
        "8080",
        "--subnet-id",
        "default",  # resolved through the catalog's network service, to the pool's id
        pool["id"],
    )
    assert member["address"] == "192.0.2.10"
    default_pool = alice.ok("subnet", "show", "default")  # the stock CLI sees the view too
    assert member["subnet_id"] == default_pool["id"] == shown["vip_subnet_id"]
    assert any(
        m["id"] == member["id"] for m in alice.ok("loadbalancer", "member", "list", pool["id"])
    )
    monitor = alice.ok(
        "loadbalancer",
        "healthmonitor",
        "create",
        "--delay",
        "5",
        "--timeout",
        "3",
        "--max-retries",
        "3",
        "--type",
        "HTTP",
        pool["id"],
    )
    assert monitor["type"] == "HTTP"
    policy = alice.ok(
        "loadbalancer",
        "l7policy",
        "create",
        "--action",
        "REDIRECT_TO_POOL",
        "--redirect-pool",
        pool["id"],
        "--name",
        "api",
        listener["id"],
    )
    rule = alice.ok(
        "loadbalancer",
        "l7rule",
        "create",
        "--compare-type",
        "STARTS_WITH",
        "--type",
        "PATH",
        "--value",
        "/api",
        policy["id"],
    )
    assert rule["value"] == "/api"
    assert [r["id"] for r in alice.ok("loadbalancer", "l7rule", "list", policy["id"])] == [
        rule["id"]
    ]
    assert alice.run("loadbalancer", "l7policy", "set", "--name", "api2", policy["id"]).rc == 0
    assert alice.ok("loadbalancer", "l7policy", "show", policy["id"])["name"] == "api2"
    status = alice.run("loadbalancer", "status", "show", lb["id"])
    assert status.rc == 0, status.err
    assert listener["id"] in status.out and member["id"] in status.out
    quota = alice.ok("loadbalancer", "quota", "show", cloud.keystone.ids["project:alpha"])
    assert "load_balancer" in quota
    # By name: a member may not look projects up in Keystone; the CLI sends the name.
    assert alice.ok("loadbalancer", "quota", "show", "alpha")["load_balancer"] == -1
    alice.refused("loadbalancer", "quota", "show", "beta")  # another project: 404
    stats = alice.ok("loadbalancer", "stats", "show", lb["id"])
    assert stats["total_connections"] == 0
    assert alice.run("loadbalancer", "failover", lb["id"]).rc == 0

    assert alice.run("loadbalancer", "delete", "--cascade", lb["id"]).rc == 0
    gone = alice.run("loadbalancer", "show", lb["id"])
    assert gone.rc != 0 and "Unable to locate" in gone.err


@pytest.mark.parametrize("user", ["olga", "rita"])  # load-balancer_observer, reader
def test_observers_read_but_are_refused_writes(cloud, as_user, user):
    lb = create_lb(cloud, as_user, "alice", "alpha")
    observer = as_user(user)
    assert lb["id"] in [row["id"] for row in observer.ok("loadbalancer", "list")]
    assert observer.ok("loadbalancer", "show", lb["id"])["name"] == lb["name"]
    err = observer.refused(
        "loadbalancer", "listener", "create", "--protocol", "TCP", "--protocol-port", "81", lb["id"]
    )
    assert "403" in err or "may not change" in err
    assert REQUEST_ID.search(err), err  # the CLI's error line names the request
    assert "403" in observer.refused("loadbalancer", "delete", lb["id"])
    assert "403" in observer.refused("loadbalancer", "set", "--name", "x", lb["id"])
    assert "403" in observer.refused("loadbalancer", "failover", lb["id"])
    # Observers still resolve VIP subnets (read-only view).
    assert observer.ok("subnet", "show", "default")["cidr"] == "10.200.0.0/16"
    assert as_user("alice").ok("loadbalancer", "show", lb["id"])["id"] == lb["id"]  # still there


def test_projects_are_separate_and_global_observers_see_all(cloud, as_user):
    lb = create_lb(cloud, as_user, "alice", "alpha")
    bob = as_user("bob")  # member of beta
    assert lb["id"] not in [row["id"] for row in bob.ok("loadbalancer", "list")]
    assert "Unable to locate" in bob.refused("loadbalancer", "show", lb["id"])
    assert "Unable to locate" in bob.refused("loadbalancer", "delete", lb["id"])
    gina = as_user("gina")  # load-balancer_global_observer (of beta)
    assert lb["id"] in [row["id"] for row in gina.ok("loadbalancer", "list")]
    assert "may not change" in gina.refused("loadbalancer", "set", "--name", "x", lb["id"])
    nora = as_user("nora")  # a role Octavia's policy does not know
    assert "Policy does not allow" in nora.refused("loadbalancer", "list")


def test_admin_sees_every_project_and_sets_quotas_by_project_name(cloud, as_user):
    lb = create_lb(cloud, as_user, "mona", "alpha")  # mona: the plain `member` role
    admin = as_user("admin")
    assert lb["id"] in [row["id"] for row in admin.ok("loadbalancer", "list")]
    alpha = cloud.keystone.ids["project:alpha"]
    assert admin.run("loadbalancer", "quota", "set", "--listener", "50", "beta").rc == 0
    assert admin.ok("loadbalancer", "quota", "show", "beta")["listener"] == 50
    assert admin.ok("loadbalancer", "quota", "show", alpha)["listener"] == -1
    refused = as_user("mona").refused("loadbalancer", "quota", "set", "--listener", "9", alpha)
    assert "admin" in refused
    assert admin.run("loadbalancer", "quota", "reset", "beta").rc == 0
    assert admin.ok("loadbalancer", "quota", "show", "beta")["listener"] == -1
    assert admin.run("loadbalancer", "delete", "--cascade", lb["id"]).rc == 0


def settle(lbs: Any, lb_id: str) -> None:
    """Until the write is no longer PENDING (no agents run here: an L7 balancer without L7
    nodes settles in ERROR, which still takes writes, as Octavia's ERROR does)."""
    deadline = time.monotonic() + 120
    while lbs.get_load_balancer(lb_id).provisioning_status.startswith("PENDING_"):
        assert time.monotonic() < deadline, f"{lb_id} stayed PENDING"
        time.sleep(0.5)


def test_openstacksdk_reads_and_writes_as_the_token_allows(cloud):
    alice = sdk(cloud, "alice", "alpha")
    subnet = alice.network.find_subnet("default")  # the controller's Neutron view
    assert subnet is not None and subnet.cidr == "10.200.0.0/16"
    lb = alice.load_balancer.create_load_balancer(
        name=f"sdk-{uuid.uuid4().hex[:6]}", vip_subnet_id=subnet.id
    )
    assert lb.project_id == cloud.keystone.ids["project:alpha"]
    lbs = alice.load_balancer
    settle(lbs, lb.id)
    listener = lbs.create_listener(load_balancer_id=lb.id, protocol="HTTP", protocol_port=8080)
    assert [p.id for p in lbs.listeners(load_balancer_id=lb.id)] == [listener.id]
    settle(lbs, lb.id)
    pool = lbs.create_pool(listener_id=listener.id, protocol="HTTP", lb_algorithm="ROUND_ROBIN")
    settle(lbs, lb.id)
    member = lbs.create_member(pool, address="192.0.2.20", protocol_port=80, subnet_id=subnet.id)
    settle(lbs, lb.id)
    assert [m.id for m in lbs.members(pool)] == [member.id]
    lbs.create_health_monitor(pool_id=pool.id, type="TCP", delay=5, timeout=3, max_retries=2)
    settle(lbs, lb.id)
    policy = lbs.create_l7_policy(listener_id=listener.id, action="REJECT", name="no")
    settle(lbs, lb.id)
    lbs.create_l7_rule(policy, type="HOST_NAME", compare_type="EQUAL_TO", rule_value="bad.example")
    settle(lbs, lb.id)
    assert [r.rule_value for r in lbs.l7_rules(policy)] == ["bad.example"]
    assert lbs.get_load_balancer_statistics(lb.id).total_connections == 0
    assert lbs.get_quota(cloud.keystone.ids["project:alpha"]).load_balancers == -1
    lbs.failover_load_balancer(lb.id)
    settle(lbs, lb.id)
    olga = sdk(cloud, "olga", "alpha")
    assert olga.load_balancer.get_load_balancer(lb.id).name == lb.name
    assert olga.network.find_subnet("default").id == subnet.id
    with pytest.raises(openstack.exceptions.ForbiddenException):
        olga.load_balancer.delete_load_balancer(lb.id, cascade=True)
    with pytest.raises(openstack.exceptions.ForbiddenException):
        olga.load_balancer.create_listener(load_balancer_id=lb.id, protocol="TCP", protocol_port=9)
    bob = sdk(cloud, "bob", "beta")
    assert lb.id not in [x.id for x in bob.load_balancer.load_balancers()]
    alice.load_balancer.delete_load_balancer(lb.id, cascade=True)
    with pytest.raises(openstack.exceptions.NotFoundException):
        alice.load_balancer.get_load_balancer(lb.id)


def test_every_answer_carries_a_request_id_and_401s_name_keystone(cloud):
    r = httpx.get(f"{cloud.controller.url}/v2/lbaas/loadbalancers", headers={"X-Auth-Token": "x"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Keystone uri="{cloud.keystone.url}"'
    assert re.fullmatch(r"req-[0-9a-f-]{36}", r.headers["x-openstack-request-id"])
    ok = httpx.get(f"{cloud.controller.url}/")
    assert ok.headers["x-openstack-request-id"] != r.headers["x-openstack-request-id"]
    assert r.headers["x-openstack-request-id"] in cloud.controller.log.read_text()


def test_create_by_vip_network_and_the_vip_port_show_up(cloud, as_user):
    alice = as_user("alice")
    name = f"lb-{uuid.uuid4().hex[:8]}"
    lb = alice.ok("loadbalancer", "create", "--name", name, "--vip-network-id", "default")
    assert lb["vip_network_id"] == alice.ok("network", "show", "default")["id"]
    ports = alice.ok("port", "list", "--network", "default")
    assert lb["vip_address"] in str(ports)
    assert alice.run("loadbalancer", "delete", lb["id"]).rc == 0


def test_a_tenant_cannot_resolve_another_projects_private_pool(cloud, as_user):
    """The attacker (bob, project beta) names alpha's private VIP pool on the CLI: the view
    does not show it to him, so his load balancer cannot land in it."""
    admin = cloud.keystone  # the controller's admins are Keystone admins
    alpha = admin.ids["project:alpha"]
    token = admin.token("admin", admin.admin_password, "admin")
    r = httpx.post(
        f"{cloud.controller.url}/v2/shoal/vip-pools",
        headers={"X-Auth-Token": token},
        json={
            "vip_pool": {
                "name": f"alpha-{uuid.uuid4().hex[:6]}",
                "cidr": f"10.{90 + uuid.uuid4().int % 60}.{uuid.uuid4().int % 250}.0/24",
                "project_ids": [alpha],
            }
        },
    )
    assert r.status_code == 201, r.text
    private = r.json()["vip_pool"]
    alice = as_user("alice")
    assert alice.ok("subnet", "show", private["name"])["id"] == private["id"]
    bob = as_user("bob")
    assert "No Subnet found" in bob.refused("subnet", "show", private["name"])
    err = bob.refused("loadbalancer", "create", "--vip-subnet-id", private["id"])
    assert "Unable to locate" in err or "400" in err
    assert private["id"] not in str(bob.ok("subnet", "list"))
