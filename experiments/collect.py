"""``bidenv collect`` and ``bidenv import-auctionnet``: offline datasets as Parquet files.

``bidenv collect --episodes N --behavior NAME --seed S --out FILE.parquet`` logs N simulated
days of a behaviour mix (:func:`bidenv.offline.collect`); ``bidenv import-auctionnet CSV --out
FILE.parquet`` converts a public AuctionNet traffic log (:mod:`bidenv.auctionnet`). Both write
the file atomically and print what they wrote.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from bidenv.offline import DEFAULT_BEHAVIORS


def parse_behaviors(text: str) -> dict:
    """A behaviour mix from the command line.

    Args:
        text: ``"mix"`` (:data:`bidenv.offline.DEFAULT_BEHAVIORS`), one agent name
            (``"pid_cpa"``) or weighted names (``"pid_cpa=0.7,fixed=0.3"``).

    Returns:
        ``{agent name: weight}``.

    Raises:
        ValueError: for an empty entry, a weight that is not a number >= 0, a repeated name or
            an unknown agent.

    >>> parse_behaviors("pid_cpa=0.7,fixed=0.3")
    {'pid_cpa': 0.7, 'fixed': 0.3}
    >>> parse_behaviors("truthful")
    {'truthful': 1.0}
    """
    import agents

    text = text.strip()
    if text == "mix":
        return dict(DEFAULT_BEHAVIORS)
    mix = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--behavior: empty agent name in {text!r}; use 'mix', a name or "
                             "name=weight,name=weight")
        if sep:
            try:
                w = float(weight)
            except ValueError:
                w = math.nan
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"--behavior: weight of {name!r} must be a number >= 0, got "
                                 f"{weight.strip()!r}")
        else:
            w = 1.0
        if name in mix:
            raise ValueError(f"--behavior: {name!r} appears twice")
        mix[name] = w
    unknown = sorted(set(mix) - set(agents.available()))
    if unknown:
        raise ValueError(f"--behavior: unknown agent(s) {unknown}; available: "
                         f"{', '.join(agents.available())} (or 'mix')")
    if sum(mix.values()) <= 0:
        raise ValueError("--behavior: the weights must not all be 0")
    return mix


def _check_out(out) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out must be a file path like data.parquet, got the folder {out}")
    return out


def run_collect(*, episodes: int, behavior: str = "mix", seed: int = 0, out,
                noise: float = 0.3, env_id: str = "bidenv/AutoBiddingLite-v0",
                workers: int = 1, progress: bool = True) -> dict:
    """Collect ``episodes`` days, save them to ``out`` and print a summary.

    Returns:
        ``{"path", "rows", "episodes", "seconds", "days_per_second"}``.

    Raises:
        ValueError: for a bad behaviour mix, noise, environment or output path.
    """
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the environments)
    from bidenv.offline import CollectConfig, collect, save_dataset

    out = _check_out(out)
    if env_id not in gym.registry:
        ids = sorted(k for k in gym.registry if k.startswith("bidenv/"))
        raise ValueError(f"--env: unknown environment {env_id!r}; bidenv has {ids}")
    config = CollectConfig(episodes=episodes, seed=seed, behaviors=parse_behaviors(behavior),
                           noise=noise, env_id=env_id)
    start = time.perf_counter()
    frame = collect(config, workers=workers, progress=progress)
    seconds = time.perf_counter() - start
    path = save_dataset(frame, out)
    n_episodes = int(frame["episode"].nunique())
    summary = {"path": str(path), "rows": len(frame), "episodes": n_episodes,
               "seconds": seconds, "days_per_second": n_episodes / max(seconds, 1e-9)}
    mix = ", ".join(f"{k}={v:g}" for k, v in config.behaviors.items())
    print(f"collected {n_episodes} days ({len(frame)} rows) of {env_id} in {seconds:.1f} s "
          f"({summary['days_per_second']:.2f} days/s); behaviour {mix}, noise {noise:g}")
    print(f"wrote {path}")
    return summary


def run_import_auctionnet(csv_path, *, out, n_ticks: int = 48, max_alpha: float = 10.0,
                          beta: float = 2.0) -> dict:
    """Convert an AuctionNet traffic-log CSV to a dataset file and print a summary.

    Returns:
        ``{"path", "log_rows", "rows", "episodes", "seconds"}``.

    Raises:
        FileNotFoundError, ValueError: as :func:`bidenv.auctionnet.import_auctionnet`.
    """
    from bidenv.auctionnet import import_auctionnet
    from bidenv.offline import save_dataset

    out = _check_out(out)
    start = time.perf_counter()
    frame = import_auctionnet(csv_path, n_ticks=n_ticks, max_alpha=max_alpha, beta=beta)
    path = save_dataset(frame, out)
    seconds = time.perf_counter() - start
    log_rows = frame.attrs["bidenv"]["rows"]
    n_episodes = int(frame["episode"].nunique())
    print(f"imported {log_rows} log rows of {Path(csv_path).name} into {n_episodes} days "
          f"({len(frame)} rows) in {seconds:.1f} s")
    print(f"wrote {path}")
    return {"path": str(path), "log_rows": log_rows, "rows": len(frame),
            "episodes": n_episodes, "seconds": seconds}
