"""HAProxy's `show stat` rows as what the controller stores: per load balancer, per listener
and per member counters (Octavia's stat names), and member health as HAProxy's checks see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Ownership", "counters_from", "health_from"]

# Octavia's stats, from HAProxy's columns.
STATS = {
    "bytes_in": "bin",
    "bytes_out": "bout",
    "active_connections": "scur",
    "total_connections": "stot",
    "request_errors": "ereq",
}
HTTP = ("req_tot", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx")


@dataclass
class Ownership:
    """Which load balancer each HAProxy frontend and backend belongs to."""

    listeners: dict[str, str] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, lbs: list[dict[str, Any]]) -> Ownership:
        out = cls()
        for lb in lbs:
            for li in lb.get("listeners", []):
                out.listeners[li["id"]] = lb["id"]
            for pool in lb.get("pools", []):
                out.pools[pool["id"]] = lb["id"]
        return out


def _int(row: dict[str, str], key: str) -> int:
    try:
        return int(row.get(key) or 0)
    except ValueError:
        return 0


def counters_from(rows: list[dict[str, str]], owner: Ownership) -> dict[str, Any]:
    per_lb: dict[str, dict[str, Any]] = {}

    def lb_entry(lb_id: str) -> dict[str, Any]:
        return per_lb.setdefault(lb_id, {**dict.fromkeys(STATS, 0), "listeners": {}, "members": {}})

    for row in rows:
        px, sv = row.get("pxname", ""), row.get("svname", "")
        if sv == "FRONTEND" and px.startswith("l_") and px[2:] in owner.listeners:
            entry = lb_entry(owner.listeners[px[2:]])
            values = {name: _int(row, col) for name, col in STATS.items()}
            values |= {col: _int(row, col) for col in HTTP}
            entry["listeners"][px[2:]] = values
            for name in STATS:
                entry[name] += values[name]
        elif px.startswith("p_") and sv.startswith("m_") and px[2:] in owner.pools:
            entry = lb_entry(owner.pools[px[2:]])
            entry["members"][sv[2:]] = {
                "status": row.get("status", ""),
                "check_status": row.get("check_status", ""),
                "weight": _int(row, "weight"),
                "active_connections": _int(row, "scur"),
                "total_connections": _int(row, "stot"),
                "bytes_in": _int(row, "bin"),
                "bytes_out": _int(row, "bout"),
            }
    return {"load_balancers": per_lb}


def health_from(rows: list[dict[str, str]]) -> dict[str, bool]:
    """member id -> up, for members HAProxy checks and has an opinion on (not in
    maintenance, check not disabled)."""
    out: dict[str, bool] = {}
    for row in rows:
        sv, status = row.get("svname", ""), row.get("status", "")
        if not sv.startswith("m_") or not row.get("check_status"):
            continue
        word = status.split(" ")[0]
        if word in ("UP", "NOLB", "DRAIN"):
            out[sv[2:]] = True
        elif word == "DOWN":
            out[sv[2:]] = False
    return out
