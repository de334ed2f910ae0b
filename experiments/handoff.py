"""``bidenv export-minari``: hand an offline dataset to Minari, and through it to d3rlpy.

``bidenv export-minari DATA --dataset-id ID [--out DIR] [--env ENV]`` reads a dataset written
by ``bidenv collect`` or ``bidenv import-auctionnet`` (validated on load) and writes it as the
Minari dataset ``ID`` under the Minari root ``DIR`` (default: ``MINARI_DATASETS_PATH`` or
``~/.minari/datasets``), through :func:`bidenv.minari_export.export_minari`. The dataset
always records an environment spec: the environment that played collected days, or
``bidenv/AutoBidding-v0`` for imported AuctionNet logs (said in its description), so
``minari.load_dataset(ID).recover_environment()`` and ``d3rlpy.datasets.get_minari(ID)`` work
on both.

The dataset appears complete or not at all: Minari writes it into a hidden staging folder
``DIR/.export-minari.tmp-<pid>-<random>``, which is renamed onto ``DIR/ID`` when complete
(one rename on one file system); the namespace's ``namespace_metadata.json`` is copied with
:func:`bidenv.io.atomic_path` first. Staging folders of exports that were killed are removed
by the next export into the same root.

Minari is an optional extra (``pip install bidenv[minari]``); without it the command stops
with one line naming the extra.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

#: The form of a Minari dataset id: ``[namespace/...]name-vN``.
DATASET_ID_PATTERN = re.compile(r"^(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*-v\d+$")
_STAGING_PREFIX = ".export-minari.tmp-"
MINARI_MISSING = ("needs the optional extra minari, which is not installed: "
                  "pip install 'bidenv[minari]'")


def check_dataset_id(dataset_id) -> str:
    """``dataset_id`` if it has the form of a Minari id, else a one-line ``ValueError``."""
    from bidenv.validation import short_repr

    if not isinstance(dataset_id, str) or not DATASET_ID_PATTERN.match(dataset_id):
        raise ValueError("--dataset-id must be a Minari id [namespace/]name-vN (letters, digits, "
                         "'_', '.', '-'; N an integer >= 0), e.g. bidenv/lite-mix-v0; got "
                         f"{short_repr(dataset_id)}")
    return dataset_id


def _remove_stale_staging(root: Path) -> None:
    """Remove the staging folders of exports into ``root`` whose process is gone."""
    from bidenv.io import remove_stale

    remove_stale(root, _STAGING_PREFIX, folders=True)


def _default_root() -> Path:
    from minari.storage import get_dataset_path

    return Path(get_dataset_path())


def run_export_minari(data, *, dataset_id: str, out=None, env_id: str | None = None) -> dict:
    """Export the dataset file ``data`` as the Minari dataset ``dataset_id``; print a summary.

    Args:
        data: A Parquet dataset of ``bidenv collect`` or ``bidenv import-auctionnet``.
        dataset_id: The Minari id, ``[namespace/]name-vN``.
        out: Root folder of Minari datasets (created if missing); default Minari's own
            (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        env_id: Environment to record; default the file's for collected days and
            ``bidenv/AutoBidding-v0`` for imported logs.

    Returns:
        ``{"path", "dataset_id", "root", "episodes", "steps", "env_id", "seconds"}``.

    Raises:
        ImportError: one line naming the extra, if minari is not installed.
        FileNotFoundError: if ``data`` does not exist.
        ValueError: for a bad ``dataset_id``, ``out`` or ``env_id``, a dataset that fails
            validation, or a dataset id that already exists under the root.
    """
    start = time.perf_counter()
    check_dataset_id(dataset_id)
    data = Path(data)
    if not data.is_file():
        raise FileNotFoundError(f"DATA: dataset {str(data)!r} does not exist")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out must be a folder (the root of Minari datasets), got the file "
                         f"{out}")
    if env_id is not None:
        from experiments.io import check_env_id

        check_env_id(env_id)
    try:
        import minari  # noqa: F401
    except ImportError:
        raise ImportError(MINARI_MISSING) from None
    from bidenv.minari_export import export_minari
    from bidenv.offline import load_dataset

    frame, _ = load_dataset(data)
    root = Path(out) if out is not None else _default_root()
    target = root / dataset_id
    if target.exists():
        raise ValueError(f"--dataset-id: a Minari dataset {dataset_id!r} already exists at "
                         f"{target}; choose another name or version")
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f"{_STAGING_PREFIX}{os.getpid()}-"))
    try:
        dataset = export_minari(frame, dataset_id, env_id=env_id, datasets_path=staging)
        episodes, steps = int(dataset.total_episodes), int(dataset.total_steps)
        recorded_env = dataset.spec.env_spec.id
        del dataset
        _copy_namespace_metadata(staging, root, dataset_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, target)  # the dataset appears whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"exported {episodes} days ({steps} steps) of {data.name} as the Minari dataset "
          f"{dataset_id} (env spec {recorded_env}) in {seconds:.1f} s")
    print(f"wrote {target}")
    where = "" if out is None else f"MINARI_DATASETS_PATH={root.resolve()} "
    print(f"load it with {where}python -c \"import minari; "
          f"minari.load_dataset('{dataset_id}')\" or d3rlpy.datasets.get_minari('{dataset_id}')")
    return {"path": str(target), "dataset_id": dataset_id, "root": str(root),
            "episodes": episodes, "steps": steps, "env_id": recorded_env, "seconds": seconds}


def _copy_namespace_metadata(staging: Path, root: Path, dataset_id: str) -> None:
    """Copy the ``namespace_metadata.json`` files Minari wrote for the id's namespaces into
    ``root`` where they are missing (atomically)."""
    from bidenv.io import atomic_path

    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth], "namespace_metadata.json")
        if (staging / rel).is_file() and not (root / rel).exists():
            with atomic_path(root / rel) as tmp:
                shutil.copyfile(staging / rel, tmp)
