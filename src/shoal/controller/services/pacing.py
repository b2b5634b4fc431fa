"""Paces each node's feed answers under churn: after answering a node, the next answer with
changes waits until `min_interval` has passed, and then carries every change made meanwhile.
An idle node's first answer is not delayed, so one change alone is applied as fast as before;
a stream of changes costs one feed answer, one apply and one report per interval per node
instead of per change (Istio's control plane debounces its pushes the same way; see
"Pacing" in docs/controller.md). The state is this process's: after a switch to another
controller a node's first answer there is not paced."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["FeedPacer"]


class FeedPacer:
    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._last: dict[str, float] = {}  # node id -> when its last answer with changes went

    def delay(self, node_id: str) -> float:
        """Seconds this node's next answer with changes should wait (0: answer now)."""
        last = self._last.get(node_id)
        if last is None:
            return 0.0
        return max(0.0, last + self.min_interval - self._clock())

    def answered(self, node_id: str) -> None:
        """Records an answer with changes (only a node's own authenticated answers get here,
        so the table holds at most one entry per registered node)."""
        self._last[node_id] = self._clock()

    def forget(self, node_id: str) -> None:
        self._last.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._last)
