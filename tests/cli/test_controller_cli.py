"""The resource commands as a new user drives them, against a real controller (uvicorn on a
free port, a temporary SQLite database) and a stand-in L4 node that applies, delays or refuses
changes on the tests' say-so: answers, exit codes, one-line errors, --wait."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shoal.controller.app import create_app
from shoal.controller.settings import load_settings

ADMIN = "cli-test-admin"
SHOAL = [sys.executable, "-m", "shoal.cli.main"]


ROUTING = {
    "bird": "ok",
    "announced": 2,
    "peers": [
        {
            "name": "uplink",
            "neighbor": "10.88.0.1",
            "bgp_state": "Established",
            "bgp_since": "12:01:03",
            "bfd_state": "Up",
            "bfd_since": "12:01:04",
        }
    ],
}


@dataclass
class FakeNode:
    """An agent reduced to what the controller sees: it reports every change applied unless
    paused, and reports the load balancers in `failing` as refused."""

    url: str
    paused: threading.Event = field(default_factory=threading.Event)
    failing: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    registered: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        enrolment = {"enrollment": {"name": "fake-l4", "role": "l4"}}
        with httpx.Client(base_url=self.url, headers={"X-Auth-Token": ADMIN}) as admin:
            r = admin.post("/v2/shoal/enrollments", json=enrolment)
            credential = r.json()["enrollment"]["credential"]
        with httpx.Client(base_url=self.url, headers={"X-Auth-Token": credential}) as http:
            node = http.post("/v2/shoal/nodes", json={"name": "fake-l4", "role": "l4"})
            node_id = node.json()["node"]["id"]
            self.registered.set()
            while not self.stop.wait(0.05):
                state = http.get(f"/v2/shoal/nodes/{node_id}/desired-state").json()
                if self.paused.is_set():  # checked after the fetch: no report covers a later write
                    continue
                errors = [
                    {"load_balancer_id": lb["id"], "revision": lb["revision"], "reason": "boom"}
                    for lb in state["load_balancers"]
                    if lb["id"] in self.failing
                ]
                http.post(
                    f"/v2/shoal/nodes/{node_id}/report",
                    json={"seq": state["seq"], "errors": errors, "routing": ROUTING},
                )


@dataclass
class Controller:
    url: str
    db_url: str
    node: FakeNode


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    tmp = tmp_path_factory.mktemp("controller")
    db_url = f"sqlite:///{tmp / 'controller.db'}"
    settings = load_settings(database_url=db_url, state_dir=str(tmp), bootstrap_token=ADMIN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the controller did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    node = FakeNode(url)
    agent = threading.Thread(target=node.run, daemon=True)
    agent.start()
    assert node.registered.wait(10), "the stand-in node did not register"
    yield Controller(url, db_url, node)
    node.stop.set()
    agent.join(5)
    server.should_exit = True
    serving.join(10)


@pytest.fixture
def env(controller: Controller, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHOAL_URL": controller.url,
        "SHOAL_TOKEN": ADMIN,
        "SHOAL_CLI_CONFIG": str(tmp_path / "absent.yaml"),
        "COLUMNS": "200",
    }


def shoal(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOAL, *shlex.split(command)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(env: dict[str, str], command: str) -> str:
    r = shoal(env, command)
    assert r.returncode == 0, f"shoal {command}: {r.stderr}"
    return r.stdout


def refused(env: dict[str, str], command: str, code: int = 1) -> str:
    """The command fails with `code` and, for code 1, exactly one line on stderr."""
    r = shoal(env, command)
    assert r.returncode == code, f"shoal {command}: {r.returncode} {r.stdout} {r.stderr}"
    assert "Traceback" not in r.stderr
    if code == 1:
        assert r.stderr.startswith("shoal: error: ")
        assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def as_json(env: dict[str, str], command: str) -> Any:
    return json.loads(ok(env, f"{command} -f json"))


def test_new_user_session(env: dict[str, str]) -> None:
    lb = as_json(env, "lb create --name web --flavor l4 --wait")
    assert lb["provisioning_status"] == "ACTIVE"
    assert lb["vip_address"]
    ok(env, "listener create web --protocol tcp --port 80 --name http --wait")
    pool = ok(
        env,
        "pool create --listener http --protocol tcp --algorithm source_ip_port --name backends "
        "--wait -f value -c id",
    ).strip()
    for i in (1, 2, 3):
        ok(env, f"member add backends --address 10.1.0.{i} --port 80 --wait")
    listed = ok(env, f"member list {pool} -f value -c address -c weight").splitlines()
    assert listed == ["10.1.0.1 1", "10.1.0.2 1", "10.1.0.3 1"]

    drained = ok(env, "member drain backends 10.1.0.2:80 --wait -f value").split()
    assert drained[2:] == ["10.1.0.2", "80", "0", "false", "ACTIVE", "DRAINING"]
    tree = ok(env, "status web")
    assert "load balancer web" in tree and "listener http" in tree and "pool backends" in tree
    assert "member 10.1.0.2:80  ACTIVE / DRAINING" in tree

    revisions = as_json(env, "revision list web")
    assert [r["number"] for r in revisions] == list(range(7, 0, -1))
    assert ok(env, "revision diff web 7").strip() == "~ member 10.1.0.2:80: weight 1 -> 0"
    changes = as_json(env, "revision diff web 7")["changes"]
    assert [(c["op"], c["field"], c["new"]) for c in changes] == [("change", "weight", 0)]
    assert '"lb_algorithm": "SOURCE_IP_PORT"' in ok(env, "revision show web 3")

    out = ok(env, "revision rollback web 6 --message undrain --wait")
    assert "revision 8 restores revision 6" in out
    statuses = as_json(env, "status web")["statuses"]["loadbalancer"]
    members = statuses["listeners"][0]["pools"][0]["members"]
    assert {m["operating_status"] for m in members} == {"NO_MONITOR"}
    assert as_json(env, "revision show web 8")["message"] == "undrain"


def test_pending_timeouts_and_errors(controller: Controller, env: dict[str, str]) -> None:
    lb_id = as_json(env, "lb create --name api --flavor l4 --wait")["id"]
    controller.node.paused.set()
    try:
        err = refused(env, "lb set api --description x --wait --wait-timeout 1")
        assert "still PENDING_UPDATE after 1 s" in err
        err = refused(env, "lb set api --name api2")  # without --wait: refused, as the API says
        assert "Invalid state PENDING_UPDATE" in err
    finally:
        controller.node.paused.clear()
    controller.node.failing.add(lb_id)
    try:
        err = refused(env, "lb failover api --wait")
        assert "load balancer api went to ERROR: node fake-l4: boom" in err
        tree = ok(env, "status api")
        assert "ERROR" in tree and "reason: node fake-l4: boom" in tree
    finally:
        controller.node.failing.discard(lb_id)
    ok(env, "lb failover api --wait")
    ok(env, "lb delete api --wait")
    refused(env, "lb show api")


def test_errors_are_one_line(env: dict[str, str]) -> None:
    ok(env, "lb create --name edge --flavor l4 --wait")
    err = refused(env, "listener create edge --protocol TCP --port 70000")
    assert "protocol_port" in err and "65535" in err
    assert "Load Balancer nowhere could not be found" in refused(env, "lb show nowhere")

    no_token = {k: v for k, v in env.items() if k != "SHOAL_TOKEN"}
    assert "SHOAL_TOKEN" in refused(no_token, "lb list")
    down = {**env, "SHOAL_URL": "http://127.0.0.1:9"}
    assert "cannot reach the controller at http://127.0.0.1:9" in refused(down, "lb list")
    assert "the token is not valid" in refused(env, "lb list --token wrong")

    refused(env, "listener create edge --port 80", code=2)  # no --protocol
    refused(env, "pool create --protocol TCP --algorithm ROUND_ROBIN", code=2)  # no parent


def test_config_file(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "cli.yaml"
    config.write_text(f"url: {env['SHOAL_URL']}\ntoken: {ADMIN}\n")
    bare = {k: v for k, v in env.items() if k not in ("SHOAL_URL", "SHOAL_TOKEN")}
    ok({**bare, "SHOAL_CLI_CONFIG": str(config)}, "lb list")


def test_controller_token_create(controller: Controller, env: dict[str, str]) -> None:
    r = shoal(
        env,
        f"controller token create --name ops --project ops --role member --db {controller.db_url}",
    )
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("shoal_")
    lb = as_json({**env, "SHOAL_TOKEN": secret}, "lb create --name ops-lb")
    assert lb["project_id"] == "ops"
    assert [t["name"] for t in as_json(env, "token list")].count("ops") == 1


def test_certificate_commands(env: dict[str, str], tmp_path: Path) -> None:
    from ..pki import Pki

    pki = Pki()
    leaf, other, soon = (
        pki.leaf("shop.example"),
        pki.leaf("other.example"),
        pki.leaf("soon.example", days=10),
    )
    files = {
        "cert.pem": leaf.cert_pem,
        "key.pem": leaf.key_pem(),
        "chain.pem": pki.intermediate.cert_pem,
        "other-key.pem": other.key_pem(),
        "soon.pem": soon.cert_pem,
        "soon-key.pem": soon.key_pem(),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    p = str(tmp_path)
    cert = as_json(
        env,
        f"certificate upload --name shop --cert {p}/cert.pem --key {p}/key.pem "
        f"--chain {p}/chain.pem",
    )
    assert cert["common_name"] == "shop.example" and cert["expires_in_days"] >= 360
    assert "private_key" not in cert
    # Each refusal is one readable line, and nothing is stored.
    err = refused(env, f"certificate upload --cert {p}/cert.pem --key {p}/other-key.pem")
    assert "does not match" in err
    err = refused(env, f"certificate upload --cert {p}/missing.pem --key {p}/key.pem")
    assert "cannot read the certificate" in err
    refused(env, f"certificate upload --cert {p}/cert.pem", code=2)  # usage error
    # Expiry shows, with a warning under 30 days.
    r = shoal(env, f"certificate upload --name soon --cert {p}/soon.pem --key {p}/soon-key.pem")
    assert r.returncode == 0 and "warning: certificate soon" in r.stderr
    listed = as_json(env, "certificate list")
    assert {c["name"] for c in listed} == {"shop", "soon"}
    assert "expires in" in shoal(env, "certificate list").stderr
    issued = as_json(env, "certificate issue --common-name api.internal --dns-name api2.internal")
    assert issued["source"] == "internal-ca"
    assert "BEGIN CERTIFICATE" in ok(env, "certificate ca")
    ok(env, "certificate delete shop")
    assert {c["name"] for c in as_json(env, "certificate list")} == {"soon", ""}
    # Listeners name certificates by name or id; one in use cannot be deleted.
    ok(env, "lb create --name tls")
    li = as_json(
        env,
        "listener create tls --protocol terminated_https --port 443 --certificate soon "
        f"--sni-certificate {issued['id']}",
    )
    soon_id = next(c["id"] for c in listed if c["name"] == "soon")
    assert li["default_tls_container_ref"] == soon_id
    assert li["sni_container_refs"] == [issued["id"]]
    assert "used by listener" in refused(env, "certificate delete soon")


def test_node_enrolment_writes_a_private_credential(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "cred"
    ok(
        env,
        f"node enroll cli-l7 --role l7 --cluster c --data-address 10.9.0.7 --credential-file {out}",
    )
    assert (out.stat().st_mode & 0o777) == 0o600 and out.read_text().startswith("shoalnode_")
    listed = as_json(env, "node enrollments")
    assert {e["name"]: e["status"] for e in listed}["cli-l7"] == "ACTIVE"
    ok(env, f"node rotate-credential cli-l7 --credential-file {out}")
    ok(env, "node revoke cli-l7")
    assert {e["name"]: e["status"] for e in as_json(env, "node enrollments")}["cli-l7"] == "REVOKED"
    assert "already enrolled" in refused(env, "node enroll fake-l4 --role l4")


def test_node_show_gives_the_bgp_and_bfd_state(env: dict[str, str]) -> None:
    deadline = time.monotonic() + 10  # the stand-in node reports every 50 ms
    while (shown := json.loads(ok(env, "node show fake-l4 -f json")))["bird"] != "ok":
        assert time.monotonic() < deadline, shown
    assert shown["bird"] == "ok" and shown["announced_vips"] == 2
    assert shown["bgp_peers"] == (
        "uplink 10.88.0.1: BGP Established since 12:01:03, BFD Up since 12:01:04"
    )
    table = ok(env, "node show fake-l4")
    assert "Established" in table and "bgp_peers" in table
