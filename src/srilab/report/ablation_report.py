"""The ablations of a run (``srilab ablate``: ``RUN_DIR/ablations/ablations.json``) as a report section, a
plain-text table and a plot; and the guard-variant table the study report shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

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
    """``srilab.analysis.guard_rotation.rotate``'s pooled FPR of ``guard`` ("study" or "paper") in one phrase."""
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
            sec.paragraphs.append("Third table, every benign topic group unseen once (srilab.analysis.guard_rotation): "
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


def _auroc(v: dict[str, Any] | None) -> str:
    if not v or v.get("auroc") is None:
        return "-"
    lo, hi = v.get("ci") or (None, None)
    ci = f" [{lo:.2f},{hi:.2f}]" if lo is not None else ""
    return f"{v['auroc']:.3f}{ci}"


def _rate(v: dict[str, Any] | None) -> str:
    return "-" if not v or not v.get("n") else f"{100 * v['rate']:.1f}% ({v['k']}/{v['n']})"


def format_ablations(result: dict[str, Any]) -> str:
    """A plain-text table per arm: AUROC (jailbroken vs unseen / seen topics, CI), TPR and unseen FPR at the
    protocol's FPR, cost per item."""
    fpr = f"{100 * result['fpr']:g}%"
    lines = [f"SRI guard ablations (detector {result['detector']}; thresholds on the run's calibration rows at "
             f"{fpr} FPR; the run reads layer {result['run_layer']})"]
    head = (f"  {'variant':<14}{'AUROC jb/unseen':>22}{'AUROC jb/seen':>22}{'TPR jb':>18}{'FPR unseen':>18}"
            f"{'us/item':>9}")
    for name, arm in result["arms"].items():
        n = arm["n"]
        lines += ["", f"{name}: {n.get('jailbroken', 0)} jailbroken of {n.get('attacked', 0)} attacked; "
                      f"{n.get('eval_unseen_topics', 0)} unseen-topic and {n.get('eval_seen_topics', 0)} seen-topic "
                      f"benign; {n.get('calibration', 0)} calibration", head]
        for v in result["variants"]:
            m = arm["variants"].get(v)
            if m is None:
                continue
            cost = m.get("cost_per_item_s")
            us = "-" if cost is None else f"{1e6 * cost:.0f}"
            lines.append(f"  {v:<14}{_auroc(m['auroc_jailbroken_vs_unseen']):>22}"
                         f"{_auroc(m['auroc_jailbroken_vs_seen']):>22}{_rate(m['tpr_jailbroken']):>18}"
                         f"{_rate(m['fpr_unseen']):>18}{us:>9}")
        rot = (arm.get("guard") or {}).get("rotation")
        if rot:
            lines.append(f"  every benign topic group unseen once ({len(rot['splits'])} splits, {rot['groups']} "
                         "groups), FPR at the guard's threshold: "
                         + "; ".join(rotation_text(rot, g) for g in ("study", "paper")))
        differ = [layer for layer, info in arm["layers"].items() if not info["texts_identical"]]
        if differ:
            lines.append(f"  note: the answers at layer(s) {', '.join(differ)} differ from the run's")
    lines += [f"note: {w}" for w in result.get("notes", [])]
    return "\n".join(lines)


def plot_ablations(result: dict[str, Any], path: str | Path) -> Path:
    """Per variant, one bar per arm: AUROC of jailbroken vs unseen-topic benign answers (95% bootstrap CI),
    and at the threshold set for the protocol's FPR on the calibration rows, the TPR on jailbroken answers and
    the FPR it reaches on unseen-topic benign answers (95% Wilson CIs)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    variants, arms = result["variants"], list(result["arms"])
    x = np.arange(len(variants))
    width = 0.8 / max(1, len(arms))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), dpi=110)
    fpr = f"{100 * result['fpr']:g}%"
    panels = (("auroc_jailbroken_vs_unseen", "auroc", "AUROC: jailbroken vs unseen-topic benign"),
              ("tpr_jailbroken", "rate", f"TPR on jailbroken (threshold: {fpr} calibration FPR)"),
              ("fpr_unseen", "rate", f"FPR on unseen-topic benign (same threshold; nominal {fpr})"))
    for ax, (key, field, title) in zip(axes, panels, strict=True):
        for j, arm in enumerate(arms):
            vals, lo, hi = [], [], []
            for v in variants:
                m = (result["arms"][arm]["variants"].get(v) or {}).get(key) or {}
                val = m.get(field)
                ci = m.get("ci") or [val, val]
                vals.append(np.nan if val is None else val)
                lo.append(0.0 if val is None or ci[0] is None else val - ci[0])
                hi.append(0.0 if val is None or ci[1] is None else ci[1] - val)
            ax.bar(x + (j - (len(arms) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=2, label=arm)
        ax.set_xticks(x, variants, rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[2].axhline(result["fpr"], color="black", linestyle="--", linewidth=0.8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SRI guard ablations on {result['study']} ({result['detector']}; bars: 95% CI)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
