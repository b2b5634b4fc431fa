"""The demo behind `make demo`: a one-node L4 lab with real traffic through a VIP."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from types import FrameType

from rich.console import Console
from rich.table import Table

from shoal import netns
from shoal.lab.l4mini import CLIENT4, VIP4, L4MiniLab
from shoal.lab.traffic import http_requests

__all__ = ["run_demo"]


def _distribution(console: Console, title: str, counts: Counter[str], lab: L4MiniLab) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("backend", "address", "requests", "share"):
        table.add_column(col, justify="right" if col in ("requests", "share") else "left")
    total = sum(counts.values()) or 1
    for host in lab.backend_hosts:
        n = counts.get(host.name, 0)
        table.add_row(host.name, host.ip4, str(n), f"{100 * n / total:.1f}%")
    console.print(table)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(requests: int = 300, wait: bool | None = None) -> None:
    console = Console()
    signal.signal(signal.SIGTERM, _sigterm)
    wait = sys.stdin.isatty() if wait is None else wait
    lab = L4MiniLab(prefix=f"shoal-demo{os.getpid() % 10000}")
    try:
        with console.status("building the lab: client, L4 node (XDP), 3 backends (tc decap)"):
            lab.up()
        console.print(f"[green]lab up[/green]: namespaces {', '.join(lab.topo.namespaces)}")
        assert lab.lb is not None
        lab.lb.apply(lab.config())
        console.print(
            f"VIP {VIP4}:80 (HTTP) and :7 (echo) -> " + ", ".join(h.ip4 for h in lab.backend_hosts)
        )

        client = lab.hosts["client"]
        with (
            console.status(f"{requests} HTTP requests from the client, one connection each"),
            netns.entered(client.ns),
        ):
            result = http_requests(VIP4, requests, deadline=120)
        console.print(f"{result.ok} ok, {result.failed} failed in {result.seconds:.1f} s")
        _distribution(console, "Requests per backend (Maglev)", result.by_backend, lab)

        flow = lab.lb.trace(CLIENT4, 45678, VIP4, 80, "tcp")
        console.print(
            f"trace of tcp {CLIENT4}:45678 -> {VIP4}:80: {flow.via} -> {flow.backend}"
            + (f" (slot {flow.slot} of {flow.table_size})" if flow.slot is not None else "")
        )

        drained = lab.backend_hosts[0]
        backends: list[dict[str, object]] = [
            {"address": h.ip4, "weight": 0 if h is drained else 1} for h in lab.backend_hosts
        ]
        lab.lb.apply(lab.config(backends))
        with (
            console.status(f"draining {drained.name}: {requests // 2} more requests"),
            netns.entered(client.ns),
        ):
            after = http_requests(VIP4, requests // 2, deadline=120)
        _distribution(console, f"After draining {drained.name} (weight 0)", after.by_backend, lab)

        counters = {k: v for k, v in lab.lb.counters().items() if v}
        table = Table(title="XDP counters", title_justify="left")
        table.add_column("counter")
        table.add_column("value", justify="right")
        for k, v in counters.items():
            table.add_row(k, str(v))
        console.print(table)
        console.print(
            "replies went from the backends straight to the client (DSR); "
            "the L4 node only saw client -> VIP packets"
        )
        if wait:
            console.print(
                "[bold]lab is up; press Ctrl-C to tear it down[/bold] "
                f"(try: ip netns exec {client.ns} curl http://{VIP4}/)"
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        with console.status("tearing down"):
            lab.close()
        console.print("lab removed")
