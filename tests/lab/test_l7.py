"""End-to-end through the L7 tier: client → router → L4 (XDP, Maglev) → L7 (HAProxy on two
clusters) → servers. An HTTPS load balancer with a certificate and L7 rules, persistence that
holds across L7 nodes, an L7 node failure, and a drain that fails no request."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shoal import netns
from shoal.lab import traffic
from shoal.lab.lab import Lab
from shoal.lab.traffic import http_requests

from .conftest import FIGURES, wait_for
from .l4lb import l4_nodes, set_node

pytestmark = pytest.mark.netns
LB: dict[str, Any] = {}


def status(lab: Lab, lb_id: str) -> str:
    return str(
        lab.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}")["loadbalancer"]["provisioning_status"]
    )


def wait_active(lab: Lab, lb_id: str, timeout: float = 20) -> float:
    return wait_for(lambda: status(lab, lb_id) == "ACTIVE", timeout, "load balancer ACTIVE")


def create(lab: Lab, lb_id: str, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = lab.api("POST", path, {key: body})[key]
    wait_active(lab, lb_id)
    return obj


def policy(lab: Lab, lb_id: str, body: dict[str, Any], *rules: dict[str, Any]) -> None:
    created = create(lab, lb_id, "/v2/lbaas/l7policies", "l7policy", body)
    for rule in rules:
        create(lab, lb_id, f"/v2/lbaas/l7policies/{created['id']}/rules", "rule", rule)


def https_get(
    lab: Lab,
    host: str,
    path: str = "/",
    ca: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, certificate name) of one request from the client."""
    with netns.entered(lab.state.hosts["client"]["ns"]):
        answer = traffic.https_get(LB["vip"], host, path, ca=ca, headers=headers)
    return answer.status, answer.body, answer.peer_name


def http_get(
    lab: Lab, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    import http.client

    with netns.entered(lab.state.hosts["client"]["ns"]):
        conn = http.client.HTTPConnection(LB["vip"], 80, timeout=3)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            raw = r.read()
            body = json.loads(raw) if raw.startswith(b"{") else {}
            return r.status, body, {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()


def placed(lab: Lab) -> dict[str, str]:
    view = lab.api("GET", f"/v2/shoal/loadbalancers/{LB['id']}/nodes")
    return {n["name"]: n["placement"] for n in view["nodes"] if n.get("placement")}


def test_https_load_balancer_with_a_certificate_and_rules(lab: Lab) -> None:
    start = time.monotonic()
    cert = lab.api(
        "POST",
        "/v2/shoal/certificates",
        {"certificate": {"name": "shop", "issue": {"common_name": "shop.lab", "days": 30}}},
    )["certificate"]
    ca = lab.api("GET", "/v2/shoal/ca")["ca"]["certificate"]
    lb = lab.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "shop"}})[
        "loadbalancer"
    ]
    LB.update(id=lb["id"], vip=lb["vip_address"], ca=ca)
    wait_active(lab, lb["id"])
    ips = {b: lab.state.hosts[b]["ip"] for b in ("b1", "b2", "b3")}
    https = create(
        lab,
        lb["id"],
        "/v2/lbaas/listeners",
        "listener",
        {
            "loadbalancer_id": lb["id"],
            "protocol": "TERMINATED_HTTPS",
            "protocol_port": 443,
            "default_tls_container_ref": cert["id"],
        },
    )
    web = create(
        lab,
        lb["id"],
        "/v2/lbaas/pools",
        "pool",
        {
            "listener_id": https["id"],
            "protocol": "HTTP",
            "lb_algorithm": "ROUND_ROBIN",
            "session_persistence": {"type": "HTTP_COOKIE"},
        },
    )
    api = create(
        lab,
        lb["id"],
        "/v2/lbaas/pools",
        "pool",
        {
            "loadbalancer_id": lb["id"],
            "protocol": "HTTP",
            "lb_algorithm": "LEAST_CONNECTIONS",
        },
    )
    lab.api(
        "PUT",
        f"/v2/lbaas/pools/{web['id']}/members",
        {"members": [{"address": ips[b], "protocol_port": 80} for b in ("b1", "b2")]},
    )
    wait_active(lab, lb["id"])
    lab.api(
        "PUT",
        f"/v2/lbaas/pools/{api['id']}/members",
        {"members": [{"address": ips["b3"], "protocol_port": 80}]},
    )
    wait_active(lab, lb["id"])
    policy(
        lab,
        lb["id"],
        {
            "listener_id": https["id"],
            "action": "REDIRECT_TO_POOL",
            "redirect_pool_id": api["id"],
            "position": 1,
        },
        {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"},
    )
    policy(
        lab,
        lb["id"],
        {
            "listener_id": https["id"],
            "action": "REDIRECT_PREFIX",
            "redirect_prefix": "https://shop.lab",
            "position": 2,
        },
        {"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "old.shop.lab"},
    )
    http = create(
        lab,
        lb["id"],
        "/v2/lbaas/listeners",
        "listener",
        {
            "loadbalancer_id": lb["id"],
            "protocol": "HTTP",
            "protocol_port": 80,
            "default_pool_id": None,
        },
    )
    policy(
        lab,
        lb["id"],
        {
            "listener_id": http["id"],
            "action": "REDIRECT_PREFIX",
            "redirect_prefix": "https://shop.lab",
            "redirect_http_code": 301,
            "position": 1,
        },
        {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/"},
    )
    code, body, subject = https_get(lab, "shop.lab", ca=ca)  # verified against the CA
    FIGURES["L7 HTTPS load balancer: API calls to first verified request (s)"] = round(
        time.monotonic() - start, 2
    )
    assert code == 200 and subject == "shop.lab" and body["backend"] in ("b1", "b2")
    assert {https_get(lab, "shop.lab", "/api/v1", ca)[1]["backend"] for _ in range(6)} == {"b3"}
    code, _, _ = https_get(lab, "old.shop.lab")
    assert code == 302
    status_code, _, headers = http_get(lab, "/cart")
    assert status_code == 301 and headers["location"] == "https://shop.lab/cart"
    where = placed(lab)
    assert len(where) == 2 and {name[2] for name in where} == {"a", "b"}


def test_cookie_persistence_holds_across_l7_nodes(lab: Lab) -> None:
    """Fresh connections spread over both L7 clusters; the cookie names the member, so
    every node sends the client to the same one."""
    with netns.entered(lab.state.hosts["client"]["ns"]):
        first = traffic.https_get(LB["vip"], "shop.lab", ca=LB["ca"])
    cookie = first.headers["set-cookie"].split(";")[0]  # SRV=<the member's server id>
    seen = Counter(
        https_get(lab, "shop.lab", ca=LB["ca"], headers={"Cookie": cookie})[1]["backend"]
        for _ in range(20)
    )
    assert seen == {first.body["backend"]: 20}


@dataclass(frozen=True)
class Failure:
    started: float  # monotonic time the request's connection was opened
    at: float  # and when it failed
    error: str


class Load:
    """Requests on fresh connections from the client, one at a time, in a thread, until
    stopped."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.ok = 0
        self.failed: list[Failure] = []
        self.failed_at = self.down_at = 0.0  # set by fail_node
        self.by_backend: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + 90
        while not self._stop.is_set() and time.monotonic() < end:
            started = time.monotonic()
            with netns.entered(self.lab.state.hosts["client"]["ns"]):
                r = http_requests(LB["vip"], 1, port=80, timeout=2, deadline=5)
            if r.failed:
                self.failed.append(Failure(started, time.monotonic(), next(iter(r.errors))))
            self.ok += r.ok
            time.sleep(0.01)

    def fail_node(self, victim: str) -> None:
        """Kills the L7 node under this load, noting when the failure began and when the
        node was dead (its proxy's sockets closed)."""
        self.failed_at = time.monotonic()
        self.lab.fail_l7_node(victim)
        self.down_at = time.monotonic()

    def outcome(self, settled: float) -> tuple[list[Failure], list[Failure]]:
        """The failures around fail_node's failure, the tier settled by `settled`: requests in
        flight at the failure (their connection opened before the node was dead, so possibly
        to the proxy still alive, and they failed while the tier settled: lost with the node,
        reported), and every other one (a new connection opened to a node already dead,
        whose SYN the kernel retries, or any request before the failure or after the tier
        settled: none may fail)."""
        in_flight = [
            f for f in self.failed if f.started < self.down_at and self.failed_at <= f.at <= settled
        ]
        return in_flight, [f for f in self.failed if f not in in_flight]

    def tally(self, in_flight: list[Failure], others: list[Failure]) -> str:
        return f"{len(in_flight)} / {len(others)} of {self.ok + len(self.failed)}"

    def wait_ok(self, n: int, timeout: float = 60.0) -> None:
        """Waits for n more answered requests from now: traffic through what the test did,
        however slowly a loaded machine sends it."""
        start = self.ok
        deadline = time.monotonic() + timeout
        while self.ok < start + n:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"load: {self.ok - start} of {n} requests in {timeout:.0f} s")
            time.sleep(0.05)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _serve_plain_http(lab: Lab) -> None:
    """Port 80 answers from the web pool (not a redirect) for the traffic tests."""
    listeners = lab.api("GET", f"/v2/lbaas/listeners?loadbalancer_id={LB['id']}")["listeners"]
    http = next(li for li in listeners if li["protocol"] == "HTTP")
    web = next(
        p
        for p in lab.api("GET", "/v2/lbaas/pools")["pools"]
        if p["session_persistence"] and p["loadbalancers"][0]["id"] == LB["id"]
    )
    for policy in http["l7policies"]:
        lab.api("DELETE", f"/v2/lbaas/l7policies/{policy['id']}")
        wait_active(lab, LB["id"])
    pool = create(
        lab,
        LB["id"],
        "/v2/lbaas/pools",
        "pool",
        {
            "listener_id": http["id"],
            "protocol": "HTTP",
            "lb_algorithm": "ROUND_ROBIN",
        },
    )
    members = lab.api("GET", f"/v2/lbaas/pools/{web['id']}/members")["members"]
    lab.api(
        "PUT",
        f"/v2/lbaas/pools/{pool['id']}/members",
        {"members": [{"address": m["address"], "protocol_port": 80} for m in members]},
    )
    wait_active(lab, LB["id"])


def test_drain_moves_the_vip_without_failing_a_request(lab: Lab) -> None:
    _serve_plain_http(lab)
    where = placed(lab)
    drained = sorted(where)[0]
    node_id = next(
        n["id"] for n in lab.api("GET", "/v2/shoal/nodes")["nodes"] if n["name"] == drained
    )
    with Load(lab) as load:
        time.sleep(1)
        start = time.monotonic()
        lab.api("PUT", f"/v2/shoal/nodes/{node_id}", {"admin_state": "DRAINING"})
        moved = wait_for(
            lambda: (
                placed(lab).get(drained) == "DRAINING"
                and list(placed(lab).values()).count("ACTIVE") == 2
            ),
            10,
            "moved",
        )
        wait_for(lambda: drained not in placed(lab), 30, "drain ended")
        load.wait_ok(20)  # requests after the old node let go
    FIGURES["L7 drain: placement moved (s)"] = round(moved, 2)
    FIGURES["L7 drain: old node released after (s)"] = round(time.monotonic() - start, 1)
    FIGURES["L7 drain: requests / failed"] = f"{load.ok} / {len(load.failed)}"
    assert not load.failed, load.failed[:5]
    lab.api("PUT", f"/v2/shoal/nodes/{node_id}", {"admin_state": "ACTIVE"})


def test_an_l7_node_failure_keeps_the_vip_serving(lab: Lab) -> None:
    victim = sorted(placed(lab))[0]
    health = _health_of(lab, victim)

    try:
        with Load(lab) as load:
            time.sleep(1)
            load.fail_node(victim)
            detected = wait_for(lambda: health() == "DOWN", 15, "L4 checks mark the node DOWN")
            # Once the L4 tier applied that, every request goes to the other cluster.
            time.sleep(1.5)
            settled = time.monotonic()
            time.sleep(3)
        in_flight, others = load.outcome(settled)
        FIGURES["L7 node failure: detected DOWN after (s)"] = round(detected, 2)
        FIGURES["L7 node failure: in-flight requests lost / other requests failed"] = load.tally(
            in_flight, others
        )
        assert not others, others[:5]
        with netns.entered(lab.state.hosts["client"]["ns"]):
            result = http_requests(LB["vip"], 50, timeout=2, deadline=30)
        assert result.failed == 0
    finally:
        # The node comes back (whatever failed: the next test gets the whole tier): its
        # agent restarts HAProxy, the checks see it UP again.
        _restore(lab, victim, health)


def _health_of(lab: Lab, name: str) -> Callable[[], str]:
    """The controller's health verdict on the L7 node `name`, read afresh on each call."""
    node_id = next(n["id"] for n in lab.api("GET", "/v2/shoal/nodes")["nodes"] if n["name"] == name)
    return lambda: str(lab.api("GET", f"/v2/shoal/nodes/{node_id}")["node"]["health"])


def _restore(lab: Lab, victim: str, health: Callable[[], str]) -> None:
    lab.start_l7_agent(victim)
    wait_for(lambda: health() == "UP", 30, "the node is UP again")


def test_an_l7_node_failure_during_an_l4_node_change(lab: Lab) -> None:
    """Two failures at once: an L7 node dies and, half a second later, an L4 node leaves the
    router's ECMP set. The L4 node that takes over every flow must already steer new
    connections around the dead proxy by its own check, not by what the leaving node knew."""
    victim = sorted(placed(lab))[-1]
    leaving, staying = l4_nodes(lab)[0], l4_nodes(lab)[1:]
    health = _health_of(lab, victim)

    try:
        with Load(lab) as load:
            time.sleep(1)
            load.fail_node(victim)
            time.sleep(0.5)
            set_node(lab, leaving, "DRAINING")
            wait_for(lambda: health() == "DOWN", 15, "L4 checks mark the node DOWN")
            lab.wait_stable(LB["vip"], staying, timeout=60)
            time.sleep(1.5)
            settled = time.monotonic()
            load.wait_ok(20)  # requests through the settled tier
        in_flight, others = load.outcome(settled)
        FIGURES["L7 node failure + L4 leave: in-flight requests lost / other requests failed"] = (
            load.tally(in_flight, others)
        )
        assert not others, others[:5]
    finally:
        set_node(lab, leaving, "ACTIVE")
        _restore(lab, victim, health)
        lab.wait_stable(LB["vip"], l4_nodes(lab), timeout=60)
