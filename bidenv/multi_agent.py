"""A market of learning bidders: the auto-bidding day as a PettingZoo ``ParallelEnv``.

``bidenv.multi_agent.parallel_env(n_agents=K, **env_kwargs)`` returns an
:class:`AutoBiddingParallelEnv`: the day of :class:`bidenv.env.AutoBiddingEnv` where the first
K advertisers are agents (``"advertiser_0"`` ... ``"advertiser_{K-1}"``), each with its own
campaign, observation, action, reward and info, and the rest are the env's competitors (the
heuristic mix by default). Needs PettingZoo: ``pip install "bidenv[multiagent]"``.

Contract: ``parallel_env(n_agents=1, **kw)`` is the single-agent env ``AutoBiddingEnv(**kw)``:
reset with seed ``s`` gives the observation and info ``AutoBiddingEnv.reset(seed=s)`` gives,
and the same actions give the same observations, rewards, terminations and infos for the whole
day (``tests/test_multi_agent.py`` pins it).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

try:
    from pettingzoo import ParallelEnv
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError('bidenv.multi_agent needs PettingZoo: pip install "bidenv[multiagent]" '
                      "(or pip install pettingzoo)") from exc

from bidenv.campaign import Campaign
from bidenv.day import MarketDay, TickStats
from bidenv.env import CAMPAIGN_OPTIONS, AutoBiddingEnv, agent_info, agent_score
from bidenv.validation import check_int


def agent_name(i: int) -> str:
    """The name of agent ``i`` (advertiser ``i`` of the day)."""
    return f"advertiser_{i}"


class AutoBiddingParallelEnv(ParallelEnv):
    """K learning advertisers in one day of the auto-bidding market (PettingZoo ``ParallelEnv``).

    ## Description
    The day, auctions, traffic, competitors, features, rewards and scoring of
    :class:`bidenv.env.AutoBiddingEnv`, with the first ``n_agents`` advertisers of the day
    controlled by agents ``"advertiser_0"`` ... ``"advertiser_{K-1}"``. The K agents *replace*
    K - 1 of the ``n_competitors`` heuristic competitors (as in the public benchmark's market, the
    day keeps ``n_competitors + 1`` advertisers: 48 by default), so ``n_agents`` may be at most
    ``n_competitors + 1``.

    ## Action Space
    Per agent the single env's: ``Box(-1, 1, (1,), float32)``, ``alpha = max_alpha ** a``.
    Non-finite actions raise ``ValueError``; finite ones outside [-1, 1] are clipped.
    ``step`` needs an action for every agent in :attr:`agents`; actions of agents that have
    left are ignored.

    ## Observation Space
    Per agent the single env's 20 features (``feature_names``), of its own campaign and
    history, computed for all advertisers in one pass.

    ## Rewards
    Per agent, as the single env's ``reward_mode``: its own score increment (``"score"``), its
    expected score increment (``"expected_score"``) or its conversions / value
    (``"conversions"``).

    ## Starting State
    ``reset(seed=s)`` draws, from the episode's generator and in this order: agent 0's
    campaign exactly as the single env draws its agent's (none when ``campaigns[0]`` or
    ``campaign=`` is given), the campaigns of the ``n_competitors - (K - 1)`` competitors that
    remain (the single env's first ones), the campaigns of agents 1..K-1 with
    :func:`bidenv.campaign.draw_agent_campaign` (always drawn, then replaced where given; they
    take the draws the replaced competitors would have taken) and the day's random streams,
    which are therefore the single env's on the same seed whatever K is. ``options``:
    ``"campaigns"``, a list of K entries (None keeps the drawn campaign, a ``Campaign``
    replaces it, a dict overrides some of its fields), and the single env's options
    (``budget``, ``constraint``, ``target_cpa``, ``target_roi``, ``category``), which override
    agent 0's campaign. Other keys are ignored with a warning.

    ## Episode End
    Agent i is terminated when its budget is used up (below the smallest price, or it could
    not afford a purchase it won) or at the end of the day; it then leaves :attr:`agents` and
    bids 0 while the day goes on for the others. The episode ends when every agent is done
    (the end of the day, or every budget used up). Never truncated by the environment.

    ## Info
    Per agent the single env's keys (``tick, cost, conversions, ..., score, alpha,
    expected_*, constraint, target``), of its own campaign and outcomes.

    ## Arguments
    ``n_agents`` (K, default 1), ``campaigns`` (None or a list of K ``Campaign`` / dict / None:
    fixed campaigns, None entries drawn per episode) and every argument of
    :class:`bidenv.env.AutoBiddingEnv` but ``record`` (``campaign=`` is agent 0's campaign;
    ``render_mode`` may be None or ``"ansi"``).

    ## Example
    >>> from bidenv.multi_agent import parallel_env
    >>> env = parallel_env(n_agents=2, opportunities_per_day=8_000, n_competitors=11)
    >>> obs, infos = env.reset(seed=0)
    >>> env.agents
    ['advertiser_0', 'advertiser_1']
    >>> actions = {a: env.action_space(a).sample() for a in env.agents}
    >>> obs, rewards, terminations, truncations, infos = env.step(actions)
    >>> infos["advertiser_1"]["tick"]
    1
    """

    metadata = {"name": "bidenv_market_v0", "render_modes": ["ansi"], "render_fps": 4,
                "is_parallelizable": True}

    def __init__(self, n_agents: int = 1, campaigns=None, **env_kwargs):
        if env_kwargs.get("record"):
            raise ValueError("record=True (the oracle's recording) is not supported by the "
                             "multi-agent env; record single-agent days instead")
        render_mode = env_kwargs.pop("render_mode", None)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        #: The single-agent env this one is built from: its validated settings, spaces,
        #: action mapping, competitor policy and random generator (never stepped).
        self.env = env = AutoBiddingEnv(**env_kwargs)
        self.n_agents = K = check_int("n_agents", n_agents, 1, env.n_competitors + 1)
        if campaigns is None:
            campaigns = [None] * K
        elif isinstance(campaigns, (dict, Campaign)) or len(campaigns) != K:
            raise ValueError(f"campaigns must be a list of n_agents={K} entries (Campaign, "
                             f"dict or None), got {campaigns!r}")
        self.campaigns_given = [None if c is None else Campaign.coerce(c) for c in campaigns]
        if env.campaign is not None:
            if self.campaigns_given[0] is not None:
                raise ValueError("give agent 0's campaign once: campaign= or campaigns[0]")
            self.campaigns_given[0] = env.campaign
        self.possible_agents = [agent_name(i) for i in range(K)]
        self.agents: list[str] = []
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self.observation_spaces = {a: copy.deepcopy(env.observation_space)
                                   for a in self.possible_agents}
        self.action_spaces = {a: copy.deepcopy(env.action_space) for a in self.possible_agents}
        self.feature_names = env.feature_names
        #: The episode's market (:class:`bidenv.day.MarketDay` with ``n_agents=K``); None
        #: before ``reset``.
        self.day: MarketDay | None = None
        self.agent_campaigns: list[Campaign] = []
        self._trace: list[str] = []

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.spaces.Box:
        return self.action_spaces[agent]

    # -- episode ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        env, K = self.env, self.n_agents
        gym.Env.reset(env, seed=seed)  # what AutoBiddingEnv.reset does: seeds env.np_random
        rng = env.np_random
        options = dict(options or {})
        per_agent = options.pop("campaigns", None)
        single = {key: options.pop(key) for key in CAMPAIGN_OPTIONS if key in options}
        if options:
            warnings.warn(f"ignoring unknown reset options {sorted(map(str, options))}; "
                          f"allowed: campaigns, {', '.join(CAMPAIGN_OPTIONS)}", stacklevel=2)
        if per_agent is not None and (isinstance(per_agent, (dict, Campaign))
                                      or len(per_agent) != K):
            raise ValueError(f"options['campaigns'] must be a list of n_agents={K} entries "
                             f"(Campaign, dict or None), got {per_agent!r}")
        # The single env's draws in its order (AutoBiddingEnv.draw_campaigns): agents 1..K-1
        # take the draws of the K - 1 competitors they replace, so the day's streams are the
        # single env's on the same seed whatever K is.
        campaigns, competitors = env.draw_campaigns(rng, self.campaigns_given)
        if single:
            campaigns[0] = campaigns[0].replace(**single)
        for i, spec in enumerate(per_agent or []):
            if isinstance(spec, dict):
                campaigns[i] = campaigns[i].replace(**spec)
            elif spec is not None:
                campaigns[i] = Campaign.coerce(spec)
        self.day = env.make_day(rng, campaigns, competitors)
        self.agent_campaigns = campaigns
        self.scores = np.zeros(K)
        self.expected_scores = np.zeros(K)
        self.agents = list(self.possible_agents)
        stats = TickStats.zeros(self.day.k)
        obs = {a: self.day.obs_all[i].copy() for i, a in enumerate(self.agents)}
        infos = {a: self._info(i, stats, 1.0) for i, a in enumerate(self.agents)}
        self._trace = []
        return obs, infos

    def step(self, actions: dict[str, Any]):
        if self.day is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            raise RuntimeError("the episode has ended; call reset()")
        unknown = set(actions) - set(self.possible_agents)
        missing = [a for a in self.agents if a not in actions]
        if unknown or missing:
            raise ValueError(f"step needs one action per agent in env.agents {self.agents}; "
                             f"missing {missing}, unknown {sorted(map(str, unknown))}")
        day, K = self.day, self.n_agents
        own = np.zeros(K)  # agents that have left bid 0 whatever their action
        for name in self.agents:
            a = np.asarray(actions[name], dtype=np.float64).reshape(-1)
            if a.size != 1 or not np.all(np.isfinite(a)):
                raise ValueError(f"action of {name} must be one finite number in [-1, 1], got "
                                 f"{actions[name]!r}")
            own[self._index[name]] = a[0]
        alpha = self.env.alphas(own, day.obs_all)
        stats = day.play_tick(alpha)
        out = day.agents_out()
        obs, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for name in self.agents:
            i = self._index[name]
            prev_score, prev_expected = self.scores[i], self.expected_scores[i]
            self.scores[i] = self._score(i, day.conv[i], day.value[i], day.spent[i])
            self.expected_scores[i] = self._score(i, day.exp_conv[i], day.exp_value[i],
                                                  day.exp_cost[i])
            if self.env.reward_mode == "score":
                reward = self.scores[i] - prev_score
            elif self.env.reward_mode == "expected_score":
                reward = self.expected_scores[i] - prev_expected
            else:
                reward = (stats.value if day.c.is_roi[i] else stats.conversions)[i]
            obs[name] = day.obs_all[i].copy()
            rewards[name] = float(reward)
            terminations[name] = bool(day.agent_done or out[i])
            truncations[name] = False
            infos[name] = self._info(i, stats, float(alpha[i]))
        if self.render_mode is not None:
            self._trace.append(self._trace_line(alpha))
        self.agents = [a for a in self.agents if not terminations[a]]
        return obs, rewards, terminations, truncations, infos

    def last_tick_opportunities(self, agent: str) -> dict:
        """``agent``'s view of each opportunity of the tick just played that it could enter
        (the single env's :meth:`~bidenv.env.AutoBiddingEnv.last_tick_opportunities` for any
        agent): ``{"pvalue": ..., "least_winning_cost": ...}``, float32 in arrival order."""
        pvalue, lwc = self.day.opportunities_of(self._index[agent])
        return {"pvalue": pvalue, "least_winning_cost": lwc}

    def render(self):
        """``render_mode="ansi"``: one line per tick played, each agent's share of its budget
        spent and its alpha (``-`` once it has left); None otherwise."""
        if self.render_mode is None:
            return None
        head = "tick " + " ".join(f"{'spent' + str(i):>7} {'alpha' + str(i):>7}"
                                  for i in range(self.n_agents))
        return "\n".join([head] + self._trace) + "\n"

    def close(self) -> None:
        self.day = None

    # -- helpers ------------------------------------------------------------------------------
    def _score(self, i: int, conversions, value, cost) -> float:
        return agent_score(self.agent_campaigns[i], self.env.beta, conversions, value, cost)

    def _info(self, i: int, stats: TickStats, alpha: float) -> dict:
        return agent_info(self.day, i, self.agent_campaigns[i], stats, alpha, self.scores[i],
                          self.expected_scores[i])

    def _trace_line(self, alpha: np.ndarray) -> str:
        day, cells = self.day, []
        for i, name in enumerate(self.possible_agents):
            share = day.spent[i] / max(self.agent_campaigns[i].budget, 1e-12)
            a = f"{alpha[i]:>7.2f}" if name in self.agents else f"{'-':>7}"
            cells.append(f"{share:>7.1%} {a}")
        return f"{day.tick:>4} " + " ".join(cells)


def run_agents(env: AutoBiddingParallelEnv, bidders, obs: dict, infos: dict, *,
               on_step=None) -> dict[str, dict]:
    """Play the day ``env`` was just reset to (``obs, infos = env.reset(...)``) with
    ``bidders[i]`` as agent ``i``, as :func:`agents.run_episode` plays the single env's.

    Each bidder is reset with its campaign (``env.agent_campaigns[i].to_dict()``) and acts on
    its observation until it leaves; one with ``update`` gets, after every step, its own info
    and its own :meth:`~AutoBiddingParallelEnv.last_tick_opportunities`. ``on_step(i, obs,
    action, reward, done, info)``, if given, is called after every step of agent ``i`` (``obs``
    the observation it acted on). Returns every agent's last info (by agent name).
    """
    for bidder, campaign in zip(bidders, env.agent_campaigns):
        bidder.reset(campaign.to_dict())
    updates = [getattr(b, "update", None) for b in bidders]
    index = env._index
    final = dict(infos)
    while env.agents:
        actions = {a: np.asarray(bidders[index[a]].act(obs[a]), np.float32).reshape(1)
                   for a in env.agents}
        next_obs, rewards, terms, truncs, step_infos = env.step(actions)
        for a, info in step_infos.items():
            i = index[a]
            if updates[i] is not None:
                updates[i](info, env.last_tick_opportunities(a))
            if on_step is not None:
                on_step(i, obs[a], actions[a], rewards[a], bool(terms[a] or truncs[a]), info)
            final[a] = info
        obs = next_obs
    return final


def parallel_env(n_agents: int = 1, **env_kwargs) -> AutoBiddingParallelEnv:
    """A PettingZoo ``ParallelEnv`` of ``n_agents`` learning advertisers in one market day.

    Args:
        n_agents: K, the advertisers controlled by agents (1 to ``n_competitors + 1``); they
            replace K - 1 of the heuristic competitors, so the day keeps
            ``n_competitors + 1`` advertisers.
        **env_kwargs: ``campaigns`` (a list of K fixed campaigns, None entries drawn) and the
            arguments of :class:`bidenv.env.AutoBiddingEnv` (``opportunities_per_day=50_000``
            is the Lite day).

    Returns:
        An :class:`AutoBiddingParallelEnv`; with one agent it plays exactly the single env's day.
    """
    return AutoBiddingParallelEnv(n_agents=n_agents, **env_kwargs)
