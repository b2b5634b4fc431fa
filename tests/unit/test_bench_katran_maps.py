"""The Katran same-run bench writes Katran's maps byte for byte as its balancer_structs.h lays
them out (@19f08fe); a wrong byte here means a VIP miss or a wrong real, and the comparison
would measure another path. These checks need no Katran object."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from shoal.bench import dataplane as dp
from shoal.bench import katran
from shoal.dataplane.testrun import XdpAction
from shoal.errors import DataplaneError


def test_vip_key_is_the_20_byte_vip_definition_with_zero_padding() -> None:
    key = katran.vip_key("10.0.0.100", 80, 6)
    assert len(key) == 20
    assert key[:4] == bytes([10, 0, 0, 100]) and key[4:16] == bytes(12)
    assert key[16:18] == b"\x00\x50"  # network order, as Katran's userspace htons()
    assert key[18:] == b"\x06\x00"


def test_vip_meta_puts_flags_before_the_vip_number() -> None:
    assert katran.vip_meta(7, flags=1) == struct.pack("=II", 1, 7)


def test_real_definition_is_an_ipv4_real_without_flags() -> None:
    real = katran.real_definition("10.1.0.3")
    assert len(real) == 20 and real[:4] == bytes([10, 1, 0, 3]) and real[4:] == bytes(16)


def test_ctl_mac_is_six_bytes_in_an_eight_byte_value() -> None:
    assert katran.ctl_mac("02:00:00:00:be:01") == bytes.fromhex("02000000be01") + bytes(2)


@pytest.mark.parametrize("bad", ["02:00:00", "zz:00:00:00:00:00"])
def test_a_bad_mac_is_one_clear_error(bad: str) -> None:
    with pytest.raises(DataplaneError, match="not a MAC"):
        katran.ctl_mac(bad)


def test_an_ipv6_or_garbage_address_is_refused_not_truncated() -> None:
    for bad in ("2001:db8::1", "10.0.0", "x"):
        with pytest.raises(DataplaneError, match="IPv4"):
            katran.vip_key(bad, 80, 6)


def test_the_ring_fills_every_slot_with_a_real_id_from_one() -> None:
    reals = [f"10.1.0.{i}" for i in range(1, 11)]
    keys, values = katran.ring_entries(reals, vip_num=2)
    slots = np.frombuffer(values, dtype="<u4")
    idx = np.frombuffer(keys, dtype="<u4")
    assert len(slots) == len(idx) == katran.RING_SIZE
    assert idx[0] == 2 * katran.RING_SIZE and idx[-1] == 3 * katran.RING_SIZE - 1
    assert slots.min() == 1 and slots.max() == len(reals)  # id 0 means "no real" to Katran
    counts = np.bincount(slots)[1:]
    assert counts.max() - counts.min() <= 1  # Maglev: each real floor or ceil of M/N


def test_a_vip_without_reals_is_refused() -> None:
    with pytest.raises(DataplaneError, match="at least one real"):
        katran.ring_entries([])


def test_objects_are_one_or_two_existing_files(tmp_path: Path) -> None:
    a, b = tmp_path / "ins.o", tmp_path / "noins.o"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    assert katran.parse_objects(str(a)) == [a]
    assert katran.parse_objects(f"{a}, {b}") == [a, b]
    with pytest.raises(DataplaneError, match="not a file"):
        katran.parse_objects(str(tmp_path / "missing.o"))
    with pytest.raises(DataplaneError, match="one or two"):
        katran.parse_objects(f"{a},{b},{a}")
    with pytest.raises(DataplaneError, match="one or two"):
        katran.parse_objects(",")


def test_same_run_rows_compare_each_path_with_its_like_for_like_build() -> None:
    floors = (50.0, 50.0)
    samples = {
        "syn": [150] * 100,
        "syn_flood": [90] * 100,
        "not_vip": [60] * 100,
        "katran:inserting:syn": [250] * 100,
        "katran:not_inserting:syn": [100] * 100,
        "katran:inserting:not_vip": [70] * 100,
    }
    tx, passed = {int(XdpAction.TX)}, {int(XdpAction.PASS)}
    actions = {
        "katran:inserting:syn": tx,
        "katran:not_inserting:syn": tx,
        "katran:inserting:not_vip": tx,  # Katran must pass a packet that is not for a VIP
    }
    rows = {r.path: r for r in dp.same_run_rows(samples, actions, floors)}
    assert set(rows) == {"syn", "syn_flood", "not_vip"}  # no Katran runner, no row
    assert rows["syn"].katran_row == "syn (inserting)"
    assert rows["syn"].ratio == pytest.approx(100 / 200)
    assert rows["syn_flood"].katran_row == "syn (not inserting)"
    assert rows["syn_flood"].ratio == pytest.approx(40 / 50)
    assert rows["syn"].katran_verdict == "ok"
    assert rows["not_vip"].katran_verdict == "unexpected ['TX']"
    actions["katran:inserting:not_vip"] = passed
    assert dp.same_run_rows(samples, actions, floors)[0].katran_verdict == "ok"


def test_flood_rows_are_left_out_without_the_not_inserting_build() -> None:
    samples = {"syn_flood": [90] * 10, "syn": [90] * 10, "katran:inserting:syn": [100] * 10}
    rows = dp.same_run_rows(samples, {}, (50.0, 50.0))
    assert [r.path for r in rows] == ["syn"]


def test_per_round_ratios_show_the_drift_the_overall_ratio_hides() -> None:
    # Round 1: Shoal 100 and Katran 200 above a 50 ns floor; round 2 the machine slows Katran.
    samples = {
        "floor": [50] * 10 + [50] * 10,
        "syn": [150] * 10 + [150] * 10,
        "katran:inserting:syn": [250] * 10 + [450] * 10,
    }
    actions = {"katran:inserting:syn": {int(XdpAction.TX)}}
    (row,) = dp.same_run_rows(samples, actions, (50.0, 50.0), rounds=2)
    assert row.ratio_rounds == pytest.approx((0.25, 0.5))
    assert row.ratio == pytest.approx(100 / 300)
    (no_floor,) = dp.same_run_rows(
        {k: v for k, v in samples.items() if k != "floor"}, actions, (50.0, 50.0), rounds=2
    )
    assert no_floor.ratio_rounds == (0.0, 0.0)  # nothing to divide by: no made-up spread


def test_each_katran_runner_runs_right_after_its_shoal_path() -> None:
    ours = {k: object() for k in ["floor", "not_vip", "syn", "syn_flood", "acl_drop"]}
    theirs = {
        "katran:inserting:syn": object(),
        "katran:inserting:not_vip": object(),
        "katran:not_inserting:syn": object(),
    }
    order = list(dp._paired(ours, theirs))  # type: ignore[arg-type]
    assert order == [
        "floor",
        "not_vip",
        "katran:inserting:not_vip",
        "syn",
        "katran:inserting:syn",
        "syn_flood",
        "katran:not_inserting:syn",
        "acl_drop",
    ]
