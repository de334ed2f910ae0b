"""Vectorised multi-slot ad auctions.

One call to :func:`run_auction` clears every opportunity (row) of a time tick at
once: ``bids`` is an ``(n, k)`` array holding the bid of each of the ``k``
advertisers on each of the ``n`` opportunities, and each row is an independent
auction for up to ``K`` ad slots ranked top to bottom (slot 0 is the top slot).

Entry
    Advertiser ``a`` enters row ``r`` iff it is eligible there (``eligible[r, a]``
    when a mask is given), its bid is finite, ``bid >= reserve`` and ``bid > 0``.
    Bids that do not enter can neither win nor set a price.

Allocation
    In every mechanism the ``K_r`` highest entering bids of row ``r`` win the
    ``K_r`` slots of that row in descending order of bid; ``K_r`` is the row's
    slot count (``n_slots``, a scalar or one value per row). When fewer than
    ``K_r`` advertisers enter, the lowest slots stay unfilled (winner ``-1``).

Pricing (``b_j`` is the ``j``-th highest entering bid of the row, 1-based;
a missing bid counts as the reserve)
    ``"gsp"``
        Generalised second price: slot ``j`` pays ``max(reserve, b_{j+1})``.
        With one slot this is the classic second-price (Vickrey) auction.
    ``"first_price"``
        Every winner pays its own bid.
    ``"vcg"``
        Vickrey-Clarke-Groves with marginal exposure probabilities
        ``e_1 >= ... >= e_{K_r}`` (``exposure``) and ``e_{K_r+1} = 0``. Slot ``j``
        pays, per exposure, ``sum_{l=j}^{K_r} (e_l - e_{l+1}) / e_j *
        max(reserve, b_{l+1})``, i.e. the externality it imposes on the
        advertisers below it divided by its own exposure probability. If
        ``e_j == 0`` the GSP price is used. VCG prices never exceed GSP prices
        and coincide with them for ``K = 1``.

Conventions
    * Prices are **per exposure**: ``prices[r, j]`` is what the winner of slot
      ``j`` pays *if* the slot is shown/clicked (whatever event the caller
      bills on). This module draws no exposures; applying the (cascaded)
      exposure model and charging only exposed slots is the caller's job.
    * ``least_winning_cost[r]`` is ``max(reserve, b_{K_r+1})``: the clearing
      price of the row's last slot, i.e. the smallest bid that would have won
      a slot in that row. It equals the reserve when fewer than ``K_r + 1``
      advertisers entered.
    * Ties between equal bids are broken uniformly at random with the numpy
      ``Generator`` passed as ``rng``. Only rows whose outcome depends on a tie
      (equal bids among the top ``K_r``, or a tie straddling the ``K_r`` /
      ``K_r + 1`` boundary) are re-ranked, so no random numbers are drawn at all
      for tie-free inputs and their results do not depend on the ``rng`` state.

Rows are processed in chunks of ``chunk_rows`` rows so that the working set
stays in cache. The entry test and the top ``K + 1`` entering bids of each row
come from one of two backends, chosen in one place (:data:`BACKEND`,
:func:`set_backend`):

``"numba"`` (the default when numba is importable)
    A compiled kernel makes one pass over each row, testing entry and keeping
    the ``K + 1`` largest entering bids in an insertion-sorted buffer.
``"numpy"`` (the fallback, or forced with the environment variable
    ``BIDENV_NUMBA=0``)
    ``np.argpartition`` finds the top ``K + 1`` bids and only those columns
    are sorted.

Both feed the same tie-breaking and pricing code, so results, and the
``rng`` state afterwards, are identical. The only freedom is one neither
mechanism exposes: which of several *equal* bids fills an ``order`` position
whose tie no outcome depends on (a tie between the last of the ``K_r + 1``
reported bids and an unreported one); the numpy backend leaves that to
``argpartition``, the numba one takes the lowest advertiser index.
"""

from __future__ import annotations

import contextlib
import importlib.util
import numbers
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from bidenv.validation import check_choice, check_int, check_number

__all__ = ["BACKENDS", "MECHANISMS", "AuctionResult", "numba_available", "run_auction",
           "set_backend", "use_backend", "validate_exposure"]

MECHANISMS: tuple[str, ...] = ("gsp", "first_price", "vcg")
"""Names of the supported pricing mechanisms."""

BACKENDS: tuple[str, ...] = ("numba", "numpy")
"""Backends that find each row's entering bids and their top ``K + 1``."""


def numba_available() -> bool:
    """Whether numba is installed (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _default_backend() -> str:
    """``"numba"`` if it is installed and ``BIDENV_NUMBA`` is not ``0``, else ``"numpy"``."""
    off = os.environ.get("BIDENV_NUMBA", "").strip().lower() in ("0", "false", "no", "off")
    return "numba" if not off and numba_available() else "numpy"


BACKEND: str = _default_backend()
"""The backend :func:`run_auction` uses; change it with :func:`set_backend` only."""


def set_backend(name: str | None = None) -> str:
    """Choose the auction backend for the whole process; returns the previous one.

    Args:
        name: ``"numba"``, ``"numpy"``, or ``None`` for the default (numba if it is
            installed and the environment variable ``BIDENV_NUMBA`` is not ``0``).

    Raises:
        ValueError: If ``name`` is unknown, or ``"numba"`` while numba is not installed.
    """
    global BACKEND
    previous = BACKEND
    if name is None:
        name = _default_backend()
    check_choice("backend", name, BACKENDS)
    if name == "numba" and not numba_available():
        raise ValueError("backend 'numba' needs numba: pip install numba")
    BACKEND = name
    return previous


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[str]:
    """Context manager: run the block with backend ``name`` (see :func:`set_backend`)."""
    previous = set_backend(name)
    try:
        yield BACKEND
    finally:
        set_backend(previous)


class AuctionResult(NamedTuple):
    """Outcome of :func:`run_auction` for ``n`` rows and ``K`` slots.

    Attributes:
        order: ``(n, K + 1)`` int64 advertiser indices of the ``K + 1`` highest
            entering bids of each row, in descending order of bid; ``-1`` where
            fewer than ``K + 1`` advertisers entered.
        top_bids: ``(n, K + 1)`` bid values in the order of ``order`` (same
            dtype as the bids); ``-inf`` where ``order`` is ``-1``.
        winners: ``(n, K)`` int64 advertiser in slot ``j`` (0 = top slot);
            ``-1`` if the slot is unfilled or ``j`` is not below the row's slot
            count.
        prices: ``(n, K)`` float64 price per exposure that the winner of the
            slot pays if the slot is exposed; ``0.0`` where ``winners`` is -1.
        least_winning_cost: ``(n,)`` float64 ``max(reserve, b_{K_r+1})``, the
            clearing price of the row's last slot (the reserve when fewer than
            ``K_r + 1`` advertisers entered).
    """

    order: np.ndarray
    top_bids: np.ndarray
    winners: np.ndarray
    prices: np.ndarray
    least_winning_cost: np.ndarray


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _check_exposure_rows(arr: np.ndarray, name: str) -> None:
    """Check that every row (last axis) of ``arr`` is a valid exposure curve.

    Args:
        arr: Float array, 1-D or 2-D; the last axis runs down the page.
        name: Parameter name used in error messages.

    Raises:
        ValueError: If a value is not finite or outside ``[0, 1]``, or a row
            increases down the page.
    """
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} must contain only finite values in [0, 1], got {arr!r}"
        )
    if np.any(arr < 0.0) or np.any(arr > 1.0):
        bad = arr[(arr < 0.0) | (arr > 1.0)].flat[0]
        raise ValueError(f"{name} values must be in [0, 1], got {bad!r}")
    if arr.shape[-1] > 1 and np.any(np.diff(arr, axis=-1) > 0.0):
        raise ValueError(
            f"{name} must be non-increasing down the page (slot 0 first), got {arr!r}"
        )


def validate_exposure(exposure: Any) -> np.ndarray:
    """Validate a per-slot marginal exposure curve.

    Args:
        exposure: 1-D sequence of marginal exposure probabilities, one per slot
            from the top slot down: values in ``[0, 1]``, non-increasing,
            at least one entry.

    Returns:
        The exposure probabilities as a new float64 array.

    Raises:
        ValueError: If ``exposure`` (reported as ``slot_exposure``) is not a
            non-empty 1-D sequence of numbers in ``[0, 1]`` that is
            non-increasing.

    Examples:
        >>> validate_exposure([1.0, 0.5, 0.25]).tolist()
        [1.0, 0.5, 0.25]
    """
    try:
        arr = np.array(exposure, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"slot_exposure must be a 1-D sequence of numbers in [0, 1], got {exposure!r}"
        ) from exc
    if arr.ndim != 1:
        raise ValueError(
            f"slot_exposure must be 1-D (one value per slot), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError("slot_exposure must have at least 1 slot, got 0 values")
    _check_exposure_rows(arr, "slot_exposure")
    return arr


def _as_bids(bids: Any) -> np.ndarray:
    """Return ``bids`` as a 2-D float32/float64 array (no copy when possible)."""
    arr = np.asarray(bids)
    if arr.ndim != 2:
        raise ValueError(
            f"bids must be a 2-D array of shape (n_opportunities, n_advertisers), "
            f"got {arr.ndim}-D array of shape {arr.shape}"
        )
    if arr.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"bids must be a numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    return arr


def _as_slots(n_slots: Any, n: int) -> tuple[int, np.ndarray | None]:
    """Validate ``n_slots``; return ``(K, per_row_counts_or_None)``."""
    # Invalid types raise ValueError too (project convention), hence noqa TRY004.
    if isinstance(n_slots, (bool, np.bool_)):
        raise ValueError(  # noqa: TRY004
            f"n_slots must be an int >= 1 or an (n,) int array, got {n_slots!r}"
        )
    if isinstance(n_slots, numbers.Integral):
        k_max = int(n_slots)
        if k_max < 1:
            raise ValueError(f"n_slots must be >= 1, got {k_max}")
        return k_max, None
    arr = np.asarray(n_slots)
    if arr.ndim == 0:
        raise ValueError(
            f"n_slots must be an int >= 1 or an (n,) int array, got {n_slots!r}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"n_slots array must have an integer dtype, got {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(
            f"n_slots array must have shape (n,) = ({n},) matching bids, got {arr.shape}"
        )
    if n == 0:
        return 1, arr.astype(np.int64)
    lo = int(arr.min())
    if lo < 1:
        raise ValueError(f"n_slots values must be in [1, max(n_slots)], got {lo}")
    return int(arr.max()), arr.astype(np.int64, copy=False)


def _as_run_exposure(exposure: Any, n: int, k_max: int) -> np.ndarray:
    """Validate the ``exposure`` argument of :func:`run_auction` for VCG.

    Returns a float64 array of shape ``(K,)`` or ``(n, K)`` (extra trailing
    slots beyond ``K`` are dropped).
    """
    if exposure is None:
        raise ValueError(
            "exposure is required for mechanism 'vcg': pass marginal exposure "
            "probabilities of shape (K,) or (n, K), got None"
        )
    try:
        arr = np.array(exposure, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"exposure must be a numeric array of shape ({k_max},) or ({n}, {k_max}), "
            f"got {exposure!r}"
        ) from exc
    if arr.ndim == 1:
        ok = arr.shape[0] >= k_max
    elif arr.ndim == 2:
        ok = arr.shape[0] == n and arr.shape[1] >= k_max
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"exposure must have shape (K,) = ({k_max},) or (n, K) = ({n}, {k_max}), "
            f"got {arr.shape}"
        )
    arr = np.ascontiguousarray(arr[..., :k_max])
    if arr.size:
        _check_exposure_rows(arr, "exposure")
    return arr


def _as_eligible(eligible: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """Validate the eligibility mask; return it as a bool array or None."""
    if eligible is None:
        return None
    arr = np.asarray(eligible)
    if arr.shape != shape:
        raise ValueError(
            f"eligible must have the shape of bids {shape}, got {arr.shape}"
        )
    if arr.dtype != np.bool_:
        arr = arr.astype(bool)
    return arr


def _float32_threshold(reserve: float) -> np.float32:
    """Smallest float32 ``t`` with ``t >= reserve`` (so ``b >= t`` is exact)."""
    t = np.float32(reserve)
    if float(t) < reserve:
        t = np.nextafter(t, np.float32(np.inf))
    return t


# --------------------------------------------------------------------------- #
# Core
# --------------------------------------------------------------------------- #


def run_auction(
    bids: Any,
    *,
    n_slots: int | np.ndarray,
    rng: np.random.Generator,
    reserve: float = 0.0,
    mechanism: str = "gsp",
    exposure: Any = None,
    eligible: Any = None,
    chunk_rows: int = 16384,
    row_groups: Any = None,
) -> AuctionResult:
    """Clear a multi-slot auction on every row of ``bids``.

    Args:
        bids: ``(n, k)`` float array (float32 or float64; other numeric
            dtypes are converted to float64) of bids by ``k`` advertisers on
            ``n`` opportunities. Not modified.
        n_slots: Number of slots ``K >= 1``, or an ``(n,)`` integer array of
            per-row slot counts ``K_r >= 1`` (then ``K = max(K_r)``).
        rng: Generator used only to break ties that affect the outcome.
        reserve: Reserve price ``>= 0``; bids below it do not enter and every
            price is at least the reserve.
        mechanism: One of :data:`MECHANISMS`: ``"gsp"``, ``"first_price"`` or
            ``"vcg"``.
        exposure: Marginal exposure probabilities per slot, shape ``(K,)`` or
            ``(n, K)``, non-increasing down the page, values in ``[0, 1]``.
            Required for ``"vcg"``, ignored otherwise. Extra trailing slots
            beyond ``K`` are ignored.
        eligible: Optional ``(n, k)`` boolean mask; advertiser ``a`` may only
            enter row ``r`` if ``eligible[r, a]``. ``None`` means all eligible.
        chunk_rows: Rows processed per chunk (memory/cache trade-off only).
        row_groups: Optional ``(G + 1,)`` non-decreasing row offsets from 0 to ``n``:
            rows ``row_groups[g]:row_groups[g + 1]`` are group ``g`` (e.g. one day's tick of
            several days cleared in one pass), and ``rng`` is then a sequence of ``G``
            generators, group ``g`` breaking its ties with ``rng[g]``. Each group's result,
            and what its generator draws, is exactly that of clearing its rows alone.

    Returns:
        An :class:`AuctionResult` with ``order``/``top_bids`` of shape
        ``(n, K + 1)``, ``winners``/``prices`` of shape ``(n, K)`` and
        ``least_winning_cost`` of shape ``(n,)``.

    Raises:
        ValueError: If ``bids`` is not 2-D, ``mechanism`` is unknown,
            ``reserve`` is negative or not finite, ``n_slots`` is not >= 1 or
            has the wrong shape, ``exposure`` is missing (for VCG), invalid or
            of the wrong shape, ``eligible`` has the wrong shape, or
            ``chunk_rows`` is < 1.
        TypeError: If ``rng`` is not a ``numpy.random.Generator``.

    Examples:
        >>> import numpy as np
        >>> res = run_auction(np.array([[3.0, 1.0, 2.0]]), n_slots=2,
        ...                   rng=np.random.default_rng(0))
        >>> res.winners.tolist(), res.prices.tolist()
        ([[0, 2]], [[2.0, 1.0]])
        >>> res.least_winning_cost.tolist()
        [1.0]
    """
    bids_arr = _as_bids(bids)
    n, k = bids_arr.shape
    check_choice("mechanism", mechanism, MECHANISMS)
    reserve = check_number("reserve", reserve, 0.0)
    k_max, row_slots = _as_slots(n_slots, n)
    expo = _as_run_exposure(exposure, n, k_max) if mechanism == "vcg" else None
    elig = _as_eligible(eligible, (n, k))
    chunk_rows = check_int("chunk_rows", chunk_rows, 1)
    bounds, rngs = _as_groups(row_groups, rng, n)

    width = k_max + 1
    dtype = bids_arr.dtype
    order = np.empty((n, width), dtype=np.int64)
    top_bids = np.empty((n, width), dtype=dtype)
    winners = np.empty((n, k_max), dtype=np.int64)
    prices = np.empty((n, k_max), dtype=np.float64)
    lwc = np.empty(n, dtype=np.float64)

    if dtype == np.float32:
        threshold = _float32_threshold(reserve) if reserve > 0.0 else None
    else:
        threshold = np.float64(reserve) if reserve > 0.0 else None
    chunk = int(min(chunk_rows, max(n, 1)))
    slot_cols = np.arange(k_max)

    kernel = _numba_kernel() if BACKEND == "numba" and n > 0 else None
    if kernel is not None:
        # One compiled pass: entry and the top K + 1 entering bids of every row.
        if elig is None:
            elig_arg, has_elig = np.ones((1, 1), dtype=bool), False
        else:
            elig_arg, has_elig = np.ascontiguousarray(elig), True
        # It also flags the rows with a tie to break, by _tied_rows's rule (the definition).
        slots_arg = np.zeros(1, np.int64) if row_slots is None else np.ascontiguousarray(row_slots)
        flagged = np.empty(n, dtype=bool)
        kernel(np.ascontiguousarray(bids_arr), 0.0 if threshold is None else float(threshold),
               threshold is not None, elig_arg, has_elig, slots_arg, row_slots is not None,
               order, top_bids, flagged)
    else:
        masked_buf, mask_buf, tmp_buf = _workspace(chunk, k, dtype)

    # Chunks restart at every group, so that each group is chunked (and its ties drawn)
    # exactly as alone.
    segments = [(start, min(start + chunk, hi), g_rng)
                for lo, hi, g_rng in zip(bounds[:-1], bounds[1:], rngs)
                for start in range(lo, hi, chunk)]
    if kernel is not None:
        # Every row's candidates are known: look only at the chunks with a tie to break.
        for start, stop, g_rng in segments:
            if not flagged[start:stop].any():
                continue
            b = bids_arr[start:stop]
            el = None if elig is None else elig[start:stop]
            o, vals = order[start:stop], top_bids[start:stop]
            if _break_ties(
                lambda rows, b=b, el=el: _entry_values(
                    b[rows], threshold, None if el is None else el[rows]),
                o, vals, k_max, None if row_slots is None else row_slots[start:stop], g_rng,
            ):
                none = vals <= 0
                o[none] = -1
                vals[none] = -np.inf
        # Pricing is row by row: chunks of the whole array, whatever the groups.
        segments = [(start, min(start + chunk, n), None) for start in range(0, n, chunk)]

    for start, stop, g_rng in segments:
        m = stop - start
        kr = None if row_slots is None else row_slots[start:stop]
        o = order[start:stop]
        if kernel is not None:
            vals = top_bids[start:stop]
        else:
            el = None if elig is None else elig[start:stop]
            masked = _entry_values(bids_arr[start:stop], threshold, el, masked_buf[:m],
                                   mask_buf[:m], tmp_buf[:m])
            idx, vals = _top_sorted(masked, width)
            vals[vals <= 0] = -np.inf
            _break_ties(lambda rows, masked=masked: masked[rows], idx, vals, k_max, kr, g_rng)
            np.copyto(o, idx)
            none = vals <= 0
            o[none] = -1
            vals[none] = -np.inf
            top_bids[start:stop] = vals

        _price_chunk(
            o,
            vals,
            kr,
            slot_cols,
            reserve,
            mechanism,
            None if expo is None else (expo if expo.ndim == 1 else expo[start:stop]),
            winners[start:stop],
            prices[start:stop],
            lwc[start:stop],
        )

    return AuctionResult(order, top_bids, winners, prices, lwc)


def _as_groups(row_groups: Any, rng: Any, n: int) -> tuple[list[int], list]:
    """Validate ``row_groups`` and ``rng``; return the offsets and one generator per group."""
    if row_groups is None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
            )
        return [0, n], [rng]
    bounds = np.asarray(row_groups)
    if (bounds.ndim != 1 or bounds.size < 2 or not np.issubdtype(bounds.dtype, np.integer)
            or bounds[0] != 0 or bounds[-1] != n or np.any(np.diff(bounds) < 0)):
        raise ValueError(f"row_groups must be non-decreasing integer row offsets from 0 to "
                         f"n = {n}, got {row_groups!r}")
    rngs = list(rng) if not isinstance(rng, np.random.Generator) else []
    if len(rngs) != bounds.size - 1 or not all(
            isinstance(g, np.random.Generator) for g in rngs):
        raise TypeError(f"rng must be a sequence of {bounds.size - 1} numpy.random.Generator "
                        "(one per row group) when row_groups is given")
    return [int(b) for b in bounds], rngs


_NUMBA_KERNEL: Any = None


def _numba_kernel() -> Any:
    """The compiled top-``K + 1`` kernel, imported on first use; ``None`` if numba fails.

    If importing numba fails (a broken install, a numpy it does not support), warns once and
    switches :data:`BACKEND` to ``"numpy"`` for the rest of the process.
    """
    global _NUMBA_KERNEL, BACKEND
    if _NUMBA_KERNEL is None:
        try:
            from bidenv._auction_numba import top_entering
        except Exception as exc:  # noqa: BLE001 - any import failure means "use numpy"
            warnings.warn(f"bidenv: numba auction backend unavailable ({exc!r}); using numpy",
                          RuntimeWarning, stacklevel=3)
            BACKEND = "numpy"
            return None
        _NUMBA_KERNEL = top_entering
    return _NUMBA_KERNEL


def _entry_values(
    b: np.ndarray,
    threshold: Any,
    elig: np.ndarray | None,
    out: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    tmp: np.ndarray | None = None,
) -> np.ndarray:
    """``b`` where the bid enters, ``0`` elsewhere (entering bids are ``> 0``).

    Entry: finite, ``>= threshold`` (``> 0`` when ``threshold`` is None), eligible. ``out``,
    ``mask`` and ``tmp`` are optional scratch arrays of ``b``'s shape.
    """
    if out is None:
        out = np.empty(b.shape, dtype=b.dtype)
        mask = np.empty(b.shape, dtype=bool)
        tmp = np.empty(b.shape, dtype=bool)
    if threshold is None:
        np.greater(b, 0, out=mask)
    else:
        np.greater_equal(b, threshold, out=mask)
    np.less(b, b.dtype.type(np.inf), out=tmp)
    mask &= tmp
    if elig is not None:
        mask &= elig
    # A multiply is ~7x faster than copyto(where=mask) on irregular masks; NaN/inf bids
    # (which the multiply would turn into NaN) take the slow path.
    with np.errstate(invalid="ignore"):
        np.multiply(b, mask, out=out)
    if np.isnan(out).any():
        out.fill(0)
        np.copyto(out, b, where=mask)
    return out


_WORKSPACE = threading.local()


def _workspace(rows: int, k: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread scratch buffers of at least ``rows`` x ``k``, reused across calls.

    A simulator calls the auction once per tick with a few thousand rows; allocating fresh
    megabyte-sized scratch arrays each time costs page faults comparable to the sort itself.
    """
    key = (k, np.dtype(dtype).str)
    cache = getattr(_WORKSPACE, "buffers", None)
    if cache is None:
        cache = _WORKSPACE.buffers = {}
    bufs = cache.get(key)
    if bufs is None or bufs[0].shape[0] < rows:
        bufs = (np.empty((rows, k), dtype=dtype), np.empty((rows, k), dtype=bool),
                np.empty((rows, k), dtype=bool))
        if len(cache) > 8:
            cache.clear()
        cache[key] = bufs
    return bufs[0][:rows], bufs[1][:rows], bufs[2][:rows]


def _top_sorted(masked: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``width`` largest entries per row, descending.

    Rows with fewer than ``width`` columns are padded with index 0 / ``-inf``
    (the caller turns ``-inf`` positions into ``-1``).
    """
    m, k = masked.shape
    if k > width:
        part = np.argpartition(masked, k - width, axis=1)[:, k - width :]
    else:
        part = np.broadcast_to(np.arange(k, dtype=np.intp), (m, k))
    vals = np.take_along_axis(masked, part, axis=1)
    srt = np.argsort(vals, axis=1)[:, ::-1]
    idx = np.take_along_axis(part, srt, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, srt, axis=1)
    if k < width:
        pad = width - k
        idx = np.concatenate([idx, np.zeros((m, pad), dtype=np.int64)], axis=1)
        vals = np.concatenate(
            [vals, np.full((m, pad), -np.inf, dtype=masked.dtype)], axis=1
        )
    return idx, vals


def _tied_rows(vals: np.ndarray, k_max: int, kr: np.ndarray | None) -> np.ndarray:
    """(n,) bool: rows whose outcome depends on a tie among their sorted top bids ``vals``
    (two adjacent equal entering bids among the first ``K_r + 1``)."""
    head = vals[:, :k_max]
    tied = (head == vals[:, 1:]) & (head > -np.inf)
    if kr is not None:
        tied &= np.arange(k_max) < kr[:, None]
    return tied.any(axis=1)


def _break_ties(
    masked_rows: Any,
    idx: np.ndarray,
    vals: np.ndarray,
    k_max: int,
    kr: np.ndarray | None,
    rng: np.random.Generator,
) -> bool:
    """Re-rank, uniformly at random, rows whose winners depend on a tie.

    A row needs re-ranking when two adjacent entries among its top
    ``K_r + 1`` sorted entering bids are equal (equal bids among the winners,
    or a tie across the last-winner / first-loser boundary). For such rows
    every entering bid ``>= b_{K_r+1}`` is a candidate; the ``C`` largest
    bids of each flagged row (``C`` = the largest candidate count, at least
    ``K + 1``) are gathered, so that all candidates are present however
    argpartition split equal values, and sorted by bid with uniformly random
    secondary keys. Every advertiser in a tied group is therefore equally
    likely to take each of the group's positions. ``masked_rows(rows)`` returns
    the chunk's bids at ``rows`` with non-entering ones ``<= 0``. ``idx`` and
    ``vals`` are updated in place; nothing is drawn from ``rng`` when no row
    needs it. Returns whether any row was re-ranked.
    """
    rows = np.flatnonzero(_tied_rows(vals, k_max, kr))
    if rows.size == 0:
        return False
    sub = masked_rows(rows)
    k = sub.shape[1]
    width = idx.shape[1]
    # Value of the first loser b_{K_r+1} (-inf if fewer entered).
    if kr is None:
        boundary = vals[rows, k_max]
    else:
        boundary = vals[rows, kr[rows]]
    n_cand = np.count_nonzero((sub >= boundary[:, None]) & (sub > 0), axis=1)
    cols = int(min(k, max(int(n_cand.max()), width)))
    if cols < k:
        part = np.argpartition(sub, k - cols, axis=1)[:, k - cols :]
        cand = np.take_along_axis(sub, part, axis=1)
    else:
        part = None
        cand = sub
    keys = rng.random(cand.shape)
    w = min(width, cols)
    perm = np.lexsort((keys, -cand), axis=-1)[:, :w]
    vals[rows, :w] = np.take_along_axis(cand, perm, axis=1)
    if part is not None:
        perm = np.take_along_axis(part, perm, axis=1)
    idx[rows, :w] = perm
    return True


def _price_chunk(
    order: np.ndarray,
    vals: np.ndarray,
    kr: np.ndarray | None,
    slot_cols: np.ndarray,
    reserve: float,
    mechanism: str,
    expo: np.ndarray | None,
    winners_out: np.ndarray,
    prices_out: np.ndarray,
    lwc_out: np.ndarray,
) -> None:
    """Fill winners, prices and least winning cost for one chunk in place."""
    k_max = slot_cols.shape[0]
    np.copyto(winners_out, order[:, :k_max])
    beyond = None
    if kr is not None:
        beyond = slot_cols >= kr[:, None]
        winners_out[beyond] = -1

    # Price floor of slot j: max(reserve, b_{j+1}) (missing bids are -inf).
    nxt = np.maximum(vals[:, 1:], reserve, dtype=np.float64)
    if kr is None:
        lwc_out[:] = nxt[:, k_max - 1]
    else:
        lwc_out[:] = np.take_along_axis(nxt, (kr - 1)[:, None], axis=1)[:, 0]

    if mechanism == "gsp":
        prices_out[:] = nxt
    elif mechanism == "first_price":
        prices_out[:] = vals[:, :k_max]
    else:
        _vcg_prices(nxt, expo, kr, slot_cols, prices_out)

    prices_out[winners_out < 0] = 0.0


def _vcg_prices(
    gsp: np.ndarray,
    expo: np.ndarray | None,
    kr: np.ndarray | None,
    slot_cols: np.ndarray,
    out: np.ndarray,
) -> None:
    """VCG price per exposure from GSP floors ``gsp`` and exposures ``expo``."""
    assert expo is not None
    k_max = slot_cols.shape[0]
    e = np.broadcast_to(expo, gsp.shape)
    # e_next[l] = e_{l+1}, with e_{K_r+1} = 0 for the row's last slot.
    e_next = np.zeros(gsp.shape, dtype=np.float64)
    e_next[:, : k_max - 1] = e[:, 1:]
    if kr is not None:
        e_next[slot_cols >= kr[:, None] - 1] = 0.0
    weight = e - e_next
    if kr is not None:
        weight[slot_cols >= kr[:, None]] = 0.0
    # S_j = sum_{l >= j} (e_l - e_{l+1}) * p_l  (reverse cumulative sum).
    tail = np.cumsum((weight * gsp)[:, ::-1], axis=1)[:, ::-1]
    positive = e > 0.0
    np.divide(tail, e, out=out, where=positive)
    np.copyto(out, gsp, where=~positive)
    # Mathematically VCG <= GSP; clamp away floating-point excess.
    np.minimum(out, gsp, out=out)


def price_sorted(
    order: np.ndarray,
    top_bids: np.ndarray,
    *,
    n_slots: int | np.ndarray,
    reserve: float = 0.0,
    mechanism: str = "gsp",
    exposure: Any = None,
) -> AuctionResult:
    """Allocate and price rows whose ``K + 1`` best entering bids are already sorted.

    The pricing half of :func:`run_auction`, for callers that maintain the sorted candidates
    themselves (e.g. :func:`bidenv.market.clear_with_budgets` when it withdraws a bidder
    from some rows and shifts the others up).

    Args:
        order: ``(n, W)`` advertiser indices in descending bid order, ``-1`` where none,
            with ``W >= K + 1`` (only the first ``K + 1`` columns are used; results have
            ``W - 1`` slot columns, the ones beyond ``K`` empty).
        top_bids: ``(n, W)`` the matching bids, ``-inf`` where none.
        n_slots, reserve, mechanism, exposure: As :func:`run_auction`.

    Returns:
        An :class:`AuctionResult` (``order`` and ``top_bids`` are the inputs).
    """
    n = order.shape[0]
    k_max, row_slots = _as_slots(n_slots, n)
    width = order.shape[1] if order.ndim == 2 else -1
    if width < k_max + 1 or top_bids.shape != order.shape:
        raise ValueError(f"order and top_bids must have shape (n, >= K + 1) = ({n}, {k_max + 1}), "
                         f"got {order.shape} and {top_bids.shape}")
    check_choice("mechanism", mechanism, MECHANISMS)
    expo = _as_run_exposure(exposure, n, k_max) if mechanism == "vcg" else None
    # Rows whose per-row slot counts are all small still report width - 1 slot columns.
    winners = np.full((n, width - 1), -1, dtype=np.int64)
    prices = np.zeros((n, width - 1), dtype=np.float64)
    lwc = np.empty(n, dtype=np.float64)
    _price_chunk(np.ascontiguousarray(order[:, :k_max + 1]),
                 np.ascontiguousarray(top_bids[:, :k_max + 1]), row_slots, np.arange(k_max),
                 float(reserve), mechanism, expo, winners[:, :k_max], prices[:, :k_max], lwc)
    return AuctionResult(order, top_bids, winners, prices, lwc)
