"""`shoal bench scale`: what one member change costs as the region grows.

Per size N: a throwaway PostgreSQL, two controller processes on it (the tenants' API on one,
the agents' feeds and reports on the other, as behind an operator's HTTP balancer; CPU is
their sum), N L4 load balancers with M members
each created through the API (load balancer, listener, pool, then the members in one batch
call: the fewest calls Octavia's API allows), then two L4 agents with real XDP data planes
started on that (bench.fleet). Measured, per size:

- first full sync: agent process started -> every sampled load balancer applied on it;
- sequential member changes (a weight 0/1 toggle, a drain): API call returned -> the load
  balancer ACTIVE again, which the controller derives from every L4 node having reported the
  revision applied (p50, p99), with each process's CPU time and the bytes each agent received
  over the phase, divided by the changes;
- map memory per node (the fdinfo memlock of the pinned maps);
- a churn run: changes at a fixed rate on load balancers not already pending, and the lag
  (returned -> applied everywhere) of each.

Only what an operator sees is used (the API, provisioning status, per-node applied flags,
bytes on the wire, /proc), so the harness does not depend on the feed's format."""

from __future__ import annotations

import contextlib
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shoal.bench.fleet import Fleet, fleet, map_memory, start_agent
from shoal.errors import ShoalError
from shoal.lab.postgres import throwaway_postgres

__all__ = [
    "FULL",
    "QUICK",
    "ScalePlan",
    "SizeResult",
    "percentile",
    "run",
    "run_size",
]

Progress = Callable[[str, float], None]
PENDING = "PENDING_UPDATE"
SYNC_SAMPLES = 8
APPLY_TIMEOUT = 600.0  # one change not applied after this: the run is broken, not slow
# The same node plan at every size (a production L4 node: 10,000 VIPs, 100,000 backends), so
# map memory grows only with what is held. Default session cache of the agent (1 Mi flows).
AGENT_CFG: dict[str, Any] = {"max_vips": 12_288, "max_backends": 131_072, "poll_wait": 25.0}


@dataclass(frozen=True)
class ScalePlan:
    sizes: tuple[int, ...]
    members: int = 10
    changes: int = 20  # sequential member changes per size
    churn_rate: float = 20.0  # changes/s
    churn_seconds: float = 60.0
    churn_size: int | None = None  # the size that gets the churn run (default: the largest)
    agents: int = 2
    create_threads: int = 4
    # Controller processes on the one PostgreSQL: the tenants' API on one, the agents on the
    # other (fleet.Fleet). One process's Python runs on one core at a time.
    controllers: int = 2


FULL = ScalePlan((100, 1000, 10_000))
# --quick (and the CI gate, once per side): 90-210 s a run on 2 cores, mostly fixed costs
# (PostgreSQL, controller and agents started twice).
QUICK = ScalePlan((10, 100), changes=6, churn_rate=8.0, churn_seconds=4.0)


@dataclass
class SizeResult:
    load_balancers: int
    members: int
    create_s: float  # creating them through the API
    api_calls: int
    first_sync_s: float  # slowest node: agent started -> all sampled load balancers applied
    changes: int
    apply_p50_ms: float  # member API call returned -> applied on every L4 node
    apply_p99_ms: float
    agent_cpu_ms_per_change: float  # mean over the nodes, idle CPU subtracted
    controller_cpu_ms_per_change: float  # idle CPU and the watcher's polls subtracted
    bytes_per_change: float  # received by one agent (mean over the nodes)
    map_bytes_per_node: int
    churn: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] = field(default_factory=list)
    settle_s: float = 0.0  # first sync done -> every process idle (settle())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- creating load balancers ------------------------------------------------------------


@dataclass(frozen=True)
class LbRef:
    lb_id: str
    pool_id: str


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise ShoalError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r.json() if r.content else {}


def member_address(i: int, j: int) -> str:
    """Distinct for 16,384 load balancers x 250 members; outside the VIP range."""
    return f"10.{128 + ((i >> 8) & 63)}.{i & 255}.{j + 1}"


def _create_one(c: httpx.Client, i: int, members: int) -> LbRef:
    lb = _ok(
        c.post(
            "/v2/lbaas/loadbalancers",
            json={"loadbalancer": {"name": f"scale-{i}", "flavor_id": "l4"}},
        )
    )["loadbalancer"]
    listener = {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}
    li = _ok(c.post("/v2/lbaas/listeners", json={"listener": listener}))["listener"]
    spec = {"listener_id": li["id"], "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}
    pool = _ok(c.post("/v2/lbaas/pools", json={"pool": spec}))["pool"]
    batch = [{"address": member_address(i, j), "protocol_port": 80} for j in range(members)]
    _ok(c.put(f"/v2/lbaas/pools/{pool['id']}/members", json={"members": batch}))
    return LbRef(lb["id"], pool["id"])


def populate(fl: Fleet, n: int, members: int, threads: int, progress: Progress) -> list[LbRef]:
    """N load balancers through the API, `threads` clients at once (a tenant's automation)."""
    done = [0]
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(i: int) -> LbRef:
        if not hasattr(local, "c"):
            local.c = fl.admin()
            with lock:
                clients.append(local.c)
        ref = _create_one(local.c, i, members)
        with lock:
            done[0] += 1
            if done[0] % 20 == 0 or done[0] == n:
                progress(f"creating load balancers ({done[0]}/{n})", done[0] / n)
        return ref

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for c in clients:
            c.close()


# ---- watching for applied ---------------------------------------------------------------


class PendingWatch:
    """Polls the load balancers pending an update (one list call, paged) and stamps each
    tracked one when it leaves that list: ACTIVE again once every L4 node reported it applied
    (or ERROR, counted separately)."""

    def __init__(self, client: httpx.Client, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.polls = 0
        self._lock = threading.Lock()
        self._waiting: dict[str, float] = {}  # lb id -> when its write returned
        self.lags: list[tuple[str, float, float]] = []  # (lb id, returned, applied)
        self._applied = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pending-watch", daemon=True)
        self._thread.start()

    def track(self, lb_id: str, returned: float) -> None:
        with self._lock:
            self._waiting[lb_id] = returned

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._waiting)

    def wait(self, lb_id: str, timeout: float) -> float | None:
        """ms from returned to applied, or None after timeout."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while lb_id in self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._applied.wait(left)
            for lid, returned, applied in reversed(self.lags):
                if lid == lb_id:
                    return (applied - returned) * 1000
        return None

    def wait_all(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._applied:
            while self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._applied.wait(left)
        return True

    def _pending_ids(self) -> set[str] | None:
        out: set[str] = set()
        marker: str | None = None
        while True:
            params: dict[str, Any] = {"provisioning_status": PENDING, "fields": "id"}
            if marker:
                params["marker"] = marker
            r = self.client.get("/v2/lbaas/loadbalancers", params=params)
            self.polls += 1
            if r.status_code != 200:
                return None
            page = [lb["id"] for lb in r.json()["loadbalancers"]]
            out.update(page)
            if len(page) < 1000:
                return out
            marker = page[-1]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                idle = not self._waiting
            if idle:
                self._stop.wait(self.interval)
                continue
            with contextlib.suppress(httpx.HTTPError):
                began = time.perf_counter()
                pending = self._pending_ids()
                if pending is not None:
                    self.mark_applied(pending, began, time.perf_counter())
            self._stop.wait(self.interval)

    def mark_applied(self, pending: set[str], began: float, now: float) -> None:
        """Marks applied (at now) what a listing begun at `began` no longer shows pending.
        Only a write that returned before the listing began counts: a listing begun
        earlier may predate the write's commit, and would call a pending change applied."""
        with self._applied:
            for lb_id in [k for k in self._waiting if k not in pending]:
                returned = self._waiting[lb_id]
                if began > returned:
                    del self._waiting[lb_id]
                    self.lags.append((lb_id, returned, now))
            self._applied.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ---- member changes ---------------------------------------------------------------------


class Changer:
    """Toggles one member's weight (0 = drained, 1) of a chosen load balancer per change."""

    def __init__(self, client: httpx.Client, refs: list[LbRef], seed: int = 11) -> None:
        self.client = client
        self.refs = refs
        self.rng = random.Random(seed)
        self._members: dict[str, str] = {}  # pool id -> the member it toggles
        self._weight: dict[str, int] = {}
        self.conflicts = 0

    def prepare(self, refs: list[LbRef]) -> None:
        """Looks the toggled members up beforehand, outside the measured phases."""
        for ref in refs:
            if ref.pool_id not in self._members:
                doc = _ok(self.client.get(f"/v2/lbaas/pools/{ref.pool_id}/members"))
                self._members[ref.pool_id] = doc["members"][0]["id"]

    def pick(self, avoid: set[str]) -> LbRef | None:
        """A load balancer not in avoid, or None when (nearly) all are."""
        for _ in range(1000):
            ref = self.rng.choice(self.refs)
            if ref.lb_id not in avoid:
                return ref
        return None

    def change(self, ref: LbRef) -> float | None:
        """The member update; perf_counter() when it returned, None on 409 (busy)."""
        member = self._members[ref.pool_id]
        weight = 1 - self._weight.get(ref.pool_id, 1)
        r = self.client.put(
            f"/v2/lbaas/pools/{ref.pool_id}/members/{member}",
            json={"member": {"weight": weight}},
        )
        returned = time.perf_counter()
        if r.status_code == 409:
            self.conflicts += 1
            return None
        _ok(r)
        self._weight[ref.pool_id] = weight
        return returned


# ---- phases -----------------------------------------------------------------------------


def _node_applied(c: httpx.Client, lb_id: str) -> set[str]:
    doc = _ok(c.get(f"/v2/shoal/loadbalancers/{lb_id}/nodes"))
    return {n["name"] for n in doc["nodes"] if n["role"] == "l4" and n["applied"]}


def first_sync(
    fl: Fleet, refs: list[LbRef], progress: Progress, timeout: float
) -> dict[str, float]:
    """Starts every agent; seconds from each one's start to all samples applied on it."""
    rng = random.Random(5)
    samples = [refs[0], refs[-1], *rng.sample(refs, min(SYNC_SAMPLES, len(refs)))]
    for node in fl.nodes:
        start_agent(fl, node, AGENT_CFG)
    synced: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    with fl.admin() as c:
        while len(synced) < len(fl.nodes):
            if time.monotonic() > deadline:
                raise ShoalError(
                    f"first sync not done after {timeout:.0f} s (synced: {sorted(synced)}; "
                    f"see {fl.dir}/*.log)"
                )
            for node in fl.nodes:
                if not Path(f"/proc/{node.pid}").exists():
                    raise ShoalError(f"agent {node.name} exited: {node.log.read_text()[-800:]}")
            now = time.monotonic()
            applied = set.intersection(*(_node_applied(c, r.lb_id) for r in samples))
            for node in fl.nodes:
                if node.name in applied and node.name not in synced:
                    synced[node.name] = now - node.started
            progress(f"first sync ({len(synced)}/{len(fl.nodes)} nodes)", 0.0)
            time.sleep(0.2)
    return synced


SETTLED_CPU = 0.15  # CPU seconds per second below which a process counts as idle


def settle(
    fl: Fleet,
    progress: Progress,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Waits until every process has been idle for two 1 s windows in a row; the seconds it
    took. After the first sync the agents still send their whole reports (10,000 digest rows
    at 10,000 load balancers, about a second of controller CPU) and the first traffic
    reports: the idle rates and the changes measured during that would count the start-up."""
    began = clock()
    cpus: list[Callable[[], float]] = [n.cpu for n in fl.nodes] + [fl.controller_cpu]
    quiet = 0
    while quiet < 2:
        before = [cpu() for cpu in cpus]
        sleep(1.0)
        busy = max(cpu() - b for cpu, b in zip(cpus, before, strict=True))
        quiet = quiet + 1 if busy < SETTLED_CPU else 0
        waited = clock() - began
        progress(f"settling after the first sync ({waited:.0f} s, busiest {busy:.2f} s/s)", 0.0)
        if waited > timeout:
            raise ShoalError(f"the fleet is still busy {timeout:.0f} s after the first sync")
    return clock() - began


def _poll_cost(fl: Fleet, watch: PendingWatch, polls: int = 40) -> float:
    """Controller CPU seconds of one watcher poll, nothing pending."""
    before = fl.controller_cpu()
    for _ in range(polls):
        watch._pending_ids()
    return (fl.controller_cpu() - before) / polls


@dataclass
class Costs:
    agent_cpu: dict[str, float]
    controller_cpu: float
    bytes_down: dict[str, int]
    polls: int
    at: float  # time.perf_counter()

    @staticmethod
    def now(fl: Fleet, watch: PendingWatch) -> Costs:
        return Costs(
            {n.name: n.cpu() for n in fl.nodes},
            fl.controller_cpu(),
            {n.name: n.bytes_down() for n in fl.nodes},
            watch.polls,
            time.perf_counter(),
        )


def idle_rates(fl: Fleet, watch: PendingWatch, seconds: float = 4.0) -> Costs:
    """CPU seconds per second (and bytes per second) of each process with nothing changing:
    the controller's once-a-second tick, the agents' side loops. Subtracted from a phase, so
    that what is left is what the changes cost."""
    a = Costs.now(fl, watch)
    time.sleep(seconds)
    b = Costs.now(fl, watch)
    dt = b.at - a.at
    return Costs(
        {k: (b.agent_cpu[k] - a.agent_cpu[k]) / dt for k in a.agent_cpu},
        (b.controller_cpu - a.controller_cpu) / dt,
        {k: int((b.bytes_down[k] - a.bytes_down[k]) / dt) for k in a.bytes_down},
        0,
        dt,
    )


def sequential_changes(
    fl: Fleet, changer: Changer, watch: PendingWatch, count: int, progress: Progress
) -> tuple[list[float], Costs, Costs]:
    before = Costs.now(fl, watch)
    lags: list[float] = []
    for i in range(count):
        ref = changer.pick(watch.pending())
        if ref is None:
            raise ShoalError("every load balancer is pending: the agents do not keep up")
        returned = changer.change(ref)
        if returned is None:
            continue
        watch.track(ref.lb_id, returned)
        ms = watch.wait(ref.lb_id, APPLY_TIMEOUT)
        if ms is None:
            raise ShoalError(f"change {i + 1} not applied after {APPLY_TIMEOUT:.0f} s")
        lags.append(ms)
        progress(f"member changes ({i + 1}/{count}, last {ms:.0f} ms)", (i + 1) / count)
    return lags, before, Costs.now(fl, watch)


CHURN_WRITERS = 8  # concurrent API clients: a write slower than 1/rate must not slow the rate


def churn(
    changer: Changer, watch: PendingWatch, rate: float, seconds: float, progress: Progress
) -> dict[str, Any]:
    """Open loop: one change due every 1/rate s, each on a load balancer neither pending nor
    being written, sent by one of CHURN_WRITERS clients; then waits for the backlog (at most
    max(60 s, 2 x seconds)). Those still pending count with their lag so far (a lower
    bound). A change more than a second late is skipped and counted (writer_missed): the
    writers, not the agents, could not keep the rate."""
    lags_from = len(watch.lags)
    start = time.perf_counter()
    total = int(rate * seconds)
    lock = threading.Lock()
    in_flight: set[str] = set()
    returned_at: dict[str, float] = {}
    counts = {"sent": 0, "missed": 0}

    def write(ref: LbRef) -> None:
        try:
            returned = changer.change(ref)
            if returned is not None:
                watch.track(ref.lb_id, returned)
                with lock:
                    returned_at[ref.lb_id] = returned
        finally:
            with lock:
                in_flight.discard(ref.lb_id)

    with ThreadPoolExecutor(CHURN_WRITERS) as pool:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                busy = len(in_flight) >= CHURN_WRITERS
                ref = None if busy else changer.pick(watch.pending() | in_flight)
                if ref is not None:
                    in_flight.add(ref.lb_id)
            # Late, every writer busy, or every load balancer pending: skipped, counted.
            if delay < -1.0 or ref is None:
                if ref is not None:
                    with lock:
                        in_flight.discard(ref.lb_id)
                counts["missed"] += 1
                continue
            pool.submit(write, ref)
            counts["sent"] += 1
            if i % 10 == 0:
                progress(
                    f"churn {rate:g}/s: {i}/{total} due, {len(watch.pending())} pending",
                    i / total,
                )
    wrote_s = time.perf_counter() - start
    drained = watch.wait_all(max(60.0, 2 * seconds))
    stuck_at = time.perf_counter()
    lags = [(a - r) * 1000 for _, r, a in watch.lags[lags_from:]]
    stuck = watch.pending()
    lags += [(stuck_at - returned_at.get(lb_id, stuck_at)) * 1000 for lb_id in stuck]
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "changes": len(lags),
        "achieved_per_s": round(len(lags) / wrote_s, 2) if wrote_s else 0.0,
        "writes_s": round(wrote_s, 2),
        "writer_missed": counts["missed"],
        "conflicts_409": changer.conflicts,
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": max(lags, default=float("nan")),
        "drained": drained,
        "still_pending": len(stuck),
    }


def run_size(n: int, plan: ScalePlan, progress: Progress, with_churn: bool) -> SizeResult:
    with (
        tempfile.TemporaryDirectory(prefix="shoal-scale-") as tmp,
        throwaway_postgres("shoal_scale") as db_url,
        fleet(db_url, Path(tmp), plan.agents, plan.controllers) as fl,
        fl.admin() as c,
    ):
        progress(f"N={n}: creating load balancers", 0.0)
        t0 = time.perf_counter()
        refs = populate(fl, n, plan.members, plan.create_threads, progress)
        create_s = time.perf_counter() - t0
        synced = first_sync(fl, refs, lambda w, f: progress(f"N={n}: {w}", f), APPLY_TIMEOUT)
        settle_s = settle(fl, lambda w, f: progress(f"N={n}: {w}", f), APPLY_TIMEOUT)
        changer = Changer(c, refs)
        rng = random.Random(3)
        changer.refs = rng.sample(refs, min(len(refs), max(50, plan.changes * 3)))
        changer.prepare(changer.refs)
        watch = PendingWatch(fl.admin(), interval=0.01)
        try:
            progress(f"N={n}: idle CPU of each process", 0.0)
            idle = idle_rates(fl, watch)
            per_poll = _poll_cost(fl, watch)
            lags, before, after = sequential_changes(
                fl, changer, watch, plan.changes, lambda w, f: progress(f"N={n}: {w}", f)
            )
            k = max(1, len(lags))
            dt = after.at - before.at
            agent_ms = statistics.mean(
                (after.agent_cpu[x] - before.agent_cpu[x] - idle.agent_cpu[x] * dt) * 1000 / k
                for x in after.agent_cpu
            )
            polls = after.polls - before.polls
            ctl_s = after.controller_cpu - before.controller_cpu
            ctl_ms = (ctl_s - polls * per_poll - idle.controller_cpu * dt) * 1000 / k
            nbytes = statistics.mean(
                (after.bytes_down[x] - before.bytes_down[x]) / k for x in after.bytes_down
            )
            memory = {node.name: map_memory(node.instance) for node in fl.nodes}
            churned = None
            if with_churn:
                watch.interval = 0.025
                changer.refs = refs
                changer.rng = random.Random(17)
                changer.conflicts = 0
                changer.prepare(refs)  # not timed: one GET per pool, before the run
                churned = churn(
                    changer, watch, plan.churn_rate, plan.churn_seconds,
                    lambda w, f: progress(f"N={n}: {w}", f),
                )  # fmt: skip
        finally:
            watch.close()
            watch.client.close()
        nodes = [
            {"name": node.name, "first_sync_s": round(synced[node.name], 2),
             "map_bytes": memory[node.name],
             "idle_cpu_ms_per_s": round(idle.agent_cpu[node.name] * 1000, 2)}
            for node in fl.nodes
        ]  # fmt: skip
        nodes.append({"name": "controller",
                      "idle_cpu_ms_per_s": round(idle.controller_cpu * 1000, 2),
                      "poll_cpu_ms": round(per_poll * 1000, 2)})  # fmt: skip
        return SizeResult(
            load_balancers=n,
            members=plan.members,
            create_s=round(create_s, 2),
            api_calls=4 * n,
            first_sync_s=max(synced.values()),
            changes=len(lags),
            apply_p50_ms=percentile(lags, 0.5),
            apply_p99_ms=percentile(lags, 0.99),
            agent_cpu_ms_per_change=max(0.0, agent_ms),
            controller_cpu_ms_per_change=max(0.0, ctl_ms),
            bytes_per_change=nbytes,
            map_bytes_per_node=max(memory.values()),
            churn=churned,
            nodes=nodes,
            settle_s=round(settle_s, 2),
        )


def run(plan: ScalePlan, progress: Progress | None = None) -> list[SizeResult]:
    """Every size of the plan, smallest first, each on a fleet of its own; the churn run at
    plan.churn_size (default: the largest)."""
    report = progress or (lambda what, fraction: None)
    churn_at = plan.churn_size or max(plan.sizes)
    out = []
    sizes = sorted(plan.sizes)
    weights = [s / sum(sizes) for s in sizes]  # the time goes where the load balancers are
    done = 0.0
    for n, w in zip(sizes, weights, strict=True):

        def sub(what: str, fraction: float, base: float = done, w: float = w) -> None:
            report(what, min(1.0, base + w * fraction))

        out.append(run_size(n, plan, sub, with_churn=n == churn_at))
        done += w
    return out


# ---- figures for `shoal bench all` ------------------------------------------------------

# (field of SizeResult, metric stem, unit, gated as a growth ratio)
FIGURES: list[tuple[str, str, str, bool]] = [
    ("apply_p50_ms", "apply_p50", "ms", False),
    ("apply_p99_ms", "apply_p99", "ms", False),
    ("agent_cpu_ms_per_change", "agent_cpu_per_change", "ms", True),
    ("controller_cpu_ms_per_change", "controller_cpu_per_change", "ms", False),
    ("bytes_per_change", "bytes_per_change", "bytes", True),
    ("map_bytes_per_node", "map_bytes_per_node", "bytes", False),
    ("first_sync_s", "first_sync", "s", False),
]


def figures(result: SizeResult) -> dict[str, float]:
    """Each figure of one size by its stem, the churn lag p99 included when it ran."""
    out = {stem: float(getattr(result, attr)) for attr, stem, _, _ in FIGURES}
    if result.churn is not None:
        out["churn_lag_p99"] = float(result.churn["lag_p99_ms"])
    return out


def growth(results: list[SizeResult]) -> dict[str, float]:
    """Per figure: its value at the largest size / at the smallest (1 = does not grow)."""
    small, large = (
        min(results, key=lambda r: r.load_balancers),
        max(results, key=lambda r: r.load_balancers),
    )
    a, b = figures(small), figures(large)
    return {k: (b[k] / a[k] if a[k] else float("nan")) for k in a if k in b}
