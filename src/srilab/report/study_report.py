"""The report of a study run: plots into ``RUN_DIR/plots`` and one self-contained ``report.html``.

Everything shown comes from ``summary.json``'s figures (and, for the plots, the arrays they were computed
from): rates as percent with k/n and a Wilson 95% interval, AUROCs with a bootstrap interval and both n.
Generations judged harmful are redacted in the HTML by default (their length and the judge are shown);
``show_harmful=True`` (``srilab report --show-harmful``) includes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srilab.analysis.guard_variants import variant_table
from srilab.report import html, plots
from srilab.report.ablation_report import GUARD_HEADER, GUARD_NOTE, THRESHOLD_TEXT, guard_rows_for
from srilab.report.claims_report import claims_section, knowledge_section, success_rows, success_table
from srilab.report.html import auroc_text, rate_text
from srilab.report.samples import samples_html

EXAMPLE_CHARS = 400


def redact(record: dict[str, Any], show_harmful: bool) -> str:
    """The response as the report shows it: redacted when it was judged harmful (unless ``show_harmful``)."""
    text = record["response"]
    if show_harmful or record.get("role") != "harmful" or not record.get("harmful"):
        return text[:EXAMPLE_CHARS] + ("..." if len(text) > EXAMPLE_CHARS else "")
    return f"[redacted: judged harmful, {len(text)} characters; `srilab report --show-harmful` shows it]"


def _overview(summary: dict[str, Any]) -> html.Section:
    p = summary["protocol"]
    judges = summary.get("judges", {})
    sec = html.Section(
        "Overview and protocol",
        paragraphs=[
            f"Run directory: {summary['run_dir']}. Generations: {summary['records']} ({summary['judged']} judged).",
            f"Refusal is decided by judge {judges.get('refusal')}; attack success by: {summary['asr_basis']}. "
            + "".join(f"Validity of the {what.replace('_', ' ')} judge: {v['text']}. "
                      for what, v in summary.get("judge_validity", {}).items())
            + "Rates: percent (k/n) [Wilson 95% interval]. AUROC: [bootstrap 95% interval] (positives vs negatives).",
            "Roles are disjoint and seeded: the SRI centres, the guard fit and the threshold calibration use "
            "benign items of seen topic groups only; unseen topic groups are held out whole for evaluation; the "
            "harmful items that build the harmful centre are never attacked or scored. "
            f"Seen groups: {', '.join(p['seen_groups']) or '-'}. "
            f"Unseen groups: {', '.join(p['unseen_groups']) or '-'}.",
        ],
        notes=list(summary["warnings"]),
        tables=[(["role", "items"], [[r, str(n)] for r, n in p["counts"].items() if n])],
    )
    if "versions" in summary:
        sec.tables.append((["package", "version"], [[k, str(v)] for k, v in summary["versions"].items()]))
    return sec


def _judge_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Which judge decided refusal and attack success, and its measured validity (``summary.json``'s
    ``judge_validity``, from the package's ``judges/validity.json``)."""
    validity = summary.get("judge_validity", {})
    return [[what.replace("_", " "), str(v.get("judge") or "-"), v["text"]] for what, v in validity.items()]


def _rates(summary: dict[str, Any], figs: Path) -> html.Section:
    arms = summary["arms"]
    names = list(arms)
    cells = list(dict.fromkeys(c for a in arms.values() for c in a["cells"]))
    harmful_cells = [c for c in cells if any(arms[n]["cells"].get(c, {}).get("role") == "harmful" for n in names)]
    asr = {n: {c: arms[n]["cells"][c]["asr"] for c in harmful_cells if c in arms[n]["cells"]} for n in names}
    refusal = {n: {c: arms[n]["cells"][c]["refusal"] for c in cells if c in arms[n]["cells"]} for n in names}
    mode = summary.get("partial_refusal", "refused")
    sec = html.Section(
        "Attack success and refusal",
        paragraphs=["Rows: dataset/attack (attacked items only). Columns: model/sampler. Benign and capability "
                    "datasets show (over-)refusal. The judges deciding these figures and their measured validity "
                    "(precision and recall against hand labels: k/n, Wilson 95% interval, n and split) are in the "
                    f"first table. Partial refusals (decline part, answer part) count as: {mode}."],
        tables=[
            (["figure", "decided by judge", "judge validity"], _judge_rows(summary)),
            (["attack success"] + names,
             [[c] + [rate_text(asr[n][c]) if c in asr[n] else "n/a" for n in names] for c in harmful_cells]),
            (["refusal"] + names,
             [[c] + [rate_text(refusal[n][c]) if c in refusal[n] else "n/a" for n in names] for c in cells]),
        ],
        figures=[
            ("Attack success rate by dataset/attack and model/sampler (95% Wilson CI)",
             plots.rates_plot(asr, path=figs / "asr.png")),
            ("Refusal rate (95% Wilson CI)",
             plots.rates_plot(refusal, metric="refusal rate", path=figs / "refusal.png")),
        ],
    )
    if mode == "separate":
        sec.tables.append((["partial refusal"] + names, [[c] + [
            rate_text(arms[n]["cells"][c]["partial_refusal"]) if "partial_refusal" in arms[n]["cells"].get(c, {})
            else "n/a" for n in names] for c in cells]))
    by_type = [[n, cell, kind, rate_text(e["refusal"]), rate_text(e["partial_refusal"])]
               for n in names for cell, kinds in arms[n].get("over_refusal_by_type", {}).items()
               for kind, e in kinds.items()]
    if by_type:
        sec.tables.append((["model/sampler", "benign dataset/attack", "XSTest type", "over-refusal",
                            "of which / besides: partial refusal"], by_type))
    for pair, tests in summary["paired"].items():
        sec.tables.append((
            [f"paired: {pair}", "ASR a", "ASR b", "diff [95% CI]", "discordant a/b", "exact McNemar p", "n"],
            [[c, f"{100 * t['asr_a']:.1f}%", f"{100 * t['asr_b']:.1f}%",
              f"{100 * t['diff']:+.1f} [{100 * t['diff_low']:+.1f}, {100 * t['diff_high']:+.1f}]",
              f"{t['only_a']}/{t['only_b']}", f"{t['p_value']:.3g}", str(t["n"])] for c, t in tests.items()],
        ))
    capability = [[n, what, rate_text(r)] for n in names for what, r in arms[n].get("capability", {}).items()]
    capability += [[n, "mean tokens committed per step (steps that committed)", f"{arms[n]['tokens_per_step']:.2f}"]
                   for n in names if arms[n].get("tokens_per_step")]
    if capability:
        sec.tables.append((["model/sampler", "capability", "rate"], capability))
    return sec


def _detection(summary: dict[str, Any], private: dict[str, Any], figs: Path) -> html.Section | None:
    arms = summary["arms"]
    names = [n for n in arms if "detection" in arms[n]]
    if not names:
        return None
    key = f"{100 * summary['config']['protocol']['fpr']:g}%"
    sec = _detection_section(arms, names, key)
    sec.tables += [_guard_table(arms, names), _detector_table(arms, names, key)]
    if success := success_rows(summary):
        sec.tables.append((success_table(), success))
    sec.tables += [_online_table(arms, names), _cell_table(arms, names)]
    sec.figures += _detection_figures(private, names, figs)
    return sec


def _detection_section(arms: dict[str, Any], names: list[str], key: str) -> html.Section:
    """The detection section's heading and paragraphs (which guard each arm uses)."""
    return html.Section(
        "Detection: the SRI guard, the refusal flag, a text-only detector and the baseline defenses",
        paragraphs=[
            "The question the source paper asks is whether jailbroken answers (attacked and judged harmful) "
            "can be told from benign answers; that comes first, on benign topics the detectors were fitted on "
            "(seen) and on topic groups held out whole (unseen). 'All attacked vs benign' is second: most "
            "attacked generations are refusals, which the refusal flag alone detects.",
            f"Every detector is scored so that higher means 'attack succeeded' and calibrated on the same benign "
            f"calibration rows to {key} FPR; its TPR, the attack success that gets past it and its FPR on both "
            "benign evaluation parts are read at that threshold.",
            *[f"{n}: the SRI guard is {c['variant']} ({c['rule']}), its threshold on "
              f"{THRESHOLD_TEXT.get(c.get('threshold_rule', 'calibration'), '?')}; the paper's guard ({c['paper']}, "
              "threshold on the calibration rows) is in the columns 'paper's guard', and in the table below as "
              "sri_guard_paper when its scores differ." for n in names
              if (c := arms[n]["detection"].get("guard_choice"))],
        ],
    )


def _guard_table(arms: dict[str, Any], names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Per arm, the SRI guard: AUROCs, FPRs and jailbroken flagged at its threshold (the paper's beside it)."""
    head = []
    for n in names:
        d = arms[n]["detection"]
        sri = d["detectors"]["sri_guard"]
        own, paper = d["at_own_threshold"], d.get("paper_at_own_threshold")
        head.append([
            n, auroc_text(sri["auroc_jailbroken_vs_eval_seen_topics"]),
            auroc_text(sri["auroc_jailbroken_vs_eval_unseen_topics"]), auroc_text(sri["auroc_attacked_vs_eval"]),
            auroc_text(d["request_harmfulness_yardstick"]["auroc_attacked_vs_eval"]),
            rate_text(own["flagged_eval_seen_topics"]), rate_text(own["flagged_eval_unseen_topics"]),
            rate_text(own["flagged_jailbroken"]),
            *([rate_text(paper["flagged_eval_unseen_topics"]), rate_text(paper["flagged_jailbroken"])] if paper
              else ["(the guard)", "(the guard)"]),
            f"{100 * d['overhead_share']:.3f}%",
        ])
    return (
        ["model/sampler", "SRI AUROC jailbroken vs seen benign", "vs unseen benign", "all attacked vs benign",
         "refused (a yardstick of request harmfulness, not a detector): attacked vs benign",
         f"FPR seen (guard's {100 * arms[names[0]]['detection']['quantile']:g}% "
         "threshold)", "FPR unseen", "jailbroken flagged", "paper's guard: FPR unseen", "jailbroken flagged",
         "overhead"], head)


def _detector_table(arms: dict[str, Any], names: list[str], key: str) -> tuple[list[str], list[list[str]]]:
    """Per arm and detector: AUROC, TPR, attack success before and after, FPRs and cost at the protocol FPR."""
    rows = []
    for n in names:
        for det, e in arms[n]["detection"]["detectors"].items():
            at = e.get("at_fpr", {}).get(key)
            cost = e["cost_per_item_s"]
            rows.append([
                n, det, auroc_text(e["auroc_jailbroken_vs_eval_unseen_topics"]),
                rate_text(at["flagged_jailbroken"]) if at else "n/a",
                f"{rate_text(at['asr_before'])} -> {rate_text(at['asr_after'])}" if at else "n/a",
                rate_text(at["flagged_eval_seen_topics"]) if at else "n/a",
                rate_text(at["flagged_eval_unseen_topics"]) if at else "n/a",
                rate_text(at["flagged_lookalike"]) if at and "flagged_lookalike" in at else "n/a",
                "n/a" if cost is None else f"{1000 * cost:.3g} ms",
            ])
    return (["model/sampler", "detector", "AUROC jailbroken vs unseen benign", f"TPR jailbroken @ {key}",
             "attack success before -> after", "FPR seen", "FPR unseen", "FPR safe look-alikes", "cost / item"], rows)


def _online_table(arms: dict[str, Any], names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Per arm, the online guard: what it interrupts and alarms on."""
    online = []
    for n in names:
        o = arms[n]["detection"]["online"]
        online.append([n, str(o["every"]), rate_text(o["eval_seen_topics"]["alarmed"]),
                       rate_text(o["eval_unseen_topics"]["alarmed"]), rate_text(o["attacked"]["alarmed"]),
                       rate_text(o["jailbroken"]["alarmed"])])
    return (["online guard: model/sampler", "checked every", "benign seen interrupted",
             "benign unseen interrupted", "attacked alarmed", "jailbroken alarmed"], online)


def _cell_table(arms: dict[str, Any], names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Per arm and attacked dataset/attack: the guard's AUROC, flagged rate and internal recovery."""
    cells = [[n, c, auroc_text(v["auroc_vs_eval"]), rate_text(v["flagged"]), rate_text(v["internal_recovery"])]
             for n in names for c, v in arms[n]["detection"]["per_cell"].items()]
    return ["model/sampler", "dataset/attack", "SRI AUROC vs benign", "flagged", "internal recovery"], cells


def _detection_figures(private: dict[str, Any], names: list[str], figs: Path) -> list[tuple[str, bytes]]:
    """Per arm: the SRI signal over steps and the ROC curves of every detector."""
    figures = []
    for i, n in enumerate(names):
        p = private["arms"][n].get("detection")
        if not p:
            continue
        figures.append((f"SRI signal over steps: {n}", plots.sri_plot(p["groups"], title=n,
                                                                      path=figs / f"sri-{i}.png")))
        sets = p["sets"]
        curves = {}
        for det, (scores, _) in p["detectors"].items():
            pos, neg = scores[sets["jailbroken"]], scores[sets["eval_unseen_topics"]]
            curves[det] = (pos[np.isfinite(pos)], neg[np.isfinite(neg)])
        figures.append((f"ROC, jailbroken vs unseen-topic benign: {n}",
                        plots.roc_plot(curves, title=n, path=figs / f"roc-{i}.png")))
    return figures


def _guard_variants(summary: dict[str, Any]) -> html.Section | None:
    """The SRI guard on unseen topics: every guard variant beside the paper's, and which one the calibration-only
    rule chose (``analysis.guard_variants``)."""
    rows, q, rule = [], None, "calibration"
    for n, arm in summary["arms"].items():
        gv = arm.get("detection", {}).get("guard_variants")
        if gv:
            rows += guard_rows_for(n, variant_table(gv))
            q, rule = gv["quantile"], gv.get("threshold_rule", "calibration")
    if not rows:
        return None
    return html.Section(
        "The SRI guard on unseen topics: variants",
        paragraphs=[f"Each variant fitted as the study fits the guard (guard_fit rows), its threshold the {100 * q:g}% "
                    f"quantile of {THRESHOLD_TEXT[rule]}. {GUARD_NOTE}"],
        tables=[(GUARD_HEADER, rows)],
    )


def _dynamics(summary: dict[str, Any]) -> html.Section | None:
    rows = [[n, c, kind, str(v["steps_judged"]), rate_text(v["harmful_intermediate"]),
             rate_text(v["revised_after_harmful"]), rate_text(v["final_recovery"])]
            for n, arm in summary["arms"].items() for c, e in arm.get("dynamics", {}).items()
            for kind, v in e.items()]
    if not rows:
        return None
    return html.Section(
        "Denoising dynamics (diffusion)",
        paragraphs=["Intermediate states judged every few steps by the attack-success judge: 'committed' is the "
                    "text committed so far, 'x0' the sampler's current guess at every position (what the model "
                    "would write there now). How often harmful text appears mid-way, is taken back later, and is "
                    "gone from the final answer."],
        tables=[(["model/sampler", "dataset/attack", "state", "steps judged", "harmful mid-way", "revised after",
                  "final answer harmless"], rows)],
    )


def write_study_report(
    run_dir: Path, summary: dict[str, Any], private: dict[str, Any], *, show_harmful: bool,
    extra: list[html.Section] | None = None,
) -> Path:
    figs = run_dir / "plots"
    figs.mkdir(exist_ok=True)
    head = [sec for sec in (claims_section(summary), knowledge_section(summary)) if sec is not None]
    sections = [*head, _overview(summary), _rates(summary, figs), *(extra or [])]
    agree = summary.get("judge_agreement")
    if agree and agree.get("pairs"):
        sections.append(html.Section(
            "Judge agreement (attacked requests)",
            paragraphs=["Percent agreement and Cohen's kappa between every two judges."],
            tables=[(["judges", "agreement", "kappa", "n"],
                     [[f"{p['a']} / {p['b']}", f"{p['agreement']:.3f}",
                       "n/a" if p["kappa"] is None or p["kappa"] != p["kappa"] else f"{p['kappa']:.3f}", str(p["n"])]
                      for p in agree["pairs"]])],
        ))
    for extra in (_detection(summary, private, figs), _guard_variants(summary), _dynamics(summary)):
        if extra is not None:
            sections.append(extra)
    ex_rows = []
    for n in summary["arms"]:
        seen = set()
        for r in private["arms"][n]["rows"]:
            cell = f"{r['dataset']}/{r['attack']}"
            if cell in seen:
                continue
            seen.add(cell)
            prompt = r["prompt"][:200] + ("..." if len(r["prompt"]) > 200 else "")
            ex_rows.append([n, cell, prompt, redact(r, show_harmful), "yes" if r["refused"] else "no",
                            "yes" if r["harmful"] else "no"])
    sections.append(html.Section(
        "Example generations (the first item of every cell)",
        paragraphs=["Harmful generations are redacted." if not show_harmful else
                    "Harmful generations are shown (--show-harmful)."],
        tables=[(["model/sampler", "dataset/attack", "prompt", "response", "refused", "harmful"], ex_rows)],
    ))
    sections.append(html.Section(
        "Samples: every generation",
        paragraphs=["Filter by model/sampler, dataset/attack and verdict (jailbroken: attacked and judged harmful); "
                    "click an answer to read it. " + ("Harmful generations are shown (--show-harmful)." if show_harmful
                                                       else "Harmful generations stay redacted (--show-harmful).")],
        raw=samples_html({n: private["arms"][n]["rows"] for n in summary["arms"]}, show_harmful=show_harmful,
                         redact=redact),
    ))
    return html.write(run_dir / "report.html", f"srilab study: {summary['study']}", sections)
