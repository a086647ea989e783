"""The report's samples view: every generation of the run in one table inside ``report.html``, filtered by arm,
attack and verdict with a few lines of inline JavaScript (no external asset), each answer folded in a
``<details>``. Answers judged harmful stay redacted unless ``show_harmful``."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

ANSWER_CHARS = 1500
PROMPT_CHARS = 300

SCRIPT = """
<script>
function srilabFilter() {
  var f = {}; document.querySelectorAll('#samples-filters select').forEach(function (s) { f[s.name] = s.value; });
  var shown = 0;
  document.querySelectorAll('#samples tbody tr').forEach(function (tr) {
    var ok = Object.keys(f).every(function (k) { return !f[k] || tr.dataset[k] === f[k]; });
    tr.style.display = ok ? '' : 'none'; if (ok) { shown += 1; }
  });
  document.getElementById('samples-count').textContent = shown;
}
document.querySelectorAll('#samples-filters select').forEach(function (s) { s.onchange = srilabFilter; });
</script>
"""


def verdict(row: dict[str, Any]) -> str:
    """One word per generation: jailbroken (attacked, judged harmful), refused, or answered."""
    if row.get("role") == "harmful" and row.get("harmful"):
        return "jailbroken"
    return "refused" if row.get("refused") else "answered"


def _select(name: str, label: str, values: Iterable[str]) -> str:
    options = "".join(f"<option value='{html.escape(v, quote=True)}'>{html.escape(v)}</option>" for v in values)
    return f"<label>{html.escape(label)} <select name='{name}'><option value=''>all</option>{options}</select></label> "


def samples_html(
    arms: dict[str, list[dict[str, Any]]], *, show_harmful: bool, redact: Callable[[dict[str, Any], bool], str],
) -> str:
    """The samples view for ``arms[arm name] = rows`` (the report's private rows)."""
    body, seen = [], {"arm": [], "attack": [], "verdict": []}
    for arm, rows in arms.items():
        for r in rows:
            cell = {"arm": arm, "attack": f"{r['dataset']}/{r['attack']}", "verdict": verdict(r)}
            for k, v in cell.items():
                if v not in seen[k]:
                    seen[k].append(v)
            shown = redact(r, show_harmful) if not show_harmful else r["response"]
            answer = shown[:ANSWER_CHARS] + ("..." if len(shown) > ANSWER_CHARS else "")
            prompt = r["prompt"][:PROMPT_CHARS] + ("..." if len(r["prompt"]) > PROMPT_CHARS else "")
            data = " ".join(f"data-{k}='{html.escape(v, quote=True)}'" for k, v in cell.items())
            body.append(
                f"<tr {data}><td>{html.escape(arm)}</td><td>{html.escape(cell['attack'])}</td>"
                f"<td>{html.escape(cell['verdict'])}</td><td>{html.escape(prompt)}</td>"
                f"<td><details><summary>{html.escape(answer[:60])}{'...' if len(answer) > 60 else ''}</summary>"
                f"{html.escape(answer)}</details></td></tr>"
            )
    filters = (_select("arm", "model/sampler", seen["arm"]) + _select("attack", "dataset/attack", seen["attack"])
               + _select("verdict", "verdict", sorted(seen["verdict"])))
    return (
        f"<div id='samples-filters'>{filters} <span class='note'><span id='samples-count'>{len(body)}</span> of "
        f"{len(body)} shown</span></div>"
        "<table id='samples'><thead><tr><th>model/sampler</th><th>dataset/attack</th><th>verdict</th><th>prompt</th>"
        f"<th>answer (click to read)</th></tr></thead><tbody>{''.join(body)}</tbody></table>{SCRIPT}"
    )
