"""The node's desired state (every load balancer's revision and member health) as one data
plane configuration. A load balancer that cannot be programmed is left out and reported with
its reason; the others go ahead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shoal.dataplane.config import DataplaneConfig, Settings, VipSpec
from shoal.wire.l4 import l4_vips

__all__ = ["Translation", "translate"]


@dataclass
class Translation:
    vips_by_lb: dict[str, list[VipSpec]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # load balancer id -> reason

    def config(self, settings: Settings, lbs: set[str] | None = None) -> DataplaneConfig:
        chosen = (
            self.vips_by_lb
            if lbs is None
            else {k: v for k, v in self.vips_by_lb.items() if k in lbs}
        )
        return DataplaneConfig(
            settings=settings, vips=[v for specs in chosen.values() for v in specs]
        )


def translate(desired: dict[str, Any]) -> Translation:
    out = Translation()
    owner: dict[tuple[Any, int, str], str] = {}
    for lb in desired.get("load_balancers", []):
        lb_id, config = lb["id"], lb["config"]
        out.revisions[lb_id] = lb["revision"]
        try:
            vips = l4_vips(config, lb.get("member_health", {}), lb.get("l7_nodes"))
            specs = [v.spec for v in vips]
        except (ValidationError, ValueError, KeyError) as exc:
            out.errors[lb_id] = f"cannot translate revision {lb['revision']}: {exc}"
            continue
        clash = next((owner[s.key] for s in specs if s.key in owner), None)
        if clash:
            out.errors[lb_id] = f"VIP {specs[0].address} port clashes with load balancer {clash}"
            continue
        for s in specs:
            owner[s.key] = lb_id
        out.vips_by_lb[lb_id] = specs
    return out
