"""The agent protocol, the registry of agents by name, the episode loop, and the machinery
the classic bidders share (:class:`BaseAgent`, :class:`BidScale`, :class:`DayLedger`).

An *agent* bids for one advertiser for one day (see ``docs/design.md``, "Agents contract")::

    agent.reset(campaign)          # campaign: dict with budget, constraint, target_cpa, ...
    action = agent.act(obs)        # (1,) float32 in [-1, 1]; alpha = max_alpha ** action
    agent.update(info, opportunities)   # optional: after every env step (the harness calls it)

``update`` receives the step's ``info`` and ``env.unwrapped.last_tick_opportunities()`` (the
agent's predicted value and least winning cost of every opportunity of the tick just played).
Agents must also work when it is never called (e.g. inside
:class:`bidenv.competitors.AgentCompetitors`), if only with a cruder policy.

Agents are built by name through a registry (:func:`make`, :func:`from_spec`), so that the
command line can say ``pid_cpa`` or ``ppo:runs/ppo/model.zip``. Factories and loaders may be
given as ``"module:attr"`` strings, imported on first use: modules that need torch are never
imported just to list or build the heuristics.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bidenv.campaign import Campaign
from bidenv.features import FEATURE_NAMES, PRICE_UNIT, PVALUE_UNIT, prior_bid_scale
from bidenv.scoring import MAX_ALPHA, action_to_alpha, alpha_to_action  # noqa: F401 (re-export)
from bidenv.validation import check_choice, check_number

#: Index of each observation feature (see :data:`bidenv.env.FEATURE_NAMES`).
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@runtime_checkable
class Agent(Protocol):
    """What the environment's users (the evaluation harness, the CLI) need from an agent.

    Attributes:
        name: Display name (the registry name for registered agents).

    Trainable agents add ``fit(...)``, ``save(path)`` and ``classmethod load(path)``; agents
    that learn within the day add ``update(info: dict, opportunities: dict | None)``.
    """

    name: str

    def reset(self, campaign: dict) -> None:
        """Start a new day for ``campaign`` (keys ``budget``, ``constraint``, ``target_cpa``,
        ``target_roi``, ``category``)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for this tick: shape (1,), float32, in [-1, 1]."""


# --------------------------------------------------------------------------------------------
# Shared machinery of the classic bidders (agents.constant, agents.pid, agents.online_lp)
# --------------------------------------------------------------------------------------------
def normalise_campaign(campaign: dict | Campaign | None) -> dict:
    """A complete, validated campaign dict (missing optional keys get the campaign defaults).

    ``None`` (campaign unknown) is read as a budget-only campaign of budget 1: agents that only
    use the observation's shares still work.
    """
    if campaign is None:
        return Campaign(budget=1.0, constraint="budget").to_dict()
    if isinstance(campaign, Campaign):
        return campaign.to_dict()
    if not isinstance(campaign, dict):
        raise ValueError(f"campaign must be a dict (or Campaign), got {type(campaign).__name__}")
    return Campaign.coerce({k: v for k, v in campaign.items() if v is not None}).to_dict()


class BaseAgent:
    """Common state of the heuristics: the campaign, the tick counter, the action mapping.

    Subclasses implement :meth:`_alpha` (the bid multiplier for an observation); :meth:`act`
    counts ticks (``self.tick`` is the number of ticks already played today), keeps the
    campaign's bid scale up to date (``self.bid_scale``, a :class:`BidScale`), clips the
    multiplier to ``[1/max_alpha, max_alpha]`` and maps it to an action.

    Args:
        max_alpha: The environment's action scale (``alpha = max_alpha ** action``).
    """

    name = "base"

    def __init__(self, *, max_alpha: float = MAX_ALPHA):
        self.max_alpha = check_number("max_alpha", max_alpha, 1, low_open=True)
        self.log_max = math.log(self.max_alpha)
        self.reset(None)

    def reset(self, campaign: dict | None = None) -> None:
        """Start a day for ``campaign`` (``None``: unknown, treated as budget-only)."""
        self.campaign = normalise_campaign(campaign)
        self.constraint = self.campaign["constraint"]
        self.budget = float(self.campaign["budget"])
        self.tick = 0
        self.last_alpha = 1.0
        self.bid_scale = BidScale(self.campaign)

    def act(self, obs) -> np.ndarray:
        """The action for this tick's observation: shape (1,), float32, in [-1, 1]."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        if obs.shape != (len(FEATURE_NAMES),):
            raise ValueError(f"obs must have {len(FEATURE_NAMES)} features "
                             f"({', '.join(FEATURE_NAMES[:3])}, ...), got shape {obs.shape}")
        self.bid_scale.observe(obs)
        alpha = float(np.clip(self._alpha(obs), 1.0 / self.max_alpha, self.max_alpha))
        self.bid_scale.played(alpha)
        self.last_alpha = alpha
        self.tick += 1
        return alpha_to_action(alpha, self.max_alpha)

    def _alpha(self, obs: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def feature(obs: np.ndarray, name: str) -> float:
    """One named observation feature as a float."""
    return float(obs[FEATURE_INDEX[name]])


class BidScale:
    """The campaign's bid scale ``s``: money bid per predicted conversion at ``alpha = 1``.

    The environment bids ``alpha x s x pvalue``; ``s`` is also the money one conversion is
    worth at the target, so "CPA at target" reads ``cost <= s x conversions`` for every kind:

    * CPA campaign: ``s = target_cpa``; budget-only: ``s = target_cpa`` (the bid scale);
    * ROI campaign: ``s = conversion value / target_roi``. The conversion value is not in the
      campaign, so ``s`` is read from the observation: ``hist_bid_mean`` is the mean own bid
      over past ticks, i.e. ``s x mean_t(alpha_t x pvalue_t)``, and the agent knows its own
      ``alpha_t`` and each tick's ``cur_pvalue_mean``. Before the first tick it assumes
      :func:`bidenv.features.prior_bid_scale` (a conversion worth
      :data:`bidenv.features.PRIOR_CONVERSION_VALUE`). (With a conversion value that varies by
      opportunity this is its pValue-weighted mean.)

    Call :meth:`observe` with every observation before acting and :meth:`played` after.
    """

    def __init__(self, campaign: dict):
        self.is_roi = campaign["constraint"] == "roi"
        self.value = prior_bid_scale(campaign)
        self._weighted_pvalue = 0.0  # sum over past ticks of alpha_t x mean pValue_t
        self._ticks = 0
        self._pvalue_now = 0.0

    def observe(self, obs: np.ndarray) -> float:
        """Update the estimate from an observation; returns it."""
        self._pvalue_now = feature(obs, "cur_pvalue_mean") * PVALUE_UNIT
        if self.is_roi and self._ticks > 0 and self._weighted_pvalue > 0:
            mean_bid = feature(obs, "hist_bid_mean") * PRICE_UNIT
            if mean_bid > 0:
                self.value = mean_bid * self._ticks / self._weighted_pvalue
        return self.value

    def played(self, alpha: float) -> None:
        """Record the multiplier played on the last observed tick."""
        self._weighted_pvalue += alpha * self._pvalue_now
        self._ticks += 1


class DayLedger:
    """The agent's opportunities of the day so far and what it won, from ``update`` calls.

    Each tick one multiplier prices every opportunity (``alpha x s x pvalue`` against the
    least winning cost ``lwc``), so the ``info["wins"]`` opportunities won are the most
    efficient ones by ``pvalue / lwc``. From them:

    * ``predicted_conversions``: sum over ticks of the pValue won x that tick's exposure rate
      (exposures / wins; cost and conversions only come with exposure), the expected
      conversions by the platform's own predictions, far less noisy than the realised count;
    * ``won_lwc``: the least winning costs of the wins, to compare with the cost paid
      (``cost_seen``).

    Args:
        keep_opportunities: Keep the per-opportunity arrays (for
            :class:`agents.online_lp.OnlineLpAgent`).
    """

    def __init__(self, keep_opportunities: bool = False):
        self.keep_opportunities = keep_opportunities
        self.pvalue: list[np.ndarray] = []
        self.lwc: list[np.ndarray] = []
        self.n_seen = 0
        self.ticks = 0
        self.wins = 0
        self.exposures = 0
        self.won_lwc = 0.0
        self.won_pvalue = 0.0
        self.predicted_conversions = 0.0
        self.cost_seen = 0.0
        self.conversions = 0.0

    def update(self, info: dict, opportunities: dict | None) -> None:
        """Record one tick (``info`` of the step and ``last_tick_opportunities()``)."""
        self.ticks += 1
        self.cost_seen += float(info.get("cost", 0.0))
        self.conversions = float(info.get("total_conversions", self.conversions))
        if opportunities is None:
            return
        pvalue = np.asarray(opportunities["pvalue"], dtype=np.float64)
        lwc = np.asarray(opportunities["least_winning_cost"], dtype=np.float64)
        keep = lwc > 0
        pvalue, lwc = pvalue[keep], lwc[keep]
        wins = min(int(info.get("wins", 0)), len(pvalue))
        exposures = int(info.get("exposures", 0))
        if wins > 0:
            won = np.argpartition(-(pvalue / lwc), wins - 1)[:wins]
            won_pvalue = float(pvalue[won].sum())
            self.won_lwc += float(lwc[won].sum())
            self.won_pvalue += won_pvalue
            self.predicted_conversions += won_pvalue * exposures / wins
        self.wins += wins
        self.exposures += exposures
        self.n_seen += len(pvalue)
        if self.keep_opportunities:
            self.pvalue.append(pvalue)
            self.lwc.append(lwc)

    @property
    def has_data(self) -> bool:
        return self.n_seen > 0

    def calibration(self, prior_conversions: float) -> float:
        """Realised / predicted conversions, shrunk to 1 by ``prior_conversions`` (Gamma prior
        of mean 1): ``(n0 + conversions) / (n0 + predicted_conversions)``."""
        n0 = prior_conversions
        if n0 + self.predicted_conversions <= 0:
            return 1.0
        return (n0 + self.conversions) / (n0 + self.predicted_conversions)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
Factory = Callable[..., Any]


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent: how to build it by name and (optionally) from a checkpoint.

    Attributes:
        name: Registry name.
        factory: ``factory(**kwargs) -> agent``, or a ``"module:attr"`` string imported on first
            use; ``None`` when the agent only exists as a checkpoint (``name:path``).
        loader: ``loader(path, **kwargs) -> agent`` (or a ``"module:attr"`` string), for
            ``name:path`` specs; ``None`` when the agent has no checkpoints.
        description: One line for listings.
        family: One of :data:`FAMILIES` (how the agent comes about; leaderboards and the
            command line group agents by it).
    """

    name: str
    factory: Factory | str | None
    loader: Factory | str | None = None
    description: str = ""
    family: str = "plugin"


#: Agent families: ``heuristic`` (the classic bidders a leaderboard always runs), ``baseline``
#: (bidders that need settings: fixed or random multipliers), ``online_rl`` (stable-baselines3
#: policies, checkpoints only), ``offline`` (trained on logged days with ``bidenv train``) and
#: ``plugin`` (anything a user registers).
FAMILIES = ("heuristic", "baseline", "online_rl", "offline", "plugin")


_REGISTRY: dict[str, AgentSpec] = {}


def _resolve(ref: Factory | str, what: str) -> Factory:
    """A callable from a callable or a ``"module:attr.attr"`` reference (imported now)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{what} {ref!r} is not callable")
    return obj


def _check_ref(ref, what: str) -> None:
    if ref is None or callable(ref):
        return
    if isinstance(ref, str) and ref.count(":") == 1 and all(ref.split(":")):
        return
    raise ValueError(f"{what} must be a callable or a 'module:attr' string, got {ref!r}")


def register(name: str, factory: Factory | str | None, *, loader: Factory | str | None = None,
             description: str = "", family: str = "plugin", overwrite: bool = False) -> None:
    """Register an agent under ``name``.

    Args:
        name: Registry name: letters, digits, ``_``, ``-`` or ``.`` (no ``:`` or ``,``, which
            separate specs on the command line).
        factory: ``factory(**kwargs) -> agent`` or a lazy ``"module:attr"`` reference; ``None``
            for agents that can only be loaded from a checkpoint.
        loader: ``loader(path, **kwargs) -> agent`` (or ``"module:attr"``) for ``name:path``.
        description: One line for :func:`describe` and the like.
        family: One of :data:`FAMILIES` (``"plugin"`` unless the agent ships with bidenv).
        overwrite: Replace an existing registration instead of raising.

    Raises:
        ValueError: on a bad name or reference, or a name already registered.
    """
    if not (isinstance(name, str) and name
            and all(ch.isalnum() or ch in "_-." for ch in name)):
        raise ValueError(f"agent name must be a non-empty string of letters, digits, '_', '-' "
                         f"or '.', got {name!r}")
    _check_ref(factory, "factory")
    _check_ref(loader, "loader")
    if factory is None and loader is None:
        raise ValueError(f"agent {name!r} needs a factory, a loader or both")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"agent {name!r} is already registered (pass overwrite=True to "
                         "replace it)")
    check_choice("family", family, FAMILIES)
    _REGISTRY[name] = AgentSpec(name, factory, loader, description, family)


def available(family: str | None = None) -> list[str]:
    """Names of the registered agents (of one of :data:`FAMILIES`, if given), sorted.

    >>> available("heuristic")
    ['online_lp', 'pid_budget', 'pid_cpa', 'truthful']
    """
    if family is not None:
        check_choice("family", family, FAMILIES)
    return sorted(n for n, spec in _REGISTRY.items() if family in (None, spec.family))


def describe() -> dict[str, str]:
    """``{name: description}`` of all registered agents, sorted by name."""
    return {name: _REGISTRY[name].description for name in available()}


#: Entry-point group through which installed packages register agents (name -> class).
ENTRY_POINT_GROUP = "bidenv.agents"


def _from_entry_points(name: str) -> AgentSpec | None:
    """Register the agent an installed package declares under ``bidenv.agents``, if any."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        obj = ep.load()
        loader = getattr(obj, "load", None)
        register(name, obj, loader=loader if callable(loader) else None,
                 description=f"plug-in agent from {ep.value}", overwrite=True)
        return _REGISTRY[name]
    return None


def _spec(name: str) -> AgentSpec:
    spec = _REGISTRY.get(name) or _from_entry_points(name)
    if spec is None:
        raise ValueError(f"unknown agent {name!r}; available: {', '.join(available())} (or "
                         "'pkg.module:Class[:checkpoint]', or an agent installed under the "
                         f"{ENTRY_POINT_GROUP!r} entry-point group)")
    return spec


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _plugin(spec: str, kwargs: dict) -> Any:
    """An agent from ``pkg.module:Class`` or ``pkg.module:Class:checkpoint``."""
    module, _, rest = spec.partition(":")
    attr, _, path = rest.partition(":")
    if not attr:
        raise ValueError(f"agent spec {spec!r}: expected 'pkg.module:Class[:checkpoint]'")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"agent spec {spec!r}: cannot import module {module!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"agent spec {spec!r}: module {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if path:
        load = getattr(obj, "load", None)
        if not callable(load):
            raise ValueError(f"agent spec {spec!r}: {attr} has no load(path) for a checkpoint")
        agent = load(path, **kwargs)
    else:
        if not callable(obj):
            raise ValueError(f"agent spec {spec!r}: {attr} is not callable")
        agent = obj(**kwargs)
    if getattr(agent, "name", None) is None:
        agent.name = attr
    return agent


def make(name: str, **kwargs) -> Any:
    """Build the agent registered as ``name`` with keyword arguments for its factory.

    Raises:
        ValueError: for an unknown name (listing the available ones) or an agent that only
            exists as a checkpoint.
    """
    spec = _spec(name)
    if spec.factory is None:
        raise ValueError(f"agent {name!r} is loaded from a checkpoint: use '{name}:PATH'")
    agent = _resolve(spec.factory, "factory")(**kwargs)
    if getattr(agent, "name", None) is None:
        agent.name = name
    return agent


def from_spec(spec: str, **kwargs) -> Any:
    """Build an agent from a command-line spec.

    * ``name`` goes to :func:`make`; ``name:path`` to the agent's loader (a trained checkpoint
      directory or model file). Names are the registered ones and those that installed
      packages declare in the ``bidenv.agents`` entry-point group.
    * ``pkg.module:Class`` builds ``Class(**kwargs)`` from an importable module (a user's own
      bidder); ``pkg.module:Class:checkpoint`` calls ``Class.load(checkpoint, **kwargs)``.

    ``kwargs`` are passed on in every case.

    Raises:
        ValueError: for an empty spec, an unknown name or module, or a path for an agent
            without loader.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"agent spec must be 'name' or 'name:path', got {spec!r}")
    name, sep, path = spec.strip().partition(":")
    if sep and name not in _REGISTRY and _from_entry_points(name) is None and _importable(name):
        return _plugin(spec.strip(), kwargs)  # a user's class: pkg.module:Class[:checkpoint]
    if not sep:
        return make(name, **kwargs)
    entry = _spec(name)
    if entry.loader is None:
        loadable = [n for n in available() if _REGISTRY[n].loader is not None]
        raise ValueError(f"agent {name!r} has no checkpoints to load (got {spec!r}); use "
                         f"'{name}' alone. Agents loadable as 'name:path': "
                         f"{', '.join(loadable) or 'none'}")
    if not path:
        raise ValueError(f"agent spec {spec!r} names no checkpoint path after ':'")
    return _resolve(entry.loader, "loader")(path, **kwargs)


# --------------------------------------------------------------------------------------------
# Episode loop
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One transition of a day, as :func:`run_episode` hands it to ``on_step``.

    Attributes:
        tick: Ticks played before this one (0 for the first step of the day).
        obs: The observation the agent acted on.
        action: The ``(1,)`` float32 action sent to the environment.
        reward: The environment's reward for the step (its ``reward_mode``).
        next_obs: The observation after the step.
        done: Whether the day ended with this step (terminated or truncated).
        info: The step's ``info``.
    """

    tick: int
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    done: bool
    info: dict


def run_episode(env, agent, *, seed: int, options: dict | None = None,
                on_step=None) -> dict:
    """Play one day: reset env and agent, step to the end, return the final ``info``.

    The agent is reset with the episode's campaign
    (``env.unwrapped.agent_campaign.to_dict()``); when it has ``update``, that is called after
    every step with the step's ``info`` and ``env.unwrapped.last_tick_opportunities()``.
    ``on_step(step)``, if given, is called after every step with a :class:`Step` (the
    transition: observation, action, reward, next observation, info), e.g. to record a per-tick
    trace or a dataset row. The one episode loop of the project: evaluation, budget simulation,
    data collection, the speed benchmark and the life-cycle checks play days through it.
    """
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(env.unwrapped.agent_campaign.to_dict())
    update = getattr(agent, "update", None)
    tick = 0
    while True:
        action = np.asarray(agent.act(obs), dtype=np.float32).reshape(env.action_space.shape)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if update is not None:
            update(info, env.unwrapped.last_tick_opportunities())
        done = bool(terminated or truncated)
        if on_step is not None:
            on_step(Step(tick, obs, action, float(reward), next_obs, done, info))
        if done:
            return info
        obs, tick = next_obs, tick + 1


# --------------------------------------------------------------------------------------------
# Life-cycle check for any agent (a user's own bidder included)
# --------------------------------------------------------------------------------------------
class AgentCheckError(AssertionError):
    """An agent broke the agent protocol (see :func:`check_agent`)."""


class _Checked:
    """Wraps an agent: checks and records every action it returns."""

    def __init__(self, agent):
        self.agent, self.name, self.actions = agent, agent.name, []
        if callable(getattr(agent, "update", None)):
            self.update = agent.update

    def reset(self, campaign):
        self.agent.reset(campaign)

    def act(self, obs):
        action = np.asarray(self.agent.act(obs))
        if action.size != 1 or not np.all(np.isfinite(action)):
            raise AgentCheckError(f"{self.name}: act() must return one finite number, got "
                                  f"{action!r}")
        if not -1.0 <= float(action.reshape(-1)[0]) <= 1.0:
            raise AgentCheckError(f"{self.name}: act() returned {float(action.reshape(-1)[0])}"
                                  ", outside the action space [-1, 1]")
        self.actions.append(action.astype(np.float32).reshape(-1))
        return self.actions[-1]


def _day_actions(env, agent, seed: int, options: dict) -> list[np.ndarray]:
    checked = _Checked(agent)
    run_episode(env, checked, seed=seed, options=options)
    return checked.actions


def check_agent(agent, *, env_id: str = "bidenv/AutoBiddingLite-v0", seed: int = 0) -> dict:
    """Run the shared life-cycle checks on any agent; raises :class:`AgentCheckError`.

    Checks that the agent has a ``name``, ``reset`` and ``act``; plays a CPA day and an ROI day
    (every action one finite number in [-1, 1], ``update(info, opportunities)`` called when the
    agent has it); that a day replayed after another day gives the same actions (``reset``
    clears the day's state, so results do not depend on what was played before); and, for an
    agent with ``save`` and ``load``, that a saved and reloaded copy acts the same.

    Args:
        agent: The agent to check.
        env_id: Environment to play (Lite by default: a few seconds).
        seed: Seed of the first day (the second is ``seed + 1``).

    Returns:
        ``{"days": ..., "ticks": ..., "saved": bool}``.
    """
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the environments)
    from bidenv.campaign import market_target

    for attr in ("reset", "act"):
        if not callable(getattr(agent, attr, None)):
            raise AgentCheckError(f"the agent has no {attr}() method")
    if not isinstance(getattr(agent, "name", None), str) or not agent.name:
        raise AgentCheckError("the agent needs a non-empty string attribute 'name'")
    env = gym.make(env_id)
    scale = env.unwrapped.opportunities_per_day / 500_000
    days = [(seed, {"budget": 4000.0 * scale, "constraint": "cpa", "category": 3,
                    "target_cpa": market_target(3, "cpa", 1.0)}),
            (seed + 1, {"budget": 4000.0 * scale, "constraint": "roi", "category": 3,
                        "target_roi": market_target(3, "roi", 1.0)})]
    first = [_day_actions(env, agent, s, o) for s, o in days]
    again = _day_actions(env, agent, *days[0])
    if len(again) != len(first[0]) or any(not np.array_equal(a, b)
                                          for a, b in zip(again, first[0])):
        raise AgentCheckError(f"{agent.name}: the same day replayed after another one gives "
                              "other actions: reset() must clear the day's state")
    saved = callable(getattr(agent, "save", None)) and callable(getattr(type(agent), "load",
                                                                        None))
    if saved:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            agent.save(tmp)
            copy = type(agent).load(tmp)
            if copy.name is None:
                copy.name = agent.name
            reloaded = _day_actions(env, copy, *days[0])
        if any(not np.allclose(a, b, atol=1e-6) for a, b in zip(reloaded, first[0])):
            raise AgentCheckError(f"{agent.name}: a saved and reloaded copy acts differently")
    return {"days": len(days), "ticks": sum(len(a) for a in first), "saved": saved}
