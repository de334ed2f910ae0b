"""The documentation is self-contained: every file the README and the code cite exists in the
repository, and nothing points at a design document outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))] + [
    p for pkg in ("bidenv", "agents", "experiments") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_cited_docs_and_images_exist():
    cited = set()
    for path in SOURCES:
        cited |= set(re.findall(r"\bdocs/[\w./-]+\.(?:md|png)", path.read_text()))
    assert "docs/design.md" in cited  # the contracts are cited ...
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert missing == []  # ... and every citation resolves


def test_no_reference_outside_the_repository():
    outside = [f"{p.relative_to(ROOT)}" for p in SOURCES
               if re.search(r"DESIGN\.md|\.\./shared", p.read_text())]
    assert outside == []
