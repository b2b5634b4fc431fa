"""Config validation and the apply logic, on the in-memory fake maps (no root needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.dataplane import abi, vipfilter
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import BackendSpec, VipSpec, load_config, parse_config
from shoal.errors import ConfigError


def vip(address="10.0.0.1", port=80, backends=("10.1.0.1", "10.1.0.2"), **kw):
    return {
        "address": address,
        "port": port,
        "protocol": "tcp",
        "table_size": 13,
        "backends": [{"address": b} if isinstance(b, str) else b for b in backends],
        **kw,
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"vips": [vip(address="10.0.0.256")]}, "vips[0].address: '10.0.0.256' is not an IPv4"),
        ({"vips": [vip(table_size=100)]}, "table_size 100 must be a prime"),
        ({"vips": [vip(backends=["10.1.0.1", "10.1.0.1"])]}, "duplicate backend 10.1.0.1"),
        ({"vips": [vip(backends=[{"address": "10.1.0.1", "weight": -1}])]}, "weight"),
        ({"vips": [vip(backends=[{"address": "10.1.0.1", "weight": True}])]}, "weight"),
        ({"vips": [vip(), vip()]}, "duplicate VIP tcp://10.0.0.1:80"),
        ({"vips": [vip(port=0)]}, "port must be 0 exactly when any_port"),
        ({"vips": [vip(address="fd00::1")]}, "IPv6 VIP fd00::1 cannot use IPv4 backend"),
        ({"vips": [vip(extra=1)]}, "extra"),
        ({"settings": {"flood": {"enter_rate": 10, "exit_rate": 20}}}, "exit_rate 20 is above"),
        ({"settings": {"gateway_mac": "zz"}}, "gateway_mac"),
        ({"settings": {"fib_lookup": False}}, "needs a gateway_mac"),
        ({"settings": {"icmp_too_big_rate": -1}}, "icmp_too_big_rate"),
        ({"settings": {"icmp_too_big_rate": 70000}}, "icmp_too_big_rate"),
        ({"settings": {"icmp_too_big_rate": "many"}}, "icmp_too_big_rate"),
        ({"settings": {"fib_per_flow": "sometimes"}}, "fib_per_flow"),
    ],
)
def test_invalid_configs_name_the_problem(doc, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_icmp_and_fib_settings_reach_the_config_words() -> None:
    lb = Balancer.fake()
    lb.apply(parse_config({"settings": {"icmp_too_big_rate": 7, "fib_per_flow": True}}))
    cfg = lb.maps.config.get(0)
    assert cfg.icmp_rate == 7 and cfg.flags & abi.CFG_F_FIB_PER_FLOW
    lb.apply(parse_config({}))
    cfg = lb.maps.config.get(0)
    assert cfg.icmp_rate == 100 and not cfg.flags & abi.CFG_F_FIB_PER_FLOW


def test_load_config_reads_yaml_and_json(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("vips:\n  - {address: 10.0.0.1, port: 80, protocol: tcp}\n")
    (tmp_path / "b.json").write_text('{"vips": []}')
    assert len(load_config(tmp_path / "a.yaml").vips) == 1
    assert load_config(tmp_path / "b.json").vips == []
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "c.json")


def test_apply_allocates_reuses_and_frees_slots() -> None:
    lb = Balancer.fake()
    report = lb.apply(parse_config({"vips": [vip()]}))
    assert report.added == ["tcp://10.0.0.1:80"]
    slots = {lb.maps.backends.get(i).addr[0] for i in lb.backends()}
    assert len(slots) == 2
    first_ids = set(lb.backends())
    lb.apply(parse_config({"vips": [vip(backends=["10.1.0.1", "10.1.0.2", "10.1.0.3"])]}))
    assert first_ids < set(lb.backends())  # existing backends kept their ids
    report = lb.apply(parse_config({"vips": []}))
    assert report.removed == ["tcp://10.0.0.1:80"]
    assert lb.backends() == {} and lb.vips() == {}
    assert not lb.maps.tables.tables  # type: ignore[attr-defined]


def test_slot_reuse_bumps_generation() -> None:
    lb = Balancer.fake()
    lb.apply(parse_config({"vips": [vip(backends=["10.1.0.1"])]}))
    ((slot, entry),) = lb.backends().items()
    lb.apply(parse_config({"vips": [vip(backends=[])]}))
    lb.apply(parse_config({"vips": [vip(backends=["10.1.0.9"])]}))
    reused = lb.maps.backends.get(slot)
    assert reused.family == 4 and reused.gen == entry.gen + 1


def test_capacity_errors_apply_nothing() -> None:
    lb = Balancer.fake(max_vips=2, max_backends=3)
    lb.apply(parse_config({"vips": [vip()]}))
    before = dict(lb.maps.backends.store.data)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="data plane full: 4 backends"):
        lb.apply(
            parse_config(
                {"vips": [vip(), vip(address="10.0.0.2", backends=["10.1.0.5", "10.1.0.6"])]}
            )
        )
    with pytest.raises(ConfigError, match="holds 2"):
        lb.apply(parse_config({"vips": [vip(address=f"10.0.0.{i}") for i in range(1, 4)]}))
    assert lb.maps.backends.store.data == before  # type: ignore[attr-defined]
    assert list(lb.vips()) == ["tcp://10.0.0.1:80"]


def test_tables_hold_only_usable_weighted_backends() -> None:
    lb = Balancer.fake()
    lb.apply(
        parse_config(
            {
                "vips": [
                    vip(
                        backends=[
                            "10.1.0.1",
                            {"address": "10.1.0.2", "weight": 0},
                            {"address": "10.1.0.3", "healthy": False},
                        ]
                    )
                ]
            }
        )
    )
    ids = {i: lb.maps.backends.get(i) for i in lb.backends()}
    table = lb.maps.tables.read(0)
    assert table is not None and len(table) == 13
    only = {ids[int(i)].addr[0] for i in table}
    assert only == {int.from_bytes(bytes([10, 1, 0, 1]), "little")}
    flags = {ids[i].addr[0] >> 24: ids[i].flags for i in ids}
    assert flags == {1: abi.BE_F_USABLE, 2: abi.BE_F_USABLE | abi.BE_F_DRAINING, 3: 0}


def test_vip_filter_has_a_bit_for_every_vip() -> None:
    lb = Balancer.fake()
    lb.apply(parse_config({"vips": [vip(), vip(address="fd00::5", backends=["fd01::1"])]}))
    words = [v.value for _, v in lb.maps.vip_filter.items()]
    for address in ("10.0.0.1", "fd00::5"):
        import ipaddress

        h = vipfilter.filter_index(ipaddress.ip_address(address))
        assert words[h >> 6] >> (h & 63) & 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sets(st.integers(1, 20), max_size=8), min_size=1, max_size=6))
def test_any_sequence_of_applies_converges(sequence: list[set[int]]) -> None:
    """Level-based: after any history, the maps hold exactly the last config."""
    lb = Balancer.fake()
    for backends in sequence:
        lb.apply(parse_config({"vips": [vip(backends=[f"10.1.0.{b}" for b in sorted(backends)])]}))
    last = sequence[-1]
    held = {lb.maps.backends.get(i).addr[0] >> 24 for i in lb.backends()}
    assert held == last
    table = lb.maps.tables.read(0)
    assert (table is None) == (not last)
    fresh = Balancer.fake()
    fresh.apply(parse_config({"vips": [vip(backends=[f"10.1.0.{b}" for b in sorted(last)])]}))
    if table is not None:
        # Same addresses chosen slot by slot as a data plane built from scratch.
        addr = {i: lb.maps.backends.get(i).addr[0] for i in lb.backends()}
        addr2 = {i: fresh.maps.backends.get(i).addr[0] for i in fresh.backends()}
        assert [addr[int(i)] for i in table] == [addr2[int(i)] for i in fresh.maps.tables.read(0)]


def test_incremental_changes_and_read_back() -> None:
    lb = Balancer.fake()
    with pytest.raises(Exception, match="apply a full configuration first"):
        lb.remove_vip("10.0.0.1", 80, "tcp")
    lb.apply(parse_config({"vips": [vip()]}))
    lb.set_backend("10.0.0.1", 80, "tcp", BackendSpec(address="10.1.0.9", weight=3))
    lb.set_backend("10.0.0.1", 80, "tcp", BackendSpec(address="10.1.0.1", weight=0))
    lb.remove_backend("10.0.0.1", 80, "tcp", "10.1.0.2")
    lb.upsert_vip(VipSpec.model_validate(vip(address="10.0.0.2", backends=["10.1.0.5"])))
    read_back = {
        v.name: {(str(b.address), b.weight, b.healthy) for b in v.backends}
        for v in lb.current_vips()
    }
    assert read_back == {
        "tcp://10.0.0.1:80": {("10.1.0.9", 3, True), ("10.1.0.1", 0, True)},
        "tcp://10.0.0.2:80": {("10.1.0.5", 1, True)},
    }
    lb.remove_vip("10.0.0.1", 80, "tcp")
    assert [v.name for v in lb.current_vips()] == ["tcp://10.0.0.2:80"]
    with pytest.raises(ConfigError, match=r"no backend 10\.9\.9\.9"):
        lb.remove_backend("10.0.0.2", 80, "tcp", "10.9.9.9")
    with pytest.raises(ConfigError, match="no VIP"):
        lb.set_backend("10.0.0.3", 80, "tcp", BackendSpec(address="10.1.0.1"))
