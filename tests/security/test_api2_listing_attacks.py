"""Attacks on listing: filters, markers and tags must never reach another project's rows."""
# ruff: noqa: F811  (pytest fixtures are imported, then named as parameters)

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.controller.settings import ControllerSettings
from tests.api.conftest import (  # noqa: F401  (fixtures)
    admin,
    alice,
    bob,
    client,
    database_url,
    make_settings,
    postgres_server,
)
from tests.api.helpers import Api


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> ControllerSettings:
    """The noop provider is off by default (enabled_providers); these tests use it."""
    return make_settings(database_url, tmp_path, enabled_providers=["shoal", "noop"])


LB = "/v2/lbaas/loadbalancers"


def test_project_filter_cannot_widen_a_members_view(alice: Api, bob: Api) -> None:
    secret = bob.lb(provider="noop", name="bobs", tags=["shared"])
    for params in (
        {"project_id": secret["project_id"]},
        {"tenant_id": secret["project_id"]},
        {"tags": "shared"},
        {"id": secret["id"]},
    ):
        assert alice.ok("GET", LB, **params)["loadbalancers"] == []


def test_another_projects_marker_is_indistinguishable_from_a_missing_one(
    alice: Api, bob: Api
) -> None:
    alice.lb(provider="noop")
    theirs = bob.lb(provider="noop")
    r1 = alice.request("GET", LB, **{"marker": theirs["id"]})
    r2 = alice.request("GET", LB, **{"marker": "11111111-1111-1111-1111-111111111111"})
    assert r1.status_code == r2.status_code == 400
    assert r1.json()["faultstring"].replace(theirs["id"], "X") == r2.json()["faultstring"].replace(
        "11111111-1111-1111-1111-111111111111", "X"
    )


def test_injection_through_tags_and_sort_is_inert(alice: Api) -> None:
    alice.lb(provider="noop", tags=["a"])
    for tag in ("a' OR '1'='1", '"a"', "%", "_", "a\\"):
        assert alice.ok("GET", LB, **{"tags": tag})["loadbalancers"] == []
    for sort in ("name;DROP TABLE load_balancers", "current_config", "tags"):
        assert alice.request("GET", LB, **{"sort": sort}).status_code == 400
    assert len(alice.ok("GET", LB)["loadbalancers"]) == 1


def test_noop_provider_never_reaches_the_agents(admin: Api, alice: Api) -> None:
    """A tenant cannot use the noop provider's relaxed rules to push a configuration that
    the agents would then apply (an SCTP listener, a UDP listener on an L7 balancer)."""
    lb = alice.lb(provider="noop")
    alice.listener(lb["id"], 9000, "SCTP")
    from shoal.controller.db.models import LoadBalancer
    from shoal.controller.services import desired

    client = alice.client
    state = client.app.state.shoal  # type: ignore[attr-defined]
    with state.db.read() as session:
        from shoal.controller.db.models import Node

        node = Node(id="n1", name="n1", role="l4", address="127.0.0.1", applied_seq=0)
        doc = desired.build(session, node, state.settings)
        assert lb["id"] not in doc
        assert session.get(LoadBalancer, lb["id"]).provider == "noop"
