"""A member change costs what it changes: the write answers from the rows it wrote, the
statements of a write, a feed answer and a report do not grow with the number of load
balancers, a report settles the children it names without loading their tree, and an
agent's credential is found in one lookup without opening a door for other secrets."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from shoal.bench.membercost import StatementCounter
from shoal.controller import app as app_module
from shoal.controller.app import create_app
from shoal.controller.settings import load_settings

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api, Fleet

Count = Callable[[TestClient], StatementCounter]


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> Iterator[Count]:
    """count(client): a counter of the statements the client's app sends from now on, for
    the requests alone: the once-a-second background tick is stopped (it could settle a load
    balancer a step was to settle), until the test ends."""
    monkeypatch.setattr(app_module, "background_tick", lambda state: None)
    with contextlib.ExitStack() as stack:
        yield lambda client: stack.enter_context(
            StatementCounter(client.app.state.shoal.db.engine)  # type: ignore[attr-defined]
        )


def _revision(admin: Api, lb_id: str) -> str:
    return admin.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}").headers["ETag"]


def _settled(agent: Fleet, node_id: str, seq: int) -> int:
    """The node fetches what changed and reports it applied; its new position."""
    seq, _ = _follow(agent, node_id, seq)
    agent.ok("POST", f"/v2/shoal/nodes/{node_id}/report", {"seq": seq, "errors": []})
    return seq


def _follow(agent: Fleet, node_id: str, position: int) -> tuple[int, list[str]]:
    answer = agent.ok("GET", f"/v2/shoal/nodes/{node_id}/feed", position=position)
    return answer["seq"], [lb["id"] for lb in answer["load_balancers"]]


def test_a_member_update_answers_what_a_read_then_shows(admin: Api, agent: Fleet) -> None:
    stack = admin.l4_stack(members=2)
    pool_id, member = stack["pool"]["id"], stack["members"][0]
    path = f"/v2/lbaas/pools/{pool_id}/members/{member['id']}"
    # No node yet: the write settles ACTIVE at once, in the answer too.
    r = admin.request("PUT", path, {"member": {"weight": 7, "name": "w7"}})
    assert r.status_code == 200
    got = admin.request("GET", path)
    assert r.json() == got.json() and r.headers["ETag"] == got.headers["ETag"]
    assert r.json()["member"]["provisioning_status"] == "ACTIVE"
    assert r.headers["ETag"] == _revision(admin, stack["lb"]["id"])
    # With a node: PENDING_UPDATE until it reports, in the answer and in a read.
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"})["node"]
    seq = _settled(agent, node["id"], 0)
    r = admin.request("PUT", path, {"member": {"weight": 3}})
    got = admin.request("GET", path)
    assert r.json() == got.json() and r.json()["member"]["weight"] == 3
    assert r.json()["member"]["provisioning_status"] == "PENDING_UPDATE"
    _settled(agent, node["id"], seq)
    created = admin.request(
        "POST",
        f"/v2/lbaas/pools/{pool_id}/members",
        {"member": {"address": "10.1.0.9", "protocol_port": 80}},
    )
    assert created.status_code == 201
    assert created.json()["member"]["provisioning_status"] == "PENDING_CREATE"
    shown = admin.request(
        "GET", f"/v2/lbaas/pools/{pool_id}/members/{created.json()['member']['id']}"
    )
    assert created.json() == shown.json()


def test_a_report_settles_every_child_and_a_failure_marks_only_the_pending(
    admin: Api, agent: Fleet
) -> None:
    stack = admin.l4_stack(members=3)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"})["node"]
    base = f"/v2/shoal/nodes/{node['id']}"
    seq, _ = _follow(agent, node["id"], 0)
    agent.ok("POST", f"{base}/report", {"seq": seq, "errors": []})
    target = stack["members"][1]["id"]
    admin.ok("PUT", f"/v2/lbaas/pools/{pool_id}/members/{target}", {"member": {"weight": 2}})
    members = admin.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    assert {m["id"]: m["provisioning_status"] for m in members}[target] == "PENDING_UPDATE"
    seq, changed = _follow(agent, node["id"], seq)
    assert changed == [lb_id]
    revision = int(_revision(admin, lb_id).strip('"'))
    error = {"load_balancer_id": lb_id, "revision": revision, "reason": "no room"}
    agent.ok("POST", f"{base}/report", {"seq": seq, "errors": [error]})
    members = admin.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    statuses = {m["id"]: m["provisioning_status"] for m in members}
    assert statuses.pop(target) == "ERROR" and set(statuses.values()) == {"ACTIVE"}
    assert admin.get_lb(lb_id)["provisioning_status"] == "ERROR"
    agent.ok("POST", f"{base}/report", {"seq": seq, "errors": []})  # it caught up
    members = admin.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    assert {m["provisioning_status"] for m in members} == {"ACTIVE"}
    listener = admin.ok("GET", f"/v2/lbaas/listeners/{stack['listener']['id']}")["listener"]
    pool = admin.ok("GET", f"/v2/lbaas/pools/{pool_id}")["pool"]
    assert listener["provisioning_status"] == pool["provisioning_status"] == "ACTIVE"
    assert admin.get_lb(lb_id)["provisioning_status"] == "ACTIVE"


def _change_cost(
    admin: Api, agent: Fleet, n: StatementCounter, stack: dict, node_id: str, seq: int
) -> tuple[int, int, int, int]:
    pool_id, member = stack["pool"]["id"], stack["members"][0]["id"]
    path = f"/v2/lbaas/pools/{pool_id}/members/{member}"
    weight = {"member": {"weight": 1 + seq % 2}}
    write = n.during(lambda: admin.ok("PUT", path, weight))
    out: list[int] = []
    feed = n.during(lambda: out.extend([_follow(agent, node_id, seq)[0]]))
    body = {"seq": out[0], "errors": []}
    report = n.during(lambda: agent.ok("POST", f"/v2/shoal/nodes/{node_id}/report", body))
    return write, feed, report, out[0]


def _least_cost(
    admin: Api, agent: Fleet, n: StatementCounter, stack: dict, node_id: str, seq: int
) -> tuple[list[int], int]:
    """The fewest statements of two changes, per step: the feed watcher's poll of the head
    (every feed_poll_interval, on its own) may fall into one of them, not into both."""
    *one, seq = _change_cost(admin, agent, n, stack, node_id, seq)
    *two, seq = _change_cost(admin, agent, n, stack, node_id, seq)
    return [min(a, b) for a, b in zip(one, two, strict=True)], seq


def test_statements_per_change_do_not_grow_with_the_load_balancers(
    database_url: str, tmp_path: Path, count: Count
) -> None:
    settings = make_settings(database_url, tmp_path, feed_poll_interval=10)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin, agent = Api(client, ADMIN_SECRET), Fleet(Api(client, ADMIN_SECRET))
        n = count(client)
        first = admin.l4_stack(members=2)
        node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"})["node"]
        seq = _settled(agent, node["id"], 0)
        small, seq = _least_cost(admin, agent, n, first, node["id"], seq)
        for _ in range(5):  # more load balancers, and a bigger project, around the same one
            lb = admin.lb(flavor_id="l4")
            seq = _settled(agent, node["id"], seq)
            li = admin.listener(lb["id"])
            seq = _settled(agent, node["id"], seq)
            pool = admin.pool(li["id"])
            seq = _settled(agent, node["id"], seq)
            for i in range(4):
                admin.member(pool["id"], f"10.2.0.{i + 1}")
                seq = _settled(agent, node["id"], seq)
        large, seq = _least_cost(admin, agent, n, first, node["id"], seq)
        assert large == small, (small, large)


def test_an_agents_secret_is_one_lookup_and_other_secrets_still_work(
    admin: Api, agent: Fleet, client: TestClient, count: Count
) -> None:
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"})["node"]
    node_api = agent.by_id[node["id"]]
    tokens: list[str] = []
    event.listen(
        client.app.state.shoal.db.engine,  # type: ignore[attr-defined]
        "before_cursor_execute",
        lambda conn, cur, statement, *a: (
            tokens.append(statement) if "FROM tokens" in statement else None
        ),
    )
    answer = node_api.ok("GET", f"/v2/shoal/nodes/{node['id']}/feed")
    assert answer["node"]["id"] == node["id"]  # served, as this node
    assert tokens == []  # the agent's secret is not looked up among the API tokens
    admin.ok("GET", "/v2/lbaas/loadbalancers")
    assert len(tokens) == 1
    # A guessed secret with the agents' prefix: refused in one readable line, no 500.
    r = admin.with_token("shoalnode_" + "x" * 43).request("GET", "/v2/lbaas/loadbalancers")
    assert r.status_code == 401 and r.json()["faultstring"] == "the token is not valid"
    r = admin.with_token("shoalnode_").request("GET", f"/v2/shoal/nodes/{node['id']}/feed")
    assert r.status_code == 401


def test_an_api_token_that_looks_like_a_node_credential_still_authenticates(
    tmp_path: Path, database_url: str
) -> None:
    """An operator's bootstrap token is theirs to choose: the agents' prefix must not make it
    a node credential, nor refuse it."""
    secret = "shoalnode_operator-chosen-bootstrap-token"
    settings = load_settings(
        database_url=database_url, state_dir=str(tmp_path), bootstrap_token=secret
    )
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        admin = Api(c, secret)
        assert admin.request("GET", "/v2/lbaas/loadbalancers").status_code == 200
        lb = admin.lb(flavor_id="l4")  # it writes, as the admin it is
        assert admin.get_lb(lb["id"])["project_id"] == lb["project_id"]
        # ... and is not a node's credential: a node's route refuses it
        r = admin.request("POST", "/v2/shoal/nodes/no-such-node/report", {"seq": 0})
        assert r.status_code in (401, 403), r.text


class _Reporter:
    """A node's numbered reports: a whole one first, then deltas on the last it sent."""

    def __init__(self, agent: Fleet, node_id: str) -> None:
        self.agent, self.node_id, self.number, self.seq = agent, node_id, 0, 0

    def follow_and_report(self) -> None:
        self.seq, _ = _follow(self.agent, self.node_id, self.seq)
        self.report()

    def report(self) -> None:
        body = {"seq": self.seq, "errors": [], "report": self.number + 1}
        if self.number:
            body["base"] = self.number
        self.agent.ok("POST", f"/v2/shoal/nodes/{self.node_id}/report", body)
        self.number += 1


def test_a_delta_report_costs_what_it_settles_not_the_backlog_of_other_nodes(
    database_url: str, tmp_path: Path, count: Count
) -> None:
    """Node b falls behind: every load balancer created since waits for it. Node a's report
    of one member change then looks at that change only: its statements are the same with
    1 or 6 load balancers waiting for b. Re-deriving the whole backlog on each report made
    the agents' lag feed itself under churn. When b catches up, everything settles."""
    settings = make_settings(database_url, tmp_path, feed_poll_interval=10)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin, agent = Api(client, ADMIN_SECRET), Fleet(Api(client, ADMIN_SECRET))
        n = count(client)
        stacks = [admin.l4_stack(members=2) for _ in range(2)]  # no node yet: ACTIVE at once
        nodes = [
            agent.ok("POST", "/v2/shoal/nodes", {"name": name, "role": "l4"})["node"]
            for name in ("l4-a", "l4-b")
        ]
        a, b = (_Reporter(agent, node["id"]) for node in nodes)
        a.follow_and_report()
        b.follow_and_report()
        costs, backlog = [], 0
        for stack, waiting in zip(stacks, (1, 6), strict=True):
            while backlog < waiting:  # b reports none of these
                admin.lb(flavor_id="l4")
                backlog += 1
            a.follow_and_report()
            pool_id, member = stack["pool"]["id"], stack["members"][0]["id"]
            admin.ok(
                "PUT", f"/v2/lbaas/pools/{pool_id}/members/{member}", {"member": {"weight": 5}}
            )
            a.seq, _ = _follow(agent, a.node_id, a.seq)
            costs.append(n.during(a.report))
            assert admin.get_lb(stack["lb"]["id"])["provisioning_status"] == "PENDING_UPDATE"
        assert costs[0] == costs[1], costs
        b.follow_and_report()
        statuses = {
            lb["provisioning_status"]
            for lb in admin.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
        }
        assert statuses == {"ACTIVE"}
