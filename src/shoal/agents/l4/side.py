"""What the L4 agent derives from its desired state besides the VIPs: the health checks it runs
(its load balancers' members, the L7 nodes' monitor endpoints the controller lists) and the
L7 nodes it watches itself. Kept per load balancer, so that a change costs what it changes:
only the load balancers the feed touched since the last look are translated again (found with
DesiredState.touched_since, or by identity when the state object is another one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.agents.health import CheckSpec, lb_check_specs, node_check_specs
from shoal.agents.l4.l7watch import L7Target
from shoal.agents.l4.translate import changed_keys, in_arrival_order
from shoal.wire.feed import DesiredState, L7Backend, LbState, NodeCheck

__all__ = ["NODE_CHECKS", "SideDelta", "SideParts"]

# The owner of the node's L7 checks among the load balancers' (an id no load balancer has).
NODE_CHECKS = " node"


@dataclass
class SideDelta:
    checks: dict[str, list[CheckSpec]] = field(default_factory=dict)  # owner -> its checks now
    gone: set[str] = field(default_factory=set)  # owners with no checks any more
    targets: dict[str, L7Target] | None = None  # every L7 target, when they changed


@dataclass
class SideParts:
    default_port: int  # an L7 node's monitor port when its check does not say
    _lbs: dict[str, LbState] = field(default_factory=dict)  # the objects looked at last
    _state: DesiredState | None = None  # the state looked at last, at _version
    _version: int = 0
    _node_checks: list[NodeCheck] | None = None
    # Load balancers placed on L7 nodes, most recently changed last (later ones win a
    # node's address, as in a walk of the desired state in its order).
    _l7: dict[str, list[L7Backend]] = field(default_factory=dict)

    def delta(self, desired: DesiredState) -> SideDelta:
        """What changed since the last call, for HealthScheduler.replace and L7Watch.update."""
        out = SideDelta()
        touched = desired.touched_since(self._version) if self._state is desired else None
        if touched is None:
            changed, gone = changed_keys(self._lbs, desired.lbs)
            self._lbs = dict(desired.lbs)
            if changed or gone:  # a new object: keep the desired order for the targets
                self._l7 = {k: lb.l7_nodes for k, lb in desired.lbs.items() if lb.l7_nodes}
                l7_moved = True
            else:
                l7_moved = False
        else:
            lbs = desired.lbs
            changed = [k for k in touched if k in lbs and lbs[k] is not self._lbs.get(k)]
            gone = {k for k in touched if k not in lbs and k in self._lbs}
            l7_moved = False
            for k in gone:
                del self._lbs[k]
                l7_moved |= self._l7.pop(k, None) is not None
            if len(changed) > 1:
                changed = in_arrival_order(lbs, touched, changed)
            for k in changed:
                lb = self._lbs[k] = lbs[k]
                l7_moved |= self._l7.pop(k, None) is not None or bool(lb.l7_nodes)
                if lb.l7_nodes:
                    self._l7[k] = lb.l7_nodes
        self._state, self._version = desired, desired.version
        out.gone = set(gone)
        for k in changed:
            out.checks[k] = lb_check_specs(desired.lbs[k])
        if desired.node_checks != self._node_checks:
            self._node_checks = list(desired.node_checks)
            out.checks[NODE_CHECKS] = node_check_specs(desired)
            l7_moved = True
        if l7_moved:
            ports = {c.node_id: c.port for c in desired.node_checks}
            out.targets = {
                n.id: L7Target(n.address, ports.get(n.id, self.default_port))
                for nodes in self._l7.values()
                for n in nodes
            }
        return out
