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
from srilab.analysis import diagnosis_plots as plots
from srilab.analysis.detection import activations, arm_centres, role_sets
from srilab.analysis.diagnosis_plots import Figures
from srilab.analysis.guard_rotation import rotate
from srilab.analysis.guard_variants import VariantFit, compare_variants
from srilab.analysis.summary import judged_rows, load_protocol, load_run
from srilab.errors import SrilabError
from srilab.sri.representation import features_from_distances
from srilab.sri.signal import step_distances
from srilab.sri.variants import PAPER, Variant, default_variants

__all__ = ["arm_inputs", "contribution", "diagnose", "effects", "fit_group_effect", "spread"]


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
    The figures: :mod:`srilab.analysis.diagnosis_plots`.
    """
    d = arm_inputs(run_dir, arm)
    cfg, sets, dist = d["cfg"], d["sets"], d["distances"]
    quantile, seed = float(cfg.sri.quantile), int(cfg.seed)
    out = Path(out_dir)
    figures = Figures(out, arm.replace("/", "_"))
    res: dict[str, Any] = {"arm": arm, "quantile": quantile, "n": {k: int(len(v)) for k, v in sets.items()},
                           "traced": {"layer": str(cfg.sri.layer), "pooling": str(cfg.sri.pooling),
                                      "note": "the run traces one layer and one pooling: neither can be varied here"},
                           "figures": figures.paths}
    s = features_from_distances(*dist, "sri", tau=0.1)
    z = features_from_distances(*dist, "log_ratio", tau=0.1)
    res["spread"] = spread(s, z, sets)
    figures.save(plots.spread_figure(arm, s, z, sets), "spread")
    res["contribution"], errs, threshold = contribution(s, sets, quantile, seed)
    figures.save(plots.contribution_figure(arm, errs, threshold, sets), "contribution")
    res["effects"] = effects(s, z, dist, sets, d["groups"], quantile, seed)
    figures.save(plots.effects_figure(arm, res["effects"]), "effects")
    comp = compare_variants(None, None, sets, d["harmful"], d["groups"], quantile=quantile, seed=seed,
                            n_boot=n_boot, distances=dist, variants=default_variants(str(cfg.sri.detector)),
                            threshold=cfg.sri.threshold, fits=fits)
    res["variants"] = comp
    figures.save(plots.variants_figure(arm, comp, quantile), "variants")
    if rotation:  # every benign topic group unseen once (srilab.analysis.guard_rotation)
        res["rotation"] = rotate(d, repeats=rotation, n_boot=n_boot)
        figures.save(plots.rotation_figure(arm, res["rotation"], quantile), "rotation")
    (out / f"{figures.stem}_diagnosis.json").write_text(json.dumps(res, indent=2, default=float) + "\n",
                                                         encoding="utf-8")
    return res


def spread(s: np.ndarray, z: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per benign part (guard_fit, eval seen, eval unseen): the per-step spread of s_t and the log-ratio."""
    return {
        name: {"s_median_iqr": float(np.median(np.subtract(*np.quantile(s[sel], [0.75, 0.25], axis=0)))),
               "s_min": float(s[sel].min()), "log_ratio_median": float(np.median(z[sel])),
               "log_ratio_median_iqr": float(np.median(np.subtract(*np.quantile(z[sel], [0.75, 0.25], axis=0))))}
        for name, sel in (("guard_fit", sets["guard_fit"]), ("eval_seen", sets["eval_seen_topics"]),
                          ("eval_unseen", sets["eval_unseen_topics"]))
        if len(sel)
    }


def contribution(
    s: np.ndarray, sets: dict[str, np.ndarray], quantile: float, seed: int,
) -> tuple[dict[str, Any], np.ndarray, float]:
    """The paper autoencoder's per-step share of the score: its numbers, the per-step errors and the threshold."""
    paper = PAPER.guard(quantile, seed).fit(s[sets["guard_fit"]], calibration=s[sets["calibration"]])
    errs = paper.detector.step_errors(paper.transform(s))  # type: ignore[attr-defined]
    unseen = sets["eval_unseen_topics"]
    numbers = {"std_at_floor_share": paper.detector.floored_share(),  # type: ignore[attr-defined]
               "top_steps_unseen": [int(i) for i in np.argsort(-errs[unseen].mean(axis=0))[:5]] if len(unseen) else []}
    return numbers, errs, float(paper.threshold)


def effects(
    s: np.ndarray, z: np.ndarray, dist: tuple[np.ndarray, np.ndarray], sets: dict[str, np.ndarray],
    groups: np.ndarray, quantile: float, seed: int,
) -> dict[str, Any]:
    """The unseen-topic FPR against tau, the representation, the threshold rule, the standardisation floor and
    the number of benign fit topic groups (:func:`fit_group_effect`)."""
    return {
        "tau": {f"{t:g}": _unseen_fpr(features_from_distances(*dist, "sri", tau=t), sets, PAPER, quantile, seed)
                for t in (0.03, 0.1, 0.3, 1.0, 3.0)},
        "representation_paper_ae": {
            rep: _unseen_fpr(features_from_distances(*dist, rep, tau=0.1), sets, Variant(rep, "autoencoder", "none"),
                             quantile, seed)
            for rep in ("sri", "log_ratio", "distances")
        },
        "threshold_rule": {  # the paper's guard, its threshold on in-topic or on out-of-topic scores
            "calibration": _unseen_fpr(s, sets, PAPER, quantile, seed),
            "topic_heldout": _unseen_fpr(s, sets, PAPER, quantile, seed, groups=groups),
        },
        "std_floor": {
            f"{f:g}": _unseen_fpr(s, sets, Variant("sri", "autoencoder", "none", (("std_floor", f),)), quantile, seed)
            for f in (0.001, 0.01, 0.03, 0.1, 0.3)
        },
        "fit_groups": fit_group_effect(s, z, sets, groups, quantile, seed),
    }


def fit_group_effect(
    s: np.ndarray, z: np.ndarray, sets: dict[str, np.ndarray], groups: np.ndarray, quantile: float, seed: int,
) -> dict[str, Any]:
    """The paper's guard and ``log_ratio+mahalanobis+robust`` fitted on 1, 2, 4, ... benign topic groups and all
    of them (two random picks of each size short of all)."""
    fit_groups = sorted(set(groups[sets["guard_fit"]]))
    rng = np.random.default_rng(seed)
    by_groups: dict[str, Any] = {}
    sizes = sorted({k for k in (1, 2, 4, 8, 16, 32) if k < len(fit_groups)} | {len(fit_groups)})
    for k in sizes:
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
    return by_groups
