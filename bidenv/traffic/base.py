"""The traffic contract: :class:`ImpressionBatch`, :class:`TrafficSource` and the diurnal curve.

A traffic source produces, for each tick of a day, an :class:`ImpressionBatch`: the ad
opportunities that arrive in that tick (rows, in arrival order) and, for every advertiser of
the episode (columns, index 0 is the agent), what the platform predicts and what is true.

Sources are configured objects; :meth:`TrafficSource.bind` returns a copy bound to one
episode's advertisers (their categories and campaigns) with that episode's random perturbations.
Only a bound source can :meth:`~TrafficSource.sample`.

To keep generation cheap, a batch may hold *factors* instead of full matrices: the true
conversion probability is ``pvalue * row_factor[:, None] * col_factor[None, :]`` unless a full
matrix is given, and it is materialised only when asked for (the simulator needs it only at
the slots actually won, through :meth:`ImpressionBatch.p_conversion_at`). Likewise
eligibility may be given by *groups*: opportunity ``o`` belongs to group ``groups[o]`` (say,
a query's intent) and ``eligible[o] = group_table[groups[o]]``, so per-advertiser counts and
sums over eligible opportunities cost O(n) instead of O(n k) (:meth:`eligible_counts`,
:meth:`eligible_sum`). A source that guarantees ``pvalue == 0`` wherever an advertiser is
not eligible says so with ``pvalue_zero_when_ineligible=True``; the simulator then needs no
mask in the auction (a zero bid never enters).

The prediction error may also be given in factored form: a standard normal draw per
opportunity (``p_row_noise``) scaled per advertiser (``sigma_col``), so that the true rate is
``pvalue * bias[a] * exp(s * noise[o] - s**2 / 2)`` with ``s = sigma_ratio[o] * sigma_col[a]``
(mean-one lognormal: unbiased where ``bias == 1``). Advertisers whose predictions are less
certain (cold-start ads) get a larger ``sigma_col`` and so both a wider ``pvalue_sigma`` and a
wider spread of the true rate around the prediction, still at no per-cell cost.

Batches built with ``validate=True`` (or when the environment variable ``BIDENV_DEBUG=1`` is
set) are checked on construction (:meth:`ImpressionBatch.validate`).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np

from bidenv.campaign import CampaignArrays
from bidenv.validation import check_int, check_number

SOURCE_FEED = 0
SOURCE_SEARCH = 1
SOURCE_NAMES = {SOURCE_FEED: "feed", SOURCE_SEARCH: "search"}
#: Validate every batch on construction (set ``BIDENV_DEBUG=1``; slow, for debugging).
DEBUG = os.environ.get("BIDENV_DEBUG", "") not in ("", "0")

# Fourier coefficients (cos, sin for harmonics 1-3 of the day) of log-volume per half hour,
# fitted to the public reference: peak/trough 12.6x, trough 03:30, peak 09:00, and shares
# 9.5% (00-06h), 61.5% (06-18h), 29% (18-24h).
DIURNAL_LOG_FOURIER = (-0.4286, -0.183, 0.5849, -0.6558, 0.3535, -0.2476)


def diurnal_shares(n_ticks: int, coefficients=DIURNAL_LOG_FOURIER, shift_hours: float = 0.0
                   ) -> np.ndarray:
    """Share of the day's opportunities in each of ``n_ticks`` equal ticks (sums to 1).

    The curve is evaluated at the middle of each tick (finely sub-sampled, so that any
    ``n_ticks`` gives consistent shares). ``shift_hours`` moves the curve later in the day.
    """
    n_ticks = check_int("n_ticks", n_ticks, 1)
    sub = 16
    t = (np.arange(n_ticks * sub) + 0.5) / (n_ticks * sub) - shift_hours / 24.0
    z = np.zeros_like(t)
    for h in range(len(coefficients) // 2):
        z += coefficients[2 * h] * np.cos(2 * np.pi * (h + 1) * t)
        z += coefficients[2 * h + 1] * np.sin(2 * np.pi * (h + 1) * t)
    v = np.exp(z).reshape(n_ticks, sub).sum(axis=1)
    return v / v.sum()


@dataclass(frozen=True)
class SlotSettings:
    """Slots of an ad placement: how many, and the cascaded exposure probabilities.

    ``slot_exposure[j]`` is the probability that slot j is shown *given that slot j-1 is
    shown* (slot 0: given the opportunity is served). It must lie in [0, 1] and not increase
    down the page. The marginal exposure of slot j is the cumulative product.
    """

    n_slots: int = 3
    slot_exposure: tuple = (1.0, 0.8, 0.6)

    def __post_init__(self):
        validate_slots(self.n_slots, self.slot_exposure)

    @property
    def marginal_exposure(self) -> np.ndarray:
        """Probability that each slot is shown (cumulative product of the cascade)."""
        return np.cumprod(np.asarray(self.slot_exposure, dtype=np.float64))


def validate_slots(n_slots, slot_exposure) -> None:
    """Raise ``ValueError`` unless ``n_slots >= 1`` and ``slot_exposure`` fits it."""
    check_int("n_slots", n_slots, 1)
    try:
        exp = np.asarray(slot_exposure, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"slot_exposure must be a sequence of numbers, got {slot_exposure!r}"
                         ) from None
    if exp.ndim != 1 or len(exp) != n_slots:
        raise ValueError(
            f"slot_exposure must have n_slots={n_slots} entries, got {slot_exposure!r}")
    if not np.all(np.isfinite(exp)) or np.any(exp < 0) or np.any(exp > 1):
        raise ValueError(f"slot_exposure values must lie in [0, 1], got {slot_exposure!r}")
    if np.any(np.diff(exp) > 0):
        raise ValueError(
            f"slot_exposure must not increase down the page (a lower slot is shown no more often "
            f"than the one above it), got {slot_exposure!r}")


class ImpressionBatch:
    """The ad opportunities of one tick: n opportunities (rows) x k advertisers (columns).

    Attributes:
        pvalue: (n, k) float32, predicted conversions per exposure.
        source: (n,) int8, 0 feed, 1 search.
        click_rate: (n,) float32, probability that an exposed ad is clicked.
        slots: dict source id -> :class:`SlotSettings` (None entries: the env's defaults).
        groups: (n,) int eligibility group of each opportunity, or None.
        group_table: (G, k) bool, who may enter an opportunity of each group, or None.
        row_info: dict of extra per-opportunity (n,) arrays a source may attach, e.g.
            ``user``, ``session_position``, ``query`` (-1 where a row has no
            such quantity, e.g. a search row's session position).
        column_info: dict of extra per-advertiser (k,) arrays, e.g. ``cold_start`` and
            ``marketing`` flags.

    Properties ``pvalue_sigma``, ``p_conversion``, ``eligible`` and ``conversion_value`` are
    (n, k) arrays (possibly read-only broadcast views) computed on demand from factors.
    """

    __slots__ = ("pvalue", "source", "click_rate", "slots", "groups", "group_table",
                 "pvalue_zero_when_ineligible", "row_info", "column_info", "_mask",
                 "_sigma_ratio", "_p_true", "_p_row", "_p_col", "_p_noise", "_sigma_col",
                 "_value_col", "_value", "_p_cache", "_group_table_f")

    def __init__(self, pvalue, source, *, click_rate, sigma_ratio, eligible=None, groups=None,
                 group_table=None, pvalue_zero_when_ineligible=False, p_true=None,
                 p_row_factor=None, p_col_factor=None, p_row_noise=None, sigma_col=None,
                 value_col=None, value=None, slots=None, row_info=None, column_info=None,
                 group_table_float=None, validate: bool | None = None):
        if eligible is not None and groups is not None:
            raise ValueError("give eligibility as a dense mask or as groups, not both")
        if (groups is None) != (group_table is None):
            raise ValueError("groups and group_table must be given together")
        self.pvalue = pvalue
        self.source = source
        self.click_rate = click_rate
        self.slots = slots or {}
        self._mask = eligible
        self.groups = groups
        self.group_table = group_table
        self.pvalue_zero_when_ineligible = bool(pvalue_zero_when_ineligible)
        self.row_info = dict(row_info or {})
        self.column_info = dict(column_info or {})
        self._sigma_ratio = sigma_ratio
        self._p_true = p_true
        self._p_row = p_row_factor
        self._p_col = p_col_factor
        self._p_noise = p_row_noise
        self._sigma_col = sigma_col
        self._value_col = value_col
        self._value = value
        self._p_cache = None
        self._group_table_f = group_table_float
        if validate or (validate is None and DEBUG):
            self.validate()

    # -- shape ------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of opportunities."""
        return self.pvalue.shape[0]

    @property
    def k(self) -> int:
        """Number of advertisers."""
        return self.pvalue.shape[1]

    def __len__(self) -> int:
        return self.n

    # -- contract fields ----------------------------------------------------------------------
    def _sigma_rows(self) -> np.ndarray:
        """(n, 1) or scalar-like per-opportunity sigma ratio."""
        ratio = np.asarray(self._sigma_ratio, dtype=np.float32)
        return ratio[:, None] if ratio.ndim == 1 else ratio

    @property
    def pvalue_sigma(self) -> np.ndarray:
        """(n, k) standard deviation of the prediction ``pvalue``."""
        sigma = self.pvalue * self._sigma_rows()
        if self._sigma_col is not None:
            sigma = sigma * np.asarray(self._sigma_col, dtype=np.float32)[None, :]
        return sigma

    @property
    def sigma_col(self) -> np.ndarray | None:
        """(k,) per-advertiser multiplier of the sigma ratio (None: 1 for all)."""
        return self._sigma_col

    @property
    def eligible_mask(self) -> np.ndarray | None:
        """(n, k) bool mask of who may enter, or None when every advertiser may."""
        if self._mask is None and self.groups is not None:
            if self.group_table.all():
                return None
            self._mask = self.group_table[self.groups]
        return self._mask

    @property
    def eligible(self) -> np.ndarray:
        """(n, k) bool, who may enter each auction (read-only view when all may)."""
        mask = self.eligible_mask
        if mask is None:
            return np.broadcast_to(np.True_, self.pvalue.shape)
        return mask

    def eligible_counts(self) -> np.ndarray:
        """(k,) number of opportunities each advertiser may enter."""
        return self.eligible_sum(None)

    def eligible_per_opportunity(self) -> np.ndarray:
        """(n,) number of advertisers that may enter each opportunity."""
        if self.groups is not None:
            return np.count_nonzero(self.group_table, axis=1)[self.groups]
        if self._mask is None:
            return np.full(self.n, self.k)
        return np.count_nonzero(self._mask, axis=1)

    def eligible_sum(self, weights: np.ndarray | None) -> np.ndarray:
        """(k,) sum of per-opportunity ``weights`` over the opportunities each may enter."""
        n, k = self.pvalue.shape
        if self.groups is not None:
            per_group = np.bincount(self.groups, weights=weights,
                                    minlength=len(self.group_table))
            table = self._group_table_f
            if table is None:
                table = self.group_table
            return per_group.astype(np.float64) @ table
        if self._mask is None:
            total = float(n) if weights is None else float(np.sum(weights))
            return np.full(k, total)
        if weights is None:
            return np.count_nonzero(self._mask, axis=0).astype(np.float64)
        return np.asarray(weights, np.float32) @ self._mask

    def eligible_pvalue_sum(self) -> np.ndarray:
        """(k,) sum of pValue over the opportunities each advertiser may enter."""
        mask = None if self.pvalue_zero_when_ineligible else self.eligible_mask
        if mask is None:
            return self.pvalue.sum(axis=0, dtype=np.float64)
        return np.where(mask, self.pvalue, np.float32(0)).sum(axis=0, dtype=np.float64)

    def _true_factor(self, rows=None, cols=None) -> np.ndarray | float:
        """True / predicted rate at (rows, cols), or the (n, k) matrix when both are None."""
        point = rows is not None
        f = 1.0
        if self._p_row is not None:
            f = f * (self._p_row[rows] if point else self._p_row[:, None])
        if self._p_col is not None:
            f = f * (self._p_col[cols] if point else self._p_col[None, :])
        if self._p_noise is not None:
            ratio = np.asarray(self._sigma_ratio, dtype=np.float64)
            if point:
                s = ratio[rows] if ratio.ndim == 1 else ratio
                noise = self._p_noise[rows].astype(np.float64)
                if self._sigma_col is not None:
                    s = s * self._sigma_col[cols]
            else:
                s = ratio[:, None] if ratio.ndim == 1 else ratio
                noise = self._p_noise.astype(np.float64)[:, None]
                if self._sigma_col is not None:
                    s = s * self._sigma_col[None, :]
            f = f * np.exp(s * noise - 0.5 * s * s)
        return f

    @property
    def p_conversion(self) -> np.ndarray:
        """(n, k) true conversion probability per exposure (materialised on first use)."""
        if self._p_true is not None:
            return self._p_true
        if self._p_cache is None:
            p = self.pvalue.astype(np.float64) * self._true_factor()
            self._p_cache = np.minimum(np.broadcast_to(p, self.pvalue.shape), 1.0)
        return self._p_cache

    @property
    def conversion_value(self) -> np.ndarray:
        """(n, k) sales value of one conversion (a broadcast view when per advertiser)."""
        if self._value is not None:
            return self._value
        return np.broadcast_to(self._value_col[None, :], self.pvalue.shape)

    @property
    def value_per_advertiser(self) -> np.ndarray | None:
        """(k,) conversion value when it does not vary by opportunity, else None."""
        return None if self._value is not None else self._value_col

    # -- optional per-opportunity / per-advertiser information ------------------------------
    @property
    def user(self) -> np.ndarray | None:
        """(n,) user id of each opportunity (-1 where none), if the source provides it."""
        return self.row_info.get("user")

    @property
    def session_position(self) -> np.ndarray | None:
        """(n,) ads the user has already seen in the session (-1 where not a feed row)."""
        return self.row_info.get("session_position")

    @property
    def query(self) -> np.ndarray | None:
        """(n,) query id of each opportunity (-1 where not a search row)."""
        return self.row_info.get("query")

    @property
    def cold_start(self) -> np.ndarray | None:
        """(k,) bool, advertisers whose ads are new (wider, biased predictions)."""
        return self.column_info.get("cold_start")

    # -- cheap point look-ups used by the simulator ------------------------------------------
    def p_conversion_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """True conversion probability at (rows, cols) without materialising the matrix."""
        if self._p_true is not None:
            return np.asarray(self._p_true[rows, cols], dtype=np.float64)
        p = self.pvalue[rows, cols].astype(np.float64) * self._true_factor(rows, cols)
        return np.minimum(p, 1.0)

    def conversion_value_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Conversion value at (rows, cols)."""
        if self._value is not None:
            return np.asarray(self._value[rows, cols], dtype=np.float64)
        return np.asarray(self._value_col[cols], dtype=np.float64)

    # -- checks -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Check shapes, dtypes and ranges; raises ``ValueError`` naming the bad field."""
        if self.pvalue.ndim != 2:
            raise ValueError(f"pvalue must be (n, k), got shape {self.pvalue.shape}")
        n, k = self.pvalue.shape
        if not np.all(np.isfinite(self.pvalue)) or np.any(self.pvalue < 0):
            raise ValueError("pvalue must be finite and >= 0")
        checks = {"source": (self.source, (n,)), "click_rate": (self.click_rate, (n,))}
        if self.groups is not None:
            checks["groups"] = (self.groups, (n,))
            checks["group_table"] = (self.group_table, (len(self.group_table), k))
            if n and (self.groups.min() < 0 or self.groups.max() >= len(self.group_table)):
                raise ValueError("groups must index rows of group_table")
        if self.eligible_mask is not None:
            checks["eligible"] = (self.eligible_mask, (n, k))
        if np.ndim(self._sigma_ratio) == 1:
            checks["sigma_ratio"] = (self._sigma_ratio, (n,))
        for name, arr in (("p_row_factor", self._p_row), ("p_row_noise", self._p_noise)):
            if arr is not None:
                checks[name] = (arr, (n,))
        for name, arr in (("p_col_factor", self._p_col), ("sigma_col", self._sigma_col),
                          ("value_col", self._value_col)):
            if arr is not None:
                checks[name] = (arr, (k,))
        for name, arr in self.row_info.items():
            checks[f"row_info[{name!r}]"] = (arr, (n,))
        for name, arr in self.column_info.items():
            checks[f"column_info[{name!r}]"] = (arr, (k,))
        for name, (arr, shape) in checks.items():
            if np.shape(arr) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {np.shape(arr)}")
        if self.eligible_mask is not None and self.eligible_mask.dtype != bool:
            raise ValueError("eligible must be a bool array")
        if np.any((self.click_rate < 0) | (self.click_rate > 1)):
            raise ValueError("click_rate must lie in [0, 1]")
        if np.any(np.asarray(self._sigma_ratio) < 0) or (
                self._sigma_col is not None and np.any(self._sigma_col < 0)):
            raise ValueError("sigma_ratio and sigma_col must be >= 0")
        if self.pvalue_zero_when_ineligible and np.any(self.pvalue[~self.eligible] != 0):
            raise ValueError("pvalue must be 0 where not eligible (pvalue_zero_when_ineligible)")
        p = self.p_conversion
        if np.any((p < 0) | (p > 1)):
            raise ValueError("p_conversion must lie in [0, 1]")
        if np.any(self.conversion_value < 0):
            raise ValueError("conversion_value must be >= 0")

    def take(self, rows: np.ndarray) -> ImpressionBatch:
        """A batch with only ``rows`` (an index or boolean array), in that order."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return ImpressionBatch(
            self.pvalue[rows], self.source[rows], click_rate=self.click_rate[rows],
            sigma_ratio=(self._sigma_ratio[rows] if np.ndim(self._sigma_ratio) == 1
                         else self._sigma_ratio),
            eligible=None if self.groups is not None else pick(self._mask),
            groups=pick(self.groups), group_table=self.group_table,
            group_table_float=self._group_table_f,
            pvalue_zero_when_ineligible=self.pvalue_zero_when_ineligible,
            p_true=pick(self._p_true), p_row_factor=pick(self._p_row), p_col_factor=self._p_col,
            p_row_noise=pick(self._p_noise), sigma_col=self._sigma_col,
            value_col=self._value_col, value=pick(self._value), slots=self.slots,
            row_info={name: arr[rows] for name, arr in self.row_info.items()},
            column_info=self.column_info, validate=False)


class TrafficSource:
    """Base class of traffic sources (the traffic contract).

    Subclasses implement :meth:`_bind` (draw the episode's per-advertiser state) and
    :meth:`sample`. ``daily_volume`` is the expected number of opportunities per day; ``None``
    means "the environment's ``opportunities_per_day``". ``slots`` is the source's
    :class:`SlotSettings`; ``None`` means "the environment's ``n_slots``/``slot_exposure``"
    and ``"native"`` the source's own :attr:`native_slots`.
    """

    source_id: int = SOURCE_FEED
    name: str = "traffic"
    #: Slot layout typical of this kind of placement (used with ``slots="native"``).
    native_slots: SlotSettings | None = None

    def __init__(self, daily_volume: float | None = None,
                 slots: SlotSettings | str | None = None):
        if daily_volume is not None:
            check_number("daily_volume", daily_volume, 0, low_open=True)
        if isinstance(slots, str):
            if slots != "native" or self.native_slots is None:
                raise ValueError(f"slots must be a SlotSettings, None (the env's) or 'native' "
                                 f"(for a source with native_slots), got {slots!r}")
            slots = self.native_slots
        if slots is not None and not isinstance(slots, SlotSettings):
            raise ValueError(f"slots must be a SlotSettings, None or 'native', got {slots!r}")
        self.daily_volume = daily_volume
        self.slots = slots
        self.bound = False
        self.n_ticks = None
        self.campaigns: CampaignArrays | None = None

    def bind(self, campaigns: CampaignArrays, *, n_ticks: int, opportunities_per_day: float,
             rng: np.random.Generator) -> TrafficSource:
        """A copy of this source bound to one episode's advertisers (index 0: the agent)."""
        bound = copy.copy(self)
        bound.campaigns = campaigns
        bound.n_ticks = int(n_ticks)
        if bound.daily_volume is None:
            bound.daily_volume = float(opportunities_per_day)
        bound._bind(rng)
        bound.bound = True
        return bound

    def _bind(self, rng: np.random.Generator) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def expected_volume(self) -> np.ndarray:
        """Expected opportunities in each tick of the bound episode, shape (n_ticks,)."""
        raise NotImplementedError

    def prior_volume(self) -> np.ndarray:
        """Expected opportunities per tick *before* the episode's perturbation, (n_ticks,).

        What a bidder can know in advance of the day (the calendar's typical curve); the
        environment's features use it, never :meth:`expected_volume`, which includes the
        day's random perturbation. Sources without a separate prior return
        :meth:`expected_volume` (override to remove that look-ahead).
        """
        return self.expected_volume()

    def sample(self, tick: int, rng: np.random.Generator) -> ImpressionBatch:
        """The opportunities of ``tick`` (0-based) drawn with ``rng``."""
        raise NotImplementedError

    def _check_bound(self, tick: int) -> None:
        if not self.bound:
            raise RuntimeError(f"{type(self).__name__} must be bound to an episode before "
                               "sampling (use env.unwrapped.traffic after env.reset())")
        if not 0 <= tick < self.n_ticks:
            raise ValueError(f"tick must be in [0, {self.n_ticks}), got {tick}")
