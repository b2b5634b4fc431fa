"""`shoal vip-pool` against a real controller."""

# ruff: noqa: F811  (the fixtures are imported; tests name them as parameters)

from __future__ import annotations

from .test_controller_cli import as_json, controller, env, ok, refused  # noqa: F401


def test_vip_pool_lifecycle(env: dict[str, str]) -> None:
    pool = as_json(env, "vip-pool create edge --cidr 203.0.113.0/24 --project alpha --project beta")
    assert pool["project_ids"] == ["alpha", "beta"] and not pool["shared"]
    names = [p["name"] for p in as_json(env, "vip-pool list")]
    assert names == ["default", "edge"]
    assert as_json(env, "vip-pool set edge --shared")["shared"] is True
    lb = as_json(env, f"lb create --name in-edge --flavor l4 --vip-pool {pool['id']} --wait")
    assert lb["vip_address"] == "203.0.113.1"
    assert "still holds the VIPs" in refused(env, "vip-pool delete edge")
    ok(env, "lb delete in-edge --wait")
    assert "deleted VIP pool edge" in ok(env, "vip-pool delete edge")
    assert as_json(env, "vip-pool show default")["cidr"] == "10.200.0.0/16"


def test_special_ranges_are_refused_in_one_line(env: dict[str, str]) -> None:
    assert "loopback" in refused(env, "vip-pool create lo --cidr 127.0.0.0/8")
    assert "overlaps VIP pool default" in refused(env, "vip-pool create x --cidr 10.200.1.0/24")
