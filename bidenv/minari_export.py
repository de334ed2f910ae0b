"""Export of bidenv datasets to Minari, the Farama Foundation's offline-RL dataset format.

Optional: needs ``pip install bidenv[minari]`` (minari >= 0.5). ``import bidenv`` never imports
minari; :func:`export_minari` does, on first use.

Each episode of the trajectory frame becomes a Minari episode:

* ``observations``: the ``obs_*`` columns, ``(L + 1, F)`` float32. The frame logs the state
  before each of the ``L`` ticks but not the state after the last one, so the final
  observation repeats the last logged state (the episode ends there: it is never bootstrapped
  from, the same convention as :meth:`bidenv.offline.Trajectories.transitions`);
* ``actions``: ``(L, 1)`` float32 in [-1, 1]; ``rewards``: the score increments;
* ``terminations``: ``done`` of the last tick; ``truncations``: True at the last tick of an
  episode whose last row is not ``done`` (a day cut short in the log);
* ``infos`` (``L + 1`` entries, the first for the reset): ``score``, ``cost``,
  ``conversions``, ``value``, ``expected_score`` and ``alpha`` (0 at the reset);
* episode metadata: for days collected by :func:`experiments.collect.collect`, the reset ``seed``
  and ``options`` (the campaign) that replay the day in the environment.

Every export records an environment spec (so that ``recover_environment`` and loaders that
need ``spec.max_episode_steps``, such as d3rlpy's ``get_minari``, work): the environment that
played the days for collected data, and :data:`IMPORTED_ENV_ID` (the full-scale environment,
whose observation and action spaces the importers fill) for imported logs, whose description
then starts by saying that the days are imported logs, not played in that environment.

The observation space is the environment's (bounds of :data:`bidenv.env.FEATURES`), the action
space ``Box(-1, 1, (1,), float32)``. The dataset's description carries the behaviour policy
metadata of the file (mix, noise, seed, source).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.features import FEATURES
from bidenv.offline import OBS_COLUMNS, load_dataset, validate_frame

_INFO_COLUMNS = ("score", "cost", "conversions", "value", "expected_score", "alpha")
#: The environment recorded for data not collected in bidenv (imported AuctionNet logs): the
#: full-scale day of the public benchmark (48 ticks, 48 advertisers, about 500k opportunities).
IMPORTED_ENV_ID = "bidenv/AutoBidding-v0"


def _import_minari():
    try:
        import minari
    except ImportError:
        raise ImportError("export_minari needs the optional dependency minari (>= 0.5): "
                          "pip install bidenv[minari]") from None
    return minari


@contextmanager
def _datasets_path(path):
    """Point Minari's MINARI_DATASETS_PATH at ``path`` for the block (None: leave it)."""
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def episode_buffers(frame: pd.DataFrame, metadata: dict | None = None) -> list[dict]:
    """The Minari episode dictionaries of a trajectory frame (no minari import needed).

    Args:
        frame: A frame with the columns of :data:`bidenv.offline.COLUMNS`.
        metadata: The file's metadata; with ``source == "bidenv.collect"`` each episode gets
            the reset ``seed`` (``metadata["seed"] + episode``) and campaign ``options``.

    Returns:
        One dict per episode, in episode order, with ``id``, ``seed``, ``options``,
        ``observations``, ``actions``, ``rewards``, ``terminations``, ``truncations`` and
        ``infos``.
    """
    frame = validate_frame(frame)
    metadata = metadata or {}
    collected = metadata.get("source") == "bidenv.collect" and "seed" in metadata
    ep = frame["episode"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1], True])
    obs = frame[OBS_COLUMNS].to_numpy(np.float32)
    actions = frame["action"].to_numpy(np.float32)
    rewards = frame["reward"].to_numpy(np.float64)
    done = frame["done"].to_numpy(bool)
    infos = {c: frame[c].to_numpy(np.float64) for c in _INFO_COLUMNS}
    out = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        length = b - a
        terminations = np.zeros(length, bool)
        truncations = np.zeros(length, bool)
        terminations[-1] = done[b - 1]
        truncations[-1] = not done[b - 1]
        row = frame.iloc[a]
        options = None
        if collected:
            options = {"budget": float(row["budget"]), "constraint": str(row["constraint"]),
                       "category": int(row["category"])}
            for key in ("target_cpa", "target_roi"):
                if np.isfinite(row[key]):
                    options[key] = float(row[key])
        out.append({
            "id": i,
            "seed": int(metadata["seed"]) + int(ep[a]) if collected else None,
            "options": options,
            "observations": np.concatenate([obs[a:b], obs[b - 1:b]]),
            "actions": actions[a:b, None],
            "rewards": rewards[a:b],
            "terminations": terminations,
            "truncations": truncations,
            # Lists, not 1-d arrays: minari 0.5's arrow storage cannot decode the shape of
            # 1-d array infos.
            "infos": {k: [0.0, *v[a:b].tolist()] for k, v in infos.items()},
        })
    return out


def export_minari(frame_or_path, dataset_id: str, *, env_id: str | None = None,
                  datasets_path=None, author: str | None = None,
                  algorithm_name: str | None = None, description: str | None = None,
                  data_format: str = "arrow"):
    """Write a bidenv dataset as a Minari dataset; returns the ``minari.MinariDataset``.

    Args:
        frame_or_path: A trajectory frame (as from :func:`experiments.collect.collect` or
            :func:`bidenv.auctionnet.import_auctionnet`) or the path of a Parquet dataset.
        dataset_id: Minari id ``[namespace/]name-vN``, e.g. ``"bidenv/lite-mix-v0"``.
        env_id: Environment the data comes from (stored in the dataset so that
            ``recover_environment`` works). Default: the ``env_id`` of the file's metadata
            for collected days (with the file's ``env_kwargs``), :data:`IMPORTED_ENV_ID` for
            anything else (imported logs; with their ``n_ticks`` if not the default). The
            spec's ``max_episode_steps`` is the day's ``n_ticks`` when the file sets one, and
            at least the longest episode.
        datasets_path: Root folder of Minari datasets (default: minari's own,
            ``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        author: Author recorded in the dataset.
        algorithm_name: Default: the behaviour policies, e.g. ``"bidenv behaviour mix:
            pid_cpa=0.3,..."``.
        description: Default: one sentence plus the file's metadata as JSON.
        data_format: Minari storage, ``"arrow"`` (default; needs only pyarrow) or ``"hdf5"``
            (needs h5py).

    Raises:
        ImportError: if minari is not installed (``pip install bidenv[minari]``).
        ValueError: for a bad frame (see :func:`bidenv.offline.validate_frame`), a bad
            ``dataset_id`` or ``data_format``, or a dataset id that already exists.
    """
    minari = _import_minari()
    import gymnasium as gym

    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise ValueError(f"dataset_id must be a non-empty string like 'bidenv/name-v0', got "
                         f"{dataset_id!r}")
    if data_format not in ("arrow", "hdf5"):
        raise ValueError(f"data_format must be 'arrow' or 'hdf5', got {data_format!r}")
    if isinstance(frame_or_path, pd.DataFrame):
        frame, meta = frame_or_path, dict(frame_or_path.attrs.get("bidenv", {}))
    else:
        frame, meta = load_dataset(frame_or_path)
    buffers = episode_buffers(frame, meta)
    collected = meta.get("source") == "bidenv.collect" and bool(meta.get("env_id"))
    if env_id is None:
        env_id = meta["env_id"] if collected else IMPORTED_ENV_ID
    import dataclasses
    import inspect

    import bidenv  # noqa: F401  (registers the environments)

    if env_id not in gym.registry:
        raise ValueError(f"env_id {env_id!r} is not a registered environment")
    env_spec = gym.spec(env_id)
    env_kwargs = (meta.get("env_kwargs") or {}) if env_id == meta.get("env_id") else {}
    if not collected and meta.get("n_ticks") is not None:  # imported logs: their day length
        from bidenv.env import AutoBiddingEnv

        default = env_spec.kwargs.get(
            "n_ticks", inspect.signature(AutoBiddingEnv).parameters["n_ticks"].default)
        if int(meta["n_ticks"]) != default:
            env_kwargs = {**env_kwargs, "n_ticks": int(meta["n_ticks"])}
    if env_kwargs:  # the days were collected with extra constructor keywords
        env_spec = dataclasses.replace(env_spec, kwargs={**env_spec.kwargs, **env_kwargs})
    # The time limit: the day's ticks when the days were not of the registered length, and
    # never shorter than the longest episode.
    steps = env_kwargs.get("n_ticks", env_spec.max_episode_steps)
    steps = max(int(steps or 0), max(len(b["actions"]) for b in buffers))
    if steps != env_spec.max_episode_steps:
        env_spec = dataclasses.replace(env_spec, max_episode_steps=steps)
    low = np.array([f[2] for f in FEATURES], np.float32)
    high = np.array([f[3] for f in FEATURES], np.float32)
    observation_space = gym.spaces.Box(low, high, dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    behaviors = meta.get("behaviors") or {}
    if algorithm_name is None:
        mix = ",".join(f"{k}={v:g}" for k, v in behaviors.items()) or "unknown"
        algorithm_name = f"bidenv behaviour mix: {mix}"
    if description is None:
        description = ("bidenv auto-bidding days: one episode per advertiser day, one step per "
                       "tick; rewards are penalised-score increments. Metadata: "
                       + json.dumps({k: v for k, v in meta.items() if k != "episodes"},
                                    sort_keys=True, default=str))
        if not collected:
            description = (f"Imported logs ({meta.get('format', 'unknown format')}), not days "
                           f"played in bidenv: the env spec {env_spec.id} is the environment "
                           "whose observation and action spaces the data fills; episodes have "
                           "no reset seed, so the recovered environment plays new days. "
                           + description)
    from minari.data_collector import EpisodeBuffer
    from minari.storage import get_dataset_path

    episodes = [EpisodeBuffer(**b) for b in buffers]
    with _datasets_path(datasets_path):
        try:
            target = get_dataset_path(dataset_id)
        except Exception as exc:  # minari raises several types for malformed ids
            raise ValueError(f"dataset_id {dataset_id!r} is not a valid Minari id: {exc}") from None
        if target.exists():
            raise ValueError(f"a Minari dataset {dataset_id!r} already exists at {target}; "
                             "choose another name or version")
        try:
            with warnings.catch_warnings():
                # minari's advice to set these optional fields; the description has the facts.
                warnings.filterwarnings(
                    "ignore", r"`(code_permalink|author|author_email|eval_env)` is set to None")
                return minari.create_dataset_from_buffers(
                    dataset_id, episodes, env=env_spec, algorithm_name=algorithm_name,
                    author=author, observation_space=observation_space,
                    action_space=action_space, description=description,
                    data_format=data_format)
        except BaseException:
            # Never leave a half-written dataset behind.
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            raise
