"""The `shoal dataplane` CLI as an operator uses it: attach with a file, change it, refuse bad
files with one line and exit code 1 while the data plane keeps its last good state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shoal import netns

pytestmark = [pytest.mark.bpf, pytest.mark.netns]
SHOAL = [sys.executable, "-m", "shoal.cli.main"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    ns = f"shoal-cli{os.getpid()}"
    netns.delete(ns)
    netns.add(ns)
    netns.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1"], ns)
    netns.run(["ip", "link", "set", "up0", "up"], ns)
    netns.run(["ip", "link", "set", "up1", "up"], ns)
    e = {
        **os.environ,
        "SHOAL_STATE_DIR": str(tmp_path / "state"),
        "NS": ns,
        "INSTANCE": f"cli{os.getpid()}",
        "COLUMNS": "200",
    }
    yield e
    subprocess.run(
        [*SHOAL, "dataplane", "purge", "-i", e["INSTANCE"]], env=e, capture_output=True, check=False
    )
    netns.delete(ns)


def shoal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOAL, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def attach(env: dict[str, str], config: Path) -> subprocess.CompletedProcess[str]:
    return shoal(
        env,
        "dataplane",
        "attach",
        "up0",
        "--netns",
        env["NS"],
        "-i",
        env["INSTANCE"],
        "--config",
        str(config),
        "--session-cache-size",
        "65536",
        "--max-vips",
        "64",
        "--max-backends",
        "1024",
    )


def write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


GOOD = {
    "vips": [
        {
            "address": "10.0.0.100",
            "port": 80,
            "protocol": "tcp",
            "table_size": 251,
            "backends": [{"address": "10.1.0.1"}, {"address": "10.1.0.2", "weight": 2}],
        }
    ]
}


def test_attach_apply_show_trace_detach(env: dict[str, str], tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", GOOD)
    r = attach(env, good)
    assert r.returncode == 0, r.stderr
    assert "attached shoal_lb to up0" in r.stdout
    show = json.loads(shoal(env, "dataplane", "show", "-i", env["INSTANCE"], "-f", "json").stdout)
    assert {(row["backend"], row["weight"], row["state"]) for row in show} == {
        ("10.1.0.1", 1, "active"),
        ("10.1.0.2", 2, "active"),
    }
    trace = json.loads(
        shoal(
            env,
            "dataplane",
            "trace",
            "192.0.2.1",
            "1234",
            "10.0.0.100",
            "80",
            "-i",
            env["INSTANCE"],
            "-f",
            "json",
        ).stdout
    )
    fields = {row["field"]: row["value"] for row in trace}
    assert fields["via"] == "maglev" and fields["backend"] in ("10.1.0.1", "10.1.0.2")

    drained = {
        "vips": [
            {
                **GOOD["vips"][0],
                "backends": [{"address": "10.1.0.1", "weight": 0}, {"address": "10.1.0.2"}],
            }
        ]
    }
    r = shoal(
        env, "dataplane", "apply", str(write(tmp_path / "d.yaml", drained)), "-i", env["INSTANCE"]
    )
    assert r.returncode == 0 and "1 changed" in r.stdout
    show = json.loads(shoal(env, "dataplane", "show", "-i", env["INSTANCE"], "-f", "json").stdout)
    assert {r["backend"]: r["state"] for r in show}["10.1.0.1"] == "draining"

    r = shoal(env, "dataplane", "counters", "-i", env["INSTANCE"], "-f", "json")
    assert r.returncode == 0 and any(c["counter"] == "flood_mode" for c in json.loads(r.stdout))
    r = shoal(env, "dataplane", "detach", "up0", "--netns", env["NS"])
    assert r.returncode == 0 and "detached" in r.stdout


BAD = {
    "bad address": ({"address": "10.0.0.300", "port": 80, "protocol": "tcp"}, "10.0.0.300"),
    "non-prime table": ({**GOOD["vips"][0], "table_size": 1000}, "prime"),
    "duplicate backend": (
        {**GOOD["vips"][0], "backends": [{"address": "10.1.0.1"}, {"address": "10.1.0.1"}]},
        "duplicate backend 10.1.0.1",
    ),
    "negative weight": (
        {**GOOD["vips"][0], "backends": [{"address": "10.1.0.1", "weight": -1}]},
        "weight",
    ),
    "unknown protocol": ({**GOOD["vips"][0], "protocol": "sctp"}, "protocol"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_are_refused_and_nothing_changes(env, tmp_path: Path, case: str) -> None:
    good = write(tmp_path / "good.yaml", GOOD)
    assert attach(env, good).returncode == 0
    before = shoal(env, "dataplane", "show", "-i", env["INSTANCE"], "-f", "json").stdout
    vip, needle = BAD[case]
    bad = write(tmp_path / "bad.yaml", {"vips": [vip]})
    r = shoal(env, "dataplane", "apply", str(bad), "-i", env["INSTANCE"])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("shoal: error:")
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert shoal(env, "dataplane", "show", "-i", env["INSTANCE"], "-f", "json").stdout == before


def test_unknown_interface_and_missing_instance(env: dict[str, str], tmp_path: Path) -> None:
    r = shoal(
        env,
        "dataplane",
        "attach",
        "nosuch0",
        "--netns",
        env["NS"],
        "-i",
        env["INSTANCE"],
        "--session-cache-size",
        "65536",
    )
    assert r.returncode == 1 and "unknown interface 'nosuch0'" in r.stderr
    r = shoal(env, "dataplane", "show", "-i", "never-loaded")
    assert r.returncode == 1 and "no data plane instance" in r.stderr
    r = shoal(env, "dataplane", "apply", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "cannot read" in r.stderr
    (tmp_path / "broken.yaml").write_text("vips: [\n")
    r = shoal(env, "dataplane", "apply", str(tmp_path / "broken.yaml"), "--dry-run")
    assert r.returncode == 1 and "not valid YAML" in r.stderr
    r = shoal(env, "dataplane", "trace", "192.0.2.1", "x", "10.0.0.1", "80")
    assert r.returncode == 2
