"""`shoal agent l4|l7|fate`: run a node's agent. Its credential (from `shoal node enroll`) comes
from a file only root can read (--credential-file) or $SHOAL_NODE_CREDENTIAL, never from the
command line, where every user of the machine could read it in the process list."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
import yaml

from shoal.cli.common import fail, handle_errors, require_root

app = typer.Typer(help="Node agents.", no_args_is_help=True)


@app.callback()
def agents() -> None:
    """Node agents (a group, so that `shoal agent l4` keeps its name as more roles come)."""


def _enter_netns(name: str) -> None:
    """The whole process joins the node's network namespace before it starts any thread, so
    every thread (health checks, API calls, BIRD control) runs there. The mount namespace stays
    the host's: pinned maps in /sys/fs/bpf survive the agent (unlike under `ip netns exec`)."""
    import ctypes

    from shoal.netns import CLONE_NEWNET, NETNS_DIR

    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            fail(f"cannot enter network namespace {name}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


CredentialFile = Annotated[
    Path | None,
    typer.Option(
        envvar="SHOAL_NODE_CREDENTIAL_FILE",
        help="file (mode 0600) holding this node's credential (else $SHOAL_NODE_CREDENTIAL)",
    ),
]
CaBundle = Annotated[
    Path | None,
    typer.Option(envvar="SHOAL_CA_BUNDLE", help="CA certificates the controller's is checked with"),
]
MetricsListen = Annotated[
    str | None,
    typer.Option(
        envvar="SHOAL_AGENT_METRICS_LISTEN",
        help="HOST:PORT to serve Prometheus /metrics on (default: off); off loopback it "
        "needs --metrics-token-file (or --metrics-insecure)",
    ),
]
MetricsTokenFile = Annotated[
    Path | None,
    typer.Option(
        envvar="SHOAL_AGENT_METRICS_TOKEN_FILE",
        help="file (mode 0600) holding the token scrapers must send (Authorization: Bearer)",
    ),
]
MetricsInsecure = Annotated[
    bool,
    typer.Option(
        "--metrics-insecure",
        help="serve /metrics off loopback without a token (a network only the scrapers reach)",
    ),
]
ControllerUrl = Annotated[
    str,
    typer.Option(
        envvar="SHOAL_URL", help="controller URL; several, comma-separated, are tried in turn"
    ),
]
LogFormat = Annotated[str, typer.Option(help="text, or json (one object per line)")]
InsecureHttp = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        help="allow a plain http:// controller URL off loopback (trusted network)",
    ),
]


def _urls(controller: str) -> list[str]:
    """One controller URL, or several separated by commas (the agent fails over)."""
    urls = [u.strip() for u in controller.split(",") if u.strip()]
    if not urls:
        raise typer.BadParameter("give at least one controller URL", param_hint="--controller")
    return urls


def _metrics_token(listen: str | None, path: Path | None, insecure: bool) -> str | None:
    """The scrape token, checked before the agent starts anything (a refused exposure is one
    line, not a half-started node)."""
    from shoal.agents.metrics import check_exposure
    from shoal.transport import read_secret_file

    token = read_secret_file(path, "metrics token") if path is not None else None
    if listen:
        check_exposure(listen, token, insecure)
    return token


def _credential(path: Path | None) -> str:
    from shoal.transport import read_secret_file

    if path is not None:
        return read_secret_file(path)
    secret = os.environ.get("SHOAL_NODE_CREDENTIAL", "").strip()
    if not secret:
        fail(
            "this node's credential is needed: --credential-file (mode 0600) or "
            "$SHOAL_NODE_CREDENTIAL (an admin makes it with `shoal node enroll`)"
        )
    return secret


def _start(
    what: str, name: str, log_level: str, netns: str | None, log_format: str = "text"
) -> None:
    """What every agent checks and sets up before it imports anything heavy."""
    from shoal.logs import setup_logging

    require_root(what)
    if log_format not in ("text", "json"):
        fail(f"--log-format takes text or json, not {log_format!r}")
    setup_logging(log_level, "json" if log_format == "json" else "text", name=name)
    if netns:
        _enter_netns(netns)


def _serve_prefixes(prefixes: list[str] | None, any_prefix: bool) -> list[str] | None:
    """The operator says which VIP prefixes the node announces, or says "any" out loud."""
    from shoal.addresses import network_refusal, parse_network

    if any_prefix:
        return None
    if not prefixes:
        fail(
            "say which VIP prefixes this node serves: --serve-prefix PREFIX (repeatable, or "
            "serve_prefixes: in --config), or --serve-any-prefix"
        )
        return None
    for text in prefixes:
        try:
            refusal = network_refusal(parse_network(text))
        except ValueError as exc:
            refusal = str(exc)
        if refusal:
            fail(f"--serve-prefix {text}: {refusal}")
    return list(prefixes)


@app.command("l4")
@handle_errors
def l4(
    name: Annotated[str, typer.Option(help="node name (unique)")],
    interface: Annotated[str, typer.Option(help="uplink to attach XDP to")],
    controller: ControllerUrl = "http://127.0.0.1:9876",
    credential_file: CredentialFile = None,
    ca_bundle: CaBundle = None,
    insecure_http: InsecureHttp = False,
    cluster: Annotated[str, typer.Option(help="cluster name")] = "default",
    netns_name: Annotated[
        str | None, typer.Option("--netns", help="run inside this network namespace")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML: data plane settings (dataplane:) and sizes")
    ] = None,
    bird_socket: Annotated[
        Path | None, typer.Option(help="BIRD control socket: announce VIPs through this BIRD")
    ] = None,
    bird_include_dir: Annotated[
        Path | None, typer.Option(help="where the VIP include files go")
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="agent state")] = Path("/var/lib/shoal/agent"),
    address: Annotated[str | None, typer.Option(help="node address (shown to operators)")] = None,
    serve_prefix: Annotated[
        list[str] | None,
        typer.Option(
            help="a VIP prefix this node serves (repeat it); VIPs outside are neither "
            "programmed nor announced"
        ),
    ] = None,
    serve_any_prefix: Annotated[
        bool, typer.Option(help="serve any VIP the controller sends (no prefix check)")
    ] = False,
    metrics_listen: MetricsListen = None,
    metrics_token_file: MetricsTokenFile = None,
    metrics_insecure: MetricsInsecure = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    log_format: LogFormat = "text",
) -> None:
    """Program this node's XDP data plane from the controller and announce its VIPs."""
    token = _credential(credential_file)
    metrics_token = _metrics_token(metrics_listen, metrics_token_file, metrics_insecure)
    _start("the L4 agent", name, log_level, netns_name, log_format)
    extra: dict[str, Any] = {}
    if config:
        extra = yaml.safe_load(config.read_text()) or {}
    extra["serve_prefixes"] = _serve_prefixes(
        serve_prefix or extra.get("serve_prefixes"), serve_any_prefix
    )
    from shoal.agents.api import AgentApi
    from shoal.agents.bgp import BirdSpeaker, NullSpeaker, Speaker
    from shoal.agents.l4.agent import L4Agent, L4AgentConfig

    cfg = L4AgentConfig(
        controller=controller,
        token=token,
        name=name,
        interface=interface,
        cluster=cluster,
        state_dir=state_dir,
        address=address,
        **extra,
    )
    from shoal.agents.birdstate import BirdState

    speaker: Speaker = NullSpeaker()
    bird = None
    if bird_socket:
        speaker = BirdSpeaker(bird_include_dir or state_dir / name, bird_socket)
        bird = BirdState(bird_socket)
    agent = L4Agent(
        cfg,
        AgentApi(_urls(controller), token, ca_bundle=ca_bundle, insecure_http=insecure_http),
        speaker,
        bird,
    )
    if metrics_listen:
        from shoal.agents.l4.metrics import L4Collector
        from shoal.agents.metrics import MetricsServer

        agent.registry.register(L4Collector(agent, bird))
        MetricsServer(
            metrics_listen,
            agent.registry,
            token=metrics_token,
            insecure=metrics_insecure,
        ).start()

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop(withdraw=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.close()


@app.command("l7")
@handle_errors
def l7(
    name: Annotated[str, typer.Option(help="node name (unique)")],
    data_address: Annotated[
        str, typer.Option(help="address the L4 tier sends VIP traffic to (and checks)")
    ],
    controller: ControllerUrl = "http://127.0.0.1:9876",
    credential_file: CredentialFile = None,
    ca_bundle: CaBundle = None,
    insecure_http: InsecureHttp = False,
    cluster: Annotated[str, typer.Option(help="L7 cluster of this node")] = "default",
    capacity: Annotated[
        int, typer.Option(min=1, help="how many load balancers this node can hold")
    ] = 100,
    netns_name: Annotated[
        str | None, typer.Option("--netns", help="run inside this network namespace")
    ] = None,
    run_dir: Annotated[Path, typer.Option(help="HAProxy's files and sockets")] = Path(
        "/run/shoal/l7"
    ),
    state_dir: Annotated[Path, typer.Option(help="agent state")] = Path("/var/lib/shoal/agent"),
    haproxy: Annotated[str, typer.Option(help="HAProxy binary")] = "haproxy",
    haproxy_user: Annotated[
        str, typer.Option(help='user (and group) HAProxy\'s workers run as; "" keeps root')
    ] = "haproxy",
    monitor_port: Annotated[int, typer.Option(help="health endpoint the L4 tier checks")] = 8404,
    address: Annotated[str | None, typer.Option(help="node address (shown to operators)")] = None,
    stop_haproxy: Annotated[
        bool, typer.Option(help="stop HAProxy when the agent exits (default: it keeps serving)")
    ] = False,
    reload_batch: Annotated[
        float, typer.Option(min=0, help="at most one reload per this many seconds (0: no batching)")
    ] = 0.5,
    metrics_listen: MetricsListen = None,
    metrics_token_file: MetricsTokenFile = None,
    metrics_insecure: MetricsInsecure = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    log_format: LogFormat = "text",
) -> None:
    """Run HAProxy for the L7 load balancers placed on this node."""
    token = _credential(credential_file)
    metrics_token = _metrics_token(metrics_listen, metrics_token_file, metrics_insecure)
    _start("the L7 agent", name, log_level, netns_name, log_format)
    from shoal.agents.api import AgentApi
    from shoal.agents.l7.agent import L7Agent, L7AgentConfig

    cfg = L7AgentConfig(
        controller=controller,
        token=token,
        name=name,
        data_address=data_address,
        cluster=cluster,
        capacity=capacity,
        address=address,
        run_dir=run_dir,
        state_dir=state_dir,
        haproxy_binary=haproxy,
        haproxy_user=haproxy_user,
        haproxy_group=haproxy_user,
        monitor_port=monitor_port,
        reload_batch=reload_batch,
    )
    agent = L7Agent(
        cfg, AgentApi(_urls(controller), token, ca_bundle=ca_bundle, insecure_http=insecure_http)
    )
    if metrics_listen:
        from shoal.agents.l7.metrics import HAProxyExporter
        from shoal.agents.metrics import MetricsServer

        MetricsServer(
            metrics_listen,
            agent.registry,
            HAProxyExporter(agent).scrape,
            token=metrics_token,
            insecure=metrics_insecure,
        ).start()

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.close(stop_proxy=stop_haproxy)


@app.command("fate")
@handle_errors
def fate(
    interface: Annotated[str, typer.Option(help="the L4 node's uplink (XDP)")],
    bird_socket: Annotated[Path, typer.Option(help="the node's BIRD control socket")],
    netns_name: Annotated[
        str | None, typer.Option("--netns", help="the uplink's network namespace")
    ] = None,
    protocol: Annotated[
        list[str] | None, typer.Option(help="BIRD protocols to withdraw (repeatable)")
    ] = None,
    gate_file: Annotated[
        Path | None,
        typer.Option(
            help="withdraw by writing `disabled yes;` to this file, which the VIP protocols "
            "include, then `birdc configure` (instead of birdc disable/enable)"
        ),
    ] = None,
    bfd_hold_down: Annotated[
        float,
        typer.Option(
            help="also withdraw while the node's BFD sessions are not Up, and announce again "
            "only after they have been Up this many seconds (0: off)"
        ),
    ] = 0.0,
    grace: Annotated[float, typer.Option(help="seconds of failure before withdrawing")] = 0.3,
    interval: Annotated[float, typer.Option(help="seconds between checks")] = 0.1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Fate sharing, beside BIRD and independent of the agent: withdraw this node's VIPs while
    its uplink is down or has no XDP program, restore them when it forwards again."""
    import threading

    from shoal.agents.bgp import SpeakerError, birdc
    from shoal.agents.fate import BirdGate, FateWatchdog, bfd_sessions_up, data_plane_forwards

    _start("the fate-sharing watchdog", f"fate-{interface}", log_level, None)
    if not 0 < grace <= 5 or not 0.01 <= interval <= 1 or not 0 <= bfd_hold_down <= 60:
        fail(
            "--grace must be in (0, 5], --interval in [0.01, 1] and --bfd-hold-down "
            "in [0, 60] seconds"
        )

    def bird(command: str, proto: str) -> None:
        code, out = birdc(bird_socket, command, proto)
        if code != 0:
            raise SpeakerError(out.splitlines()[-1] if out else f"exit {code}")

    def configure() -> None:
        code, out = birdc(bird_socket, "configure")
        if code != 0 or ("Reconfigured" not in out and "in progress" not in out):
            raise SpeakerError(out.splitlines()[-1] if out else f"exit {code}")

    def peer_up() -> bool:
        try:
            code, out = birdc(bird_socket, "show", "bfd", "sessions")
        except SpeakerError:
            return False
        return code == 0 and bfd_sessions_up(out)

    dog = FateWatchdog(
        probe=lambda: data_plane_forwards(interface, netns_name),
        bird=bird,
        protocols=protocol or ["shoal_vips4", "shoal_vips6"],
        grace=grace,
        interval=interval,
        gate=BirdGate(gate_file, configure) if gate_file else None,
        peer_up=peer_up if bfd_hold_down > 0 else None,
        hold_down=bfd_hold_down,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    dog.run(stop)
