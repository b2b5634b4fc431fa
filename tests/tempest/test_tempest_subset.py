"""A fast subset of octavia-tempest-plugin's API tests, through scripts/tempest.py (real
Keystone, real tempest, noop provider). `make tempest` runs the whole of tests.api.v2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBSET = (
    r"^octavia_tempest_plugin\.tests\.api\.v2\."
    r"(test_provider|test_flavor_capabilities|test_availability_zone_capabilities"
    r"|test_load_balancer\.LoadBalancerAPITest\.test_load_balancer_ipv4_create"
    r"|test_listener\.ListenerAPITest\.test_http_listener_create"
    r"|test_flavor_profile\.FlavorProfileAPITest\.test_flavor_profile_update"
    r"|test_availability_zone\.AvailabilityZoneAPITest\.test_availability_zone_create"
    r"|test_member\.MemberAPITest1\.test_ipv4_HTTP_LC_member_create)"
)


@pytest.mark.timeout(900)  # a Keystone, a controller and tempest's own start-up, on 2 cores
def test_tempest_subset(tmp_path: Path) -> None:
    venv = subprocess.run(["scripts/tempest-venv.sh"], cwd=ROOT, capture_output=True, check=False)
    if venv.returncode != 0:
        pytest.skip(f"the tempest venv cannot be built here: {venv.stderr.decode()[-300:]}")
    work = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "scripts/tempest.py", "--regex", SUBSET, "--workdir", str(work)],
        cwd=ROOT,
        capture_output=True,
        timeout=900,
        check=False,
    )
    assert (work / "summary.json").exists(), result.stdout.decode()[-2000:]
    summary = json.loads((work / "summary.json").read_text())
    failed = {m: c.get("fail", 0) for m, c in summary.items() if c.get("fail")}
    passed = sum(c.get("pass", 0) for c in summary.values())
    assert not failed and passed >= 8, result.stdout.decode()[-2000:]
