"""What one /metrics scrape costs the L4 agent: CPU seconds to collect every family (per VIP
and per backend counters, table digests, the data plane's counters, flood mode) with N load
balancers applied (one VIP each), on a real data plane (BPF maps loaded unpinned and never
attached: no traffic) or on in-memory maps. The session occupancy count is left out (it is
taken at most every 30 s, whatever N).

`python -m shoal.bench.scrapecost [N] [MEMBERS] [fake]` prints the first scrape and the
median of the next ones."""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from shoal.agents.l4.metrics import L4Collector
from shoal.bench.applycost import desired_state, offline_agent
from shoal.dataplane.balancer import Balancer

__all__ = ["ScrapeCost", "measure"]


@dataclass(frozen=True)
class ScrapeCost:
    load_balancers: int
    members: int
    kernel: bool
    first_s: float  # CPU seconds of the first scrape
    scrape_s: float  # the median of the next ones
    samples: int  # metric samples one scrape yields
    text_s: float  # a kept-label scrape with the text exposition Prometheus reads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scrape(collector: L4Collector) -> tuple[float, int]:
    start = time.process_time()
    samples = sum(len(family.samples) for family in collector.collect())
    return time.process_time() - start, samples


def measure(n: int = 1000, members: int = 10, kernel: bool = True, repeat: int = 5) -> ScrapeCost:
    max_vips, max_backends = max(64, n), max(1024, n * members)
    with contextlib.ExitStack() as stack:
        if kernel:
            lb = stack.enter_context(
                Balancer.load(
                    pin=False,
                    session_cache_size=4096,
                    max_vips=max_vips,
                    max_backends=max_backends,
                )
            )
        else:
            lb = Balancer.fake(max_vips=max_vips, max_backends=max_backends)
        agent = stack.enter_context(offline_agent(lb))
        agent.apply(desired_state(n, members))
        collector = L4Collector(agent, occupancy_every=1e9)
        collector._occupancy = (time.monotonic(), 0)  # not part of a scrape's cost
        first, samples = _scrape(collector)
        rest = [_scrape(collector)[0] for _ in range(repeat)]
        registry = CollectorRegistry()
        registry.register(collector)
        start = time.process_time()
        generate_latest(registry)
        text = time.process_time() - start
    return ScrapeCost(n, members, kernel, first, statistics.median(rest), samples, text)


if __name__ == "__main__":
    n, members = ([int(a) for a in sys.argv[1:3]] + [1000, 10])[:2]
    print(measure(n, members, kernel="fake" not in sys.argv[3:]).as_dict())
