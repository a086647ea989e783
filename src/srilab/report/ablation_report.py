"""The ablations of a run (``srilab ablate``: ``RUN_DIR/ablations/ablations.json``) as a report section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srilab.report import html
from srilab.report.html import auroc_text, rate_text

#: The guard-variant table (the study report's and the ablations'), and what its columns mean.
GUARD_HEADER = ["model/sampler", "variant", "role", "CV FPR (calibration)", "FPR seen", "FPR unseen",
                "TPR jailbroken", "AUROC jailbroken vs unseen"]
GUARD_NOTE = ("'CV FPR' is all the choice reads (leave one calibration topic group out: threshold on the others, "
              "FPR on the held-out group); the paper's guard stays unless its CV FPR exceeds 3x the nominal "
              "rate and a variant's is lower. The other columns are evaluation, never read by the choice.")
#: What a guard's threshold is set on, per ``sri.threshold`` rule.
THRESHOLD_TEXT = {"topic_heldout": "out-of-topic benign scores (guard_fit and calibration rows, each scored by a "
                                   "detector fitted without its topic group)",
                  "calibration": "the calibration rows' scores (the paper's rule)"}


def variant_table(comparison: dict[str, Any]) -> dict[str, Any]:
    """``srilab.study.guard_variants.compare_variants``' result as the table's entry: ``paper``, ``chosen`` and per
    variant its CV FPR, FPR on seen / unseen topics and TPR on jailbroken answers at the guard's threshold, and the
    AUROC of jailbroken vs unseen-topic benign answers."""
    cv = comparison["selection"]["cv"]
    return {"paper": comparison["paper"], "chosen": comparison["chosen"], "variants": {
        name: {"cv_fpr": cv[name]["fpr"], "fpr_seen": v["at_quantile"]["fpr_eval_seen_topics"],
               "fpr_unseen": v["at_quantile"]["fpr_eval_unseen_topics"],
               "tpr_jailbroken": v["at_quantile"]["tpr_jailbroken"],
               "auroc_jailbroken_vs_unseen": v["auroc_jailbroken_vs_eval_unseen_topics"]}
        for name, v in comparison["variants"].items()}}


def guard_rows_for(arm: str, table: dict[str, Any]) -> list[list[str]]:
    """The rows of :data:`GUARD_HEADER` for one arm's :func:`variant_table`."""
    rows = []
    for name, m in table["variants"].items():
        role = " + ".join(x for x, on in (("paper", name == table["paper"]), ("chosen", name == table["chosen"])) if on)
        rows.append([arm, name, role or "-", rate_text(m["cv_fpr"]), rate_text(m["fpr_seen"]),
                     rate_text(m["fpr_unseen"]), rate_text(m["tpr_jailbroken"]),
                     auroc_text(m["auroc_jailbroken_vs_unseen"])])
    return rows


def rotation_text(rot: dict[str, Any], guard: str) -> str:
    """``srilab.study.guard_rotation.rotate``'s pooled FPR of ``guard`` ("study" or "paper") in one phrase."""
    p = rot["pooled"][guard]
    lo, hi = p["group_ci"]
    boot = "" if lo is None else f", group bootstrap [{100 * lo:.1f}, {100 * hi:.1f}]"
    who = "the study's guard" if guard == "study" else "the paper's guard and threshold"
    splits = ", ".join(f"{sp[guard]['fpr_unseen']['k']}/{sp[guard]['fpr_unseen']['n']}" for sp in rot["splits"])
    tpr = ", ".join(f"{sp[guard]['tpr_jailbroken']['k']}/{sp[guard]['tpr_jailbroken']['n']}" for sp in rot["splits"]
                    if sp[guard]["tpr_jailbroken"]["n"])
    return f"{who} {rate_text(p)}{boot} (per split {splits}" + (f"; jailbroken flagged {tpr})" if tpr else ")")


def _png(path: str | Path) -> bytes | None:
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


def ablation_section(result: dict[str, Any], out_dir: Path) -> html.Section:
    """Every ablation variant per arm (AUROC vs unseen topics, TPR and unseen FPR at the protocol's FPR), the
    guard's variants on unseen topics with the calibration-only choice, and the figures."""
    fpr = f"{100 * result['fpr']:g}%"
    rows, guard_rows = [], []
    for name, arm in result["arms"].items():
        for v in result["variants"]:
            m = arm["variants"].get(v)
            if m is not None:
                rows.append([name, v, auroc_text(m["auroc_jailbroken_vs_unseen"]), rate_text(m["tpr_jailbroken"]),
                             rate_text(m["fpr_unseen"])])
        if arm.get("guard"):
            guard_rows += guard_rows_for(name, arm["guard"])
    sec = html.Section(
        "Ablations (srilab ablate)",
        paragraphs=[f"The run's protocol throughout: the same items in the same roles, thresholds on the run's "
                    f"calibration rows at {fpr} FPR. SRI read at other layers, the first step's state alone "
                    "(static probe), the answer's text alone (TF-IDF)."],
        tables=[(["model/sampler", "variant", "AUROC jailbroken vs unseen benign", f"TPR jailbroken @ {fpr}",
                  "FPR unseen"], rows)],
    )
    if guard_rows:
        g = next(a["guard"] for a in result["arms"].values() if a.get("guard"))
        sec.paragraphs.append(f"Second table, the SRI guard on unseen topics: every variant at the "
                              f"{100 * g['quantile']:g}% quantile "
                              f"of {THRESHOLD_TEXT[g.get('threshold_rule', 'calibration')]}. {GUARD_NOTE}")
        sec.tables.append((GUARD_HEADER, guard_rows))
        rot_rows = [[name, str(len(r["splits"])), str(r["groups"]), rotation_text(r, "study"),
                     rotation_text(r, "paper")]
                    for name, arm in result["arms"].items() if (r := (arm.get("guard") or {}).get("rotation"))]
        if rot_rows:
            sec.paragraphs.append("Third table, every benign topic group unseen once (srilab.study.guard_rotation): "
                                  "the whole fit "
                                  "(centres, detector, variant choice, threshold) repeated with each split's groups "
                                  "held out; split 0 is the run's own. Rows of a group move together, so the "
                                  "group-bootstrap interval is the one to read.")
            sec.tables.append((["model/sampler", "splits", "groups", "study's guard: FPR unseen",
                                "paper's guard and threshold"], rot_rows))
    figures = [("ablations: AUROC, TPR and unseen FPR per variant", out_dir / "ablations.png")]
    for name, arm in result["arms"].items():
        for f in (arm.get("guard") or {}).get("figures", []):
            figures.append((f"{name}: {Path(f).stem.rsplit('_', 1)[-1]}", Path(f)))
    for caption, path in figures:
        png = _png(path)
        if png is not None:
            sec.figures.append((caption, png))
    return sec
