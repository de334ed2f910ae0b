"""Budget simulation for analysts: what does more (or less) daily budget buy?

:func:`simulate_budget` plays the same simulated days for every budget, target and bidding
strategy of a campaign spec and returns one row per (strategy, target, budget) with the mean
over days and a 95% bootstrap interval of spend, conversions, sales value, CPA, ROI, score,
share of the budget used and share of spend by traffic source, plus the *marginal* CPA and ROI
between neighbouring budgets. :func:`recommend` reads that frame: the largest budget up to
which an extra unit of spend still pays for itself at the target, and the budget beyond which
the strategy cannot spend more.

Common random numbers: day ``i`` is ``env.reset(seed=seed + i, options=<campaign>)`` for every
budget, target and strategy, so every row sees the same traffic, competitors and outcome
draws, and differences between neighbouring budgets are not drowned in day-to-day noise. The
bootstrap resamples whole days, the same resample for every budget of a (strategy, target), so
the marginal intervals are paired too.

Units. Budgets are given for the reference day of 500k opportunities (as in the public data,
2,000-8,000), like the evaluation scenarios, and are scaled to the environment's daily volume
(``bidenv.campaign.budget_scale``). Spend, conversions and value are reported per reference day
(divided by the same scale), so that they read in the units of the budgets; on the default
full-size environment the scale is 1. Conversions, value and score are the environment's
noise-free *expected* figures (exposure probability x true conversion probability of the slots
won; docs/design.md's benchmark figures); the realised ones are in ``*_realised`` columns.

Example:
    >>> from experiments.analysis import simulate_budget, recommend
    >>> frame = simulate_budget(budgets=[1000, 2000], target=100, strategies=["pid_cpa"],
    ...                         days=1, env_id="bidenv/AutoBiddingLite-v0", progress=False)
    >>> list(frame["budget"])
    [1000.0, 2000.0]
    >>> bool((frame["budget_used"] <= 1 + 1e-9).all())
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bidenv.campaign import DEFAULT_POPULARITY, N_CATEGORIES
from bidenv.scoring import ratio
from bidenv.traffic.latent import RETRIEVAL_MODES  # the spec's ``retrieval`` takes one or more
from bidenv.validation import (
    check_choice,
    check_int,
    check_number,
    check_size,
    clip,
    short_repr,
)

#: A budget is "saturated" when the strategy spends less than this share of it ...
SATURATION_BUDGET_USED = 0.9
#: ... and spends within this relative gap of the most it spends at any budget tried.
SPEND_TOLERANCE = 0.05
#: A marginal CPA/ROI needs extra spend above this share of the budget step (else nan).
MIN_EXTRA_SPEND = 0.01
#: Bootstrap resamples of the days for the intervals.
N_BOOT = 1000
#: Traffic names accepted by the env (besides a {"feed": share, "search": share} mapping).
TRAFFIC_NAMES = ("mixed", "feed", "search")
MAX_BUDGETS = 200
MAX_DAYS = 10_000
MAX_BUDGET = 1e9
#: Fewer simulated days than this per budget give a warning with the advice.
MIN_DAYS = 10
#: Default cap on the days of :func:`simulate_until_confident` (``--max-days``).
MAX_DAYS_CONFIDENT = 40
#: Largest spec file read (a spec is a few hundred bytes).
MAX_SPEC_BYTES = 1_000_000
DEFAULT_TARGETS = {"cpa": 100.0, "roi": 2.0, "budget": 50.0}
_SPEC_FIELDS = ("budgets", "budget_range", "constraint", "target", "targets", "category",
                "traffic", "strategies", "days", "seed", "env_id", "cold_start",
                "marketing_style", "popularity", "retrieval")
_METRICS = ("spend", "conversions", "value", "score", "budget_used", "spend_feed",
            "spend_search", "conversions_realised", "value_realised", "score_realised")


# --------------------------------------------------------------------------------------------
# The campaign spec
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetSpec:
    """What to simulate: one campaign at several budgets (and targets), several strategies.

    Attributes:
        budgets: Daily budgets for the reference day of 500k opportunities, increasing, each in
            (0, 1e9]; 1-200 of them. In a file also ``budget_range: {start, stop, num}``
            (``num`` evenly spaced budgets from ``start`` to ``stop`` inclusive).
        constraint: ``"cpa"``, ``"roi"`` or ``"budget"`` (spend the budget, no target).
        targets: Targets of the constraint (target CPA in money per conversion, or target ROI
            in sales value per unit cost), each > 0; for ``"budget"`` the bid scale. In a file
            ``target: x`` or ``targets: [x, y]``.
        category: Advertiser category in ``[0, 8)`` (sets the campaign's pValue level).
        traffic: ``"mixed"``, ``"feed"``, ``"search"`` or a mapping ``{"feed": share,
            "search": share}`` of non-negative shares (normalised).
        strategies: Agent names (``agents.available()``) or ``name:checkpoint`` specs.
        days: Simulated days per (strategy, target, budget), 1-10,000.
        seed: Day ``i`` uses ``seed + i``; an integer >= 0.
        env_id: Gymnasium id of the environment.
        cold_start: The analyst's campaign is new (cold-start: wider, biased predictions), as
            the market's cold-start competitors (``bidenv.campaign.Campaign``); default False.
        marketing_style: The campaign runs marketing-style ads (inflated predictions of a
            lower true rate), as the market's marketing competitors; default False.
        popularity: Rank of the campaign's engagement history among the market's
            advertisers, in [0, 1] (``Campaign.popularity``): the cascade's recall favours
            popular advertisers; 0.5 (default) the median, 0.1 a small account, 0.9 a big
            one. It does not move with the simulated budgets.
        retrieval: The platform's retrieval, ``"cascade"`` (default) or ``"generative"``
            (docs/design.md, Traffic); or a tuple of both, to compare them: the same budgets,
            strategies, days and seeds under each mode (common random numbers), the frames
            gaining a ``retrieval`` column. In a file a name, a list or ``"cascade,generative"``.
    """

    budgets: tuple = (1000.0, 2000.0, 4000.0, 6000.0, 8000.0)
    constraint: str = "cpa"
    targets: tuple = (100.0,)
    category: int = 3
    traffic: object = "mixed"
    strategies: tuple = ("pid_cpa", "online_lp")
    days: int = 5
    seed: int = 0
    env_id: str = "bidenv/AutoBidding-v0"
    cold_start: bool = False
    marketing_style: bool = False
    popularity: float = DEFAULT_POPULARITY
    retrieval: object = "cascade"

    def to_dict(self) -> dict:
        """JSON-friendly dict of the spec (what :func:`parse_spec` reads back).

        ``cold_start``, ``marketing_style``, ``popularity`` and ``retrieval`` appear only when
        not at their defaults (False, False, 0.5, ``"cascade"``), so a default spec reads as
        before they existed.
        """
        d = asdict(self)
        d["budgets"] = list(self.budgets)
        d["targets"] = list(self.targets)
        d["strategies"] = list(self.strategies)
        d["traffic"] = dict(self.traffic) if isinstance(self.traffic, Mapping) else self.traffic
        for key in ("cold_start", "marketing_style"):
            if not d[key]:
                del d[key]
        if self.popularity == DEFAULT_POPULARITY:
            del d["popularity"]
        if self.retrieval == "cascade":
            del d["retrieval"]
        elif not isinstance(self.retrieval, str):
            d["retrieval"] = list(self.retrieval)
        return d

    @property
    def retrieval_modes(self) -> tuple:
        """The retrieval modes simulated, in order (one, or several to compare)."""
        return (self.retrieval,) if isinstance(self.retrieval, str) else tuple(self.retrieval)

    @property
    def compares_retrieval(self) -> bool:
        """True when the frames carry a ``retrieval`` column (not the default cascade alone)."""
        return self.retrieval != "cascade"

    @property
    def traffic_label(self) -> str:
        """A short name of the traffic mix (``mixed``, ``feed``, ``feed 70% / search 30%``)."""
        if isinstance(self.traffic, str):
            return self.traffic
        total = sum(self.traffic.values())
        return " / ".join(f"{k} {100 * v / total:.0f}%" for k, v in self.traffic.items())


def _budgets(spec: Mapping) -> tuple:
    if ("budgets" in spec) == ("budget_range" in spec):
        raise ValueError("spec needs exactly one of 'budgets' (a list of numbers in (0, 1e9]) "
                         "or 'budget_range' ({start, stop, num})")
    if "budget_range" in spec:
        rng = spec["budget_range"]
        if isinstance(rng, Sequence) and not isinstance(rng, str) and len(rng) == 3:
            rng = dict(zip(("start", "stop", "num"), rng))
        if not isinstance(rng, Mapping) or set(rng) != {"start", "stop", "num"}:
            raise ValueError("spec field 'budget_range' must be {start, stop, num} (or a list "
                             f"[start, stop, num]), got {short_repr(rng)}")
        start = check_number("spec field 'budget_range.start'", rng["start"], 0, MAX_BUDGET,
                             low_open=True)
        stop = check_number("spec field 'budget_range.stop'", rng["stop"], 0, MAX_BUDGET,
                            low_open=True)
        num = check_int("spec field 'budget_range.num'", rng["num"], 1, MAX_BUDGETS)
        if num > 1 and not stop > start:
            raise ValueError(f"spec field 'budget_range' needs stop > start, got start {start:g},"
                             f" stop {stop:g}")
        values = np.linspace(start, stop, num) if num > 1 else np.array([start])
        return tuple(float(round(v, 6)) for v in values)
    budgets = spec["budgets"]
    if isinstance(budgets, (int, float)) and not isinstance(budgets, bool):
        budgets = [budgets]
    if isinstance(budgets, str) or not isinstance(budgets, Sequence) or not (
            1 <= len(budgets) <= MAX_BUDGETS):
        raise ValueError(f"spec field 'budgets' must be a list of 1-{MAX_BUDGETS} numbers in "
                         f"(0, {MAX_BUDGET:g}], got {short_repr(budgets)}")
    values = [check_number(f"spec field 'budgets[{i}]'", b, 0, MAX_BUDGET, low_open=True)
              for i, b in enumerate(budgets)]
    if len(set(values)) != len(values):
        raise ValueError(f"spec field 'budgets' has duplicates: {short_repr(values)}")
    return tuple(sorted(values))


def _traffic(value):
    if isinstance(value, str):
        if value not in TRAFFIC_NAMES:
            raise ValueError(f"spec field 'traffic' must be one of {TRAFFIC_NAMES} or a mapping "
                             f"{{feed: share, search: share}}, got {short_repr(value)}")
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"feed", "search"}
        if unknown or not value:
            raise ValueError("spec field 'traffic' as a mapping takes shares for 'feed' and "
                             f"'search' only, got keys {short_repr(sorted(map(str, value)))}")
        shares = {k: check_number(f"spec field 'traffic.{k}'", v, 0, 1e9)
                  for k, v in value.items()}
        if sum(shares.values()) <= 0:
            raise ValueError(f"spec field 'traffic' needs a share > 0, got "
                             f"{short_repr(dict(value))}")
        return {k: shares[k] for k in ("feed", "search") if k in shares}
    raise ValueError(f"spec field 'traffic' must be one of {TRAFFIC_NAMES} or a mapping "
                     f"{{feed: share, search: share}}, got {short_repr(value)}")


def _retrieval(value):
    """A spec's ``retrieval``: one mode (a str) or several (a tuple, in the order given)."""
    modes = value
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    ok = (isinstance(modes, Sequence) and 1 <= len(modes) <= 2 * len(RETRIEVAL_MODES)
          and all(isinstance(m, str) and m in RETRIEVAL_MODES for m in modes))
    if not ok:
        raise ValueError(f"spec field 'retrieval' must be {' or '.join(RETRIEVAL_MODES)}, or "
                         f"both comma-separated (cascade,generative) to compare them, got "
                         f"{short_repr(value)}")
    modes = tuple(dict.fromkeys(modes))
    return modes[0] if len(modes) == 1 else modes


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"spec field {name!r} must be true or false, got {short_repr(value)}")
    return value


def check_popularity(label: str, value) -> float:
    """A campaign's popularity, a rank among the market's advertisers in [0, 1] (the spec's
    ``popularity``, ``--popularity``); ``label`` names it in the error."""
    return check_number(label, value, 0.0, 1.0,
                        why="a rank among the market's advertisers: 0.5 the median")


def _by_mode(keys: list[str], frame) -> list[str]:
    """``keys`` of a frame's rows, led by ``retrieval`` when the frame compares modes."""
    return ["retrieval", *keys] if "retrieval" in frame else list(keys)


def parse_spec(spec: Mapping | BudgetSpec | None = None, **overrides) -> BudgetSpec:
    """Validate a campaign spec (a mapping, e.g. from a file) into a :class:`BudgetSpec`.

    ``overrides`` (keyword arguments) replace fields of ``spec``; ``None`` values are ignored.
    Every field is optional except the budgets (see :class:`BudgetSpec` for fields and ranges).

    Raises:
        ValueError: naming the offending field and the allowed values.
    """
    import agents

    if isinstance(spec, BudgetSpec):
        spec = spec.to_dict()
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"a budget spec must be a mapping of fields, got {type(spec).__name__}")
    data = dict(spec)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("budgets", "budget_range"):
            data.pop("budgets", None)
            data.pop("budget_range", None)
        if key in ("target", "targets"):
            data.pop("target", None)
            data.pop("targets", None)
        data[key] = value
    # Before anything walks or quotes the values: a few hundred bytes of YAML aliases expand
    # to hundreds of millions of items.
    check_size(data, "budget spec")
    unknown = sorted(set(map(str, data)) - set(_SPEC_FIELDS))
    if unknown:
        raise ValueError(f"unknown spec field(s) {short_repr(unknown)}; allowed: "
                         f"{', '.join(_SPEC_FIELDS)}")
    budgets = _budgets(data)
    constraint = data.get("constraint", "cpa")
    check_choice("spec field 'constraint'", constraint, tuple(DEFAULT_TARGETS))
    if "target" in data and "targets" in data:
        raise ValueError("spec takes 'target' or 'targets', not both")
    targets = data.get("targets", data.get("target", DEFAULT_TARGETS[constraint]))
    name = "targets" if "targets" in data else "target"
    if not isinstance(targets, Sequence) or isinstance(targets, str):
        targets = [targets]
    if not 1 <= len(targets) <= 20:
        raise ValueError(f"spec field {name!r} must hold 1-20 numbers > 0, got "
                         f"{short_repr(targets)}")
    targets = tuple(dict.fromkeys(check_number(f"spec field {name!r}", t, 0, 1e9, low_open=True)
                                  for t in targets))
    category = check_int("spec field 'category'", data.get("category", 3), 0, N_CATEGORIES - 1)
    strategies = data.get("strategies", ("pid_cpa", "online_lp"))
    if isinstance(strategies, str):
        strategies = [s.strip() for s in strategies.split(",") if s.strip()]
    if not isinstance(strategies, Sequence) or not strategies or not all(
            isinstance(s, str) and s for s in strategies):
        raise ValueError("spec field 'strategies' must be a non-empty list of agent names "
                         f"({', '.join(agents.available())}) or name:checkpoint, "
                         f"got {short_repr(strategies)}")
    strategies = tuple(dict.fromkeys(strategies))
    for s in strategies:
        try:
            agents.from_spec(s)
        except (ValueError, OSError) as exc:
            raise ValueError(f"spec field 'strategies': {clip(str(exc), 300)}") from None
    days = check_int("spec field 'days'", data.get("days", 5), 1, MAX_DAYS)
    seed = check_int("spec field 'seed'", data.get("seed", 0), 0, 2**31 - 1)
    env_id = data.get("env_id", BudgetSpec.env_id)
    from gymnasium.envs.registration import registry

    import bidenv  # noqa: F401  (registers the environments)

    if not isinstance(env_id, str) or env_id not in registry:
        ids = sorted(k for k in registry if k.startswith("bidenv/"))
        raise ValueError(f"spec field 'env_id' must be a registered environment ({', '.join(ids)}"
                         f"), got {short_repr(env_id)}")
    return BudgetSpec(budgets=budgets, constraint=constraint, targets=targets, category=category,
                      traffic=_traffic(data.get("traffic", "mixed")), strategies=strategies,
                      days=days, seed=seed, env_id=env_id,
                      cold_start=_flag("cold_start", data.get("cold_start", False)),
                      marketing_style=_flag("marketing_style",
                                            data.get("marketing_style", False)),
                      popularity=check_popularity("spec field 'popularity'",
                                                  data.get("popularity", DEFAULT_POPULARITY)),
                      retrieval=_retrieval(data.get("retrieval", "cascade")))


def load_spec(path) -> BudgetSpec:
    """Read and validate a spec from a JSON file, or YAML (``.yaml``/``.yml``, needs PyYAML).

    YAML is parsed with ``yaml.safe_load`` (plain data only, no Python objects). A file over
    :data:`MAX_SPEC_BYTES`, nested too deeply or holding more values than any spec needs (a
    few hundred bytes of nested YAML aliases expand to millions; see
    :func:`bidenv.validation.check_size`) is refused before its values are read.

    Raises:
        ValueError: for a missing, unparsable or absurdly large file or an invalid spec; the
            message is one short line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"spec file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise ValueError(f"spec file {path.name} is {size:,} bytes; a spec is at most "
                         f"{MAX_SPEC_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"spec file {path.name} is not UTF-8 text") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:  # pragma: no cover - PyYAML is common but optional
                raise ValueError(f"reading {path.name} needs PyYAML (pip install pyyaml); or "
                                 "write the spec as JSON") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"spec file {path.name} is not valid YAML: "
                                 f"{clip(' '.join(str(exc).split()), 200)}") from None
        elif suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"spec file {path.name} is not valid JSON: {exc}") from None
        else:
            raise ValueError(f"spec file must end in .json, .yaml or .yml, got "
                             f"{short_repr(path.name)}")
    except RecursionError:
        raise ValueError(f"spec file {path.name} is nested too deeply") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"spec file {path.name} must hold a mapping of fields, got "
                         f"{type(data).__name__}")
    check_size(data, f"spec file {path.name}")
    return parse_spec(data)


# --------------------------------------------------------------------------------------------
# Simulating days
# --------------------------------------------------------------------------------------------
def make_traffic_source(traffic, retrieval: str = "cascade"):
    """The env's ``traffic`` argument for a spec's traffic (a name or feed/search shares).

    A name is returned as is (the env applies its ``retrieval``); shares build a
    :class:`~bidenv.traffic.TrafficMix` whose sources use ``retrieval``.
    """
    if isinstance(traffic, str):
        return traffic
    from bidenv.traffic import FeedTraffic, SearchTraffic, TrafficMix

    kinds = {"feed": FeedTraffic, "search": SearchTraffic}
    names = [k for k, v in traffic.items() if v > 0]
    if len(names) == 1:
        return names[0]
    return TrafficMix([kinds[k](retrieval=retrieval) for k in names],
                      [traffic[k] for k in names])


_ENV_CACHE: dict = {}


def _env(env_id: str, traffic, retrieval: str = "cascade"):
    """One env per (id, traffic, retrieval) per process (building one binds nothing: reset
    does)."""
    import gymnasium as gym

    import bidenv  # noqa: F401

    check_choice("retrieval", retrieval, RETRIEVAL_MODES)
    key = (env_id, json.dumps(traffic, sort_keys=True), retrieval)
    if key not in _ENV_CACHE:
        source = make_traffic_source(traffic, retrieval)
        kwargs = {"retrieval": retrieval} if isinstance(source, str) else {}
        _ENV_CACHE[key] = gym.make(env_id, traffic=source, **kwargs)
    return _ENV_CACHE[key]


def simulate_day(strategy: str, *, budget: float, constraint: str = "cpa", target: float = 100.0,
                 category: int = 3, traffic="mixed", seed: int = 0,
                 env_id: str = "bidenv/AutoBidding-v0", trace: bool = False,
                 cold_start: bool = False, marketing_style: bool = False,
                 popularity: float = DEFAULT_POPULARITY, retrieval: str = "cascade"):
    """Play one day of one campaign with one strategy.

    Args:
        strategy: Agent name or ``name:checkpoint``.
        budget: Daily budget for the reference day (scaled to the env's volume).
        constraint, target, category: The campaign.
        traffic: ``"mixed"``, ``"feed"``, ``"search"`` or ``{"feed": x, "search": y}``.
        seed: The day's seed.
        env_id: Environment id.
        trace: Also return one row per tick (spend share, traffic share, alpha, ...).
        cold_start, marketing_style: The campaign's traffic profile (``reset`` options).
        popularity: The campaign's popularity rank among the market's advertisers (a
            ``reset`` option, passed only when not the default 0.5).
        retrieval: The platform's retrieval, ``"cascade"`` or ``"generative"``.

    Returns:
        A dict of the day's figures (money and counts per reference day; see the module
        docstring), and with ``trace=True`` a pandas DataFrame of ticks as well.
    """
    import agents
    from bidenv.campaign import budget_scale
    from bidenv.features import FEATURE_NAMES

    env = _env(env_id, traffic, retrieval)
    scale = budget_scale(env.unwrapped.opportunities_per_day)
    options = {"budget": budget * scale, "constraint": constraint, "category": category,
               "target_roi" if constraint == "roi" else "target_cpa": target}
    options.update({k: True for k, v in (("cold_start", cold_start),
                                         ("marketing_style", marketing_style)) if v})
    if popularity != DEFAULT_POPULARITY:
        options["popularity"] = popularity
    agent = agents.from_spec(strategy)
    elapsed_at = FEATURE_NAMES.index("traffic_elapsed")
    n_ticks = env.unwrapped.n_ticks
    rows = []

    def record(step):
        info = step.info
        rows.append({"tick": info["tick"], "hour": 24.0 * info["tick"] / n_ticks,
                     "alpha": info["alpha"], "spend": info["total_cost"] / scale,
                     "spend_share": info["total_cost"] / info["budget"],
                     "traffic_share": float(step.next_obs[elapsed_at]),
                     "conversions": info["expected_conversions"] / scale})

    info = agents.run_episode(env, agent, seed=seed, options=options,
                              on_step=record if trace else None)
    by_source = env.unwrapped.agent_cost_by_source
    day = {
        "spend": info["total_cost"] / scale,
        "conversions": info["expected_conversions"] / scale,
        "value": info["expected_value"] / scale,
        "score": info["expected_score"] / scale,
        "budget_used": info["total_cost"] / info["budget"],
        "spend_feed": float(by_source[0]) / scale,
        "spend_search": float(by_source[1]) / scale,
        "conversions_realised": info["total_conversions"] / scale,
        "value_realised": info["total_value"] / scale,
        "score_realised": info["score"] / scale,
        "ticks": info["tick"],
        "day_scale": scale,
    }
    if trace:
        import pandas as pd

        return day, pd.DataFrame(rows)
    return day


def _run_day(task) -> dict:
    mode, strategy, target, budget, day, spec = task
    out = simulate_day(strategy, budget=budget, constraint=spec["constraint"], target=target,
                       category=spec["category"], traffic=spec["traffic"],
                       seed=spec["seed"] + day, env_id=spec["env_id"],
                       cold_start=spec.get("cold_start", False),
                       marketing_style=spec.get("marketing_style", False),
                       popularity=spec.get("popularity", DEFAULT_POPULARITY), retrieval=mode)
    row = {"strategy": strategy, "target": target, "budget": budget, "day": day,
           "seed": spec["seed"] + day, **out}
    if "retrieval" in spec:  # not the default cascade alone: say which mode
        row["retrieval"] = mode
    return row


def simulate_days(spec: BudgetSpec, *, workers: int = 1, progress: bool = True,
                  first_day: int = 0):
    """One row per (strategy, target, budget, day): the raw days behind :func:`simulate_budget`.

    Day ``i`` of every row is ``reset(seed=spec.seed + i)``, for ``i`` from ``first_day`` to
    ``first_day + spec.days - 1`` (a later block continues the same days: see
    :func:`simulate_until_confident`); results do not depend on ``workers`` (each day is played
    on its own, in a fresh episode of a cached env). Under several retrieval modes every mode
    plays the same days (seeds), and a ``retrieval`` column (last) says which (also for a
    single non-default mode).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    workers = check_int("workers", workers, 1)
    first_day = check_int("first_day", first_day, 0)
    plain = spec.to_dict()
    tasks = [(m, s, t, b, d, plain) for m in spec.retrieval_modes for s in spec.strategies
             for t in spec.targets for b in spec.budgets
             for d in range(first_day, first_day + spec.days)]
    rows = []
    with tqdm(total=len(tasks), desc="simulating days", unit="day",
              disable=not progress) as bar:
        from experiments.pool import map_ordered

        rows = map_ordered(_run_day, tasks, workers, on_done=lambda _: bar.update())
    frame = pd.DataFrame(rows)
    frame.insert(1, "constraint", spec.constraint)
    return frame


# --------------------------------------------------------------------------------------------
# Summaries: means, paired bootstrap intervals, marginal CPA/ROI
# --------------------------------------------------------------------------------------------
def marginal_rates(spend, conversions, value, budgets=None, *,
                   min_extra_spend: float = MIN_EXTRA_SPEND):
    """Marginal CPA and ROI along increasing budgets (last axis), from zero spend upward.

    Between budget ``j-1`` and ``j`` (with an implicit budget 0 that spends and earns nothing
    before the first): ``marginal_cpa = (spend_j - spend_{j-1}) / (conv_j - conv_{j-1})`` and
    ``marginal_roi = (value_j - value_{j-1}) / (spend_j - spend_{j-1})``. Where the extra spend
    buys no extra conversions the marginal CPA is ``inf``; where spend grows by no more than
    ``min_extra_spend`` times the budget step (``budgets`` given; else by no more than 1e-9),
    both are ``nan``: the strategy did not spend the extra budget, and a ratio of two tiny
    differences would be noise.

    Returns:
        ``(marginal_cpa, marginal_roi)``, arrays of the input shape.
    """
    spend, conv, val = (np.asarray(x, dtype=np.float64) for x in (spend, conversions, value))
    pad = [(0, 0)] * (spend.ndim - 1) + [(1, 0)]
    d_spend, d_conv, d_val = (np.diff(np.pad(x, pad), axis=-1) for x in (spend, conv, val))
    eps = 1e-9
    if budgets is not None:
        steps = np.diff(np.concatenate([[0.0], np.asarray(budgets, dtype=np.float64)]))
        eps = np.maximum(min_extra_spend * steps, eps)
    extra = d_spend > eps
    bought = d_conv > 1e-12
    safe_spend = np.where(extra, d_spend, 1.0)
    cpa = np.where(extra, np.where(bought, d_spend / np.where(bought, d_conv, 1.0), np.inf),
                   np.nan)
    roi = np.where(extra, d_val / safe_spend, np.nan)
    return cpa, roi


def summarise_days(days_frame, *, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0):
    """Per (strategy, target, budget): means over days with paired bootstrap intervals.

    CPA and ROI are ratios of the means (total spend / total conversions over the days), not
    means of daily ratios, so a day without conversions does not make them infinite. Intervals
    are percentile intervals over ``n_boot`` resamples of the days, the same resample for all
    budgets of a (strategy, target), so marginal intervals are paired (common random numbers).
    With a ``retrieval`` column the rows are per (retrieval, strategy, target, budget), each
    mode resampled as a run of that mode alone would be; the column comes last.
    """
    import pandas as pd

    rows = []
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    for key, g in days_frame.groupby(_by_mode(["strategy", "target"], days_frame),
                                     sort=False):
        strategy, target = key[-2:]
        budgets = np.sort(g["budget"].unique())
        n_days = g["day"].nunique()
        wide = {m: g.pivot(index="budget", columns="day", values=m).loc[budgets].to_numpy()
                for m in _METRICS}  # (B, D)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n_days, size=(n_boot, n_days)) if n_days > 1 else None
        mean, boot = {}, {}
        for m in _METRICS:
            mean[m] = wide[m].mean(axis=1)
            # (B, n_boot): the same resampled days for every budget (paired).
            boot[m] = wide[m][:, idx].mean(axis=2) if idx is not None else mean[m][:, None]
        mean["cpa"], boot["cpa"] = (ratio(mean["spend"], mean["conversions"]),
                                    ratio(boot["spend"], boot["conversions"]))
        mean["roi"], boot["roi"] = (ratio(mean["value"], mean["spend"]),
                                    ratio(boot["value"], boot["spend"]))
        mean["marginal_cpa"], mean["marginal_roi"] = marginal_rates(
            mean["spend"], mean["conversions"], mean["value"], budgets)
        mb_cpa, mb_roi = marginal_rates(boot["spend"].T, boot["conversions"].T, boot["value"].T,
                                        budgets)
        boot["marginal_cpa"], boot["marginal_roi"] = mb_cpa.T, mb_roi.T
        with np.errstate(invalid="ignore"):
            feed_share = ratio(mean["spend_feed"], mean["spend_feed"] + mean["spend_search"])
        for j, budget in enumerate(budgets):
            row = {"strategy": strategy, "constraint": g["constraint"].iloc[0],
                   "target": target, "budget": float(budget), "days": n_days}
            for m in ("spend", "conversions", "value", "cpa", "roi", "score", "budget_used",
                      "marginal_cpa", "marginal_roi"):
                row[m] = float(mean[m][j])
                b = boot[m][j]
                b = b[np.isfinite(b)] if np.isfinite(mean[m][j]) else b[:0]
                lo, hi = (np.quantile(b, [lo_q, hi_q]) if len(b) else (math.nan, math.nan))
                row[f"{m}_lo"], row[f"{m}_hi"] = float(lo), float(hi)
            if "day_scale" in g:
                row["day_scale"] = float(g["day_scale"].iloc[0])
            row["feed_share_of_spend"] = float(feed_share[j])
            row["search_share_of_spend"] = (float(1 - feed_share[j])
                                            if np.isfinite(feed_share[j]) else math.nan)
            for m in ("conversions_realised", "value_realised", "score_realised"):
                row[m] = float(mean[m][j])
            if len(key) == 3:
                row["retrieval"] = key[0]
            rows.append(row)
    return pd.DataFrame(rows)


def simulate_budget(spec: Mapping | BudgetSpec | None = None, *, workers: int = 1,
                    progress: bool = True, return_days: bool = False, **fields):
    """Simulate a campaign at each budget (and target) with each strategy; one row each.

    Args:
        spec: A :class:`BudgetSpec` or a mapping of its fields (e.g. from :func:`load_spec`).
        workers: Processes playing days in parallel; the result does not depend on it.
        progress: Show a progress bar over simulated days.
        return_days: Also return the per-day frame.
        **fields: Spec fields given directly (override ``spec``): ``budgets`` or
            ``budget_range``, ``constraint``, ``target`` or ``targets``, ``category``,
            ``traffic``, ``strategies``, ``days``, ``seed``, ``env_id``, ``cold_start``,
            ``marketing_style``, ``popularity``, ``retrieval``.

    Returns:
        A pandas DataFrame, one row per (strategy, target, budget), ordered by strategy (as
        given), target and budget, with columns ``strategy, constraint, target, budget, days``,
        then ``spend, conversions, value, cpa, roi, score, budget_used, marginal_cpa,
        marginal_roi`` each with ``_lo``/``_hi`` (95% bootstrap interval over days),
        ``feed_share_of_spend, search_share_of_spend`` and the realised conversions, value and
        score; ``frame.attrs["spec"]`` holds the spec. With ``return_days``: ``(frame, days)``.

    Raises:
        ValueError: for an invalid spec (naming the field) or ``workers``.
    """
    spec = parse_spec(spec, **fields)
    days = simulate_days(spec, workers=workers, progress=progress)
    frame = _summary(days, spec)
    return (frame, days) if return_days else frame


def _summary(days, spec: BudgetSpec):
    """:func:`summarise_days` of ``days``, ordered as the spec, with its traffic and spec."""
    frame = summarise_days(days, seed=spec.seed)
    order = {s: i for i, s in enumerate(spec.strategies)}
    modes = {m: i for i, m in enumerate(spec.retrieval_modes)}
    rank = {"strategy": order, "retrieval": modes}
    frame = frame.sort_values(_by_mode(["strategy", "target", "budget"], frame),
                              key=lambda c: c.map(rank[c.name]) if c.name in rank else c,
                              kind="stable").reset_index(drop=True)
    frame.insert(5, "traffic", spec.traffic_label)
    if "retrieval" in frame:  # after the traffic: the first columns say what a row is
        frame.insert(6, "retrieval", frame.pop("retrieval"))
    frame.attrs["spec"] = replace(spec, days=int(days["day"].nunique())).to_dict()
    return frame


def simulate_until_confident(spec: Mapping | BudgetSpec | None = None, *,
                             max_days: int = MAX_DAYS_CONFIDENT, workers: int = 1,
                             progress: bool = True, play=None, **fields):
    """:func:`simulate_budget`, adding days in blocks until no decision straddles the target.

    The first block is ``spec.days`` days (day ``i`` is ``reset(seed=spec.seed + i)``); while
    some (strategy, target) of :func:`recommend` is ``"uncertain"`` (a marginal CPA/ROI
    interval straddles the target) another block of ``spec.days`` days is played, the same
    seeds continuing (days ``S + n, S + n + 1, ...``), up to ``max_days`` in all. The result is
    the same as one :func:`simulate_budget` run with the final number of days.

    Args:
        spec, workers, progress, fields: As for :func:`simulate_budget`.
        max_days: Cap on the days per budget, at least ``spec.days``.
        play: ``play(spec, first_day)`` returning the days frame of ``spec.days`` days from
            ``first_day`` (default :func:`simulate_days`; tests pass a fake).

    Returns:
        ``(frame, days, advice, stop)``: the summary, the per-day frame, :func:`recommend`'s
        output and ``stop = {"days", "blocks", "confident", "max_days"}``.
    """
    import pandas as pd

    spec = parse_spec(spec, **fields)
    max_days = check_int("max_days", max_days, 1, MAX_DAYS)
    if max_days < spec.days:
        raise ValueError(f"max_days ({max_days}) must be at least the days of the first block "
                         f"({spec.days})")
    if play is None:
        def play(block, first_day):
            return simulate_days(block, workers=workers, progress=progress,
                                 first_day=first_day)
    blocks, total = [], 0
    while True:
        n = min(spec.days, max_days - total)
        blocks.append(play(replace(spec, days=n), total))
        total += n
        days = pd.concat(blocks, ignore_index=True)
        frame = _summary(days, spec)
        advice = recommend(frame)
        confident = not (advice["decision"] == "uncertain").any()
        if confident or total >= max_days:
            break
    return frame, days, advice, {"days": total, "blocks": len(blocks), "confident": confident,
                                 "max_days": max_days}


# --------------------------------------------------------------------------------------------
# Recommendation
# --------------------------------------------------------------------------------------------
def step_status(marginal, lo, hi, target: float, kind: str) -> np.ndarray:
    """Each budget step's verdict from its marginal CPA/ROI and 95% interval, against a target.

    ``"pass"``: the interval lies entirely on the right side of the target (CPA: ``hi <=
    target``; ROI: ``lo >= target``); ``"fail"``: entirely on the wrong side (an infinite
    marginal CPA, extra spend that bought nothing, fails too); ``"straddle"``: the interval
    contains the target, or there is none (a finite estimate without a finite interval, e.g.
    from a single day); ``"none"``: no extra spend at this step (nan marginal).
    """
    marginal, lo, hi = (np.asarray(x, dtype=np.float64) for x in (marginal, lo, hi))
    known = np.isfinite(lo) & np.isfinite(hi)
    if kind == "roi":
        good, bad = known & (lo >= target), (known & (hi < target))
    else:
        good, bad = known & (hi <= target), (known & (lo > target)) | (marginal == np.inf)
    out = np.where(good, "pass", np.where(bad, "fail", "straddle")).astype(object)
    out[np.isnan(marginal)] = "none"
    return out


def decide(budgets, status) -> tuple[str, int | None, int | None]:
    """The decision along increasing budgets from :func:`step_status`'s verdicts.

    Walking up from the smallest budget over passing steps (``"none"`` steps neither break nor
    extend the run), ``best`` is the last passing budget. Then:

    * ``"try_larger"`` when ``best`` is the largest budget tried (the margin still pays there);
    * ``"raise"`` when the run ends in a confident failure or in steps without extra spend;
    * ``"uncertain"`` when it ends in a straddling step: ``upper`` is the last budget before the
      next confident failure (the answer lies between ``best`` and ``upper``);
    * ``"none"`` when already the first step fails (``best`` is None).

    Returns:
        ``(decision, best, upper)`` with ``best``/``upper`` indices or None.
    """
    n = len(budgets)
    best, k = None, 0
    while k < n and status[k] in ("pass", "none"):
        if status[k] == "pass":
            best = k
        k += 1
    if k == n or status[k] == "fail":
        if best is None:
            return "none", None, None
        return ("try_larger" if best == n - 1 else "raise"), best, None
    upper = k
    for j in range(k, n):
        if status[j] == "fail":
            break
        if status[j] != "none":
            upper = j
    return "uncertain", best, upper


def _interval_width(g, col) -> float:
    """Median relative half-width of the 95% intervals of ``col`` over budgets (nan if none)."""
    if f"{col}_lo" not in g:
        return math.nan
    mid, lo, hi = (g[c].to_numpy(dtype=float) for c in (col, f"{col}_lo", f"{col}_hi"))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (hi - lo) / 2 / np.abs(mid)
    rel = rel[np.isfinite(rel)]
    return float(np.median(rel)) if len(rel) else math.nan


def days_warning(n_days, width: float = math.nan, what: str = "marginal CPA",
                 min_days: int = MIN_DAYS) -> str:
    """A warning when fewer than ``min_days`` days were simulated ("" otherwise).

    ``width`` is the intervals' median relative half-width (from :func:`recommend`); a
    bootstrap interval narrows as 1/sqrt(days), so 4x the days halve it.
    """
    if n_days is None or not n_days < min_days:
        return ""
    if n_days < 2:
        return (f"only {n_days} day simulated per budget: no interval can be computed, so no "
                f"decision is sure; simulate at least {min_days} days (--days, or "
                "--until-confident)")
    implied = (f": the {what}'s 95% intervals are +/-{100 * width:.0f}% wide (median over "
               f"budgets), and a bootstrap over so few days understates even that"
               if math.isfinite(width) else "")
    return (f"only {n_days} days simulated per budget (fewer than {min_days}){implied}; "
            f"simulate more days (--days, or --until-confident)")


def recommend(frame, *, saturation: float = SATURATION_BUDGET_USED,
              spend_tolerance: float = SPEND_TOLERANCE):
    """Per (strategy, target): the budget to run at, how sure that is, and where spend stalls.

    The decision reads the marginal CPA (ROI) *with its 95% interval* at each budget step
    (:func:`step_status`, :func:`decide`): walking up from the smallest budget while each
    step's interval lies entirely under the target CPA (above the target ROI),

    * ``"raise"``: "raise the budget to X" when the next step's interval lies entirely over
      the target CPA (under the target ROI), or the larger budgets are not spent;
    * ``"uncertain"``: "uncertain between X and Y: simulate more days" when an interval
      straddles the target (``upper_budget`` is Y, the last budget before a confident miss);
    * ``"try_larger"``: "try larger budgets" when the margin still pays at the largest budget
      tried (never "raise up to the largest budget");
    * ``"none"``: even the smallest budget misses the target at the margin.

    Steps with no extra spend (nan marginal) neither break nor extend the run. Without
    interval columns (``marginal_cpa_lo``/``_hi``) every finite estimate counts as straddling;
    so does a single simulated day. Budget-only campaigns have no target: the recommendation
    is the largest budget still spent (at least ``saturation`` of it).

    * ``saturation_budget``: the budget beyond which the strategy cannot spend more: the
      smallest budget, short of the largest tried, at which it spends less than
      ``saturation`` (default 90%) of the budget *and* already within ``spend_tolerance``
      (5%) of the most it spends at any larger budget. ``nan`` when no budget qualifies.
    * ``warning``: set when fewer than :data:`MIN_DAYS` days were simulated, with the interval
      width that implies (:func:`days_warning`).

    Args:
        frame: Output of :func:`simulate_budget` (columns ``strategy, constraint, target,
            budget, spend, budget_used, marginal_cpa, marginal_roi``; ``marginal_*_lo/_hi``
            and ``days`` when there).
        saturation: Share of the budget below which a budget counts as not spent, in (0, 1].
        spend_tolerance: Relative gap to the largest spend within which spend has stalled.

    Returns:
        A DataFrame with ``strategy, constraint, target, decision, recommended_budget,
        upper_budget, marginal_at_recommended, marginal_lo, marginal_hi, saturation_budget,
        max_spend, days, message, warning``.
    """
    import pandas as pd

    check_number("saturation", saturation, 0, 1, low_open=True)
    check_number("spend_tolerance", spend_tolerance, 0, 1, high_open=True)
    missing = {"strategy", "constraint", "target", "budget", "spend", "budget_used",
               "marginal_cpa", "marginal_roi"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)} (use simulate_budget's output)")
    rows = []
    for key, g in frame.groupby(_by_mode(["strategy", "target"], frame), sort=False):
        strategy, target = key[-2:]
        g = g.sort_values("budget")
        constraint = g["constraint"].iloc[0]
        budgets = g["budget"].to_numpy(dtype=float)
        used = g["budget_used"].to_numpy(dtype=float)
        spend = g["spend"].to_numpy(dtype=float)
        n_days = int(g["days"].min()) if "days" in g else None
        most_from_here = np.maximum.accumulate(spend[::-1])[::-1]
        stalled = np.flatnonzero((used < saturation)
                                 & (spend >= (1 - spend_tolerance) * most_from_here))
        stalled = stalled[stalled < len(budgets) - 1]  # a larger budget must confirm it
        saturation_budget = float(budgets[stalled[0]]) if len(stalled) else math.nan
        nan_col = np.full(len(g), math.nan)
        if constraint == "budget":
            kind = None
            marginal = lo = hi = nan_col
            status = np.where(used >= saturation, "pass", "fail").astype(object)
            width = _interval_width(g, "spend")
        else:
            kind = "roi" if constraint == "roi" else "cpa"
            col = f"marginal_{kind}"
            marginal = g[col].to_numpy(dtype=float)
            lo = g[f"{col}_lo"].to_numpy(dtype=float) if f"{col}_lo" in g else nan_col
            hi = g[f"{col}_hi"].to_numpy(dtype=float) if f"{col}_hi" in g else nan_col
            if n_days is not None and n_days < 2:
                lo = hi = nan_col  # one day: no interval at all
            status = step_status(marginal, lo, hi, float(target), kind)
            width = _interval_width(g, col)
        decision, best, upper = decide(budgets, status)
        pick = (lambda a, j: float(a[j]) if j is not None else math.nan)
        what = f"marginal {kind.upper()}" if kind else "spend"
        row = {"strategy": strategy, "constraint": constraint, "target": float(target),
               "decision": decision, "recommended_budget": pick(budgets, best),
               "upper_budget": pick(budgets, upper),
               "marginal_at_recommended": pick(marginal, best), "marginal_lo": pick(lo, best),
               "marginal_hi": pick(hi, best), "saturation_budget": saturation_budget,
               "max_spend": float(g["spend"].max()),
               "days": n_days if n_days is not None else math.nan}
        if len(key) == 3:
            row["retrieval"] = key[0]
        row["message"] = _message(row, kind, budgets, status, marginal, lo, hi, used, g,
                                  saturation)
        row["warning"] = days_warning(n_days, width, what)
        rows.append(row)
    advice = pd.DataFrame(rows)
    if "retrieval" in advice:
        advice.insert(0, "retrieval", advice.pop("retrieval"))
    return advice


def _interval(m, lo, hi) -> str:
    text = f"{m:,.3g}"
    if math.isfinite(lo) and math.isfinite(hi):
        text += f", 95% interval [{lo:,.3g}, {hi:,.3g}]"
    return text


def _message(row, kind, budgets, status, marginal, lo, hi, used, g, saturation) -> str:
    strategy, target, decision = row["strategy"], row["target"], row["decision"]
    best, upper = row["recommended_budget"], row["upper_budget"]
    label = kind.upper() if kind else None
    head = f"{strategy}" + (f" under {row['retrieval']} retrieval" if "retrieval" in row else "")
    head += f" at target {label} {target:g}" if label else " (budget only)"
    index = {float(b): j for j, b in enumerate(budgets)}
    if label is None:
        if decision == "none":
            first = f"spends under {100 * saturation:.0f}% of every budget tried"
        elif decision == "try_larger":
            first = (f"spends every budget up to the largest tried, {best:,.0f}: try larger "
                     "budgets")
        else:
            first = f"spends the budget up to {best:,.0f}"
    else:
        good, bad = ("under", "over") if kind == "cpa" else ("above", "under")
        if decision in ("raise", "try_larger"):
            j = index[best]
            at = f"marginal {label} {_interval(marginal[j], lo[j], hi[j])}"
        if decision == "try_larger":
            first = (f"try larger budgets: at the largest budget tried, {best:,.0f}, the "
                     f"{at} is still {good} the target")
        elif decision == "raise":
            first = f"raise the budget to {best:,.0f} ({at})"
            k = next((i for i in range(index[best] + 1, len(budgets))
                      if status[i] == "fail"), None)
            if k is not None:
                first += (f"; at {budgets[k]:,.0f} the marginal {label} is "
                          f"{_interval(marginal[k], lo[k], hi[k])}, {bad} the target")
            else:
                first += "; larger budgets are not spent"
        elif decision == "uncertain":
            k = next(i for i, s in enumerate(status) if s == "straddle")
            low = f"{best:,.0f}" if math.isfinite(best) else f"less than {budgets[0]:,.0f}"
            edge = (" (the largest tried; if it holds there, try larger budgets)"
                    if index[upper] == len(budgets) - 1 else "")
            why = (f"the marginal {label} at {budgets[k]:,.0f} is "
                   f"{_interval(marginal[k], lo[k], hi[k])}, which straddles the target"
                   if math.isfinite(lo[k]) and math.isfinite(hi[k])
                   else f"the marginal {label} at {budgets[k]:,.0f} ({marginal[k]:,.3g}) has no "
                   "interval")
            first = (f"uncertain between {low} and {upper:,.0f}{edge}: {why}; simulate more "
                     "days")
        else:
            first = (f"even the smallest budget ({budgets[0]:,.0f}) misses the target {label} "
                     f"at the margin ({_interval(marginal[0], lo[0], hi[0])})")
    saturation_budget = row["saturation_budget"]
    if math.isfinite(saturation_budget):
        j = index[saturation_budget]
        second = (f"from {saturation_budget:,.0f} on it cannot spend more (uses "
                  f"{100 * used[j]:.0f}% of it; at most {g['spend'].max():,.0f} spent)")
    elif np.all(used >= saturation):
        second = f"it spends at least {100 * saturation:.0f}% of every budget tried"
    else:
        second = (f"its spend still grows up to the largest budget tried (uses "
                  f"{100 * used[-1]:.0f}% of {budgets[-1]:,.0f})")
    return f"{head}: {first}; {second}."
