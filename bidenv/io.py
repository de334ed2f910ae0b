"""Atomic file writing: results, datasets and checkpoints appear complete or not at all.

:func:`atomic_path` writes ``<dir>/<name>`` through a hidden temporary file
``<dir>/.<name>.tmp-<pid>-<random><suffix>`` renamed onto it. A process killed mid-write
(SIGKILL, power loss) cannot remove its temporary file, so every write first removes the
stale temporary files of the same target: those whose writer (``<pid>``) is no longer running
on this machine, or older than :data:`STALE_AFTER_S` (a pid may have been reused). A rerun of
the killed command therefore leaves a clean folder. Temporary files of another target, or of a
writer still running, are left alone. (The pid test assumes the writers of a folder run on
this machine; on a folder shared between machines only the age rule is safe, so do not let
two machines write the same file.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: A temporary file older than this is stale even if a process with its pid is running.
STALE_AFTER_S = 24 * 3600.0


def _tmp_prefix(name: str) -> str:
    return f".{name}.tmp-"


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (True when it cannot be told)."""
    if pid <= 0 or os.name != "posix":  # os.kill(pid, 0) would signal a group / kill on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left behind.

    Only files named like :func:`atomic_path`'s (``.<name>.tmp-<pid>-...`` next to ``path``)
    are considered (:func:`remove_stale`). Returns the paths removed.
    """
    path = Path(path)
    return remove_stale(path.parent, _tmp_prefix(path.name))


def remove_stale(folder, prefix: str, *, folders: bool = False) -> list[Path]:
    """Remove the entries of ``folder`` named ``<prefix><pid>-...`` that a writer left behind.

    One is removed when process ``<pid>`` is not running or it is older than
    :data:`STALE_AFTER_S`. Files only, or (``folders=True``) folders only, with their
    contents: the staging folders of writers that build a whole folder before renaming it.
    Returns the paths removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text, sep, _ = entry.name[len(prefix):].partition("-")
        if not (sep and pid_text.isdigit()):
            continue
        try:
            kind_ok = (entry.is_dir(follow_symlinks=False) if folders
                       else entry.is_file(follow_symlinks=False))
            if not kind_ok:
                continue
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            if old or not _pid_alive(int(pid_text)):
                if folders:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed meanwhile by another writer, or not ours to remove
            continue
    return removed


@contextmanager
def atomic_path(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic on one file system),
    is named ``.<name>.tmp-<pid>-<random><suffix>`` (``suffix`` defaults to ``path``'s, so
    writers that go by the extension still work) and is removed if the block raises, so a
    crash never leaves a half-written ``path``. Stale temporary files of ``path`` left by a
    killed writer are removed first (:func:`remove_stale_temporaries`).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "x.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('done', ['x.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_tmp_prefix(path.name)}{os.getpid()}-",
                               suffix=path.suffix if suffix is None else suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file owner-only (0600); give it the usual permissions.
        if os.path.isfile(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
