"""Executed HTML renders of the notebooks, so that they show their outputs when browsed.

The notebooks are stored without outputs (``tests/test_notebooks.py`` keeps them so); this
module runs each one top to bottom in a fresh kernel (nbclient, as the tests do) and writes it
with its outputs as one HTML page (nbconvert's ``HTMLExporter`` with its lean ``basic``
template, figures embedded as PNG) that links one small stylesheet written beside the pages,
:data:`STYLESHEET` (no scripts and nothing fetched: the pages read offline)::

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
import html
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
#: Where ``python -m experiments.render_notebooks`` reads and writes by default.
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
#: Seconds one cell may run.
CELL_TIMEOUT = 600
#: Environment of the kernel (besides PYTHONPATH): one thread, no display (as the tests).
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: The stylesheet every page links, written beside them (instead of the ~280 kB of CSS and
#: scripts nbconvert's default ``lab`` template embeds in each page).
STYLESHEET = "notebook.css"
_LAYOUT_CSS = """\
body { max-width: 1100px; margin: 0 auto; padding: 1em 2em;
  font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #212121; }
pre, code { font: 13px/1.4 Menlo, Consolas, "DejaVu Sans Mono", monospace; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.cell { margin: 0.6em 0; }
.input, .output_area { display: flex; align-items: flex-start; }
.prompt { flex: 0 0 5.5em; padding: 0.4em 0.5em 0 0; text-align: right;
  font: 12px/1.4 monospace; color: #303f9f; }
.output_prompt { color: #d84315; }
.inner_cell, .output_subarea { flex: 1 1 auto; min-width: 0; }
.input_area { background: #f7f7f7; border: 1px solid #e0e0e0; border-radius: 2px;
  padding: 0.4em 0.6em; }
.output_subarea { padding: 0.4em 0.6em; overflow-x: auto; }
.output_stderr { background: #fdd; }
.output_error pre { color: #b71c1c; }
.output_png img { max-width: 100%; height: auto; }
.text_cell_render { padding: 0 0.6em; }
.text_cell_render code { background: #f3f3f3; padding: 0 0.2em; }
.anchor-link { visibility: hidden; margin-left: 0.3em; text-decoration: none; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link { visibility: visible; }
table { border-collapse: collapse; font-size: 13px; margin: 0.3em 0; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e0e0e0; text-align: right; }
th { font-weight: 600; }
tbody tr:nth-child(odd) { background: #f5f5f5; }
"""


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
    """The executed notebook as one HTML page (nbconvert's ``basic`` template: the cells and
    their outputs, figures embedded) linking :data:`STYLESHEET`."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="basic").from_notebook_node(book)
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n"
            f'<link rel="stylesheet" href="{STYLESHEET}">\n</head>\n<body>\n'
            f"{body.strip()}\n</body>\n</html>\n")


def stylesheet() -> str:
    """The pages' shared stylesheet: the layout and pygments' highlighting of the code."""
    from pygments.formatters import HtmlFormatter

    return _LAYOUT_CSS + HtmlFormatter().get_style_defs(".highlight") + "\n"


def render(path, out, *, timeout: int = CELL_TIMEOUT, root=ROOT) -> Path:
    """Execute the notebook at ``path`` and write ``out/<stem>.html`` atomically, and
    ``out/`` :data:`STYLESHEET` when it is not there as it should be; return the page.

    A notebook whose cell fails raises and leaves any earlier page of it as it was.
    """
    path = Path(path)
    target = Path(out) / f"{path.stem}.html"
    page = to_html(execute(path, timeout=timeout, root=root), path.stem)
    atomic_write_text(target, page)
    css, sheet = Path(out) / STYLESHEET, stylesheet()
    if not css.is_file() or css.read_text(encoding="utf-8") != sheet:
        atomic_write_text(css, sheet)
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
