"""Project isolation, roles and quotas."""

from __future__ import annotations

from .helpers import Api, Fleet


def test_another_projects_objects_are_404(alice: Api, bob: Api, admin: Api) -> None:
    stack = alice.l4_stack(members=1)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]
    member_id = stack["members"][0]["id"]
    paths = [
        f"/v2/lbaas/loadbalancers/{lb_id}",
        f"/v2/lbaas/loadbalancers/{lb_id}/status",
        f"/v2/lbaas/listeners/{stack['listener']['id']}",
        f"/v2/lbaas/pools/{pool_id}",
        f"/v2/lbaas/pools/{pool_id}/members/{member_id}",
        f"/v2/shoal/loadbalancers/{lb_id}/revisions",
    ]
    for path in paths:
        assert bob.request("GET", path).status_code == 404, path
        assert admin.request("GET", path).status_code == 200, path
    assert (
        bob.request(
            "PUT", f"/v2/lbaas/loadbalancers/{lb_id}", {"loadbalancer": {"name": "mine"}}
        ).status_code
        == 404
    )
    assert (
        bob.request("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{member_id}").status_code == 404
    )
    assert (
        bob.request(
            "POST",
            f"/v2/lbaas/pools/{pool_id}/members",
            {"member": {"address": "10.9.9.9", "protocol_port": 80}},
        ).status_code
        == 404
    )
    assert bob.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"] == []
    assert bob.ok("GET", "/v2/lbaas/pools")["pools"] == []
    all_lbs = admin.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
    assert [x["id"] for x in all_lbs] == [lb_id]
    assert admin.ok("GET", "/v2/lbaas/loadbalancers", project_id="beta")["loadbalancers"] == []
    assert alice.get_lb(lb_id)["name"] == ""  # untouched


def test_roles(admin: Api, alice: Api) -> None:
    reader = admin.with_token(admin.token("carol", "alpha", "reader"))
    lb = alice.lb(name="x")
    assert reader.get_lb(lb["id"])["name"] == "x"
    r = reader.request(
        "PUT", f"/v2/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "y"}}
    )
    assert r.status_code == 403 and "may not change" in r.json()["faultstring"]
    assert (
        reader.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {}}).status_code == 403
    )
    assert (
        alice.request(
            "POST",
            "/v2/shoal/tokens",
            {"token": {"name": "t", "project_id": "alpha", "role": "admin"}},
        ).status_code
        == 403
    )
    assert (
        alice.request(
            "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"project_id": "beta"}}
        ).status_code
        == 403
    )
    other = admin.lb(project_id="beta")
    assert other["project_id"] == "beta"
    agent = Fleet(admin).enroll("l4-a")
    assert agent.request("GET", f"/v2/lbaas/loadbalancers/{lb['id']}").status_code == 404
    assert alice.request("GET", "/v2/shoal/nodes").status_code == 403


def test_quota_exhaustion_refuses_and_creates_nothing(admin: Api, alice: Api) -> None:
    admin.ok("PUT", "/v2/lbaas/quotas/alpha", {"quota": {"load_balancer": 1, "member": 2}})
    quota = alice.ok("GET", "/v2/lbaas/quotas/alpha")["quota"]
    assert quota["load_balancer"] == 1 and quota["loadbalancer"] == 1 and quota["member"] == 2
    assert quota["listener"] == -1
    stack = alice.l4_stack(members=2)
    r = alice.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {}})
    assert r.status_code == 403 and "Quota has been met" in r.json()["faultstring"]
    r = alice.request(
        "POST",
        f"/v2/lbaas/pools/{stack['pool']['id']}/members",
        {"member": {"address": "10.1.0.99", "protocol_port": 80}},
    )
    assert r.status_code == 403 and "member (2)" in r.json()["faultstring"]
    assert len(alice.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]) == 1
    assert len(alice.ok("GET", f"/v2/lbaas/pools/{stack['pool']['id']}/members")["members"]) == 2
    assert (
        alice.request("PUT", "/v2/lbaas/quotas/alpha", {"quota": {"member": 9}}).status_code == 403
    )
    assert admin.request("DELETE", "/v2/lbaas/quotas/alpha").status_code == 204
    alice.lb()  # default quota: unlimited
