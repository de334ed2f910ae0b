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


def atomic_save_figure(fig, path, dpi: int = 120) -> Path:
    """Save a matplotlib figure through a temporary file and rename; closes the figure."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.tight_layout()
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
