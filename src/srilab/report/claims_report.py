"""The claim table (the first section of every study report) and the "does it see success" table.

Both read ``summary.json`` only: ``claims`` (:mod:`srilab.analysis.claims`) and each arm's
``detection.sees_success`` (:mod:`srilab.analysis.success`).
"""

from __future__ import annotations

from typing import Any

from srilab.report import html
from srilab.report.html import auroc_text, rate_text

VERDICT_TEXT = {"holds": "HOLDS", "refuted": "REFUTED", "inconclusive": "inconclusive", "not tested": "not tested"}


def number(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def claim_row(c: dict[str, Any]) -> list[str]:
    ci = c.get("ci")
    claimed = c.get("claimed_range")
    high = "inf" if claimed and claimed[1] is None else number(claimed[1], 2) if claimed else ""
    region = "-" if not claimed else f"[{number(claimed[0], 2)}, {high}]"
    return [
        c["statement"], f"{c['metric']}; {c['test']}; alpha {c['alpha']:g}; claimed {region}",
        ", ".join(a for a in c["arms"] if a) or "-", str(c["n"]), number(c.get("effect")),
        "-" if not ci or ci[0] is None else f"[{number(ci[0])}, {number(ci[1])}]",
        "-" if c.get("p") is None else f"{c['p']:.3g}", number(c.get("mde")),
        VERDICT_TEXT.get(c["verdict"], c["verdict"]), known_text(c.get("among_known")), c.get("note", ""),
    ]


def known_text(k: dict[str, Any] | None, with_p: bool = True) -> str:
    """A claim's test among the requests both arms know: effect [interval] (n, p); ``with_p=False``: effect
    [interval], n (the Markdown table's column)."""
    if not k:
        return "-"
    if k.get("effect") is None:
        return f"n = {k['n']}: no estimate"
    ci = k["ci"]
    estimate = f"{number(k['effect'])} [{number(ci[0])}, {number(ci[1])}]"
    return f"{estimate} (n = {k['n']}, p = {k['p']:.3g})" if with_p else f"{estimate}, n = {k['n']}"


def claims_section(summary: dict[str, Any]) -> html.Section | None:
    claims = summary.get("claims")
    if not claims:
        return None
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICT_TEXT}
    return html.Section(
        "The sources' claims, tested",
        paragraphs=[
            "Each claim is a test fixed before the run (claims.json in the run directory): its metric, arms, "
            "attacks, direction, test and alpha. Holds: significant in the claimed direction with the estimate in "
            "the claimed range; refuted: significant the other way, or the interval entirely outside the claimed "
            "region; inconclusive: neither -- the MDE (the effect this n detects with 80% power) says how large an "
            "effect the study could have seen. The verdict reads raw attack success; beside it, the same test among "
            "the requests every compared arm can write as plain text (the knowledge stage), where the run has it.",
            "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".",
        ],
        tables=[(["claim", "test (fixed before the run)", "arms", "n", "effect", "95% CI", "p", "MDE", "verdict",
                  "among requests every arm knows", "note"], [claim_row(c) for c in claims])],
    )


def success_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, arm in summary["arms"].items():
        seen = arm.get("detection", {}).get("sees_success")
        if not seen:
            continue
        for det, e in seen["detectors"].items():
            gains = e.get("gain_over", {})
            rows.append([
                name, det, auroc_text(e["auroc_jailbroken_vs_failed"]),
                auroc_text(e["auroc_jailbroken_vs_failed_same_requests"]),
                "; ".join(f"vs {ref}: TPR {_gain(g['tpr_gain'])}" +
                          (f", AUROC {_gain(g['success_auroc_gain'])}" if "success_auroc_gain" in g else "")
                          for ref, g in gains.items()) or ("(a request-only reading)" if "gain_over" not in e
                                                           else "-"),
            ])
    return rows


def _gain(g: dict[str, Any]) -> str:
    return f"{g['estimate']:+.3f} [{g['ci'][0]:+.3f}, {g['ci'][1]:+.3f}]"


def success_table() -> list[str]:
    return ["model/sampler", "detector", "AUROC jailbroken vs failed attacks",
            "same requests only (both outcomes)", "gain over request-only readings at matched FPR"]


def knowledge_section(summary: dict[str, Any]) -> html.Section | None:
    rows = [[name, str(k["requests"]), rate_text(k["ceiling"]), rate_text(k["asr_raw"]), rate_text(k["asr_known"]),
             ", ".join(f"{f} {rate_text(r)}" for f, r in k["per_format"].items())]
            for name, arm in summary["arms"].items() if (k := arm.get("knowledge"))]
    if not rows:
        return None
    return html.Section(
        "Attack success beside what each arm knows",
        paragraphs=["A model that cannot write the harm is ignorant, not safe. Each arm was asked every attacked "
                    "request as plain text, without the chat template and under its own decoding (toy: the "
                    "pretraining formats, known = half the procedure's steps in any format; real models: the "
                    "request as a completion, judged by the harm judge). Requests are counted once, not per "
                    "phrasing or attack; attack success counts every attacked row."],
        tables=[(["model/sampler", "attacked requests", "knows (ceiling)", "attack success (raw)",
                  "attack success among known requests", "knows, per format"], rows)],
    )
