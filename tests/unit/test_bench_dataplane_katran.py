"""Each data-plane path is compared with Katran like for like (shared REFERENCE): a path that
writes a session with Katran inserting, a flood-mode path with Katran not inserting, and the
ratio is taken on the plain mean, which keeps the LRU's occasional refills."""

from __future__ import annotations

import pytest

from shoal.bench import dataplane as dp


@pytest.mark.parametrize(
    ("path", "row", "ns"),
    [
        ("not_vip", "not_vip (inserting)", 25),
        ("syn", "syn (inserting)", 155),
        ("cache_hit", "cache_hit (inserting)", 70),
        ("cache_miss", "cache_miss (inserting)", 484),
        ("new_flow", "new_flow (inserting)", 470),
        ("syn_flood", "syn (not inserting)", 79),
        ("cache_miss_flood", "cache_miss (not inserting)", 286),
        ("new_flow_flood", "new_flow (not inserting)", 88),
    ],
)
def test_every_path_meets_its_like_for_like_katran_row(path: str, row: str, ns: float) -> None:
    flood = dp.PATHS[path][1]
    assert dp.katran_row(path, flood) == (row, ns)


def test_a_path_katran_has_no_row_for_gets_no_ratio() -> None:
    assert dp.katran_row("acl_drop", False) is None


def test_the_ratio_uses_the_plain_mean_and_reports_the_trimmed_one() -> None:
    # 198 samples of 100 ns and two refills of 10,000 ns: the trimmed mean drops them.
    samples = [100] * 198 + [10_000, 10_000]
    res = dp._result("syn", "d", samples, (50.0, 50.0), ("syn (inserting)", 155.0), None)
    assert res.plain_mean_ns == pytest.approx(199.0)
    assert res.ratio_to_katran == pytest.approx((199.0 - 50.0) / 155.0)
    assert res.ratio_trimmed == pytest.approx((100.0 - 50.0) / 155.0)
    assert res.verdict == "over target"
    fast = dp._result("syn", "d", [100] * 100, (50.0, 50.0), ("syn (inserting)", 155.0), None)
    assert fast.verdict == "ok"
