"""The exact multiple-choice knapsack that picks one batch size per component under a memory budget. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

_DP_BUCKETS = 1000


def knapsack(items: Sequence[str], options: Mapping[str, Sequence[int]], mem, time, room: int
              ) -> dict[str, int] | None:
    """Pick one batch size per item minimising (summed time, summed requests) with summed memory <= room."""
    tr = {(c, b): (round(time(c, b)[0], 9), time(c, b)[1]) for c in items for b in options[c]}
    best_each = {c: min(options[c], key=lambda b, c=c: (*tr[(c, b)], b)) for c in items}
    if sum(mem(c, b) for c, b in best_each.items()) <= room:
        return best_each
    unit = max(1.0, room / _DP_BUCKETS)
    # state: bucket -> (time, requests, choices)
    states: dict[int, tuple[float, int, tuple[int, ...]]] = {0: (0.0, 0, ())}
    for c in items:
        nxt: dict[int, tuple[float, int, tuple[int, ...]]] = {}
        for b in options[c]:
            m = mem(c, b)
            if m > room:
                continue
            w = math.ceil(m / unit)
            t, r = time(c, b)
            for bucket, (t0, r0, ch) in states.items():
                nb = bucket + w
                if nb * unit > room:  # memory is rounded up to buckets: every kept state fits
                    continue
                ct, cr = t0 + t, r0 + r
                cur = nxt.get(nb)
                # less time (beyond float noise), then fewer requests
                if cur is None or ct < cur[0] - 1e-9 or (ct <= cur[0] + 1e-9 and cr < cur[1]):
                    nxt[nb] = (ct, cr, (*ch, b))
        states = nxt
        if not states:
            return None
    best = None
    for _, (t, r, ch) in states.items():
        picked = dict(zip(items, ch, strict=False))
        if sum(mem(c, b) for c, b in picked.items()) > room:
            continue
        if best is None or (round(t, 9), r) < (round(best[0], 9), best[1]):
            best = (t, r, picked)
    return best[2] if best else None
