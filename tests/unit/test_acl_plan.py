"""The ACL planner (a pure function): a changed list goes to the VIP's other ACL id, the id
in use is never cleared before the switch, and nothing stale is left behind."""

from __future__ import annotations

import ipaddress

import pytest

from shoal.dataplane.acl import acl_ids_of, plan_acl
from shoal.dataplane.config import VipSpec
from shoal.errors import ConfigError

N = ipaddress.ip_network
A, B, C = N("192.0.2.0/24"), N("198.51.100.0/24"), N("2001:db8::/32")


def test_a_first_list_fills_the_first_id() -> None:
    plan = plan_acl({}, {}, {3: [A, C]}, 100)
    assert plan.ids == {3: 6}
    assert sorted(map(str, (n for _, n in plan.writes))) == [str(A), str(C)]
    assert not plan.pre_deletes and not plan.post_deletes and plan.changed == {3}


def test_a_change_uses_the_other_id_and_clears_the_old_one_after() -> None:
    plan = plan_acl({6: {A}, 7: {B}}, {3: 6}, {3: [B, C]}, 100)
    assert plan.ids == {3: 7}
    # B is already under id 7: only C is written; id 6 (in use) is cleared after the switch.
    assert plan.writes == [(7, C)] and plan.post_deletes == [(6, A)]
    assert plan.pre_deletes == []


def test_leftovers_under_the_unused_id_go_before_it_is_filled() -> None:
    plan = plan_acl({6: {A}, 7: {A, C}}, {3: 6}, {3: [B]}, 100)
    assert plan.ids == {3: 7}
    assert set(plan.pre_deletes) == {(7, A), (7, C)}
    assert plan.writes == [(7, B)] and plan.post_deletes == [(6, A)]


def test_an_unchanged_list_writes_nothing() -> None:
    plan = plan_acl({7: {A, B}}, {3: 7}, {3: [B, A]}, 100)
    assert (plan.ids, plan.writes, plan.pre_deletes, plan.post_deletes) == ({}, [], [], [])
    assert plan.changed == set()


def test_a_dropped_list_is_cleared_after_the_flag() -> None:
    plan = plan_acl({6: {A}}, {3: 6}, {}, 100)
    assert plan.post_deletes == [(6, A)] and plan.changed == {3} and not plan.ids


def test_capacity_counts_the_peak_of_the_change() -> None:
    with pytest.raises(ConfigError, match="2 IPv4 prefixes"):
        plan_acl({6: {A}}, {3: 6}, {3: [B]}, 1)


def test_ids_are_per_vip() -> None:
    assert acl_ids_of(0) == (0, 1) and acl_ids_of(4095) == (8190, 8191)


@pytest.mark.parametrize("cidrs", [["2001:db8::/32"], ["192.0.2.0/24", "::/0"]])
def test_a_list_of_the_other_family_is_refused(cidrs: list[str]) -> None:
    with pytest.raises(ValueError, match=r"is IPv6, VIP 10\.0\.0\.1 is IPv4"):
        VipSpec(address="10.0.0.1", port=80, protocol="tcp", allowed_cidrs=cidrs)


def test_lists_are_canonical() -> None:
    spec = VipSpec(
        address="10.0.0.1", port=80, protocol="tcp", allowed_cidrs=["192.0.2.9/24", "192.0.2.0/24"]
    )
    assert spec.allowed_cidrs == [A]
    assert (
        VipSpec(address="10.0.0.1", port=80, protocol="tcp", allowed_cidrs=[]).allowed_cidrs is None
    )
