"""``bidenv train AGENT --data FILE``: train an offline agent on a logged dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path


def parse_overrides(items) -> dict:
    """``["key=value", ...]`` to a dict; values are JSON (``lr=1e-3``, ``hidden=[64,64]``) or
    plain strings."""
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


#: Evaluation seeds used during training (disjoint from harness seeds 0.. and 1_000_000..).
TRAIN_EVAL_SEED = 2_000_000


def training_evaluator(out, *, env_id: str = "bidenv/AutoBiddingLite-v0", episodes: int = 3,
                       seed: int = 0):
    """The ``evaluate`` callback of :func:`agents.common.fit` for ``--eval-every``: saves the
    current model to ``out/eval_snapshot`` and plays ``episodes`` days of the ``smoke``
    scenario (seeds from :data:`TRAIN_EVAL_SEED`, disjoint from the evaluation seeds) with
    :func:`experiments.evaluate.evaluate`; returns the mean expected score and percent of the
    day's yardstick (logged as ``eval/expected_score`` and ``eval/pct_of_oracle``)."""
    from experiments.evaluate import evaluate

    snap = Path(out) / "eval_snapshot"

    def run(agent) -> dict:
        agent.save(snap)
        frame, _ = evaluate([f"{agent.name}:{snap}"], episodes=episodes,
                            seed=TRAIN_EVAL_SEED + seed, scenarios="smoke", env_id=env_id,
                            progress=False)
        return {"expected_score": float(frame["expected_score"].mean()),
                "pct_of_oracle": float(frame["pct_of_oracle"].mean())}

    return run


def run_train_offline(name: str, *, data, steps: int, seed: int, out, resume: bool = False,
                      eval_every: int = 0, eval_env: str = "bidenv/AutoBiddingLite-v0",
                      overrides=None, progress: bool = True):
    """Build agent ``name`` (config fields from ``overrides``), fit it, save it to ``out``.

    ``steps`` is the total: with ``resume`` training continues from ``out/checkpoint`` up to
    step ``steps`` and the message says how many steps this run trained. A resume on other
    data (``--data``), config (``--set``) or seed (``--seed``), or whose checkpoint already
    reached ``--steps``, is refused with a one-line ``ValueError`` (see
    :func:`agents.common.fit`).
    """
    import dataclasses

    import agents
    from agents.common import fit

    if not data:
        raise ValueError(f"training {name} needs --data FILE.parquet (from bidenv collect)")
    if not Path(data).is_file():
        raise FileNotFoundError(f"--data: {data!r} does not exist")
    if eval_every < 0:
        raise ValueError(f"--eval-every must be >= 0, got {eval_every}")
    fields = parse_overrides(overrides)
    try:
        agent = agents.make(name, **fields)
    except TypeError as exc:
        known = [f.name for f in dataclasses.fields(agents.base._resolve(
            agents.base._REGISTRY[name].factory, "factory").config_class)]
        raise ValueError(f"--set: {exc}; fields of {name}: {', '.join(known)}") from None
    start = time.perf_counter()
    evaluate = (training_evaluator(out, env_id=eval_env, seed=seed) if eval_every and out
                else None)
    if eval_every and not out:
        raise ValueError("--eval-every needs --out (the snapshot evaluated is saved there)")
    fit(agent, data, steps=steps, seed=seed, out=out, resume=resume, eval_every=eval_every,
        evaluate=evaluate, progress=progress)
    info = getattr(agent, "train_info", {})
    trained, first = info.get("trained_steps", steps), info.get("start_step", 0)
    done = (f"for {trained} steps" if not first else
            f"for {trained} more steps (resumed at step {first}, now at step {steps})")
    print(f"trained {name} {done} in {time.perf_counter() - start:.0f} s; wrote "
          f"{out}/config.json, weights.pt, train.json, TensorBoard logs in {out}/tb; evaluate "
          f"it as {name}:{out}")
    return agent
