"""No data is lost across a restart or a crash in the middle of writes: every acknowledged
write is there afterwards, and every load balancer's rows, latest revision and stored
configuration agree."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from shoal.controller.app import create_app
from shoal.controller.db.engine import Database
from shoal.controller.db.models import LoadBalancer, Revision
from shoal.controller.services import tree
from shoal.controller.services.writes import load_tree

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api

SERVER = """
import sys, uvicorn
from shoal.controller.app import create_app
from shoal.controller.settings import load_settings
settings = load_settings(database_url=sys.argv[1], state_dir=sys.argv[2],
                         bootstrap_token=sys.argv[3])
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[4]), log_level="warning")
"""


def check_consistent(database_url: str) -> int:
    """Every load balancer: revisions 1..N, N current, stored config == rows == revision N."""
    db = Database(database_url)
    checked = 0
    with db.read() as session:
        for (lb_id,) in session.execute(select(LoadBalancer.id)):
            lb = load_tree(session, lb_id)
            assert lb is not None
            numbers = list(
                session.scalars(
                    select(Revision.number)
                    .where(Revision.load_balancer_id == lb_id)
                    .order_by(Revision.number)
                )
            )
            assert numbers == list(range(1, lb.revision + 1)), (lb_id, numbers)
            latest = session.scalar(
                select(Revision).where(
                    Revision.load_balancer_id == lb_id, Revision.number == lb.revision
                )
            )
            assert latest is not None and latest.config == lb.current_config
            if lb.current_config != "null":
                assert tree.canonical(tree.config_of(lb)) == lb.current_config
            checked += 1
    db.dispose()
    return checked


def test_restart_keeps_everything(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin = Api(client, ADMIN_SECRET)
        secret = admin.token("alice", "alpha", "member")
        stack = admin.with_token(secret).l4_stack(members=3)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        alice = Api(client, secret)  # tokens survived
        assert (
            len(alice.ok("GET", f"/v2/lbaas/pools/{stack['pool']['id']}/members")["members"]) == 3
        )
        assert (
            len(
                alice.ok("GET", f"/v2/shoal/loadbalancers/{stack['lb']['id']}/revisions")[
                    "revisions"
                ]
            )
            == 6
        )
    assert check_consistent(database_url) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(database_url: str, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, database_url, str(tmp_path), ADMIN_SECRET, str(port)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 90  # imports and migrations on a busy machine
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("controller did not start") from None
            time.sleep(0.1)


@pytest.mark.timeout(400)
def test_a_crash_mid_write_loses_no_acknowledged_write(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(database_url, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    acked: list[tuple[str, str]] = []  # (kind, id) of writes answered with success
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=base, headers={"X-Auth-Token": ADMIN_SECRET}, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    lb = c.post(
                        "/v2/lbaas/loadbalancers",
                        json={"loadbalancer": {"name": f"w{n}-{i}", "flavor_id": "l4"}},
                    )
                    if lb.status_code != 201:
                        continue
                    lb_id = lb.json()["loadbalancer"]["id"]
                    acked.append(("lb", lb_id))
                    li = c.post(
                        "/v2/lbaas/listeners",
                        json={
                            "listener": {
                                "loadbalancer_id": lb_id,
                                "protocol": "TCP",
                                "protocol_port": 80,
                            }
                        },
                    )
                    if li.status_code == 201:
                        acked.append(("listener", li.json()["listener"]["id"]))
                except httpx.HTTPError:
                    return  # the controller died under us

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # Killed mid-write once the writers are going, however slowly this machine runs them.
    deadline = time.monotonic() + 60
    while len(acked) <= 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acked) > 10, "the writers did not get going"

    proc = _start(database_url, tmp_path, port)  # migrations and recovery on restart
    try:
        with httpx.Client(base_url=base, headers={"X-Auth-Token": ADMIN_SECRET}) as c:
            for kind, ident in acked:
                path = {"lb": "loadbalancers", "listener": "listeners"}[kind]
                assert c.get(f"/v2/lbaas/{path}/{ident}").status_code == 200, (kind, ident)
            listed = c.get("/v2/lbaas/loadbalancers").json()["loadbalancers"]
            assert len(listed) >= sum(1 for k, _ in acked if k == "lb")
            json.dumps(listed)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert check_consistent(database_url) >= sum(1 for k, _ in acked if k == "lb")
