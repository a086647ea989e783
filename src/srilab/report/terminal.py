"""The terminal summary of a study (``srilab run``, ``srilab demo``, ``srilab report``): short enough to read in
a terminal (the quick demo's five arms fit in about 40 lines), everything else in ``report.html``.

It opens with the sources' claims (the verdicts not tested folded into one line), then the judges and their
measured validity, then one compact block per arm: what the model knows (the knowledge ceiling), attack success
per attack, refusal per set (and capability), and the SRI guard's AUROC and false positive rates with their
intervals and its overhead. Small-n breakdowns (over-refusal per XSTest type, per-cell detection, the guard's
variants) are in the report only.
"""

from __future__ import annotations

from typing import Any

from srilab.report.html import auroc_text, rate_text


def short_rate(r: dict[str, Any], *, ci: bool = False) -> str:
    """``12% 3/24``, with ``ci`` ``12% 3/24 [4-31]`` (the Wilson 95% interval in percent)."""
    if r.get("rate") is None:
        return "n/a"
    interval = f" [{100 * r['ci'][0]:.0f}-{100 * r['ci'][1]:.0f}]" if ci and r.get("ci") else ""
    return f"{100 * r['rate']:.0f}% {r['k']}/{r['n']}{interval}"


def _claims(summary: dict[str, Any]) -> list[str]:
    claims = summary.get("claims") or []
    if not claims:
        return []
    lines = ["the sources' claims, tested (fixed before the run: claims.json):"]
    untested = [c["id"] for c in claims if c.get("verdict") == "not tested"]
    for c in claims:
        if c.get("verdict") == "not tested":
            continue
        ci = c.get("ci")
        effect = "-" if c.get("effect") is None else f"{c['effect']:.3f}"
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else ""
        mde = f", MDE {c['mde']:.3f}" if c.get("mde") is not None else ""
        lines.append(f"  {c['verdict']:<12} {c['id']:<28} n={c['n']:<4} effect {effect}{interval}{mde}")
    if untested:
        lines.append(f"  not tested (this study lacks their arms or sets): {', '.join(untested)}")
    return lines


def _arm(name: str, arm: dict[str, Any], harmful: str | None, separate: bool) -> list[str]:
    head = name
    if k := arm.get("knowledge"):
        head += (f"  (knows {short_rate(k['ceiling'])} of the harmful tasks; attack success among known "
                 f"{rate_text(k['asr_known'])})")
    asr, refusal = [], []
    for cell, e in arm["cells"].items():
        label = cell.split("/", 1)[1] if e.get("role") == "harmful" and cell.startswith(f"{harmful}/") else cell
        if "asr" in e:
            asr.append(f"{label} {short_rate(e['asr'], ci=True)}")
        if e.get("role") != "harmful" or e.get("attack") == "direct":
            partial = f" (partial {short_rate(e['partial_refusal'])})" if separate and "partial_refusal" in e else ""
            refusal.append(f"{cell.removesuffix('/direct')} {short_rate(e['refusal'])}{partial}")
    lines = [head]
    if asr:
        lines.append(f"  attack success  {' | '.join(asr)}")
    lines.append(f"  refusal         {' | '.join(refusal)}")
    if capability := [f"{what.replace(' correct (eval items)', '')} {short_rate(r)}"
                      for what, r in arm.get("capability", {}).items()]:
        lines.append(f"  correct         {' | '.join(capability)}")
    det = arm.get("detection")
    if det:
        sri, own = det["detectors"]["sri_guard"], det["at_own_threshold"]
        auroc = auroc_text(sri["auroc_jailbroken_vs_eval_unseen_topics"])
        lines.append(
            f"  SRI guard       AUROC jailbroken vs unseen benign {auroc}"
            f"; FPR seen {rate_text(own['flagged_eval_seen_topics'])}, unseen "
            f"{rate_text(own['flagged_eval_unseen_topics'])}; overhead {100 * det['overhead_share']:.2g}%"
        )
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """The terminal summary (see the module docstring)."""
    lines = _claims(summary)
    lines.append(f"attack success: {summary['asr_basis']}; rates % k/n (Wilson 95% intervals, the rest: report.html)")
    for what, v in summary.get("judge_validity", {}).items():
        lines.append(f"  {what.replace('_', ' ')} judge {v['judge'] or '-'}: {v['text']}")
    harmful = (summary.get("config", {}).get("sri") or {}).get("harmful")
    separate = summary.get("partial_refusal") == "separate"
    for name, arm in summary["arms"].items():
        lines += _arm(name, arm, harmful, separate)
    return "\n".join(lines)
