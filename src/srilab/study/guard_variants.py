"""Which SRI guard generalises to benign requests of topics it has never seen (issue 15).

The paper's guard (s_t = sigmoid(log-ratio / 0.1), an autoencoder on columns standardised with a 0.01
floor) is compared with *variants*: a representation (:mod:`srilab.sri.representation`: ``sri``,
``log_ratio``, ``distances``) x a detector (``autoencoder``, ``mahalanobis``, ``knn``), all with robust
per-column scaling (median / IQR).

* :func:`select_variant` chooses one **on calibration data only**: it reads the ``guard_fit`` and
  ``calibration`` rows and nothing else. Leave one topic group out: the detector is refitted on the
  ``guard_fit`` rows of the other groups, its threshold is the guard's quantile of the ``calibration``
  scores of the other groups, and the benign rows (``guard_fit`` and ``calibration``) of the held-out group
  - a topic neither the detector nor the threshold saw - are scored against it. The pooled held-out FPR
  estimates the FPR on unseen topics. The paper's guard stays the choice while its CV FPR is at most
  ``3 x`` the nominal rate ``1 - quantile``; otherwise the variant with the lowest CV FPR (ties: the
  lowest mean held-out position among the in-fold calibration scores, then the listing order) replaces
  it, and only if its CV FPR is lower than the paper's.
* :func:`compare_variants` fits every variant as the study fits the guard (detector on ``guard_fit``,
  threshold on ``calibration``) and reports the evaluation figures, with the choice beside them.
* :func:`diagnose` writes figures and numbers about one arm of a run directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srilab import stats
from srilab.errors import SrilabError
from srilab.sri.guard import SRIGuard
from srilab.sri.representation import features_from_distances
from srilab.sri.signal import step_distances

__all__ = [
    "PAPER", "Variant", "check_variant", "choose_guard", "compare_variants", "default_variants", "diagnose",
    "select_variant", "variant_features",
]


@dataclass(frozen=True)
class Variant:
    """One guard configuration: representation, detector, scaling (and detector options)."""

    representation: str
    detector: str
    scaling: str = "robust"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.representation}+{self.detector}+{self.scaling}"

    def guard(self, quantile: float, seed: int) -> SRIGuard:
        return SRIGuard(
            self.detector, quantile=quantile, seed=seed, options=dict(self.options),
            representation=self.representation, scaling=self.scaling,
        )


PAPER = Variant("sri", "autoencoder", "none")


def default_variants(paper_detector: str = "autoencoder") -> list[Variant]:
    """The paper's guard first (with the study's detector), then every robust candidate."""
    out = [Variant("sri", paper_detector, "none")]
    for rep in ("sri", "log_ratio", "distances"):
        for det in ("autoencoder", "mahalanobis", "knn"):
            out.append(Variant(rep, det, "robust"))
    return out


def check_variant(name: str) -> str:
    """A valid ``sri.variant``: ``auto`` (:func:`select_variant` decides on calibration data), ``paper``, or the
    name of one of :func:`default_variants` (``representation+detector+scaling``)."""
    names = [v.name for v in default_variants()]
    if name in ("auto", "paper", *names):
        return name
    raise ValueError(f"unknown guard variant {name!r}: use auto, paper or one of {', '.join(names)}")


def choose_guard(
    distances: tuple[np.ndarray, np.ndarray], sets: dict[str, np.ndarray], groups: Sequence[str] | np.ndarray, *,
    variant: str, detector: str, quantile: float, seed: int, tau: float = 0.1,
) -> tuple[Variant | None, SRIGuard | None, dict[str, Any]]:
    """The study's guard when ``sri.variant`` is not ``paper``: ``(variant, fitted guard, choice)``, the first two
    None when the choice is the paper's guard (the caller keeps its own). ``auto`` runs :func:`select_variant`
    (reads ``guard_fit`` and ``calibration`` rows only); a named variant is used as is. ``choice``: the
    variant's name, the rule, and the leave-one-topic-out FPR of each candidate. Score rows with
    ``guard.score(variant_features(distances, variant))``."""
    variants = default_variants(detector)
    if variant == "auto":
        sel = select_variant(distances, sets, groups, quantile=quantile, seed=seed, tau=tau, variants=variants)
        name, rule = sel["chosen"], sel["rule"]
        cv = {k: v["fpr"] for k, v in sel["cv"].items()}
    else:
        name, rule, cv = variant, "named in the config (sri.variant)", {}
    choice = {"variant": name, "paper": variants[0].name, "rule": rule, "cv_fpr": cv}
    if name == variants[0].name:
        return None, None, choice
    v = next(v for v in variants if v.name == name)
    X = variant_features(distances, v, tau)
    guard = v.guard(quantile, seed).fit(X[sets["guard_fit"]], calibration=X[sets["calibration"]])
    return v, guard, choice


def variant_features(distances: tuple[np.ndarray, np.ndarray], variant: Variant, tau: float = 0.1) -> np.ndarray:
    """The rows' features under ``variant``'s representation (from the per-step distances)."""
    return _features(distances, variant.representation, tau)


def _features(distances: tuple[np.ndarray, np.ndarray], rep: str, tau: float) -> np.ndarray:
    return features_from_distances(distances[0], distances[1], rep, tau=tau)


def _cv_variant(
    X: np.ndarray, fit_idx: np.ndarray, cal_idx: np.ndarray, groups: np.ndarray, variant: Variant,
    quantile: float, seed: int,
) -> dict[str, Any]:
    """Leave-one-topic-group-out over the ``guard_fit`` and ``calibration`` rows only (see the module doc)."""
    flags: list[bool] = []
    positions: list[float] = []
    folds = 0
    for g in sorted(set(groups[fit_idx]) | set(groups[cal_idx])):
        f_in, c_in = fit_idx[groups[fit_idx] != g], cal_idx[groups[cal_idx] != g]
        held = np.concatenate([fit_idx[groups[fit_idx] == g], cal_idx[groups[cal_idx] == g]])
        if len(f_in) < 2 or len(c_in) < 1 or not len(held):
            continue
        guard = variant.guard(quantile, seed).fit(X[f_in], calibration=X[c_in])
        cal_scores = guard.score(X[c_in])
        held_scores = guard.score(X[held])
        flags.extend((held_scores > guard.threshold).tolist())
        positions.extend((cal_scores[None, :] < held_scores[:, None]).mean(axis=1).tolist())
        folds += 1
    fpr = stats.rate(np.array(flags, dtype=bool))
    return {"folds": folds, "fpr": fpr, "mean_position": float(np.mean(positions)) if positions else None}


def select_variant(
    distances: tuple[np.ndarray, np.ndarray], sets: dict[str, np.ndarray], groups: Sequence[str] | np.ndarray, *,
    quantile: float = 0.99, seed: int = 0, tau: float = 0.1, variants: Sequence[Variant] | None = None,
    max_ratio: float = 3.0,
) -> dict[str, Any]:
    """Choose a guard variant on calibration data only (see the module docstring for the rule).

    ``distances``: ``(d_harmful, d_harmless)`` per row and step (:func:`srilab.sri.signal.step_distances`);
    ``sets``: index arrays, of which only ``guard_fit`` and ``calibration`` are read; ``groups``: the topic
    group of every row. The first of ``variants`` (default :func:`default_variants`) is the paper's guard.
    Returns ``{"chosen", "rule", "nominal_fpr", "cv": {variant: {"folds", "fpr", "mean_position"}}}``.
    """
    variants = list(variants or default_variants())
    groups = np.asarray(groups).astype(str)
    fit_idx, cal_idx = np.asarray(sets["guard_fit"], dtype=int), np.asarray(sets["calibration"], dtype=int)
    read = np.concatenate([fit_idx, cal_idx])
    # only these rows are ever looked at: a view of the two roles, re-indexed
    local = (distances[0][read], distances[1][read])
    lfit, lcal = np.arange(len(fit_idx)), len(fit_idx) + np.arange(len(cal_idx))
    lgroups = groups[read]
    nominal = 1.0 - quantile
    cv: dict[str, Any] = {}
    for v in variants:
        cv[v.name] = _cv_variant(_features(local, v.representation, tau), lfit, lcal, lgroups, v, quantile, seed)

    def fpr_of(name: str) -> float:
        r = cv[name]["fpr"]["rate"]
        return np.inf if r is None else float(r)

    paper = variants[0].name
    if fpr_of(paper) <= max_ratio * nominal:
        chosen, why = paper, f"the paper's guard's CV FPR is within {max_ratio:g}x the nominal rate"
    else:
        order = {v.name: i for i, v in enumerate(variants)}
        best = min(cv, key=lambda n: (fpr_of(n), cv[n]["mean_position"] or 1.0, order[n]))
        if fpr_of(best) < fpr_of(paper):
            chosen, why = best, "lowest leave-one-topic-out FPR on guard_fit + calibration rows"
        else:
            chosen, why = paper, "no variant has a lower leave-one-topic-out FPR than the paper's guard"
    return {"chosen": chosen, "rule": why, "nominal_fpr": nominal, "max_ratio": max_ratio,
            "rows_read": int(len(read)), "cv": cv}


def _tpr_block(scores: np.ndarray, sets: dict[str, np.ndarray], thr: float) -> dict[str, Any]:
    return {
        "threshold": float(thr),
        "fpr_eval_seen_topics": stats.rate(scores[sets["eval_seen_topics"]] > thr),
        "fpr_eval_unseen_topics": stats.rate(scores[sets["eval_unseen_topics"]] > thr),
        "tpr_jailbroken": stats.rate(scores[sets["jailbroken"]] > thr),
    }


def compare_variants(
    acts: np.ndarray | None, centres: Any, sets: dict[str, np.ndarray], harmful: np.ndarray,
    groups: Sequence[str] | np.ndarray, *, quantile: float = 0.99, seed: int = 0, n_boot: int = 1000,
    tau: float = 0.1, fprs: Sequence[float] = (0.01, 0.05), variants: Sequence[Variant] | None = None,
    distances: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every variant (the paper's guard first) fitted as the study fits the guard, and evaluated.

    ``acts`` [N, S, D] and ``centres`` give the per-step distances (or pass ``distances`` and ``acts=None``);
    ``sets`` is :func:`srilab.study.detection.arm_detection`'s index dict (``guard_fit``, ``calibration``,
    ``eval_seen_topics``, ``eval_unseen_topics``, ``jailbroken``); ``harmful`` is kept for the signature's
    stability (``jailbroken`` already encodes it); ``groups`` the topic group per row. Per variant: the
    threshold (``quantile`` of the calibration scores), FPR on both benign evaluation parts and TPR on
    jailbroken at it (k, n, Wilson interval), AUROC of jailbroken vs each benign part (bootstrap CI), and
    the same rates at thresholds set on calibration to each of ``fprs``. ``selection`` is
    :func:`select_variant` (calibration data only) and ``chosen`` its pick.
    """
    del harmful
    if distances is None:
        if acts is None:
            raise SrilabError("compare_variants needs activations and centres, or distances")
        distances = step_distances(acts, centres)
    variants = list(variants or default_variants())
    selection = select_variant(distances, sets, groups, quantile=quantile, seed=seed, tau=tau, variants=variants)
    out: dict[str, Any] = {"paper": variants[0].name, "chosen": selection["chosen"], "selection": selection,
                           "quantile": quantile, "variants": {}}
    for v in variants:
        X = _features(distances, v.representation, tau)
        guard = v.guard(quantile, seed).fit(X[sets["guard_fit"]], calibration=X[sets["calibration"]])
        scores = guard.score(X)
        cal = scores[sets["calibration"]]
        entry: dict[str, Any] = {"at_quantile": _tpr_block(scores, sets, guard.threshold)}
        for part in ("eval_seen_topics", "eval_unseen_topics"):
            entry[f"auroc_jailbroken_vs_{part}"] = stats.auroc_with_ci(
                scores[sets["jailbroken"]], scores[sets[part]], n_boot=n_boot, seed=seed
            )
        entry["at_fpr"] = {f"{100 * f:g}%": _tpr_block(scores, sets, stats.threshold_at_fpr(cal, f)) for f in fprs}
        out["variants"][v.name] = entry
    return out


# --------------------------------------------------------------------------------------------------
# diagnosis of one arm of a run directory
# --------------------------------------------------------------------------------------------------


def _arm_inputs(run_dir: str | Path, arm: str) -> dict[str, Any]:
    """Rows, sets, centres, activations and distances of ``arm`` ("model/sampler") as the study builds them."""
    from srilab.sri.centres import CentreKey, compute_centres, data_hash
    from srilab.study.analysis import label_verdicts, load_protocol, load_run
    from srilab.study.detection import activations, role_sets

    run, cfg, records, verdicts = load_run(run_dir)
    protocol = load_protocol(run)
    role_of = {item: role for role, items in protocol["roles"].items() for item in items}
    judged = [r for r in records if all(j.key in verdicts.get(r["key"], {}) for j in cfg.judges)]
    label_verdicts(judged, verdicts, cfg)
    rows = [r for r in judged if f"{r['model']}/{r['sampler']}" == arm]
    if not rows:
        arms = sorted({f"{r['model']}/{r['sampler']}" for r in judged})
        raise SrilabError(f"no judged generations of arm {arm!r} in {run_dir}: arms are {arms}")
    for r in rows:
        r["protocol_role"] = role_of.get(f"{r['dataset']}/{r['item']}", "unassigned")
    harmful = np.array([r["harmful"] for r in rows], dtype=bool)
    refused = np.array([r["refused"] for r in rows], dtype=bool)
    sets = role_sets(rows)
    acts = activations(run, rows)
    centre_idx = np.concatenate([sets["centre"], sets["harmful_centre"]])
    is_harm = np.array([False] * len(sets["centre"]) + [True] * len(sets["harmful_centre"]))
    centre_refused = refused[centre_idx].copy()
    if not centre_refused[is_harm].any():
        centre_refused[is_harm] = True
    if centre_refused[~is_harm].all():
        centre_refused[~is_harm] = False
    key = CentreKey(model=rows[0]["model"], sampler={"label": rows[0]["sampler"]}, layer=str(cfg.sri.layer),
                    pooling=cfg.sri.pooling, data=data_hash(rows[i]["prompt"] for i in centre_idx))
    centres = compute_centres(acts[centre_idx], is_harm, centre_refused, key)
    return {"cfg": cfg, "rows": rows, "sets": sets, "harmful": harmful, "acts": acts, "centres": centres,
            "groups": np.array([str(r.get("group")) for r in rows]),
            "distances": step_distances(acts, centres)}


def _unseen_fpr(X: np.ndarray, sets: dict[str, np.ndarray], variant: Variant, quantile: float, seed: int,
                fit_idx: np.ndarray | None = None) -> dict[str, Any]:
    fit = sets["guard_fit"] if fit_idx is None else fit_idx
    guard = variant.guard(quantile, seed).fit(X[fit], calibration=X[sets["calibration"]])
    s = guard.score(X)
    return {"seen": stats.rate(s[sets["eval_seen_topics"]] > guard.threshold),
            "unseen": stats.rate(s[sets["eval_unseen_topics"]] > guard.threshold),
            "tpr_jailbroken": stats.rate(s[sets["jailbroken"]] > guard.threshold)}


def diagnose(run_dir: str | Path, arm: str, out_dir: str | Path, *, n_boot: int = 200) -> dict[str, Any]:
    """Figures (PNG) and numbers (``diagnosis.json``) on why the guard flags benign unseen-topic requests.

    For ``arm`` ("model/sampler") of a finished run: the spread of s_t and of the log-ratio per step on
    seen vs unseen benign evaluation rows; the paper autoencoder's per-step share of the score; the unseen
    FPR against tau, the sigmoid (vs the raw log-ratio), the standardisation floor and the number of benign
    fit topic groups; and :func:`compare_variants`. Pooling and layer: only the ones the run traced (one
    of each, recorded in the JSON); this function cannot vary them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = _arm_inputs(run_dir, arm)
    cfg, sets, groups, dist = d["cfg"], d["sets"], d["groups"], d["distances"]
    quantile, seed = float(cfg.sri.quantile), int(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = arm.replace("/", "_")
    res: dict[str, Any] = {"arm": arm, "quantile": quantile, "n": {k: int(len(v)) for k, v in sets.items()},
                           "traced": {"layer": str(cfg.sri.layer), "pooling": str(cfg.sri.pooling),
                                      "note": "the run traces one layer and one pooling: neither can be varied here"},
                           "figures": []}
    s = _features(dist, "sri", 0.1)
    z = _features(dist, "log_ratio", 0.1)
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
    fig.tight_layout()
    path = out / f"{stem}_spread.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    res["figures"].append(str(path))
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
    fig.tight_layout()
    path = out / f"{stem}_contribution.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    res["figures"].append(str(path))
    res["contribution"] = {"std_at_floor_share": float(np.mean(paper.detector._std <= 0.01 + 1e-12)),  # type: ignore[attr-defined]
                           "top_steps_unseen": [int(i) for i in np.argsort(-errs[unseen].mean(axis=0))[:5]]
                           if len(unseen) else []}

    # 3. effects: tau, sigmoid vs log-ratio, the floor, the number of fit groups
    effects: dict[str, Any] = {}
    effects["tau"] = {f"{t:g}": _unseen_fpr(_features(dist, "sri", t), sets, PAPER, quantile, seed)
                      for t in (0.03, 0.1, 0.3, 1.0, 3.0)}
    effects["representation_paper_ae"] = {
        rep: _unseen_fpr(_features(dist, rep, 0.1), sets, Variant(rep, "autoencoder", "none"), quantile, seed)
        for rep in ("sri", "log_ratio", "distances")
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
    fig.tight_layout()
    path = out / f"{stem}_effects.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    res["figures"].append(str(path))

    # 4. every variant, with the calibration-only choice
    comp = compare_variants(None, None, sets, d["harmful"], groups, quantile=quantile, seed=seed, n_boot=n_boot,
                            distances=dist, variants=default_variants(str(cfg.sri.detector)))
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
    fig.tight_layout()
    path = out / f"{stem}_variants.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    res["figures"].append(str(path))
    (out / f"{stem}_diagnosis.json").write_text(json.dumps(res, indent=2, default=float) + "\n", encoding="utf-8")
    return res
