"""Tests for srilab.stats: bootstrap intervals, the paired McNemar test and detection metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from srilab.errors import SrilabError
from srilab.stats import (
    Interval,
    auroc,
    bootstrap_auroc_ci,
    bootstrap_ci,
    fpr_at_threshold,
    mcnemar_exact_p,
    paired_test,
    rate,
    threshold_at_fpr,
    tpr_at_fpr,
    wilson_interval,
)


def test_bootstrap_ci_contains_true_rate_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)
    true_rate = 0.3
    widths = []
    for n in (100, 1000, 10000):
        flags = rng.random(n) < true_rate
        ci = bootstrap_ci(flags.astype(float), n_boot=1000, seed=0)
        assert ci.low <= ci.estimate <= ci.high
        widths.append(ci.high - ci.low)
        if n == 10000:
            assert ci.low <= true_rate <= ci.high
    assert widths[0] > widths[1] > widths[2]
    # the width of a 95% CI of a proportion is about 2 * 1.96 * sqrt(p (1 - p) / n)
    assert widths[2] == pytest.approx(2 * 1.96 * math.sqrt(0.3 * 0.7 / 10000), rel=0.15)


def test_bootstrap_ci_is_deterministic_and_supports_other_stats() -> None:
    values = np.random.default_rng(2).normal(size=200)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    assert bootstrap_ci(values, seed=5) != bootstrap_ci(values, seed=6)
    med = bootstrap_ci(values, stat=np.median, n_boot=500)
    assert med.estimate == pytest.approx(float(np.median(values)))
    assert med.low < med.estimate < med.high
    # a stat without an axis argument falls back to one call per resample, with the same draws
    looped = bootstrap_ci(values, stat=lambda x: float(np.mean(x)), n_boot=500, seed=3)
    vectorised = bootstrap_ci(values, n_boot=500, seed=3)
    assert looped.low == pytest.approx(vectorised.low)
    assert looped.high == pytest.approx(vectorised.high)
    assert isinstance(med, Interval) and set(med.to_dict()) == {"estimate", "low", "high"}


def test_rate_carries_k_n_and_a_wilson_interval() -> None:
    out = rate([True] * 30 + [False] * 70)
    assert (out["k"], out["n"]) == (30, 100) and out["rate"] == pytest.approx(0.3)
    assert out["ci"][0] < 0.3 < out["ci"][1]
    # 0/n and n/n are not [0, 0] and [1, 1]: 0/45 has an upper bound above 0 (Wilson: z^2 / (n + z^2))
    zero, full = rate([False] * 45), rate([True] * 45)
    z2 = 1.959963984540054**2
    assert zero["ci"][0] == 0.0 and zero["ci"][1] == pytest.approx(z2 / (45 + z2))
    assert full["ci"][1] == 1.0 and full["ci"][0] == pytest.approx(1 - z2 / (45 + z2))
    # a textbook value: 81 of 263 (Newcombe 1998, Table I) -> Wilson [0.2553, 0.3662]
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    assert rate([]) == {"k": 0, "n": 0, "rate": None, "ci": [None, None]}
    with pytest.raises(SrilabError, match="flags"):
        rate([0, 1, 2])
    with pytest.raises(SrilabError, match="0 <= k <= n"):
        wilson_interval(5, 3)


def test_mcnemar_exact_matches_hand_computed_binomial() -> None:
    # 6 discordant pairs split 5 / 1: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 2 * 7 / 64
    a = np.array([1, 1, 1, 1, 1, 0, 1, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 1, 1, 0, 1, 0], dtype=bool)
    res = paired_test(a, b, seed=0)
    assert (res.only_a, res.only_b) == (5, 1)
    assert res.p_value == pytest.approx(14 / 64)
    assert res.rate_a == pytest.approx(0.7) and res.rate_b == pytest.approx(0.3)
    assert res.diff == pytest.approx(0.4)
    assert res.diff_low <= res.diff <= res.diff_high
    assert res.to_dict()["p_value"] == pytest.approx(14 / 64)
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(3, 3) == 1.0  # capped at 1
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 2**10)


def test_paired_test_detects_a_real_difference() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.6
    b = a & (rng.random(400) < 0.5)  # b succeeds on a subset of a's successes
    res = paired_test(a, b, seed=1)
    assert res.p_value < 1e-6
    assert res.diff_low > 0
    with pytest.raises(SrilabError, match="a has 3 items but b has 2"):
        paired_test([True, False, True], [True, False])


def test_auroc_extremes_and_ties() -> None:
    assert auroc([2.0, 3.0, 4.0], [0.0, 1.0]) == 1.0
    assert auroc([0.0, 1.0], [2.0, 3.0]) == 0.0
    same = np.linspace(0, 1, 50)
    assert auroc(same, same) == 0.5
    assert auroc([1.0], [1.0]) == 0.5  # a tie counts half


def test_auroc_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(4)
    pos = rng.normal(0.5, 1.0, 300)
    neg = rng.normal(0.0, 1.0, 500)
    # introduce ties
    pos[:20] = np.round(pos[:20], 1)
    neg[:40] = np.round(neg[:40], 1)
    y = np.r_[np.ones_like(pos), np.zeros_like(neg)]
    expected = roc_auc_score(y, np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(expected, abs=1e-12)
    ci = bootstrap_auroc_ci(pos, neg, n_boot=500, seed=0)
    assert ci.estimate == pytest.approx(expected, abs=1e-12)
    assert ci.low < expected < ci.high
    assert 0.0 < ci.high - ci.low < 0.2


def test_bootstrap_auroc_ci_replicates_equal_direct_auroc() -> None:
    # the vectorised replicate computation equals auroc() on the same resample
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(1, 1, 15).round(1), rng.normal(0, 1, 12).round(1)
    ci = bootstrap_auroc_ci(pos, neg, n_boot=200, seed=9)
    draws = np.random.default_rng(9)  # same draws, same order: negatives (of the sorted array) first
    neg_idx = draws.integers(0, neg.size, size=(200, neg.size))
    pos_idx = draws.integers(0, pos.size, size=(200, pos.size))
    neg_sorted = np.sort(neg)
    reps = [auroc(pos[pi], neg_sorted[ni]) for pi, ni in zip(pos_idx, neg_idx, strict=True)]
    low, high = np.quantile(reps, [0.025, 0.975])
    assert ci.low == pytest.approx(low) and ci.high == pytest.approx(high)


def test_tpr_at_fpr_respects_the_bound() -> None:
    rng = np.random.default_rng(6)
    neg = rng.normal(0, 1, 1000)
    pos = rng.normal(2, 1, 500)
    for fpr in (0.0, 0.01, 0.05, 0.1, 0.5):
        t = threshold_at_fpr(neg, fpr)
        assert fpr_at_threshold(neg, t) <= fpr
        # the threshold is the smallest such: one step lower would exceed the bound
        lower = np.max(neg[neg < t]) if np.any(neg < t) else -np.inf
        assert fpr_at_threshold(neg, lower) > fpr
        assert tpr_at_fpr(pos, neg, fpr) == pytest.approx(np.mean(pos > t))
    assert tpr_at_fpr(pos, neg, 1.0) == 1.0
    assert tpr_at_fpr(pos, neg, 0.01) < tpr_at_fpr(pos, neg, 0.05) < tpr_at_fpr(pos, neg, 0.1)
    # ties at the threshold are never flagged
    assert fpr_at_threshold([1.0, 1.0, 1.0, 2.0], threshold_at_fpr([1.0, 1.0, 1.0, 2.0], 0.5)) == 0.25
    with pytest.raises(SrilabError, match="fpr"):
        tpr_at_fpr(pos, neg, 1.5)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: bootstrap_ci([]), "values is empty"),
        (lambda: bootstrap_ci([0.1, float("nan")]), "values contains 1 NaN"),
        (lambda: paired_test([], []), "a is empty"),
        (lambda: paired_test([True], [float("nan")]), "b contains"),
        (lambda: auroc([], [1.0]), "scores_pos is empty"),
        (lambda: auroc([1.0], [np.nan]), "scores_neg contains"),
        (lambda: tpr_at_fpr([1.0], [], 0.1), "scores_neg is empty"),
        (lambda: fpr_at_threshold([np.nan], 0.5), "scores contains"),
        (lambda: fpr_at_threshold([1.0], float("nan")), "threshold"),
        (lambda: bootstrap_auroc_ci([1.0], [[1.0, 2.0]]), "scores_neg must be 1-D"),
        (lambda: bootstrap_ci([1.0, 2.0], alpha=1.5), "alpha"),
    ],
)
def test_invalid_inputs_raise_srilab_error_naming_the_argument(call, name) -> None:
    with pytest.raises(SrilabError, match=name):
        call()


def test_detection_figures_names_and_values():
    from srilab.stats import detection_figures

    neg = np.linspace(0.0, 1.0, 200)
    pos = np.array([0.5, 0.97, 2.0, 3.0])
    fig = detection_figures(pos, neg, "_x")
    assert set(fig) == {"auroc_x", "tpr_at_1pct_fpr_x", "tpr_at_5pct_fpr_x"}
    # AUROC: 0.5 beats about half the negatives, the others beat all of them.
    assert fig["auroc_x"] == pytest.approx(roc_auc_score([1] * 4 + [0] * 200, np.concatenate([pos, neg])))
    assert fig["tpr_at_1pct_fpr_x"] == 0.5  # 0.97 is above 97% of the negatives: not above the 1% threshold
    assert fig["tpr_at_5pct_fpr_x"] == 0.75
