"""What one member update costs the controller with N L4 load balancers of M members in the
database and two registered L4 nodes following the feed, in process: the API call (PUT
/v2/lbaas/pools/P/members/M, the route the CLI and Octavia clients use), then each node's
feed answer and its delta report after it. Per step: wall ms, controller CPU ms (the
process's: the database server is another process) and SQL statements, medians of ROUNDS.

The changed load balancers' rows are real (one built through the API, the other N-1 cloned
from it row by row, ids and addresses replaced, so quotas, address checks and status see
N trees). PostgreSQL by default (a throwaway server, as the tests start), or --sqlite.
It uses only routes and modules that existed before it, so the same file measures an older
tree: `PYTHONPATH=<tree>/src python src/shoal/bench/membercost.py 10000 --rounds 21`."""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MemberCost", "StatementCounter", "measure"]

ADMIN = "bench-admin-secret"
# floor: GET / (no database, no auth): what any request costs here, the in-process client
# and the app's middleware, part of every other step's figure.
_STEPS = ("write", "feed", "report", "floor")


@dataclass
class Step:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "wall_ms": round(statistics.median(self.wall_ms), 2),
            "cpu_ms": round(statistics.median(self.cpu_ms), 2),
            "statements": statistics.median(self.statements),
        }


@dataclass
class MemberCost:
    load_balancers: int
    members: int
    rounds: int
    database: str
    steps: dict[str, dict[str, float]]  # write; feed and report (both nodes summed); floor

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StatementCounter(contextlib.AbstractContextManager["StatementCounter"]):
    """Counts the statements the engine sends for the requests, not those of the app's
    once-a-second background tick (idle work, which the scale bench subtracts too). Inside
    its `with` only: the listener and the tick's wrapper go at exit."""

    def __init__(self, engine: Any) -> None:
        self.n = 0
        self.log: list[str] | None = None
        self._engine = engine
        self._tick = threading.local()
        self._original: Callable[[Any], None] | None = None

    def __enter__(self) -> StatementCounter:
        from sqlalchemy import event

        from shoal.controller import app

        event.listen(self._engine, "before_cursor_execute", self._count)
        original = self._original = app.background_tick

        def tick(state: Any) -> None:
            self._tick.on = True
            try:
                original(state)
            finally:
                self._tick.on = False

        app.background_tick = tick
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        from shoal.controller import app

        event.remove(self._engine, "before_cursor_execute", self._count)
        if self._original is not None:
            app.background_tick = self._original  # type: ignore[assignment]

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if getattr(self._tick, "on", False):
            return
        self.n += 1
        if self.log is not None:
            self.log.append(" ".join(statement.split())[:160])

    def during(self, call: Callable[[], object]) -> int:
        """How many statements call() sends."""
        before = self.n
        call()
        return self.n - before


def _ok(r: Any) -> Any:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
    return r.json() if r.content else None


def _timed(step: Step, counter: StatementCounter, call: Callable[[], Any]) -> Any:
    n, cpu, wall = counter.n, time.process_time(), time.perf_counter()
    out = call()
    step.wall_ms.append((time.perf_counter() - wall) * 1000)
    step.cpu_ms.append((time.process_time() - cpu) * 1000)
    step.statements.append(counter.n - n)
    return out


def _template(c: Any, h: dict[str, str], members: int) -> tuple[str, str]:
    """One load balancer through the API: a TCP listener, a pool, `members` members."""
    lb = _ok(
        c.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"flavor_id": "l4"}}, headers=h)
    )["loadbalancer"]
    li = {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}
    li_id = _ok(c.post("/v2/lbaas/listeners", json={"listener": li}, headers=h))["listener"]["id"]
    pool = {"listener_id": li_id, "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}
    pool_id = _ok(c.post("/v2/lbaas/pools", json={"pool": pool}, headers=h))["pool"]["id"]
    body = {
        "members": [
            {"address": f"10.1.{j // 250}.{j % 250 + 1}", "protocol_port": 80}
            for j in range(members)
        ]
    }
    _ok(c.put(f"/v2/lbaas/pools/{pool_id}/members", json=body, headers=h))
    return lb["id"], pool_id


def _clone(db: Any, template_id: str, n: int) -> None:
    """n copies of the template's rows (load balancer, listeners, pools, members, health
    monitors, revisions), every id and the VIP replaced, inserted in bulk."""
    from sqlalchemy import insert, select

    from shoal.controller.db import models as m

    with db.write() as session:
        lb = dict(
            session.execute(
                select(m.LoadBalancer.__table__).where(m.LoadBalancer.id == template_id)
            )
            .mappings()
            .one()
        )
        lis = [
            dict(r)
            for r in session.execute(
                select(m.Listener.__table__).where(m.Listener.load_balancer_id == template_id)
            ).mappings()
        ]
        pools = [
            dict(r)
            for r in session.execute(
                select(m.Pool.__table__).where(m.Pool.load_balancer_id == template_id)
            ).mappings()
        ]
        pool_ids = [p["id"] for p in pools]
        mems = [
            dict(r)
            for r in session.execute(
                select(m.Member.__table__).where(m.Member.pool_id.in_(pool_ids))
            ).mappings()
        ]
        hms = [
            dict(r)
            for r in session.execute(
                select(m.HealthMonitor.__table__).where(m.HealthMonitor.pool_id.in_(pool_ids))
            ).mappings()
        ]
        revs = [
            dict(r)
            for r in session.execute(
                select(m.Revision.__table__).where(m.Revision.load_balancer_id == template_id)
            ).mappings()
        ]
        ids = [lb["id"]] + [r["id"] for r in lis + pools + mems + hms]
        pattern = re.compile("|".join(map(re.escape, [*ids, lb["vip_address"]])))
        tables: dict[Any, list[dict[str, Any]]] = {
            m.LoadBalancer.__table__: [],
            m.Listener.__table__: [],
            m.Pool.__table__: [],
            m.Member.__table__: [],
            m.HealthMonitor.__table__: [],
            m.Revision.__table__: [],
        }
        for i in range(n):
            new = {old: str(uuid.uuid4()) for old in ids}
            new[lb["vip_address"]] = f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"

            def swap(value: Any, new: dict[str, str] = new) -> Any:
                if isinstance(value, str):
                    return pattern.sub(lambda x: new[x.group(0)], value)
                return value

            for table, rows in (
                (m.LoadBalancer.__table__, [lb]),
                (m.Listener.__table__, lis),
                (m.Pool.__table__, pools),
                (m.Member.__table__, mems),
                (m.HealthMonitor.__table__, hms),
            ):
                tables[table].extend({k: swap(v) for k, v in r.items()} for r in rows)
            tables[m.LoadBalancer.__table__][-1]["provisioning_status"] = "ACTIVE"
            for r in revs:
                row = {k: swap(v) for k, v in r.items() if k != "id"}
                tables[m.Revision.__table__].append(row)
        # listeners name their default pool: insert them without it, then set it
        defaults = [(r["id"], r.pop("default_pool_id", None)) for r in tables[m.Listener.__table__]]
        for table, rows in tables.items():
            for k in range(0, len(rows), 5000):
                if rows[k : k + 5000]:
                    session.execute(insert(table), rows[k : k + 5000])
        from sqlalchemy import bindparam, update

        listeners = m.Base.metadata.tables["listeners"]
        pairs = [{"lid": i, "pid": p} for i, p in defaults if p]
        if pairs:
            session.execute(
                update(listeners)
                .where(listeners.c.id == bindparam("lid"))
                .values(default_pool_id=bindparam("pid")),
                pairs,
            )
    # A region's database has planner statistics (autovacuum's ANALYZE); a bulk load has
    # none, and without them PostgreSQL reads the report's unsettled load balancers with a
    # scan of the whole table (4.7 ms at 10,000) instead of their partial index (0.06 ms).
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


class _Node:
    """An L4 agent's side of the protocol: feed from its position, delta reports."""

    def __init__(self, c: Any, admin: dict[str, str], name: str) -> None:
        enrol = {"enrollment": {"name": name, "role": "l4"}}
        cred = _ok(c.post("/v2/shoal/enrollments", json=enrol, headers=admin))
        self.c, self.h = c, {"X-Auth-Token": cred["enrollment"]["credential"]}
        reg = {"name": name, "role": "l4"}
        self.id = _ok(c.post("/v2/shoal/nodes", json=reg, headers=self.h))["node"]["id"]
        self.base = f"/v2/shoal/nodes/{self.id}"
        self.position, self.report_no = 0, 0
        self.digests: dict[str, Any] = {}

    def follow(self) -> None:
        """Fetches from its position until the feed has no more (a snapshot comes in
        batches of feed_batch)."""
        self.changed: list[str] = []
        more = True
        while more:
            params = {"position": self.position}
            answer = _ok(self.c.get(f"{self.base}/feed", params=params, headers=self.h))
            self.position = answer["seq"]
            self.changed += [lb["id"] for lb in answer.get("load_balancers") or []]
            more = bool(answer.get("more"))

    def report(self, whole_ids: list[str] | None = None) -> None:
        self.report_no += 1
        body: dict[str, Any] = {"seq": self.position, "report": self.report_no}
        if whole_ids is not None:
            self.digests = {i: {"tcp://vip:80": "00"} for i in whole_ids}
            body["digests"] = self.digests
        else:
            body["base"] = self.report_no - 1
            body["digests"] = {i: {"tcp://vip:80": f"{self.report_no:x}"} for i in self.changed}
        _ok(self.c.post(f"{self.base}/report", json=body, headers=self.h))


@contextlib.contextmanager
def _profiled(out: str | None) -> Iterator[list[cProfile.Profile]]:
    """Profiles every call the app runs in its thread pool (its sync routes and the feed's
    work: cProfile sees only the thread that enables it)."""
    profiles: list[cProfile.Profile] = []
    if out is None:
        yield profiles
        return
    import anyio.to_thread

    original = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def wrapped(*a: Any) -> Any:
            prof = cProfile.Profile()
            prof.enable()
            try:
                return func(*a)
            finally:
                prof.disable()
                profiles.append(prof)

        return await original(wrapped, *args, **kwargs)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    try:
        yield profiles
    finally:
        anyio.to_thread.run_sync = original
        if profiles:
            stats = pstats.Stats(profiles[0])
            for prof in profiles[1:]:
                stats.add(prof)
            stats.dump_stats(out)
            stats.sort_stats("cumulative").print_stats(60)


@contextlib.contextmanager
def _database(sqlite: bool) -> Iterator[str]:
    if sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'c.db'}"
    else:
        from shoal.lab.postgres import throwaway_postgres

        with throwaway_postgres("shoal_membercost") as url:
            yield url


def measure(
    n: int = 1000,
    members: int = 10,
    rounds: int = 21,
    *,
    sqlite: bool = False,
    profile: str | None = None,
    echo: bool = False,
) -> MemberCost:
    from fastapi.testclient import TestClient

    from shoal.controller.app import create_app
    from shoal.controller.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp, _database(sqlite) as url:
        # The feed watcher's own poll of the head (a backstop for lost NOTIFYs) at its
        # slowest, so that its statements stay out of the steps' counts.
        settings = load_settings(
            database_url=url, state_dir=tmp, bootstrap_token=ADMIN, feed_poll_interval=10
        )
        with TestClient(create_app(settings), base_url="https://bench") as c:
            admin = {"X-Auth-Token": ADMIN}
            state = c.app.state.shoal  # type: ignore[attr-defined]
            with contextlib.ExitStack() as profiling:
                counter = profiling.enter_context(StatementCounter(state.db.engine))
                lb_id, pool_id = _template(c, admin, members)
                _clone(state.db, lb_id, n - 1)
                nodes = [_Node(c, admin, f"bench-l4-{k}") for k in (1, 2)]
                for node in nodes:  # the first sync: a snapshot, then a whole report
                    node.follow()
                    node.report(node.changed)
                listed = _ok(c.get(f"/v2/lbaas/pools/{pool_id}/members", headers=admin))["members"]
                steps = {s: Step() for s in _STEPS}
                profiles = profiling.enter_context(_profiled(profile))
                for r in range(rounds):
                    target = listed[r % len(listed)]["id"]
                    path = f"/v2/lbaas/pools/{pool_id}/members/{target}"
                    body = {"member": {"weight": 1 + r % 2}}
                    if echo and r == rounds - 1:
                        counter.log = []
                    if profile and r == rounds // 2:  # the second half: warm
                        profiles.clear()

                    def write(path: str = path, body: dict[str, Any] = body) -> Any:
                        return _ok(c.put(path, json=body, headers=admin))

                    _timed(steps["write"], counter, write)
                    feed, rep = Step(), Step()
                    for node in nodes:
                        _timed(feed, counter, node.follow)
                        _timed(rep, counter, node.report)
                    _timed(steps["floor"], counter, lambda: _ok(c.get("/")))
                    for name, part in (("feed", feed), ("report", rep)):
                        steps[name].wall_ms.append(sum(part.wall_ms))
                        steps[name].cpu_ms.append(sum(part.cpu_ms))
                        steps[name].statements.append(sum(part.statements))
                    status = _ok(c.get(f"/v2/lbaas/loadbalancers/{lb_id}", headers=admin))
                    if status["loadbalancer"]["provisioning_status"] != "ACTIVE":
                        raise RuntimeError(f"not ACTIVE after both reports: {status}")
                if counter.log is not None:
                    print("\n".join(counter.log), file=sys.stderr)
    return MemberCost(
        n,
        members,
        rounds,
        "sqlite" if sqlite else "postgresql",
        {name: s.summary() for name, s in steps.items()},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="?", default="100,1000,10000")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", help="cProfile output file (the last size's rounds)")
    parser.add_argument("--echo", action="store_true", help="print the last round's SQL")
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        cost = measure(
            size,
            args.members,
            args.rounds,
            sqlite=args.sqlite,
            profile=args.profile,
            echo=args.echo,
        )
        print(json.dumps(cost.as_dict()), flush=True)


if __name__ == "__main__":
    main()
