"""A study's headline tables as Markdown (``srilab report DIR --markdown FILE``), for a README or a paper's notes.

Read from ``summary.json`` alone, so a table in the documentation can be rebuilt from the run that made it:

* the sources' claims, each with its n, effect, interval, p, MDE and verdict, and the same test among the
  requests every compared arm knows;
* what each arm knows beside its attack success, raw and among the requests it knows;
* attack success per attacked set and attack, one column per arm;
* refusal of the benign sets and the capability figures, one column per arm.

Every rate is ``percent (k/n) [Wilson 95% interval]``; a cell the arm lacks is ``n/a``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srilab.report.claims_report import known_text, number
from srilab.report.html import rate_text


def rate_cell(r: dict[str, Any] | None) -> str:
    """``12.5% (3/24) [4-31]``; ``n/a`` for a missing or empty rate."""
    if not r or not r.get("n") or r.get("rate") is None:
        return "n/a"
    return rate_text(r, compact=True)


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table ('|' in a cell escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), "|" + "---|" * len(head), *(line(r) for r in rows)])


def _verdict(c: dict[str, Any]) -> str:
    v = c["verdict"]
    return f"**{v}**" if v in ("holds", "refuted") else v


def claims_table(summary: dict[str, Any]) -> str | None:
    claims = [c for c in summary.get("claims") or [] if c.get("verdict") != "not tested"]
    if not claims:
        return None
    rows = []
    for c in claims:
        ci = c.get("ci")
        interval = f" [{number(ci[0])}, {number(ci[1])}]" if ci and ci[0] is not None else ""
        rows.append([c["statement"], str(c["n"]), f"{number(c.get('effect'))}{interval}",
                     "-" if c.get("p") is None else f"{c['p']:.2g}", number(c.get("mde"), 2), _verdict(c),
                     known_text(c.get("among_known"), with_p=False)])
    return table(["claim (source)", "n", "effect [95% CI]", "p", "MDE", "verdict", "among requests both arms know"],
                 rows)


def knowledge_table(summary: dict[str, Any]) -> str | None:
    arms = {name: arm["knowledge"] for name, arm in summary["arms"].items() if arm.get("knowledge")}
    if not arms:
        return None
    rows = [
        ["harmful requests it writes as plain text (the ceiling)", *(rate_cell(k["ceiling"]) for k in arms.values())],
        ["attack success, raw", *(rate_cell(k["asr_raw"]) for k in arms.values())],
        ["attack success among the requests it knows", *(rate_cell(k["asr_known"]) for k in arms.values())],
    ]
    return table(["", *arms], rows)


def _cells(summary: dict[str, Any], keep) -> dict[str, dict[str, dict[str, Any]]]:
    """``{cell: {arm: entry}}`` for the cells ``keep(entry)`` accepts, in the order the arms list them."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, arm in summary["arms"].items():
        for cell, e in arm["cells"].items():
            if keep(e):
                out.setdefault(cell, {})[name] = e
    return out


def attack_table(summary: dict[str, Any]) -> str | None:
    cells = _cells(summary, lambda e: "asr" in e)
    if not cells:
        return None
    arms = list(summary["arms"])
    rows = [[f"`{cell}`", *(rate_cell(by_arm.get(a, {}).get("asr")) for a in arms)] for cell, by_arm in cells.items()]
    return table(["attack success (attacked set / attack)", *arms], rows)


def quality_table(summary: dict[str, Any]) -> str | None:
    arms = list(summary["arms"])
    cells = _cells(summary, lambda e: e.get("role") == "benign" and "refusal" in e)
    rows = [[f"`{cell.removesuffix('/direct')}` refused", *(rate_cell(by_arm.get(a, {}).get("refusal")) for a in arms)]
            for cell, by_arm in cells.items()]
    figures = {what for arm in summary["arms"].values() for what in arm.get("capability", {})}
    for what in sorted(figures):
        rows.append([what, *(rate_cell(summary["arms"][a].get("capability", {}).get(what)) for a in arms)])
    return table(["benign quality and capability", *arms], rows) if rows else None


def summary_markdown(summary: dict[str, Any]) -> str:
    """The study's headline tables (see the module docstring), each under a heading, with where they came from."""
    parts = [f"<!-- tables from {summary.get('run_dir', 'a run')}/summary.json (`srilab report --markdown`); "
             f"study {summary.get('study')}, {summary.get('records')} generations; attack success: "
             f"{summary.get('asr_basis')} -->"]
    for title, body in (("The sources' claims, tested", claims_table(summary)),
                        ("Attack success beside what each arm knows", knowledge_table(summary)),
                        ("Attack success per attack", attack_table(summary)),
                        ("Benign quality and capability", quality_table(summary))):
        if body:
            parts += [f"### {title}", body]
    return "\n\n".join(parts) + "\n"
