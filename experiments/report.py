"""One self-contained HTML report of a budget simulation, to send to a colleague.

:func:`write_report` writes ``report.html``: the advice, the figures (embedded as base64 PNG
``data:`` URIs), the tables, the spec, the seed, the bidenv version and the date. It has no
script and references nothing outside itself (no external CSS, JavaScript, fonts or images), so
it reads offline and from an e-mail attachment, and it has print CSS (no page break inside a
figure or a table row, tables in a smaller font) so that "Print to PDF" gives a clean document.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from experiments.io import atomic_write_text

#: The file :func:`write_report` writes into the output folder.
REPORT_NAME = "report.html"

#: Rows of a table shown in the report; longer tables are cut and the CSV named.
MAX_ROWS = 200

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 70em; padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #555; font-size: 0.9em; }
#advice ul { background: #f3f7ff; border-left: 4px solid #3465a4; padding: 0.8em 0.8em 0.8em 2em;
             margin: 0.5em 0; }
#advice li { margin: 0.3em 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; flex: 0 1 calc(50% - 0.5em); max-width: 100%; }
@media (max-width: 60em) { figure { flex-basis: 100%; } }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; white-space: nowrap; }
th { background: #eee; }
tbody tr:nth-child(even) { background: #fafafa; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto;
      font-size: 0.85em; }
.note { font-size: 0.85em; color: #555; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .figures { display: block; }
  figure { page-break-inside: avoid; break-inside: avoid; margin-bottom: 1em; }
  figure img { width: auto; max-width: 100%; max-height: 45vh; border: none; }
  .table-wrap { overflow: visible; }
  table { font-size: 7pt; }
  tr { page-break-inside: avoid; break-inside: avoid; }
  h2 { page-break-after: avoid; break-after: avoid; }
  pre { white-space: pre-wrap; }
}
"""


def _png_data_uri(path: Path) -> str:
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"report figure {str(path)!r} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _format_cell(value) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _table_html(name: str, frame) -> str:
    rows = len(frame)
    shown = frame.head(MAX_ROWS)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(_format_cell(v))}</td>" for v in row)
                     + "</tr>" for row in shown.itertuples(index=False, name=None))
    note = ""
    if rows > MAX_ROWS:
        note = (f'<p class="note">First {MAX_ROWS} of {rows} rows; all of them are in '
                f"<code>{html.escape(name)}</code>.</p>")
    return (f"<h3>{html.escape(name)}</h3>{note}<div class=\"table-wrap\"><table>"
            f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>")


def _version() -> str:
    try:
        import bidenv

        return str(bidenv.__version__)
    except (ImportError, AttributeError):  # pragma: no cover - bidenv always has it
        return "unknown"


def render_report(*, title: str, advice, spec, seed, tables: Mapping, figures: Iterable,
                  date: str | None = None) -> str:
    """The HTML text of :func:`write_report` (no file written)."""
    if isinstance(advice, str):
        advice = [advice]
    advice = [str(a) for a in advice]
    if hasattr(spec, "to_dict"):
        spec = spec.to_dict()
    date = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta" id="meta">seed {esc(str(seed))} &middot; bidenv {esc(_version())} '
        f"&middot; {esc(date)}</p>",
        '<section id="advice"><h2>Advice</h2><ul>',
        *(f"<li>{esc(a)}</li>" for a in advice),
        "</ul></section>",
    ]
    figures = [Path(f) for f in figures]
    if figures:
        parts.append('<section id="figures"><h2>Figures</h2><div class="figures">')
        for fig in figures:
            parts.append(f'<figure><img src="{_png_data_uri(fig)}" alt="{esc(fig.stem)}">'
                         f"<figcaption>{esc(fig.name)}</figcaption></figure>")
        parts.append("</div></section>")
    if tables:
        parts.append('<section id="tables"><h2>Tables</h2>')
        parts.extend(_table_html(name, frame) for name, frame in tables.items())
        parts.append("</section>")
    spec_text = json.dumps(spec, indent=2, sort_keys=True, default=str)
    parts += ['<section id="spec"><h2>Spec</h2>',
              '<p class="note">The resolved campaign and settings; save it as a JSON file and '
              "rerun with <code>bidenv simulate-budget --spec FILE</code>.</p>",
              f"<pre>{esc(spec_text)}</pre></section>",
              "</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(out_dir, *, title: str, advice, spec, seed, tables: Mapping,
                 figures: Iterable) -> Path:
    """Write ``<out_dir>/report.html``, self-contained, atomically; returns its path.

    Args:
        out_dir: Output folder (created if needed).
        title: The report's heading.
        advice: The advice, one message or a list of them (shown as a list, first).
        spec: The campaign and settings, a mapping or an object with ``to_dict()``.
        seed: The first seed of the simulated days.
        tables: Name (e.g. the CSV's file name) to pandas DataFrame, shown in this order.
        figures: PNG files, embedded as ``data:`` URIs in this order.
    """
    text = render_report(title=title, advice=advice, spec=spec, seed=seed, tables=tables,
                         figures=figures)
    return atomic_write_text(Path(out_dir) / REPORT_NAME, text)
