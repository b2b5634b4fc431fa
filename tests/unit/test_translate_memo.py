"""translate() from a memo (only the load balancers the feed touched since) and the agent's
kept parts (fit totals, owners, digests, announced addresses) equal a whole translation and
a whole recount after random feed deltas: member changes, new, deleted and clashing load
balancers."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.translate import Memo, translate
from shoal.bench.applycost import desired_state, load_balancer
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState, Feed

change = st.tuples(
    st.sampled_from(["weight", "add", "delete", "clash"]), st.integers(0, 11), st.integers(0, 3)
)


def _feed(seq: int, lbs: list[dict[str, Any]], deleted: list[str]) -> Feed:
    doc = {**desired_state(0, 4, seq), "snapshot": False, "load_balancers": lbs}
    return Feed.model_validate({**doc, "deleted": deleted})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.lists(change, min_size=1, max_size=3), min_size=1, max_size=6))
def test_memo_equals_whole(steps: list[list[tuple[str, int, int]]]) -> None:
    state = DesiredState.of(desired_state(8, 4))
    memo, cache = Memo(), {}  # type: ignore[var-annotated]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(controller="", token="", name="m", interface="lo", state_dir=Path(tmp))
        agent = L4Agent(cfg, cast(AgentApi, None))
        agent.lb = Balancer.fake(max_vips=64, max_backends=1024)
        try:
            agent.apply(state)
            for seq, changes in enumerate(steps, start=2):
                lbs, deleted = [], []
                for what, i, j in changes:
                    lb = load_balancer(i, 4)
                    lb["revision"] = seq
                    if what == "weight":
                        lb["config"]["pools"][0]["members"][j]["weight"] = seq % 3
                    elif what == "clash":  # another load balancer's VIP address
                        lb["config"]["vip_address"] = load_balancer((i + 1) % 12, 4)["config"][
                            "vip_address"
                        ]
                    if what == "delete":
                        deleted.append(lb["id"])
                    else:
                        lbs.append(copy.deepcopy(lb))
                state.merge(_feed(seq, lbs, deleted))
                fast = translate(state, None, cache, memo)
                whole = translate(state)
                assert fast.vips_by_lb == whole.vips_by_lb
                assert list(fast.vips_by_lb) == list(whole.vips_by_lb)
                assert fast.errors == whole.errors and fast.revisions == whole.revisions
                agent.apply(state)
                again = L4Agent(cfg, cast(AgentApi, None))
                again.lb = Balancer.fake(max_vips=64, max_backends=1024)
                again.apply(state)
                assert agent.vip_owner == again.vip_owner
                assert agent.digests == again.digests
                assert agent.errors == again.errors and agent.applied == again.applied
                assert set(agent._addresses) == set(again._addresses)
                assert agent._fit_totals == again._fit_totals
                again.health.close()
        finally:
            agent.health.close()
