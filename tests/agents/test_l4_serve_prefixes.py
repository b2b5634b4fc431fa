"""Defence in depth on the L4 node: whatever the controller sends, the agent programs and
announces only VIPs inside the prefixes the node serves, and reports the others as errors."""

# ruff: noqa: F811  (the API fixtures are imported below; tests name them as parameters)

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from shoal.agents.api import AgentApi
from shoal.agents.bgp import NullSpeaker
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.translate import translate
from shoal.dataplane.balancer import Balancer
from tests.api.conftest import (  # noqa: F401  (fixtures)
    admin,
    agent,
    alice,
    client,
    database_url,
    postgres_server,
    settings,
)
from tests.api.helpers import Api


def _desired(admin: Api, agent: Api, alice: Api) -> tuple[dict[str, Any], dict[str, str]]:
    """A node's desired state holding one VIP in the default pool and one in "edge"."""
    admin.ok(
        "POST",
        "/v2/shoal/vip-pools",
        {"vip_pool": {"name": "edge", "cidr": "203.0.113.0/24", "shared": True}},
        expect=201,
    )
    inside = alice.l4_stack(members=1)["lb"]
    outside = alice.l4_stack(members=1, vip_subnet_id="edge")["lb"]
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)
    desired = agent.ok("GET", f"/v2/shoal/nodes/{node['node']['id']}/desired-state")
    return desired, {"inside": inside["id"], "outside": outside["id"]}


def test_a_vip_outside_the_served_prefixes_is_neither_programmed_nor_announced(
    admin: Api, agent: Api, alice: Api, tmp_path: Path
) -> None:
    desired, ids = _desired(admin, agent, alice)
    cfg = L4AgentConfig(
        controller="http://127.0.0.1:1",
        token="unused",
        name="l4-a",
        interface="unused0",
        state_dir=tmp_path,
        serve_prefixes=["10.200.0.0/16"],
    )
    speaker = NullSpeaker()
    node = L4Agent(cfg, AgentApi(cfg.controller, cfg.token), speaker)
    node.lb, node.dataplane_ok = Balancer.fake(), True
    try:
        node.apply(desired)
        programmed = {v.address for v in node.lb.current_vips()}
        assert {str(a) for a in programmed} == {"10.200.0.1"}
        assert speaker.announced == frozenset({"10.200.0.1"})
        (error,) = node.errors
        assert error["load_balancer_id"] == ids["outside"]
        assert "outside the prefixes this node serves (10.200.0.0/16)" in error["reason"]
        assert node.applied == {ids["inside"]}
    finally:
        node.close()


def test_special_vips_are_refused_even_when_any_prefix_is_served(
    admin: Api, agent: Api, alice: Api
) -> None:
    desired, ids = _desired(admin, agent, alice)
    # A controller that was tricked (or replaced) sends a loopback and a public /32.
    for entry, vip in zip(desired["load_balancers"], ("127.0.0.1", "8.8.8.8"), strict=True):
        entry["config"]["vip_address"] = vip
    tr = translate(desired, serve=None)
    assert set(tr.errors) == {
        next(
            e["id"] for e in desired["load_balancers"] if e["config"]["vip_address"] == "127.0.0.1"
        )
    }
    tr = translate(desired, serve=[ipaddress.ip_network("10.200.0.0/16")])
    assert set(tr.errors) == set(ids.values()) and not tr.vips_by_lb
