"""--wait: poll a load balancer until its nodes have applied the last change (ACTIVE), refused
it (ERROR), or, after a delete, until it is gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shoal.cli.client import ApiClient, ApiRequestError
from shoal.cli.common import err_console
from shoal.errors import ShoalError

__all__ = ["WaitError", "wait_for_lb"]

FIRST_POLL = 0.1  # most changes settle within a few agent round trips
MAX_POLL = 1.0


class WaitError(ShoalError):
    """The load balancer went to ERROR, or did not settle in time."""


def _lb_status(api: ApiClient, lb_id: str, gone: bool) -> dict[str, Any] | None:
    try:
        tree: dict[str, Any] = api.get(f"/v2/lbaas/loadbalancers/{lb_id}/status")["statuses"][
            "loadbalancer"
        ]
    except ApiRequestError as exc:
        if gone and exc.status == 404:
            return None
        raise
    return tree


def wait_for_lb(api: ApiClient, lb_id: str, timeout: float, gone: bool = False) -> None:
    """Returns once the load balancer is ACTIVE (or, with gone, deleted); raises WaitError on
    ERROR or after timeout seconds."""
    with err_console.status(f"waiting for load balancer {lb_id}") as spinner:
        done = _poll(api, lb_id, timeout, gone, spinner.update)
    err_console.print(done, style="green", highlight=False)


def _poll(
    api: ApiClient, lb_id: str, timeout: float, gone: bool, show: Callable[[str], None]
) -> str:
    start = time.monotonic()
    poll = FIRST_POLL
    label = lb_id
    while True:
        tree = _lb_status(api, lb_id, gone)
        if tree is None:
            return f"load balancer {label} deleted"
        label = tree.get("name") or lb_id
        state = tree["provisioning_status"]
        if state == "ACTIVE":
            return f"load balancer {label} is ACTIVE"
        if state == "ERROR":
            reason = " ".join(str(tree.get("provisioning_reason") or "no reason given").split())
            raise WaitError(f"load balancer {label} went to ERROR: {reason}")
        elapsed = time.monotonic() - start
        if elapsed >= timeout:
            raise WaitError(
                f"load balancer {label} is still {state} after {timeout:g} s; the change "
                f"goes on in the background (see: shoal status {lb_id})"
            )
        show(f"load balancer {label}: {state} ({elapsed:.0f} s)")
        time.sleep(min(poll, timeout - elapsed))
        poll = min(poll * 1.5, MAX_POLL)
