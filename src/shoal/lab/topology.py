"""Building blocks of labs: namespaces, veth links, bridges, sysctls and processes, every one
recorded so close() removes exactly what this lab made (also on failure and Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from shoal import netns
from shoal.dataplane import loader
from shoal.errors import NetnsError

__all__ = ["Topology"]


class Topology:
    def __init__(self, prefix: str, log_dir: Path | None = None) -> None:
        self.prefix = prefix
        self.namespaces: list[str] = []
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.log_dir = log_dir or Path(f"/tmp/{prefix}-logs")

    def ns(self, role: str) -> str:
        """Creates namespace <prefix>-<role> (replacing a leftover of the same name)."""
        name = f"{self.prefix}-{role}"
        netns.delete(name)
        netns.add(name)
        self.namespaces.append(name)
        # No duplicate address detection: link-local addresses would stay tentative for a
        # second after each link comes up, and neighbour discovery would wait for them.
        self.sysctl(
            name, net__ipv6__conf__all__accept_dad=0, net__ipv6__conf__default__accept_dad=0
        )
        return name

    def run(self, ns: str | None, *cmd: str) -> str:
        return netns.run(list(cmd), ns).stdout

    def link(self, ns_a: str, if_a: str, ns_b: str, if_b: str, *, mac_a: str | None = None) -> None:
        """A veth pair, one end in each namespace, both up."""
        cmd = ["ip", "link", "add", if_a, "netns", ns_a]
        if mac_a:
            cmd += ["address", mac_a]
        netns.run([*cmd, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        self.run(ns_a, "ip", "link", "set", if_a, "up")
        self.run(ns_b, "ip", "link", "set", if_b, "up")

    def bridge(self, ns: str, name: str, ports: Sequence[str]) -> None:
        self.run(ns, "ip", "link", "add", name, "type", "bridge")
        self.run(ns, "ip", "link", "set", name, "up")
        for port in ports:
            self.run(ns, "ip", "link", "set", port, "master", name)

    def sysctl(self, ns: str, **values: str | int) -> None:
        for key, value in values.items():
            self.run(ns, "sysctl", "-qw", f"{key.replace('__', '.')}={value}")

    def xdp_pass(self, ns: str, ifname: str) -> None:
        """Attaches an XDP_PASS program: a veth only accepts frames sent with XDP_TX or
        XDP_REDIRECT from its peer when it runs XDP itself (GRO alone was not enough behind a
        bridge on this kernel)."""
        with loader.BpfObject(loader.bpf_object_path("trivial"), None) as obj, netns.entered(ns):
            loader.attach_xdp(netns.ifindex(ifname), obj.prog_fd("shoal_trivial"), "native")

    def mac(self, ns: str, ifname: str) -> str:
        return self.run(ns, "cat", f"/sys/class/net/{ifname}/address").strip()

    def spawn(self, ns: str, name: str, cmd: Sequence[str]) -> subprocess.Popen[bytes]:
        """Starts a long-running process inside ns; its output goes to <log_dir>/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def python(self, ns: str, name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        return self.spawn(ns, name, [sys.executable, "-m", module, *args])

    def wait_tcp(self, ns: str, host: str, port: int, timeout: float = 60.0) -> None:
        """Waits until something accepts TCP on host:port, seen from inside ns. Generous: it
        returns as soon as it connects, and fails at once when the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            with netns.entered(ns):
                try:
                    socket.create_connection((host, port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise NetnsError(f"nothing listens on {host}:{port} in {ns} after {timeout}s")
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise NetnsError(
                        f"process {name} exited with {proc.returncode} "
                        f"(see {self.log_dir / (name + '.log')})"
                    )
            time.sleep(0.05)

    def stop_processes(self) -> None:
        """Stops what this lab started, by process group (ip netns exec forks the target)."""
        for _, proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=3)
        self.procs.clear()

    def close(self) -> None:
        self.stop_processes()
        for name in reversed(self.namespaces):
            netns.delete(name)
        self.namespaces.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
