"""The L4 agent's exporter against a real registry and a data plane with in-memory maps:
what the counters say is what Prometheus reads, every data-plane counter has a family, the
agent's HTTP listener serves only /metrics, and BIRD's answers become session states."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shoal import netns
from shoal.agents.api import AgentApi
from shoal.agents.birdstate import BirdState, parse_bfd, parse_protocols, routing_state
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.metrics import COUNTER_FAMILIES, L4Collector
from shoal.agents.metrics import MetricsServer
from shoal.bench.applycost import desired_state
from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer


@pytest.fixture
def agent() -> Iterator[L4Agent]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(
            controller="",
            token="",
            name="n1",
            interface="lo",
            state_dir=Path(tmp),
            session_cache_size=4096,
        )
        a = L4Agent(cfg, cast(AgentApi, None))
        a.lb = Balancer.fake(max_vips=64, max_backends=1024)
        a.apply(desired_state(3, 2))
        try:
            yield a
        finally:
            a.health.close()


def samples(agent: L4Agent, bird: BirdState | None = None) -> dict[str, list[Any]]:
    agent.registry.register(L4Collector(agent, bird, occupancy_every=0))
    text = generate_latest(agent.registry).decode()
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def one(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    hits = [s.value for s in found[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, found.get(name))
    return float(hits[0])


def test_every_data_plane_counter_has_a_family() -> None:
    assert set(COUNTER_FAMILIES) == set(abi.Counter)


def test_vip_and_backend_traffic_come_from_the_counter_maps(agent: L4Agent) -> None:
    lb = agent.lb
    assert lb is not None
    name, state = sorted(lb.vips().items())[0]
    lb.maps.vip_stats.set_all(state.vip_id, abi.Traffic(packets=10, bytes=1500))
    slot, backend = next((s, b) for s, b in lb.backends().items() if b.vip_id == state.vip_id)
    lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=4, bytes=600))
    lb.maps.counters.set_all(abi.Counter.CACHE_HIT, ctypes.c_uint64(7))
    lb.maps.counters.set_all(abi.Counter.DROP_ACL, ctypes.c_uint64(3))
    owner = agent.vip_owner[name]
    found = samples(agent)
    ncpus = lb.maps.vip_stats.ncpus
    # set_all writes every CPU's slot: the exporter sums CPUs, as the data plane counts.
    assert one(found, "shoal_l4_vip_packets_total", vip=name, load_balancer_id=owner) == 10 * ncpus
    assert one(found, "shoal_l4_vip_bytes_total", vip=name) == 1500 * ncpus
    assert one(found, "shoal_l4_session_cache_hits_total") == 7 * ncpus
    assert one(found, "shoal_l4_drops_total", reason="acl") == 3 * ncpus
    assert one(found, "shoal_l4_drops_total", reason="no_backend") == 0
    backend_samples = [
        s for s in found["shoal_l4_backend_packets_total"] if s.labels["vip"] == name
    ]
    assert sum(s.value for s in backend_samples) == 4 * ncpus
    assert len({s.labels["backend"] for s in backend_samples}) == 2
    del backend


def test_kept_labels_follow_every_apply(agent: L4Agent) -> None:
    """The collector keeps its label sets between scrapes; after applies that move members,
    drop and add load balancers, a scrape still shows exactly the maps' VIPs, owners,
    backends, digests and counters (read the slow way, one lookup per entry)."""
    lb = agent.lb
    assert lb is not None
    collector = L4Collector(agent, occupancy_every=1e9)
    list(collector.collect())  # labels kept from here
    state = desired_state(4, 3)
    del state["load_balancers"][0]
    moved = state["load_balancers"][1]["config"]["pools"][0]["members"]
    moved[0]["address"], moved[1]["weight"] = "10.9.9.9", 0
    state["load_balancers"][1]["revision"] = 2
    for changed in (state, desired_state(2, 1)):
        agent.apply(changed)
        for st in lb.vips().values():
            lb.maps.vip_stats.set_all(st.vip_id, abi.Traffic(packets=st.vip_id + 1, bytes=7))
        for slot in lb.backends():
            lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=slot + 1, bytes=5))
        found: dict[str, set[Any]] = {}
        for family in collector.collect():
            for s in family.samples:
                found.setdefault(s.name, set()).add((tuple(sorted(s.labels.items())), s.value))
        owners, digests = agent.ownership()
        assert found["shoal_l4_vip_packets_total"] == {
            ((("load_balancer_id", owners[n]), ("vip", n)), lb.vip_traffic(st.vip_id)[0])
            for n, st in lb.vips().items()
        }
        names = {st.vip_id: n for n, st in lb.vips().items()}
        assert found["shoal_l4_backend_packets_total"] == {
            ((("backend", address), ("vip", names[vip_id])), packets)
            for vip_id, address, packets, _ in lb.backend_stats()
        }
        assert found["shoal_l4_vip_table_info"] == {
            ((("digest", d), ("load_balancer_id", o), ("vip", n)), 1.0)
            for o, per in digests.items()
            for n, d in per.items()
        }


def test_table_digests_flood_state_and_occupancy(agent: L4Agent) -> None:
    lb = agent.lb
    assert lb is not None
    lb.maps.flood.set_all(0, abi.FloodState(entries=2, exits=1, mode=0, last_rate=5))
    found = samples(agent)
    _, digests = agent.ownership()
    table = found["shoal_l4_vip_table_info"]
    assert len(table) == 3
    for s in table:
        assert digests[s.labels["load_balancer_id"]][s.labels["vip"]] == s.labels["digest"]
    assert one(found, "shoal_l4_flood_mode") == 0
    assert (
        one(found, "shoal_l4_flood_transitions_total", direction="enter") == 2 * lb.maps.flood.ncpus
    )
    assert one(found, "shoal_l4_session_cache_entries") == 0
    assert one(found, "shoal_l4_session_cache_capacity") == 4096


def test_no_client_address_becomes_a_label(agent: L4Agent) -> None:
    """Sessions (client 5-tuples) are counted, never listed."""
    lb = agent.lb
    assert lb is not None
    key = abi.FlowKey()
    key.src[0] = 0x0A0B0C0D  # a client
    key.family = 4
    lb.maps.sessions.set(key, abi.FlowVal())
    found = samples(agent)
    assert one(found, "shoal_l4_session_cache_entries") == 1
    text = generate_latest(agent.registry).decode()
    assert "13.12.11.10" not in text and "10.11.12.13" not in text


BIRD_PROTOCOLS = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:01:02.123
shoal_vips4 Static    master4    up     12:01:02.123
bfd1       BFD        ---        up     12:01:02.123
uplink     BGP        ---        up     12:01:03.456  Established
backup     BGP        ---        start  12:01:03.456  Active        Socket: Connection refused
"""
BIRD_BFD = """BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
10.88.1.1                 up0        Up         12:01:03.500    0.100    0.300
10.88.1.2                 up0        Down       12:01:03.500    1.000    0.000
"""


def test_bird_answers_become_session_states() -> None:
    bgp = parse_protocols(BIRD_PROTOCOLS)
    assert [(s.name, s.established) for s in bgp] == [("uplink", True), ("backup", False)]
    bfd = parse_bfd(BIRD_BFD)
    assert [(b.protocol, b.neighbor, b.up) for b in bfd] == [
        ("bfd1", "10.88.1.1", True),
        ("bfd1", "10.88.1.2", False),
    ]


def test_bird_not_answering_is_a_metric_not_an_error(agent: L4Agent, tmp_path: Path) -> None:
    found = samples(agent, BirdState(tmp_path / "no-such.ctl"))
    assert one(found, "shoal_bird_up") == 0
    assert "shoal_bgp_session_up" not in found


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 (Debian bird2)")
def test_a_real_bird_reports_its_sessions(agent: L4Agent, tmp_path: Path) -> None:
    """A BIRD (in a namespace of this test, passive: it sends nothing) with one BGP session
    that cannot be up."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    ns = f"sm{os.getpid()}"
    conf, ctl = tmp_path / "bird.conf", tmp_path / "bird.ctl"
    conf.write_text(
        "router id 192.0.2.1;\nprotocol device {}\n"
        "protocol bgp uplink { local as 65001; neighbor 192.0.2.2 as 65000; passive on; "
        "ipv4 { import none; export none; }; }\n"
    )
    netns.add(ns)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "bird", "-f", "-c", str(conf), "-s", str(ctl)]
    )
    try:
        bird = BirdState(ctl)
        deadline = time.monotonic() + 30  # BIRD opens its socket in a moment, even when busy
        while not ctl.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        found = samples(agent, bird)
        assert one(found, "shoal_bird_up") == 1
        assert one(found, "shoal_bgp_session_up", protocol="uplink") == 0
        assert "shoal_bfd_session_up" not in found  # no BFD protocol: no sessions
        state = routing_state(bird, announced=0)  # what the agent reports to the controller
        assert state.bird == "ok" and [(p.name, p.neighbor) for p in state.peers] == [
            ("uplink", "192.0.2.2")
        ]
        assert state.peers[0].bgp_state != "Established" and state.peers[0].bgp_since
    finally:
        proc.terminate()
        proc.wait(10)
        netns.delete(ns)


def test_the_listener_serves_metrics_and_nothing_else(agent: L4Agent) -> None:
    agent.registry.register(L4Collector(agent))
    server = MetricsServer("127.0.0.1:0", agent.registry).start()
    try:
        host, port = server.address[:2]
        r = httpx.get(f"http://{host}:{port}/metrics")
        assert r.status_code == 200 and "shoal_l4_vip_packets_total" in r.text
        assert "shoal_agent_build_info" in r.text and 'role="l4"' in r.text
        assert httpx.get(f"http://{host}:{port}/").status_code == 404
        assert httpx.post(f"http://{host}:{port}/metrics").status_code == 501
    finally:
        server.close()


def test_a_bad_listen_address_is_a_clear_error() -> None:
    from shoal.errors import ConfigError

    with pytest.raises(ConfigError, match="HOST:PORT"):
        MetricsServer("localhost", agent_registry_for_test())


def agent_registry_for_test() -> Any:
    from shoal.agents.metrics import agent_registry

    return agent_registry("l4")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus)")
def test_promtool_finds_no_naming_problem(agent: L4Agent) -> None:
    agent.registry.register(L4Collector(agent, None, occupancy_every=0))
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(agent.registry).decode(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
