"""What one member change costs the controller and the wire, with N L4 load balancers of M
members: CPU of the write, then bytes and controller CPU of what the agent fetches next,
both as the complete desired state (GET .../desired-state, what every change cost before the
feed) and as the feed's delta (GET .../feed?position=P).

One in-process controller on SQLite (the figure is the controller's code, not the
database's network). The changed load balancer is built through the API; the other N-1 are
stored rows with the same shape (building 10,000 through the API takes the other bench,
`shoal bench scale`, its minutes). The delta is measured only where the endpoint exists, so
the same file measures an older tree too:
`python -m shoal.bench.feedcost [N] [MEMBERS] [CHANGES]`."""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

__all__ = ["FeedCost", "measure"]

ADMIN = "bench-admin-secret"


@dataclass(frozen=True)
class FeedCost:
    load_balancers: int
    members: int
    write_ms: float  # controller CPU of the member update (median)
    full_bytes: int  # the complete desired state
    full_ms: float  # controller CPU to answer it (median)
    delta_bytes: int | None  # the feed's answer after one change (None: no feed)
    delta_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ok(r: Any) -> Any:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
    return r.json() if r.content else None


def _cpu(call: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = call()
    return out, (time.process_time() - start) * 1000


def _seed(client: TestClient, template_id: str, n: int) -> None:
    """n load balancers shaped like the template, as stored rows."""
    from shoal.controller.db.models import LoadBalancer

    state = client.app.state.shoal  # type: ignore[attr-defined]
    with state.db.write() as session:
        template = session.get(LoadBalancer, template_id)
        doc = json.loads(template.current_config)
        rows = []
        for i in range(n):
            lb_id = str(uuid.uuid4())
            vip = f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
            copy_ = copy.deepcopy(doc)
            copy_["id"], copy_["vip_address"] = lb_id, vip
            for pool in copy_["pools"]:
                for m in pool["members"]:
                    m["id"] = str(uuid.uuid4())
            rows.append(
                LoadBalancer(
                    id=lb_id,
                    project_id=template.project_id,
                    vip_address=vip,
                    kind="l4",
                    flavor_id=template.flavor_id,
                    provisioning_status="ACTIVE",
                    revision=1,
                    current_config=json.dumps(copy_, sort_keys=True, separators=(",", ":")),
                )
            )
        session.add_all(rows)


def measure(n: int = 1000, members: int = 10, changes: int = 5) -> FeedCost:
    from shoal.controller.app import create_app
    from shoal.controller.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database_url=f"sqlite:///{Path(tmp) / 'c.db'}",
            state_dir=str(Path(tmp) / "state"),
            bootstrap_token=ADMIN,
        )
        with TestClient(create_app(settings), base_url="https://bench") as c:
            admin = {"X-Auth-Token": ADMIN}
            lb = _ok(
                c.post(
                    "/v2/lbaas/loadbalancers",
                    json={"loadbalancer": {"flavor_id": "l4"}},
                    headers=admin,
                )
            )["loadbalancer"]
            li = _ok(
                c.post(
                    "/v2/lbaas/listeners",
                    json={
                        "listener": {
                            "loadbalancer_id": lb["id"],
                            "protocol": "TCP",
                            "protocol_port": 80,
                        }
                    },
                    headers=admin,
                )
            )["listener"]
            pool = _ok(
                c.post(
                    "/v2/lbaas/pools",
                    json={
                        "pool": {
                            "listener_id": li["id"],
                            "protocol": "TCP",
                            "lb_algorithm": "SOURCE_IP_PORT",
                        }
                    },
                    headers=admin,
                )
            )["pool"]
            body = {
                "members": [
                    {"address": f"10.1.{j // 250}.{j % 250 + 1}", "protocol_port": 80}
                    for j in range(members)
                ]
            }
            _ok(c.put(f"/v2/lbaas/pools/{pool['id']}/members", json=body, headers=admin))
            _seed(c, lb["id"], n - 1)
            enrol = {"enrollment": {"name": "bench-l4", "role": "l4"}}
            cred = _ok(c.post("/v2/shoal/enrollments", json=enrol, headers=admin))
            node_h = {"X-Auth-Token": cred["enrollment"]["credential"]}
            node = _ok(
                c.post("/v2/shoal/nodes", json={"name": "bench-l4", "role": "l4"}, headers=node_h)
            )["node"]
            base = f"/v2/shoal/nodes/{node['id']}"
            seq = _ok(c.get(f"{base}/desired-state", headers=node_h))["seq"]
            _ok(c.post(f"{base}/report", json={"seq": seq, "errors": []}, headers=node_h))
            has_feed = c.get(f"{base}/feed", params={"position": seq}, headers=node_h).status_code
            target = _ok(c.get(f"/v2/lbaas/pools/{pool['id']}/members", headers=admin))["members"][
                0
            ]
            writes, fulls, deltas = [], [], []
            full_bytes = delta_bytes = 0
            for k in range(changes):
                path = f"/v2/lbaas/pools/{pool['id']}/members/{target['id']}"
                weight = {"member": {"weight": k % 2}}
                _, ms = _cpu(lambda: _ok(c.put(path, json=weight, headers=admin)))  # noqa: B023
                writes.append(ms)
                if has_feed == 200:
                    r, ms = _cpu(
                        lambda: c.get(f"{base}/feed", params={"position": seq}, headers=node_h)  # noqa: B023
                    )
                    delta_bytes = len(r.content)
                    deltas.append(ms)
                r, ms = _cpu(lambda: c.get(f"{base}/desired-state", headers=node_h))
                full_bytes = len(r.content)
                fulls.append(ms)
                seq = r.json()["seq"]
                _ok(c.post(f"{base}/report", json={"seq": seq, "errors": []}, headers=node_h))
    return FeedCost(
        n,
        members,
        statistics.median(writes),
        full_bytes,
        statistics.median(fulls),
        delta_bytes if deltas else None,
        statistics.median(deltas) if deltas else None,
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    n, members, changes = (args + [1000, 10, 5][len(args) :])[:3]
    print(json.dumps(measure(n, members, changes).as_dict()))
