"""Measure the market reference of each advertiser category (``bidenv.campaign.MARKET_CPA``).

``python -m experiments.market_targets [--days 16] [--seed 1000]`` records ``days`` days of the
calibrated full environment (``bidenv/AutoBidding-v0``) per category with the agent **out of
the market** (a campaign too small to buy anything: the competitors bid as they would without
it, and the env records every opportunity the category's advertiser could have entered, with
the rivals' bids) and prints the table as Python source, to paste into ``bidenv/campaign.py``
(about 3 minutes on one core).

Definition (per category ``c``; see :mod:`bidenv.campaign` for why this one):

* ``MARKET_CPA[c]``: the cost per conversion of an established advertiser of category ``c``
  that bids a **constant multiple of its pValue all day and spends the market's typical daily
  budget** (:data:`bidenv.campaign.MARKET_REFERENCE_BUDGET`, 4,000 on the 500k-opportunity
  day) at the prices the rest of the market sets. On each day the multiplier is the one at
  which the expected spend (marginal exposure probability x GSP price of the slot won)
  reaches that budget (:func:`uniform_bid_outcome`, exact: one sort of the slot thresholds);
  the day's CPA is that spend over the expected conversions (exposure x true conversion
  probability). The table holds the geometric mean over the days (the typical day: day-to-day
  log-sd about 0.25).
* ``MARKET_CONVERSION_VALUE``: the geometric mean of every advertiser's sales value per
  conversion over the days (about 50 advertisers a day, so it is measured precisely; each
  advertiser's value is drawn per day, log-sd 0.5).
* ``MARKET_ROI[c] = MARKET_CONVERSION_VALUE / MARKET_CPA[c]``: the ROI of the same bidder for
  an advertiser of typical conversion value. (The agent's own ROI on a day is its own value
  over that day's CPA, ``day_roi`` of :func:`measure`: far noisier, as its value is one draw
  per day.)

Nothing of the agent's own campaign enters (no target, no budget, no policy): the reference
is a property of the market and the category, measured on days the evaluation does not use
(seeds from 1000; the evaluation's days start at 0).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bidenv.validation import check_int

#: Seeds of the measurement days start here (evaluation days start at 0).
DEFAULT_SEED = 1000
#: Days per category of the stored table.
DEFAULT_DAYS = 16
_ENV_ID = "bidenv/AutoBidding-v0"
# A budget below the reserve price: the agent never enters an auction (out of the market).
_ABSENT = {"budget": 1e-6, "constraint": "cpa", "target_cpa": 1.0}


def record_market_day(env, seed: int, category: int) -> tuple[list[dict], np.ndarray]:
    """Record one whole day with the agent of ``category`` out of the market.

    ``env`` must be made with ``record=True`` and a campaign too small to buy anything (so
    that ``reset`` draws only the market from ``seed``).

    Returns:
        The env's per-tick recording (see :func:`bidenv.oracle.day_from_recording`) and the
        (k,) sales value per conversion of every advertiser of the day (competitors and the
        agent; mean over the first tick's opportunities where it varies by opportunity).
    """
    base = env.unwrapped
    env.reset(seed=seed, options={"category": int(category)})
    batch = base.batch
    values = batch.value_per_advertiser
    if values is None:
        values = np.asarray(batch.conversion_value, dtype=np.float64).mean(axis=0)
    # The budget is below the reserve: the first step buys nothing and ends the agent's day,
    # and the env records the rest of the day with the agent out (record=True).
    _, _, terminated, _, _ = env.step(np.zeros(env.action_space.shape, np.float32))
    if not terminated or len(base.recording) != base.n_ticks:
        raise RuntimeError("the day was not recorded in full with the agent out of the market")
    return base.recording, np.array(values, dtype=np.float64)


def uniform_bid_outcome(day, budget: float) -> dict:
    """Outcome of bidding ``alpha x`` the day's truthful bids, with ``alpha`` spending ``budget``.

    A row's outcome changes only where ``alpha`` crosses one of its slot thresholds
    (``alpha >= threshold[j]`` wins slot ``j`` or a better one), so the day's expected spend,
    conversions and value are step functions of ``alpha``: one sort of all thresholds and
    cumulative sums of the increments give them exactly. The multiplier returned is the
    smallest threshold at which the spend reaches ``budget``.

    Args:
        day: A :class:`bidenv.oracle.Day` (its bids at ``alpha = 1`` and slot thresholds).
        budget: Expected spend to reach over the day (no cap: the multiplier is chosen so
            that the whole day's purchases cost it).

    Returns:
        ``{"alpha", "spend", "conversions", "value"}`` (expected, at the recording's prices).
        If the whole day costs less than ``budget`` even winning the top slot everywhere,
        that outcome (``alpha`` its largest threshold).
    """
    K = day.threshold.shape[1]
    expo = day.exposure  # (n, K + 1), 0 beyond the row's slots
    # Crossing threshold j moves the row from slot j + 1 (or none) up to slot j.
    d_cost = day.cost[:, :K] - day.cost[:, 1:K + 1]
    d_expo = expo[:, :K] - expo[:, 1:K + 1]
    keep = np.isfinite(day.threshold)
    order = np.argsort(day.threshold[keep], kind="stable")
    thresholds = day.threshold[keep][order]
    spend = np.cumsum(d_cost[keep][order])
    conversions = np.cumsum((d_expo * day.conversions[:, None])[keep][order])
    value = np.cumsum((d_expo * day.value[:, None])[keep][order])
    i = min(int(np.searchsorted(spend, budget * (1 - 1e-12))), len(spend) - 1)
    # Thresholds tied with the one found are crossed together.
    i = int(np.searchsorted(thresholds, thresholds[i], side="right")) - 1
    return {"alpha": float(thresholds[i]), "spend": float(spend[i]),
            "conversions": float(conversions[i]), "value": float(value[i])}


def measure(days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED, *, env_id: str = _ENV_ID,
            budget: float | None = None, categories=None, progress: bool = False) -> dict:
    """Measure the market CPA and ROI of each category on ``days`` recorded days.

    Args:
        days: Days per category (day ``i`` is ``reset(seed=seed + i)``, the same market days
            for every category).
        seed: First seed.
        env_id: The environment (the calibrated full day by default). The budget is scaled
            to its daily volume (:func:`bidenv.campaign.budget_scale`).
        budget: Daily spend of the reference bidder on the 500k-opportunity day (default
            :data:`bidenv.campaign.MARKET_REFERENCE_BUDGET`).
        categories: Categories to measure (default all).
        progress: Print one line per category to stderr.

    Returns:
        A dict: ``cpa`` and ``roi`` ((N_CATEGORIES,) arrays, NaN for categories not
        measured), ``value`` (the market's typical sales value per conversion), the per-day
        ``day_cpa`` and ``day_roi`` ((N_CATEGORIES, days): the latter with the agent's own
        conversion value of the day, for reference) and the settings ``days``, ``seed``,
        ``env_id``, ``budget``.
    """
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the envs)
    from bidenv.campaign import MARKET_REFERENCE_BUDGET, N_CATEGORIES, budget_scale
    from bidenv.oracle import day_from_recording

    check_int("days", days, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    budget = MARKET_REFERENCE_BUDGET if budget is None else float(budget)
    categories = list(range(N_CATEGORIES)) if categories is None else [int(c) for c in categories]
    env = gym.make(env_id, record=True, campaign=_ABSENT)
    base = env.unwrapped
    spend_target = budget * budget_scale(base.opportunities_per_day)
    day_cpa, day_roi = np.full((N_CATEGORIES, days), np.nan), np.full((N_CATEGORIES, days), np.nan)
    log_values = []
    start = time.time()
    for n, c in enumerate(categories):
        for i in range(days):
            recording, values = record_market_day(env, seed + i, c)
            if n == 0:  # the competitors' values do not depend on the agent's category
                log_values.append(np.log(values[values > 0]))
            day = day_from_recording(recording, constraint="cpa", mechanism=base.mechanism,
                                     reserve_price=base.reserve_price)
            o = uniform_bid_outcome(day, spend_target)
            day_cpa[c, i] = o["spend"] / o["conversions"]
            day_roi[c, i] = o["value"] / o["spend"]
        if progress:
            print(f"category {c}: CPA {np.exp(np.log(day_cpa[c]).mean()):.1f} "
                  f"({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    env.close()
    cpa = np.exp(np.log(day_cpa).mean(axis=1))
    value = float(np.exp(np.concatenate(log_values).mean()))
    return {"cpa": cpa, "roi": value / cpa, "value": value, "day_cpa": day_cpa,
            "day_roi": day_roi, "days": days, "seed": int(seed), "env_id": env_id,
            "budget": budget}


def to_source(result: dict) -> str:
    """The table as Python source for ``bidenv/campaign.py``."""
    cpa = ", ".join(f"{x:.1f}" for x in result["cpa"])
    roi = ", ".join(f"{x:.3f}" for x in result["roi"])
    return (f"# python -m experiments.market_targets --days {result['days']} --seed "
            f"{result['seed']}  ({result['env_id']}, reference budget {result['budget']:g})\n"
            f"MARKET_CONVERSION_VALUE = {result['value']:.1f}\n"
            f"MARKET_CPA = ({cpa})\n"
            f"MARKET_ROI = ({roi})\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.market_targets",
        description="Measure the per-category market CPA / ROI reference and print it as "
                    "Python source (bidenv.campaign.MARKET_CPA, MARKET_ROI).")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days per category")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="first day's seed")
    parser.add_argument("--env", default=_ENV_ID, help="environment id")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    result = measure(args.days, args.seed, env_id=args.env, progress=not args.quiet)
    if not args.quiet:
        spread = np.nanstd(np.log(result["day_cpa"]), axis=1)
        print("day-to-day log-sd of the CPA per category: "
              + " ".join(f"{x:.2f}" for x in spread), file=sys.stderr)
    sys.stdout.write(to_source(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
