"""Online RL with stable-baselines3: PPO, SAC and TD3 trained on the registered environments.

``bidenv train ppo --env bidenv/AutoBiddingLite-v0 --timesteps 20000 --n-envs 16 --seed 0
--out runs/ppo`` trains on the simulator's native batched vector env
(``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``, the N days of a
step played in one pass) through :class:`NativeVecEnv`, SB3's ``VecEnv`` interface over any
Gymnasium ``VectorEnv`` that autoresets in the same step (``vectorization="dummy"`` uses
SB3's own ``make_vec_env`` instead, one env after another). Env i's first day is reset with
seed ``seed + i`` either way. It logs to TensorBoard (``DIR/tb``), shows a progress bar, and
writes:

* ``DIR/model.zip``: SB3's native archive (to continue training with SB3);
* ``DIR/policy.pt``: the policy's weights as plain tensors (``torch.load(weights_only=True)``);
* ``DIR/config.json``: the resolved training configuration.

Loading (``ppo:DIR`` or ``ppo:DIR/model.zip`` in the evaluation harness) never unpickles: it
rebuilds the policy from ``config.json`` and loads plain tensors, from ``policy.pt`` or from the
``policy.pth`` member of ``model.zip`` with ``weights_only=True``. The acting policy is
deterministic (the mean action).
"""

from __future__ import annotations

import functools
import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bidenv.io import atomic_path
from bidenv.validation import check_choice, check_int

ALGORITHMS = ("ppo", "sac", "td3")
#: How :func:`train` vectorises its training envs (:attr:`TrainConfig.vectorization`).
VECTORIZATIONS = ("native", "dummy")


def _algo_class(algo: str):
    import stable_baselines3 as sb3

    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {ALGORITHMS}, got {algo!r}")
    return {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]


@dataclass
class TrainConfig:
    """Configuration of one SB3 training run (saved as ``config.json``).

    Attributes:
        algo: ``"ppo"``, ``"sac"`` or ``"td3"``.
        env_id: Registered environment id.
        timesteps: Environment steps (ticks) to train for.
        seed: Seed of the model and of the training environments.
        n_envs: Parallel environments (PPO; SAC and TD3 use 1).
        vectorization: ``"native"`` (the id's batched ``vector_entry_point`` through
            :class:`NativeVecEnv`) or ``"dummy"`` (SB3's ``make_vec_env``: the same days, one
            env after another; for ids without a vector entry point).
        net_arch: Hidden layer sizes of the policy (and critics).
        learning_rate: Optimiser step size.
        reward_mode: Training reward (the env's ``reward_mode``): ``"expected_score"``
            (default: the increment of the noise-free expected score, the signal the offline
            agents learn from), ``"score"`` (the realised, noisy score) or ``"conversions"``.
            The agent's campaigns are the env's drawn ones (the scenarios' distribution, ROI
            included) unless ``env_kwargs`` fixes a ``campaign``.
        env_kwargs: Keyword arguments for ``gym.make`` (a ``reward_mode`` there wins).
        algo_kwargs: Extra keyword arguments for the SB3 algorithm (JSON-able).
    """

    algo: str = "ppo"
    env_id: str = "bidenv/AutoBiddingLite-v0"
    timesteps: int = 20_000
    seed: int = 0
    n_envs: int = 4
    vectorization: str = "native"
    net_arch: list = field(default_factory=lambda: [64, 64])
    learning_rate: float = 3e-4
    reward_mode: str = "expected_score"
    env_kwargs: dict = field(default_factory=dict)
    algo_kwargs: dict = field(default_factory=dict)

    def validate(self) -> None:
        _algo_class(self.algo)
        for name in ("timesteps", "n_envs"):
            check_int(name, getattr(self, name), 1)
        check_choice("vectorization", self.vectorization, VECTORIZATIONS)
        if not self.net_arch or any(not isinstance(h, int) or h < 1 for h in self.net_arch):
            raise ValueError(f"net_arch must be a list of positive integers, got {self.net_arch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        from bidenv.env import REWARD_MODES

        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got "
                             f"{self.reward_mode!r}")

    def make_env(self):
        """One training environment (registered id, the training reward, ``env_kwargs``)."""
        import gymnasium as gym

        import bidenv  # noqa: F401  (registers the environments)

        return gym.make(self.env_id, **self.env_arguments())

    def env_arguments(self) -> dict:
        """Keyword arguments of every training env: the training reward, then ``env_kwargs``."""
        return {"reward_mode": self.reward_mode, **self.env_kwargs}

    def make_vec_env(self, n_envs: int):
        """The SB3 ``VecEnv`` of ``n_envs`` training envs (see ``vectorization``), seeded."""
        if self.vectorization == "native":
            import gymnasium as gym

            import bidenv  # noqa: F401  (registers the environments)

            venv = _native_vec_env_class()(gym.make_vec(self.env_id, num_envs=n_envs,
                                             vectorization_mode="vector_entry_point",
                                             autoreset_mode="SameStep", **self.env_arguments()))
            venv.seed(self.seed)
            return venv
        from stable_baselines3.common.env_util import make_vec_env

        # A callable, so that SB3 does not ask the env for a render mode.
        return make_vec_env(self.make_env, n_envs=n_envs, seed=self.seed)

    def model_kwargs(self) -> dict:
        kwargs = {"learning_rate": self.learning_rate, "seed": self.seed, "device": "cpu",
                  "policy_kwargs": {"net_arch": list(self.net_arch)}}
        if self.algo == "ppo":
            kwargs["n_steps"] = max(48, 512 // self.n_envs)
            kwargs["batch_size"] = 64
        kwargs.update(self.algo_kwargs)
        return kwargs


def _progress_callback(total: int):
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class TqdmCallback(BaseCallback):
        """A tqdm progress bar over environment steps (SB3's own needs ``rich``)."""

        def _on_training_start(self):
            self.bar = tqdm(total=total, desc="training", unit="step")

        def _on_step(self):
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self):
            self.bar.close()

    return TqdmCallback()


def train(config: TrainConfig, out, *, progress: bool = True) -> Path:
    """Train an SB3 agent and write model.zip, policy.pt and config.json into ``out``."""
    import torch
    from stable_baselines3.common.vec_env import VecMonitor

    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_envs = config.n_envs if config.algo == "ppo" else 1
    venv = config.make_vec_env(n_envs)
    if config.vectorization == "native":
        venv = VecMonitor(venv)  # episode returns and lengths for SB3's logger
    cls = _algo_class(config.algo)
    try:
        import tensorboard  # noqa: F401

        tb_dir = str(out / "tb")
    except ImportError:  # pragma: no cover - tensorboard is in the rl/dev extras
        tb_dir = None
    torch.manual_seed(config.seed)
    model = cls("MlpPolicy", venv, tensorboard_log=tb_dir, verbose=0, **config.model_kwargs())
    start = time.perf_counter()
    callback = _progress_callback(config.timesteps) if progress else None
    model.learn(total_timesteps=config.timesteps, callback=callback,
                tb_log_name=f"{config.env_id.replace('/', '_')}__{config.algo}__{config.seed}")
    seconds = time.perf_counter() - start
    with atomic_path(out / "model.zip") as tmp:
        model.save(tmp)
    with atomic_path(out / "policy.pt") as tmp:
        torch.save(model.policy.state_dict(), tmp)
    resolved = asdict(config) | {"train_seconds": seconds, "n_envs_used": n_envs}
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True))
    venv.close()
    return out


def __getattr__(name: str):
    # ``NativeVecEnv`` is built on first use, so that importing this module imports no SB3.
    if name == "NativeVecEnv":
        return _native_vec_env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _native_vec_env_class():
    """Build :class:`NativeVecEnv` (SB3 is imported only when it is used)."""
    from gymnasium.vector import AutoresetMode
    from stable_baselines3.common.vec_env import VecEnv

    class NativeVecEnv(VecEnv):
        """SB3's ``VecEnv`` interface over a Gymnasium ``VectorEnv`` with same-step autoreset.

        SB3 expects a finished env to be reset inside the step that ended it, with the last
        observation in ``infos[i]["terminal_observation"]`` and ``"TimeLimit.truncated"``
        set for a truncated one: exactly Gymnasium's ``"SameStep"`` autoreset mode (pass
        ``autoreset_mode="SameStep"`` to ``gym.make_vec``). Seeds from :meth:`seed` and
        options from :meth:`set_options` reach the next :meth:`reset`; ``get_attr``,
        ``set_attr`` and ``env_method`` reach the vector env's ``envs[i]`` where it has them.
        """

        def __init__(self, venv):
            mode = venv.metadata.get("autoreset_mode")
            if mode != AutoresetMode.SAME_STEP:
                raise ValueError("NativeVecEnv needs a VectorEnv made with "
                                 f"autoreset_mode='SameStep', got {mode!r}")
            self.venv = venv
            self._actions = None
            super().__init__(venv.num_envs, venv.single_observation_space,
                             venv.single_action_space)

        def reset(self):
            seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
            options = self._options[0] or None
            if any(o != self._options[0] for o in self._options):
                raise ValueError("NativeVecEnv: set_options takes one dict for every env")
            obs, info = self.venv.reset(seed=seeds, options=options)
            self.reset_infos = _unstack(info, self.num_envs)
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
            dones = terminated | truncated
            infos = [{} for _ in range(self.num_envs)]
            if dones.any():
                final = _unstack(info.get("final_info", {}), self.num_envs)
                for i in np.flatnonzero(dones):
                    infos[i] = {**final[i], "terminal_observation": info["final_obs"][i],
                                "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
                self.reset_infos = _unstack(info, self.num_envs)
            return obs, rewards.astype(np.float32), dones, infos

        def close(self):
            self.venv.close()

        def _targets(self, indices):
            envs = getattr(self.venv, "envs", None)
            if envs is None:
                raise AttributeError("the vector env exposes no sub-environments (envs)")
            return [envs[i] for i in self._get_indices(indices)]

        def get_attr(self, attr_name, indices=None):
            if attr_name == "render_mode":
                return [getattr(self.venv, "render_mode", None)] * self.num_envs
            return [getattr(env, attr_name) for env in self._targets(indices)]

        def set_attr(self, attr_name, value, indices=None):
            for env in self._targets(indices):
                setattr(env, attr_name, value)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            return [getattr(env, method_name)(*method_args, **method_kwargs)
                    for env in self._targets(indices)]

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._get_indices(indices)]

        def get_images(self):
            return list(self.venv.render())

    return NativeVecEnv


def _unstack(info: dict, n: int) -> list[dict]:
    """Gymnasium's vector info (arrays with ``_key`` masks) as one dict per env."""
    out = [{} for _ in range(n)]
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get(f"_{key}", np.ones(n, bool))
        for i in np.flatnonzero(mask):
            v = value[i]
            out[i][key] = v.item() if isinstance(v, np.generic) else v
    return out


class SB3Agent:
    """A trained SB3 policy as an agent (deterministic actions).

    Args:
        policy: An SB3 policy (``model.policy``).
        name: Display name.
    """

    def __init__(self, policy, name: str = "sb3"):
        self.policy = policy
        self.name = name

    def reset(self, campaign: dict | None = None) -> None:
        """Nothing to reset: the policy is memoryless (the observation carries the state)."""

    def act(self, obs) -> np.ndarray:
        action, _ = self.policy.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
        return np.clip(np.asarray(action, dtype=np.float32).reshape(1), -1.0, 1.0)

    @classmethod
    def load(cls, path, algo: str | None = None) -> SB3Agent:
        """Load from a run folder or its ``model.zip`` without unpickling anything."""
        import gymnasium as gym
        import torch

        import bidenv  # noqa: F401

        path = Path(path)
        folder = path if path.is_dir() else path.parent
        config_path = folder / "config.json"
        if not config_path.exists():
            raise ValueError(f"no config.json beside {path}: expected a folder written by "
                             "`bidenv train` (config.json with model.zip and/or policy.pt)")
        config = TrainConfig(**{k: v for k, v in json.loads(config_path.read_text()).items()
                                if k in TrainConfig.__dataclass_fields__})
        if algo is not None and algo != config.algo:
            raise ValueError(f"{path} holds a {config.algo!r} model, not {algo!r}")
        if path.suffix == ".zip" or not (folder / "policy.pt").exists():
            archive = path if path.suffix == ".zip" else folder / "model.zip"
            with zipfile.ZipFile(archive) as zf:
                state = torch.load(io.BytesIO(zf.read("policy.pth")), map_location="cpu",
                                   weights_only=True)
        else:
            state = torch.load(folder / "policy.pt", map_location="cpu", weights_only=True)
        env = gym.make(config.env_id, **config.env_kwargs)
        kwargs = config.model_kwargs()
        kwargs.pop("seed", None)
        model = _algo_class(config.algo)("MlpPolicy", env, verbose=0, **kwargs)
        model.policy.load_state_dict(state)
        model.policy.set_training_mode(False)
        env.close()
        return cls(model.policy, name=f"{config.algo}:{path}")


def make_loader(algo: str):
    """A loader for the agents registry: ``spec path -> SB3Agent``."""
    return lambda path, **kwargs: SB3Agent.load(path, algo=algo)
