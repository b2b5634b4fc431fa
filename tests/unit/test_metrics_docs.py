"""docs/metrics.md lists every metric family Shoal exports, and the Grafana dashboard asks
only for metrics that exist."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import cast

from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.metrics import L4Collector
from shoal.agents.l7.agent import L7Agent, L7AgentConfig
from shoal.agents.l7.metrics import L7Collector
from shoal.bench.applycost import desired_state
from shoal.controller.app import create_app
from shoal.controller.settings import load_settings
from shoal.dataplane.balancer import Balancer

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIX = {"counter": "_total", "info": "_info"}


def exported(text: str) -> set[str]:
    return {
        f.name + SUFFIX.get(f.type, "")
        for f in text_string_to_metric_families(text)
        if f.name.startswith("shoal_")
    }


def controller_families(tmp: Path) -> set[str]:
    settings = load_settings(
        database_url=f"sqlite:///{tmp / 'c.db'}", state_dir=str(tmp), bootstrap_token="admin-x"
    )
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        c.get("/v2/lbaas/loadbalancers", headers={"X-Auth-Token": "admin-x"})
        body = {"loadbalancer": {"flavor_id": "l4"}}
        c.post("/v2/lbaas/loadbalancers", json=body, headers={"X-Auth-Token": "admin-x"})
        return exported(c.get("/metrics", headers={"X-Auth-Token": "admin-x"}).text)


def agent_families(tmp: Path) -> set[str]:
    cfg = L4AgentConfig(controller="", token="", name="n", interface="lo", state_dir=tmp)
    l4 = L4Agent(cfg, cast(AgentApi, None))
    l4.lb = Balancer.fake()
    try:
        l4.apply(desired_state(2, 2))
        l4.registry.register(L4Collector(l4))
        # The agent's own families appear once used: a histogram with one observation.
        with l4.feed.applying():
            pass
        names = exported(generate_latest(l4.registry).decode())
    finally:
        l4.health.close()
    l7cfg = L7AgentConfig(
        controller="",
        token="",
        name="n7",
        data_address="127.0.0.1",
        run_dir=tmp / "run",
        state_dir=tmp / "state",
    )
    l7 = L7Agent(l7cfg, cast(AgentApi, None))
    l7.registry.register(L7Collector(l7))
    names |= exported(generate_latest(l7.registry).decode())
    return names | {"shoal_bgp_session_up", "shoal_bfd_session_up", "shoal_bird_up"}


def test_every_family_is_documented() -> None:
    text = (DOCS / "metrics.md").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        names = controller_families(Path(tmp)) | agent_families(Path(tmp))
    assert len(names) > 40
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"add to docs/metrics.md: {missing}"
    assert "`shoal_l7_haproxy_exporter_up`" in text


def test_the_dashboard_asks_only_for_documented_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-shoal.json").read_text())
    docs = (DOCS / "metrics.md").read_text()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "expr" in t]
    assert len(exprs) > 20
    used = {m for e in exprs for m in re.findall(r"\bshoal_[a-z0-9_]+", e)}
    base = {re.sub(r"_(bucket|count|sum)$", "", m) for m in used}
    unknown = sorted(m for m in base if f"`{m}`" not in docs)
    assert not unknown, unknown
