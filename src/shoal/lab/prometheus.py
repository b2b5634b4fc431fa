"""A real Prometheus server (Debian's `prometheus` package) for the lab, in the controller's
namespace: it scrapes the controller (HTTPS, with the lab's scrape token) and every agent on
the management network (with the agents' own scrape token: a token of one kind never opens
the other), once a second, and keeps an hour. `query()` runs PromQL against it.

    ip netns exec <prefix>-ctl curl -s 'http://127.0.0.1:9090/api/v1/query?query=up'"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml

from shoal import netns
from shoal.errors import ShoalError

__all__ = [
    "AGENT_METRICS_PORT",
    "PROMETHEUS_PORT",
    "agent_token_file",
    "config",
    "query",
    "scrape_token_file",
]

PROMETHEUS_PORT = 9090
AGENT_METRICS_PORT = 9470  # every lab agent's --metrics-listen <management address>:9470
SCRAPE_INTERVAL = "1s"  # the lab's tests wait for rates: production uses 15-30 s


def _token_file(path: Path, prefix: str) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(prefix + secrets.token_urlsafe(24))
    return path


def scrape_token_file(directory: Path) -> Path:
    """The controller's scrape token (0600), made once."""
    return _token_file(directory / "metrics.token", "lab-scrape-")


def agent_token_file(directory: Path) -> Path:
    """The agents' scrape token (0600, every lab agent's --metrics-token-file), made once."""
    return _token_file(directory / "agent-metrics.token", "lab-agent-scrape-")


def config(
    controller: str,
    ca_file: str,
    token_file: Path,
    agents: dict[str, dict[str, Any]],
    agent_token: Path | None = None,
) -> str:
    """agents: node name -> its lab host entry (role, mgmt address)."""
    targets: dict[str, list[dict[str, Any]]] = {}
    for name, host in sorted(agents.items()):
        targets.setdefault(host["role"], []).append(
            {
                "targets": [f"{host['mgmt']}:{AGENT_METRICS_PORT}"],
                "labels": {"node": name, "role": host["role"]},
            }
        )
    doc = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "shoal-controller",
                "scheme": "https",
                "tls_config": {"ca_file": ca_file},
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [controller]}],
            },
            *(
                {
                    "job_name": f"shoal-{role}",
                    "static_configs": groups,
                    **(
                        {"authorization": {"type": "Bearer", "credentials_file": str(agent_token)}}
                        if agent_token is not None
                        else {}
                    ),
                }
                for role, groups in sorted(targets.items())
            ),
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def command(config_file: Path, data_dir: Path) -> list[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise ShoalError("the lab's Prometheus needs the Debian package prometheus: make deps")
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=1h",
        f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
    ]


def query(ns: str, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """An instant query's result vector: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
    with netns.entered(ns):
        r = httpx.get(
            f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query",
            params={"query": promql},
            timeout=timeout,
        )
    body = r.json()
    if r.status_code != 200 or body.get("status") != "success":
        raise ShoalError(f"PromQL {promql!r}: {body.get('error', r.status_code)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def ready(ns: str) -> bool:
    try:
        with netns.entered(ns):
            return httpx.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=2).is_success
    except httpx.HTTPError:
        return False
