"""The L7 agent driving a real HAProxy in a namespace of its own: routing by every rule type,
TLS with SNI, persistence (also across reloads), PROXY protocol and X-Forwarded-For, member
changes at runtime without reloads, and 20 changes of every kind under load without one
failed request. The desired states are built like the controller's (fixtures.py)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from shoal import netns
from shoal.agents.api import AgentApi
from shoal.agents.l7.agent import L7Agent, L7AgentConfig
from shoal.agents.l7.stats import health_from

from ..pki import Pki
from . import fixtures as fx

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy"),
]

VIP = "10.77.0.10"
PKI = Pki()
SERVERS = {"s1": 8081, "s2": 8082, "s3": 8083}


class Node:
    """One L7 node: a namespace with three HTTP servers on 127.0.0.1 and an agent whose
    HAProxy runs inside the namespace."""

    def __init__(self, ns: str, tmp: Path, reload_batch: float = 0.0) -> None:
        self.ns = ns
        self.procs: list[subprocess.Popen[bytes]] = []
        for name, port in SERVERS.items():
            self.procs.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        sys.executable,
                        "-m",
                        "shoal.lab.servers",
                        "http",
                        "--name",
                        name,
                        "--port",
                        str(port),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        cfg = L7AgentConfig(
            controller="http://127.0.0.1:9",
            token="unused",
            name="l7test",
            data_address="127.0.0.1",
            run_dir=tmp / "run",
            state_dir=tmp / "state",
            # 0: every change its own reload, so each test sees the effect of each change
            # at once; the batching has its own tests (test_agent_incremental.py).
            reload_batch=reload_batch,
        )
        self.agent = L7Agent(cfg, AgentApi(cfg.controller, cfg.token))
        self.seq = 0
        try:
            with netns.entered(ns):
                self.agent.prepare()
            deadline = time.monotonic() + 10
            for port in SERVERS.values():
                while not self._open(port):
                    assert time.monotonic() < deadline, "test servers did not start"
                    time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def _open(self, port: int) -> bool:
        with netns.entered(self.ns), socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def apply(self, *lbs: dict, certificates: dict[str, str] | None = None) -> None:
        self.seq += 1
        desired = {
            "seq": self.seq,
            "load_balancers": [
                {"id": lb["id"], "revision": self.seq, "config": lb, "placement": "ACTIVE"}
                for lb in lbs
            ],
            "certificates": certificates or {},
        }
        with netns.entered(self.ns):
            self.agent.apply(desired)

    def reloads(self) -> int:
        return self.agent.proxy.reloads()

    def close(self) -> None:
        with netns.entered(self.ns):
            self.agent.close(stop_proxy=True)
        for p in self.procs:
            p.terminate()
            p.wait(5)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    ns = f"shoal-l7t{os.getpid() % 100000}"
    netns.delete(ns)
    netns.add(ns)
    n = None
    try:
        n = Node(ns, tmp_path)
        yield n
    finally:
        if n is not None:
            n.close()
        netns.delete(ns)


def members(*names: str, **kw: Any) -> list[dict]:
    return [fx.member(f"m-{n}", "127.0.0.1", SERVERS[n], **kw) for n in names]


def simple_lb(
    algorithm: str = "ROUND_ROBIN", names: tuple[str, ...] = ("s1", "s2", "s3"), **pool_kw: Any
) -> dict:
    return fx.lb(
        VIP,
        [fx.listener("li-http", "HTTP", 80, "pool-a")],
        [fx.pool("pool-a", "HTTP", algorithm, members(*names), **pool_kw)],
    )


def get(
    ns: str,
    path: str = "/",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body or {}, response headers), on a new connection unless given."""
    with netns.entered(ns):
        c = conn or http.client.HTTPConnection(VIP, 80, timeout=3)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            raw = r.read()
            body = json.loads(raw) if r.getheader("Content-Type") == "application/json" else {}
            return r.status, body, {k.lower(): v for k, v in r.getheaders()}
        finally:
            if conn is None:
                c.close()


def spread(ns: str, count: int = 30, **kw: Any) -> Counter[str]:
    return Counter(get(ns, **kw)[1]["backend"] for _ in range(count))


def test_http_round_robin_with_forwarded_for(node: Node) -> None:
    node.apply(simple_lb())
    seen = spread(node.ns)
    assert set(seen) == {"s1", "s2", "s3"} and max(seen.values()) - min(seen.values()) <= 1
    _, body, _ = get(node.ns)
    assert body["headers"]["x-forwarded-for"] == VIP  # the client's source in this namespace


@pytest.mark.parametrize(
    ("rule", "request_kw", "hit"),
    [
        (("PATH", "STARTS_WITH", "/api", None), {"path": "/api/v1"}, True),
        (("PATH", "STARTS_WITH", "/api", None), {"path": "/web"}, False),
        (("PATH", "EQUAL_TO", "/exact", None), {"path": "/exact"}, True),
        (("PATH", "ENDS_WITH", ".json", None), {"path": "/a/b.json"}, True),
        (("PATH", "CONTAINS", "admin", None), {"path": "/x/admin/y"}, True),
        (("PATH", "REGEX", "^/v[0-9]+/", None), {"path": "/v2/items"}, True),
        (("PATH", "REGEX", "^/v[0-9]+/", None), {"path": "/vx/items"}, False),
        (
            ("HOST_NAME", "EQUAL_TO", "api.example", None),
            {"headers": {"Host": "API.example:80"}},
            True,
        ),
        (("HOST_NAME", "ENDS_WITH", ".example", None), {"headers": {"Host": "x.other"}}, False),
        (("HEADER", "EQUAL_TO", "v2", "X-Version"), {"headers": {"X-Version": "v2"}}, True),
        (("HEADER", "EQUAL_TO", "v2", "X-Version"), {"headers": {"X-Version": "v1"}}, False),
        (("COOKIE", "EQUAL_TO", "beta", "channel"), {"headers": {"Cookie": "channel=beta"}}, True),
        (("FILE_TYPE", "EQUAL_TO", "png", None), {"path": "/img/logo.png"}, True),
        (("FILE_TYPE", "REGEX", "^(jpg|gif)$", None), {"path": "/img/logo.png"}, False),
    ],
)
def test_each_rule_routes_to_its_pool(
    node: Node, rule: tuple[str, str, str, str | None], request_kw: dict, hit: bool
) -> None:
    kind, compare, value, key = rule
    lb = fx.lb(
        VIP,
        [
            fx.listener(
                "li-http",
                "HTTP",
                80,
                "pool-a",
                l7policies=[
                    fx.policy(
                        "p1",
                        1,
                        "REDIRECT_TO_POOL",
                        [fx.rule("r1", kind, compare, value, key)],
                        redirect_pool_id="pool-b",
                    )
                ],
            )
        ],
        [
            fx.pool("pool-a", "HTTP", "ROUND_ROBIN", members("s1")),
            fx.pool("pool-b", "HTTP", "ROUND_ROBIN", members("s2")),
        ],
    )
    node.apply(lb)
    assert get(node.ns, **request_kw)[1]["backend"] == ("s2" if hit else "s1")
    # invert flips it
    lb["listeners"][0]["l7policies"][0]["rules"][0]["invert"] = True
    node.apply(lb)
    assert get(node.ns, **request_kw)[1]["backend"] == ("s1" if hit else "s2")


def test_redirects_reject_and_first_match_wins(node: Node) -> None:
    rules = {
        "deny": [fx.rule("r1", "PATH", "STARTS_WITH", "/private")],
        "url": [fx.rule("r2", "PATH", "EQUAL_TO", "/old")],
        "prefix": [fx.rule("r3", "HOST_NAME", "EQUAL_TO", "www.example")],
        "pool": [fx.rule("r4", "PATH", "STARTS_WITH", "/")],
    }
    policies = [
        fx.policy("p1", 1, "REJECT", rules["deny"]),
        fx.policy(
            "p2",
            2,
            "REDIRECT_TO_URL",
            rules["url"],
            redirect_url="https://new.example/x",
            redirect_http_code=301,
        ),
        fx.policy("p3", 3, "REDIRECT_PREFIX", rules["prefix"], redirect_prefix="https://example"),
        fx.policy("p4", 4, "REDIRECT_TO_POOL", rules["pool"], redirect_pool_id="pool-b"),
    ]
    lb = fx.lb(
        VIP,
        [fx.listener("li-http", "HTTP", 80, "pool-a", l7policies=policies)],
        [
            fx.pool("pool-a", "HTTP", "ROUND_ROBIN", members("s1")),
            fx.pool("pool-b", "HTTP", "ROUND_ROBIN", members("s2")),
        ],
    )
    node.apply(lb)
    assert get(node.ns, "/private/x")[0] == 403
    status, _, headers = get(node.ns, "/old")
    assert status == 301 and headers["location"] == "https://new.example/x"
    status, _, headers = get(node.ns, "/page", headers={"Host": "www.example"})
    assert status == 302 and headers["location"] == "https://example/page"
    # A later catch-all policy does not override an earlier match, and catches the rest.
    assert get(node.ns, "/anything")[1]["backend"] == "s2"


def _tls_name(ns: str, server_name: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        netns.entered(ns),
        socket.create_connection((VIP, 443), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in tls.recv(4096)
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.rfc4514_string())


def bundle(leaf: Any) -> str:
    return leaf.cert_pem + PKI.intermediate.cert_pem + leaf.key_pem()


def test_sni_picks_the_right_certificate(node: Node) -> None:
    default, shop, api = (
        PKI.leaf("default.example"),
        PKI.leaf("shop.example"),
        PKI.leaf("api.example", "*.api.example"),
    )
    certs = {"c-default": bundle(default), "c-shop": bundle(shop), "c-api": bundle(api)}
    lb = fx.lb(
        VIP,
        [
            fx.listener(
                "li-tls",
                "TERMINATED_HTTPS",
                443,
                "pool-a",
                default_tls_container_ref="c-default",
                sni_container_refs=["c-shop", "https://barbican.example/v1/containers/c-api"],
            )
        ],
        [fx.pool("pool-a", "HTTP", "ROUND_ROBIN", members("s1"))],
    )
    node.apply(lb, certificates=certs)
    assert _tls_name(node.ns, "shop.example") == "CN=shop.example"
    assert _tls_name(node.ns, "v1.api.example") == "CN=api.example"
    assert _tls_name(node.ns, "unknown.example") == "CN=default.example"


@pytest.mark.parametrize(
    ("persistence", "algorithm"),
    [
        ({"type": "HTTP_COOKIE"}, "ROUND_ROBIN"),
        ({"type": "APP_COOKIE", "cookie_name": "APPSESSION"}, "ROUND_ROBIN"),
        ({"type": "SOURCE_IP"}, "ROUND_ROBIN"),
        (None, "SOURCE_IP"),
    ],
)
def test_persistence_holds_also_across_a_reload(
    node: Node, persistence: dict | None, algorithm: str
) -> None:
    lb = simple_lb(algorithm, session_persistence=persistence)
    node.apply(lb)
    headers: dict[str, str] = {}
    _, body, resp = get(node.ns, "/session/abc")
    first = body["backend"]
    if persistence and persistence["type"] in ("HTTP_COOKIE", "APP_COOKIE"):
        headers["Cookie"] = resp["set-cookie"].split(";")[0]  # as a browser sends it back
    assert {get(node.ns, headers=headers)[1]["backend"] for _ in range(10)} == {first}
    if persistence and persistence["type"] == "APP_COOKIE":
        # HAProxy puts the member in front of the application's value and takes it off
        # again: the application sees its own cookie.
        assert headers["Cookie"].endswith("~abc")
        assert get(node.ns, headers=headers)[1]["headers"]["cookie"] == "APPSESSION=abc"
    before = node.reloads()
    lb["listeners"][0]["timeout_client_data"] = 40000  # structural: a reload
    node.apply(lb)
    assert node.reloads() == before + 1
    assert {get(node.ns, headers=headers)[1]["backend"] for _ in range(10)} == {first}


def test_member_changes_apply_at_runtime_without_reload(node: Node) -> None:
    lb = simple_lb(names=("s1", "s2"))
    node.apply(lb)
    reloads = node.reloads()
    pool = lb["pools"][0]
    pool["members"].append(members("s3")[0])  # add
    node.apply(lb)
    assert set(spread(node.ns)) == {"s1", "s2", "s3"}
    pool["members"][0]["weight"] = 0  # drain s1
    node.apply(lb)
    assert set(spread(node.ns)) == {"s2", "s3"}
    pool["members"][1]["admin_state_up"] = False  # disable s2
    node.apply(lb)
    assert set(spread(node.ns)) == {"s3"}
    pool["members"][1]["admin_state_up"] = True
    pool["members"] = [m for m in pool["members"] if m["id"] != "m-s3"]  # remove s3
    node.apply(lb)
    assert set(spread(node.ns)) == {"s2"}
    assert node.reloads() == reloads
    assert node.agent.runtime_changes == 4
    node.agent.delete_drained_servers()  # the side loop's job: s3 has no connection left
    assert not node.agent.pending_deletions
    # The file follows: a reload now keeps those changes.
    lb["listeners"][0]["timeout_client_data"] = 30000
    node.apply(lb)
    assert node.reloads() == reloads + 1
    assert set(spread(node.ns)) == {"s2"}


def test_servers_added_at_runtime_are_consolidated_for_connection_reuse(node: Node) -> None:
    """HAProxy 2.6 reuses no server connection to a server added at runtime; once members
    are quiet, a reload makes it an ordinary server again."""

    def reuse(server: str) -> tuple[int, int]:
        row = next(r for r in node.agent.proxy.stats() if r["svname"] == server)
        return int(row["connect"] or 0), int(row["reuse"] or 0)

    lb = simple_lb(names=("s1",))
    node.apply(lb)
    lb["pools"][0]["members"] = members("s2")
    node.apply(lb)
    assert node.agent.consolidate_at is not None
    assert not node.agent.consolidate(now=time.monotonic())  # not yet quiet long enough

    def keep_alive_requests(count: int) -> None:
        with netns.entered(node.ns):
            conn = http.client.HTTPConnection(VIP, 80, timeout=3)
        try:
            for _ in range(count):
                assert get(node.ns, conn=conn)[0] == 200
        finally:
            conn.close()

    keep_alive_requests(20)
    connects, reused = reuse("m_m-s2")
    assert connects == 20 and reused == 0  # a new server connection per request
    reloads = node.reloads()
    assert node.agent.consolidate(now=time.monotonic() + 3600)
    assert node.reloads() == reloads + 1 and node.agent.consolidate_at is None
    keep_alive_requests(20)
    connects, reused = reuse("m_m-s2")
    assert reused >= 15, (connects, reused)


def test_proxy_protocol_towards_servers(node: Node) -> None:
    lines: list[bytes] = []
    with netns.entered(node.ns):
        srv = socket.create_server(("127.0.0.1", 8090))

    def accept() -> None:
        conn, _ = srv.accept()
        with conn:
            lines.append(conn.recv(200).split(b"\r\n")[0])
            conn.sendall(b"hello\n")

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    lb = fx.lb(
        VIP,
        [fx.listener("li-tcp", "TCP", 9000, "pool-p")],
        [fx.pool("pool-p", "PROXY", "ROUND_ROBIN", [fx.member("m-p", "127.0.0.1", 8090)])],
    )
    node.apply(lb)
    with netns.entered(node.ns), socket.create_connection((VIP, 9000), timeout=3) as c:
        c.sendall(b"x")
        assert c.recv(10) == b"hello\n"
    t.join(3)
    srv.close()
    # PROXY TCP4 <client> <VIP> <client port> <listener port>
    assert lines and lines[0].split()[:4] == [b"PROXY", b"TCP4", VIP.encode(), VIP.encode()]
    assert lines[0].split()[5] == b"9000"


def test_allowed_cidrs_and_health_checks(node: Node) -> None:
    lb = simple_lb(names=("s1", "s2"), healthmonitor=fx.monitor("HTTP", delay=1))
    lb["pools"][0]["members"].append(fx.member("m-dead", "127.0.0.1", 8099))
    node.apply(lb)
    deadline = time.monotonic() + 10
    while True:
        health = health_from(node.agent.proxy.stats())
        if health.get("m-dead") is False and health.get("m-s1") and health.get("m-s2"):
            break
        assert time.monotonic() < deadline, f"HAProxy's checks did not settle: {health}"
        time.sleep(0.2)
    assert set(spread(node.ns)) == {"s1", "s2"}
    lb["listeners"][0]["allowed_cidrs"] = ["192.0.2.0/24"]
    node.apply(lb)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        get(node.ns)


def test_a_refused_load_balancer_is_isolated(node: Node) -> None:
    good = simple_lb()
    bad = fx.lb(
        "10.77.0.11",
        [
            fx.listener(
                "li-bad", "TERMINATED_HTTPS", 443, "pool-b", default_tls_container_ref="c-broken"
            )
        ],
        [fx.pool("pool-b", "HTTP", "ROUND_ROBIN", members("s2"))],
        id_="lb-bad",
    )
    node.apply(good, bad, certificates={"c-broken": "-----BEGIN CERTIFICATE-----\nnope\n"})
    (error,) = node.agent.errors
    assert error["load_balancer_id"] == "lb-bad" and "HAProxy refused" in error["reason"]
    assert get(node.ns)[0] == 200  # the good one serves


def test_twenty_changes_of_every_kind_under_load_fail_nothing(node: Node) -> None:
    """Requests run on fresh and on keep-alive connections all along; the changes cover
    member add/remove/weight/disable (runtime) and listener, policy, persistence, timeout
    and health-monitor changes (reloads)."""
    lb = simple_lb(names=("s1", "s2"))
    node.apply(lb)
    stop = threading.Event()
    results: Counter[str] = Counter()
    failures: list[str] = []

    def load(keep_alive: bool) -> None:
        with netns.entered(node.ns):
            conn = http.client.HTTPConnection(VIP, 80, timeout=5) if keep_alive else None
            end = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < end:
                try:
                    status, _, _ = get(node.ns, conn=conn)
                    results[f"{status}"] += 1
                    if status != 200:
                        failures.append(f"HTTP {status}")
                except (OSError, http.client.HTTPException) as exc:
                    # A keep-alive connection the old process closed after a response is
                    # the client's to reopen (HTTP/1.1 idempotent retry), not a failure;
                    # anything on a fresh connection is.
                    if keep_alive and isinstance(
                        exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                    ):
                        results["reconnect"] += 1
                        conn = http.client.HTTPConnection(VIP, 80, timeout=5)
                        continue
                    failures.append(f"{exc.__class__.__name__}: {exc}")

    threads = [threading.Thread(target=load, args=(ka,), daemon=True) for ka in (False, True)]
    for t in threads:
        t.start()
    pool = lb["pools"][0]
    li = lb["listeners"][0]
    changes = [
        lambda: pool["members"].append(members("s3")[0]),
        lambda: pool["members"][0].update(weight=5),
        lambda: li.update(timeout_client_data=45000),
        lambda: pool["members"][1].update(admin_state_up=False),
        lambda: pool.update(session_persistence={"type": "HTTP_COOKIE"}),
        lambda: pool["members"][1].update(admin_state_up=True),
        lambda: pool.update(healthmonitor=fx.monitor("HTTP", delay=1)),
        lambda: pool["members"].pop(0),
        lambda: li.update(insert_headers={"X-Forwarded-Proto": "true"}),
        lambda: pool["members"].append(members("s1")[0]),
        lambda: li.update(
            l7policies=[fx.policy("p1", 1, "REJECT", [fx.rule("r1", "PATH", "EQUAL_TO", "/deny")])]
        ),
        lambda: pool["members"][0].update(weight=2),
        lambda: pool.update(lb_algorithm="LEAST_CONNECTIONS"),
        lambda: pool["members"].pop(),
        lambda: li.update(connection_limit=5000),
        lambda: pool.update(session_persistence=None),
        lambda: pool["members"].append(members("s1")[0]),
        lambda: pool.update(healthmonitor=None),
        lambda: li.update(l7policies=[]),
        lambda: pool["members"][0].update(weight=1),
    ]
    reloads = node.reloads()
    for change in changes:
        time.sleep(0.3)
        change()
        node.apply(lb)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    runtime = node.agent.runtime_changes
    print(f"\n20 changes: {results}, reloads {node.reloads() - reloads}, runtime {runtime}")
    assert not failures, failures[:5]
    assert results["200"] > 100
    assert node.reloads() - reloads >= 8 and runtime >= 8
