"""The one way to change a load balancer's tree. Each write, in one transaction:

1. locks the load balancer (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on PostgreSQL),
2. refuses with 409 when it is PENDING_* or when the caller's If-Match revision is not the
   current one (so of two writers based on the same revision exactly one wins),
3. lets the caller change rows, then validates the whole tree and the project's quotas,
4. publishes the next revision (canonical JSON of the desired configuration), a change for
   the agents' feed (its position is taken at commit: services/feed.py) and an audit
   entry, and re-derives the provisioning status.

Any exception rolls all of it back: no half-applied config, nothing lost."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ORMExecuteState, Session, object_session, selectinload

from shoal.controller.auth import Principal
from shoal.controller.db.engine import Database
from shoal.controller.db.models import (
    AuditEntry,
    Certificate,
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Pool,
    Revision,
    utcnow,
)
from shoal.controller.errors import BadRequest, Conflict, NotFound
from shoal.controller.requestid import current_request_id
from shoal.controller.services import (
    certs,
    diff,
    feed,
    member_addresses,
    placement,
    quotas,
    status,
    tree,
    vips,
)
from shoal.controller.settings import ControllerSettings

__all__ = ["WriteContext", "Writer", "load_tree"]


@dataclass
class WriteContext:
    session: Session
    principal: Principal
    lb: LoadBalancer
    action: str
    message: str = ""
    touched: set[str] = field(default_factory=set)  # quota kinds that may have grown
    resource: tuple[str, str] | None = None  # (type, id) for the audit log
    revision: int = 0  # the revision this write published (its ETag)
    # The response body, built from the rows in hand once the revision is published (its
    # statuses settled), before the commit: the route answers without reading them again.
    respond: Callable[[], dict[str, Any]] | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def pending(self, row: Any, status_value: str = "PENDING_UPDATE") -> None:
        row.provisioning_status = status_value
        row.updated_at = utcnow()


def load_tree(session: Session, lb_id: str, *, lock: bool = False) -> LoadBalancer | None:
    query = (
        select(LoadBalancer)
        .where(LoadBalancer.id == lb_id)
        .options(
            selectinload(LoadBalancer.listeners).selectinload(Listener.l7policies),
            selectinload(LoadBalancer.pools).selectinload(Pool.members),
            selectinload(LoadBalancer.pools).selectinload(Pool.healthmonitor),
        )
    )
    if lock:
        query = query.with_for_update(of=LoadBalancer)
    return session.scalars(query).first()


class Writer:
    def __init__(
        self,
        db: Database,
        settings: ControllerSettings,
        notify: Callable[[int], None],
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notify = notify
        self.observe = observe  # (action, resource type) of each published revision

    def _check_writable(
        self, lb: LoadBalancer | None, lb_id: str, principal: Principal, expect_revision: int | None
    ) -> LoadBalancer:
        if lb is None or not principal.can_read(lb.project_id):
            raise NotFound.of("Load Balancer", lb_id)
        principal.require_write()
        if lb.provisioning_status in status.PENDING:
            raise Conflict(
                f"Invalid state {lb.provisioning_status} of loadbalancer resource "
                f"{lb_id}: it is being applied; retry when it is ACTIVE or ERROR"
            )
        if expect_revision is not None and expect_revision != lb.revision:
            raise Conflict(
                f"revision conflict: the change was based on revision "
                f"{expect_revision} of load balancer {lb_id}, which is now at "
                f"revision {lb.revision}"
            )
        return lb

    @contextlib.contextmanager
    def change(
        self,
        lb_id: str,
        principal: Principal,
        *,
        action: str,
        expect_revision: int | None = None,
        message: str = "",
        pending: str = "PENDING_UPDATE",
    ) -> Iterator[WriteContext]:
        """A write to an existing load balancer's tree."""
        with self.db.write() as session:
            lb = self._check_writable(
                load_tree(session, lb_id, lock=True), lb_id, principal, expect_revision
            )
            ctx = WriteContext(session, principal, lb, action, message)
            yield ctx
            published = self._publish(ctx, pending)
        self._published(ctx, published.position)  # set at commit

    @contextlib.contextmanager
    def create(
        self,
        principal: Principal,
        project_id: str,
        vip_address: str | None,
        vip_pool: str | None,
        message: str = "",
        vip_network: str | None = None,
        any_subnet: bool = False,
    ) -> Iterator[WriteContext]:
        """Creates a load balancer row (VIP allocated under the same lock) for the caller to
        fill, then publishes revision 1."""
        principal.require_write()
        with self.db.write() as session:
            vips.serialize(session)
            address, subnet_id, network_id = vips.allocate(
                session, project_id, vip_address, vip_pool, vip_network, any_subnet
            )
            lb = LoadBalancer(
                project_id=project_id,
                vip_address=address,
                vip_subnet_id=subnet_id,
                vip_network_id=network_id,
            )
            session.add(lb)
            ctx = WriteContext(
                session,
                principal,
                lb,
                "create",
                message,
                touched={"load_balancer"},
                resource=("loadbalancer", ""),
            )
            yield ctx
            session.flush()
            ctx.resource = ("loadbalancer", lb.id)
            published = self._publish(ctx, "PENDING_CREATE")
        self._published(ctx, published.position)

    def _published(self, ctx: WriteContext, seq: int) -> None:
        """After the commit: wake the agents, count the write."""
        self.notify(seq)
        if self.observe is not None:
            self.observe(ctx.action, (ctx.resource or ("loadbalancer", ""))[0])

    def _publish(self, ctx: WriteContext, pending_status: str) -> feed.Pending:
        session, lb = ctx.session, ctx.lb
        session.flush()
        if session.info.pop(_RESHAPED, False):
            session.expire(lb, ["listeners", "pools"])  # see rows the caller added or removed
        deleting = ctx.action == "delete" and ctx.resource == ("loadbalancer", lb.id)
        if not deleting:
            tree.validate_tree(lb)
            _check_certificates(session, lb)
            member_addresses.check_members(session, lb)
        quotas.check(session, lb.project_id, ctx.touched, self.settings.quotas)
        config = "null" if deleting else tree.canonical(tree.config_of(lb))
        number = lb.revision + 1
        rtype, rid = ctx.resource or ("loadbalancer", lb.id)
        session.add(
            Revision(
                load_balancer_id=lb.id,
                project_id=lb.project_id,
                number=number,
                parent=lb.revision or None,
                author=ctx.principal.name,
                message=ctx.message or _summary(lb.current_config, config, f"{ctx.action} {rtype}"),
                config=config,
                digest=tree.digest(config),
                request_id=current_request_id(),
            )
        )
        pending = feed.record(session, "revision", [lb.id], stamp=[(lb, "revision_seq", lb.id)])
        lb.revision = ctx.revision = number
        lb.revision_request_id = current_request_id()  # the agents log it when they apply
        lb.current_config = config
        lb.provisioning_status = "PENDING_DELETE" if deleting else pending_status
        lb.provisioning_reason = None
        lb.pending_since = utcnow()
        if ctx.action != "create":
            lb.updated_at = lb.pending_since
        session.add(
            AuditEntry(
                project_id=lb.project_id,
                principal=ctx.principal.name,
                action=ctx.action,
                resource_type=rtype,
                resource_id=rid,
                load_balancer_id=lb.id,
                revision=number,
                detail=ctx.message,
            )
        )
        if lb.kind == "l7" and not deleting and lb.provider != "noop":
            placement.place(session, lb, self.settings)
        status.refresh(session, lb, self.settings, in_hand=True)
        if ctx.respond is not None:  # statuses settled, before the commit
            ctx.body = ctx.respond()
        return pending


# Set on a session when a row of a load balancer's tree was inserted, deleted or moved to
# another parent (its owner's key changed), by the unit of work or by a bulk statement: only
# then can the tree's loaded lists differ from the rows, and only then does _publish reload
# them. A bulk UPDATE that changes statuses only says so (status.STATUS_ONLY).
_RESHAPED = "shoal_tree_reshaped"
_OWNER_KEYS: dict[type, tuple[str, ...]] = {
    Listener: ("load_balancer_id",),
    Pool: ("load_balancer_id",),
    Member: ("pool_id",),
    HealthMonitor: ("pool_id",),
    L7Policy: ("listener_id",),
    L7Rule: ("l7policy_id",),
}


def _reshaped(mapper: Any, connection: Any, target: Any) -> None:
    session = object_session(target)
    if session is not None:
        session.info[_RESHAPED] = True


def _moved(mapper: Any, connection: Any, target: Any) -> None:
    attrs = sa_inspect(target).attrs
    if any(attrs[key].history.has_changes() for key in _OWNER_KEYS[type(target)]):
        _reshaped(mapper, connection, target)


def _bulk(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if state.is_update and state.execution_options.get(status.STATUS_ONLY):
        return
    if any(m.class_ in _OWNER_KEYS for m in state.all_mappers):
        state.session.info[_RESHAPED] = True


for _model in _OWNER_KEYS:
    event.listen(_model, "after_insert", _reshaped)
    event.listen(_model, "after_delete", _reshaped)
    event.listen(_model, "after_update", _moved)
event.listen(Session, "do_orm_execute", _bulk)


def _check_certificates(session: Session, lb: LoadBalancer) -> None:
    """Every certificate a listener names exists and belongs to the load balancer's project.
    Not for noop balancers: like Octavia's noop certificate manager, they read no
    certificate (nothing is configured), so any reference is taken as given."""
    if lb.provider == "noop":
        return
    for li in lb.listeners:
        refs = [li.default_tls_container_ref, *(li.sni_container_refs or [])]
        for ref in filter(None, refs):
            cert = session.get(Certificate, certs.cert_id_of(ref))
            if (cert is None or cert.project_id != lb.project_id) and certs.is_barbican_ref(ref):
                raise BadRequest(
                    f"listener {li.protocol}:{li.protocol_port}: {ref} is a Barbican "
                    "reference; this controller has no Barbican client. Upload the "
                    "certificate and key with `shoal certificate upload` (or POST "
                    "/v2/shoal/certificates) and pass the certificate id it returns"
                )
            if cert is None or cert.project_id != lb.project_id:
                raise BadRequest(
                    f"listener {li.protocol}:{li.protocol_port}: certificate "
                    f"{ref} does not exist in project {lb.project_id}"
                )


def _summary(before: str, after: str, fallback: str) -> str:
    """A revision's default message: what changed, as the readable diff says it."""
    old = json.loads(before) if before not in ("", "{}") else None
    changes = diff.diff_configs(old, json.loads(after)) if after != "null" else []
    if not changes:
        return fallback
    lines = diff.render_text(changes).splitlines()
    more = f" (+{len(lines) - 3} more)" if len(lines) > 3 else ""
    return "; ".join(lines[:3]) + more


def current_seq(session: Session) -> int:
    return feed.head(session)
