"""The HAProxy configuration: a golden file for a load balancer using every feature, and
HAProxy's own check (`haproxy -c`) of what we render."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.agents.l7.model import acl, codes_regex, quote
from shoal.agents.l7.render import render

from ..pki import Pki
from . import fixtures as fx

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "haproxy_full.cfg"


def full_lb() -> dict:
    web = fx.pool(
        "pool-web",
        "HTTP",
        "ROUND_ROBIN",
        [
            fx.member("m1", "10.1.0.1", 8080, weight=5),
            fx.member("m2", "10.1.0.2", 8080, backup=True),
            fx.member("m3", "10.1.0.3", 8080, admin_state_up=False),
        ],
        healthmonitor=fx.monitor(
            "HTTP", url_path="/health", expected_codes="200-202", domain_name="web.example"
        ),
        session_persistence={"type": "HTTP_COOKIE"},
    )
    api = fx.pool(
        "pool-api",
        "PROXY",
        "LEAST_CONNECTIONS",
        [fx.member("m4", "10.1.0.4", 9000)],
        session_persistence={"type": "APP_COOKIE", "cookie_name": "JSESSIONID"},
    )
    tcp = fx.pool(
        "pool-tcp",
        "TCP",
        "SOURCE_IP",
        [fx.member("m5", "10.1.0.5", 5432)],
        session_persistence={"type": "SOURCE_IP", "persistence_timeout": 60},
        healthmonitor=fx.monitor("TCP"),
    )
    policies = [
        fx.policy(
            "pol-a",
            1,
            "REDIRECT_TO_POOL",
            [
                fx.rule("r1", "PATH", "STARTS_WITH", "/api"),
                fx.rule("r2", "HEADER", "EQUAL_TO", "v2", key="X-Version"),
            ],
            redirect_pool_id="pool-api",
        ),
        fx.policy("pol-b", 2, "REJECT", [fx.rule("r3", "HOST_NAME", "ENDS_WITH", ".internal")]),
        fx.policy(
            "pol-c",
            3,
            "REDIRECT_PREFIX",
            [
                fx.rule("r4", "COOKIE", "CONTAINS", "old", key="site", invert=True),
                fx.rule("r5", "FILE_TYPE", "REGEX", "^(gif|png)$"),
            ],
            redirect_prefix="https://static.example",
            redirect_http_code=301,
        ),
        fx.policy(
            "pol-d",
            4,
            "REDIRECT_TO_URL",
            [fx.rule("r6", "PATH", "EQUAL_TO", '/a "b"')],
            redirect_url="https://example.com/x",
        ),
    ]
    listeners = [
        fx.listener(
            "li-https",
            "TERMINATED_HTTPS",
            443,
            "pool-web",
            l7policies=policies,
            default_tls_container_ref="cert-a",
            sni_container_refs=["cert-b"],
            connection_limit=1000,
            allowed_cidrs=["192.0.2.0/24", "2001:db8::/32"],
            insert_headers={"X-Forwarded-For": "true", "X-Forwarded-Proto": "true"},
        ),
        fx.listener("li-tcp", "TCP", 5432, "pool-tcp", timeout_client_data=600000),
    ]
    return fx.lb("10.88.100.7", listeners, [web, api, tcp])


def pem_bundle(pki: Pki, host: str) -> str:
    leaf = pki.leaf(host)
    return leaf.cert_pem + pki.intermediate.cert_pem + leaf.key_pem()


def test_helpers() -> None:
    assert quote('a "b" \\ $x') == '"a \\"b\\" \\\\ \\$x"'
    assert codes_regex("200-202,301") == "^(200|201|202|301)$"
    assert (
        acl({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/x", "invert": True})
        == '!{ path -m beg "/x" }'
    )
    assert (
        acl(
            {
                "type": "SSL_CONN_HAS_CERT",
                "compare_type": "EQUAL_TO",
                "value": "True",
                "invert": False,
            }
        )
        == "{ always_false }"
    )


def test_golden_config() -> None:
    out = render(
        "l7-a",
        [full_lb()],
        {},
        run_dir="/run/shoal/l7-a",
        crt_dir="/run/shoal/l7-a/certs",
        monitor_address="10.88.1.31",
    )
    if os.environ.get("SHOAL_UPDATE_GOLDEN"):
        GOLDEN.write_text(out.config)
    assert out.config == GOLDEN.read_text(), "set SHOAL_UPDATE_GOLDEN=1 after a deliberate change"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    pki = Pki()
    certs = {"cert-a": pem_bundle(pki, "www.example"), "cert-b": pem_bundle(pki, "api.example")}
    out = render(
        "l7-a",
        [full_lb()],
        certs,
        run_dir=str(tmp_path),
        crt_dir=str(tmp_path / "certs"),
        monitor_address="127.0.0.1",
    )
    (tmp_path / "certs").mkdir()
    for name, content in out.files.items():
        (tmp_path / "certs" / name).write_text(content)
    assert (tmp_path / "certs" / "li-https.crtlist").read_text().count(".pem") == 2
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(out.config)
    proc = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_cache_gives_the_same_model_and_rebuilds_only_what_changed() -> None:
    from shoal.agents.l7.model import BuildCache, build

    def lb(i: int, weight: int = 1) -> dict:
        return fx.lb(
            f"10.0.0.{i}",
            [fx.listener(f"li-{i}", "HTTP", 80, f"pool-{i}")],
            [fx.pool(f"pool-{i}", "HTTP", "ROUND_ROBIN",
                     [fx.member(f"m-{i}", "10.1.0.1", 80, weight=weight)])],
            id_=f"lb-{i}",
        )  # fmt: skip

    cache: BuildCache = {}
    first = build([lb(1), lb(2), lb(3)], "/crt", cache)
    assert first == build([lb(1), lb(2), lb(3)], "/crt")
    again = build([lb(1), lb(2, weight=7), lb(3)], "/crt", cache)
    assert again == build([lb(1), lb(2, weight=7), lb(3)], "/crt")
    assert again.backends[0] is first.backends[0] and again.backends[2] is first.backends[2]
    assert again.backends[1] is not first.backends[1]
    assert again.backends[1].servers[0].weight == 7
    build([lb(1)], "/crt", cache)
    assert set(cache) == {"lb-1"}  # load balancers gone from the node leave the cache
    other = build([lb(1)], "/elsewhere", cache)  # another directory: rebuilt, not reused
    assert other.frontends[0].bind_options == build([lb(1)], "/elsewhere").frontends[0].bind_options


def test_maxconn_leaves_descriptors_for_listeners_and_servers(monkeypatch) -> None:
    import resource

    from shoal.agents.l7.render import fitting_maxconn

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 20000))
    alone = fitting_maxconn(100000)
    many = fitting_maxconn(100000, listeners=200, servers=2000)
    # HAProxy asks for 2 x maxconn plus about one per listener: a node of 200 listeners
    # must stay under the hard limit, or its reloads fail and the old worker stays.
    assert 2 * many + 200 + 40 <= 20000
    assert many < alone <= (20000 - 200) // 2
    assert fitting_maxconn(500) == 500
