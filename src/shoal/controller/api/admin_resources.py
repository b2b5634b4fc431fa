"""Octavia's admin-defined catalogue (flavor profiles, flavors, availability zone profiles,
availability zones): the same five handlers for each, parameterised by an AdminResource.

Admins write all four; profiles are read by admins only, flavors and zones by any role that
reads load balancers. An object something uses cannot be deleted (409, Octavia's text)."""

# No `from __future__ import annotations`: the handlers below are built per resource, and
# FastAPI must see their parameter types (the path alias, the body model) as objects.

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import InstrumentedAttribute

from shoal.controller.api.common import list_collection, name_taken, select_fields
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.errors import BadRequest, Conflict, Forbidden, NotFound
from shoal.controller.rbac import NO_ROLE_MESSAGE
from shoal.controller.services import flavors, providers

__all__ = ["AdminResource", "catalogue_entry", "in_use", "mount", "profile", "require_reader"]

# (state, session, the create body's inner object) -> None, or raises a 4xx
CreateCheck = Callable[[Any, Session, Any], None]
# (state, session, row, changes) -> None, or raises a 4xx
UpdateCheck = Callable[[Any, Session, Any, dict[str, Any]], None]


def require_reader(principal: Principal) -> None:
    """load-balancer:read: any role that may read load balancers."""
    if principal.role not in ("admin", "member", "reader") and not principal.global_read:
        raise Forbidden(NO_ROLE_MESSAGE)


def in_use(label: str, ident: str) -> Conflict:
    return Conflict(f"{label} {ident} is in use and cannot be modified.")


@dataclass(frozen=True)
class AdminResource:
    model: type[Any]
    view: Callable[[Any], dict[str, Any]]
    key: str  # the body's and the answer's key: "flavor"
    collection: str  # the list's key: "flavors"
    path: str  # "/flavors"
    label: str  # in 404 and 409 texts: "Flavor"
    names: tuple[str, str]  # handler names (OpenAPI ids): ("flavors", "flavor")
    create_body: type[Any]
    update_body: type[Any]
    lookup_by: tuple[str, ...]  # columns the path segment may name, tried in order
    used_by: tuple[InstrumentedAttribute[Any], str]  # (column, row attribute it refers to)
    check_create: CreateCheck
    check_update: UpdateCheck
    admin_reads: bool = False  # profiles: admins only
    null_updates: bool = False  # profiles: a null value is refused (400), not ignored
    param: str = "ident"  # the path parameter's name
    default_sort: Sequence[str] = ("id",)
    links_key: str | None = None

    def lookup(self, session: Session, ident: str) -> Any:
        for column in self.lookup_by:
            if column == "id":
                row = session.get(self.model, ident)
            else:
                row = session.scalar(select(self.model).where(getattr(self.model, column) == ident))
            if row is not None:
                return row
        raise NotFound(f"{self.label} {ident} not found.")

    def is_used(self, session: Session, row: Any) -> bool:
        column, attr = self.used_by
        return bool(session.scalar(select(func.count()).where(column == getattr(row, attr))))

    def require_read(self, principal: Principal) -> None:
        if self.admin_reads:
            principal.require_admin()
        else:
            require_reader(principal)

    def changes(self, spec: Any) -> dict[str, Any]:
        changes: dict[str, Any] = spec.model_dump(exclude_unset=True)
        if not self.null_updates:
            return {k: v for k, v in changes.items() if v is not None}
        if any(v is None for v in changes.values()):
            key = next(k for k, v in changes.items() if v is None)
            raise BadRequest(f"None is not a valid option for {key}")
        return changes


def profile(
    *, data_field: str, validate: Callable[[Any, dict[str, Any]], None], **fields: Any
) -> AdminResource:
    """A profile: a provider and metadata (a JSON text) that provider validates. Neither may
    change while something uses the profile."""

    def check(state: Any, provider_name: str, raw: str) -> None:
        provider = providers.get(provider_name, state.settings.enabled_providers)
        validate(provider, flavors.parse_metadata(raw, data_field))

    def check_create(state: Any, session: Session, spec: Any) -> None:
        check(state, spec.provider_name, getattr(spec, data_field))

    def check_update(state: Any, session: Session, row: Any, changes: dict[str, Any]) -> None:
        if {"provider_name", data_field} & set(changes):
            if resource.is_used(session, row):
                raise in_use(resource.label, row.id)
            check(
                state,
                changes.get("provider_name", row.provider_name),
                changes.get(data_field, getattr(row, data_field)),
            )

    resource = AdminResource(
        check_create=check_create,
        check_update=check_update,
        admin_reads=True,
        null_updates=True,
        lookup_by=("id",),
        **fields,
    )
    return resource


def catalogue_entry(
    *, profile_model: type[Any], profile_field: str, **fields: Any
) -> AdminResource:
    """A flavor or zone: a unique name and the profile it takes its provider and metadata from."""
    noun = fields["label"].lower()

    def check_create(state: Any, session: Session, spec: Any) -> None:
        profile_id = getattr(spec, profile_field)
        if session.get(profile_model, profile_id) is None:
            raise BadRequest(f"{profile_id} is not a valid option for {profile_field}")
        if name_taken(session, fields["model"], spec.name):
            raise Conflict(f"A {noun} of {spec.name} already exists.")

    def check_update(state: Any, session: Session, row: Any, changes: dict[str, Any]) -> None:
        if name_taken(session, fields["model"], changes.get("name"), row.name):
            raise Conflict(f"A {noun} of {changes['name']} already exists.")

    return AdminResource(check_create=check_create, check_update=check_update, **fields)


def mount(router: APIRouter, r: AdminResource) -> None:
    """Adds the list, create, show, update and delete handlers of r to router."""
    plural, singular = r.names

    def list_all(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
        r.require_read(principal)
        with state.db.read() as session:
            return list_collection(
                session,
                r.model,
                principal,
                request,
                select(r.model),
                r.view,
                r.collection,
                computed=(),
                scoped=False,
                default_sort=r.default_sort,
                links_key=r.links_key,
                verbatim=frozenset({"id"}),
            )

    def create(body: Any, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
        principal.require_admin()
        spec = getattr(body, r.key)
        with state.db.write() as session:
            r.check_create(state, session, spec)
            row = r.model(**spec.model_dump())
            session.add(row)
            session.flush()
            return {r.key: r.view(row)}

    def get(
        ident: Annotated[str, Path(alias=r.param)],
        request: Request,
        state: State,
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        r.require_read(principal)
        with state.db.read() as session:
            return {r.key: select_fields(request, [r.view(r.lookup(session, ident))])[0]}

    def update(
        ident: Annotated[str, Path(alias=r.param)],
        body: Any,
        state: State,
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        principal.require_admin()
        changes = r.changes(getattr(body, r.key))
        with state.db.write() as session:
            row = r.lookup(session, ident)
            r.check_update(state, session, row, changes)
            for key, value in changes.items():
                setattr(row, key, value)
            return {r.key: r.view(row)}

    def delete(
        ident: Annotated[str, Path(alias=r.param)], state: State, principal: CurrentPrincipal
    ) -> Response:
        principal.require_admin()
        with state.db.write() as session:
            row = r.lookup(session, ident)
            if r.is_used(session, row):
                raise in_use(r.label, ident)
            session.delete(row)
        return Response(status_code=204)

    # The body models differ per resource: FastAPI reads them from the annotations.
    create.__annotations__["body"] = r.create_body
    update.__annotations__["body"] = r.update_body
    one = f"{r.path}/{{{r.param}}}"
    router.add_api_route(r.path, list_all, methods=["GET"], name=f"list_{plural}")
    router.add_api_route(
        r.path, create, methods=["POST"], status_code=201, name=f"create_{singular}"
    )
    router.add_api_route(one, get, methods=["GET"], name=f"get_{singular}")
    router.add_api_route(one, update, methods=["PUT"], name=f"update_{singular}")
    router.add_api_route(
        one, delete, methods=["DELETE"], status_code=204, name=f"delete_{singular}"
    )
