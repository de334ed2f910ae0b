"""One day of the market: its state, its ticks of auctions and what advertisers observe.

:class:`MarketDay` is what :class:`bidenv.env.AutoBiddingEnv` delegates to, with no Gymnasium
in it: the day's advertisers (index 0 is the agent, the others its competitors), the traffic
bound to them, the random streams of the day, the running totals of every advertiser (spend,
conversions, value and their noise-free expectations), the per-tick history the observation
features are averaged from, and the tick's batch of opportunities. Each tick
(:meth:`MarketDay.play_tick`) clears the batch's auctions at the advertisers' bid multipliers
and returns the tick's outcomes as a :class:`TickStats`; the environment turns them into the
agent's reward and info.

Rows of the history :attr:`MarketDay.hist` are named by :class:`HistoryRow`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from bidenv.auction import run_auction
from bidenv.campaign import Campaign, CampaignArrays
from bidenv.features import HISTORY_STEMS, observe
from bidenv.market import clear_days_with_budgets, clear_with_budgets
from bidenv.scoring import constraint_ratio
from bidenv.traffic import SlotSettings, TrafficSource

#: Called after each tick's auctions with ``(batch, bids, res, n_slots, exposure, eligible,
#: alpha)``: how the environment records what the oracle (or a market statistic) needs.
AuctionHook = Callable[..., None]


@dataclass(slots=True)
class TickStats:
    """Outcomes of one tick per advertiser: each field a ``(k,)`` float64 array."""

    wins: np.ndarray  #: slots allocated
    exposures: np.ndarray  #: slots won and shown
    clicks: np.ndarray
    conversions: np.ndarray
    value: np.ndarray  #: sales value of the conversions
    cost: np.ndarray  #: paid for the slots shown
    expected_conversions: np.ndarray  #: exposure probability x conversion probability
    expected_value: np.ndarray  #: ... x conversion value
    expected_cost: np.ndarray  #: exposure probability x price
    opportunities: np.ndarray  #: opportunities of the tick the advertiser could enter

    @classmethod
    def zeros(cls, k: int) -> TickStats:
        """Nothing happened (the info of ``reset``)."""
        return cls(*(np.zeros(k) for _ in fields(cls)))


class TickPlan(NamedTuple):
    """A tick's auctions before clearing (:meth:`MarketDay.plan_tick`)."""

    bids: np.ndarray  #: (n, k) float32 bids (0 where an advertiser is out)
    budget_left: np.ndarray  #: (k,) money each advertiser may still spend
    coef: np.ndarray  #: (k,) bid per unit of pValue (0 for advertisers out of the day)
    n_slots: int | np.ndarray  #: slot count, or one per opportunity
    exposure: np.ndarray  #: (K,) or (n, K) marginal exposure probabilities
    marginal: np.ndarray  #: (n, K) the same, broadcast per opportunity
    shown: np.ndarray  #: (n, K) bool: the drawn cascade, slot j shown
    eligible: np.ndarray | None  #: (n, k) who may enter (None: the bids say it)
    alpha: np.ndarray  #: (k,) the bid multipliers


class HistoryRow(IntEnum):
    """Rows of :attr:`MarketDay.hist` (shape ``(rows, n_ticks, k)``), per tick and advertiser.

    The observation's ``hist_*`` and ``last3_*`` features are means of these rows over the
    past ticks and over the last three: row ``r`` is ``bidenv.features.HISTORY_STEMS[r]``.
    """

    BID = 0  # mean bid over the opportunities it could enter (bid multiplier x mean value)
    LWC = 1  # mean least winning cost over them
    PVALUE = 2  # mean pValue over them
    CONVERSION = 3  # conversions
    WIN_RATE = 4  # slots won per opportunity
    OPPORTUNITIES = 5  # opportunities it could enter


# The rows are the quantities of bidenv.features.HISTORY_STEMS, in the same order.
assert [r.name.lower() for r in HistoryRow] == [
    stem.removesuffix("_mean") for stem, _ in HISTORY_STEMS]


class MarketDay:
    """The market state of one day and its tick simulation (advertiser 0 is the agent).

    Args:
        campaigns: The day's campaigns, the agent's first.
        traffic: The (unbound) traffic source; the day binds it to its advertisers.
        rng_traffic, rng_exposure, rng_outcome, rng_ties: Independent streams for the day's
            traffic, the slots' exposure cascade, the click/conversion draws and auction ties
            (so that what one part draws never shifts another).
        n_ticks, opportunities_per_day, slot_settings, mechanism, reserve_price: The
            environment's settings of the same names (``slot_settings`` is the default of
            sources that set no slots of their own).
        n_agents: The first ``n_agents`` advertisers are agents (1 for the single-agent env,
            K for :mod:`bidenv.multi_agent`): the day ends when every one of them is out.

    The first tick's batch is drawn and observed on construction. Attributes read by the
    environment (and through it by users): ``tick`` (ticks played), ``batch`` (this tick's
    opportunities, None once the agent's day is over), ``obs_all`` ((k, features) float32
    observation of every advertiser), ``spent``, ``conv``, ``value``, ``exp_conv``,
    ``exp_value``, ``exp_cost`` ((k,) running totals), ``exhausted`` (advertisers out of the
    day for lack of budget), ``agent_cost_by_source``, ``tick_opportunities`` (the agent's
    view of the tick just played), ``elapsed`` (expected share of the day past at each tick).
    """

    def __init__(self, campaigns: Sequence[Campaign], traffic: TrafficSource, *,
                 rng_traffic: np.random.Generator, rng_exposure: np.random.Generator,
                 rng_outcome: np.random.Generator, rng_ties: np.random.Generator,
                 n_ticks: int, opportunities_per_day: float, slot_settings: SlotSettings,
                 mechanism: str, reserve_price: float, n_agents: int = 1):
        self.campaigns = list(campaigns)
        self.c = c = CampaignArrays.from_campaigns(self.campaigns)
        self.k = k = len(c)
        self.n_ticks = n_ticks
        self.slot_settings = slot_settings
        self.mechanism = mechanism
        self.reserve_price = reserve_price
        self.n_agents = n_agents
        self.rng_traffic, self.rng_exposure = rng_traffic, rng_exposure
        self.rng_outcome, self.rng_ties = rng_outcome, rng_ties
        self.traffic = traffic.bind(c, n_ticks=n_ticks,
                                    opportunities_per_day=opportunities_per_day, rng=rng_traffic)
        # Features use the prior (unperturbed) curve: the day's perturbation is not known
        # in advance.
        expected = self.traffic.prior_volume()
        self.elapsed = np.concatenate([[0.0], np.cumsum(expected)]) / max(expected.sum(), 1e-12)
        self.per_tick = max(expected.sum() / n_ticks, 1e-12)
        self.min_price = max(reserve_price, 1e-9)
        # Bid scale per advertiser (money per predicted conversion at alpha = 1).
        self.bid_scale = np.where(c.is_roi, 1.0 / np.where(c.is_roi, c.target_roi, 1.0),
                                  c.target_cpa)
        zeros = lambda: np.zeros(k)  # noqa: E731
        self.spent, self.conv, self.value = zeros(), zeros(), zeros()
        self.exp_conv, self.exp_value, self.exp_cost = zeros(), zeros(), zeros()
        # Advertisers that could not afford a purchase are out for the rest of the day.
        self.exhausted = np.zeros(k, bool)
        # The agent's spend by traffic source (index = source id: 0 feed, 1 search).
        self.agent_cost_by_source = np.zeros(2)
        self.hist = np.zeros((len(HistoryRow), n_ticks, k))
        self.tick = 0
        self._tick_view = None
        self._bid_buffer = np.empty((0, 0), np.float32)  # reused across ticks
        self._open(self.traffic.sample(0, rng_traffic))

    # -- the clock ----------------------------------------------------------------------------
    @property
    def agent_done(self) -> bool:
        """The agent's day is over: no batch left to bid on."""
        return self.batch is None

    def play_tick(self, alpha: np.ndarray, on_auctions: AuctionHook | None = None) -> TickStats:
        """Clear this tick at the bid multipliers ``alpha`` ((k,)) and move to the next.

        The agent's day ends (:attr:`agent_done`) after the last tick or when its budget cannot
        buy anything more (its remaining budget is below the smallest price, or it could not
        afford a purchase it won); otherwise the next tick's batch is drawn.
        """
        stats = self.simulate_tick(alpha, on_auctions)
        self.advance()
        return stats

    def agents_out(self) -> np.ndarray:
        """(n_agents,) bool: the agent's budget cannot buy anything more (below the smallest
        price, or it could not afford a purchase it won); it bids 0 from then on."""
        K = self.n_agents
        return self.exhausted[:K] | (self.c.budget[:K] - self.spent[:K] < self.min_price)

    def advance(self) -> None:
        """Move the clock past the tick just simulated: draw and observe the next batch, or
        end the agents' day (its last tick, or when every agent's budget is out)."""
        self.tick += 1
        over = bool(self.tick >= self.n_ticks or self.agents_out().all())
        self._open(None if over else self.traffic.sample(self.tick, self.rng_traffic))

    def play_rest_without_agent(self, alphas: Callable[[np.ndarray], np.ndarray],
                                on_auctions: AuctionHook | None = None) -> None:
        """Play the ticks left with the agent out of the market.

        ``alphas(obs_all)`` gives every advertiser's bid multiplier (the agent's is ignored).
        The competitors bid as they would without the agent; the agent's totals, the last
        tick's opportunities and the observation are left as they were, and the batch is
        None afterwards.
        """
        start = self.tick
        saved = (self.obs_all, self._tick_view, self._cur_count, self._cur_pvalue_mean)
        self.exhausted[0] = True
        for t in range(start, self.n_ticks):
            self.tick = t
            if t > start or self.batch is None:  # the current tick may be drawn already
                self._open(self.traffic.sample(t, self.rng_traffic))
            self.simulate_tick(alphas(self.obs_all), on_auctions)
        self.batch = None
        self.tick = start
        self.obs_all, self._tick_view, self._cur_count, self._cur_pvalue_mean = saved

    def _open(self, batch) -> None:
        """Make ``batch`` (None: no more) the tick's opportunities and observe them."""
        self.batch = batch
        if batch is not None and batch.n:
            count = batch.eligible_counts()
            self._cur_pvalue_mean = batch.eligible_pvalue_sum() / np.maximum(count, 1.0)
        else:
            count = np.zeros(self.k)
            self._cur_pvalue_mean = np.zeros(self.k)
        self._cur_count = count
        self.obs_all = self.observe()

    # -- the market ---------------------------------------------------------------------------
    def simulate_tick(self, alpha: np.ndarray,
                      on_auctions: AuctionHook | None = None) -> TickStats:
        """Run this tick's auctions at the bid multipliers ``alpha`` ((k,)); update the totals."""
        plan = self.plan_tick(alpha)
        res = clear_with_budgets(plan.bids, plan.budget_left, plan.shown,
                                 n_slots=plan.n_slots, rng=self.rng_ties,
                                 reserve=self.reserve_price, mechanism=self.mechanism,
                                 exposure=plan.exposure, eligible=plan.eligible,
                                 dropped=self.exhausted)
        return self.settle_tick(plan, res, on_auctions)

    def plan_tick(self, alpha: np.ndarray, out: np.ndarray | None = None) -> TickPlan:
        """The tick's auctions before clearing: bids at ``alpha``, slots, the exposure cascade.

        ``out``: an optional (n, k) float32 array to write the bids into (a slice of a
        buffer shared by several days, :func:`play_ticks`); by default a buffer of the day's.
        Draws the cascade from the day's exposure stream.
        """
        batch, k, n = self.batch, self.k, self.batch.n
        budget_left = self.c.budget - self.spent
        active = (budget_left >= self.min_price) & ~self.exhausted
        coef = alpha * self.bid_scale * active
        vcol = batch.value_per_advertiser
        roi = self.c.is_roi
        if vcol is not None:
            coef = np.where(roi, coef * vcol, coef)
        if out is None:
            if self._bid_buffer.shape[0] < n or self._bid_buffer.shape[1] != k:
                self._bid_buffer = np.empty((max(n, 2 * self._bid_buffer.shape[0]), k),
                                            np.float32)
            out = self._bid_buffer[:n]
        bids = np.multiply(batch.pvalue, coef.astype(np.float32)[None, :], out=out)
        if vcol is None and roi.any():
            bids[:, roi] *= batch.conversion_value[:, roi]
        n_slots, exposure, K = slot_rows(batch, self.slot_settings)
        # A zero bid never enters, so sources with pValue 0 where ineligible need no mask.
        eligible = None if batch.pvalue_zero_when_ineligible else batch.eligible_mask
        # Cascade: one uniform per opportunity decides how deep down the page ads are shown
        # (slot j is shown iff u < marginal exposure of j, so a lower slot never shows alone).
        depth_u = self.rng_exposure.random(n)
        marginal = exposure if np.ndim(exposure) == 2 else np.broadcast_to(exposure, (n, K))
        shown = depth_u[:, None] < marginal
        return TickPlan(bids, budget_left, coef, n_slots, exposure, marginal, shown, eligible,
                        alpha)

    def settle_tick(self, plan: TickPlan, res, on_auctions: AuctionHook | None = None
                    ) -> TickStats:
        """Draw the outcomes of the slots won in the cleared auctions ``res`` of ``plan``
        (from the day's outcome stream) and update the totals, history and the agent's view."""
        batch, k, n = self.batch, self.k, self.batch.n
        bids, coef, n_slots, exposure = plan.bids, plan.coef, plan.n_slots, plan.exposure
        marginal, shown, eligible, alpha = plan.marginal, plan.shown, plan.eligible, plan.alpha
        # Flat indices of the slots won (row-major, so arrival order is kept).
        K_res = res.winners.shape[1]
        flat = np.flatnonzero(res.winners >= 0)
        rows = flat // K_res
        adv = res.winners.ravel()[flat]
        price = res.prices.ravel()[flat]
        is_shown = shown.ravel()[flat]
        m = (marginal[:, :K_res].ravel()[flat] if np.ndim(exposure) == 2
             else np.asarray(exposure)[flat % K_res])
        p_conv = batch.p_conversion_at(rows, adv)
        cv = batch.conversion_value_at(rows, adv)
        # One uniform per exposure: a conversion implies a click (p_conv <= click rate).
        u = self.rng_outcome.random(shown.shape).ravel()[flat]  # one per (opportunity, slot)
        click_p = np.maximum(batch.click_rate[rows], p_conv)
        clicked = is_shown & (u < click_p)
        converted = is_shown & (u < p_conv)
        bc = lambda w=None: np.bincount(adv, weights=w, minlength=k)  # noqa: E731
        stats = TickStats(
            wins=bc().astype(np.float64),
            exposures=bc(is_shown.astype(np.float64)),
            clicks=bc(clicked.astype(np.float64)),
            conversions=bc(converted.astype(np.float64)),
            value=bc(np.where(converted, cv, 0.0)),
            cost=bc(np.where(is_shown, price, 0.0)),
            expected_conversions=bc(m * p_conv),
            expected_value=bc(m * p_conv * cv),
            expected_cost=bc(m * price),
            opportunities=np.array(self._cur_count, np.float64),
        )
        self.spent += stats.cost
        self.conv += stats.conversions
        self.value += stats.value
        self.exp_conv += stats.expected_conversions
        self.exp_value += stats.expected_value
        self.exp_cost += stats.expected_cost
        mine = (adv == 0) & is_shown
        by_source = np.bincount(batch.source[rows[mine]], weights=price[mine], minlength=2)
        if len(by_source) > len(self.agent_cost_by_source):  # sources with ids > 1
            self.agent_cost_by_source = np.pad(
                self.agent_cost_by_source, (0, len(by_source) - len(self.agent_cost_by_source)))
        self.agent_cost_by_source[:len(by_source)] += by_source
        # Least winning cost seen by each advertiser: the bid it needed for the last slot,
        # i.e. max(reserve, K_r-th entering bid) unless it won, then the clearing price.
        lwc_lose = res.top_bids[np.arange(n), np.asarray(n_slots) - 1].astype(np.float64)
        lwc_lose = np.maximum(np.where(np.isfinite(lwc_lose), lwc_lose, 0.0), self.reserve_price)
        gap = lwc_lose[rows] - res.least_winning_cost[rows]
        lwc_sum = batch.eligible_sum(lwc_lose) - bc(gap)
        opp = np.maximum(stats.opportunities, 1.0)
        h = self.hist[:, self.tick]
        h[HistoryRow.BID] = coef * self._cur_pvalue_mean  # per-advertiser value scale
        h[HistoryRow.LWC] = lwc_sum / opp
        h[HistoryRow.PVALUE] = self._cur_pvalue_mean
        h[HistoryRow.CONVERSION] = stats.conversions
        h[HistoryRow.WIN_RATE] = stats.wins / opp
        h[HistoryRow.OPPORTUNITIES] = stats.opportunities
        # What each agent's own view of the opportunities needs (built on demand:
        # opportunities_of; most bidders never ask).
        self._tick_view = (batch, lwc_lose, rows, adv, res.least_winning_cost)
        if on_auctions is not None:
            on_auctions(batch, bids, res, n_slots, exposure, eligible, alpha)
        return stats

    @property
    def tick_opportunities(self) -> tuple[np.ndarray, np.ndarray]:
        """The agent's (advertiser 0's) :meth:`opportunities_of` the tick just played."""
        return self.opportunities_of(0)

    def opportunities_of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Advertiser ``i``'s view of each opportunity of the tick just played that it could
        enter, in arrival order: its predicted value (pValue) and the least cost of winning a
        slot (the clearing price of the last slot it won, else the bid it needed: max(reserve,
        K_r-th entering bid)); float32. Empty before the first tick."""
        if self._tick_view is None:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        batch, lwc_lose, rows, adv, least = self._tick_view
        won = rows[adv == i]
        lwc = lwc_lose.copy()
        lwc[won] = least[won]
        mask = batch.eligible_mask
        enter = slice(None) if mask is None else mask[:, i]
        return batch.pvalue[enter, i].astype(np.float32), lwc[enter].astype(np.float32)

    def oracle_record(self, batch, bids, res, n_slots, exposure, eligible, alpha) -> dict:
        """What the hindsight oracle needs of a tick: the agent's values and rivals' top bids.

        Takes the arguments of an :data:`AuctionHook`; see
        :func:`bidenv.oracle.day_from_recording` for the keys.
        """
        rival = bids.copy()
        rival[:, 0] = 0.0
        others = run_auction(rival, n_slots=n_slots, rng=np.random.default_rng(self.tick),
                             reserve=self.reserve_price,
                             mechanism=self.mechanism, exposure=exposure, eligible=eligible)
        n = batch.n
        rows = np.arange(n)
        K = res.winners.shape[1]
        return {
            "tick": self.tick,
            "pvalue": batch.pvalue[:, 0].copy(),
            "p_conversion": batch.p_conversion_at(rows, np.zeros(n, np.int64)),
            "conversion_value": batch.conversion_value_at(rows, np.zeros(n, np.int64)),
            "eligible": batch.eligible[:, 0].copy(),
            "rival_bids": others.top_bids[:, :K].astype(np.float64),
            "n_slots": np.broadcast_to(np.asarray(n_slots), (n,)).copy(),
            "exposure": np.broadcast_to(exposure, (n, K)).copy(),
            "source": batch.source.copy(),
            "alpha": float(alpha[0]),
            "bid_scale": float(self.bid_scale[0]),
        }

    # -- observations -------------------------------------------------------------------------
    def observe(self) -> np.ndarray:
        """(k, features) float32: every advertiser's observation before bidding in the tick
        (:func:`bidenv.features.observe` of the day's running sums)."""
        t, c = self.tick, self.c
        hist = last3 = None
        if t > 0:
            h = self.hist[:, :t]
            hist, last3 = h.mean(axis=1), h[:, max(0, t - 3):].mean(axis=1)
        return observe(tick=t, n_ticks=self.n_ticks, spent=self.spent, budget=c.budget,
                       hist_means=hist, last3_means=last3,
                       cur_pvalue_mean=self._cur_pvalue_mean, cur_count=self._cur_count,
                       per_tick=self.per_tick, elapsed=self.elapsed[min(t, self.n_ticks)],
                       constraint_ratio=self.constraint_ratios(), is_roi=c.is_roi)

    def constraint_ratios(self) -> np.ndarray:
        """(k,) CPA / target (CPA campaigns) or target / ROI (ROI campaigns) so far."""
        c = self.c
        out = np.zeros(self.k)
        cpa = ~c.is_roi & ~c.is_budget
        out[cpa] = constraint_ratio("cpa", self.conv[cpa], 0.0, self.spent[cpa],
                                    target_cpa=c.target_cpa[cpa])
        out[c.is_roi] = constraint_ratio("roi", 0.0, self.value[c.is_roi], self.spent[c.is_roi],
                                         target_roi=c.target_roi[c.is_roi])
        return out


def slot_rows(batch, default: SlotSettings):
    """Per-row slot counts (int or (n,) array), marginal exposures ((K,) or (n, K)) and K.

    Sources that set no slots of their own use ``default``.
    """
    table = {s: (st or default) for s, st in batch.slots.items()}
    settings = set(table.values()) or {default}
    if len(settings) == 1:
        st = settings.pop()
        return st.n_slots, st.marginal_exposure, st.n_slots
    K = max(st.n_slots for st in table.values())
    n_slots = np.zeros(batch.n, np.int64)
    exposure = np.zeros((batch.n, K))
    for src, st in table.items():
        rows = batch.source == src
        n_slots[rows] = st.n_slots
        exposure[rows, :st.n_slots] = st.marginal_exposure
    # The auction reports as many slot columns as the largest count present in the tick.
    K = int(n_slots.max()) if batch.n else 1
    return n_slots, np.ascontiguousarray(exposure[:, :K]), K


def play_ticks(days: Sequence[MarketDay], alphas: Sequence[np.ndarray],
               hooks: Sequence[AuctionHook | None] | None = None) -> list[TickStats]:
    """Play one tick on each of several independent days, their auctions in one pass.

    The result is the same as ``[day.play_tick(alpha, hook) for ...]``: every day draws from
    its own random streams exactly what it would alone (:func:`bidenv.market.
    clear_days_with_budgets`). Days are cleared together when their ticks have the same
    advertiser count, slot count and exposure layout (the usual case: days of one vector env);
    the others in their own groups. Used by :class:`bidenv.vector.AutoBiddingVectorEnv`.
    """
    hooks = [None] * len(days) if hooks is None else list(hooks)
    n_rows = np.array([day.batch.n for day in days], np.int64)
    k = days[0].k if days else 0
    if days and all(day.k == k for day in days):
        buffer = np.empty((int(n_rows.sum()), k), np.float32)
        starts = np.concatenate([[0], np.cumsum(n_rows)])
        plans = [day.plan_tick(alpha, out=buffer[starts[i]:starts[i + 1]])
                 for i, (day, alpha) in enumerate(zip(days, alphas))]
    else:
        buffer, plans = None, [day.plan_tick(alpha) for day, alpha in zip(days, alphas)]
    groups: dict = {}
    for i, (day, plan) in enumerate(zip(days, plans)):
        per_row = np.ndim(plan.n_slots) > 0
        layout = (day.k, plan.shown.shape[1], per_row, day.reserve_price, day.mechanism,
                  None if per_row else tuple(np.asarray(plan.exposure).tolist()))
        groups.setdefault(layout, []).append(i)
    cat = lambda arrays: np.concatenate(arrays) if len(arrays) > 1 else arrays[0]  # noqa: E731
    results: list = [None] * len(days)
    for (_, _, per_row, reserve, mechanism, _), members in groups.items():
        group = [plans[i] for i in members]
        bounds = np.concatenate([[0], np.cumsum([p.bids.shape[0] for p in group])])
        # The clearing withdraws bidders in place: hand it the days' own bid rows (one slice of
        # the shared buffer when the group's days are adjacent), so their plans see it.
        adjacent = buffer is not None and members == list(range(members[0], members[-1] + 1))
        bids = (buffer[starts[members[0]]:starts[members[-1] + 1]] if adjacent
                else cat([p.bids for p in group]))
        eligible = None
        if any(p.eligible is not None for p in group):
            eligible = cat([np.ones(p.bids.shape, bool) if p.eligible is None else p.eligible
                            for p in group])
        cleared = clear_days_with_budgets(
            bids, bounds, np.stack([p.budget_left for p in group]),
            cat([p.shown for p in group]),
            n_slots=cat([p.n_slots for p in group]) if per_row else group[0].n_slots,
            rngs=[days[i].rng_ties for i in members], reserve=reserve, mechanism=mechanism,
            exposure=cat([p.exposure for p in group]) if per_row else group[0].exposure,
            eligible=eligible, dropped=[days[i].exhausted for i in members])
        for j, (i, res) in enumerate(zip(members, cleared)):
            results[i] = res
            if not adjacent:
                plans[i].bids[...] = bids[bounds[j]:bounds[j + 1]]
    stats = [day.settle_tick(plan, res, hook)
             for day, plan, res, hook in zip(days, plans, results, hooks)]
    for day in days:
        day.advance()
    return stats
