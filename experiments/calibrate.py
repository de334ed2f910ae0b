"""``bidenv calibrate``: the full day and Lite side by side, per opportunity, with the reference.

Plays ``days`` days of ``bidenv/AutoBidding-v0`` and of ``bidenv/AutoBiddingLite-v0`` (seeds
``seed, seed + 1, ...``, the same for both) with the fixed bidder of
:func:`bidenv.calibration.calibrate` and prints one row per statistic: the full env, Lite,
Lite / full and the public benchmark's reference (:data:`bidenv.calibration.REFERENCE`, where
there is one). The table is written to ``out/calibration.csv`` (atomically).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bidenv.calibration import DEFAULT_CAMPAIGN, MATCHED, REFERENCE, calibrate
from bidenv.validation import check_int
from experiments.io import atomic_write_csv

FULL = "bidenv/AutoBidding-v0"
LITE = "bidenv/AutoBiddingLite-v0"
#: Columns of ``calibration.csv``.
COLUMNS = ["statistic", "full", "lite", "lite_over_full", "reference", "matched"]


def calibration_table(full: dict, lite: dict) -> pd.DataFrame:
    """One row per statistic: full, Lite, Lite / full, reference (NaN if none), matched."""
    rows = []
    for name in full:
        f, lt = float(full[name]), float(lite.get(name, math.nan))
        ratio = lt / f if f != 0 and math.isfinite(f) else math.nan
        rows.append({"statistic": name, "full": f, "lite": lt, "lite_over_full": ratio,
                     "reference": float(REFERENCE.get(name, math.nan)),
                     "matched": name in MATCHED})
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text (``*``: statistics that Lite should match within +-10%)."""
    def num(x):
        if not math.isfinite(x):
            return "-"
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"

    lines = [f"{'statistic':32s} {'full env':>12s} {'Lite':>12s} {'Lite/full':>10s} "
             f"{'reference':>12s}"]
    for r in table.itertuples(index=False):
        name = f"{r.statistic}{' *' if r.matched else ''}"
        ratio = f"{r.lite_over_full:.3f}" if math.isfinite(r.lite_over_full) else "-"
        lines.append(f"{name:32s} {num(r.full):>12s} {num(r.lite):>12s} {ratio:>10s} "
                     f"{num(r.reference):>12s}")
    return "\n".join(lines)


def run_calibrate(days: int = 10, seed: int = 0, out="bidenv-calibration", *,
                  progress: bool = True, full_id: str = FULL, lite_id: str = LITE
                  ) -> pd.DataFrame:
    """Play ``days`` days of each environment, print the table and write ``calibration.csv``.

    Returns:
        The table (:data:`COLUMNS`).
    """
    from tqdm.auto import tqdm

    check_int("days", days, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=2 * days, desc="calibrating", unit="day", disable=not progress) as bar:
        results = {}
        for env_id in (full_id, lite_id):
            bar.set_postfix_str(env_id)
            results[env_id] = calibrate(env_id, days, seed, progress=bar.update)
    table = calibration_table(results[full_id], results[lite_id])
    path = atomic_write_csv(out / "calibration.csv", table)
    camp = DEFAULT_CAMPAIGN
    print(f"{days} days per environment (seeds {seed}-{seed + days - 1}); fixed bidder: truthful "
          f"(a = 0), budget {camp['budget']:,.0f} at 500k opportunities (scaled to the volume), "
          f"target CPA {camp['target_cpa']:g}; * = Lite should match the full env within "
          f"+-10%")
    print(format_table(table))
    print(f"wrote {path}")
    return table
