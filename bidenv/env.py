"""The auto-bidding Gymnasium environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bidenv import scoring
from bidenv.auction import MECHANISMS
from bidenv.campaign import Campaign, budget_scale, draw_agent_campaign, draw_competitor_campaigns
from bidenv.competitors import HeuristicCompetitors
from bidenv.day import MarketDay, TickStats
from bidenv.features import (  # noqa: F401  (re-exported: bidenv.env.FEATURE_NAMES, ...)
    BIG,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    PRICE_UNIT,
    PVALUE_UNIT,
)
from bidenv.scoring import campaign_score, ratio
from bidenv.traffic import SlotSettings, make_traffic
from bidenv.validation import check_choice, check_int, check_number

#: The ``reset(options=...)`` keys: they override the agent's campaign for the episode.
CAMPAIGN_OPTIONS = ("budget", "constraint", "target_cpa", "target_roi", "category",
                    "cold_start", "marketing_style", "popularity")

#: Allowed ``reward_mode`` values (see the class docstring, "Rewards").
REWARD_MODES = ("score", "expected_score", "conversions")


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
    episode: ``budget``, ``constraint``, ``target_cpa``, ``target_roi``, ``category``, and
    the campaign's traffic profile ``cold_start`` / ``marketing_style`` (default False: wider,
    biased predictions / inflated predictions of a lower true rate, as the market's
    cold-start and marketing competitors have; see ``bidenv.campaign.Campaign``) and
    ``popularity`` (default 0.5: the rank of its engagement history among the market's
    advertisers, which the cascade's recall favours; it does not move with the budget).

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
    | ``render_mode`` | None | ``"ansi"`` (pacing lines) or ``"rgb_array"`` (pacing figure) |
    | ``retrieval`` | ``"cascade"`` | ``"generative"``: candidates by semantic match per intent |

    Both ids register ``max_episode_steps=48`` (the default day); a day ends by itself at its
    last tick, so for a longer ``n_ticks`` pass ``max_episode_steps=n_ticks`` to ``gym.make``.

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

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, n_ticks: int = 48, n_competitors: int = 47,
                 opportunities_per_day: float = 500_000, n_slots: int = 3,
                 slot_exposure=(1.0, 0.8, 0.6), mechanism: str = "gsp",
                 reserve_price: float = 0.01, beta: float = 2.0, reward_mode: str = "score",
                 campaign=None, traffic="mixed", competitors=None, record: bool = False,
                 max_alpha: float = 10.0, render_mode: str | None = None,
                 retrieval: str = "cascade"):
        self.n_ticks = check_int("n_ticks", n_ticks, 1)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self._trace: list[dict] = []
        self.n_competitors = check_int("n_competitors", n_competitors, 0)
        self.opportunities_per_day = check_number("opportunities_per_day",
                                                  opportunities_per_day, 0, low_open=True)
        self.slot_settings = SlotSettings(n_slots, tuple(slot_exposure))
        self.mechanism = check_choice("mechanism", mechanism, MECHANISMS)
        self.reserve_price = check_number("reserve_price", reserve_price, 0)
        self.beta = check_number("beta", beta, 0)
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        check_number("max_alpha", max_alpha, 1, low_open=True)
        self.n_slots = int(n_slots)
        self.reward_mode = reward_mode
        self.campaign = None if campaign is None else Campaign.coerce(campaign)
        self.retrieval = retrieval
        self.traffic_source = make_traffic(traffic, retrieval)
        self.competitor_policy = competitors if competitors is not None else (
            HeuristicCompetitors(max_alpha=max_alpha))
        self.record = bool(record)
        self.max_alpha = float(max_alpha)
        self.feature_names = list(FEATURE_NAMES)
        low = np.array([f[2] for f in FEATURES], np.float32)
        high = np.array([f[3] for f in FEATURES], np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        #: The episode's market (:class:`bidenv.day.MarketDay`); None before ``reset``.
        self.day: MarketDay | None = None
        self.recording = None

    # -- action bijection ---------------------------------------------------------------------
    def action_to_alpha(self, action):
        """Bid multiplier for an action: ``alpha = max_alpha ** clip(a, -1, 1)``, same shape.

        :func:`bidenv.scoring.action_to_alpha` with this env's ``max_alpha``, elementwise.
        """
        alpha = np.reshape(scoring.action_to_alpha(action, self.max_alpha), np.shape(action))
        return alpha[()]

    def alpha_to_action(self, alpha):
        """Inverse of :meth:`action_to_alpha` on ``[1/max_alpha, max_alpha]``, same shape."""
        action = np.reshape(scoring.alpha_to_action(alpha, self.max_alpha), np.shape(alpha))
        return action[()]

    def last_tick_opportunities(self) -> dict:
        """The agent's view of each opportunity of the tick just played that it could enter.

        Returns:
            ``{"pvalue": ..., "least_winning_cost": ...}``, float32 arrays in arrival order:
            the predicted conversions and the least cost of winning a slot (the clearing price
            of the last slot where the agent won one, else the bid it needed). Empty after
            ``reset``.
        """
        pvalue, lwc = self.day.tick_opportunities
        return {"pvalue": pvalue, "least_winning_cost": lwc}

    # -- the day's state, read from :attr:`day` ------------------------------------------------
    @property
    def traffic(self):
        """The traffic source bound to this episode's advertisers (None before ``reset``)."""
        return None if self.day is None else self.day.traffic

    batch = property(lambda self: self.day.batch, doc="This tick's opportunities (None: over).")
    tick = property(lambda self: self.day.tick, doc="Ticks played so far.")
    k = property(lambda self: self.day.k, doc="Advertisers of the day (the agent is 0).")
    campaigns = property(lambda self: self.day.campaigns, doc="The day's campaigns, agent's first.")
    c = property(lambda self: self.day.c, doc="The day's campaigns as arrays (CampaignArrays).")
    spent = property(lambda self: self.day.spent, doc="(k,) money spent so far.")
    conv = property(lambda self: self.day.conv, doc="(k,) conversions so far.")
    value = property(lambda self: self.day.value, doc="(k,) sales value so far.")
    exp_conv = property(lambda self: self.day.exp_conv, doc="(k,) expected conversions so far.")
    exp_value = property(lambda self: self.day.exp_value, doc="(k,) expected value so far.")
    exp_cost = property(lambda self: self.day.exp_cost, doc="(k,) expected cost so far.")
    exhausted = property(lambda self: self.day.exhausted, doc="(k,) out of the day (budget).")
    agent_cost_by_source = property(lambda self: self.day.agent_cost_by_source,
                                    doc="The agent's spend so far by traffic source id.")
    obs_all = property(lambda self: self.day.obs_all, doc="(k, features) every observation.")
    _elapsed = property(lambda self: self.day.elapsed,
                        doc="Expected share of the day's opportunities past at each tick.")

    # -- episode ------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        (campaign,), competitors = self.draw_campaigns(rng, [self.campaign])
        if options:
            unknown = set(options) - set(CAMPAIGN_OPTIONS)
            if unknown:
                raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: "
                                 f"{', '.join(CAMPAIGN_OPTIONS)}")
            campaign = campaign.replace(**options)
        self.agent_campaign = campaign
        self.day = self.make_day(rng, [campaign], competitors)
        self.score = 0.0
        self.expected_score = 0.0
        self.recording = [] if self.record else None
        info = self._info(TickStats.zeros(self.day.k), 1.0)
        self._trace = []
        return self.day.obs_all[0].copy(), info

    def draw_campaigns(self, rng: np.random.Generator, given: list
                       ) -> tuple[list[Campaign], list[Campaign]]:
        """The day's campaigns from ``rng``: the agents' (``given``: one entry per agent, None
        drawn) and the competitors'.

        Draw order: agent 0's campaign (unless given; :func:`draw_agent_campaign`), the
        ``n_competitors - (K - 1)`` competitors' and then agents 1..K-1's (always drawn,
        then replaced where given), so K agents take the draws of the K - 1 competitors they
        replace and the day's streams (:meth:`make_day`) are the same whatever K is.
        """
        scale = budget_scale(self.opportunities_per_day)
        first = given[0] or draw_agent_campaign(rng, scale=scale)
        competitors = draw_competitor_campaigns(rng, self.n_competitors - (len(given) - 1),
                                                scale=scale)
        rest = [draw_agent_campaign(rng, scale=scale) for _ in given[1:]]
        return [first] + [g or d for g, d in zip(given[1:], rest)], competitors

    def make_day(self, rng: np.random.Generator, agents: list[Campaign],
                 competitors: list[Campaign]) -> MarketDay:
        """The episode's :class:`MarketDay` (agents first), its random streams drawn from
        ``rng``; resets the competitors' policy."""
        # Independent random streams, so that what one part draws never shifts another: the
        # day's traffic and the exposure/outcome draws of each opportunity are the same
        # whatever the agent does (common random numbers across agents for one seed).
        streams = [np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, size=5)]
        rng_traffic, rng_exposure, rng_outcome, rng_ties, rng_competitors = streams
        day = MarketDay(
            list(agents) + list(competitors), self.traffic_source, rng_traffic=rng_traffic,
            rng_exposure=rng_exposure, rng_outcome=rng_outcome, rng_ties=rng_ties,
            n_ticks=self.n_ticks, opportunities_per_day=self.opportunities_per_day,
            slot_settings=self.slot_settings, mechanism=self.mechanism,
            reserve_price=self.reserve_price, n_agents=len(agents))
        self.competitor_policy.reset([x.to_dict() for x in competitors], self.feature_names,
                                     rng_competitors)
        return day

    def step(self, action):
        alpha = self.begin_step(action)
        return self.finish_step(alpha, self.day.play_tick(alpha, self._auction_hook()))

    def begin_step(self, action) -> np.ndarray:
        """Check ``action`` and return every advertiser's bid multiplier for the tick.

        The first half of :meth:`step`; the tick is then played by
        :meth:`bidenv.day.MarketDay.play_tick` (or, for a batch of days, by
        :func:`bidenv.day.play_ticks`) and :meth:`finish_step` turns it into the step's
        result. :class:`bidenv.vector.AutoBiddingVectorEnv` calls the halves.
        """
        if self.day is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be one finite number in [-1, 1], got {action!r}")
        if self._done:
            raise RuntimeError("the episode has ended; call reset()")
        return self.alphas(a[:1], self.day.obs_all)

    def finish_step(self, alpha: np.ndarray, tick_stats: TickStats):
        """The second half of :meth:`step`: its 5-tuple after the tick was played."""
        day = self.day
        prev_score, prev_expected = self.score, self.expected_score
        self.score = self._agent_score(day.conv[0], day.value[0], day.spent[0])
        self.expected_score = self._agent_score(day.exp_conv[0], day.exp_value[0],
                                                day.exp_cost[0])
        if self.reward_mode == "score":
            reward = self.score - prev_score
        elif self.reward_mode == "expected_score":
            reward = self.expected_score - prev_expected
        else:
            gain = tick_stats.value if day.c.is_roi[0] else tick_stats.conversions
            reward = gain[0]
        terminated = day.agent_done
        info = self._info(tick_stats, float(alpha[0]))
        if self.render_mode is not None:
            obs = day.obs_all[0]
            self._trace.append({"tick": info["tick"], "alpha": info["alpha"],
                                "spent": info["total_cost"] / max(info["budget"], 1e-12),
                                "traffic": float(self._elapsed[min(day.tick, self.n_ticks)]),
                                "ratio": float(obs[FEATURE_INDEX["constraint_ratio"]])})
        if terminated and self.recording is not None and day.tick < self.n_ticks:
            day.play_rest_without_agent(self._alphas_without_agent, self._record)
        return day.obs_all[0].copy(), float(reward), bool(terminated), False, info

    # -- rendering ----------------------------------------------------------------------------
    def render(self):
        """The day so far (``render_mode`` given at construction; None: nothing).

        ``"ansi"``: one line per tick played: tick, share of the budget spent against the
        share of the day's expected traffic past, the bid multiplier alpha and the constraint
        ratio (the observation's ``constraint_ratio``: CPA / target or target / ROI, 1 is on
        target, 0 before any spend, capped at 10). ``"rgb_array"``: the same
        pacing trace as an (H, W, 3) uint8 image (spend and traffic shares, alpha and the
        ratio against the tick), for ``gymnasium.wrappers.RecordVideo`` or a notebook.
        """
        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            lines = [f"{'tick':>4} {'spent':>6} {'traffic':>7} {'alpha':>6} {'ratio':>6}"]
            lines += [f"{r['tick']:>4} {r['spent']:>6.1%} {r['traffic']:>7.1%} "
                      f"{r['alpha']:>6.2f} {r['ratio']:>6.2f}" for r in self._trace]
            return "\n".join(lines) + "\n"
        return self._render_rgb()

    def _render_rgb(self) -> np.ndarray:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 3.6), dpi=80)
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2)
        ticks = [r["tick"] for r in self._trace]
        ax1.plot(ticks, [r["spent"] for r in self._trace], label="budget spent")
        ax1.plot(ticks, [r["traffic"] for r in self._trace], ls="--", label="traffic past")
        ax1.set(xlim=(0, self.n_ticks), ylim=(0, 1.05), xlabel="tick", title="pacing")
        ax1.legend(fontsize=7, loc="upper left")
        ax2.plot(ticks, [r["alpha"] for r in self._trace], label="alpha")
        ax2.plot(ticks, [r["ratio"] for r in self._trace], label="CPA/ROI ratio")
        ax2.axhline(1.0, color="0.6", lw=0.8)
        ax2.set(xlim=(0, self.n_ticks), xlabel="tick", title="bid and constraint")
        ax2.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()

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
        if self.day is None or self.day.tick != 0 or self._done:
            raise RuntimeError("record_day_without_agent needs a freshly reset episode")
        self.day.play_rest_without_agent(self._alphas_without_agent, self._record)
        self.day.tick = self.n_ticks

    @property
    def _done(self) -> bool:
        return self.day.agent_done

    def _alphas_without_agent(self, obs_all: np.ndarray) -> np.ndarray:
        """The competitors' multipliers once the agent is out (its own entry is ignored)."""
        return self.alphas(np.zeros(1), obs_all)

    def alphas(self, agent_actions: np.ndarray, obs_all: np.ndarray) -> np.ndarray:
        """(k,) bid multipliers of the tick: the K agents' actions (``agent_actions``, (K,)),
        then the competitors' policy's on their observations."""
        k, K = len(obs_all), len(agent_actions)
        actions = np.empty(k)
        actions[:K] = np.clip(agent_actions, -1.0, 1.0)
        if k > K:
            comp = np.asarray(self.competitor_policy.act(obs_all[K:]), dtype=np.float64)
            if comp.shape != (k - K,) or not np.all(np.isfinite(comp)):
                raise ValueError("competitor policy must return one finite action per competitor")
            actions[K:] = np.clip(comp, -1.0, 1.0)
        return self.action_to_alpha(actions)

    # -- recording (``record=True``) ----------------------------------------------------------
    def _auction_hook(self):
        """What the day calls after each tick's auctions: :meth:`_record` when recording."""
        return None if self.recording is None else self._record

    def _record(self, batch, bids, res, n_slots, exposure, eligible, alpha):
        """Keep what the hindsight oracle needs (overridden by market recorders)."""
        self.recording.append(self.day.oracle_record(batch, bids, res, n_slots, exposure,
                                                     eligible, alpha))

    # -- score and info -----------------------------------------------------------------------
    def _agent_score(self, conversions, value, cost) -> float:
        return agent_score(self.agent_campaign, self.beta, conversions, value, cost)

    def _info(self, stats: TickStats, alpha: float) -> dict:
        return agent_info(self.day, 0, self.agent_campaign, stats, alpha, self.score,
                          self.expected_score)


def agent_score(campaign: Campaign, beta: float, conversions, value, cost) -> float:
    """The penalised score of ``campaign`` for these totals (:func:`campaign_score`)."""
    return float(campaign_score(campaign.constraint, conversions, value, cost,
                                target_cpa=campaign.target_cpa, target_roi=campaign.target_roi,
                                beta=beta))


def agent_info(day: MarketDay, i: int, campaign: Campaign, stats: TickStats, alpha: float,
               score: float, expected_score: float) -> dict:
    """The step info of agent ``i`` (advertiser ``i`` of ``day``): the Info section's keys,
    all scalars. The single env's is agent 0's; :mod:`bidenv.multi_agent` gives every agent
    its own."""
    spent, conv, value = float(day.spent[i]), float(day.conv[i]), float(day.value[i])
    return {
        "tick": day.tick,
        "cost": float(stats.cost[i]),
        "conversions": float(stats.conversions[i]),
        "value": float(stats.value[i]),
        "opportunities": int(stats.opportunities[i]),
        "wins": int(stats.wins[i]),
        "exposures": int(stats.exposures[i]),
        "clicks": int(stats.clicks[i]),
        "total_cost": spent,
        "total_conversions": conv,
        "total_value": value,
        "budget": campaign.budget,
        "budget_left": campaign.budget - spent,
        "cpa": ratio(spent, conv),
        "roi": ratio(value, spent),
        "score": float(score),
        "alpha": alpha,
        "expected_conversions": float(day.exp_conv[i]),
        "expected_value": float(day.exp_value[i]),
        "expected_cost": float(day.exp_cost[i]),
        "expected_score": float(expected_score),
        "constraint": campaign.constraint,
        "target": campaign.target,
    }


AutoBiddingEnv.__doc__ = AutoBiddingEnv.__doc__.replace("{features}", _feature_table())
