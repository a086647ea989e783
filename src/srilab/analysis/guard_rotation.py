"""Every benign topic group unseen once: the SRI guard's FPR on unseen topics over rotated splits (issue 15).

One split measures the guard on few unseen groups (the demo holds out 5 of 21), and the answers of one group
move together: the demo's AR arm flags 4 of 103 unseen-topic answers, three of them from one group. A figure
that hangs on which groups were drawn is weak evidence either way. :func:`rotate` repeats the whole fit on
``k`` splits of the benign topic groups, so that every group is unseen in exactly one of them:

* split 0 is the run's own protocol (its ``centre``, ``guard_fit`` and ``calibration`` rows; its
  ``eval_unseen_topics`` groups held out): it reproduces the run's figure;
* in every other split a seeded share of the remaining groups is held out whole, and the ``centre``,
  ``guard_fit`` and ``calibration`` rows are drawn afresh (seeded, the protocol's counts) from the benign rows
  of the groups that are not; the harmful centre keeps its rows (harmful topics, never scored as benign);
* ``repeats`` > 1 deals every group into new splits with new roles (another seed), once per repeat: how much
  the figure moves with the draw, not only with the groups.

Per split, the SRI centres, the detector, the variant choice (``sri.variant: auto`` chooses again, on that
split's calibration data) and the threshold are fitted on that split's rows alone, and every benign row of the
held-out groups is scored. Reported for the study's guard and for the paper's guard at the paper's threshold:
the pooled FPR (k/n, Wilson interval, and a group-bootstrap interval, since rows of a group are not
independent), the FPR per split and per held-out group, and the TPR on the jailbroken answers per split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from srilab import stats
from srilab.analysis.detection import arm_centres
from srilab.analysis.guard_variants import choose_guard, variant_features
from srilab.errors import SrilabError
from srilab.sri.guard import SRIGuard
from srilab.sri.representation import features_from_distances
from srilab.sri.signal import step_distances

__all__ = ["BENIGN_ROLES", "group_bootstrap_ci", "rotate", "rotation_splits"]

#: The roles whose rows are benign answers with a topic group (the harmful centre and attacked rows are not).
BENIGN_ROLES = ("centre", "guard_fit", "calibration", "eval_seen_topics", "eval_unseen_topics")


def rotation_splits(groups: np.ndarray, sets: dict[str, np.ndarray], k: int, seed: int,
                    protocol_first: bool = True) -> list[list[str]]:
    """The held-out topic groups of each split, every benign group in exactly one. ``protocol_first``: the
    protocol's ``eval_unseen_topics`` groups first, then the other benign groups dealt, after a seeded shuffle,
    into ``k - 1`` splits; otherwise every benign group dealt into ``k`` splits (fewer when there are fewer
    groups: each split leaves at least one group to fit on)."""
    benign = np.concatenate([sets[r] for r in BENIGN_ROLES])
    unseen = sorted({str(g) for g in groups[sets["eval_unseen_topics"]]})
    rest = sorted({str(g) for g in groups[benign]} - set(unseen))
    if not unseen or not rest:
        raise SrilabError("rotating the unseen topics needs held-out groups and other benign groups: the run's "
                          f"protocol has {len(unseen)} held-out and {len(rest)} other benign topic group(s)")
    first, pool = ([unseen], rest) if protocol_first else ([], sorted(unseen + rest))
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    parts = max(1, min(int(k) - len(first), len(pool) - 1))
    return first + [sorted(order[i::parts]) for i in range(parts)]


def group_bootstrap_ci(flags: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                       alpha: float = 0.05) -> list[float | None]:
    """A percentile interval for a rate whose rows come in groups: groups resampled with replacement."""
    names = np.unique(groups)
    if len(flags) == 0 or len(names) < 2:
        return [None, None]
    k = np.array([flags[groups == g].sum() for g in names], dtype=float)
    n = np.array([(groups == g).sum() for g in names], dtype=float)
    pick = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
    rates = k[pick].sum(axis=1) / n[pick].sum(axis=1)
    lo, hi = np.quantile(rates, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def _draw_roles(rows: np.ndarray, counts: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``centre`` / ``guard_fit`` / ``calibration`` rows drawn from ``rows`` with the protocol's counts
    (scaled down together when there are fewer rows)."""
    need = sum(counts.values())
    scale = min(1.0, len(rows) / max(need, 1))
    perm, out, at = rng.permutation(rows), {}, 0
    for role, n in counts.items():
        take = max(2, int(n * scale))
        out[role] = np.sort(perm[at:at + take])
        at += take
    if at > len(rows):
        raise SrilabError(f"a rotated split has {len(rows)} benign rows to fit on: too few for centre, guard_fit "
                          "and calibration (hold out fewer groups, or add benign items)")
    return out


def rotate(d: dict[str, Any], *, k: int | None = None, repeats: int = 1, n_boot: int = 1000) -> dict[str, Any]:
    """The guard refitted on every split of :func:`rotation_splits` (see the module docstring).

    ``d``: :func:`srilab.analysis.guard_diagnosis.arm_inputs` (``cfg``, ``rows``, ``sets``, ``acts``, ``groups``).
    ``k``: the number of splits (default ``round(1 / protocol.unseen_groups)``, at least 2). ``repeats``: the
    rotation repeated with other seeds (every split's groups and roles drawn afresh after the first), so the
    pooled figure averages over draws, not only over groups."""
    cfg, sets, groups = d["cfg"], d["sets"], d["groups"]
    seed = int(cfg.seed)
    if k is None:
        k = max(2, round(1.0 / cfg.protocol.unseen_groups)) if cfg.protocol.unseen_groups > 0 else 4
    if int(repeats) < 1:
        raise SrilabError(f"rotation repeats must be >= 1, got {repeats}")
    benign = np.sort(np.concatenate([sets[r] for r in BENIGN_ROLES]))
    counts = {r: int(len(sets[r])) for r in ("centre", "guard_fit", "calibration")}
    guards = ("study", "paper")
    flags: dict[str, list[np.ndarray]] = {g: [] for g in guards}
    held_groups: list[np.ndarray] = []
    out_splits = []
    for rep in range(int(repeats)):
        rng = np.random.default_rng([seed, rep, 1])
        for i, held in enumerate(rotation_splits(groups, sets, k, seed + rep, protocol_first=rep == 0)):
            own = rep == 0 and i == 0
            test = benign[np.isin(groups[benign], held)]
            roles = ({r: sets[r] for r in counts} if own
                     else _draw_roles(benign[~np.isin(groups[benign], held)], counts, rng))
            entry, split_flags = _split(d, roles, test)
            for name in guards:
                flags[name].append(split_flags[name])
            held_groups.append(groups[test])
            out_splits.append({"repeat": rep, "own_protocol": own, "held_out": list(held), **entry})
    all_groups = np.concatenate(held_groups)
    pooled = {}
    for name in guards:
        f = np.concatenate(flags[name])
        tpr = [sp[name]["tpr_jailbroken"]["rate"] for sp in out_splits if sp[name]["tpr_jailbroken"]["n"]]
        pooled[name] = {**stats.rate(f), "group_ci": group_bootstrap_ci(f, all_groups, n_boot=n_boot, seed=seed),
                        "per_group": {str(g): stats.rate(f[all_groups == g]) for g in np.unique(all_groups)},
                        # the same jailbroken rows in every split: the mean over splits, not a pooled rate
                        "tpr_jailbroken_mean": float(np.mean(tpr)) if tpr else None}
    return {"splits": out_splits, "pooled": pooled, "groups": int(len(np.unique(all_groups))), "repeats": int(repeats),
            "nominal_fpr": 1.0 - float(cfg.sri.quantile), "variant_rule": cfg.sri.variant,
            "threshold_rule": cfg.sri.threshold}


def _split(d: dict[str, Any], roles: dict[str, np.ndarray], test: np.ndarray) -> tuple[dict[str, Any], dict]:
    """One split: centres, the study's guard (variant chosen again under ``auto``) and the paper's guard at the
    paper's threshold, fitted on ``roles`` alone; their flags on the ``test`` rows and TPR on jailbroken rows."""
    cfg, rows, sets, acts, groups = d["cfg"], d["rows"], d["sets"], d["acts"], d["groups"]
    quantile, seed = float(cfg.sri.quantile), int(cfg.seed)
    split_sets = {**sets, **roles}
    centres, _ = arm_centres(rows, acts, split_sets, cfg, [])
    dist = step_distances(acts, centres)
    variant, guard, choice = choose_guard(
        dist, split_sets, groups, variant=cfg.sri.variant, detector=cfg.sri.detector, quantile=quantile,
        seed=seed, threshold=cfg.sri.threshold,
    )
    s = features_from_distances(*dist, "sri")
    paper = SRIGuard(cfg.sri.detector, quantile=quantile, seed=seed).fit(
        s[roles["guard_fit"]], calibration=s[roles["calibration"]])
    fitted_on = np.concatenate(list(roles.values()))
    entry: dict[str, Any] = {"fit_groups": sorted({str(g) for g in groups[fitted_on]}),
                             "n_fit": int(len(roles["guard_fit"])), "n_calibration": int(len(roles["calibration"])),
                             "variant": choice["variant"]}
    flags = {}
    for name, scores, thr in (("study", guard.score(variant_features(dist, variant)), float(guard.threshold)),
                              ("paper", paper.score(s), float(paper.threshold))):
        flags[name] = scores[test] > thr
        entry[name] = {"threshold": thr, "fpr_unseen": stats.rate(flags[name]),
                       "tpr_jailbroken": stats.rate(scores[sets["jailbroken"]] > thr)}
    return entry, flags
