"""octavia-tempest-plugin's API tests against a controller: starts a Keystone (SQLite, one
process) whose catalog points `load-balancer` at a controller started here (noop provider
by default), writes tempest.conf, runs the tests and prints pass/fail/skip per module.

    .venv/bin/python scripts/tempest.py [--regex R] [--workdir D] [--python P] [--no-noop]

--python runs the controller with another Shoal (e.g. /work/main/.venv/bin/python) to
measure a baseline. Everything listens on 127.0.0.1 only and is stopped at the end."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TVENV = Path(os.environ.get("TEMPEST_VENV", ROOT / ".venv-tempest"))
PASSWORD = "tempest-admin-secret"
ROLES = (
    "member",
    "reader",
    "load-balancer_member",
    "load-balancer_observer",
    "load-balancer_global_observer",
    "load-balancer_admin",
    "load-balancer_quota_admin",
)
KEYSTONE_SERVER = """
import os, sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass
# One request at a time: Keystone on SQLite answered 500 (database is locked) to concurrent
# token requests under load. Its requests are short; tempest's two workers just queue.
port = int(os.environ.pop("SHOAL_KEYSTONE_PORT"))
sys.argv = sys.argv[:1]  # oslo.config reads the command line
from keystone.server import wsgi
app = wsgi.initialize_public_application()
make_server("127.0.0.1", port, app, WSGIServer, Quiet).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:g} s")


def api(method: str, url: str, token: str | None, body: Any = None) -> tuple[Any, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return (json.loads(raw) if raw else None), resp.headers


def keystone_setup(work: Path, port: int) -> Path:
    conf = work / "keystone.conf"
    conf.write_text(
        f"""[DEFAULT]
log_file = {work}/keystone.log
[database]
connection = sqlite:///{work}/keystone.db
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = {work}/fernet-keys
[fernet_receipts]
key_repository = {work}/fernet-keys
[credential]
key_repository = {work}/credential-keys
"""
    )
    manage = [str(TVENV / "bin/keystone-manage"), "--config-file", str(conf)]
    url = f"http://127.0.0.1:{port}/v3"
    for args in (
        ["db_sync"],
        ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
        ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
        [
            "bootstrap",
            "--bootstrap-password",
            PASSWORD,
            "--bootstrap-admin-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-region-id",
            "RegionOne",
        ],
    ):
        subprocess.run([*manage, *args], check=True, capture_output=True)
    return conf


def admin_token(keystone: str) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    _, headers = api("POST", f"{keystone}/v3/auth/tokens", None, body)
    return str(headers["X-Subject-Token"])


def catalog(keystone: str, token: str, controller: str) -> None:
    existing = {r["name"] for r in api("GET", f"{keystone}/v3/roles", token)[0]["roles"]}
    for role in ROLES:
        if role not in existing:
            api("POST", f"{keystone}/v3/roles", token, {"role": {"name": role}})
    svc = {"service": {"type": "load-balancer", "name": "octavia", "enabled": True}}
    service_id = api("POST", f"{keystone}/v3/services", token, svc)[0]["service"]["id"]
    for interface in ("public", "internal", "admin"):
        ep = {
            "endpoint": {
                "service_id": service_id,
                "interface": interface,
                "url": controller,
                "region_id": "RegionOne",
            }
        }
        api("POST", f"{keystone}/v3/endpoints", token, ep)


def tempest_conf(keystone: str, noop: bool) -> str:
    provider = "noop" if noop else "shoal"
    return f"""[DEFAULT]
log_file = tempest.log
[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = admin
admin_password = {PASSWORD}
admin_project_name = admin
admin_domain_name = Default
tempest_roles = member
[identity]
uri_v3 = {keystone}/v3
auth_version = v3
region = RegionOne
[identity-feature-enabled]
api_v2 = false
[service_available]
load_balancer = true
neutron = false
nova = false
glance = false
cinder = false
swift = false
[network]
project_networks_reachable = true
[load_balancer]
test_with_noop = true
provider = {provider}
enabled_provider_drivers = shoal:Shoal XDP L4 tier and HAProxy L7 tier,noop:The no-op provider (accepts every request and configures nothing)
RBAC_test_type = none
build_interval = 0.3
check_interval = 0.3
lb_build_interval = 0.3
build_timeout = 60
check_timeout = 30
lb_build_timeout = 60
expected_flavor_capability = amp_image_tag:The glance image tag to use for this load balancer.
expected_availability_zone_capability = compute_zone:The compute availability zone to use for this loadbalancer.
[loadbalancer-feature-enabled]
not_implemented_is_error = true
"""


def summarize(work: Path, listed: list[str]) -> dict[str, Counter[str]]:
    subunit = subprocess.run(
        [str(TVENV / "bin/stestr"), "last", "--subunit"],
        cwd=work / "tempest",
        capture_output=True,
        check=False,
    ).stdout
    rows = subprocess.run(
        [str(TVENV / "bin/subunit2csv")], input=subunit, capture_output=True, check=False
    ).stdout.decode(errors="replace")
    per: dict[str, Counter[str]] = defaultdict(Counter)
    seen: set[str] = set()
    class_status: dict[str, str] = {}  # a class whose setUpClass failed or skipped
    for row in csv.DictReader(io.StringIO(rows)):
        status = {"success": "pass", "fail": "fail", "skip": "skip"}.get(row["status"], "fail")
        name = row["test"]
        if name.startswith(("setUpClass (", "tearDownClass (")):
            if name.startswith("setUpClass") and status != "pass":
                class_status[name.split("(", 1)[1].rstrip(")")] = status
            continue
        test = name.split("[")[0]
        if not test.startswith("octavia_tempest_plugin"):
            continue
        seen.add(test)
        per[test.split(".")[-3]][status] += 1
    # Tests of a class whose setUpClass failed never report: count them as that class did.
    for test in listed:
        klass = test.rsplit(".", 1)[0]
        if test not in seen and klass in class_status:
            per[test.split(".")[-3]][class_status[klass]] += 1
    return per


def list_tests(work: Path, regex: str, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [str(TVENV / "bin/tempest"), "run", "--list-tests", "--regex", regex],
        cwd=work / "tempest",
        env=env,
        capture_output=True,
        check=False,
    ).stdout.decode()
    return [
        line.split("[")[0].strip()
        for line in out.splitlines()
        if line.strip().startswith("octavia_tempest_plugin")
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regex", default=r"^octavia_tempest_plugin\.tests\.api\.v2")
    ap.add_argument("--workdir", default=str(ROOT / ".tempest-run"))
    ap.add_argument("--python", default=sys.executable, help="the controller's interpreter")
    ap.add_argument("--no-noop", action="store_true", help="shoal as the default provider")
    ap.add_argument("--concurrency", default="2")
    opts = ap.parse_args()
    work = Path(opts.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kport, cport = free_port(), free_port()
    keystone, controller = f"http://127.0.0.1:{kport}", f"http://127.0.0.1:{cport}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        conf = keystone_setup(work, kport)
        env = {
            **os.environ,
            "OS_KEYSTONE_CONFIG_FILES": str(conf),
            "SHOAL_KEYSTONE_PORT": str(kport),
        }
        procs.append(
            subprocess.Popen(
                [str(TVENV / "bin/python"), "-c", KEYSTONE_SERVER],
                env=env,
                stdout=(work / "keystone.out").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        wait_http(f"{keystone}/v3")
        token = admin_token(keystone)
        catalog(keystone, token, controller)
        cmd = [opts.python, "-m", "tests.tempest.run_controller", str(work / "controller")]
        cmd += [str(cport), keystone, token] + ([] if opts.no_noop else ["--noop"])
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=(work / "controller.out").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        wait_http(f"{controller}/")
        subprocess.run(
            [
                str(TVENV / "bin/tempest"),
                "init",
                "--workspace-path",
                str(work / "workspace.yaml"),  # not the user's ~/.tempest registry
                "--name",
                f"shoal-{os.getpid()}",
                str(work / "tempest"),
            ],
            check=True,
            capture_output=True,
        )
        (work / "tempest/etc/tempest.conf").write_text(tempest_conf(keystone, not opts.no_noop))
        run = [str(TVENV / "bin/tempest"), "run", "--regex", opts.regex]
        run += ["--concurrency", opts.concurrency]
        tenv = {
            **os.environ,
            "TEMPEST_CONFIG_DIR": str(work / "tempest/etc"),
            "TEMPEST_CONFIG": "tempest.conf",
        }
        listed = list_tests(work, opts.regex, tenv)
        with (work / "tempest-run.log").open("wb") as log:
            subprocess.run(run, cwd=work / "tempest", env=tenv, check=False, stdout=log)
        per = summarize(work, listed)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    total: Counter[str] = Counter()
    print(f"{'module':32} {'pass':>5} {'fail':>5} {'skip':>5}")
    for module in sorted(per):
        c = per[module]
        total.update(c)
        print(f"{module:32} {c['pass']:5} {c['fail']:5} {c['skip']:5}")
    print(f"{'TOTAL':32} {total['pass']:5} {total['fail']:5} {total['skip']:5}")
    (work / "summary.json").write_text(json.dumps({m: dict(c) for m, c in per.items()}))
    return 0 if total["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
