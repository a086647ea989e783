"""Statistics for srilab studies: bootstrap intervals, paired sampler tests and detection metrics.

Numpy only and deterministic: every random draw comes from an explicit ``np.random.default_rng(seed)``,
so the same inputs and seed always give the same interval.

Conventions
-----------
* Rates are means of 0/1 (boolean) outcomes; intervals are percentile bootstrap intervals at level
  ``1 - alpha`` (95% by default).
* Detection scores follow "higher = more anomalous / more likely positive"; an item is *flagged* when
  ``score > threshold`` (strictly), the same rule the SRI guard uses.
* Every function rejects empty inputs, NaN/infinite values and mismatched lengths with a
  :class:`~srilab.errors.SrilabError` naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from srilab.errors import SrilabError

__all__ = [
    "Interval",
    "PairedTest",
    "auroc",
    "bootstrap_auroc_ci",
    "bootstrap_ci",
    "detection_figures",
    "fpr_at_threshold",
    "mcnemar_exact_p",
    "paired_test",
    "auroc_with_ci",
    "rate",
    "wilson_interval",
    "threshold_at_fpr",
    "tpr_at_fpr",
    "paired_difference_ci",
    "weighted_rate",
]

# Largest number of resampled values held in memory at once (n_boot x n is processed in chunks).
_CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """Return ``{"estimate", "low", "high"}`` as plain floats (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_test` on two boolean outcome arrays over the same items.

    ``diff = rate_a - rate_b`` with a paired percentile-bootstrap CI ``[diff_low, diff_high]``;
    ``only_a`` counts items where ``a`` is True and ``b`` False, ``only_b`` the reverse (the discordant
    pairs); ``p_value`` is the exact two-sided McNemar p-value.
    """

    n: int
    rate_a: float
    rate_b: float
    diff: float
    diff_low: float
    diff_high: float
    only_a: int
    only_b: int
    p_value: float

    def to_dict(self) -> dict[str, float | int]:
        """Return all fields as plain Python numbers (JSON-ready)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def _as_1d(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a non-empty finite 1-D float64 array, or raise naming ``name``."""
    if values is None or isinstance(values, str | bytes):
        raise SrilabError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SrilabError(f"{name} must be a sequence of numbers ({exc}); pass a 1-D numeric array") from None
    if arr.ndim != 1:
        raise SrilabError(f"{name} must be 1-D but has shape {arr.shape}; pass a flat array of values")
    if arr.size == 0:
        raise SrilabError(f"{name} is empty; pass at least one value")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SrilabError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at index {first}); "
            "drop or fix those items before computing statistics"
        )
    return arr


def _as_flags(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a float64 array of 0/1 outcomes, or raise naming ``name``."""
    arr = _as_1d(values, name)
    if not np.isin(arr, (0.0, 1.0)).all():
        raise SrilabError(f"{name} must hold boolean (0/1) outcomes; convert it with an explicit comparison")
    return arr


def _length(values: Any, name: str) -> int:
    if values is None or isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise SrilabError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    return len(values)


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise SrilabError(
            f"{name_a} has {a.shape[0]} items but {name_b} has {b.shape[0]}; "
            "pass outcomes for the same items in the same order"
        )


def _check_boot(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise SrilabError(f"n_boot must be a positive integer, got {n_boot!r}; use e.g. n_boot=2000")
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise SrilabError(f"alpha must be in (0, 1), got {alpha!r}; use e.g. alpha=0.05 for a 95% interval")


def _percentiles(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _chunk_rows(n_boot: int, width: int) -> int:
    return max(1, min(n_boot, _CHUNK_ELEMENTS // max(1, width)))


# --------------------------------------------------------------------------------------------------
# bootstrap intervals
# --------------------------------------------------------------------------------------------------


def _boot_stat(values: np.ndarray, stat: Callable[..., Any], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of ``stat``; vectorised (``stat(sample, axis=1)``) when ``stat`` allows."""
    n = values.shape[0]
    out = np.empty(n_boot, dtype=np.float64)
    rows = _chunk_rows(n_boot, n)
    vectorised = True
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        samples = values[rng.integers(0, n, size=(stop - start, n))]
        if vectorised:
            try:
                reps = np.asarray(stat(samples, axis=1), dtype=np.float64)
                if reps.shape != (stop - start,):
                    raise TypeError("stat did not reduce along axis=1")
            except TypeError:
                vectorised = False
        if not vectorised:
            reps = np.fromiter((float(stat(row)) for row in samples), dtype=np.float64, count=stop - start)
        out[start:stop] = reps
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., Any] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI of ``stat(values)``.

    For 0/1 values and the default ``stat=np.mean`` this is the CI of a proportion. Resampling is
    vectorised: ``stat`` is called as ``stat(samples, axis=1)`` on a chunk of resamples at once when it
    accepts an ``axis`` argument (``np.mean``, ``np.median``, ...), otherwise once per resample.
    """
    arr = _as_1d(values, "values")
    _check_boot(n_boot, alpha)
    rng = np.random.default_rng(seed)
    boot = _boot_stat(arr, stat, int(n_boot), rng)
    low, high = _percentiles(boot, alpha)
    return Interval(estimate=float(stat(arr)), low=low, high=high)


def wilson_interval(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (0/n has an upper bound above 0, n/n a lower
    bound below 1; ``(nan, nan)`` for n = 0)."""
    if not (isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer))) or not 0 <= k <= n:
        raise SrilabError(f"wilson_interval needs whole numbers 0 <= k <= n, got k={k!r}, n={n!r}")
    if not 0.0 < alpha < 1.0:
        raise SrilabError(f"alpha must be in (0, 1), got {alpha!r}")
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, min(p, centre - half))  # exact at the edges (no rounding past p)
    high = 1.0 if k == n else min(1.0, max(p, centre + half))
    return low, high


def rate(flags: Sequence[bool] | np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """A rate as every summary stores it: ``{"k", "n", "rate", "ci": [low, high]}`` (Wilson 95% interval;
    rate and interval are None for n = 0)."""
    arr = _as_flags(flags, "flags") if _length(flags, "flags") else np.zeros(0, dtype=bool)
    k, n = int(arr.sum()), int(arr.shape[0])
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "ci": [None, None]}
    lo, hi = wilson_interval(k, n, alpha)
    return {"k": k, "n": n, "rate": k / n, "ci": [lo, hi]}


def paired_difference_ci(both: int, only_a: int, only_b: int, neither: int,
                         alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for ``rate_a - rate_b`` on paired binary outcomes, from Wilson
    intervals of the two margins and their correlation: valid where a bootstrap collapses (no successes, or no
    discordant pairs, give a percentile interval of zero width)."""
    n = both + only_a + only_b + neither
    if n == 0:
        raise SrilabError("a paired difference needs at least one pair")
    k1, k2 = both + only_a, both + only_b
    p1, p2 = k1 / n, k2 / n
    l1, u1 = wilson_interval(k1, n, alpha)
    l2, u2 = wilson_interval(k2, n, alpha)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = 0.0 if margins == 0 else (both * neither - only_a * only_b) / math.sqrt(margins)
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    d = p1 - p2
    return max(-1.0, d - delta), min(1.0, d + eps)


def weighted_rate(flags: Sequence[bool] | np.ndarray, weights: Sequence[float] | np.ndarray,
                  alpha: float = 0.05) -> dict[str, Any]:
    """A rate over a population sampled with unequal weights (each row stands for ``weight`` rows): the
    weighted share, with a Wilson interval at Kish's effective sample size ``(sum w)^2 / sum w^2``; ``k``/``n``
    stay the raw counts of the rows read, ``n_effective`` and ``weighted`` say how the rate was formed."""
    arr = _as_flags(flags, "flags") if _length(flags, "flags") else np.zeros(0, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != arr.shape or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise SrilabError("weights must be finite, positive and one per flag")
    if not len(arr):
        return rate(arr, alpha)
    est = float((w * arr).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    lo, hi = wilson_interval(int(round(est * n_eff)), max(int(round(n_eff)), 1), alpha)
    lo, hi = min(lo, est), max(hi, est)
    return {"k": int(arr.sum()), "n": int(len(arr)), "rate": est, "ci": [lo, hi], "weighted": True,
            "n_effective": n_eff}


def auroc_with_ci(
    scores_pos: Sequence[float] | np.ndarray, scores_neg: Sequence[float] | np.ndarray, *, n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """AUROC with its stratified bootstrap 95% CI and both n: ``{"auroc", "ci", "n_pos", "n_neg"}`` (None
    when either side is empty)."""
    n_pos, n_neg = _length(scores_pos, "scores_pos"), _length(scores_neg, "scores_neg")
    if n_pos == 0 or n_neg == 0:
        return {"auroc": None, "ci": [None, None], "n_pos": n_pos, "n_neg": n_neg}
    ci = bootstrap_auroc_ci(scores_pos, scores_neg, n_boot=n_boot, seed=seed)
    return {"auroc": ci.estimate, "ci": [ci.low, ci.high], "n_pos": n_pos, "n_neg": n_neg}


# --------------------------------------------------------------------------------------------------
# paired test (sampler A vs sampler B on the same prompts)
# --------------------------------------------------------------------------------------------------


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts.

    Under H0 the ``m = only_a + only_b`` discordant pairs split Binomial(m, 1/2); the p-value is
    ``min(1, 2 * P(X <= min(only_a, only_b)))``, computed with exact integer arithmetic (1.0 when m = 0).
    """
    if not all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in (only_a, only_b)) or min(
            only_a, only_b) < 0:
        raise SrilabError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    m = int(only_a) + int(only_b)
    if m == 0:
        return 1.0
    k = min(int(only_a), int(only_b))
    tail = sum(math.comb(m, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**m)


def paired_test(
    a: Sequence[bool] | np.ndarray,
    b: Sequence[bool] | np.ndarray,
    seed: int = 0,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> PairedTest:
    """Compare two boolean outcomes on the same items (e.g. attack success under sampler A vs B).

    Returns the exact McNemar two-sided p-value, the difference in rates ``rate_a - rate_b`` and its
    paired percentile-bootstrap CI (items are resampled as pairs).
    """
    fa = _as_flags(a, "a")
    fb = _as_flags(b, "b")
    _check_same_length(fa, fb, "a", "b")
    _check_boot(n_boot, alpha)
    only_a = int(np.sum((fa == 1.0) & (fb == 0.0)))
    only_b = int(np.sum((fa == 0.0) & (fb == 1.0)))
    diff = fa - fb
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_boot_stat(diff, np.mean, int(n_boot), rng), alpha)
    return PairedTest(
        n=int(fa.shape[0]),
        rate_a=float(fa.mean()),
        rate_b=float(fb.mean()),
        diff=float(diff.mean()),
        diff_low=low,
        diff_high=high,
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_exact_p(only_a, only_b),
    )


# --------------------------------------------------------------------------------------------------
# detection metrics
# --------------------------------------------------------------------------------------------------


def auroc(scores_pos: Sequence[float] | np.ndarray, scores_neg: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve, exactly, as the Mann-Whitney statistic.

    ``P(score_pos > score_neg) + 0.5 * P(score_pos == score_neg)`` over all positive/negative pairs
    (ties counted half), computed in O(n log n) with integer counts.
    """
    pos = _as_1d(scores_pos, "scores_pos")
    neg = np.sort(_as_1d(scores_neg, "scores_neg"))
    left = np.searchsorted(neg, pos, side="left")  # negatives strictly below each positive
    right = np.searchsorted(neg, pos, side="right")  # ... plus the ties
    twice_u = int(left.sum()) + int(right.sum())
    return twice_u / (2 * pos.shape[0] * neg.shape[0])


def _check_fpr(fpr: float) -> float:
    if not (isinstance(fpr, (int, float, np.floating)) and 0.0 <= float(fpr) <= 1.0):
        raise SrilabError(f"fpr must be in [0, 1], got {fpr!r}; use e.g. fpr=0.01 for 1%")
    return float(fpr)


def threshold_at_fpr(scores_neg: Sequence[float] | np.ndarray, fpr: float) -> float:
    """Smallest threshold ``t`` with ``mean(scores_neg > t) <= fpr`` (``-inf`` when fpr allows all).

    With ``n`` negatives at most ``floor(fpr * n)`` of them may exceed ``t``, so ``t`` is the
    ``floor(fpr * n) + 1``-th largest negative score.
    """
    neg = _as_1d(scores_neg, "scores_neg")
    fpr = _check_fpr(fpr)
    n = neg.shape[0]
    allowed = math.floor(fpr * n + 1e-9)
    if allowed >= n:
        return -math.inf
    return float(np.sort(neg)[::-1][allowed])


def fpr_at_threshold(scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """Share of ``scores`` flagged (``score > threshold``); on negatives this is the false positive rate."""
    arr = _as_1d(scores, "scores")
    if not isinstance(threshold, (int, float, np.number)) or math.isnan(float(threshold)):
        raise SrilabError(f"threshold must be a number, got {threshold!r}; pass e.g. guard.threshold")
    return float(np.mean(arr > threshold))


def tpr_at_fpr(scores_pos: Sequence[float] | np.ndarray, scores_neg: Sequence[float] | np.ndarray, fpr: float) -> float:
    """True positive rate at the threshold chosen on the negatives so that their FPR is ``<= fpr``.

    See :func:`threshold_at_fpr`; positives are flagged when ``score > threshold``.
    """
    pos = _as_1d(scores_pos, "scores_pos")
    threshold = threshold_at_fpr(scores_neg, fpr)
    return float(np.mean(pos > threshold))


def detection_figures(
    scores_pos: Sequence[float] | np.ndarray, scores_neg: Sequence[float] | np.ndarray, suffix: str = ""
) -> dict[str, float]:
    """AUROC and the TPR at 1% and 5% FPR of positives against negatives, as ``auroc{suffix}``,
    ``tpr_at_1pct_fpr{suffix}`` and ``tpr_at_5pct_fpr{suffix}`` (the keys the reports use)."""
    return {
        f"auroc{suffix}": auroc(scores_pos, scores_neg),
        f"tpr_at_1pct_fpr{suffix}": tpr_at_fpr(scores_pos, scores_neg, 0.01),
        f"tpr_at_5pct_fpr{suffix}": tpr_at_fpr(scores_pos, scores_neg, 0.05),
    }


def bootstrap_auroc_ci(
    scores_pos: Sequence[float] | np.ndarray,
    scores_neg: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """AUROC with a stratified percentile-bootstrap CI (positives and negatives resampled separately).

    Vectorised: the negatives are sorted once; a resample of negatives is a count vector over the
    sorted negatives, and its cumulative sum gives, for every positive, how many resampled negatives lie
    below (and at) it.
    """
    pos = _as_1d(scores_pos, "scores_pos")
    neg = np.sort(_as_1d(scores_neg, "scores_neg"))
    _check_boot(n_boot, alpha)
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    left = np.searchsorted(neg, pos, side="left")
    right = np.searchsorted(neg, pos, side="right")
    rng = np.random.default_rng(seed)
    out = np.empty(int(n_boot), dtype=np.float64)
    rows = _chunk_rows(int(n_boot), max(n_pos, n_neg + 1))
    for start in range(0, int(n_boot), rows):
        r = min(int(n_boot), start + rows) - start
        neg_idx = rng.integers(0, n_neg, size=(r, n_neg))
        pos_idx = rng.integers(0, n_pos, size=(r, n_pos))
        flat = (neg_idx + (np.arange(r)[:, None] * n_neg)).ravel()
        counts = np.bincount(flat, minlength=r * n_neg).reshape(r, n_neg)
        cum = np.zeros((r, n_neg + 1), dtype=np.int64)
        np.cumsum(counts, axis=1, out=cum[:, 1:])
        below = np.take_along_axis(cum, left[pos_idx], axis=1)
        at_or_below = np.take_along_axis(cum, right[pos_idx], axis=1)
        out[start : start + r] = (below.sum(axis=1) + at_or_below.sum(axis=1)) / (2 * n_pos * n_neg)
    low, high = _percentiles(out, alpha)
    return Interval(estimate=auroc(pos, neg), low=low, high=high)
