"""`python -m experiments.render_notebooks` renders executed notebooks to HTML (a tiny notebook
written here; docs/notebooks is never touched)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")
pytest.importorskip("ipykernel")

from experiments import render_notebooks  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"


def _docs_state():
    return sorted((p.name, p.stat().st_mtime_ns) for p in DOCS.glob("*")) if DOCS.is_dir() else []


def _write_notebook(path, *cells):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    book = new_notebook(cells=[new_markdown_cell("# A tiny notebook"),
                               *(new_code_cell(c) for c in cells)],
                        metadata={"kernelspec": {"display_name": "Python 3",
                                                 "language": "python", "name": "python3"}})
    nbformat.write(book, str(path))
    return path


def test_renders_a_notebook_with_its_outputs(tmp_path):
    before = _docs_state()
    book = _write_notebook(
        tmp_path / "tiny.ipynb",
        'print("hello from the " + "kernel")',
        'import os\nopen("scratch.txt", "w").write("x")\nos.environ["OMP_NUM_THREADS"]',
        "6 * 7",
        "object()")
    out = tmp_path / "html"
    assert render_notebooks.main([str(book), "--out", str(out)]) == 0
    page = (out / "tiny.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "A tiny notebook" in page
    # The outputs are there (computed by the kernel, not copied from the source) ...
    assert "hello from the kernel" in page
    assert "&#39;1&#39;" in page or "'1'" in page     # the kernel ran with one thread
    assert "42" in page
    assert "object at 0x..." in page                 # the address masked: deterministic
    # ... a lean page (no scripts, no embedded template CSS) linking the one stylesheet
    # written beside it ...
    assert "<script" not in page and "<style" not in page
    assert f'<link rel="stylesheet" href="{render_notebooks.STYLESHEET}">' in page
    assert len(page) < 50_000
    css = (out / render_notebooks.STYLESHEET).read_text(encoding="utf-8")
    assert ".input_area" in css and ".highlight" in css
    # ... the notebook ran elsewhere, and only the page and its stylesheet were written.
    assert sorted(p.name for p in out.iterdir()) == [render_notebooks.STYLESHEET, "tiny.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "tiny.ipynb"]
    # The stored notebook is left without outputs, and re-rendering gives the same page.
    stored = nbformat.read(str(book), as_version=4)
    assert all(c.outputs == [] for c in stored.cells if c.cell_type == "code")
    again = render_notebooks.render(book, tmp_path / "again")
    assert again.read_text(encoding="utf-8") == page
    assert (tmp_path / "again" / render_notebooks.STYLESHEET).read_text(encoding="utf-8") == css
    assert _docs_state() == before


def test_a_failing_cell_raises_and_keeps_the_old_page(tmp_path):
    book = _write_notebook(tmp_path / "broken.ipynb", "1 / 0")
    out = tmp_path / "html"
    out.mkdir()
    (out / "broken.html").write_text("old page")
    with pytest.raises(Exception, match="ZeroDivisionError"):
        render_notebooks.render(book, out)
    assert (out / "broken.html").read_text() == "old page"
    assert sorted(p.name for p in out.iterdir()) == ["broken.html"]


def test_missing_notebook_is_an_error(tmp_path, capsys):
    assert render_notebooks.main([str(tmp_path / "nope.ipynb"), "--out", str(tmp_path)]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_every_notebook_has_a_render_linked_from_the_readme():
    root = DOCS.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    for book in sorted((root / "notebooks").glob("*.ipynb")):
        page = f"docs/notebooks/{book.stem}.html"
        assert (root / page).is_file(), f"{page} missing: python -m experiments.render_notebooks"
        assert f"({page})" in readme, f"the README does not link {page}"
        assert f"notebooks/{book.name}" in readme
    assert "python -m experiments.render_notebooks" in readme
    # The pages share one stylesheet, the one render_notebooks writes today.
    css = DOCS / render_notebooks.STYLESHEET
    assert css.is_file() and css.read_text(encoding="utf-8") == render_notebooks.stylesheet()
    for page in DOCS.glob("*.html"):
        assert f'href="{render_notebooks.STYLESHEET}"' in page.read_text(encoding="utf-8")
