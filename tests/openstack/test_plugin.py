"""`openstack shoal ...`: the Shoal plugin of the stock OpenStack client, with Keystone users."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from .cloud import BIN, PASSWORD
from .conftest import Cloud, OpenStackCli
from .test_cli import sdk

pytestmark = pytest.mark.openstack


def lb_with_two_revisions(cloud: Cloud) -> tuple[str, str]:
    alice = sdk(cloud, "alice", "alpha")
    lb = alice.load_balancer.create_load_balancer(
        name=f"rev-{uuid.uuid4().hex[:6]}", vip_subnet_id="default"
    )
    alice.load_balancer.create_listener(load_balancer_id=lb.id, protocol="TCP", protocol_port=80)
    return lb.id, lb.name


def test_revisions_list_show_diff_and_rollback(cloud, as_user):
    lb_id, name = lb_with_two_revisions(cloud)
    alice = as_user("alice")
    revisions = alice.ok("shoal", "revision", "list", name, "-f", "json")
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["author"] == "alice"  # the Keystone user, from the token
    first = alice.ok("shoal", "revision", "show", name, "1", "-f", "json")
    assert first["number"] == 1 and '"listeners": []' in first["config"]
    changes = alice.ok("shoal", "revision", "diff", lb_id, "2", "-f", "json")
    assert any("listener" in str(c.get("path", "")) for c in changes), changes
    refused = as_user("olga").refused("shoal", "revision", "rollback", lb_id, "1")
    assert "may not change resources (HTTP 403) (Request-ID: req-" in refused
    restored = alice.ok(
        "shoal", "revision", "rollback", lb_id, "1", "--message", "undo", "-f", "json"
    )
    assert restored["number"] == 3 and restored["message"] == "undo"
    events = alice.ok("shoal", "event", "list", "--loadbalancer", lb_id, "-f", "json")
    assert all(set(e) >= {"id", "at", "kind", "message"} for e in events)
    other = as_user("bob").refused("shoal", "revision", "list", lb_id)
    assert "could not be found" in other  # another project's load balancer is invisible


def test_nodes_are_for_admins_and_flow_trace_answers(cloud, as_user):
    assert as_user("admin").ok("shoal", "node", "list", "-f", "json") == []
    assert "admin" in as_user("alice").refused("shoal", "node", "list")
    lb_id, _ = lb_with_two_revisions(cloud)
    trace = as_user("alice").run(
        "shoal",
        "flow",
        "trace",
        lb_id,
        "--source-ip",
        "198.51.100.7",
        "--source-port",
        "40000",
        "--protocol-port",
        "80",
    )
    assert trace.rc == 0, trace.err
    bad = as_user("alice").refused(
        "shoal", "flow", "trace", lb_id, "--source-ip", "nope", "--source-port", "1",
        "--protocol-port", "80",
    )  # fmt: skip
    assert "Not an IP address" in bad


def test_the_installed_openstack_command_loads_the_plugin(cloud):
    """The real executable, in its own process: the entry points, not this process's."""
    lb_id, _ = lb_with_two_revisions(cloud)
    cli = OpenStackCli(cloud, "alice", "alpha", PASSWORD)
    done = subprocess.run(
        [str(BIN / "openstack"), *cli.argv(), "shoal", "revision", "list", lb_id, "-f", "value"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["2", "1"]
