"""Compiled hot path of :func:`bidenv.auction.run_auction` (the ``"numba"`` backend).

Imported lazily by :mod:`bidenv.auction` the first time the numba backend clears an auction;
importing this module imports numba. Compiled code is cached on disk (``cache=True``), so only
the first call after installing (or editing this file) pays the compile time, once per bid
dtype (float32, float64).

How it is fast: a row-by-row insertion sort with an early reject spends most of its time on
mispredicted branches (which bids enter a row's top ``K + 1`` is data-dependent), so the kernel
has no data-dependent branch at all. It works on blocks of :data:`_BLOCK` rows: the block's
bids are masked (a bid that does not enter becomes ``-inf``) in one contiguous pass and
transposed, so that column ``j`` of the block is contiguous; then every column goes through a
branch-free insertion network applied to all the block's rows at once (a loop over rows that
the compiler vectorises: compares and selects, no fastmath, so the NaN semantics are IEEE's).
"""

from __future__ import annotations

import numba
import numpy as np

_BLOCK = 256
"""Rows per block: the block's transposed bids (``k * _BLOCK`` values) and its top-``width``
state stay in the L1/L2 cache."""


@numba.njit(cache=True, nogil=True, boundscheck=False)
def top_entering(bids, threshold, use_threshold, eligible, has_eligible, slots, has_slots,
                 order, top, tied):
    """Write each row's ``width`` largest entering bids, descending, into ``order``/``top``.

    Entry is exactly :func:`bidenv.auction.run_auction`'s: finite, ``> 0``, eligible
    (``eligible[r, a]`` when ``has_eligible``) and, when ``use_threshold``, ``>= threshold``
    (the reserve threshold: positive, and exactly representable in the bids' dtype, which
    run_auction's float32-exact threshold is).

    Args:
        bids: (n, k) C-contiguous float32 or float64 bids.
        threshold: Reserve threshold (used only when ``use_threshold``).
        use_threshold: Whether the reserve is positive.
        eligible: (n, k) C-contiguous bool mask, or any C-contiguous bool 2-D array when not
            ``has_eligible``.
        has_eligible: Whether ``eligible`` applies.
        slots: (n,) C-contiguous int64 per-row slot counts ``K_r`` (``1 <= K_r <= width - 1``),
            or any int64 1-D array when not ``has_slots`` (then every row has ``width - 1``).
        has_slots: Whether ``slots`` applies.
        order: (n, width) int64 output: advertiser indices, ``-1`` where fewer entered.
        top: (n, width) output in the bids' dtype: the bids, ``-inf`` where fewer entered.
        tied: (n,) bool output: whether the row's outcome depends on a tie, by the rule of
            :func:`bidenv.auction._tied_rows` (the one definition): two adjacent equal
            entering bids among the row's first ``K_r + 1`` sorted ones, i.e.
            ``top[r, p] == top[r, p + 1] > -inf`` for some ``p < K_r``.

    Equal bids keep column order (the lowest advertiser index first); only strictly larger
    bids displace a kept one. The result is that of an insertion sort of the row's entering
    bids in column order.
    """
    n, k = bids.shape
    width = order.shape[1]
    k_max = width - 1
    dt = bids.dtype
    # Constants in the bids' dtype (float32 bids are never converted to float64).
    consts = np.empty(2, dt)
    consts[0] = -np.inf
    consts[1] = threshold if use_threshold else 0.0
    ninf = consts[0]
    thr = consts[1]
    zero = thr - thr
    inf = -ninf
    flat = bids.reshape(n * k)
    eflat = eligible.reshape(eligible.size)
    masked = np.empty(_BLOCK * k, dt)  # the block's entering bids, row-major
    cols = np.empty((k, _BLOCK), dt)  # the same, transposed
    # The block's top-width values and (int32) indices, position-major, double-buffered: a
    # column reads one buffer and writes the other, so every store is a plain vector store.
    s_cur = np.empty((width, _BLOCK), dt)
    s_new = np.empty((width, _BLOCK), dt)
    p_cur = np.empty((width, _BLOCK), np.int32)
    p_new = np.empty((width, _BLOCK), np.int32)
    for i0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - i0)
        # Entering bids (v >= thr, v != 0 stands for v > 0 when there is no threshold; NaN
        # fails every compare) and -inf elsewhere, in one contiguous pass.
        src = flat[i0 * k:(i0 + m) * k]
        if has_eligible:
            esrc = eflat[i0 * k:(i0 + m) * k]
            for t in range(m * k):
                v = src[t]
                ok = (v >= thr) & (v != zero) & (v < inf) & esrc[t]
                masked[t] = v if ok else ninf
        else:
            for t in range(m * k):
                v = src[t]
                ok = (v >= thr) & (v != zero) & (v < inf)
                masked[t] = v if ok else ninf
        for j in range(k):
            cj = cols[j]
            for r in range(m):
                cj[r] = masked[r * k + j]
        for q in range(width):
            sq = s_cur[q]
            pq = p_cur[q]
            for r in range(m):
                sq[r] = ninf
                pq[r] = -1
        # Insert column j into every row's sorted top-width (strict >: an equal bid stays
        # behind; -inf, i.e. not entering, never moves in).
        for j in range(k):
            jj = np.int32(j)
            cj = cols[j]
            for q in range(width - 1, 0, -1):
                sa = s_cur[q - 1]
                sb = s_cur[q]
                pa = p_cur[q - 1]
                pb = p_cur[q]
                sn = s_new[q]
                pn = p_new[q]
                for r in range(m):
                    x = cj[r]
                    a = sa[r]
                    b = sb[r]
                    ia = pa[r]
                    ib = pb[r]
                    above = x > a
                    here = x > b
                    vb = x if here else b
                    sn[r] = a if above else vb
                    jb = jj if here else ib
                    pn[r] = ia if above else jb
            sa = s_cur[0]
            pa = p_cur[0]
            sn = s_new[0]
            pn = p_new[0]
            for r in range(m):
                x = cj[r]
                a = sa[r]
                ia = pa[r]
                above = x > a
                sn[r] = x if above else a
                pn[r] = jj if above else ia
            s_cur, s_new = s_new, s_cur
            p_cur, p_new = p_new, p_cur
        for r in range(m):
            i = i0 + r
            for q in range(width):
                top[i, q] = s_cur[q, r]
                order[i, q] = p_cur[q, r]
            kr = min(slots[i], k_max) if has_slots else k_max
            tie = False
            for p in range(kr):
                tie |= (s_cur[p, r] == s_cur[p + 1, r]) & (s_cur[p, r] > ninf)
            tied[i] = tie
