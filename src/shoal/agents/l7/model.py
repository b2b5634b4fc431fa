"""A node's L7 desired state as plain dicts for the template: every value the config needs,
already validated and escaped, and nothing else (the template holds no logic beyond loops)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Backend",
    "BuildCache",
    "Frontend",
    "NodeConfig",
    "RuntimePlan",
    "Server",
    "acl",
    "build",
    "quote",
    "runtime_plan",
]

ALGORITHMS = {
    "ROUND_ROBIN": "roundrobin",
    "LEAST_CONNECTIONS": "leastconn",
    "SOURCE_IP": "source",
    "SOURCE_IP_PORT": "source",
}
MATCH = {
    "EQUAL_TO": "str",
    "STARTS_WITH": "beg",
    "ENDS_WITH": "end",
    "CONTAINS": "sub",
    "REGEX": "reg",
}
HTTP_MODES = {"HTTP", "TERMINATED_HTTPS"}


def quote(value: str) -> str:
    """A double-quoted HAProxy string: backslashes and quotes escaped, nothing expanded."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def acl(rule: dict[str, Any]) -> str:
    """One L7 rule as an anonymous ACL, `{ fetch -m method "value" }`, negated on invert."""
    kind, method = rule["type"], MATCH[rule["compare_type"]]
    fetch = {
        "HOST_NAME": "req.hdr(host),field(1,:) -i",  # without the port, case-insensitive
        "PATH": "path",
        "FILE_TYPE": "path,field(-1,/),field(-1,.) -i",  # the last segment's extension
        "HEADER": f"req.hdr({rule.get('key')})",
        "COOKIE": f"req.cook({rule.get('key')})",
    }.get(kind)
    if fetch is None:
        # SSL_* rules test client certificates, which Shoal's listeners do not request:
        # they never match.
        expr = "{ always_false }"
    else:
        expr = f"{{ {fetch} -m {method} {quote(rule['value'])} }}"
    return f"!{expr}" if rule["invert"] else expr


@dataclass
class Server:
    name: str
    id: int  # stable across reloads and nodes: consistent hashing and cookies use it
    address: str
    port: int
    weight: int
    enabled: bool
    backup: bool
    check: bool
    check_params: str  # inter/rise/fall (dynamic servers do not inherit default-server)
    options: str  # send-proxy, ssl, cookie ...

    def runtime_args(self) -> str:
        """The `add server` arguments; the server starts in maintenance, then is enabled."""
        check = f" check {self.check_params}" if self.check else ""
        backup = " backup" if self.backup else ""
        return (
            f"{self.address}:{self.port} id {self.id} weight {self.weight}"
            f"{check}{backup}{self.options}"
        )


@dataclass
class Backend:
    name: str
    mode: str
    balance: str
    lines: list[str] = field(default_factory=list)  # persistence, checks, timeouts
    default_server: str = ""
    servers: list[Server] = field(default_factory=list)


@dataclass
class Frontend:
    name: str
    address: str
    port: int
    mode: str
    bind_options: str = ""
    lines: list[str] = field(default_factory=list)
    default_backend: str | None = None


@dataclass
class NodeConfig:
    frontends: list[Frontend] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)
    crt_lists: dict[str, list[str]] = field(default_factory=dict)  # listener -> cert names


def codes_regex(expected: str | None) -> str:
    """Octavia's expected_codes ("200", "200,202", "200-204") as a status regex."""
    codes: list[str] = []
    for part in (expected or "200").split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            codes += [str(c) for c in range(int(low), int(high) + 1)]
        else:
            codes.append(part.strip())
    return "^(" + "|".join(codes) + ")$"


def _ms(value: int) -> str:
    return f"{value}ms"


def server_ids(member_ids: list[str]) -> dict[str, int]:
    """A stable numeric id per member: from its UUID, probing past collisions in sorted
    order, so adding or removing one member never renumbers the others (in practice)."""
    taken: set[int] = set()
    out = {}
    for mid in sorted(member_ids):
        n = int(hashlib.sha256(mid.encode()).hexdigest()[:7], 16) % 999_999 + 1
        while n in taken:
            n = n % 999_999 + 1
        taken.add(n)
        out[mid] = n
    return out


def _backend(pool: dict[str, Any], mode: str, listener: dict[str, Any] | None) -> Backend:
    be = Backend(name=f"p_{pool['id']}", mode=mode, balance=ALGORITHMS[pool["lb_algorithm"]])
    # Persistence without shared state, so it holds across reloads and across L7 nodes
    # (a client the L4 tier moves to another node keeps its member): cookies carry the
    # member, and SOURCE_IP is a consistent hash of the client address (like the L4 tier).
    sp = pool.get("session_persistence") or {}
    if sp.get("type") == "SOURCE_IP":
        be.balance = "source"
    if be.balance == "source":
        be.lines.append("hash-type consistent")  # also lets members change without reload
    if sp.get("type") == "HTTP_COOKIE" and mode == "http":
        be.lines.append("cookie SRV insert indirect nocache")
    elif sp.get("type") == "APP_COOKIE" and mode == "http":
        # The member's id goes in front of the application's own cookie value.
        be.lines.append(f"cookie {sp['cookie_name']} prefix nocache")
    if listener is not None:
        be.lines += [
            f"timeout connect {_ms(listener['timeout_member_connect'])}",
            f"timeout server {_ms(listener['timeout_member_data'])}",
        ]
    hm = pool.get("healthmonitor")
    check = hm is not None and hm["admin_state_up"]
    check_opts = ""
    if check:
        assert hm is not None
        if hm["type"] in ("HTTP", "HTTPS") and mode == "http":
            be.lines.append("option httpchk")
            send = f"http-check send meth {hm['http_method'] or 'GET'} uri {hm['url_path'] or '/'}"
            if hm.get("domain_name"):
                send += f" ver HTTP/1.1 hdr Host {hm['domain_name']}"
            be.lines.append(send)
            be.lines.append(f"http-check expect rstatus {codes_regex(hm['expected_codes'])}")
            if hm["type"] == "HTTPS":
                check_opts = " check-ssl verify none"
        elif hm["type"] == "TLS-HELLO":
            be.lines.append("option ssl-hello-chk")
        inter = max(1, hm["delay"])  # Octavia allows 0; HAProxy needs a positive interval
        be.default_server = (
            f"inter {inter}s fastinter {inter}s "
            f"downinter {inter}s rise {hm['max_retries']} "
            f"fall {hm['max_retries_down']}"
        )
    proxy = {"PROXY": " send-proxy", "PROXYV2": " send-proxy-v2"}.get(pool["protocol"], "")
    tls = " ssl verify none" if pool["protocol"] == "HTTPS" and mode == "http" else ""
    cookie = sp.get("type") in ("HTTP_COOKIE", "APP_COOKIE") and mode == "http"
    ids = server_ids([m["id"] for m in pool["members"]])
    for m in sorted(pool["members"], key=lambda m: m["id"]):
        options = proxy + tls + check_opts + (f" cookie {ids[m['id']]}" if cookie else "")
        be.servers.append(
            Server(
                name=f"m_{m['id']}",
                id=ids[m["id"]],
                address=m["address"],
                port=m["protocol_port"],
                weight=m["weight"],
                enabled=m["admin_state_up"] and pool["admin_state_up"],
                backup=m["backup"],
                check=check,
                check_params=be.default_server,
                options=options,
            )
        )
    return be


def _policies(listener: dict[str, Any]) -> list[str]:
    """First matching policy wins, whatever its action: each policy's match is computed into
    a variable first, then actions run in position order, each guarded against earlier
    matches (HAProxy would otherwise run every deny/redirect before any use_backend)."""
    lines: list[str] = []
    earlier: list[int] = []
    policies = [p for p in listener["l7policies"] if p["admin_state_up"]]
    for p in policies:
        rules = [acl(r) for r in p["rules"] if r["admin_state_up"]]
        if not rules:
            continue  # a policy without rules never matches (Octavia's meaning)
        lines.append(f"http-request set-var(txn.p_{p['position']}) bool(1) if {' '.join(rules)}")
    for p in policies:
        if not any(r["admin_state_up"] for r in p["rules"]):
            continue
        cond = f"{{ var(txn.p_{p['position']}) -m bool }}" + "".join(
            f" !{{ var(txn.p_{e}) -m bool }}" for e in earlier
        )
        code = p.get("redirect_http_code") or 302
        if p["action"] == "REJECT":
            lines.append(f"http-request deny deny_status 403 if {cond}")
        elif p["action"] == "REDIRECT_TO_URL":
            lines.append(
                f"http-request redirect location {quote(p['redirect_url'])} code {code} if {cond}"
            )
        elif p["action"] == "REDIRECT_PREFIX":
            lines.append(
                f"http-request redirect prefix {quote(p['redirect_prefix'])} code {code} if {cond}"
            )
        else:
            lines.append(f"use_backend p_{p['redirect_pool_id']} if {cond}")
        earlier.append(p["position"])
    return lines


def _hsts_line(hsts: dict[str, Any]) -> str:
    """Strict-Transport-Security on every answer of a TLS-terminating listener (RFC 6797:
    max-age, then the optional includeSubDomains and preload directives)."""
    value = f"max-age={int(hsts['max_age'])};"
    if hsts.get("include_subdomains"):
        value += " includeSubDomains;"
    if hsts.get("preload"):
        value += " preload;"
    return f'http-response set-header Strict-Transport-Security "{value}"'


def _frontend(lb: dict[str, Any], li: dict[str, Any], crt_list: str) -> Frontend:
    http = li["protocol"] in HTTP_MODES
    fe = Frontend(
        name=f"l_{li['id']}",
        address=lb["vip_address"],
        port=li["protocol_port"],
        mode="http" if http else "tcp",
    )
    if li["protocol"] == "TERMINATED_HTTPS":
        fe.bind_options = f"ssl crt-list {crt_list} alpn h2,http/1.1"
    if li["connection_limit"] and li["connection_limit"] > 0:
        fe.lines.append(f"maxconn {li['connection_limit']}")
    fe.lines.append(f"timeout client {_ms(li['timeout_client_data'])}")
    if li["timeout_tcp_inspect"]:
        fe.lines.append(f"tcp-request inspect-delay {_ms(li['timeout_tcp_inspect'])}")
    if li.get("allowed_cidrs"):
        cidrs = " ".join(li["allowed_cidrs"])
        fe.lines.append(f"tcp-request connection reject if !{{ src {cidrs} }}")
    if http:
        headers = li.get("insert_headers") or {}
        if str(headers.get("X-Forwarded-For", "true")).lower() == "true":
            fe.lines.append("option forwardfor")
        if str(headers.get("X-Forwarded-Port", "false")).lower() == "true":
            fe.lines.append("http-request set-header X-Forwarded-Port %[dst_port]")
        if str(headers.get("X-Forwarded-Proto", "false")).lower() == "true":
            proto = "https" if li["protocol"] == "TERMINATED_HTTPS" else "http"
            fe.lines.append(f"http-request set-header X-Forwarded-Proto {proto}")
        if li.get("hsts") and li["protocol"] == "TERMINATED_HTTPS":
            fe.lines.append(_hsts_line(li["hsts"]))
        fe.lines += _policies(li)
    if li["default_pool_id"]:
        fe.default_backend = f"p_{li['default_pool_id']}"
    return fe


# One load balancer's share of a NodeConfig: frontends, backends, crt-lists.
Part = tuple[list[Frontend], list[Backend], dict[str, list[str]]]
BuildCache = dict[str, tuple[str, Part]]  # lb id -> (its config as JSON, its part)


def _part(lb: dict[str, Any], crt_dir: str) -> Part:
    frontends: list[Frontend] = []
    backends: list[Backend] = []
    crt_lists: dict[str, list[str]] = {}
    listeners = {li["id"]: li for li in lb["listeners"] if li["admin_state_up"]}
    modes: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for li in listeners.values():
        mode = "http" if li["protocol"] in HTTP_MODES else "tcp"
        refs = [li["default_tls_container_ref"], *li.get("sni_container_refs", [])]
        names = [r.rstrip("/").rsplit("/", 1)[-1] for r in refs if r]
        crt_lists[li["id"]] = names
        frontends.append(_frontend(lb, li, f"{crt_dir}/{li['id']}.crtlist"))
        if li["default_pool_id"]:
            modes[li["default_pool_id"]] = (mode, li)
        for p in li["l7policies"]:
            if p.get("redirect_pool_id"):
                modes.setdefault(p["redirect_pool_id"], (mode, li))
    for pool in sorted(lb["pools"], key=lambda p: p["id"]):
        mode, li = modes.get(
            pool["id"], ("http" if pool["protocol"] in ("HTTP", "HTTPS") else "tcp", None)
        )
        backends.append(_backend(pool, mode, li))
    return frontends, backends, crt_lists


def build(lbs: list[dict[str, Any]], crt_dir: str, cache: BuildCache | None = None) -> NodeConfig:
    """The frontends and backends of every listener and pool of these load balancers
    (their revision configs, as the controller sends them). TLS listeners read their
    certificates from <crt_dir>/<listener id>.crtlist.

    cache: kept by the caller between builds, so a load balancer whose config did not change
    is not built again (its parts are shared, never mutated); left holding only these."""
    out = NodeConfig()
    seen: BuildCache = {}
    for lb in sorted(lbs, key=lambda x: x["id"]):
        if not lb.get("admin_state_up", True):
            continue
        if cache is None:
            part = _part(lb, crt_dir)
        else:
            key = crt_dir + "\0" + json.dumps(lb, sort_keys=True, default=str)
            hit = cache.get(lb["id"])
            part = hit[1] if hit is not None and hit[0] == key else _part(lb, crt_dir)
            seen[lb["id"]] = (key, part)
        out.frontends += part[0]
        out.backends += part[1]
        out.crt_lists.update(part[2])
    if cache is not None:
        cache.clear()
        cache.update(seen)
    return out


@dataclass
class RuntimePlan:
    commands: list[str]  # runtime API commands, in order
    deletions: list[str]  # "backend/server" to delete once they have no connections left


def runtime_plan(old: NodeConfig, new: NodeConfig) -> RuntimePlan | None:
    """The runtime API commands that turn the running `old` into `new` without a reload:
    member additions, removals, weight and admin-state changes. None when anything else
    differs (that needs a reload)."""
    if old.frontends != new.frontends or old.crt_lists != new.crt_lists:
        return None
    before = {b.name: b for b in old.backends}
    after = {b.name: b for b in new.backends}
    if before.keys() != after.keys():
        return None
    out = RuntimePlan([], [])
    for name, nb in after.items():
        ob = before[name]
        if (ob.mode, ob.balance, ob.lines, ob.default_server) != (
            nb.mode,
            nb.balance,
            nb.lines,
            nb.default_server,
        ):
            return None
        olds = {s.name: s for s in ob.servers}
        news = {s.name: s for s in nb.servers}
        for sname in sorted(olds.keys() - news.keys()):
            out.commands.append(f"set server {name}/{sname} state maint")
            out.deletions.append(f"{name}/{sname}")
        for sname in sorted(news.keys() - olds.keys()):
            s = news[sname]
            out.commands.append(f"add server {name}/{sname} {s.runtime_args()}")
            if s.check:
                out.commands.append(f"enable health {name}/{sname}")
            if s.enabled:
                out.commands.append(f"set server {name}/{sname} state ready")
        for sname in sorted(olds.keys() & news.keys()):
            o, n = olds[sname], news[sname]
            if (o.id, o.address, o.port, o.backup, o.check, o.check_params, o.options) != (
                n.id,
                n.address,
                n.port,
                n.backup,
                n.check,
                n.check_params,
                n.options,
            ):
                return None
            if o.weight != n.weight:
                out.commands.append(f"set server {name}/{sname} weight {n.weight}")
            if o.enabled != n.enabled:
                state = "ready" if n.enabled else "maint"
                out.commands.append(f"set server {name}/{sname} state {state}")
    return out
