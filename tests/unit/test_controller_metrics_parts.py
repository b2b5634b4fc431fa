"""Parts of the controller's metrics that need no database: route templates with their
router's prefix, long-poll waiters counted while they wait."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from shoal.controller.metrics import route_template, scrape_token_matches
from shoal.controller.services.notify import ChangeNotifier


def scope(path: str, template: str | None, **params: str) -> dict:
    route = SimpleNamespace(path=template, path_format=template) if template else None
    return {"path": path, "route": route, "path_params": params}


def test_templates_keep_their_prefix_and_hide_ids() -> None:
    t = "/loadbalancers/{lb_id}"
    assert route_template(scope("/v2/lbaas/loadbalancers/abc", t, lb_id="abc")) == (
        "/v2/lbaas/loadbalancers/{lb_id}"
    )
    assert route_template(scope("/v2.0/lbaas/loadbalancers/x", t, lb_id="x")) == (
        "/v2.0/lbaas/loadbalancers/{lb_id}"
    )
    # A value made to look like a template or a prefix stays out of the label.
    odd = "{lb_id}/v2/lbaas"
    assert route_template(scope(f"/v2/lbaas/loadbalancers/{odd}", t, lb_id=odd)) == (
        "/v2/lbaas/loadbalancers/{lb_id}"
    )
    assert route_template(scope("/anything/at/all", None)) == "unmatched"


def test_scrape_token_needs_an_exact_match() -> None:
    assert scrape_token_matches("s3cret", "s3cret")
    assert not scrape_token_matches("s3cret", "s3cre")
    assert not scrape_token_matches(None, "anything")  # no token configured: nobody
    assert not scrape_token_matches("s3cret", None)


def test_waiters_are_counted_while_they_wait() -> None:
    async def scenario() -> tuple[int, int, int]:
        n = ChangeNotifier()
        n.bind(asyncio.get_running_loop(), 5)
        tasks = [asyncio.create_task(n.wait_beyond(5, 30)) for _ in range(3)]
        await asyncio.sleep(0)
        during = n.waiters
        n.notify(6)
        results = await asyncio.gather(*tasks)
        return during, n.waiters, min(results)

    during, after, seq = asyncio.run(scenario())
    assert (during, after, seq) == (3, 0, 6)
