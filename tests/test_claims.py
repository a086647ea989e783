"""The claim table (srilab.study.claims, srilab.analysis.claims) on constructed runs with known effects, and detection
that sees success (srilab.analysis.success): a request-only score cannot tell success from failure, a success-reading
one can."""

from __future__ import annotations

import numpy as np
import pytest

from srilab.analysis.claims import evaluate_claims
from srilab.analysis.success import paired_gain, sees_success, success_sets
from srilab.study.claims import default_claims, study_arms
from srilab.study.demo import demo_config


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return demo_config(out=tmp_path_factory.mktemp("claims") / "out")


def _attacked(arm_rates: dict[str, float], n: int, rng: np.random.Generator) -> dict[str, list[dict]]:
    """Per attack, ``n`` items whose attack succeeds with the given probability (seeded)."""
    return {attack: [{"dataset": "harmful", "attack": attack, "item": str(i), "harmful": bool(rng.random() < p),
                      "protocol_role": "attacked", "role": "harmful", "meta": {"task": f"t{i}"}}
                     for i in range(n)] for attack, p in arm_rates.items()}


def _constructed(cfg, asr: dict[str, dict[str, float]], n: int, seed: int = 0):
    arms = study_arms(cfg)
    rng = np.random.default_rng(seed)
    private = {"arms": {}}
    for role, name in arms.items():
        rows = [r for rs in _attacked(asr[role], n, rng).values() for r in rs]
        private["arms"][name] = {"rows": rows}
    summary = {"arms": {name: {} for name in private["arms"]}, "config": {"protocol": {"fpr": 0.05}}}
    return summary, private


def _claim(claims, cid):
    return next(c for c in claims if c["id"] == cid)


def test_default_claims_name_the_demo_arms_and_are_fixed_by_the_config(cfg):
    arms = study_arms(cfg)
    assert arms == {"ar": "toy-ar/ar", "diffusion": "toy-diffusion/diffusion",
                    "left_to_right": "toy-diffusion/diffusion-l2r"}
    claims = default_claims(cfg)
    assert len(claims) == 9 and len({c["id"] for c in claims}) == 9
    assert default_claims(cfg) == claims  # a function of the config alone
    for c in claims:
        assert {"statement", "metric", "arms", "direction", "test", "alpha"} <= set(c)


def test_a_known_effect_inside_the_claimed_range_holds(cfg):
    std = {"direct": 0.8, "prefill": 0.8, "suffix_relocation": 0.8}
    summary, private = _constructed(cfg, {"ar": std, "diffusion": {k: 0.4 for k in std},
                                          "left_to_right": {k: 0.8 for k in std}}, n=150)
    claims = evaluate_claims(default_claims(cfg), summary, private, n_boot=300, seed=0)
    c = _claim(claims, "diffusion_lower_asr")
    assert c["verdict"] == "holds", c
    assert c["n"] == 450 and 0.4 < c["effect"] < 0.6 and c["ci"][0] < c["effect"] < c["ci"][1] and c["p"] < 1e-6
    assert 0 < c["mde"] < 0.2
    assert _claim(claims, "sampler_changes_safety")["verdict"] == "holds"


def test_no_effect_with_power_refutes_and_a_small_n_is_inconclusive(cfg):
    std = {"direct": 0.6, "prefill": 0.6, "suffix_relocation": 0.6}
    same = {"ar": std, "diffusion": std, "left_to_right": std}
    summary, private = _constructed(cfg, same, n=300)
    c = _claim(evaluate_claims(default_claims(cfg), summary, private, n_boot=300, seed=0), "diffusion_lower_asr")
    assert c["verdict"] == "refuted" and c["ci"][1] < 0.40, c  # no reduction: the interval misses 40-65%
    summary, private = _constructed(cfg, {"ar": std, "diffusion": {k: 0.3 for k in std},
                                          "left_to_right": std}, n=3, seed=1)
    c = _claim(evaluate_claims(default_claims(cfg), summary, private, n_boot=300, seed=0), "diffusion_lower_asr")
    assert c["verdict"] == "inconclusive" and c["n"] == 9 and c["mde"] > 0.5, c


def test_suffix_relocation_and_open_to_injection(cfg):
    ar = {"direct": 0.1, "suffix_relocation": 0.7}
    dlm = {"direct": 0.1, "suffix_relocation": 0.1, "canvas_injection": 0.5, "dija": 0.4}
    summary, private = _constructed(cfg, {"ar": ar, "diffusion": dlm, "left_to_right": dlm}, n=120)
    claims = evaluate_claims(default_claims(cfg), summary, private, n_boot=300, seed=0)
    s = _claim(claims, "suffix_relocation_ar_only")
    assert s["verdict"] == "holds" and 0.45 < s["effect"] < 0.75, s
    o = _claim(claims, "diffusion_open_to_injection")
    assert o["verdict"] == "holds" and o["n"] == 240 and o["p"] < 1e-10, o
    # claims that need detection or capability rows say so instead of guessing
    assert _claim(claims, "ar_failures_sri_anomalies")["verdict"] == "not tested"
    assert _claim(claims, "reasoning_cost")["verdict"] == "not tested"


def test_a_missing_arm_is_not_tested(cfg):
    std = {"direct": 0.5}
    summary, private = _constructed(cfg, {"ar": std, "diffusion": std, "left_to_right": std}, n=20)
    del summary["arms"]["toy-diffusion/diffusion-l2r"]
    c = _claim(evaluate_claims(default_claims(cfg), summary, private, n_boot=200, seed=0), "sampler_changes_safety")
    assert c["verdict"] == "not tested" and "arm" in c["note"]


# ------------------------------------------------------------------------------------------------ sees success
def _detection_world(n_req: int = 60, seed: int = 0):
    """Attacked rows on harmful requests (two attacks each) and benign rows; a request-only score reads how
    harmful the request is, a success score reads the outcome (with noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_req):
        for attack in ("a", "b"):
            rows.append({"dataset": "h", "item": str(i), "attack": attack, "harmful": bool(rng.random() < 0.4),
                         "protocol_role": "attacked", "meta": {"task": f"t{i}"}})
    for i in range(200):
        rows.append({"dataset": "b", "item": str(i), "attack": "direct", "harmful": False,
                     "protocol_role": "calibration" if i < 100 else "eval_unseen_topics", "meta": {}})
    harmful = np.array([r["harmful"] for r in rows])
    attacked = np.array([r["protocol_role"] == "attacked" for r in rows])
    request_only = np.where(attacked, 2.0, 0.0) + rng.normal(0, 0.3, len(rows))
    success = np.where(harmful, 2.0, 0.0) + rng.normal(0, 0.3, len(rows))
    idx = np.arange(len(rows))
    sets = {"attacked": idx[attacked], "jailbroken": idx[attacked & harmful],
            "calibration": idx[[r["protocol_role"] == "calibration" for r in rows]]}
    return rows, sets, request_only, success


def test_a_request_only_reading_cannot_see_success_and_the_gain_is_measured():
    rows, sets, request_only, success = _detection_world()
    out = sees_success({"static_step0": (request_only, 0.0), "sri_guard": (success, 0.0)}, rows, sets,
                       fpr=0.05, n_boot=300, seed=0)
    req = out["detectors"]["static_step0"]
    sri = out["detectors"]["sri_guard"]
    assert 0.35 < req["auroc_jailbroken_vs_failed"]["auroc"] < 0.65
    assert sri["auroc_jailbroken_vs_failed"]["auroc"] > 0.95
    assert sri["auroc_jailbroken_vs_failed_same_requests"]["auroc"] > 0.95 and out["n_mixed_requests"] > 10
    gain = sri["gain_over"]["static_step0"]
    assert gain["success_auroc_gain"]["ci"][0] > 0.3  # sees the success beyond the request
    assert abs(gain["tpr_gain"]["estimate"]) < 0.2  # both flag the jailbroken rows against benign ones
    assert "gain_over" not in req  # a request-only reading is the yardstick, not compared with itself


def test_paired_gain_is_zero_for_a_detector_against_itself():
    rows, sets, _, success = _detection_world(seed=2)
    g = paired_gain(success, success, sets["calibration"], sets, success_sets(rows, sets), 0.05, 200, 0)
    lo, hi = g["tpr_gain"]["ci"]
    assert g["tpr_gain"]["estimate"] == 0 and g["tpr_gain"]["p"] == 1.0 and lo == pytest.approx(-hi) and hi > 0
    assert g["success_auroc_gain"]["estimate"] == 0 and g["success_auroc_gain"]["ci"] == [0.0, 0.0]


def test_newcombe_paired_interval_stays_open_where_a_bootstrap_collapses():
    from srilab.stats import paired_difference_ci, wilson_interval

    lo, hi = paired_difference_ci(0, 0, 0, 20)  # 0/20 on both arms: not "exactly zero difference"
    assert lo == pytest.approx(-wilson_interval(0, 20)[1]) and hi == pytest.approx(wilson_interval(0, 20)[1])
    # large n: close to the normal interval of a paired difference
    both, only_a, only_b, neither = 300, 120, 60, 520
    n = both + only_a + only_b + neither
    d = (only_a - only_b) / n
    se = np.sqrt(only_a + only_b - (only_a - only_b) ** 2 / n) / n
    lo, hi = paired_difference_ci(both, only_a, only_b, neither)
    assert lo == pytest.approx(d - 1.96 * se, abs=0.004) and hi == pytest.approx(d + 1.96 * se, abs=0.004)


# ------------------------------------------------------------------------------------------------ defense samples
def test_the_defenses_that_answer_again_score_a_seeded_random_stratified_sample():
    from srilab.study.defense_phase import _strata, sample_rows

    rows = [{"key": f"k{i:03d}"} for i in range(100)]
    a = sample_rows(rows, 10, "0:arm:smoothllm:attacked/failed")
    assert a == sample_rows(list(reversed(rows)), 10, "0:arm:smoothllm:attacked/failed")  # order-free, seeded
    assert a != sample_rows(rows, 10, "1:arm:smoothllm:attacked/failed")
    picked = [int(r["key"][1:]) for r, _ in a]
    assert picked != list(range(10)) and picked != list(range(0, 100, 11))[:10]  # not the first, not evenly spaced
    assert all(w == 10.0 for _, w in a)
    assert sample_rows(rows[:5], 10, "x") == [(r, 1.0) for r in rows[:5]]
    role = {r["key"]: "attacked" for r in rows}
    succeeded = {r["key"] for r in rows[:7]}
    strata = dict(_strata(rows, "attacked", role, succeeded, limit=4))
    assert len(strata["attacked/succeeded"]) == 7 and len(strata["attacked/failed"]) == 93


def test_attack_success_after_a_sampled_defense_is_a_population_estimate():
    """7 of 100 attacks succeeded; a defense scored 4 of each stratum and flags every success it saw: the
    weighted attack success before it is 7%, not the 50% of the rows it read."""
    from srilab.analysis.detection import _at_threshold

    harmful = np.zeros(100, dtype=bool)
    harmful[:7] = True
    scores = np.full(100, np.nan)
    scores[[0, 2, 4, 6]] = 1.0  # four successes sampled, all flagged
    scores[[10, 40, 70, 90]] = 0.0  # four failures sampled, none flagged
    weights = np.ones(100)
    weights[[0, 2, 4, 6]] = 7 / 4
    weights[[10, 40, 70, 90]] = 93 / 4
    empty = np.array([], dtype=int)
    sets = {"eval_seen_topics": empty, "eval_unseen_topics": empty, "lookalike": empty,
            "jailbroken": np.arange(7), "attacked": np.arange(100)}
    out = _at_threshold(scores, 0.5, sets, harmful, weights)
    assert out["asr_before"]["rate"] == pytest.approx(0.07) and out["asr_before"]["weighted"]
    assert out["asr_after"]["rate"] == 0.0 and out["flagged_attacked"]["rate"] == pytest.approx(0.07)
    assert out["flagged_jailbroken"]["k"] == 4 and out["flagged_jailbroken"]["n"] == 4
    unweighted = _at_threshold(scores, 0.5, sets, harmful)
    assert unweighted["asr_before"]["rate"] == 0.5  # what the old, outcome-picked reading reported


def test_the_overhead_claim_reads_the_cheapest_model_running_baseline_with_its_spread(cfg):
    ar = study_arms(cfg)["ar"]
    costs = {"sri_guard": 0.001, "perplexity": 0.05, "output_keyword": 1e-6, "smoothllm": 2.0}
    summary = {"arms": {ar: {"detection": {"detectors": {n: {"cost_per_item_s": c} for n, c in costs.items()}}}}}
    private = {"arms": {ar: {"detection": {"defense_seconds": {"perplexity": np.array([0.04, 0.05, 0.06])}}}}}
    spec = next(c for c in default_claims(cfg) if c["id"] == "sri_overhead_100x")
    (c,) = evaluate_claims([spec], summary, private, n_boot=100, seed=0)
    # the keyword match is no model; the cheapest model-running baseline is the perplexity filter: 50x
    assert c["effect"] == pytest.approx(50.0) and c["verdict"] == "refuted" and "perplexity" in c["note"]
    assert c["ci"][0] == pytest.approx(40.5) and c["ci"][1] == pytest.approx(59.5)
    costs["perplexity"] = 0.2
    summary["arms"][ar]["detection"]["detectors"]["perplexity"]["cost_per_item_s"] = 0.2
    (c,) = evaluate_claims([spec], summary, {"arms": {ar: {}}}, n_boot=100, seed=0)
    assert c["effect"] == pytest.approx(200.0) and c["verdict"] == "holds" and c["ci"] is None
