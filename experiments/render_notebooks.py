"""Executed HTML renders of the notebooks, so that they show their outputs when browsed.

The notebooks are stored without outputs (``tests/test_notebooks.py`` keeps them so); this
module runs each one top to bottom in a fresh kernel (nbclient, as the tests do) and writes it
with its outputs as one self-contained HTML page (nbconvert's ``HTMLExporter``, figures
embedded as PNG)::

    python -m experiments.render_notebooks                 # notebooks/*.ipynb -> docs/notebooks/
    python -m experiments.render_notebooks notebooks/05_retrieval_modes.ipynb --out /tmp/html

Each notebook runs in a scratch folder (anything it writes is thrown away) with the repository
importable, one thread per kernel and matplotlib's Agg backend, like the tests. Every page is
written atomically (a temporary file renamed into place), and what changes from run to run
without the notebook changing is left out: no execution timings or kernel versions in the
rendered notebook's metadata, ``execution_count`` renumbered from 1, and the kernel's object
addresses (``at 0x7f...``) masked, so re-rendering an unchanged notebook on the same machine
gives the same page. Needs ``nbconvert``, ``nbclient`` and ``ipykernel`` (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bidenv.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
#: Where ``python -m experiments.render_notebooks`` reads and writes by default.
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
#: Seconds one cell may run.
CELL_TIMEOUT = 600
#: Environment of the kernel (besides PYTHONPATH): one thread, no display (as the tests).
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


@contextmanager
def _kernel_environment(root: Path) -> Iterator[None]:
    """Set the environment a kernel started inside the block inherits; restore it after."""
    changes = dict(KERNEL_ENV)
    changes["PYTHONPATH"] = os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(path, *, timeout: int = CELL_TIMEOUT, root=ROOT):
    """Run the notebook at ``path`` top to bottom; return it (an ``nbformat`` node) with its
    outputs, made deterministic where possible (see the module's docstring).

    Raises ``nbclient.exceptions.CellExecutionError`` if a cell fails.
    """
    import nbclient
    import nbformat

    book = nbformat.read(str(path), as_version=4)
    with tempfile.TemporaryDirectory(prefix="bidenv-notebook-") as scratch, \
            _kernel_environment(Path(root)):
        client = nbclient.NotebookClient(book, timeout=timeout, kernel_name="python3",
                                         record_timing=False,
                                         resources={"metadata": {"path": scratch}})
        client.execute()
    return _normalise(book)


def _normalise(book):
    """Drop what changes from run to run without the notebook changing (in place)."""
    kernelspec = book.metadata.get("kernelspec")
    book.metadata = {"kernelspec": kernelspec} if kernelspec else {}
    count = 0
    for cell in book.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
        for output in cell.outputs:
            output.get("metadata", {}).pop("execution", None)
            if "execution_count" in output:
                output.execution_count = cell.execution_count
            if output.output_type == "stream":
                output.text = _ADDRESS.sub(" at 0x...", output.text)
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/") and isinstance(data, str):
                    output.data[mime] = _ADDRESS.sub(" at 0x...", data)
    return book


def to_html(book, title: str) -> str:
    """The executed notebook as one self-contained HTML page (nbconvert's lab template)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(book, resources={"metadata": {"name": title}})
    return body


def render(path, out, *, timeout: int = CELL_TIMEOUT, root=ROOT) -> Path:
    """Execute the notebook at ``path`` and write ``out/<stem>.html`` atomically; return it.

    A notebook whose cell fails raises and leaves any earlier page of it as it was.
    """
    path = Path(path)
    target = Path(out) / f"{path.stem}.html"
    html = to_html(execute(path, timeout=timeout, root=root), path.stem)
    with atomic_path(target) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return target


def render_all(paths=None, out=OUT, *, timeout: int = CELL_TIMEOUT, root=ROOT,
               log=print) -> list[Path]:
    """Render ``paths`` (default: every ``notebooks/*.ipynb``, in name order) into ``out``."""
    paths = sorted(NOTEBOOKS.glob("*.ipynb")) if not paths else [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such notebook: {', '.join(missing)}")
    if not paths:
        raise FileNotFoundError(f"no notebooks in {NOTEBOOKS}")
    written = []
    for path in paths:
        start = time.perf_counter()
        target = render(path, out, timeout=timeout, root=root)
        if log:
            log(f"{path.name} -> {target} ({target.stat().st_size / 1e6:.2f} MB, "
                f"{time.perf_counter() - start:.1f} s)")
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.render_notebooks",
        description="Execute the notebooks and write HTML renders with their outputs.")
    parser.add_argument("notebooks", nargs="*", help="notebooks to render (default: all of "
                        "notebooks/*.ipynb)")
    parser.add_argument("--out", default=str(OUT), help="folder of the HTML pages "
                        "(default: docs/notebooks)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                        help="seconds one cell may run (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        import nbclient  # noqa: F401
        import nbconvert  # noqa: F401
    except ImportError as error:
        print(f"error: {error.name} is needed: pip install -e \".[dev]\"", file=sys.stderr)
        return 2
    try:
        render_all(args.notebooks, args.out, timeout=args.timeout)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
