"""Why the SRI guard flags benign requests of unseen topics: figures and numbers about one arm of a finished run
(issue 15; ``srilab ablate`` writes them into ``ablations/guard/``).

:func:`diagnose` reads the arm as the study builds it (:func:`arm_inputs`) and measures the effect of tau, of
the sigmoid, of the standardisation floor, of the threshold rule and of the number of benign fit topic groups
on the unseen-topic FPR (the sweeps set their threshold on the calibration rows, the paper's rule, so that one
thing moves at a time), then every guard variant (:func:`srilab.analysis.guard_variants.compare_variants`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from srilab import stats
from srilab.analysis.detection import activations, arm_centres, role_sets
from srilab.analysis.guard_rotation import rotate
from srilab.analysis.guard_variants import VariantFit, compare_variants
from srilab.analysis.summary import judged_rows, load_protocol, load_run
from srilab.errors import SrilabError
from srilab.sri.representation import features_from_distances
from srilab.sri.signal import step_distances
from srilab.sri.variants import PAPER, Variant, default_variants

__all__ = ["arm_inputs", "diagnose"]


def arm_inputs(run_dir: str | Path, arm: str) -> dict[str, Any]:
    """Rows, sets, centres, activations and distances of ``arm`` ("model/sampler") as the study builds them."""
    run, cfg, records, verdicts = load_run(run_dir)
    judged, _ = judged_rows(records, verdicts, cfg, load_protocol(run))
    rows = [r for r in judged if f"{r['model']}/{r['sampler']}" == arm]
    if not rows:
        arms = sorted({f"{r['model']}/{r['sampler']}" for r in judged})
        raise SrilabError(f"no judged generations of arm {arm!r} in {run_dir}: arms are {arms}")
    sets = role_sets(rows)
    acts = activations(run, rows)
    centres, _ = arm_centres(rows, acts, sets, cfg, [])
    return {"cfg": cfg, "rows": rows, "sets": sets, "harmful": np.array([r["harmful"] for r in rows], dtype=bool),
            "acts": acts, "centres": centres, "groups": np.array([str(r.get("group")) for r in rows]),
            "distances": step_distances(acts, centres)}


def _unseen_fpr(X: np.ndarray, sets: dict[str, np.ndarray], variant: Variant, quantile: float, seed: int,
                fit_idx: np.ndarray | None = None, groups: np.ndarray | None = None) -> dict[str, Any]:
    """FPR on both benign evaluation parts and TPR on jailbroken answers; the threshold on the calibration rows,
    or (``groups`` given) on out-of-topic scores (the ``topic_heldout`` rule)."""
    fit, cal = (sets["guard_fit"] if fit_idx is None else fit_idx), sets["calibration"]
    by_topic = None if groups is None else (groups[fit], groups[cal])
    guard = variant.guard(quantile, seed).fit(X[fit], calibration=X[cal], groups=by_topic)
    s = guard.score(X)
    return {"seen": stats.rate(s[sets["eval_seen_topics"]] > guard.threshold),
            "unseen": stats.rate(s[sets["eval_unseen_topics"]] > guard.threshold),
            "tpr_jailbroken": stats.rate(s[sets["jailbroken"]] > guard.threshold)}


def diagnose(
    run_dir: str | Path, arm: str, out_dir: str | Path, *, n_boot: int = 200,
    fits: dict[str, VariantFit] | None = None, rotation: int = 1,
) -> dict[str, Any]:
    """Figures (PNG) and numbers (``diagnosis.json``) on why the guard flags benign unseen-topic requests.

    For ``arm`` ("model/sampler") of a finished run: the spread of s_t and of the log-ratio per step on
    seen vs unseen benign evaluation rows; the paper autoencoder's per-step share of the score; the unseen
    FPR against tau, the sigmoid (vs the raw log-ratio), the standardisation floor and the number of benign
    fit topic groups; and :func:`compare_variants` (``fits``: the arm's variants as the study fitted them,
    ``guard_fits`` of :func:`srilab.analysis.detection.arm_detection`'s private output, else fitted here) and the
    guard refitted with every benign topic group held out once, ``rotation`` times with other draws (0: not;
    :func:`srilab.analysis.guard_rotation.rotate`). Pooling
    and layer: only the ones the run traced (one of each, recorded in the JSON); this function cannot vary them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = arm_inputs(run_dir, arm)
    cfg, sets, groups, dist = d["cfg"], d["sets"], d["groups"], d["distances"]
    quantile, seed = float(cfg.sri.quantile), int(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = arm.replace("/", "_")

    res: dict[str, Any] = {"arm": arm, "quantile": quantile, "n": {k: int(len(v)) for k, v in sets.items()},
                           "traced": {"layer": str(cfg.sri.layer), "pooling": str(cfg.sri.pooling),
                                      "note": "the run traces one layer and one pooling: neither can be varied here"},
                           "figures": []}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / f"{stem}_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        res["figures"].append(str(path))

    s = features_from_distances(*dist, "sri", tau=0.1)
    z = features_from_distances(*dist, "log_ratio", tau=0.1)
    seen, unseen = sets["eval_seen_topics"], sets["eval_unseen_topics"]
    steps = np.arange(s.shape[1])

    # 1. per-step spread of s_t and the log-ratio, seen vs unseen benign
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, X, label in ((axes[0], s, "s_t (tau=0.1)"), (axes[1], z, "log-ratio")):
        for sel, name, colour in ((sets["guard_fit"], "guard_fit", "grey"), (seen, "eval seen", "tab:blue"),
                                  (unseen, "eval unseen", "tab:orange"), (sets["jailbroken"], "jailbroken", "tab:red")):
            if len(sel):
                med = np.median(X[sel], axis=0)
                lo, hi = np.quantile(X[sel], [0.1, 0.9], axis=0)
                ax.plot(steps, med, color=colour, label=f"{name} (n={len(sel)})")
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{arm}: median and 10-90% band per step")
    save(fig, "spread")
    res["spread"] = {
        name: {"s_median_iqr": float(np.median(np.subtract(*np.quantile(s[sel], [0.75, 0.25], axis=0)))),
               "s_min": float(s[sel].min()), "log_ratio_median": float(np.median(z[sel])),
               "log_ratio_median_iqr": float(np.median(np.subtract(*np.quantile(z[sel], [0.75, 0.25], axis=0))))}
        for name, sel in (("guard_fit", sets["guard_fit"]), ("eval_seen", seen), ("eval_unseen", unseen))
        if len(sel)
    }

    # 2. the paper autoencoder's per-step contribution to the score
    paper = PAPER.guard(quantile, seed).fit(s[sets["guard_fit"]], calibration=s[sets["calibration"]])
    errs = paper.detector.step_errors(paper.transform(s))  # type: ignore[attr-defined]
    fig, ax = plt.subplots(figsize=(7, 4))
    for sel, name, colour in ((seen, "eval seen", "tab:blue"), (unseen, "eval unseen", "tab:orange"),
                              (sets["jailbroken"], "jailbroken", "tab:red")):
        if len(sel):
            ax.plot(steps, errs[sel].mean(axis=0) / errs.shape[1], color=colour, label=name)
    ax.axhline(paper.threshold / errs.shape[1], color="k", ls=":", label="threshold / S")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean contribution to the score")
    ax.legend(fontsize=7)
    ax.set_title(f"{arm}: paper autoencoder, per-step share of the score")
    save(fig, "contribution")
    res["contribution"] = {"std_at_floor_share": float(np.mean(paper.detector._std <= 0.01 + 1e-12)),  # type: ignore[attr-defined]
                           "top_steps_unseen": [int(i) for i in np.argsort(-errs[unseen].mean(axis=0))[:5]]
                           if len(unseen) else []}

    # 3. effects: tau, sigmoid vs log-ratio, the floor, the number of fit groups
    effects: dict[str, Any] = {}
    effects["tau"] = {f"{t:g}": _unseen_fpr(features_from_distances(*dist, "sri", tau=t), sets, PAPER, quantile, seed)
                      for t in (0.03, 0.1, 0.3, 1.0, 3.0)}
    effects["representation_paper_ae"] = {
        rep: _unseen_fpr(features_from_distances(*dist, rep, tau=0.1), sets, Variant(rep, "autoencoder", "none"),
                         quantile, seed)
        for rep in ("sri", "log_ratio", "distances")
    }
    effects["threshold_rule"] = {  # the paper's guard, its threshold on in-topic or on out-of-topic scores
        "calibration": _unseen_fpr(s, sets, PAPER, quantile, seed),
        "topic_heldout": _unseen_fpr(s, sets, PAPER, quantile, seed, groups=groups),
    }
    effects["std_floor"] = {
        f"{f:g}": _unseen_fpr(s, sets, Variant("sri", "autoencoder", "none", (("std_floor", f),)), quantile, seed)
        for f in (0.001, 0.01, 0.03, 0.1, 0.3)
    }
    fit_groups = sorted(set(groups[sets["guard_fit"]]))
    rng = np.random.default_rng(seed)
    by_groups: dict[str, Any] = {}
    sizes = sorted({k for k in (1, 2, 4, 8, 16, 32) if k < len(fit_groups)} | {len(fit_groups)})
    for k in sizes:  # 1, 2, 4, ... groups and all of them: two random picks of each size
        entries = []
        for _ in range(2 if k < len(fit_groups) else 1):
            pick = rng.choice(fit_groups, size=k, replace=False)
            fit_idx = sets["guard_fit"][np.isin(groups[sets["guard_fit"]], pick)]
            if len(fit_idx) < 2:
                continue
            entries.append({"groups": sorted(map(str, pick)), "n_fit": int(len(fit_idx)),
                            "paper": _unseen_fpr(s, sets, PAPER, quantile, seed, fit_idx),
                            "log_ratio+mahalanobis+robust": _unseen_fpr(
                                z, sets, Variant("log_ratio", "mahalanobis"), quantile, seed, fit_idx)})
        if entries:
            by_groups[str(k)] = entries
    effects["fit_groups"] = by_groups
    res["effects"] = effects

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, xlabel in ((axes[0], "tau", "tau"), (axes[1], "std_floor", "standardisation floor")):
        xs = [float(k) for k in effects[key]]
        for part, colour in (("seen", "tab:blue"), ("unseen", "tab:orange"), ("tpr_jailbroken", "tab:red")):
            ax.plot(xs, [effects[key][k][part]["rate"] or 0 for k in effects[key]], "o-", color=colour, label=part)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("flagged at the guard's threshold")
    axes[0].legend(fontsize=7)
    for name, colour in (("paper", "tab:orange"), ("log_ratio+mahalanobis+robust", "tab:green")):
        ks = sorted(by_groups, key=int)
        axes[2].plot([int(k) for k in ks],
                     [np.mean([e[name]["unseen"]["rate"] or 0 for e in by_groups[k]]) for k in ks], "o-",
                     color=colour, label=name)
    axes[2].set_xlabel("benign fit topic groups")
    axes[2].set_ylabel("FPR, eval unseen")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{arm}: what moves the unseen-topic FPR")
    save(fig, "effects")

    # 4. every variant, with the calibration-only choice
    comp = compare_variants(None, None, sets, d["harmful"], groups, quantile=quantile, seed=seed, n_boot=n_boot,
                            distances=dist, variants=default_variants(str(cfg.sri.detector)),
                            threshold=cfg.sri.threshold, fits=fits)
    res["variants"] = comp
    names = list(comp["variants"])
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = np.arange(len(names))
    bars = ((-0.25, "fpr_eval_seen_topics", "tab:blue"), (0.0, "fpr_eval_unseen_topics", "tab:orange"),
            (0.25, "tpr_jailbroken", "tab:red"))
    for off, part, colour in bars:
        ax.bar(xs + off, [comp["variants"][n]["at_quantile"][part]["rate"] or 0 for n in names], width=0.25,
               color=colour, label=part)
    ax.axhline(3 * (1 - quantile), color="k", ls=":", label="3x nominal")
    ax.set_xticks(xs, [n + (" *" if n == comp["chosen"] else "") for n in names], rotation=35, ha="right", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title(f"{arm}: variants at the guard's threshold (* = chosen on calibration data)")
    save(fig, "variants")
    # 5. every benign topic group unseen once (srilab.analysis.guard_rotation)
    if rotation:
        rot = rotate(d, repeats=rotation, n_boot=n_boot)
        res["rotation"] = rot
        has_jb = any(sp["study"]["tpr_jailbroken"]["n"] for sp in rot["splits"])
        fig, axes = plt.subplots(2 if has_jb else 1, 1, figsize=(9, 6.4 if has_jb else 3.8), squeeze=False)
        xs = np.arange(len(rot["splits"]))
        labels = [("the run's" if sp["own_protocol"] else f"draw {sp['repeat']}") + f"\n{len(sp['held_out'])} groups"
                  for sp in rot["splits"]]
        for off, name, colour in ((-0.2, "study", "tab:orange"), (0.2, "paper", "tab:grey")):
            p = rot["pooled"][name]
            pooled = f"pooled {100 * (p['rate'] or 0):.1f}% ({p['k']}/{p['n']})"
            axes[0][0].bar(xs + off, [sp[name]["fpr_unseen"]["rate"] or 0 for sp in rot["splits"]], width=0.4,
                           color=colour, label=f"{name} guard: {pooled}")
            if has_jb:
                axes[1][0].bar(xs + off, [sp[name]["tpr_jailbroken"]["rate"] or 0 for sp in rot["splits"]],
                               width=0.4, color=colour, label=f"{name} guard")
        axes[0][0].axhline(3 * (1 - quantile), color="k", ls=":", label="3x nominal")
        axes[0][0].set_ylabel("FPR, held-out topic groups")
        axes[0][0].legend(fontsize=7)
        axes[0][0].set_title(f"{arm}: every benign topic group unseen once per draw ({rot['groups']} groups, "
                             f"{rot['repeats']} draw(s))")
        if has_jb:
            axes[1][0].set_ylabel(f"jailbroken flagged (n={rot['splits'][0]['study']['tpr_jailbroken']['n']})")
            axes[1][0].set_ylim(0, 1.05)
            axes[1][0].legend(fontsize=7)
        for row in axes:
            row[0].set_xticks(xs, labels, fontsize=6)
        save(fig, "rotation")

    (out / f"{stem}_diagnosis.json").write_text(json.dumps(res, indent=2, default=float) + "\n", encoding="utf-8")
    return res
