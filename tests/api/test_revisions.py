"""Revisions: numbered, immutable, diffable, roll-backable; preconditions and racing writers."""

from __future__ import annotations

import threading

import httpx

from .helpers import Api


def revisions(api: Api, lb_id: str) -> list[dict]:
    return api.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"]


def test_every_write_is_a_revision_with_author_and_parent(alice: Api) -> None:
    stack = alice.l4_stack(members=2)
    lb_id = stack["lb"]["id"]
    revs = revisions(alice, lb_id)
    assert [r["number"] for r in revs] == [5, 4, 3, 2, 1]
    assert [r["parent"] for r in revs] == [4, 3, 2, 1, None]
    assert {r["author"] for r in revs} == {"alice"}
    full = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/5")["revision"]
    config = full["config"]
    assert config["vip_address"] == stack["lb"]["vip_address"]
    assert {m["address"] for m in config["pools"][0]["members"]} == {"10.1.0.1", "10.1.0.2"}
    assert "provisioning_status" not in str(config)


def test_diff_is_readable_and_structured(alice: Api) -> None:
    stack = alice.l4_stack(members=1)
    lb_id, member = stack["lb"]["id"], stack["members"][0]
    alice.ok(
        "PUT",
        f"/v2/lbaas/pools/{stack['pool']['id']}/members/{member['id']}",
        {"member": {"weight": 0}},
    )
    alice.member(stack["pool"]["id"], "10.1.0.9")
    d = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/6/diff", against=4)
    assert "~ member 10.1.0.1:80: weight 1 -> 0" in d["text"]
    assert "+ member 10.1.0.9:80" in d["text"]
    ops = {(c["op"], c.get("field")) for c in d["changes"]}
    assert ops == {("change", "weight"), ("add", None)}


def test_rollback_restores_the_old_tree_with_the_same_ids(alice: Api) -> None:
    stack = alice.l4_stack(members=3)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]
    before = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/6")["revision"]
    for m in stack["members"][:2]:
        alice.request("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{m['id']}")
    alice.ok(
        "PUT",
        f"/v2/lbaas/listeners/{stack['listener']['id']}",
        {"listener": {"connection_limit": 100}},
    )
    new = alice.ok("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/6/rollback", expect=201)[
        "revision"
    ]
    assert new["number"] == 10 and new["parent"] == 9 and new["message"] == "rollback to revision 6"
    after = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/10")["revision"]
    assert after["config"] == before["config"] and after["digest"] == before["digest"]
    members = alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    assert {m["id"] for m in members} == {m["id"] for m in stack["members"]}
    assert (
        alice.ok("GET", f"/v2/lbaas/listeners/{stack['listener']['id']}")["listener"][
            "connection_limit"
        ]
        == -1
    )


def test_a_stale_precondition_is_refused(alice: Api) -> None:
    lb = alice.lb()
    r = alice.request("GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
    etag = r.headers["etag"]
    assert etag == '"1"'
    ok = alice.request(
        "PUT",
        f"/v2/lbaas/loadbalancers/{lb['id']}",
        {"loadbalancer": {"name": "a"}},
        headers={"If-Match": etag},
    )
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    stale = alice.request(
        "PUT",
        f"/v2/lbaas/loadbalancers/{lb['id']}",
        {"loadbalancer": {"name": "b"}},
        headers={"If-Match": etag},
    )
    assert stale.status_code == 409
    assert "based on revision 1" in stale.json()["faultstring"]
    assert alice.get_lb(lb["id"])["name"] == "a"
    bad = alice.request(
        "PUT",
        f"/v2/lbaas/loadbalancers/{lb['id']}",
        {"loadbalancer": {"name": "c"}},
        headers={"If-Match": "yesterday"},
    )
    assert bad.status_code == 400


def race(base: str, headers: dict[str, str], lb_id: str, etag: str, round_: int) -> list[int]:
    """Two writers, both based on the same revision, released at the same instant."""
    results: list[int] = []
    start = threading.Barrier(2)

    def write(name: str) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as w:
            start.wait()
            r = w.put(
                f"/v2/lbaas/loadbalancers/{lb_id}",
                json={"loadbalancer": {"name": name}},
                headers={"If-Match": etag},
            )
            results.append(r.status_code)

    threads = [threading.Thread(target=write, args=(f"w{round_}-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_racing_writers_exactly_one_wins(live_server: str, alice_secret: str) -> None:
    headers = {"X-Auth-Token": alice_secret}
    with httpx.Client(base_url=live_server, headers=headers, timeout=30) as c:
        lb = c.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {}}).json()["loadbalancer"]
        lb_id = lb["id"]
        for round_ in range(10):
            etag = c.get(f"/v2/lbaas/loadbalancers/{lb_id}").headers["etag"]
            assert sorted(race(live_server, headers, lb_id, etag, round_)) == [200, 409]
        revs = c.get(f"/v2/shoal/loadbalancers/{lb_id}/revisions").json()["revisions"]
        assert [r["number"] for r in revs] == list(range(11, 0, -1))


def test_audit_log(alice: Api, admin: Api) -> None:
    stack = alice.l4_stack(members=1)
    entries = alice.ok("GET", "/v2/shoal/audit", load_balancer_id=stack["lb"]["id"])["audit"]
    assert [(e["action"], e["resource_type"]) for e in reversed(entries)] == [
        ("create", "loadbalancer"),
        ("create", "listener"),
        ("create", "pool"),
        ("create", "member"),
    ]
    assert {e["principal"] for e in entries} == {"alice"}
