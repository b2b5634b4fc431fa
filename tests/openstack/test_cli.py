"""The stock `openstack loadbalancer` CLI (python-octaviaclient) and openstacksdk against the
controller, with Keystone users of each of Octavia's default roles."""

from __future__ import annotations

import re
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
        pool["id"],
    )
    assert member["address"] == "192.0.2.10"
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
    status = alice.run("loadbalancer", "status", "show", lb["id"])
    assert status.rc == 0, status.err
    assert listener["id"] in status.out and member["id"] in status.out
    quota = alice.ok("loadbalancer", "quota", "show", cloud.keystone.ids["project:alpha"])
    assert "load_balancer" in quota
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


def test_openstacksdk_reads_and_writes_as_the_token_allows(cloud):
    alice = sdk(cloud, "alice", "alpha")
    lb = alice.load_balancer.create_load_balancer(
        name=f"sdk-{uuid.uuid4().hex[:6]}", vip_subnet_id="default"
    )
    assert lb.project_id == cloud.keystone.ids["project:alpha"]
    listener = alice.load_balancer.create_listener(
        load_balancer_id=lb.id, protocol="TCP", protocol_port=443
    )
    assert [p.id for p in alice.load_balancer.listeners(load_balancer_id=lb.id)] == [listener.id]
    olga = sdk(cloud, "olga", "alpha")
    assert olga.load_balancer.get_load_balancer(lb.id).name == lb.name
    with pytest.raises(openstack.exceptions.ForbiddenException):
        olga.load_balancer.delete_load_balancer(lb.id, cascade=True)
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
