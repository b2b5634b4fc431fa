"""Source of the session cache's fill table (docs/dataplane.md#session-cache): what share of
live flows a stripe of 4-way sets holds when flows land in sets at random (a seeded hash), as
a function of how many flows the stripe is asked to hold per entry it has.

Flows per set are Poisson(4 x fill) for a large stripe; a set holds min(flows, 4), so the share
held is E[min(X, 4)] / E[X]. Exact, no simulation: python docs/figures/sessions/set_fill.py"""

from __future__ import annotations

import math

WAYS = 4


def held_share(fill: float, ways: int = WAYS) -> float:
    lam = ways * fill
    p = [math.exp(-lam) * lam**k / math.factorial(k) for k in range(ways)]
    kept = sum(k * pk for k, pk in enumerate(p)) + ways * (1 - sum(p))
    return kept / lam


if __name__ == "__main__":
    print("| live flows / entries of the stripe | flows held (4 ways) | LRU hash |")
    print("|---:|---:|---:|")
    for fill in (0.1, 0.25, 0.5, 0.75, 1.0):
        print(f"| {fill:.2f} | {100 * held_share(fill):.2f} % | 100 % |")
