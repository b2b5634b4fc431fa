"""The other ways in: Shoal's own CLI with a Keystone token, and a noauth controller driven
by `openstack --os-auth-type none`, as in Octavia's noauth."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .cloud import BIN, PASSWORD, serve_controller
from .conftest import Cloud
from .test_cli import sdk

pytestmark = pytest.mark.openstack


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_the_shoal_cli_takes_a_keystone_token(cloud: Cloud):
    name = f"ks-{uuid.uuid4().hex[:6]}"
    sdk(cloud, "alice", "alpha").load_balancer.create_load_balancer(
        name=name, vip_subnet_id="default"
    )
    env = {
        "SHOAL_URL": cloud.controller.url,
        "SHOAL_TOKEN": cloud.keystone.token("alice", PASSWORD, "alpha"),
        "SHOAL_CLI_CONFIG": "/nonexistent",
    }
    done = run(str(BIN / "shoal"), "revision", "list", name, "-f", "value", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "1"
    env["SHOAL_TOKEN"] = cloud.keystone.token("olga", PASSWORD, "alpha")
    refused = run(str(BIN / "shoal"), "lb", "delete", name, env=env)
    assert refused.returncode != 0 and "may not change" in refused.stderr + refused.stdout


def test_openstack_cli_with_no_auth_against_a_noauth_controller(tmp_path: Path):
    with serve_controller(tmp_path, "auth: noauth\n") as controller:
        none = ["--os-auth-type", "none", "--os-endpoint", controller.url]
        conn = __import__("openstack").connect(
            auth_type="none",
            endpoint=controller.url,
            load_balancer_endpoint_override=controller.url,
        )
        lb = conn.load_balancer.create_load_balancer(name="dev", vip_subnet_id="default")
        assert lb.project_id == "admin"  # no X-Project-Id: Octavia's noauth admin
        listed = run(str(BIN / "openstack"), *none, "loadbalancer", "list", "-f", "value")
        assert listed.returncode == 0, listed.stderr
        assert lb.id in listed.stdout
        revisions = run(str(BIN / "openstack"), *none, "shoal", "revision", "list", "dev")
        assert revisions.returncode == 0, revisions.stderr
        assert "noauth" in revisions.stdout
