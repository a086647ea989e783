"""Choosing the SRI guard variant on calibration data only, and comparing the variants (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from srilab.analysis.guard_variants import compare_variants, fit_variants, select_variant
from srilab.errors import SrilabError
from srilab.sri.variants import Variant, default_variants

S = 12
#: the paper's guard (fewer epochs, for speed) and three robust candidates
PAPER_FAST = Variant("sri", "autoencoder", "none", (("epochs", 120),))
VARIANTS = [PAPER_FAST, Variant("log_ratio", "mahalanobis"), Variant("log_ratio", "knn"),
            Variant("distances", "mahalanobis")]


def _world(seed: int = 0):
    """Distances of benign rows in topic groups (a group = a shared log-ratio level), and attacked rows.

    The seen groups have levels 0.4 ... 1.3; the unseen ones 0.3 and 0.35. A jailbroken row turns towards
    the harmful centre in its second half."""
    rng = np.random.default_rng(seed)
    levels = {f"g{i}": 0.4 + 0.15 * i for i in range(7)} | {"u0": 0.3, "u1": 0.35}
    role_counts = {"guard_fit": 12, "calibration": 10, "eval_seen_topics": 6}
    z, roles, groups = [], [], []
    for g, level in levels.items():
        counts = {"eval_unseen_topics": 25} if g.startswith("u") else role_counts
        for role, n in counts.items():
            z.append(level + rng.normal(0.0, 0.05, (n, 1)) + rng.normal(0.0, 0.02, (n, S)))
            roles += [role] * n
            groups += [g] * n
    jb = 0.9 + rng.normal(0.0, 0.05, (40, 1)) + rng.normal(0.0, 0.02, (40, S))
    jb[:, S // 2:] -= 1.5
    z.append(jb)
    roles += ["attacked"] * 40
    groups += ["h"] * 40
    z = np.concatenate(z)
    d_harmless = 0.05 * np.exp(rng.normal(0.0, 0.1, z.shape))
    d_harmful = d_harmless * np.exp(z)
    roles = np.array(roles)
    sets = {r: np.flatnonzero(roles == r) for r in ("guard_fit", "calibration", "eval_seen_topics",
                                                     "eval_unseen_topics", "attacked")}
    sets["jailbroken"] = sets["attacked"]
    return (d_harmful, d_harmless), sets, np.array(groups), np.isin(roles, ["attacked"])


@pytest.mark.parametrize("rule", ["topic_heldout", "calibration"])
def test_selection_reads_only_guard_fit_and_calibration_rows(rule: str) -> None:
    dist, sets, groups, _ = _world()
    clean = select_variant(dist, sets, groups, seed=0, variants=VARIANTS, threshold=rule)
    poisoned = tuple(d.copy() for d in dist)
    other = np.setdiff1d(np.arange(len(groups)), np.concatenate([sets["guard_fit"], sets["calibration"]]))
    for d in poisoned:
        d[other] = np.nan  # every eval and attacked row
    poisoned_groups = groups.copy()
    poisoned_groups[other] = "g0"  # a lie about other rows' groups changes nothing either
    picked = select_variant(poisoned, sets, poisoned_groups, seed=0, variants=VARIANTS, threshold=rule)
    assert picked == clean
    assert clean["rows_read"] == len(sets["guard_fit"]) + len(sets["calibration"])


def test_selection_replaces_the_paper_guard_only_when_it_fails_on_held_out_topics() -> None:
    dist, sets, groups, _ = _world()  # thresholds on the calibration rows (the paper's rule)
    sel = select_variant(dist, sets, groups, seed=0, variants=VARIANTS, threshold="calibration")
    paper = sel["cv"][PAPER_FAST.name]
    assert paper["folds"] == 7 and paper["fpr"]["n"] == 154
    assert paper["fpr"]["rate"] > 0.03  # the saturated signal flags held-out topics
    assert sel["chosen"] != PAPER_FAST.name
    assert sel["cv"][sel["chosen"]]["fpr"]["rate"] < paper["fpr"]["rate"]
    # a paper guard that generalises is kept: here only the comfortably interior groups are benign
    inner = {k: v[np.isin(groups[v], [f"g{i}" for i in range(3, 7)])] for k, v in sets.items()}
    kept = select_variant(dist, inner, groups, seed=0, variants=[Variant("log_ratio", "mahalanobis"), *VARIANTS[1:]],
                          max_ratio=100.0, threshold="calibration")
    assert kept["chosen"] == "log_ratio+mahalanobis+robust" and "within" in kept["rule"]


def test_compare_variants_reports_every_variant_and_the_chosen_one() -> None:
    dist, sets, groups, harmful = _world()
    out = compare_variants(None, None, sets, harmful, groups, quantile=0.99, seed=0, n_boot=50, distances=dist,
                           variants=VARIANTS, threshold="calibration")
    assert list(out["variants"]) == [v.name for v in VARIANTS] and out["paper"] == PAPER_FAST.name
    assert out["chosen"] == out["selection"]["chosen"]
    for entry in out["variants"].values():
        q = entry["at_quantile"]
        assert q["fpr_eval_unseen_topics"]["n"] == 50 and q["fpr_eval_seen_topics"]["n"] == 42
        assert q["tpr_jailbroken"]["n"] == 40
        assert set(entry["at_fpr"]) == {"1%", "5%"}
        assert entry["auroc_jailbroken_vs_eval_unseen_topics"]["n_neg"] == 50
    # the report's table of it: one row per variant, the paper's and the chosen one marked
    from srilab.analysis.guard_variants import variant_table
    from srilab.report.ablation_report import GUARD_HEADER, guard_rows_for

    rows = guard_rows_for("arm", variant_table(out))
    assert len(rows) == len(VARIANTS) and all(len(r) == len(GUARD_HEADER) for r in rows)
    assert [r[2] for r in rows if r[1] == out["chosen"]][0].endswith("chosen") and rows[0][2].startswith("paper")
    paper, chosen = out["variants"][PAPER_FAST.name], out["variants"][out["chosen"]]
    assert paper["at_quantile"]["fpr_eval_unseen_topics"]["rate"] > 0.3
    # 70 calibration rows put the 99% threshold near their maximum: far fewer alarms, not yet the nominal rate
    assert chosen["at_quantile"]["fpr_eval_unseen_topics"]["rate"] <= 0.15
    assert chosen["at_quantile"]["tpr_jailbroken"]["rate"] > 0.95


def test_a_threshold_on_out_of_topic_scores_holds_on_unseen_topics() -> None:
    """The paper's guard unchanged, its threshold set on out-of-topic scores: far fewer alarms on the unseen
    topics, the CV estimate (leave one group out, no refit) near them, the jailbreaks still caught."""
    dist, sets, groups, harmful = _world()
    fits = fit_variants(dist, sets, groups, seed=0, variants=VARIANTS, threshold="topic_heldout")
    out = {rule: compare_variants(None, None, sets, harmful, groups, quantile=0.99, seed=0, n_boot=50, distances=dist,
                                  variants=VARIANTS, threshold=rule, fits=fits if rule == "topic_heldout" else None)
           for rule in ("topic_heldout", "calibration")}
    assert out["topic_heldout"]["threshold_rule"] == "topic_heldout"
    at = {rule: o["variants"][PAPER_FAST.name]["at_quantile"] for rule, o in out.items()}
    assert at["calibration"]["fpr_eval_unseen_topics"]["rate"] > 0.3
    assert at["topic_heldout"]["fpr_eval_unseen_topics"]["rate"] <= 0.1
    assert at["topic_heldout"]["threshold"] > at["calibration"]["threshold"]
    assert at["topic_heldout"]["tpr_jailbroken"]["rate"] > 0.95
    paper = fits[PAPER_FAST.name]
    assert paper.guard.threshold_rule == "topic_heldout" and paper.cv["folds"] == 7 and paper.cv["fpr"]["n"] == 154
    # on calibration data alone it wins: leave one topic group out, fewer of its rows are flagged under it
    refit = fit_variants(dist, sets, groups, seed=0, variants=VARIANTS, threshold="calibration")
    assert all(fits[n].cv["fpr"]["k"] <= refit[n].cv["fpr"]["k"] for n in fits)
    assert sum(f.cv["fpr"]["k"] for f in fits.values()) < sum(f.cv["fpr"]["k"] for f in refit.values()) / 2
    # the fits passed in are the ones compared: the same thresholds as fitting afresh
    again = compare_variants(None, None, sets, harmful, groups, quantile=0.99, seed=0, n_boot=50, distances=dist,
                             variants=VARIANTS, threshold="topic_heldout")
    assert again["variants"][PAPER_FAST.name]["at_quantile"] == at["topic_heldout"]
    with pytest.raises(SrilabError, match="unknown guard threshold rule 'median'"):
        fit_variants(dist, sets, groups, variants=VARIANTS, threshold="median")


def test_default_variants_start_with_the_paper_guard() -> None:
    vs = default_variants("knn")
    assert vs[0] == Variant("sri", "knn", "none") and len(vs) == 10
    assert len({v.name for v in vs}) == len(vs)


def test_compare_variants_needs_inputs() -> None:
    dist, sets, groups, harmful = _world()
    with pytest.raises(SrilabError, match="activations and centres"):
        compare_variants(None, None, sets, harmful, groups)


def test_the_study_guard_is_the_calibration_choice_and_a_bad_name_is_refused() -> None:
    from srilab.analysis.guard_variants import choose_guard, variant_features
    from srilab.sri.variants import check_variant
    from srilab.study.config import SRISpec

    dist, sets, groups, _ = _world()
    variant, guard, choice = choose_guard(dist, sets, groups, variant="auto", detector="autoencoder", quantile=0.99,
                                          seed=0, threshold="calibration")
    assert choice["paper"] == "sri+autoencoder+none" and set(choice["cv_fpr"]) == {v.name for v in default_variants()}
    assert choice["variant"] != choice["paper"] and variant.name == choice["variant"]  # the paper's fails unseen
    assert choice["threshold_rule"] == "calibration" == guard.threshold_rule
    scores = guard.score(variant_features(dist, variant))
    assert scores.shape == (len(groups),)
    assert np.mean(scores[sets["calibration"]] > guard.threshold) <= 0.05  # its threshold: a calibration quantile
    named = choose_guard(dist, sets, groups, variant="log_ratio+mahalanobis+robust", detector="autoencoder",
                         quantile=0.99, seed=0)
    assert named[2]["variant"] == "log_ratio+mahalanobis+robust" and set(named[2]["cv_fpr"]) == {named[0].name}
    assert named[1].threshold_rule == "topic_heldout" and named[2]["threshold_rule"] == "topic_heldout"
    paper = choose_guard(dist, sets, groups, variant="paper", detector="knn", quantile=0.99, seed=0)
    assert paper[0] == Variant("sri", "knn", "none") and "paper" in paper[2]["rule"]
    with pytest.raises(SrilabError, match="not one of detector 'knn'"):
        choose_guard(dist, sets, groups, variant="sri+autoencoder+none", detector="knn", quantile=0.99, seed=0)
    assert check_variant("auto") == "auto" and SRISpec(variant="paper").variant == "paper"
    with pytest.raises(ValueError, match="unknown guard variant 'sri\\+svm'"):
        SRISpec(variant="sri+svm")
