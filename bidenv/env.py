"""The auto-bidding Gymnasium environment."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bidenv.auction import MECHANISMS, run_auction
from bidenv.campaign import (
    Campaign,
    CampaignArrays,
    budget_scale,
    draw_agent_campaign,
    draw_competitor_campaigns,
)
from bidenv.competitors import HeuristicCompetitors
from bidenv.features import (  # noqa: F401  (re-exported: bidenv.env.FEATURE_NAMES, ...)
    BIG,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    PRICE_UNIT,
    PVALUE_UNIT,
)
from bidenv.market import clear_with_budgets
from bidenv.scoring import campaign_score, constraint_ratio, ratio
from bidenv.traffic import SlotSettings, make_traffic

#: Allowed ``reward_mode`` values (see the class docstring, "Rewards").
REWARD_MODES = ("score", "expected_score", "conversions")
_F = FEATURE_INDEX


def _feature_table() -> str:
    rows = ["| # | feature | min | max | meaning |", "|---|---|---|---|---|"]
    for i, (name, doc, lo, hi) in enumerate(FEATURES):
        rows.append(f"| {i} | `{name}` | {lo:g} | {hi:g} | {doc} |")
    return "\n".join(rows)


class AutoBiddingEnv(gym.Env):
    """One advertiser's day of auto-bidding in multi-slot ad auctions.

    ## Description
    Every tick (default 48 ticks of 30 minutes) the agent picks a bid multiplier ``alpha``;
    for each ad opportunity of that tick its bid is ``alpha x`` its *truthful* bid (predicted
    conversions ``pvalue`` times the target CPA, or times conversion value / target ROI for an
    ROI campaign). Opportunities come from a recommendation feed and from search
    (``traffic``) and are sold in K-slot auctions (``mechanism``, cascaded slot exposure)
    against ``n_competitors`` advertisers who pace their own budgets. Outcomes (exposure,
    click, conversion) are drawn only for the slots won. The agent is judged by the
    penalised score of docs/design.md's scoring contract.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``; ``alpha = max_alpha ** a`` (so ``a = 0`` is the truthful
    bid ``alpha = 1``; ``a = +-1`` is ``alpha = max_alpha ** +-1``). See
    :meth:`action_to_alpha` and :meth:`alpha_to_action`. Non-finite actions raise
    ``ValueError``; finite actions outside [-1, 1] are clipped.

    ## Observation Space
    ``Box(float32)`` of the features below (``env.unwrapped.feature_names``), computed only
    from what is known before bidding in the tick (past outcomes and this tick's predicted
    values), for all advertisers in one vectorised pass; the agent sees row 0.

    {features}

    ## Info
    Every step: ``tick, cost, conversions, value, opportunities, wins, exposures, clicks,
    total_cost, total_conversions, total_value, budget, budget_left, cpa, roi, score, alpha``,
    the noise-free ``expected_conversions, expected_value, expected_cost, expected_score``,
    ``constraint`` and ``target`` (all scalars, so infos compare with ``==``). The agent's own
    view of each opportunity of the tick just played is available from
    :meth:`last_tick_opportunities` (for bidders that learn from single opportunities). The
    agent's spend so far by traffic source is ``agent_cost_by_source`` (index: source id).

    ## Rewards
    ``reward_mode="score"`` (default): the increment of the penalised score, so the return of
    a day is its final score. ``reward_mode="expected_score"``: the increment of the
    noise-free ``expected_score`` (exposure probability x true conversion probability of the
    slots won; the offline agents' training signal), so a day's return is its expected score.
    ``reward_mode="conversions"``: the tick's conversions (sales
    value for an ROI campaign).

    ## Starting State
    ``reset(seed=s)`` draws the day from ``s``: the competitors' campaigns (budget
    2,000-8,000 scaled to the day's volume, CPA targets 25-130, categories, about 20% ROI
    campaigns) and heuristics, the traffic's per-episode perturbations, and the agent's
    campaign unless one was given. ``options`` may override the agent's campaign for the
    episode: ``budget``, ``constraint``, ``target_cpa``, ``target_roi``, ``category``.

    The agent's drawn campaign (``bidenv.campaign.draw_agent_campaign``) lies inside the
    market of its category: category uniform over the 8, budget log-uniform over
    4,000 x [0.5, 1.5] (the market's typical budget ``MARKET_REFERENCE_BUDGET``, scaled to the
    day's volume), 20% ROI campaigns, and a target at the category's *market reference* x a
    tightness log-uniform over [0.7, 1.4]: CPA ``MARKET_CPA[category] / tightness`` or ROI
    ``MARKET_ROI[category] x tightness``. ``MARKET_CPA`` is the cost per conversion of a
    constant-multiplier bidder of the category that spends the typical budget at the prices
    the rest of the market sets (measured on this calibrated day with the agent out of the
    market, ``python -m experiments.market_targets``; from about 50 in the category of highest
    pValue to about 280 in the lowest), ``MARKET_ROI`` the market's typical conversion value
    over it. The evaluation's scenarios use the same reference (``experiments.evaluate``).

    ## Episode End
    Terminated at the end of the day or when the agent's budget is used up: its remaining
    budget is below the smallest possible price (the reserve), or it could not afford a
    purchase it won. Never truncated by the environment itself. Within a tick, opportunities
    are served in arrival order and an advertiser (agent or competitor) whose next purchase
    would exceed its remaining budget is dropped from that and all later auctions of the day
    (the tick's auctions are re-run without it, as a row-by-row simulation would), so spend
    never exceeds the budget; like the public benchmark's bidders that stop below a small
    remaining budget, such an advertiser is out of the market for the rest of the day.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``n_ticks`` | 48 | ticks per day |
    | ``n_competitors`` | 47 | competing advertisers |
    | ``opportunities_per_day`` | 500_000 | expected daily volume |
    | ``n_slots`` | 3 | ad slots per opportunity (sources may set their own) |
    | ``slot_exposure`` | (1.0, 0.8, 0.6) | P(slot j shown given slot j-1 shown) |
    | ``mechanism`` | ``"gsp"`` | ``"gsp"``, ``"first_price"`` or ``"vcg"`` |
    | ``reserve_price`` | 0.01 | minimum bid and price |
    | ``beta`` | 2.0 | exponent of the constraint penalty |
    | ``reward_mode`` | ``"score"`` | ``"score"``, ``"expected_score"`` or ``"conversions"`` |
    | ``campaign`` | None | a ``Campaign`` or dict; None draws one per episode |
    | ``traffic`` | ``"mixed"`` | ``"mixed"``, ``"feed"``, ``"search"`` or a ``TrafficSource`` |
    | ``competitors`` | None | a batch policy (``bidenv.competitors``); None: heuristic mix |
    | ``record`` | False | keep what ``bidenv.oracle`` needs |
    | ``max_alpha`` | 10.0 | action scale: alpha in [1/max_alpha, max_alpha] |

    ## Lite
    ``bidenv/AutoBiddingLite-v0`` is this environment with ``opportunities_per_day=50_000``
    and nothing else changed: the same 47 competitors, their budgets (and a drawn agent
    campaign's) scaled to the volume by :func:`bidenv.campaign.budget_scale`, the same
    traffic per opportunity. Per opportunity it is the full day's market (eligible
    advertisers, least winning cost, slot prices and fill rates, a fixed bidder's win rate,
    cost per conversion and budget use agree within a few percent); only the counts per
    tick are ten times smaller (noisier features, sparser conversions). A campaign given
    as ``campaign=`` is not scaled: divide its budget by 10. ``bidenv calibrate``
    (:mod:`bidenv.calibration`) measures both side by side.

    ## Version History
    * v0: initial version. Revised in place while the project is unreleased (0.1.0; the
      README's leaderboard was regenerated on the revised market): features use the
      traffic's prior volume curve (no look-ahead into the day's perturbation);
      ``reward_mode="expected_score"``; the agent's drawn campaign is inside the market of its
      category (``bidenv.campaign.draw_agent_campaign``); CPA/ROI-tracking competitors hold
      their multiplier until their first conversion; Lite is the full market (48
      advertisers) at a tenth of the volume.

    ## Example
    >>> import gymnasium as gym, numpy as np, bidenv
    >>> env = gym.make("bidenv/AutoBiddingLite-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == env.observation_space.shape
    True
    >>> obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    >>> info["tick"], info["alpha"]
    (1, 1.0)
    """

    metadata = {"render_modes": []}

    def __init__(self, n_ticks: int = 48, n_competitors: int = 47,
                 opportunities_per_day: float = 500_000, n_slots: int = 3,
                 slot_exposure=(1.0, 0.8, 0.6), mechanism: str = "gsp",
                 reserve_price: float = 0.01, beta: float = 2.0, reward_mode: str = "score",
                 campaign=None, traffic="mixed", competitors=None, record: bool = False,
                 max_alpha: float = 10.0):
        _int_at_least("n_ticks", n_ticks, 1)
        _int_at_least("n_competitors", n_competitors, 0)
        if not (isinstance(opportunities_per_day, (int, float, np.number))
                and math.isfinite(opportunities_per_day) and opportunities_per_day > 0):
            raise ValueError(f"opportunities_per_day must be a number > 0, got "
                             f"{opportunities_per_day!r}")
        self.slot_settings = SlotSettings(n_slots, tuple(slot_exposure))
        if mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
        if not (isinstance(reserve_price, (int, float, np.number)) and
                math.isfinite(reserve_price) and reserve_price >= 0):
            raise ValueError(f"reserve_price must be a finite number >= 0, got {reserve_price!r}")
        if not (isinstance(beta, (int, float, np.number)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if not (math.isfinite(max_alpha) and max_alpha > 1):
            raise ValueError(f"max_alpha must be a finite number > 1, got {max_alpha!r}")
        self.n_ticks = int(n_ticks)
        self.n_competitors = int(n_competitors)
        self.opportunities_per_day = float(opportunities_per_day)
        self.n_slots = int(n_slots)
        self.mechanism = mechanism
        self.reserve_price = float(reserve_price)
        self.beta = float(beta)
        self.reward_mode = reward_mode
        self.campaign = None if campaign is None else Campaign.coerce(campaign)
        self.traffic_source = make_traffic(traffic)
        self.competitor_policy = competitors if competitors is not None else (
            HeuristicCompetitors(max_alpha=max_alpha))
        self.record = bool(record)
        self.max_alpha = float(max_alpha)
        self._log_max = math.log(self.max_alpha)
        self.feature_names = list(FEATURE_NAMES)
        low = np.array([f[2] for f in FEATURES], np.float32)
        high = np.array([f[3] for f in FEATURES], np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._obs_low, self._obs_high = low.astype(np.float64), high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.traffic = None
        self.recording = None
        self._bid_buffer = np.empty((0, 0), np.float32)  # reused across ticks

    # -- action bijection ---------------------------------------------------------------------
    def action_to_alpha(self, action):
        """Bid multiplier for an action: ``alpha = max_alpha ** clip(a, -1, 1)``."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return np.exp(a * self._log_max)

    def alpha_to_action(self, alpha):
        """Inverse of :meth:`action_to_alpha` on ``[1/max_alpha, max_alpha]``."""
        alpha = np.asarray(alpha, dtype=np.float64)
        if np.any(~(alpha > 0)):
            raise ValueError(f"alpha must be > 0, got {alpha}")
        return np.clip(np.log(alpha) / self._log_max, -1.0, 1.0).astype(np.float32)

    def last_tick_opportunities(self) -> dict:
        """The agent's view of each opportunity of the tick just played that it could enter.

        Returns:
            ``{"pvalue": ..., "least_winning_cost": ...}``, float32 arrays in arrival order:
            the predicted conversions and the least cost of winning a slot (the clearing price
            of the last slot where the agent won one, else the bid it needed). Empty after
            ``reset``.
        """
        pvalue, lwc = self._tick_opportunities
        return {"pvalue": pvalue, "least_winning_cost": lwc}

    # -- episode ------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        scale = budget_scale(self.opportunities_per_day)
        campaign = self.campaign or draw_agent_campaign(rng, scale=scale)
        if options:
            unknown = set(options) - {"budget", "constraint", "target_cpa", "target_roi",
                                      "category"}
            if unknown:
                raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: budget, "
                                 "constraint, target_cpa, target_roi, category")
            campaign = campaign.replace(**options)
        self.agent_campaign = campaign
        competitors = draw_competitor_campaigns(rng, self.n_competitors, scale=scale)
        # Independent random streams, so that what one part draws never shifts another: the
        # day's traffic and the exposure/outcome draws of each opportunity are the same
        # whatever the agent does (common random numbers across agents for one seed).
        streams = [np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, size=5)]
        self._rng_traffic, self._rng_exposure, self._rng_outcome = streams[:3]
        self._rng_ties, rng_competitors = streams[3:]
        self.campaigns = [campaign] + competitors
        c = CampaignArrays.from_campaigns(self.campaigns)
        self.c = c
        k = len(c)
        self.k = k
        self.traffic = self.traffic_source.bind(
            c, n_ticks=self.n_ticks, opportunities_per_day=self.opportunities_per_day,
            rng=self._rng_traffic)
        # Features use the prior (unperturbed) curve: the day's perturbation is not known
        # in advance.
        expected = self.traffic.prior_volume()
        self._elapsed = np.concatenate([[0.0], np.cumsum(expected)]) / max(expected.sum(), 1e-12)
        self._per_tick = max(expected.sum() / self.n_ticks, 1e-12)
        self.competitor_policy.reset([x.to_dict() for x in competitors], self.feature_names,
                                     rng_competitors)
        self._min_price = max(self.reserve_price, 1e-9)
        # Bid scale per advertiser (money per predicted conversion at alpha = 1).
        self._scale = np.where(c.is_roi, 1.0 / np.where(c.is_roi, c.target_roi, 1.0),
                               c.target_cpa)
        zeros = lambda: np.zeros(k)  # noqa: E731
        self.spent, self.conv, self.value = zeros(), zeros(), zeros()
        # Advertisers that could not afford a purchase are out for the rest of the day.
        self.exhausted = np.zeros(k, bool)
        self.exp_conv, self.exp_value, self.exp_cost = zeros(), zeros(), zeros()
        # The agent's spend by traffic source (index = source id: 0 feed, 1 search).
        self.agent_cost_by_source = np.zeros(2)
        # Per-tick history (n_ticks, k): bid, lwc, pvalue means, conversions, win rate, volume.
        self.hist = np.zeros((6, self.n_ticks, k))
        self.tick = 0
        self.score = 0.0
        self.expected_score = 0.0
        self._last_info = None
        self.recording = [] if self.record else None
        self._tick_opportunities = (np.zeros(0, np.float32), np.zeros(0, np.float32))
        self.batch = self.traffic.sample(0, self._rng_traffic)
        self.obs_all = self._observe()
        info = self._info(np.zeros((8, k)), 1.0)
        return self.obs_all[0].copy(), info

    def step(self, action):
        if self.traffic is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be one finite number in [-1, 1], got {action!r}")
        if self._done:
            raise RuntimeError("the episode has ended; call reset()")
        actions = np.empty(self.k)
        actions[0] = np.clip(a[0], -1.0, 1.0)
        if self.k > 1:
            comp = np.asarray(self.competitor_policy.act(self.obs_all[1:]), dtype=np.float64)
            if comp.shape != (self.k - 1,) or not np.all(np.isfinite(comp)):
                raise ValueError("competitor policy must return one finite action per competitor")
            actions[1:] = np.clip(comp, -1.0, 1.0)
        alpha = np.exp(actions * self._log_max)
        tick_stats = self._simulate_tick(self.batch, alpha)
        prev_score, prev_expected = self.score, self.expected_score
        self.tick += 1
        self.score = self._agent_score(self.conv[0], self.value[0], self.spent[0])
        self.expected_score = self._agent_score(self.exp_conv[0], self.exp_value[0],
                                                self.exp_cost[0])
        if self.reward_mode == "score":
            reward = self.score - prev_score
        elif self.reward_mode == "expected_score":
            reward = self.expected_score - prev_expected
        else:
            reward = tick_stats[4 if self.c.is_roi[0] else 3, 0]
        terminated = bool(self.tick >= self.n_ticks or self.exhausted[0]
                          or self.c.budget[0] - self.spent[0] < self._min_price)
        if not terminated:
            self.batch = self.traffic.sample(self.tick, self._rng_traffic)
        else:
            self.batch = None
        self.obs_all = self._observe()
        info = self._info(tick_stats, float(alpha[0]))
        if terminated and self.recording is not None and self.tick < self.n_ticks:
            self._record_rest_of_day()
        return self.obs_all[0].copy(), float(reward), bool(terminated), False, info

    def record_day_without_agent(self) -> None:
        """Record the whole day just reset with the agent out of the market.

        Needs ``record=True`` and a freshly reset episode. The competitors bid as they would
        without the agent; traffic and outcome draws are those of any other policy on the same
        seed (common random numbers). ``bidenv.oracle.reference_hindsight`` uses it: the oracle
        of this recording does not depend on any agent's policy, so it is one yardstick for
        every agent on the day. The episode is over afterwards (call ``reset``).
        """
        if self.recording is None:
            raise RuntimeError("record_day_without_agent needs an env made with record=True")
        if self.traffic is None or self.tick != 0 or self._done:
            raise RuntimeError("record_day_without_agent needs a freshly reset episode")
        self._record_rest_of_day()
        self.tick = self.n_ticks

    def _record_rest_of_day(self) -> None:
        """Play the ticks left after the agent's early end, with the agent out of the market.

        Only with ``record=True``: the hindsight oracle then sees the whole day (the
        opportunities the agent could have bought had it paced differently), with the
        competitors bidding as they would without it. The agent's totals, the last tick's
        opportunities and the episode's state as returned are left as they were.
        """
        saved = (self.tick, self.obs_all, self._tick_opportunities, self._cur_count,
                 self._cur_pvalue_mean)
        self.exhausted[0] = True
        for t in range(saved[0], self.n_ticks):
            self.tick = t
            if t > saved[0] or self.batch is None:  # the current tick may be drawn already
                self.batch = self.traffic.sample(t, self._rng_traffic)
                self.obs_all = self._observe()
            actions = np.zeros(self.k)
            if self.k > 1:
                actions[1:] = np.clip(np.asarray(self.competitor_policy.act(self.obs_all[1:]),
                                                 dtype=np.float64), -1.0, 1.0)
            self._simulate_tick(self.batch, np.exp(actions * self._log_max))
        self.batch = None
        (self.tick, self.obs_all, self._tick_opportunities, self._cur_count,
         self._cur_pvalue_mean) = saved

    @property
    def _done(self) -> bool:
        return self.batch is None

    # -- the market ---------------------------------------------------------------------------
    def _slot_rows(self, batch):
        """Per-row slot counts (int or (n,) array) and marginal exposures ((K,) or (n, K))."""
        table = {s: (st or self.slot_settings) for s, st in batch.slots.items()}
        settings = set(table.values()) or {self.slot_settings}
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

    def _simulate_tick(self, batch, alpha):
        """Run one tick's auctions; returns per-advertiser stats (8, k)."""
        k, n = self.k, batch.n
        budget_left = self.c.budget - self.spent
        active = (budget_left >= self._min_price) & ~self.exhausted
        coef = alpha * self._scale * active
        vcol = batch.value_per_advertiser
        roi = self.c.is_roi
        if vcol is not None:
            coef = np.where(roi, coef * vcol, coef)
        if self._bid_buffer.shape[0] < n or self._bid_buffer.shape[1] != k:
            self._bid_buffer = np.empty((max(n, 2 * self._bid_buffer.shape[0]), k), np.float32)
        bids = np.multiply(batch.pvalue, coef.astype(np.float32)[None, :],
                           out=self._bid_buffer[:n])
        if vcol is None and roi.any():
            bids[:, roi] *= batch.conversion_value[:, roi]
        n_slots, exposure, K = self._slot_rows(batch)
        # A zero bid never enters, so sources with pValue 0 where ineligible need no mask.
        eligible = None if batch.pvalue_zero_when_ineligible else batch.eligible_mask
        # Cascade: one uniform per opportunity decides how deep down the page ads are shown
        # (slot j is shown iff u < marginal exposure of j, so a lower slot never shows alone).
        depth_u = self._rng_exposure.random(n)
        marginal = exposure if np.ndim(exposure) == 2 else np.broadcast_to(exposure, (n, K))
        shown = depth_u[:, None] < marginal
        res = clear_with_budgets(bids, budget_left, shown, n_slots=n_slots, rng=self._rng_ties,
                                 reserve=self.reserve_price, mechanism=self.mechanism,
                                 exposure=exposure, eligible=eligible, dropped=self.exhausted)
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
        u = self._rng_outcome.random(shown.shape).ravel()[flat]  # one per (opportunity, slot)
        click_p = np.maximum(batch.click_rate[rows], p_conv)
        clicked = is_shown & (u < click_p)
        converted = is_shown & (u < p_conv)
        bc = lambda w=None: np.bincount(adv, weights=w, minlength=k)  # noqa: E731
        cost = bc(np.where(is_shown, price, 0.0))
        stats = np.empty((8, k))
        stats[0] = bc()  # wins (slots allocated)
        stats[1] = bc(is_shown.astype(np.float64))  # exposures
        stats[2] = bc(clicked.astype(np.float64))  # clicks
        stats[3] = bc(converted.astype(np.float64))  # conversions
        stats[4] = bc(np.where(converted, cv, 0.0))  # value
        stats[5] = cost
        stats[6] = bc(m * p_conv)  # expected conversions
        stats[7] = self._cur_count  # opportunities each advertiser could enter
        exp_cost = bc(m * price)
        exp_value = bc(m * p_conv * cv)
        self.spent += cost
        self.conv += stats[3]
        self.value += stats[4]
        self.exp_conv += stats[6]
        self.exp_value += exp_value
        self.exp_cost += exp_cost
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
        opp = np.maximum(stats[7], 1.0)
        t = self.tick
        self.hist[0, t] = coef * self._cur_pvalue_mean  # mean bid (per-advertiser value scale)
        self.hist[1, t] = lwc_sum / opp
        self.hist[2, t] = self._cur_pvalue_mean
        self.hist[3, t] = stats[3]
        self.hist[4, t] = stats[0] / opp
        self.hist[5, t] = stats[7]
        # The agent's own view of each opportunity it could enter: predicted value and the
        # least cost of winning a slot (exposed in info for bidders that learn from them).
        agent_rows = rows[adv == 0]
        lwc_agent = lwc_lose.copy()
        lwc_agent[agent_rows] = res.least_winning_cost[agent_rows]
        mine = (np.ones(n, bool) if batch.eligible_mask is None else batch.eligible_mask[:, 0])
        self._tick_opportunities = (batch.pvalue[mine, 0].astype(np.float32),
                                    lwc_agent[mine].astype(np.float32))
        if self.recording is not None:
            self._record(batch, bids, res, n_slots, exposure, eligible, alpha)
        return stats

    def _record(self, batch, bids, res, n_slots, exposure, eligible, alpha):
        """Keep what the hindsight oracle needs: the agent's values and rivals' top bids."""
        rival = bids.copy()
        rival[:, 0] = 0.0
        others = run_auction(rival, n_slots=n_slots, rng=np.random.default_rng(self.tick),
                             reserve=self.reserve_price,
                             mechanism=self.mechanism, exposure=exposure, eligible=eligible)
        n = batch.n
        rows = np.arange(n)
        K = res.winners.shape[1]
        self.recording.append({
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
            "bid_scale": float(self._scale[0]),
        })

    # -- observations, score and info -----------------------------------------------------
    def _observe(self) -> np.ndarray:
        k, t, c = self.k, self.tick, self.c
        batch = self.batch
        if batch is not None and batch.n:
            count = batch.eligible_counts()
            self._cur_pvalue_mean = batch.eligible_pvalue_sum() / np.maximum(count, 1.0)
        else:
            count = np.zeros(k)
            self._cur_pvalue_mean = np.zeros(k)
        self._cur_count = count
        obs = np.zeros((k, len(FEATURES)), np.float64)
        obs[:, _F["time_left"]] = (self.n_ticks - t) / self.n_ticks
        obs[:, _F["budget_left"]] = np.clip(1.0 - self.spent / c.budget, 0.0, 1.0)
        if t > 0:
            h = self.hist[:, :t]
            hist = h.mean(axis=1)
            last3 = h[:, max(0, t - 3):].mean(axis=1)
            units = (PRICE_UNIT, PRICE_UNIT, PVALUE_UNIT, 1.0, 1.0, self._per_tick)
            names = ("bid", "lwc", "pvalue", "conversion", "win_rate", "opportunities")
            for i, (name, unit) in enumerate(zip(names, units)):
                suffix = "_mean" if name not in ("win_rate", "opportunities") else ""
                obs[:, _F[f"hist_{name}{suffix}"]] = hist[i] / unit
                obs[:, _F[f"last3_{name}{suffix}"]] = last3[i] / unit
        obs[:, _F["cur_pvalue_mean"]] = self._cur_pvalue_mean / PVALUE_UNIT
        obs[:, _F["cur_opportunities"]] = count / self._per_tick
        elapsed = self._elapsed[min(t, self.n_ticks)]
        obs[:, _F["traffic_elapsed"]] = elapsed
        obs[:, _F["pace_error"]] = np.clip(self.spent / c.budget - elapsed, -1.0, 1.0)
        obs[:, _F["constraint_ratio"]] = self._constraint_ratios()
        obs[:, _F["is_roi"]] = c.is_roi
        np.clip(obs, self._obs_low, self._obs_high, out=obs)
        return obs.astype(np.float32)

    def _constraint_ratios(self) -> np.ndarray:
        c = self.c
        out = np.zeros(self.k)
        cpa = ~c.is_roi & ~c.is_budget
        out[cpa] = constraint_ratio("cpa", self.conv[cpa], 0.0, self.spent[cpa],
                                    target_cpa=c.target_cpa[cpa])
        out[c.is_roi] = constraint_ratio("roi", 0.0, self.value[c.is_roi], self.spent[c.is_roi],
                                         target_roi=c.target_roi[c.is_roi])
        return out

    def _agent_score(self, conversions, value, cost) -> float:
        camp = self.agent_campaign
        return float(campaign_score(camp.constraint, conversions, value, cost,
                                    target_cpa=camp.target_cpa, target_roi=camp.target_roi,
                                    beta=self.beta))

    def _info(self, stats, alpha: float) -> dict:
        camp = self.agent_campaign
        spent, conv, value = float(self.spent[0]), float(self.conv[0]), float(self.value[0])
        return {
            "tick": self.tick,
            "cost": float(stats[5, 0]),
            "conversions": float(stats[3, 0]),
            "value": float(stats[4, 0]),
            "opportunities": int(stats[7, 0]),
            "wins": int(stats[0, 0]),
            "exposures": int(stats[1, 0]),
            "clicks": int(stats[2, 0]),
            "total_cost": spent,
            "total_conversions": conv,
            "total_value": value,
            "budget": camp.budget,
            "budget_left": camp.budget - spent,
            "cpa": ratio(spent, conv),
            "roi": ratio(value, spent),
            "score": self.score,
            "alpha": alpha,
            "expected_conversions": float(self.exp_conv[0]),
            "expected_value": float(self.exp_value[0]),
            "expected_cost": float(self.exp_cost[0]),
            "expected_score": self.expected_score,
            "constraint": camp.constraint,
            "target": camp.target,
        }


def _int_at_least(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


AutoBiddingEnv.__doc__ = AutoBiddingEnv.__doc__.replace("{features}", _feature_table())
