"""Online RL with stable-baselines3: PPO, SAC and TD3 trained on the registered environments.

``bidenv train ppo --env bidenv/AutoBiddingLite-v0 --timesteps 20000 --seed 0 --out runs/ppo``
trains with SB3's own vectorised environments (``make_vec_env``), logs to TensorBoard
(``DIR/tb``), shows a progress bar, and writes:

* ``DIR/model.zip``: SB3's native archive (to continue training with SB3);
* ``DIR/policy.pt``: the policy's weights as plain tensors (``torch.load(weights_only=True)``);
* ``DIR/config.json``: the resolved training configuration.

Loading (``ppo:DIR`` or ``ppo:DIR/model.zip`` in the evaluation harness) never unpickles: it
rebuilds the policy from ``config.json`` and loads plain tensors, from ``policy.pt`` or from the
``policy.pth`` member of ``model.zip`` with ``weights_only=True``. The acting policy is
deterministic (the mean action).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bidenv.io import atomic_path
from bidenv.validation import check_int

ALGORITHMS = ("ppo", "sac", "td3")


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
        n_envs: Parallel environments (SB3 ``DummyVecEnv``; PPO benefits, SAC/TD3 use 1).
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
    net_arch: list = field(default_factory=lambda: [64, 64])
    learning_rate: float = 3e-4
    reward_mode: str = "expected_score"
    env_kwargs: dict = field(default_factory=dict)
    algo_kwargs: dict = field(default_factory=dict)

    def validate(self) -> None:
        _algo_class(self.algo)
        for name in ("timesteps", "n_envs"):
            check_int(name, getattr(self, name), 1)
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

        return gym.make(self.env_id, **{"reward_mode": self.reward_mode, **self.env_kwargs})

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
    from stable_baselines3.common.env_util import make_vec_env

    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_envs = config.n_envs if config.algo == "ppo" else 1
    # A callable, so that SB3 does not ask the env for an rgb_array render mode it lacks.
    venv = make_vec_env(config.make_env, n_envs=n_envs, seed=config.seed)
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
