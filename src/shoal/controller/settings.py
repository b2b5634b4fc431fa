"""Controller settings: a YAML file (`--config`, or $SHOAL_CONTROLLER_CONFIG) with environment
overrides for the usual deployment knobs."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shoal.errors import ConfigError

__all__ = ["ControllerSettings", "KeystoneSettings", "QuotaDefaults", "VipPool", "load_settings"]


class VipPool(BaseModel):
    """A VIP pool the controller creates in its database on first start (when the database
    holds none); afterwards `shoal vip-pool` and /v2/shoal/vip-pools manage them."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=36)] | None = None  # default: from name
    name: Annotated[str, Field(max_length=255)] = ""
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    shared: bool = True  # every project may use it, unless project_ids names some
    project_ids: list[str] = Field(default_factory=list)
    network_id: Annotated[str, Field(min_length=1, max_length=36)] | None = None

    @model_validator(mode="after")
    def _check(self) -> VipPool:
        from shoal.addresses import network_refusal

        if not (self.name or self.id):
            raise ValueError("a VIP pool needs a name")
        self.name = self.name or str(self.id)
        if refusal := network_refusal(self.cidr):
            raise ValueError(f"VIP pool {self.name}: {self.cidr} {refusal}")
        if self.project_ids:
            self.shared = False
        return self


class QuotaDefaults(BaseModel):
    """Per-project limits when a project has no quota of its own; -1 = unlimited."""

    model_config = ConfigDict(extra="forbid")
    load_balancer: int = -1
    listener: int = -1
    pool: int = -1
    member: int = -1
    healthmonitor: int = -1
    l7policy: int = -1
    l7rule: int = -1


DEFAULT_STATE_DIR = Path("/var/lib/shoal")  # the database (SQLite), backed up
DEFAULT_KEY_DIR = Path("/etc/shoal/keys")  # the keys, never in the same backup


class KeystoneSettings(BaseModel):
    """Where tokens that are not Shoal's own are validated (auth: keystone), and the service
    user the controller validates them as (it needs Keystone's service or admin role)."""

    model_config = ConfigDict(extra="forbid")
    auth_url: Annotated[str, Field(pattern=r"^https?://")]  # e.g. https://keystone:5000/v3
    username: str = "shoal"
    password: str | None = None  # or password_file, or $SHOAL_KEYSTONE_PASSWORD
    password_file: Path | None = None
    user_domain_name: str = "Default"
    project_name: str = "service"
    project_domain_name: str = "Default"
    ca_bundle: Path | None = None  # verifies an https:// auth_url (else the system's CAs)
    # A validated token is trusted this long without asking Keystone again (at most its
    # own expiry): a revoked token keeps working until then.
    cache_ttl: Annotated[float, Field(ge=0, le=3600)] = 300.0
    cache_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    www_authenticate_uri: str | None = None  # what 401s name; default auth_url

    def resolve_password(self) -> str:
        if self.password:
            return self.password
        if os.environ.get("SHOAL_KEYSTONE_PASSWORD"):
            return os.environ["SHOAL_KEYSTONE_PASSWORD"]
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {self.password_file}: {exc.strerror}") from None
        raise ConfigError(
            "keystone: the service user needs a password (password_file, or "
            "$SHOAL_KEYSTONE_PASSWORD)"
        )


class ControllerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database_url: str = ""
    state_dir: Path = DEFAULT_STATE_DIR
    listen: str = "127.0.0.1:9876"
    # HTTPS: the server certificate (leaf first, then its chain) and its key. Without them
    # the controller serves plain HTTP, on a loopback address only unless insecure_http.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    public_url: str | None = None  # absolute base for the version document's links
    vip_pools: list[VipPool] = Field(
        default_factory=lambda: [
            VipPool(name="default", cidr=ipaddress.IPv4Network("10.200.0.0/16"))
        ]
    )
    quotas: QuotaDefaults = Field(default_factory=QuotaDefaults)
    # Provider drivers clients may name (GET /v2/lbaas/providers), as Octavia's
    # enabled_provider_drivers, and the one used when a load balancer names none. noop
    # configures nothing and goes ACTIVE at once: for API tests only, so not enabled unless
    # listed (a tenant's balancer that does nothing would look healthy).
    enabled_providers: list[str] = Field(default_factory=lambda: ["shoal"])
    default_provider: str = "shoal"
    pending_timeout: Annotated[float, Field(gt=0)] = 30.0  # PENDING_* longer than this: ERROR
    node_dead_after: Annotated[float, Field(gt=0)] = 15.0  # silent nodes stop counting
    long_poll_max: Annotated[float, Field(gt=0, le=300)] = 55.0
    # The agents' feed: changes per answer (more follow at once), how many changes the
    # database keeps (an agent further behind gets a snapshot), and how often a controller
    # looks for other controllers' changes when PostgreSQL's NOTIFY does not tell it.
    feed_batch: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    feed_keep: Annotated[int, Field(ge=100)] = 1_000_000
    feed_poll_interval: Annotated[float, Field(gt=0, le=10)] = 0.25
    # At most one answer with changes per node per interval; an idle node's is not delayed
    # (shoal.controller.services.pacing). 0: every change is answered at once.
    feed_min_interval: Annotated[float, Field(ge=0, le=5)] = 0.1
    cluster_seed: Annotated[str, Field(min_length=1, max_length=64)] = "shoal"
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 1 << 20  # larger: 413
    # The agents' reports (/v2/shoal/nodes/<id>/...) carry a digest per VIP the node serves:
    # about 2 MB at 10,000 load balancers.
    max_agent_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 32 << 20
    bootstrap_token: str | None = None  # creates an admin token with this secret at start
    # GET /metrics answers an admin token, or this scrape token (a 0600 file; Prometheus
    # sends it as Authorization: Bearer from its credentials_file). docs/metrics.md.
    metrics_token_file: Path | None = None
    console_session_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 8 * 3600  # /ui login
    log_format: Literal["text", "json"] = "text"  # json: one object per line (docs/metrics.md)
    # Who may call: "shoal" (Shoal's tokens and node credentials), "keystone" (Keystone
    # tokens too; needs keystone:), or "noauth" (development, loopback only: no token needed,
    # the project comes from X-Project-Id, as in Octavia's noauth).
    auth: Literal["shoal", "keystone", "noauth"] = "shoal"
    keystone: KeystoneSettings | None = None
    # Key-encryption keys (TLS private keys and the internal CA are encrypted with them): one
    # file per key, owner-only, kept apart from the database and its backups. Default:
    # /etc/shoal/keys, or <state_dir>-keys beside a state directory other than the default.
    key_dir: Path | None = None
    # A passphrase (scrypt) that encrypts when key_dir holds no key: what controllers that
    # share no key files have in common. It also decrypts what older versions stored.
    secret_key: str | None = None
    l7_drain_seconds: Annotated[float, Field(ge=0)] = 60.0  # a moved L7 VIP's old node
    l7_clusters_per_lb: Annotated[int, Field(ge=1, le=8)] = 2  # active-active L7 clusters
    l7_moves_per_tick: Annotated[int, Field(ge=0, le=10000)] = 8  # rebalancing pace
    # How the L4 nodes check the L7 nodes they send traffic to (HTTP GET /healthz).
    l7_monitor_port: Annotated[int, Field(ge=1, le=65535)] = 8404
    l7_check_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    l7_check_rise: Annotated[int, Field(ge=1, le=10)] = 2
    l7_check_fall: Annotated[int, Field(ge=1, le=10)] = 2

    @model_validator(mode="after")
    def _defaults(self) -> ControllerSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'controller.db'}"
        from shoal.controller.services.providers import PROVIDERS

        unknown = [p for p in self.enabled_providers if p not in PROVIDERS]
        if unknown or self.default_provider not in self.enabled_providers:
            raise ValueError(
                f"enabled_providers takes {sorted(PROVIDERS)}, and default_provider must be "
                "one of them"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.auth == "keystone" and self.keystone is None:
            raise ValueError("auth: keystone needs a keystone: section (auth_url, username, ...)")
        if self.auth == "noauth":
            self.check_noauth()
        return self

    def check_noauth(self) -> None:
        """No authentication means anyone who can connect is an admin: loopback only."""
        from shoal.transport import is_loopback_host

        host, _ = self.host_port
        if not is_loopback_host(host):
            raise ValueError(
                f"auth: noauth makes every caller an admin; it serves on loopback only, "
                f"not on {self.listen}"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check_transport(self) -> None:
        """Plain HTTP only where nobody can listen in: refuses to serve it off loopback
        unless insecure_http says the network is trusted."""
        from shoal.transport import is_loopback_host

        host, _ = self.host_port
        if not self.tls and not self.insecure_http and not is_loopback_host(host):
            raise ConfigError(
                f"listen {self.listen}: plain HTTP off loopback would carry tokens and TLS "
                "keys in the clear; set tls_cert and tls_key (shoal controller issue-tls), "
                "or insecure_http: true for a trusted network"
            )

    @property
    def key_directory(self) -> Path:
        if self.key_dir is not None:
            return self.key_dir
        if self.state_dir == DEFAULT_STATE_DIR:
            return DEFAULT_KEY_DIR
        return self.state_dir.parent / f"{self.state_dir.name}-keys"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


ENV = {
    "SHOAL_DATABASE_URL": "database_url",
    "SHOAL_STATE_DIR": "state_dir",
    "SHOAL_LISTEN": "listen",
    "SHOAL_PUBLIC_URL": "public_url",
    "SHOAL_BOOTSTRAP_TOKEN": "bootstrap_token",
    "SHOAL_CLUSTER_SEED": "cluster_seed",
    "SHOAL_SECRET_KEY": "secret_key",
    "SHOAL_TLS_CERT": "tls_cert",
    "SHOAL_TLS_KEY": "tls_key",
    "SHOAL_KEY_DIR": "key_dir",
    "SHOAL_MAX_BODY_BYTES": "max_body_bytes",
    "SHOAL_MAX_AGENT_BODY_BYTES": "max_agent_body_bytes",
    "SHOAL_AUTH": "auth",
    "SHOAL_METRICS_TOKEN_FILE": "metrics_token_file",
    "SHOAL_LOG_FORMAT": "log_format",
}


def load_settings(path: str | Path | None = None, **overrides: Any) -> ControllerSettings:
    data: dict[str, Any] = {}
    path = path or os.environ.get("SHOAL_CONTROLLER_CONFIG")
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    for env, key in ENV.items():
        if os.environ.get(env):
            data[key] = os.environ[env]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ControllerSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"controller settings: {where}: {err['msg']}") from None
