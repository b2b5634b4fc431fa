"""Differences between two revisions of a load balancer: structured (JSON) and readable."""

from __future__ import annotations

from typing import Any

__all__ = ["diff_configs", "render_text"]

# Child collections of each level, and how to name an object of them for people.
CHILDREN = {
    "listeners": "listener",
    "pools": "pool",
    "members": "member",
    "l7policies": "l7policy",
    "rules": "l7rule",
}


def _label(kind: str, obj: dict[str, Any]) -> str:
    if kind == "member":
        return f"member {obj.get('address')}:{obj.get('protocol_port')}"
    if kind == "listener":
        return f"listener {obj.get('protocol')}:{obj.get('protocol_port')}"
    name = obj.get("name") or obj.get("id", "?")[:8]
    return f"{kind} {name}"


def diff_configs(
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    path: str = "",
    kind: str = "loadbalancer",
) -> list[dict[str, Any]]:
    """A list of {op: add|remove|change, path, kind, label, field?, old?, new?}."""
    if old is None and new is None:
        return []
    if old is None or new is None:
        obj = new if old is None else old
        assert obj is not None
        return [
            {
                "op": "add" if old is None else "remove",
                "path": path or "/",
                "kind": kind,
                "label": _label(kind, obj),
            }
        ]
    out: list[dict[str, Any]] = []
    label = _label(kind, new)
    for key in sorted(set(old) | set(new)):
        if key in CHILDREN:
            out += _diff_list(
                old.get(key) or [], new.get(key) or [], f"{path}/{key}", CHILDREN[key]
            )
        elif key == "healthmonitor":
            before, after = old.get(key), new.get(key)
            hm_path = f"{path}/healthmonitor"
            if before and after and before.get("id") != after.get("id"):  # replaced
                out += diff_configs(before, None, hm_path, "healthmonitor")
                out += diff_configs(None, after, hm_path, "healthmonitor")
            else:
                out += diff_configs(before, after, hm_path, "healthmonitor")
        elif old.get(key) != new.get(key):
            out.append(
                {
                    "op": "change",
                    "path": f"{path}/{key}",
                    "kind": kind,
                    "label": label,
                    "field": key,
                    "old": old.get(key),
                    "new": new.get(key),
                }
            )
    return out


def _diff_list(
    old: list[dict[str, Any]], new: list[dict[str, Any]], path: str, kind: str
) -> list[dict[str, Any]]:
    before = {o["id"]: o for o in old}
    after = {o["id"]: o for o in new}
    out: list[dict[str, Any]] = []
    for ident in sorted(set(before) | set(after)):
        out += diff_configs(before.get(ident), after.get(ident), f"{path}/{ident}", kind)
    return out


def render_text(changes: list[dict[str, Any]]) -> str:
    lines = []
    for c in changes:
        if c["op"] == "add":
            lines.append(f"+ {c['label']}")
        elif c["op"] == "remove":
            lines.append(f"- {c['label']}")
        else:
            lines.append(f"~ {c['label']}: {c['field']} {c['old']!r} -> {c['new']!r}")
    return "\n".join(lines) if lines else "(no differences)"
