"""A native batched vector environment: N independent days of the market in one pass.

``gym.make_vec("bidenv/AutoBiddingLite-v0", num_envs=16, vectorization_mode="vector_entry_point")``
returns an :class:`AutoBiddingVectorEnv`. Each of its N sub-environments is an
:class:`bidenv.env.AutoBiddingEnv` day with its own campaign and random streams; a step
checks every action, asks every day's competitors for their bids, then plays the N days'
ticks together (:func:`bidenv.day.play_ticks`: one auction pass over the opportunities of
all N days) and returns batched arrays.

Contract: env i of a batch reset with seed ``s + i`` (``reset(seed=s)``) plays exactly the
day a single env reset with seed ``s + i`` plays under the same actions: the same
observations, rewards, terminations and infos (``tests/test_vector.py`` pins it).

Gymnasium's vector conventions hold: ``reset(seed=int | list | None, options=...)``
(``options["reset_mask"]`` resets only some envs), autoreset mode ``"NextStep"`` by default
(the step after a day ends resets that env and returns its first observation with reward 0)
or ``"SameStep"`` (the finished day's last observation and info go to ``info["final_obs"]``
and ``info["final_info"]``) or ``"Disabled"``, infos as dicts of arrays with ``_key`` masks,
and ``max_episode_steps`` (the registered 48, passed by ``gym.make_vec``) sets
``truncated`` when a day's step count reaches it, as Gymnasium's ``TimeLimit`` does for a
single env (so on the default day's last tick both flags are set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bidenv.day import play_ticks
from bidenv.env import AutoBiddingEnv
from bidenv.validation import check_int


class AutoBiddingVectorEnv(VectorEnv):
    """N auto-bidding days stepped together (see the module docstring).

    Args:
        num_envs: Number of days (sub-environments), >= 1.
        max_episode_steps: Steps after which a day still running is truncated (None: never;
            ``gym.make_vec`` passes the id's registered 48).
        autoreset_mode: ``"NextStep"`` (default), ``"SameStep"`` or ``"Disabled"``.
        **env_kwargs: Arguments of :class:`bidenv.env.AutoBiddingEnv`, the same for every
            day (``campaign=None`` draws a campaign per day; ``reset(options=...)`` sets one
            for all).

    Attributes:
        envs: The N :class:`~bidenv.env.AutoBiddingEnv` days (read their state, e.g.
            ``envs[i].day``; step them only through this object).
    """

    metadata = {"render_modes": AutoBiddingEnv.metadata["render_modes"],
                "render_fps": AutoBiddingEnv.metadata["render_fps"],
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, *, max_episode_steps: int | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **env_kwargs):
        self.num_envs = check_int("num_envs", num_envs, 1)
        if max_episode_steps is not None:
            max_episode_steps = check_int("max_episode_steps", max_episode_steps, 1)
        self.max_episode_steps = max_episode_steps
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode must be one of "
                             f"{[m.value for m in AutoresetMode]}, got {autoreset_mode!r}"
                             ) from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.envs = [AutoBiddingEnv(**env_kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.feature_names = first.feature_names
        n = self.num_envs
        self._obs = np.zeros((n,) + self.single_observation_space.shape, np.float32)
        self._elapsed = np.zeros(n, np.int64)
        self._autoreset = np.zeros(n, bool)
        self._started = False

    # -- reset --------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None):
        n = self.num_envs
        if seed is None:
            seeds = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed: a list of seeds needs num_envs = {n} entries, got "
                                 f"{len(seeds)}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(n, bool)
        else:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},) "
                                 f"with at least one True, got {mask!r}")
        infos = [None] * n
        for i in np.flatnonzero(mask):
            self._obs[i], infos[i] = self.envs[i].reset(seed=seeds[i], options=options or None)
        self._elapsed[mask] = 0
        self._autoreset[mask] = False
        self._started = True
        return self._obs.copy(), _stack_infos(infos)

    # -- step ---------------------------------------------------------------------------------
    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape not in ((n,), (n, 1)):
            raise ValueError(f"actions must have shape ({n}, 1) (one per env), got "
                             f"{actions.shape}")
        actions = actions.reshape(n)
        rewards = np.zeros(n)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        infos: list = [None] * n
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            for i in np.flatnonzero(self._autoreset):
                self._obs[i], infos[i] = self.envs[i].reset()
                self._elapsed[i] = 0
            playing = np.flatnonzero(~self._autoreset)
        else:
            if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset.any():
                raise RuntimeError("autoreset_mode 'Disabled': reset the finished envs "
                                   f"{np.flatnonzero(self._autoreset).tolist()} with "
                                   "options={'reset_mask': ...} before stepping them")
            playing = np.arange(n)
        envs = [self.envs[i] for i in playing]
        alphas = [env.begin_step(actions[i]) for env, i in zip(envs, playing)]
        stats = play_ticks([env.day for env in envs], alphas,
                           [env._auction_hook() for env in envs])
        final = {}
        for env, i, alpha, st in zip(envs, playing, alphas, stats):
            obs, rewards[i], terminated[i], _, infos[i] = env.finish_step(alpha, st)
            self._elapsed[i] += 1
            # As gymnasium's TimeLimit (what gym.make wraps a single env in): truncated once
            # the step count reaches the limit, also on a day's last tick.
            truncated[i] = (self.max_episode_steps is not None
                            and self._elapsed[i] >= self.max_episode_steps)
            self._obs[i] = obs
            if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated[i] or truncated[i]):
                final[i] = (obs, infos[i])
                self._obs[i], infos[i] = env.reset()
                self._elapsed[i] = 0
        info = _stack_infos(infos)
        for i, (obs, last) in final.items():
            self._add_info(info, {"final_obs": obs, "final_info": last}, int(i))
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            self._autoreset[:] = False
        else:
            self._autoreset = terminated | truncated
        return self._obs.copy(), rewards, terminated, truncated, info

    def render(self):
        """Each day's :meth:`~bidenv.env.AutoBiddingEnv.render`, as a tuple."""
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs):
        self.envs = []


def _stack_infos(infos: list) -> dict:
    """Gymnasium's vector info: every key an array over envs plus its ``_key`` mask.

    Every env's info has the same keys (:meth:`AutoBiddingEnv._info`), so a key's array is
    built in one go; envs without an info (not reset) are masked out.
    """
    have = np.array([x is not None for x in infos])
    present = [x for x in infos if x is not None]
    if not present:
        return {}
    out = {}
    for key, value in present[0].items():
        column = [x[key] if x is not None else 0 for x in infos]
        dtype = type(value) if type(value) in (int, float, bool) else None
        out[key] = np.array(column, dtype=dtype if dtype is not None else object)
        out[f"_{key}"] = have.copy()
    return out
