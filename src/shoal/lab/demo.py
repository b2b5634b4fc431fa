"""The demo behind `make demo`: the whole system in namespaces, load balancers created through
the API (an L4 one, and an HTTPS one with a certificate and L7 rules), real traffic, and where
it went."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from shoal import netns
from shoal.dataplane.balancer import Balancer
from shoal.lab.forward import Forwarder
from shoal.lab.lab import CONTROLLER_PORT, Lab, LabSpec
from shoal.lab.traffic import http_requests, https_get

__all__ = ["run_demo"]


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _create_lb(lab: Lab, console: Console) -> dict[str, Any]:
    backends = [h for h in lab.state.hosts if lab.state.hosts[h].get("role") == "backend"]
    started = time.monotonic()
    lb = lab.api(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "demo-web", "flavor_id": "l4"}}
    )["loadbalancer"]
    lab.wait_lb(lb["id"])
    li = lab.api(
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}},
    )["listener"]
    lab.wait_lb(lb["id"])
    pool = lab.api(
        "POST",
        "/v2/lbaas/pools",
        {"pool": {"listener_id": li["id"], "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}},
    )["pool"]
    lab.wait_lb(lb["id"])
    lab.api(
        "POST",
        "/v2/lbaas/healthmonitors",
        {
            "healthmonitor": {
                "pool_id": pool["id"],
                "type": "HTTP",
                "delay": 2,
                "timeout": 1,
                "max_retries": 2,
            }
        },
    )
    lab.wait_lb(lb["id"])
    lab.api(
        "PUT",
        f"/v2/lbaas/pools/{pool['id']}/members",
        {
            "members": [
                {"address": lab.state.hosts[b]["ip"], "protocol_port": 80, "name": b}
                for b in backends
            ]
        },
    )
    status = lab.wait_lb(lb["id"])
    console.print(
        f"load balancer [bold]{lb['name']}[/bold]: VIP {lb['vip_address']}:80, "
        f"{len(backends)} members, {status} "
        f"({(time.monotonic() - started) * 1000:.0f} ms for 6 API calls)"
    )
    return {"id": lb["id"], "vip": lb["vip_address"], "backends": backends}


def _create_https_lb(lab: Lab, console: Console) -> dict[str, Any]:
    """An L7 load balancer: TLS with a certificate from the internal CA, a default pool and
    two L7 rules (a path and a header) sending requests to other pools."""
    hosts = lab.state.hosts
    started = time.monotonic()
    cert = lab.api(
        "POST",
        "/v2/shoal/certificates",
        {"certificate": {"name": "shop", "issue": {"common_name": "shop.demo", "days": 30}}},
    )["certificate"]
    lb = lab.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "demo-shop"}})[
        "loadbalancer"
    ]

    def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        lab.wait_lb(lb["id"])
        obj: dict[str, Any] = lab.api("POST", path, {key: body})[key]
        return obj

    li = post(
        "/v2/lbaas/listeners",
        "listener",
        {
            "loadbalancer_id": lb["id"],
            "protocol": "TERMINATED_HTTPS",
            "protocol_port": 443,
            "default_tls_container_ref": cert["id"],
        },
    )
    pools: dict[str, list[str]] = {"web": ["b1", "b2"], "api": ["b3"], "canary": ["b1"]}
    ids = {}
    for name, members in pools.items():
        where = {"listener_id": li["id"]} if name == "web" else {"loadbalancer_id": lb["id"]}
        pool = post(
            "/v2/lbaas/pools",
            "pool",
            {"name": name, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", **where},
        )
        ids[name] = pool["id"]
        lab.wait_lb(lb["id"])
        lab.api(
            "PUT",
            f"/v2/lbaas/pools/{pool['id']}/members",
            {"members": [{"address": hosts[b]["ip"], "protocol_port": 80} for b in members]},
        )
    rules = {
        "api": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"},
        "canary": {"type": "HEADER", "key": "X-Canary", "compare_type": "EQUAL_TO", "value": "1"},
    }
    for position, (name, rule) in enumerate(rules.items(), start=1):
        policy = post(
            "/v2/lbaas/l7policies",
            "l7policy",
            {
                "listener_id": li["id"],
                "action": "REDIRECT_TO_POOL",
                "redirect_pool_id": ids[name],
                "position": position,
            },
        )
        post(f"/v2/lbaas/l7policies/{policy['id']}/rules", "rule", rule)
    status = lab.wait_lb(lb["id"])
    view = lab.api("GET", f"/v2/shoal/loadbalancers/{lb['id']}/nodes")
    placed = [f"{n['name']} ({n['cluster']})" for n in view["nodes"] if n.get("placement")]
    console.print(
        f"load balancer [bold]{lb['name']}[/bold]: https://shop.demo on VIP "
        f"{lb['vip_address']}:443, certificate from the internal CA, 3 pools, 2 L7 rules, "
        f"{status} ({time.monotonic() - started:.1f} s); HAProxy on {', '.join(placed)}"
    )
    ca = lab.api("GET", "/v2/shoal/ca")["ca"]["certificate"]
    return {"id": lb["id"], "vip": lb["vip_address"], "ca": ca, "pools": pools}


def _https_traffic(lab: Lab, console: Console, lb: dict[str, Any], per_case: int) -> None:
    cases = [
        ("GET /", "/", {}, "web"),
        ("GET /api/orders", "/api/orders", {}, "api"),
        ("GET / with X-Canary: 1", "/", {"X-Canary": "1"}, "canary"),
    ]
    table = Table(title="HTTPS requests by L7 rule (SNI shop.demo, verified)", title_justify="left")
    for col in ("request", "expected pool", "answered by", "ok"):
        table.add_column(col)
    with netns.entered(lab.state.hosts["client"]["ns"]):
        for label, path, headers, pool in cases:
            seen: Counter[str] = Counter()
            ok = 0
            for _ in range(per_case):
                try:
                    answer = https_get(lb["vip"], "shop.demo", path, ca=lb["ca"], headers=headers)
                except OSError as exc:
                    seen[f"error: {exc.__class__.__name__}"] += 1
                    continue
                seen[answer.body.get("backend", f"HTTP {answer.status}")] += 1
                ok += answer.status == 200
            answered = ", ".join(f"{b} {n}" for b, n in sorted(seen.items()))
            expected = f"{pool} ({', '.join(lb['pools'][pool])})"
            table.add_row(label, expected, answered, f"{ok}/{per_case}")
    console.print(table)


def _tables(
    console: Console, lab: Lab, counts: Counter[str], backends: list[str], packets: dict[str, int]
) -> None:
    total = sum(counts.values()) or 1
    by_backend = Table(title="Requests per backend (Maglev)", title_justify="left")
    for col in ("backend", "address", "requests", "share"):
        by_backend.add_column(col, justify="right" if col in ("requests", "share") else "left")
    for b in backends:
        by_backend.add_row(
            b,
            lab.state.hosts[b]["ip"],
            str(counts.get(b, 0)),
            f"{100 * counts.get(b, 0) / total:.1f}%",
        )
    console.print(by_backend)
    all_packets = sum(packets.values()) or 1
    by_node = Table(title="Client packets per L4 node (router ECMP)", title_justify="left")
    for col in ("L4 node", "address", "packets", "share"):
        by_node.add_column(col, justify="right" if col in ("packets", "share") else "left")
    for node, n in packets.items():
        by_node.add_row(node, lab.state.hosts[node]["ip"], str(n), f"{100 * n / all_packets:.1f}%")
    console.print(by_node)


def _node_packets(lab: Lab) -> dict[str, int]:
    out = {}
    for name, host in lab.state.hosts.items():
        if host.get("role") == "l4":
            with Balancer.open(host["instance"]) as dp:
                out[name] = sum(dp.vip_traffic(st.vip_id)[0] for st in dp.vips().values())
    return out


def _console_forwarder(ctl_ns: str, console: Console) -> Forwarder:
    """The controller's port on the host (SHOAL_DEMO_CONSOLE_HOST/PORT, default
    127.0.0.1:9877); a free port instead when that one is taken (another demo, another
    user), said so."""
    port = int(os.environ.get("SHOAL_DEMO_CONSOLE_PORT", "9877"))
    host = os.environ.get("SHOAL_DEMO_CONSOLE_HOST", "127.0.0.1")
    target = ("127.0.0.1", CONTROLLER_PORT)
    try:
        return Forwarder((host, port), ctl_ns, target)
    except OSError as exc:
        console.print(f"{host}:{port} is not free ({exc.strerror}): using another port")
        return Forwarder((host, 0), ctl_ns, target)


def run_demo(requests: int = 300, wait: bool | None = None, l4_nodes: int = 2) -> None:
    console = Console()
    signal.signal(signal.SIGTERM, _sigterm)
    # Also SIGINT: a shell that starts the demo in the background (make demo &, nohup,
    # systemd-run) hands it SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, _sigterm)
    wait = sys.stdin.isatty() if wait is None else wait
    lab = Lab(
        LabSpec(prefix=f"demo{os.getpid() % 10000}", l4_nodes=l4_nodes),
        progress=lambda msg: console.print(f"[dim]…[/dim] {msg}"),
    )
    try:
        state = lab.up()
        console.print(
            f"[green]lab up[/green]: router (BIRD, ECMP), {l4_nodes} L4 nodes "
            "(XDP + BIRD + agent), 2 L7 clusters of 2 nodes (HAProxy + agent), 3 backends, "
            "client, controller"
        )
        lb = _create_lb(lab, console)
        deadline = time.monotonic() + 10
        while len(lab.ecmp_nexthops(lb["vip"])) < l4_nodes and time.monotonic() < deadline:
            time.sleep(0.05)
        console.print(f"router: {lb['vip']}/32 via {', '.join(lab.ecmp_nexthops(lb['vip']))}")
        with (
            console.status(f"{requests} HTTP requests from the client, one connection each"),
            netns.entered(state.hosts["client"]["ns"]),
        ):
            result = http_requests(lb["vip"], requests, deadline=120)
        console.print(f"{result.ok} ok, {result.failed} failed in {result.seconds:.1f} s")
        _tables(console, lab, result.by_backend, lb["backends"], _node_packets(lab))
        trace = lab.api(
            "POST",
            f"/v2/shoal/loadbalancers/{lb['id']}/flow-trace",
            {"source_ip": state.hosts["client"]["ip"], "source_port": 40000, "protocol_port": 80},
        )["flow_trace"]
        console.print(
            f"flow trace {state.hosts['client']['ip']}:40000 -> {lb['vip']}:80: "
            f"{trace.get('address')} (Maglev slot {trace['slot']} of "
            f"{trace['table_size']}; every L4 node computes the same)"
        )
        console.print(
            "replies went from the backends to the router and the client: they never "
            "crossed an L4 node (DSR)"
        )
        https_lb = _create_https_lb(lab, console)
        _https_traffic(lab, console, https_lb, per_case=max(10, requests // 10))
        console.print(
            f"API: ip netns exec {state.ctl_ns} env SHOAL_URL={state.controller_url} "
            f"SHOAL_CA_BUNDLE={state.ca_bundle} "
            f"SHOAL_TOKEN={state.admin_token} shoal status {lb['id']}"
        )
        if not wait:
            console.print(
                "not waiting (stdin is not a terminal): the lab and its console go now; "
                "`shoal demo --wait` (or `make demo DEMO_ARGS=--wait`) keeps them until "
                "Ctrl-C or SIGTERM"
            )
            return
        with _console_forwarder(state.ctl_ns, console) as fwd:
            console.print(
                f"console: https://{fwd.address[0]}:{fwd.address[1]}/ui/ "
                f"(log in with the token {state.admin_token}; the controller's CA is "
                f"{state.ca_bundle})"
            )
            console.print("[bold]the lab is up; press Ctrl-C to tear it down[/bold]")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        with console.status("tearing down"):
            lab.down(quiet=True)
        console.print("lab removed")
