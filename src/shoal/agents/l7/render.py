"""Renders a node's HAProxy configuration and its certificate files."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from shoal.agents.l7.model import BuildCache, NodeConfig, build

__all__ = ["CHROOT_DIR", "Rendered", "fitting_maxconn", "render", "tls_files"]

CHROOT_DIR = "empty"  # under the run directory: where HAProxy's workers are chrooted

TEMPLATES = Path(__file__).parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=False,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def fitting_maxconn(wanted: int, listeners: int = 0, servers: int = 0) -> int:
    """HAProxy needs two descriptors per connection, one per listener and some for checks,
    and refuses to start (or to reload: "Cannot raise FD limit", the old worker keeps
    serving) when the hard limit cannot cover them all: what the limit allows, at most
    `wanted`. Two descriptors are kept per listener and per server, whatever it uses."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    reserve = 200 + 2 * (listeners + servers)
    allowed = wanted if hard == resource.RLIM_INFINITY else (hard - reserve) // 2
    return max(256, min(wanted, allowed))


def tls_files(
    crt_lists: dict[str, list[str]], certificates: dict[str, str], crt_dir: str
) -> dict[str, str]:
    """The PEM bundles and crt-lists the TLS listeners read from crt_dir, by file name."""
    files: dict[str, str] = {}
    for listener_id, names in crt_lists.items():
        if not names:
            continue
        lines = []
        for name in names:
            if name in certificates:
                files[f"{name}.pem"] = certificates[name]
                lines.append(f"{crt_dir}/{name}.pem")
        files[f"{listener_id}.crtlist"] = "\n".join(lines) + "\n"
    return files


@dataclass
class Rendered:
    config: str
    model: NodeConfig
    files: dict[str, str]  # file name in crt_dir -> content (PEM bundles, crt-lists)


def render(
    node: str,
    lbs: list[dict[str, Any]],
    certificates: dict[str, str],
    *,
    run_dir: str,
    crt_dir: str,
    monitor_address: str,
    monitor_port: int = 8404,
    maxconn: int = 100000,
    hard_stop_after: str = "60s",
    user: str | None = "haproxy",
    group: str | None = None,
    chroot: str | None = None,
    cache: BuildCache | None = None,
) -> Rendered:
    """certificates: id -> PEM bundle (certificate, chain, key) as the controller sends it.

    Workers run as `user`/`group` (group defaults to user) chrooted to `chroot` (default
    <run_dir>/empty). They read the configuration and the certificate files before they drop
    privileges, so those stay root-only. user None: workers keep root (not recommended).
    cache: see model.build."""
    model = build(lbs, crt_dir, cache)
    files = tls_files(model.crt_lists, certificates, crt_dir)
    config = _env.get_template("haproxy.cfg.j2").render(
        node=node,
        config=model,
        run_dir=run_dir,
        monitor_address=monitor_address,
        monitor_port=monitor_port,
        maxconn=maxconn,
        hard_stop_after=hard_stop_after,
        user=user,
        group=group or user,
        chroot=chroot or f"{run_dir}/{CHROOT_DIR}",
    )
    return Rendered(config, model, files)
