"""The hand-built revision documents have exactly the controller's shape."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.settings import load_settings

from ..api.helpers import ADMIN_SECRET, Api
from . import fixtures as fx


def test_fixture_keys_match_a_real_revision(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/c.db",
        state_dir=str(tmp_path),
        bootstrap_token=ADMIN_SECRET,
    )
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        api = Api(client, ADMIN_SECRET)
        lb = api.lb()
        li = api.listener(lb["id"], 80, "HTTP")
        pool = api.pool(li["id"], "HTTP", "ROUND_ROBIN")
        api.member(pool["id"], "10.0.0.1", 80)
        api.monitor(pool["id"], "HTTP")
        pol = api.ok(
            "POST",
            "/v2/lbaas/l7policies",
            {"l7policy": {"listener_id": li["id"], "action": "REJECT"}},
        )["l7policy"]
        api.ok(
            "POST",
            f"/v2/lbaas/l7policies/{pol['id']}/rules",
            {"rule": {"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}},
        )
        rev = api.ok("GET", f"/v2/shoal/loadbalancers/{lb['id']}/revisions/7")["revision"]
    real = json.loads(json.dumps(rev["config"]))
    made = fx.lb(
        "10.0.0.9",
        [
            fx.listener(
                "l",
                "HTTP",
                80,
                "p",
                l7policies=[fx.policy("x", 1, "REJECT", [fx.rule("r", "PATH", "EQUAL_TO", "/x")])],
            )
        ],
        [
            fx.pool(
                "p",
                "HTTP",
                "ROUND_ROBIN",
                [fx.member("m", "10.0.0.1", 80)],
                healthmonitor=fx.monitor("HTTP"),
            )
        ],
    )
    assert set(made) == set(real)
    assert set(made["listeners"][0]) == set(real["listeners"][0])
    assert set(made["listeners"][0]["l7policies"][0]) == set(real["listeners"][0]["l7policies"][0])
    assert set(made["listeners"][0]["l7policies"][0]["rules"][0]) == set(
        real["listeners"][0]["l7policies"][0]["rules"][0]
    )
    assert set(made["pools"][0]) == set(real["pools"][0])
    assert set(made["pools"][0]["members"][0]) == set(real["pools"][0]["members"][0])
    assert set(made["pools"][0]["healthmonitor"]) == set(real["pools"][0]["healthmonitor"])
