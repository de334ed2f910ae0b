"""Bidding agents behind one small protocol, built by name.

>>> import agents
>>> {"truthful", "pid_budget", "pid_cpa", "online_lp"} <= set(agents.available())
True
>>> agent = agents.make("pid_cpa")
>>> agent.reset({"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0})

On the command line an agent is ``name`` (see :func:`available`) or ``name:path`` for a trained
checkpoint (:func:`from_spec`). Importing this package imports numpy and bidenv only: the
classic bidders are in :mod:`agents.constant` (truthful, fixed, random), :mod:`agents.pid`
(``pid_budget``, ``pid_cpa``) and :mod:`agents.online_lp` (``online_lp``, over the linear
program of :mod:`agents.lp`); agents built on torch live in their own modules
(``agents.sb3``, ...) and are registered lazily, by ``"module:attr"`` references resolved on
first use.
"""

from __future__ import annotations

from functools import partial

from agents.base import (
    FAMILIES,
    Agent,
    AgentCheckError,
    AgentSpec,
    BaseAgent,
    BidScale,
    Step,
    available,
    check_agent,
    describe,
    from_spec,
    make,
    register,
    run_episode,
)
from agents.constant import FixedAlphaAgent, RandomAgent, TruthfulAgent
from agents.lp import solve_allocation_lp
from agents.online_lp import OnlineLpAgent
from agents.pid import PidBudgetAgent, PidCpaAgent

__all__ = [
    "FAMILIES", "Agent", "AgentCheckError", "AgentSpec", "BaseAgent", "BidScale", "FixedAlphaAgent",
    "OnlineLpAgent", "PidBudgetAgent", "PidCpaAgent", "RandomAgent", "TruthfulAgent",
    "available", "check_agent", "describe", "from_spec", "make", "register", "run_episode", "Step",
    "solve_allocation_lp",
]

for _cls, _family, _doc in [
    (TruthfulAgent, "heuristic", "alpha = 1: bid the predicted value at the target"),
    (FixedAlphaAgent, "baseline", "a constant multiplier (alpha=...)"),
    (RandomAgent, "baseline", "uniform random actions, reproducible per seed (seed=...)"),
    (PidBudgetAgent, "heuristic", "PI pacing of spend along the day's expected traffic curve"),
    (PidCpaAgent, "heuristic", "PI control of the smoothed CPA/ROI toward the target, capped "
     "by pacing"),
    (OnlineLpAgent, "heuristic", "re-solves the rest of the day as an LP over today's "
     "opportunities"),
]:
    register(_cls.name, _cls, description=_doc, family=_family)


# Lazy hook for agents whose modules import heavy dependencies (torch): name -> (factory,
# loader, description), each a callable or a "module:attr" reference that is imported only
# when the agent is built, so ``available()`` lists them without importing torch. The SB3
# policies exist only as checkpoints (``bidenv train``), hence no factory.
def _load_sb3(algo: str, path, **kwargs):
    from agents.sb3 import make_loader

    return make_loader(algo)(path, **kwargs)


_LAZY_AGENTS = {
    algo: (None, partial(_load_sb3, algo),
           f"stable-baselines3 {algo.upper()} policy ({algo}:RUN_DIR or {algo}:RUN_DIR/model.zip)",
           "online_rl")
    for algo in ("ppo", "sac", "td3")
}
# Offline agents (torch): built by name untrained, or loaded as name:CHECKPOINT_DIR.
_OFFLINE = {
    "bc": ("agents.bc", "BCAgent", "behaviour cloning of the logged actions"),
    "iql": ("agents.iql", "IQLAgent", "implicit Q-learning: twin Q, expectile V, advantage-"
            "weighted policy"),
    "cql": ("agents.cql", "CQLAgent", "conservative Q-learning"),
    "dt": ("agents.dt", "DTAgent", "decision transformer on score-based return-to-go"),
    "gave": ("agents.gave", "GAVEAgent", "generative bidder with value-guided exploration "
             "(published loss weights)"),
    "gave_stable": ("agents.gave", "GAVEStableAgent", "GAVE without value head (stable "
                    "variant)"),
    "gas": ("agents.gas", "GASAgent", "decision transformer with critic-guided search over "
            "candidate actions"),
    "diffbid": ("agents.diffbid", "DiffBidAgent", "diffusion planner over the day's future "
                "states with an inverse-dynamics bid head (AIGB/DiffBid)"),
}
_LAZY_AGENTS.update({name: (f"{mod}:{cls}", f"{mod}:{cls}.load", doc, "offline")
                     for name, (mod, cls, doc) in _OFFLINE.items()})
for _name, (_factory, _loader, _doc, _family) in _LAZY_AGENTS.items():
    register(_name, _factory, loader=_loader, description=_doc, family=_family)

del _cls, _doc, _name, _factory, _loader, _family
