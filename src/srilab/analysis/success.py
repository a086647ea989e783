"""Does a detector see the success, or only the request? Detection read three ways, per arm.

1. **Operational**: jailbroken answers (attacked, judged harmful) against benign answers (in
   :func:`srilab.analysis.detection.compare`).
2. **Success**: jailbroken against *failed* attacks -- every attacked row, and only the requests (tasks)
   that were attacked both successfully and unsuccessfully, so the request itself cannot separate them. A
   detector that reads the request scores a failed attack on a harmful request as high as a success: its
   AUROC here sits near 0.5.
3. **Gain over a request-only reading**: each detector's TPR on jailbroken answers minus that of a reading
   of the request alone (the static first-step probe; the refusal direction on the prompt, when the run
   scored it), both at the same benign FPR (thresholds on the calibration rows), with Newcombe's paired
   interval and exact McNemar p; and the gain in the success AUROC with a paired bootstrap interval (the
   same resampled rows for both detectors).

Every detector here scores "higher = the attack succeeded". The refusal flag is not a detector: it scores
"refused", a reading of how harmful the request looked, and is reported as such
(``request_harmfulness_yardstick``) beside the oriented ``answered_flag`` detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from srilab import stats
from srilab.study.knowledge import unit_of

REQUEST_ONLY = ("static_step0", "refusal_direction")  # readings of the request alone: the yardsticks of (3)


def success_sets(rows: list[dict], sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Row indices: ``failed`` attacks, and ``jailbroken_mixed`` / ``failed_mixed``, the attacked rows of the
    requests that have both outcomes."""
    harmful = np.array([r["harmful"] for r in rows], dtype=bool)
    attacked = sets["attacked"]
    jb, failed = attacked[harmful[attacked]], attacked[~harmful[attacked]]
    mixed = {unit_of(rows[i]) for i in jb} & {unit_of(rows[i]) for i in failed}
    in_mixed = np.array([unit_of(r) in mixed for r in rows], dtype=bool)
    return {"failed": failed, "jailbroken_mixed": jb[in_mixed[jb]], "failed_mixed": failed[in_mixed[failed]],
            "mixed_requests": np.array(sorted(mixed))}


def _finite(scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return idx[np.isfinite(scores[idx])]


def success_aurocs(scores: np.ndarray, sets: dict[str, np.ndarray], succ: dict[str, np.ndarray], n_boot: int,
                   seed: int) -> dict[str, Any]:
    """AUROC of jailbroken vs failed attacks, over all attacked rows and over the requests with both."""
    out = {}
    for name, pos, neg in (("auroc_jailbroken_vs_failed", sets["jailbroken"], succ["failed"]),
                           ("auroc_jailbroken_vs_failed_same_requests", succ["jailbroken_mixed"],
                            succ["failed_mixed"])):
        out[name] = stats.auroc_with_ci(scores[_finite(scores, pos)], scores[_finite(scores, neg)],
                                        n_boot=n_boot, seed=seed)
    out["n_mixed_requests"] = int(len(succ["mixed_requests"]))
    return out


def _pair_matrix(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def _boot_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)


def _interval(point: float, boot: np.ndarray) -> dict[str, Any]:
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"estimate": float(point), "ci": [float(lo), float(hi)]}


def paired_gain(a: np.ndarray, b: np.ndarray, cal: np.ndarray, sets: dict[str, np.ndarray],
                succ: dict[str, np.ndarray], fpr: float, n_boot: int, seed: int) -> dict[str, Any] | None:
    """Detector ``a`` minus reading ``b``, on the rows both scored: the TPR on jailbroken rows at the same benign
    FPR (each threshold on the calibration rows; Newcombe's paired interval, exact McNemar p) and the
    jailbroken-vs-failed AUROC (a paired bootstrap: the same resampled rows for both). None when the two share
    too few scored rows."""
    both = np.isfinite(a) & np.isfinite(b)
    jb, failed, cal = (idx[both[idx]] for idx in (sets["jailbroken"], succ["failed"], cal))
    if len(jb) < 1 or len(cal) < 2:
        return None
    ta, tb = stats.threshold_at_fpr(a[cal], fpr), stats.threshold_at_fpr(b[cal], fpr)
    fa, fb = a[jb] > ta, b[jb] > tb
    counts = (int((fa & fb).sum()), int((fa & ~fb).sum()), int((~fa & fb).sum()), int((~fa & ~fb).sum()))
    out: dict[str, Any] = {"n_jailbroken": int(len(jb)), "n_failed": int(len(failed)), "fpr": fpr,
                           "tpr_gain": {"estimate": float(fa.mean() - fb.mean()),
                                        "ci": list(stats.paired_difference_ci(*counts)),
                                        "p": stats.mcnemar_exact_p(counts[1], counts[2])}}
    if len(failed):
        rng = np.random.default_rng(seed)
        cj = _boot_counts(len(jb), n_boot, rng)
        ma, mb = _pair_matrix(a[jb], a[failed]), _pair_matrix(b[jb], b[failed])
        cf = _boot_counts(len(failed), n_boot, rng)
        norm = len(jb) * len(failed)
        boot = np.einsum("bp,pn,bn->b", cj, ma - mb, cf) / norm
        out["success_auroc_gain"] = _interval((ma - mb).mean(), boot)
    return out


def sees_success(detectors: dict[str, tuple[np.ndarray, float | None]], rows: list[dict],
                 sets: dict[str, np.ndarray], fpr: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Per detector: the success AUROCs and, for every detector that reads more than the request, its gain
    over each request-only reading the run holds."""
    succ = success_sets(rows, sets)
    readings = [name for name in REQUEST_ONLY if name in detectors]
    out: dict[str, Any] = {"request_only_readings": readings, "n_failed": int(len(succ["failed"])),
                           "n_mixed_requests": int(len(succ["mixed_requests"])), "detectors": {}}
    for name, (scores, _) in detectors.items():
        entry = success_aurocs(scores, sets, succ, n_boot, seed)
        if name not in REQUEST_ONLY:
            gains = {ref: paired_gain(scores, detectors[ref][0], sets["calibration"], sets, succ, fpr, n_boot, seed)
                     for ref in readings}
            entry["gain_over"] = {k: v for k, v in gains.items() if v is not None}
        out["detectors"][name] = entry
    return out
