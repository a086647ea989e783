"""A self-contained HTML report: one file, plots embedded as base64 PNG, no external assets."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
.note { color: #555; font-size: .9em; } code { background: #f4f4f4; padding: 0 .2em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .figs figure { margin: 0; flex: 1 1 480px; }
figcaption { font-size: .85em; color: #555; }
"""


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)  # plain text, escaped
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)  # (header, rows)
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)
    notes: list[str] = field(default_factory=list)  # plain text, shown once, folded (<details>)
    raw: str = ""  # trusted HTML written by srilab itself (the samples view), placed after the tables

    @property
    def anchor(self) -> str:
        return "sec-" + "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")[:60]


def rate_text(r: dict, compact: bool = False) -> str:
    """A rate with its count and 95% interval, in percent: ``12.5% (3/24) [4.3, 31.0]``; ``compact``: the
    interval in whole percent, ``[4-31]`` (the Markdown tables')."""
    if r.get("rate") is None:
        return "n/a (n = 0)"
    lo, hi = r["ci"]
    interval = f"[{100 * lo:.0f}-{100 * hi:.0f}]" if compact else f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{100 * r['rate']:.1f}% ({r['k']}/{r['n']}) {interval}"


def auroc_text(a: dict | None) -> str:
    """An AUROC with its bootstrap interval and both n: ``0.871 [0.70, 0.97] (9 vs 144)``."""
    if not a or a.get("auroc") is None:
        return "n/a" if not a else f"n/a ({a.get('n_pos', 0)} vs {a.get('n_neg', 0)})"
    lo, hi = a["ci"]
    return f"{a['auroc']:.3f} [{lo:.2f}, {hi:.2f}] ({a['n_pos']} vs {a['n_neg']})"


def table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f"<p class='note'>{html.escape(subtitle)}</p>")
    if len(sections) > 3:  # a contents list with anchors
        parts.append("<nav><b>Contents</b><ol>" + "".join(
            f"<li><a href='#{s.anchor}'>{html.escape(s.title)}</a></li>" for s in sections) + "</ol></nav>")
    for s in sections:
        parts.append(f"<h2 id='{s.anchor}'>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        if s.notes:
            parts.append(f"<details class='note'><summary>Notes ({len(s.notes)})</summary><ul>"
                         + "".join(f"<li>{html.escape(n)}</li>" for n in s.notes) + "</ul></details>")
        parts += [table_html(h, r) for h, r in s.tables]
        parts.append(s.raw)
        if s.figures:
            parts.append("<div class='figs'>" + "".join(figure_html(c, png) for c, png in s.figures) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(path: str | Path, title: str, sections: Sequence[Section], *, subtitle: str = "") -> Path:
    path = Path(path)
    path.write_text(render(title, sections, subtitle=subtitle), encoding="utf-8")
    return path
