"""`shoal bench l7`: HTTP requests per second through the whole path against HAProxy alone.

In a lab of its own: nginx on the three backends, an L7 load balancer created through the
API, then `wrk` from the client namespace, alternating between

- the whole path: client → router (ECMP) → L4 node (XDP, IPIP) → L7 node (decap, HAProxy)
  → backend, replies straight back (DSR), and
- HAProxy alone: the same HAProxy version and the configuration Shoal rendered for the same
  pool, in an L7 node's namespace on that node's own address (client → router → HAProxy →
  backend, no L4 tier, no tunnel).

Both run on the same cores in the same minute; the ratio is what the tiers in front cost
(target ≥ 0.9). Absolute numbers on a 2-core machine measure the machine, not Shoal."""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from shoal import netns
from shoal.agents.l7.render import CHROOT_DIR, fitting_maxconn, render
from shoal.errors import ShoalError
from shoal.lab.lab import Lab, LabSpec

__all__ = ["L7Bench", "WrkResult", "parse_wrk", "run"]

BACKEND_PORT = 8080
ALONE_PORT = 8081
NGINX_CONF = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000;
    server {{
        listen {port} reuseport;
        location / {{ return 200 "{name}\\n"; }}
    }}
}}
"""


@dataclass
class WrkResult:
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    errors: int


@dataclass
class L7Bench:
    duration_s: float
    connections: int
    rounds: int
    full_path: list[WrkResult] = field(default_factory=list)
    haproxy_alone: list[WrkResult] = field(default_factory=list)

    @property
    def full_rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.full_path)

    @property
    def alone_rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.haproxy_alone)

    @property
    def round_ratios(self) -> list[float]:
        return [
            f.requests_per_second / a.requests_per_second
            for f, a in zip(self.full_path, self.haproxy_alone, strict=True)
            if a.requests_per_second
        ]

    @property
    def ratio(self) -> float:
        """The median of each round's ratio: the two runs of a round are seconds apart, so
        a machine that drifts (other work, frequency) moves both."""
        return statistics.median(self.round_ratios) if self.round_ratios else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            full_path_rps=round(self.full_rps),
            haproxy_alone_rps=round(self.alone_rps),
            ratio=round(self.ratio, 3),
            round_ratios=[round(r, 3) for r in self.round_ratios],
            target=0.9,
        )
        return out


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(text: str) -> WrkResult:
    """wrk --latency output: requests per second, p50/p99 latency, socket and HTTP errors."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise ShoalError(f"unexpected wrk output: {text[-300:]!r}")
    lat = {
        p: _ms(v, u)
        for p, v, u in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        latency_p50_ms=lat.get("50", 0.0),
        latency_p99_ms=lat.get("99", 0.0),
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def _wrk(ns: str, url: str, duration: float, connections: int) -> WrkResult:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    out = netns.run(cmd, ns, timeout=duration + 30).stdout
    return parse_wrk(out)


def _nginx(lab: Lab, backend: str) -> None:
    base = lab.dir / "nginx" / backend
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=base, port=BACKEND_PORT, name=backend))
    lab.spawn(
        f"nginx-{backend}",
        ["nginx", "-c", str(conf), "-p", str(base)],
        lab.state.hosts[backend]["ns"],
    )


def _wait_active(lab: Lab, lb_id: str) -> None:
    if lab.wait_lb(lb_id) != "ACTIVE":
        raise ShoalError(f"load balancer {lb_id} did not become ACTIVE")


def _load_balancer(lab: Lab, backends: list[str]) -> tuple[str, str]:
    lb = lab.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "bench"}})[
        "loadbalancer"
    ]
    _wait_active(lab, lb["id"])
    li = lab.api(
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}},
    )["listener"]
    _wait_active(lab, lb["id"])
    pool = lab.api(
        "POST",
        "/v2/lbaas/pools",
        {"pool": {"listener_id": li["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}},
    )["pool"]
    _wait_active(lab, lb["id"])
    members = [
        {"address": lab.state.hosts[b]["ip"], "protocol_port": BACKEND_PORT} for b in backends
    ]
    lab.api("PUT", f"/v2/lbaas/pools/{pool['id']}/members", {"members": members})
    _wait_active(lab, lb["id"])
    return lb["id"], lb["vip_address"]


def _haproxy_alone(lab: Lab, lb_id: str, node: str) -> str:
    """Shoal's own rendering of the same load balancer, bound to the node's address."""
    latest = lab.api("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"][0]
    path = f"/v2/shoal/loadbalancers/{lb_id}/revisions/{latest['number']}"
    revision = lab.api("GET", path)["revision"]
    host = lab.state.hosts[node]
    lb = {**revision["config"], "vip_address": host["ip"]}
    for li in lb["listeners"]:
        li["protocol_port"] = ALONE_PORT
    run_dir = lab.dir / "haproxy-alone"
    run_dir.mkdir(parents=True, exist_ok=True)
    # The same unprivileged set-up as the agent's: workers chroot into an empty directory.
    (run_dir / CHROOT_DIR).mkdir(mode=0o555, exist_ok=True)
    rendered = render(
        f"{node}-alone",
        [lb],
        {},
        run_dir=str(run_dir),
        crt_dir=str(run_dir),
        monitor_address="127.0.0.1",
        monitor_port=8414,
        maxconn=fitting_maxconn(100000),
    )
    cfg = run_dir / "haproxy.cfg"
    cfg.write_text(rendered.config)
    lab.spawn("haproxy-alone", ["haproxy", "-W", "-f", str(cfg)], host["ns"])
    lab.wait_tcp(host["ns"], host["ip"], ALONE_PORT)
    return f"http://{host['ip']}:{ALONE_PORT}/"


def run(
    duration: float = 5.0,
    connections: int = 64,
    rounds: int = 3,
    progress: Callable[[str, float], None] | None = None,
) -> L7Bench:
    report = progress or (lambda what, fraction: None)
    lab = Lab(LabSpec(prefix=f"bl7{os.getpid() % 10000}"))
    result = L7Bench(duration, connections, rounds)
    try:
        report("lab up", 0.0)
        lab.up()
        backends = [h for h, v in lab.state.hosts.items() if v.get("role") == "backend"]
        for b in backends:
            _nginx(lab, b)
        for b in backends:
            lab.wait_tcp(lab.state.hosts[b]["ns"], lab.state.hosts[b]["ip"], BACKEND_PORT)
        report("L7 load balancer through the API", 0.1)
        lb_id, vip = _load_balancer(lab, backends)
        view = lab.api("GET", f"/v2/shoal/loadbalancers/{lb_id}/nodes")
        node = next(n["name"] for n in view["nodes"] if n.get("placement") == "ACTIVE")
        alone = _haproxy_alone(lab, lb_id, node)
        client = lab.state.hosts["client"]["ns"]
        # Members went in at runtime; the L7 agents make them ordinary servers (connection
        # reuse) after consolidate_after (5 s) of quiet.
        report("waiting for the L7 nodes to consolidate", 0.12)
        time.sleep(6)
        report("warming up", 0.15)
        _wrk(client, f"http://{vip}/", duration, connections)  # not counted
        _wrk(client, alone, duration, connections)
        steps = 2 * rounds
        for i in range(rounds):
            report(f"round {i + 1}/{rounds}: whole path", 0.2 + 0.8 * (2 * i) / steps)
            result.full_path.append(_wrk(client, f"http://{vip}/", duration, connections))
            report(f"round {i + 1}/{rounds}: HAProxy alone", 0.2 + 0.8 * (2 * i + 1) / steps)
            result.haproxy_alone.append(_wrk(client, alone, duration, connections))
        report("done", 1.0)
        return result
    finally:
        lab.down(quiet=True, keep_logs=bool(os.environ.get("SHOAL_BENCH_KEEP_LOGS")))
