"""Compiled hot path of :func:`bidenv.auction.run_auction` (the ``"numba"`` backend).

Imported lazily by :mod:`bidenv.auction` the first time the numba backend clears an auction;
importing this module imports numba. Compiled code is cached on disk (``cache=True``), so only
the first call after installing (or editing this file) pays the compile time, once per bid
dtype (float32, float64).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def top_entering(bids, threshold, use_threshold, eligible, has_eligible, order, top):
    """Write each row's ``width`` largest entering bids, descending, into ``order``/``top``.

    Entry is exactly :func:`bidenv.auction.run_auction`'s: finite, ``> 0``, eligible
    (``eligible[r, a]`` when ``has_eligible``) and, when ``use_threshold``, ``>= threshold``
    (the float32-exact reserve threshold, passed as a float64 that holds it exactly).

    Args:
        bids: (n, k) C-contiguous float32 or float64 bids.
        threshold: Reserve threshold (used only when ``use_threshold``).
        use_threshold: Whether the reserve is positive.
        eligible: (n, k) bool mask, or any bool 2-D array when not ``has_eligible``.
        has_eligible: Whether ``eligible`` applies.
        order: (n, width) int64 output: advertiser indices, ``-1`` where fewer entered.
        top: (n, width) output in the bids' dtype: the bids, ``-inf`` where fewer entered.

    Equal bids keep column order (the lowest advertiser index first); only strictly larger
    bids displace a kept one.
    """
    n, k = bids.shape
    width = order.shape[1]
    last = width - 1
    for i in range(n):
        row = bids[i]
        o = order[i]
        t = top[i]
        count = 0
        for j in range(k):
            v = row[j]
            if count == width and not v > t[last]:
                continue  # not above the current top-width floor (NaN included)
            if use_threshold:
                if not v >= threshold:
                    continue
            elif not v > 0.0:
                continue
            if not v < np.inf:
                continue
            if has_eligible and not eligible[i, j]:
                continue
            if count < width:
                p = count
                count += 1
            else:
                p = last
            while p > 0 and v > t[p - 1]:
                t[p] = t[p - 1]
                o[p] = o[p - 1]
                p -= 1
            t[p] = v
            o[p] = j
        for p in range(count, width):
            t[p] = -np.inf
            o[p] = -1
