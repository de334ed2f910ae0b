"""Pieces every offline (torch) agent shares: networks, target updates, batches, checkpoints,
and the training loop behind ``bidenv train AGENT --data FILE``.

An offline agent subclasses :class:`OfflineAgent` and implements

* ``build()``: create its modules (``self.nets``: name -> ``nn.Module``) and optimisers
  (``self.optims``: name -> ``torch.optim.Optimizer``) from ``self.config``;
* ``prepare(train: Trajectories)``: turn the training split into tensors (called once per
  ``fit``, after the state normaliser is set);
* ``train_step(rng) -> dict[str, float]``: one gradient step on a batch it samples with
  ``rng`` (a ``numpy.random.Generator``); returns losses for TensorBoard (``losses/<key>``);
* ``reset(campaign)`` and ``act(obs) -> (1,) float32``: the :class:`agents.Agent` protocol.

Checkpoints (``save``/``load``) are a directory with ``config.json`` (the agent's name, its
resolved config, the normaliser, the training step) and ``weights.pt`` (a flat dict of plain
tensors: module weights, optimiser states, RNG states), readable with
``torch.load(weights_only=True)``; never a pickle of Python objects. :func:`fit` saves one
every ``checkpoint_every`` steps, so an interrupted run resumed with ``resume=True``
continues from the last checkpoint to exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bidenv.io import atomic_path
from bidenv.offline import Normalizer, Trajectories, load_dataset
from bidenv.validation import check_int, check_number, short_repr

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------
def mlp(n_in: int, n_out: int, hidden=(256, 256), activation=nn.ReLU,
        layer_norm: bool = False) -> nn.Sequential:
    """A multilayer perceptron ``n_in -> hidden... -> n_out`` (linear output)."""
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers.append(nn.Linear(prev, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(activation())
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, n_in: int, n_out: int, ensemble: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, n_out))
        bound = 1.0 / math.sqrt(n_in)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """``ensemble`` independent MLPs evaluated together; input (B, in) or (E, B, in)."""

    def __init__(self, n_in: int, n_out: int, ensemble: int, hidden=(256, 256),
                 activation=nn.ReLU):
        super().__init__()
        self.ensemble = ensemble
        dims = [n_in, *hidden]
        self.hidden = nn.ModuleList(EnsembleLinear(a, b, ensemble)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.out = EnsembleLinear(dims[-1], n_out, ensemble)
        self.act = activation()

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.ensemble, *x.shape)
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.out(x)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source``."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """Asymmetric squared loss ``|tau - 1(diff < 0)| diff^2`` (IQL, Kostrikov et al. 2022)."""
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return (weight * diff.pow(2)).mean()


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OfflineConfig:
    """Settings shared by every offline agent (subclass it to add the agent's own).

    Attributes:
        batch_size: Samples per gradient step.
        lr: Adam step size.
        hidden: Hidden layer sizes of the MLPs.
        val_fraction: Share of episodes held out from training (for validation losses).
        max_alpha: The environment's action scale (``alpha = max_alpha ** action``).
    """

    batch_size: int = 256
    lr: float = 3e-4
    hidden: tuple = (256, 256)
    val_fraction: float = 0.0
    max_alpha: float = 10.0

    def validate(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, 0, 1, low_open=True, high_open=True)
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive integers, got {self.hidden!r}")
        check_number("val_fraction", self.val_fraction, 0, 1, high_open=True)


class OfflineAgent:
    """Base class of the offline agents (see the module docstring for what to implement)."""

    name = "offline"
    config_class = OfflineConfig

    def __init__(self, config=None, *, obs_dim: int | None = None, **overrides):
        from bidenv.features import FEATURE_NAMES, OPPORTUNITY_FEATURES

        if config is None:
            config = self.config_class(**overrides)
        elif isinstance(config, dict):
            config = self.config_class(**{**config, **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        config.hidden = tuple(config.hidden)
        config.validate()
        self.config = config
        extra = len(OPPORTUNITY_FEATURES) if getattr(config, "opportunity_features", False) else 0
        self.obs_dim = int(obs_dim or len(FEATURE_NAMES) + extra)
        self.normalizer = Normalizer(np.zeros(self.obs_dim, np.float32),
                                     np.ones(self.obs_dim, np.float32))
        self.step = 0
        self.nets: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.build()
        self.campaign = None

    # -- to implement -------------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def prepare(self, train: Trajectories) -> None:
        raise NotImplementedError

    def train_step(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def act(self, obs) -> np.ndarray:
        raise NotImplementedError

    # -- protocol -----------------------------------------------------------------------------
    def reset(self, campaign: dict | None = None) -> None:
        from agents.base import normalise_campaign

        self.campaign = normalise_campaign(campaign)

    def eval_mode(self, on: bool = True) -> None:
        for net in self.nets.values():
            net.train(not on)

    def norm_obs(self, obs) -> torch.Tensor:
        return torch.as_tensor(self.normalizer(obs))

    # -- checkpoints --------------------------------------------------------------------------
    def state_tensors(self, *, with_optimizers: bool = True) -> dict:
        """A flat dict of plain tensors (and nested dicts/lists of them for optimisers)."""
        state = {f"net.{k}": v.state_dict() for k, v in self.nets.items()}
        if with_optimizers:
            state.update({f"optim.{k}": v.state_dict() for k, v in self.optims.items()})
        return state

    def config_dict(self) -> dict:
        cfg = dataclasses.asdict(self.config)
        return {"agent": self.name, "config": cfg, "obs_dim": self.obs_dim,
                "normalizer": self.normalizer.to_dict(), "step": self.step}

    def save(self, path, *, extra_tensors: dict | None = None,
             extra_json: dict | None = None, with_optimizers: bool = True) -> Path:
        """Write ``config.json`` and ``weights.pt`` under directory ``path`` (atomically).

        ``with_optimizers=False`` leaves out the optimiser state: an inference-only checkpoint
        about a third of the size, which loads and acts the same but resumes training with
        fresh optimiser moments."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = self.state_tensors(with_optimizers=with_optimizers)
        tensors.update(extra_tensors or {})
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            torch.save(tensors, tmp)
        meta = self.config_dict()
        meta.update(extra_json or {})
        with atomic_path(path / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path

    @classmethod
    def read_checkpoint(cls, path) -> tuple[dict, dict]:
        """(config.json contents, tensors) of a checkpoint directory, loaded without pickle."""
        path = Path(path)
        if path.is_file() and path.name in (WEIGHTS_FILE, CONFIG_FILE):
            path = path.parent
        cfg_file, w_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not cfg_file.is_file() or not w_file.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} needs {CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE}")
        meta = json.loads(cfg_file.read_text())
        if meta.get("agent") != cls.name:
            raise ValueError(f"checkpoint {str(path)!r} holds agent {meta.get('agent')!r}, "
                             f"not {cls.name!r}")
        tensors = torch.load(w_file, map_location="cpu", weights_only=True)
        return meta, tensors

    @classmethod
    def load(cls, path, **kwargs):
        """Rebuild an agent from a checkpoint directory (weights only, no pickle)."""
        meta, tensors = cls.read_checkpoint(path)
        agent = cls(meta["config"], obs_dim=meta["obs_dim"], **kwargs)
        agent.load_state(meta, tensors)
        agent.eval_mode(True)
        return agent

    def load_state(self, meta: dict, tensors: dict) -> None:
        self.normalizer = Normalizer.from_dict(meta["normalizer"])
        self.step = int(meta.get("step", 0))
        for k, net in self.nets.items():
            net.load_state_dict(tensors[f"net.{k}"])
        for k, opt in self.optims.items():
            if f"optim.{k}" in tensors:
                opt.load_state_dict(tensors[f"optim.{k}"])


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------
def _rng_state_tensors(rng: np.random.Generator) -> tuple[dict, str]:
    return {"rng.torch": torch.get_rng_state()}, json.dumps(rng.bit_generator.state)


def data_fingerprint(traj: Trajectories) -> dict:
    """A content fingerprint of a dataset: its size and a SHA-256 of its arrays and campaigns.

    The same rows give the same fingerprint whatever the file they were read from; any change
    of content (rows, values, campaigns) changes it. :func:`fit` stores it in its checkpoints
    so that ``resume=True`` refuses other data.
    """
    h = hashlib.sha256()
    for name in ("obs", "actions", "rewards", "scores", "expected_scores", "dones", "mask",
                 "lengths", "episodes"):
        a = np.ascontiguousarray(getattr(traj, name))
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(repr(a.tolist()).encode() if a.dtype.kind == "O" else a.tobytes())
    h.update(json.dumps(traj.campaigns, sort_keys=True, default=str).encode())
    return {"episodes": int(len(traj.lengths)), "rows": int(np.sum(traj.lengths)),
            "sha256": h.hexdigest()}


def _describe_data(fp: dict) -> str:
    return (f"{fp.get('episodes')} episodes, {fp.get('rows')} rows, sha256 "
            f"{str(fp.get('sha256'))[:12]}")


def _resume_changes(meta: dict, agent: OfflineAgent, seed: int, fingerprint: dict | None) -> list:
    """What differs between a checkpoint's run and this one, as ``"--flag (...)"`` strings."""
    as_json = lambda c: json.loads(json.dumps(c, default=str))  # noqa: E731  (tuples -> lists)
    changes = []
    if fingerprint is not None and meta.get("data") and (
            meta["data"].get("sha256") != fingerprint["sha256"]):
        changes.append(f"--data (checkpoint: {_describe_data(meta['data'])}; now: "
                       f"{_describe_data(fingerprint)})")
    old, new = as_json(meta.get("config", {})), as_json(dataclasses.asdict(agent.config))
    diff = [f"{k} {short_repr(old.get(k), 30)} -> {short_repr(new.get(k), 30)}"
            for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
    if diff:
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        changes.append(f"--set ({', '.join(diff[:4])}{more})")
    if "seed" in meta and meta["seed"] != seed:
        changes.append(f"--seed ({short_repr(meta['seed'], 30)} -> {short_repr(seed, 30)})")
    return changes


def fit(agent: OfflineAgent, data, *, steps: int, seed: int = 0, out=None,
        checkpoint_every: int = 1000, eval_every: int = 0, evaluate=None,
        resume: bool = False, progress: bool = True, log: bool = True) -> OfflineAgent:
    """Train ``agent`` up to ``steps`` gradient steps in all on ``data`` (a path, frame or
    :class:`Trajectories`).

    Writes to ``out`` (if given): the final model (``config.json``, ``weights.pt``), a
    resumable checkpoint under ``out/checkpoint`` every ``checkpoint_every`` steps (with the
    seed and the data's :func:`data_fingerprint`), TensorBoard scalars under ``out/tb``
    (``losses/*`` every 50 steps, ``eval/*`` at every evaluation), and ``out/train.json`` (the
    resolved config, the data's metadata and fingerprint, the steps trained, timings); the same
    summary is left in ``agent.train_info``.
    With ``eval_every > 0``, every that many steps ``evaluate(agent)`` is called (in
    evaluation mode) and the scalars of the dict it returns are logged as ``eval/<key>``; the
    caller supplies it (the command line evaluates the current model in the simulator), so
    this layer never imports the evaluation harness.

    With ``resume=True`` training continues from ``out/checkpoint`` up to ``steps`` in all
    (so ``steps - <checkpoint step>`` more steps); the result is identical to an uninterrupted
    run. It is refused (``ValueError``, one line naming the command-line flags) when the data
    (``--data``: other content), the agent config (``--set``) or the seed (``--seed``) differ
    from the checkpoint's, and when the checkpoint already reached ``steps`` (``--steps``):
    nothing to train. The one exception is a checkpoint at exactly ``steps`` whose run was
    killed before it wrote the final model: then the final model is written, 0 steps trained.
    """
    from tqdm.auto import tqdm

    steps = check_int("steps", steps, 1)
    eval_every = check_int("eval_every", eval_every, 0)
    if eval_every and not callable(evaluate):
        raise ValueError("eval_every > 0 needs evaluate, a callable agent -> {name: scalar}")
    out = Path(out) if out is not None else None
    ckpt = out / "checkpoint" if out is not None else None
    if resume and (ckpt is None or not (ckpt / CONFIG_FILE).is_file()):
        raise FileNotFoundError(f"resume: no checkpoint under {str(ckpt)!r}")
    meta_data: dict = {}
    if isinstance(data, (str, Path)):
        frame, meta_data = load_dataset(data)
        traj = Trajectories.from_frame(frame)
    elif isinstance(data, Trajectories):
        traj = data
    else:
        traj = Trajectories.from_frame(data)
        meta_data = dict(getattr(data, "attrs", {}).get("bidenv", {}))
    fingerprint = data_fingerprint(traj) if ckpt is not None else None
    if getattr(agent.config, "opportunity_features", False):
        traj = traj.with_opportunity_obs()  # states = env features + opportunity features
    if resume:
        # Checked before any work: the checkpoint must continue this very run.
        meta, tensors = type(agent).read_checkpoint(ckpt)
        changes = _resume_changes(meta, agent, seed, fingerprint)
        if changes:
            raise ValueError(f"resume: {ckpt} was trained with other settings: "
                             f"{'; '.join(changes)}; resume with the same flags, or train "
                             "into a new --out")
        at = int(meta.get("step", 0))
        final = out / CONFIG_FILE
        final_step = json.loads(final.read_text()).get("step") if final.is_file() else None
        if at > steps or (at == steps and final_step == steps):
            raise ValueError(f"resume: the checkpoint is already at step {at} >= --steps "
                             f"{steps}; nothing to train (give --steps above {at} to train "
                             "further)")
    # Fresh weights from the seed (an agent built earlier drew them from the global RNG).
    torch.manual_seed(seed)
    agent.step = 0
    agent.build()
    rng = np.random.default_rng(seed)
    train, _val = traj.split(agent.config.val_fraction, seed=seed)
    agent.normalizer = train.normalizer()
    agent.prepare(train)
    if resume:
        agent.load_state(meta, tensors)
        torch.set_rng_state(tensors["rng.torch"])
        rng.bit_generator.state = json.loads(meta["rng_numpy"])
    start_step = agent.step
    writer = None
    if out is not None and log:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=agent.step or None)
    start = time.perf_counter()
    bar = tqdm(total=steps, initial=agent.step, desc=f"training {agent.name}", unit="step",
               disable=not progress)
    agent.eval_mode(False)
    totals: dict = {}
    ckpt_json = {"seed": seed, "data": fingerprint}
    while agent.step < steps:
        losses = agent.train_step(rng)
        agent.step += 1
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v)
        if writer is not None and agent.step % 50 == 0:
            for k, v in totals.items():
                writer.add_scalar(f"losses/{k}", v / 50, agent.step)
            totals = {}
        bar.update()
        if ckpt is not None and (agent.step % checkpoint_every == 0 or agent.step == steps):
            t_state, n_state = _rng_state_tensors(rng)
            agent.save(ckpt, extra_tensors=t_state,
                       extra_json={"rng_numpy": n_state, **ckpt_json})
        if eval_every and agent.step % eval_every == 0:
            agent.eval_mode(True)
            for key, value in evaluate(agent).items():
                if writer is not None:
                    writer.add_scalar(f"eval/{key}", float(value), agent.step)
            agent.eval_mode(False)
    bar.close()
    agent.eval_mode(True)
    agent.train_info = {
        "agent": agent.name, "config": dataclasses.asdict(agent.config), "steps": steps,
        "start_step": start_step, "trained_steps": agent.step - start_step, "seed": seed,
        "data": meta_data, "data_fingerprint": fingerprint,
        "train_episodes": int(len(train.lengths)), "seconds": time.perf_counter() - start}
    if out is not None:
        agent.save(out)
        with atomic_path(out / "train.json") as tmp:
            tmp.write_text(json.dumps(agent.train_info, indent=2, default=str))
    if writer is not None:
        writer.close()
    return agent
