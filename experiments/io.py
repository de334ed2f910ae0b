"""Atomic file writing: results appear complete or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from bidenv.io import atomic_path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and rename."""
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_csv(path, frame) -> Path:
    """Write a pandas DataFrame as CSV atomically."""
    return atomic_write_text(path, frame.to_csv(index=False))


def atomic_write_json(path, data) -> Path:
    """Write JSON atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float))


def atomic_save_figure(fig, path, dpi: int = 120, *, tight: bool = True) -> Path:
    """Save a matplotlib figure through a temporary file and rename; closes the figure.

    ``tight=False`` keeps the figure's own layout (e.g. one already laid out around a caption).
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            if tight:
                fig.tight_layout()
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def check_output_dir(path, flag: str = "--out") -> Path:
    """Make sure ``path`` can hold a command's outputs *before* the work starts.

    Creates the folder if needed and checks that it is a folder and writable, so that a run
    never fails after hours of work because of its output path.

    Raises:
        ValueError: naming ``flag``, when ``path`` is an existing file, cannot be created or is
            not writable.
    """
    import os

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {str(path)!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag}: cannot create {str(path)!r} ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: the folder {str(path)!r} is not writable")
    return path


def check_env_id(env_id: str, flag: str = "--env") -> str:
    """``env_id`` if it is a registered Gymnasium id, else a one-line ``ValueError``."""
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the bidenv ids)

    try:
        gym.spec(env_id)
    except Exception:  # gymnasium raises several error kinds for unknown ids
        known = sorted(i for i in gym.registry if i.startswith("bidenv/"))
        raise ValueError(f"{flag}: unknown environment {str(env_id)[:80]!r}; bidenv's are "
                         f"{', '.join(known)}") from None
    return env_id
