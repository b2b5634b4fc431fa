"""`shoal lab`: the whole system inside network namespaces on one machine.

    client ── router (BIRD, BGP + BFD, ECMP) ── fabric ─┬─ L4 node a (XDP, BIRD, agent)
                                                        ├─ L4 node b ...
                                                        ├─ L7 nodes l7a1 l7a2 | l7b1 l7b2
                                                        │   (decap, HAProxy, agent; 2 clusters)
                                                        └─ backends b1..b3 (decap, VIPs on lo)
    controller ── management bridge ── the agents

Replies go from the backends (L4 load balancers) or the L7 nodes (L7 ones) to the router
and back to the client (DSR); they never cross an L4 node. Every namespace and process is
recorded in a state file, so `shoal lab down` (also run on failure and Ctrl-C) removes
exactly what `up` made; `up` is idempotent."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

import shoal
from shoal import netns, procs
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import Settings
from shoal.dataplane.decap import Decap
from shoal.dataplane.prefixes import IpNetwork
from shoal.errors import NetnsError, ShoalError
from shoal.lab import prometheus
from shoal.lab.bird import GATE_FILE, BfdTimers, node_config, router_config
from shoal.lab.topology import Topology

__all__ = ["Lab", "LabSpec", "LabState", "router_hash_sysctls"]

CLIENT_NET, FABRIC, MGMT, VIP_POOL = "10.88.0", "10.88.1", "10.88.9", "10.88.100.0/24"
ROUTER_AS, NODE_AS = 65000, 65001
CONTROLLER_PORT = 9876
POSTGRES_PORT = 5433  # inside the controller's namespace


@dataclass
class LabSpec:
    prefix: str = "shoal"
    l4_nodes: int = 2
    backends: int = 3
    root: Path = Path("/run/shoal-lab")
    bfd: BfdTimers = field(default_factory=BfdTimers)
    # Low thresholds so a SYN flood from one namespace is "well above" them.
    dataplane: dict[str, Any] = field(
        default_factory=lambda: {
            "flood": {"enter_rate": 3000, "exit_rate": 1000, "hold_down": 3.0, "window": 0.1}
        }
    )
    session_cache_size: int = 1 << 18
    pending_timeout: float = 15.0
    l7_clusters: int = 2  # 0: no L7 tier
    l7_nodes_per_cluster: int = 2
    l7_capacity: int = 50
    l7_drain_seconds: float = 5.0
    prometheus: bool = False  # a Prometheus server scraping every node (lab/prometheus.py)
    # "5-tuple": the router hashes each packet's own addresses, protocol and ports, as a real
    # one does; "socket": the kernel's policy 1, which over veth reuses the sending socket's
    # skb hash (kinder than a real router: kept only to reproduce the old figures).
    router_hash: str = "5-tuple"
    # Fate sharing beside each L4 node's BIRD (`shoal agent fate`), with a BFD hold-down: a
    # node announces its VIPs only while XDP forwards and BFD has been Up this long.
    fate_watchdog: bool = True
    bfd_hold_down: float = 2.0
    # Controller processes: 1 on SQLite; more share one PostgreSQL in the controller's
    # namespace, on ports CONTROLLER_PORT, +1, ..., and every agent is given all of them.
    controllers: int = 1

    def l7_nodes(self) -> list[tuple[str, str]]:
        """(node, cluster) of the L7 tier."""
        return [
            (f"l7{c}{i + 1}", c)
            for c in "abcdefgh"[: self.l7_clusters]
            for i in range(self.l7_nodes_per_cluster)
        ]


@dataclass
class LabState:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> pid, cmd
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    controller_url: str = f"https://127.0.0.1:{CONTROLLER_PORT}"  # from inside the ctl ns
    admin_token: str = ""
    ca_bundle: str = ""  # the internal CA that issued the controller's certificate
    vip_pool: str = VIP_POOL

    @property
    def ctl_ns(self) -> str:
        return f"{self.prefix}-ctl"


# fib_multipath_hash_fields bits: source and destination address, IP protocol, source and
# destination port (Documentation/networking/ip-sysctl.rst). Policy 3 hashes exactly these,
# dissected from the packet; policy 1 short-cuts to skb->hash when the skb carries an L4 hash,
# and a veth hands the client socket's hash (re-drawn on each SYN retransmit) to the router.
FIVE_TUPLE_FIELDS = 0x0037


def router_hash_sysctls(mode: str) -> dict[str, str | int]:
    if mode == "socket":
        return {"net__ipv4__fib_multipath_hash_policy": 1}
    if mode != "5-tuple":
        raise ShoalError(f"unknown router hash {mode!r} (5-tuple or socket)")
    return {
        "net__ipv4__fib_multipath_hash_policy": 3,
        "net__ipv4__fib_multipath_hash_fields": FIVE_TUPLE_FIELDS,
        "net__ipv6__fib_multipath_hash_policy": 3,
        "net__ipv6__fib_multipath_hash_fields": FIVE_TUPLE_FIELDS,
    }


HAPROXY_USER = "haproxy"  # what the L7 agents' HAProxy workers run as


def ensure_system_user(name: str) -> None:
    """Creates a system user and group of that name unless it exists (like Debian's haproxy
    package does), so the lab's HAProxy drops root as in production."""
    import pwd

    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    proc = subprocess.run(
        ["adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ShoalError(f"cannot create the system user {name}: {proc.stderr.strip()}")


def _alive(proc: dict[str, Any]) -> bool:
    """The process we started is still running: its pid with the start time it had then.
    Its command line is no identity: it is empty while `ip netns exec` execs the command
    (a controller the lab had just started was called gone: "did not start")."""
    return procs.alive(proc["pid"], proc.get("start"))  # None: a state file from before


def _same_code() -> dict[str, str]:
    """PYTHONPATH for a daemon the lab starts: the tree this lab's own `shoal` came from, so
    controller and agents run the code the tests run even if the virtualenv's editable
    install is pointed at another checkout meanwhile (a `make build` in a worktree sharing
    the .venv did that, in the middle of a lab run)."""
    tree = str(Path(shoal.__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": tree + (os.pathsep + rest if rest else "")}


class Lab:
    def __init__(
        self, spec: LabSpec | None = None, progress: Callable[[str], None] | None = None
    ) -> None:
        self.spec = spec or LabSpec()
        self.dir = self.spec.root / self.spec.prefix
        self.state_file = self.dir / "state.json"
        self.progress = progress or (lambda msg: None)
        self.state = LabState(self.spec.prefix)
        self.topo = Topology(self.spec.prefix, self.dir / "logs")

    # ---- state -------------------------------------------------------------------------------

    def load(self) -> LabState | None:
        if not self.state_file.exists():
            return None
        data = json.loads(self.state_file.read_text())
        known = LabState.__dataclass_fields__
        return LabState(**{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        os.replace(tmp, self.state_file)

    def healthy(self) -> bool:
        state = self.load()
        if state is None:
            return False
        procs_ok = all(_alive(p) for p in state.processes.values())
        return procs_ok and all(netns.exists(n) for n in state.namespaces)

    # ---- up / down ---------------------------------------------------------------------------

    def up(self) -> LabState:
        if self.healthy():
            state = self.load()
            assert state is not None
            self.state = state
            self.progress("lab already up")
            if self.spec.prometheus and not self.running("prometheus"):
                self.start_prometheus()
            return state
        self.down(quiet=True)
        try:
            self._build()
        except BaseException:
            self.down(quiet=True, keep_logs=True)  # the error message points at the logs
            raise
        return self.state

    def down(self, quiet: bool = False, keep_logs: bool = False) -> None:
        state = self.load() or self.state
        for proc in reversed(list(state.processes.values())):
            if _alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in state.processes.values():
            while _alive(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc["pid"], signal.SIGKILL)
        for host in state.hosts.values():
            if host.get("role") == "l7":
                self._stop_haproxy(host)
        for ns in reversed(state.namespaces):
            netns.delete(ns)
        for i in range(self.spec.l4_nodes + 4):
            Balancer.purge(f"{self.spec.prefix}-l4{chr(ord('a') + i)}")
        # Configuration, logs and the controller's database go with the lab.
        if keep_logs:
            for item in self.dir.glob("*"):
                if item.is_dir() and item.name != "logs":
                    shutil.rmtree(item, ignore_errors=True)
                elif item.is_file():
                    item.unlink()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.spec.root.rmdir()
        if not quiet:
            self.progress("lab removed")

    def _stop_haproxy(
        self, host: dict[str, Any], sig: int = signal.SIGKILL, wait: float = 5.0
    ) -> None:
        """HAProxy outlives its agent by design: the lab stops the master the agent
        started, found by its pidfile and checked by its command line, and waits (up to
        `wait` s) until it has exited: a killed proxy's sockets are closed from then on,
        so a test can tell a request it cut from one sent to a node already dead."""
        pidfile = Path(host["run_dir"]) / host["node"] / "haproxy.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().split()[0])
            if b"haproxy" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return
            started = procs.start_time(pid)
            os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while procs.alive(pid, started) and time.monotonic() < deadline:
                time.sleep(0.005)

    # ---- processes ---------------------------------------------------------------------------

    def spawn(
        self, name: str, cmd: list[str], ns: str | None, env: dict[str, str] | None = None
    ) -> int:
        """Starts a tracked background process (inside ns via ip netns exec, unless None)."""
        log_dir = self.dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        full = ["ip", "netns", "exec", ns, *cmd] if ns else cmd
        with open(log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                full,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **_same_code(), **(env or {})},
            )
        # Popen returns after the child's exec, so its start time is there (unless it has
        # already exited and been reaped: then no process has that start time, so gone).
        started = procs.start_time(proc.pid) or -1
        self.state.processes[name] = {"pid": proc.pid, "cmd": full, "start": started}
        self.save()
        return proc.pid

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 5.0) -> None:
        proc = self.state.processes.get(name)
        if proc is None or not _alive(proc):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc["pid"], sig)
        deadline = time.monotonic() + wait
        while _alive(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if sig == signal.SIGTERM and wait > 0 and _alive(proc):
            # Past its grace (a controller draining long polls): it would still hold its port
            # and files when it is started again.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while _alive(proc) and time.monotonic() < deadline:
                time.sleep(0.02)

    def running(self, name: str) -> bool:
        proc = self.state.processes.get(name)
        return proc is not None and _alive(proc)

    def _why_not_running(self, name: str, waited: float) -> str:
        """For an error: no answer from a live process, or what its pid shows now (two lab
        runs failed with a clean log and a process the lab took for gone)."""
        if self.running(name):
            return f"no answer in {waited:.0f} s"
        proc = self.state.processes.get(name)
        if proc is None:
            return "never started"
        fields = procs.stat_fields(proc["pid"])
        if fields is None:
            shown = "no such process"
        elif fields[0] in ("Z", "X"):
            shown = "exited"
        else:
            shown = f"another process (started at tick {fields[19]}, not {proc.get('start')})"
        return f"pid {proc['pid']} after {waited:.1f} s: {shown}"

    # ---- building ----------------------------------------------------------------------------

    def _host(self, name: str, **info: Any) -> None:
        self.state.hosts[name] = info

    def _vip_host_sysctls(self, ns: str) -> None:
        """A host that holds VIPs on lo (backends, L7 nodes): it must not answer ARP for
        them on its link, and accepts decapsulated packets whatever their source."""
        self.topo.sysctl(
            ns,
            net__ipv4__conf__all__arp_ignore=1,
            net__ipv4__conf__all__arp_announce=2,
            net__ipv4__conf__all__rp_filter=0,
            net__ipv4__conf__eth0__rp_filter=0,
        )

    def _build(self) -> None:
        missing = [b for b in ("bird", "birdc", "ethtool", "ip") if shutil.which(b) is None]
        if missing:
            raise ShoalError(
                f"the lab needs {', '.join(missing)} (Debian packages bird2, "
                "ethtool, iproute2): run `make deps`"
            )
        t, p = self.topo, self.spec.prefix
        self.dir.mkdir(parents=True, exist_ok=True)
        self.progress("namespaces and links")
        sw, rtr, cli, ctl = t.ns("sw"), t.ns("rtr"), t.ns("client"), t.ns("ctl")
        self.state.namespaces = list(t.namespaces)
        self.save()
        nodes = [f"l4{chr(ord('a') + i)}" for i in range(self.spec.l4_nodes)]
        backends = [f"b{i + 1}" for i in range(self.spec.backends)]
        l7_nodes = self.spec.l7_nodes()
        for name in nodes + backends + [n for n, _ in l7_nodes]:
            t.ns(name)
        self.state.namespaces = list(t.namespaces)
        self.save()

        t.link(cli, "eth0", rtr, "c0")
        t.run(cli, "ip", "addr", "add", f"{CLIENT_NET}.2/24", "dev", "eth0")
        t.run(cli, "ip", "route", "add", "default", "via", f"{CLIENT_NET}.1")
        t.run(cli, "ethtool", "-K", "eth0", "tx", "off")  # no partial checksums into tunnels
        t.run(rtr, "ip", "addr", "add", f"{CLIENT_NET}.1/24", "dev", "c0")
        self._host("client", ns=cli, ip=f"{CLIENT_NET}.2")

        fabric_ports, mgmt_ports = ["f-rtr"], ["m-ctl"]
        t.link(rtr, "f0", sw, "f-rtr")
        t.run(rtr, "ip", "addr", "add", f"{FABRIC}.1/24", "dev", "f0")
        t.sysctl(
            rtr,
            net__ipv4__ip_forward=1,
            net__ipv4__conf__all__rp_filter=0,
            net__ipv4__conf__default__rp_filter=0,
            **router_hash_sysctls(self.spec.router_hash),
        )
        t.run(rtr, "ethtool", "-K", "f0", "tx", "off")
        self._host("router", ns=rtr, ip=f"{FABRIC}.1", client_side=f"{CLIENT_NET}.1")
        t.link(ctl, "eth0", sw, "m-ctl")
        t.run(ctl, "ip", "addr", "add", f"{MGMT}.1/24", "dev", "eth0")
        self._host("controller", ns=ctl, ip=f"{MGMT}.1")

        for i, name in enumerate(nodes):
            ns = f"{p}-{name}"
            t.link(ns, "up0", sw, f"f-{name}")
            t.link(ns, "mg0", sw, f"m-{name}")
            t.run(ns, "ip", "addr", "add", f"{FABRIC}.{11 + i}/24", "dev", "up0")
            t.run(ns, "ip", "addr", "add", f"{MGMT}.{11 + i}/24", "dev", "mg0")
            t.sysctl(
                ns,
                net__ipv4__ip_forward=1,
                net__ipv4__conf__all__rp_filter=0,
                net__ipv4__conf__default__rp_filter=0,
                net__ipv4__conf__up0__rp_filter=0,
                net__ipv4__conf__all__send_redirects=0,
                net__ipv4__conf__up0__send_redirects=0,
            )
            fabric_ports.append(f"f-{name}")
            mgmt_ports.append(f"m-{name}")
            self._host(
                name,
                ns=ns,
                ip=f"{FABRIC}.{11 + i}",
                mgmt=f"{MGMT}.{11 + i}",
                mac=t.mac(ns, "up0"),
                role="l4",
                instance=f"{p}-{name}",
            )
        for i, name in enumerate(backends):
            ns = f"{p}-{name}"
            t.link(ns, "eth0", sw, f"f-{name}")
            t.run(ns, "ip", "addr", "add", f"{FABRIC}.{21 + i}/24", "dev", "eth0")
            t.run(ns, "ip", "route", "add", "default", "via", f"{FABRIC}.1")
            # Every VIP of the pool is local (AnyIP): the backend answers for whichever VIP
            # the controller allocated, straight to the client.
            t.run(ns, "ip", "route", "add", "local", VIP_POOL, "dev", "lo")
            self._vip_host_sysctls(ns)
            fabric_ports.append(f"f-{name}")
            self._host(name, ns=ns, ip=f"{FABRIC}.{21 + i}", role="backend")
        for i, (name, cluster) in enumerate(l7_nodes):
            ns = f"{p}-{name}"
            t.link(ns, "eth0", sw, f"f-{name}")
            t.link(ns, "mg0", sw, f"m-{name}")
            t.run(ns, "ip", "addr", "add", f"{FABRIC}.{31 + i}/24", "dev", "eth0")
            t.run(ns, "ip", "addr", "add", f"{MGMT}.{31 + i}/24", "dev", "mg0")
            t.run(ns, "ip", "route", "add", "default", "via", f"{FABRIC}.1")
            self._vip_host_sysctls(ns)
            fabric_ports.append(f"f-{name}")
            mgmt_ports.append(f"m-{name}")
            self._host(
                name,
                node=name,
                ns=ns,
                ip=f"{FABRIC}.{31 + i}",
                mgmt=f"{MGMT}.{31 + i}",
                role="l7",
                cluster=cluster,
                run_dir=str(self.node_dir(name) / "run"),
            )
        t.bridge(sw, "br-fab", fabric_ports)
        t.bridge(sw, "br-mgmt", mgmt_ports)
        for name in nodes:  # XDP_TX out of a node is only accepted by a peer running XDP
            t.xdp_pass(sw, f"f-{name}")
        self.save()

        self.progress("backends: decap and services")
        # Tunnels only from the L4 tier's encapsulation sources, only to the VIP pool.
        l4 = Settings.model_validate(self.spec.dataplane)
        sources: list[IpNetwork] = [l4.encap_source_v4, l4.encap_source_v6]
        # Second chance sends packets on only to the fabric (backends and L7 nodes).
        decap_peers = [f"{FABRIC}.0/24"]
        decap = Decap(local_vips=[VIP_POOL], sources=sources, peers=decap_peers)
        # L7 nodes stay silent to a SYN while their HAProxy is down (clients retry).
        decap_l7 = Decap(
            local_vips=[VIP_POOL], sources=sources, peers=decap_peers, syn_needs_listener=True
        )
        try:
            for name in backends:
                decap.attach("eth0", f"{p}-{name}")
            for name, _ in l7_nodes:
                decap_l7.attach("eth0", f"{p}-{name}")
        finally:
            decap.close()
            decap_l7.close()
        for name in backends:
            self.start_servers(name)

        self.progress("controller")
        self._start_controller()

        self.progress("router and L4 nodes: BIRD, agents")
        bird_dir = self.dir / "bird"
        bird_dir.mkdir(parents=True, exist_ok=True)
        peers = {name: self.state.hosts[name]["ip"] for name in nodes}
        (bird_dir / "router.conf").write_text(
            router_config(
                f"{FABRIC}.1", ROUTER_AS, peers, NODE_AS, self.spec.bfd, [self.state.vip_pool]
            )
        )
        self.spawn(
            "bird-router",
            ["bird", "-f", "-c", str(bird_dir / "router.conf"), "-s", str(bird_dir / "router.ctl")],
            rtr,
        )
        for name in nodes:
            self.start_speaker(name)
            self.start_fate(name)
            self.start_agent(name)
        if l7_nodes:
            self.progress("L7 nodes: HAProxy, agents")
            ensure_system_user(HAPROXY_USER)
        for name, _ in l7_nodes:
            self.start_l7_agent(name)
        for name in backends:
            for port in (80, 7):
                self.wait_tcp(f"{p}-{name}", self.state.hosts[name]["ip"], port)
        self.wait_nodes(len(nodes) + len(l7_nodes))
        self.wait_bgp(nodes)
        if self.spec.prometheus:
            self.start_prometheus()
        self.save()

    def start_prometheus(self, timeout: float = 60) -> None:
        """Prometheus in the controller's namespace, scraping the controller and every
        agent each second (docs/metrics.md)."""
        self.progress("Prometheus")
        agents = {
            name: host
            for name, host in self.state.hosts.items()
            if host.get("role") in ("l4", "l7") and host.get("mgmt")
        }
        prom_dir = self.dir / "prometheus"
        prom_dir.mkdir(parents=True, exist_ok=True)
        cfg = prom_dir / "prometheus.yml"
        cfg.write_text(
            prometheus.config(
                f"127.0.0.1:{CONTROLLER_PORT}",
                self.state.ca_bundle,
                prometheus.scrape_token_file(self.dir),
                agents,
                prometheus.agent_token_file(self.dir),
            )
        )
        self.spawn("prometheus", prometheus.command(cfg, prom_dir / "data"), self.state.ctl_ns)
        deadline = time.monotonic() + timeout
        while not prometheus.ready(self.state.ctl_ns):
            if time.monotonic() > deadline or not self.running("prometheus"):
                raise ShoalError(f"Prometheus did not start: see {self.dir / 'logs'}")
            time.sleep(0.2)

    def promql(self, query: str) -> list[dict[str, Any]]:
        """Runs an instant PromQL query against the lab's Prometheus."""
        return prometheus.query(self.state.ctl_ns, query)

    def start_servers(self, name: str) -> None:
        """A backend's HTTP (80) and echo (7) servers."""
        for kind, port in (("http", 80), ("echo", 7)):
            self.spawn(
                f"{kind}-{name}",
                [
                    sys.executable,
                    "-m",
                    "shoal.lab.servers",
                    kind,
                    "--name",
                    name,
                    "--port",
                    str(port),
                ],
                self.state.hosts[name]["ns"],
            )

    def fail_backend(self, name: str) -> None:
        """A backend failure: its servers killed (their connections end with them)."""
        for kind in ("http", "echo"):
            self.stop(f"{kind}-{name}", signal.SIGKILL)

    def node_dir(self, name: str) -> Path:
        return self.dir / "nodes" / name

    def start_speaker(self, name: str) -> None:
        host = self.state.hosts[name]
        node_dir = self.node_dir(name)
        node_dir.mkdir(parents=True, exist_ok=True)
        for family in (4, 6):
            vips = node_dir / f"vips{family}.conf"
            if not vips.exists():
                vips.write_text("")
        gate = node_dir / GATE_FILE
        if not gate.exists():
            gate.write_text("disabled no;\n")
        (node_dir / "bird.conf").write_text(
            node_config(host["ip"], NODE_AS, f"{FABRIC}.1", ROUTER_AS, str(node_dir), self.spec.bfd)
        )
        self.spawn(
            f"bird-{name}",
            ["bird", "-f", "-c", str(node_dir / "bird.conf"), "-s", str(node_dir / "bird.ctl")],
            host["ns"],
        )

    def start_fate(self, name: str) -> None:
        """The fate-sharing watchdog beside the node's BIRD: independent of the agent."""
        if not self.spec.fate_watchdog:
            return
        host, node_dir = self.state.hosts[name], self.node_dir(name)
        self.spawn(
            f"fate-{name}",
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "agent",
                "fate",
                "--interface",
                "up0",
                "--netns",
                host["ns"],
                "--bird-socket",
                str(node_dir / "bird.ctl"),
                "--gate-file",
                str(node_dir / GATE_FILE),
                "--bfd-hold-down",
                str(self.spec.bfd_hold_down),
            ],
            None,
        )

    def node_processes(self, name: str) -> list[str]:
        """The processes of an L4 node, in the order a hang stops them."""
        return [
            p
            for p in (f"agent-{name}", f"fate-{name}", f"bird-{name}")
            if p in self.state.processes
        ]

    def freeze_node(self, name: str) -> None:
        """A hung node: its agent, watchdog and BIRD stop at once (SIGSTOP)."""
        for proc in self.node_processes(name):
            self.stop(proc, signal.SIGSTOP, wait=0)

    def resume_node(self, name: str) -> None:
        for proc in reversed(self.node_processes(name)):
            self.stop(proc, signal.SIGCONT, wait=0)

    def credential_file(self, name: str, role: str, **enrolled: str) -> Path:
        """The node's own credential (enrolled once, kept 0600 in its directory)."""
        path = self.node_dir(name) / "credential"
        if not path.exists():
            body = {"enrollment": {"name": name, "role": role, **enrolled}}
            secret = self.api("POST", "/v2/shoal/enrollments", body)["enrollment"]["credential"]
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret)
        return path

    def controller_names(self) -> list[str]:
        """The lab's controller processes: controller, controller2, ..."""
        return ["controller"] + [f"controller{i + 1}" for i in range(1, self.spec.controllers)]

    def _controller_for_agents(self) -> list[str]:
        urls = ",".join(
            f"https://{MGMT}.1:{CONTROLLER_PORT + i}" for i in range(self.spec.controllers)
        )
        return ["--controller", urls, "--ca-bundle", self.state.ca_bundle]

    def start_agent(self, name: str) -> None:
        host = self.state.hosts[name]
        node_dir = self.node_dir(name)
        credential = self.credential_file(name, "l4", cluster="lab", address=host["ip"])
        agent_cfg = node_dir / "agent.yaml"
        agent_cfg.write_text(
            yaml.safe_dump(
                {
                    "instance": host["instance"],
                    "session_cache_size": self.spec.session_cache_size,
                    "max_vips": 256,
                    "max_backends": 4096,
                    "dataplane": self.spec.dataplane,
                    "poll_wait": 20.0,
                }
            )
        )
        self.spawn(
            f"agent-{name}",
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "agent",
                "l4",
                "--name",
                name,
                "--interface",
                "up0",
                "--netns",
                host["ns"],
                "--cluster",
                "lab",
                *self._controller_for_agents(),
                "--credential-file",
                str(credential),
                "--config",
                str(agent_cfg),
                "--bird-socket",
                str(node_dir / "bird.ctl"),
                "--bird-include-dir",
                str(node_dir),
                "--state-dir",
                str(node_dir),
                "--address",
                host["ip"],
                "--serve-prefix",
                self.state.vip_pool,
                "--metrics-listen",
                f"{host['mgmt']}:{prometheus.AGENT_METRICS_PORT}",
                "--metrics-token-file",
                str(prometheus.agent_token_file(self.dir)),
            ],
            None,
        )

    def start_l7_agent(self, name: str) -> None:
        host = self.state.hosts[name]
        node_dir = self.node_dir(name)
        node_dir.mkdir(parents=True, exist_ok=True)
        credential = self.credential_file(
            name, "l7", cluster=host["cluster"], data_address=host["ip"]
        )
        self.spawn(
            f"agent-{name}",
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "agent",
                "l7",
                "--name",
                name,
                "--cluster",
                host["cluster"],
                "--data-address",
                host["ip"],
                "--capacity",
                str(self.spec.l7_capacity),
                "--netns",
                host["ns"],
                *self._controller_for_agents(),
                "--credential-file",
                str(credential),
                "--run-dir",
                host["run_dir"],
                "--state-dir",
                str(node_dir),
                "--metrics-listen",
                f"{host['mgmt']}:{prometheus.AGENT_METRICS_PORT}",
                "--metrics-token-file",
                str(prometheus.agent_token_file(self.dir)),
            ],
            None,
        )

    def fail_l7_node(self, name: str) -> None:
        """A hard failure: agent and HAProxy killed at once; returns once both have exited."""
        self.stop(f"agent-{name}", signal.SIGKILL)
        self._stop_haproxy(self.state.hosts[name])

    def _database_url(self) -> str:
        if self.spec.controllers == 1:
            return f"sqlite:///{self.dir / 'controller.db'}"
        return f"postgresql+psycopg://postgres@127.0.0.1:{POSTGRES_PORT}/shoal"

    def _start_postgres(self) -> None:
        """One PostgreSQL for several controllers, in the controller's namespace (its data
        goes with the lab)."""
        from shoal.lab.postgres import create_database, init_cluster, server_command

        base = self.dir / "pg"
        data = base / "data"
        fresh = not data.exists()
        if fresh:
            init_cluster(base)
        self.spawn("postgres", server_command(data, POSTGRES_PORT), self.state.ctl_ns)
        started = time.monotonic()
        while not self._postgres_ready():
            waited = time.monotonic() - started
            if waited > 60 or not self.running("postgres"):
                raise ShoalError(
                    f"PostgreSQL did not start: {self._why_not_running('postgres', waited)} "
                    f"(see {self.dir}/logs/postgres.log)"
                )
            time.sleep(0.2)
        if fresh:
            with netns.entered(self.state.ctl_ns):
                create_database(POSTGRES_PORT, "shoal")

    def _postgres_ready(self) -> bool:
        with netns.entered(self.state.ctl_ns), socket.socket() as s:
            return s.connect_ex(("127.0.0.1", POSTGRES_PORT)) == 0

    def _start_controller(self, names: list[str] | None = None) -> None:
        if not self.state.admin_token:
            self.state.admin_token = "lab-admin-" + secrets.token_urlsafe(16)
        tls_dir = self.dir / "tls"
        base = {
            "database_url": self._database_url(),
            "state_dir": str(self.dir),
            "key_dir": str(self.dir / "keys"),  # gone with the lab (docs/security.md)
        }
        if self.spec.controllers > 1 and not self.running("postgres"):
            self._start_postgres()
        if not (tls_dir / "controller.crt").exists():
            # HTTPS with a certificate from the internal CA, for both ways agents and the
            # lab reach it: the management address and loopback inside its namespace.
            from shoal.controller.servercert import issue_server_files
            from shoal.controller.settings import load_settings

            with netns.entered(self.state.ctl_ns):  # where PostgreSQL listens, if used
                issue_server_files(
                    load_settings(None, **base),
                    tls_dir,
                    ["localhost"],
                    [f"{MGMT}.1", "127.0.0.1"],
                )
        self.state.ca_bundle = str(tls_dir / "ca.pem")
        # One after the other: the first migrates the database.
        for i, name in enumerate(self.controller_names()):
            if names is not None and name not in names:
                continue
            cfg = self.dir / f"{name}.yaml"
            cfg.write_text(
                yaml.safe_dump(
                    {
                        **base,
                        "listen": f"0.0.0.0:{CONTROLLER_PORT + i}",
                        "tls_cert": str(tls_dir / "controller.crt"),
                        "tls_key": str(tls_dir / "controller.key"),
                        "vip_pools": [{"name": "lab", "cidr": self.state.vip_pool}],
                        "pending_timeout": self.spec.pending_timeout,
                        "node_dead_after": 10.0,
                        "l7_drain_seconds": self.spec.l7_drain_seconds,
                        "cluster_seed": f"lab-{self.spec.prefix}",
                        "bootstrap_token": self.state.admin_token,
                        "metrics_token_file": str(prometheus.scrape_token_file(self.dir)),
                    }
                )
            )
            serve = [sys.executable, "-m", "shoal.cli.main", "controller", "serve"]
            self.spawn(name, [*serve, "--config", str(cfg)], self.state.ctl_ns)
            self.wait_controller(name=name)
        self.save()

    def start_controller(self, name: str = "controller") -> None:
        """Starts a controller again (after stop(name)), on the same database."""
        self._start_controller([name])

    def controller_url(self, name: str = "controller") -> str:
        """A controller's URL from inside the controller's namespace."""
        return f"https://127.0.0.1:{CONTROLLER_PORT + self.controller_names().index(name)}"

    # ---- talking to the lab ------------------------------------------------------------------

    @contextlib.contextmanager
    def api_client(self, controller: str = "controller") -> Iterator[httpx.Client]:
        """An HTTP client inside the controller's namespace, with the admin token."""
        with (
            netns.entered(self.state.ctl_ns),
            httpx.Client(
                base_url=self.controller_url(controller),
                headers={"X-Auth-Token": self.state.admin_token},
                timeout=30,
                verify=self._verify(),
            ) as client,
        ):
            yield client

    def _verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.state.ca_bundle)

    def api(self, method: str, path: str, body: Any = None, controller: str = "controller") -> Any:
        with self.api_client(controller) as c:
            r = c.request(method, path, json=body)
        if r.status_code >= 400:
            raise ShoalError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    def wait_lb(self, lb_id: str, timeout: float = 30) -> str:
        """The load balancer's provisioning status once it is ACTIVE or ERROR (or the last
        one seen when timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            lb = self.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}")["loadbalancer"]
            status = str(lb["provisioning_status"])
            if status in ("ACTIVE", "ERROR") or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def wait_controller(self, timeout: float = 120, name: str = "controller") -> None:
        """Until its health check answers. The bound is wide: a controller that imports and
        migrates at `nice 10` on two cores busy with other work took more than 30 s."""
        started = time.monotonic()
        while True:
            try:
                with netns.entered(self.state.ctl_ns):
                    url = f"{self.controller_url(name)}/healthcheck"
                    if httpx.get(url, timeout=1, verify=self._verify()).status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            waited = time.monotonic() - started
            if waited > timeout or not self.running(name):
                raise ShoalError(
                    f"the controller did not start: {self._why_not_running(name, waited)} "
                    f"(see {self.dir}/logs/{name}.log)"
                )
            time.sleep(0.1)

    def wait_nodes(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.api("GET", "/v2/shoal/nodes")["nodes"]
            if sum(1 for n in nodes if n["operating_status"] == "ONLINE") >= count:
                return
            if time.monotonic() > deadline:
                raise ShoalError(
                    f"only {len(nodes)} of {count} agents registered (see "
                    f"{self.dir}/logs/agent-*.log)"
                )
            time.sleep(0.2)

    def bgp_sessions(self) -> dict[str, str]:
        """The router's BGP sessions: node name -> state (Established when up)."""
        out = netns.run(
            ["birdc", "-s", str(self.dir / "bird" / "router.ctl"), "show", "protocols"],
            f"{self.spec.prefix}-rtr",
            check=False,
        ).stdout
        states = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "BGP":
                states[parts[0]] = parts[-1]
        return states

    def wait_bgp(self, nodes: list[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.bgp_sessions()
            if all(states.get(n) == "Established" for n in nodes):
                return
            if time.monotonic() > deadline:
                raise ShoalError(f"BGP sessions not established: {states}")
            time.sleep(0.1)

    def bfd_sessions(self) -> dict[str, str]:
        """The router's BFD sessions: peer address -> state (Up when up)."""
        out = netns.run(
            ["birdc", "-s", str(self.dir / "bird" / "router.ctl"), "show", "bfd", "sessions"],
            f"{self.spec.prefix}-rtr",
            check=False,
        ).stdout
        states = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0].startswith(f"{FABRIC}."):
                states[parts[0]] = parts[2]
        return states

    def wait_stable(
        self, vip: str, nodes: list[str], quiet: float = 1.5, timeout: float = 30
    ) -> float:
        """Seconds until the router has, for `quiet` seconds without a change, a BGP session
        Established and a BFD session Up with each of `nodes` and the VIP spread over exactly
        them: a settled router, not merely its first route."""
        want = sorted(self.state.hosts[n]["ip"] for n in nodes)
        start = time.monotonic()
        good_since: float | None = None
        while True:
            now = time.monotonic()
            bgp, bfd = self.bgp_sessions(), self.bfd_sessions()
            ok = (
                all(bgp.get(n) == "Established" for n in nodes)
                and all(bfd.get(self.state.hosts[n]["ip"]) == "Up" for n in nodes)
                and self.ecmp_nexthops(vip) == want
            )
            if not ok:
                good_since = None
            elif good_since is None:
                good_since = now
            elif now - good_since >= quiet:
                return now - start
            if now - start > timeout:
                # A node that never announces: is its agent still there to do it?
                agents = {
                    n: self.running(f"agent-{n}") or self._why_not_running(f"agent-{n}", 0)
                    for n in nodes
                }
                raise ShoalError(
                    f"router not settled on {want} for {vip}: BGP {bgp}, BFD {bfd}, "
                    f"ECMP {self.ecmp_nexthops(vip)}, agents running {agents}"
                )
            time.sleep(0.1)

    def wait_tcp(self, ns: str, host: str, port: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with netns.entered(ns):
                try:
                    socket.create_connection((host, port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise NetnsError(f"nothing listens on {host}:{port} in {ns}")
            time.sleep(0.05)

    def ecmp_nexthops(self, vip: str) -> list[str]:
        """The L4 nodes the router currently spreads a VIP over."""
        out = netns.run(
            ["ip", "-j", "route", "show", f"{vip}/32"], f"{self.spec.prefix}-rtr"
        ).stdout
        routes = json.loads(out or "[]")
        hops: list[str] = []
        for route in routes:
            if "nexthops" in route:
                hops += [h["gateway"] for h in route["nexthops"]]
            elif "gateway" in route:
                hops.append(route["gateway"])
        return sorted(hops)

    def status(self) -> dict[str, Any]:
        state = self.load()
        if state is None:
            return {"up": False, "prefix": self.spec.prefix}
        self.state = state
        processes = {
            name: {"pid": p["pid"], "running": _alive(p)} for name, p in state.processes.items()
        }
        out: dict[str, Any] = {
            "up": self.healthy(),
            "prefix": state.prefix,
            "namespaces": state.namespaces,
            "hosts": state.hosts,
            "processes": processes,
            "controller": {
                "namespace": state.ctl_ns,
                "url": state.controller_url,
                "admin_token": state.admin_token,
                "ca_bundle": state.ca_bundle,
            },
            "vip_pool": state.vip_pool,
        }
        with contextlib.suppress(ShoalError, httpx.HTTPError, OSError):
            out["nodes"] = self.api("GET", "/v2/shoal/nodes")["nodes"]
            lbs = self.api("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
            out["vips"] = [
                {
                    "load_balancer": lb["id"],
                    "name": lb["name"],
                    "vip": lb["vip_address"],
                    "status": lb["provisioning_status"],
                    "ecmp": self.ecmp_nexthops(lb["vip_address"]),
                }
                for lb in lbs
            ]
        return out
