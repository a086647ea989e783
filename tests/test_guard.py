"""Tests for the SRI guard: benign-only detectors, calibration, persistence and input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from srilab.errors import SrilabError
from srilab.sri.detectors import DETECTORS, make_detector
from srilab.sri.guard import SRIGuard
from srilab.stats import auroc, fpr_at_threshold

S = 32
T = np.arange(S)
KEY = {"model": "toy-diffusion", "sampler": "low_confidence", "steps": S, "layer": "last"}


def benign(n: int, seed: int) -> np.ndarray:
    """Refusal-like benign curves: a noisy decay from ~0.8-0.95 to ~0.1."""
    rng = np.random.default_rng(seed)
    tau = rng.uniform(3.0, 8.0, (n, 1))
    amp = rng.uniform(0.7, 0.85, (n, 1))
    x = 0.1 + amp * np.exp(-T / tau) + rng.normal(0.0, 0.03, (n, S))
    return np.clip(x, 1e-3, 1 - 1e-3)


def anomalous(n: int, seed: int) -> np.ndarray:
    """Half decay then rise again at the end (late compliance), half stay high throughout."""
    rng = np.random.default_rng(seed)
    x = benign(n, seed + 1000)
    half = n // 2
    x[:half] += 0.7 * np.clip((T - 2 * S / 3) / (S / 3), 0.0, 1.0)
    x[half:] = rng.uniform(0.6, 0.85, (n - half, 1)) + rng.normal(0.0, 0.03, (n - half, S))
    return np.clip(x, 1e-3, 1 - 1e-3)


TRAIN = benign(800, 0)
FRESH = benign(2000, 1)
BAD = anomalous(300, 2)


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def fitted(request: pytest.FixtureRequest) -> SRIGuard:
    return SRIGuard(detector=request.param, quantile=0.95, seed=0, key=KEY).fit(TRAIN)


def test_guard_separates_anomalous_curves_and_calibrates_fpr(fitted: SRIGuard) -> None:
    fresh_scores = fitted.score(FRESH)
    bad_scores = fitted.score(BAD)
    assert auroc(bad_scores, fresh_scores) > 0.95
    fpr = fpr_at_threshold(fresh_scores, fitted.threshold)
    assert abs(fpr - (1 - fitted.quantile)) < 0.035
    assert fitted.predict(BAD).mean() > 0.9
    assert fitted.predict(FRESH).dtype == bool
    assert fitted.n_fit == 560 and fitted.n_holdout == 240


def test_guard_save_load_round_trip_gives_identical_scores(fitted: SRIGuard, tmp_path: Path) -> None:
    fitted.save(tmp_path / "g")
    meta = json.loads((tmp_path / "g" / "guard.json").read_text())
    assert meta["detector"] == fitted.detector_name and meta["steps"] == S and meta["key"] == KEY
    assert meta["threshold"] == fitted.threshold and meta["quantile"] == 0.95 and meta["seed"] == 0
    loaded = SRIGuard.load(tmp_path / "g", expected_key=dict(KEY))
    assert loaded.threshold == fitted.threshold
    probe = np.r_[FRESH[:50], BAD[:50]]
    np.testing.assert_array_equal(loaded.score(probe), fitted.score(probe))
    np.testing.assert_array_equal(loaded.predict(probe), fitted.predict(probe))


def test_fit_is_deterministic() -> None:
    a = SRIGuard("autoencoder", seed=3, options={"epochs": 60}).fit(TRAIN[:200])
    state = torch.get_rng_state()
    b = SRIGuard("autoencoder", seed=3, options={"epochs": 60}).fit(TRAIN[:200])
    assert torch.equal(state, torch.get_rng_state())  # the global torch RNG is left alone
    assert a.threshold == b.threshold
    np.testing.assert_array_equal(a.score(BAD[:20]), b.score(BAD[:20]))
    c = SRIGuard("autoencoder", seed=4, options={"epochs": 60}).fit(TRAIN[:200])
    assert c.threshold != a.threshold


def test_mismatched_key_raises_naming_the_fields(tmp_path: Path) -> None:
    SRIGuard("knn", key=KEY).fit(TRAIN[:100]).save(tmp_path)
    other = {**KEY, "sampler": "random", "layer": "middle"}
    with pytest.raises(SrilabError) as err:
        SRIGuard.load(tmp_path, expected_key=other)
    msg = str(err.value)
    assert "guard was fitted for" in msg and "but is used with" in msg
    assert '"low_confidence"' in msg and '"random"' in msg and "layer" in msg
    assert "model" not in msg and "\n" not in msg
    with pytest.raises(SrilabError, match="extra=<missing>"):
        SRIGuard.load(tmp_path, expected_key={**KEY, "extra": 1})
    assert SRIGuard.load(tmp_path).key == KEY  # no expected key: no check


def test_wrong_signal_length_raises() -> None:
    guard = SRIGuard("mahalanobis").fit(TRAIN[:100])
    with pytest.raises(SrilabError, match="S=16 steps but the guard was fitted on S=32"):
        guard.score(TRAIN[:5, :16])
    assert guard.score(TRAIN[0]).shape == (1,)  # one [S] signal is accepted


def test_nan_and_invalid_inputs_raise() -> None:
    bad = TRAIN[:100].copy()
    bad[7, 3] = np.nan
    with pytest.raises(SrilabError, match="benign_signals contains NaN.*row 7"):
        SRIGuard("knn").fit(bad)
    guard = SRIGuard("knn").fit(TRAIN[:100])
    with pytest.raises(SrilabError, match="signals contains NaN"):
        guard.score(bad)
    with pytest.raises(SrilabError, match=r"outside \[0, 1\]"):
        guard.score(TRAIN[:5] * 3)
    with pytest.raises(SrilabError, match="empty"):
        guard.score(np.zeros((0, S)))
    with pytest.raises(SrilabError, match="not fitted"):
        SRIGuard().score(TRAIN[:5])
    with pytest.raises(SrilabError, match="unknown guard detector"):
        SRIGuard("svm")
    with pytest.raises(SrilabError, match="unknown guard detector"):
        make_detector("svm")
    with pytest.raises(SrilabError, match="quantile"):
        SRIGuard(quantile=1.5)
    with pytest.raises(SrilabError, match="at least 3"):
        SRIGuard("knn").fit(TRAIN[:2])


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(SrilabError, match="guard.json is missing"):
        SRIGuard.load(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------
# representations and robust scaling (issue 15)
# --------------------------------------------------------------------------------------------------


def _log_ratio_rows(n: int, lo: float, hi: float, seed: int, steps: int = 16) -> np.ndarray:
    """Benign log-ratios: a per-row level in [lo, hi] shared by all steps (the topic), plus small noise."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, (n, 1)) + rng.normal(0.0, 0.03, (n, steps))


def test_representations_agree_with_the_paper_signal() -> None:
    from srilab.sri.representation import features, features_from_distances, width
    from srilab.sri.signal import log_ratio, signal, step_distances

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(6, 5, 12))
    centres = (rng.normal(size=(5, 12)), rng.normal(size=(5, 12)))
    s = signal(acts, centres)
    np.testing.assert_allclose(features(acts, centres, "sri"), s, rtol=0, atol=1e-12)
    z = features(acts, centres, "log_ratio")
    np.testing.assert_allclose(z, log_ratio(acts, centres), rtol=0, atol=1e-12)
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-z / 0.1)), s, rtol=0, atol=1e-12)
    dh, dl = step_distances(acts, centres)
    both = features_from_distances(dh, dl, "distances")
    assert both.shape == (6, width("distances", 5)) == (6, 10)
    np.testing.assert_allclose(both[:, :5] - both[:, 5:], z, rtol=0, atol=1e-12)
    with pytest.raises(SrilabError, match="unknown SRI representation"):
        features(acts, centres, "raw")
    with pytest.raises(SrilabError, match="unknown SRI representation"):
        SRIGuard(representation="raw")


def test_robust_scaler_uses_median_iqr_and_floors_constant_columns() -> None:
    from srilab.sri.representation import RobustScaler

    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(5.0, 2.0, 4000), rng.normal(-1.0, 0.5, 4000), np.full(4000, 3.0)]
    sc = RobustScaler(floor=0.1).fit(X)
    np.testing.assert_allclose(sc.centre, [5.0, -1.0, 3.0], atol=0.1)
    np.testing.assert_allclose(sc.scale[:2], [2.0, 0.5], rtol=0.06)
    assert sc.scale[2] == pytest.approx(0.1 * np.median((np.quantile(X, 0.75, 0) - np.quantile(X, 0.25, 0)) / 1.349))
    assert np.abs(sc.transform(X)[:, 2]).max() == 0.0


def test_saturated_signal_paper_guard_over_flags_an_unseen_topic_and_robust_guard_does_not() -> None:
    """At tau = 0.1 the sigmoid squeezes benign log-ratios of 0.5-1.3 into s in [0.993, 1); a benign topic
    at 0.4-0.6 (inside the benign log-ratio range, in part) sits at s ~ 0.98, a few 0.01-floored standard
    units away on every step: the paper's guard flags it. On the log-ratio, with robust scaling and a
    Mahalanobis detector that models the shared per-row level, it is an ordinary benign row."""
    from srilab.sri.signal import sigmoid_of_log_ratio

    fit, cal = _log_ratio_rows(300, 0.5, 1.3, 0), _log_ratio_rows(200, 0.5, 1.3, 1)
    seen, unseen = _log_ratio_rows(300, 0.5, 1.3, 2), _log_ratio_rows(300, 0.4, 0.6, 3)
    bad = _log_ratio_rows(100, 0.5, 1.3, 4)
    bad[:, 8:] -= 1.5  # late turn towards the harmful centre
    paper = SRIGuard("autoencoder", quantile=0.99).fit(sigmoid_of_log_ratio(fit), calibration=sigmoid_of_log_ratio(cal))
    robust = SRIGuard("mahalanobis", quantile=0.99, representation="log_ratio", scaling="robust")
    robust.fit(fit, calibration=cal)
    assert paper.predict(sigmoid_of_log_ratio(seen)).mean() < 0.04
    assert paper.predict(sigmoid_of_log_ratio(unseen)).mean() > 0.3  # the issue
    assert robust.predict(seen).mean() < 0.04
    assert robust.predict(unseen).mean() < 0.06  # within ~3x the nominal 1%
    assert paper.predict(sigmoid_of_log_ratio(bad)).mean() > 0.95
    assert robust.predict(bad).mean() > 0.95  # and it still sees the anomaly


@pytest.mark.parametrize("representation", ["sri", "log_ratio", "distances"])
@pytest.mark.parametrize("detector", ["autoencoder", "mahalanobis", "knn"])
def test_save_load_round_trip_per_representation(representation: str, detector: str, tmp_path: Path) -> None:
    width = 2 * 16 if representation == "distances" else 16
    X = _log_ratio_rows(120, 0.5, 1.3, 5, steps=width)
    if representation == "sri":
        X = 1.0 / (1.0 + np.exp(-X / 0.1))
    guard = SRIGuard(detector, seed=2, key=KEY, options={"epochs": 40} if detector == "autoencoder" else {},
                     representation=representation, scaling="robust").fit(X[:80], calibration=X[80:])
    guard.save(tmp_path / "g")
    meta = json.loads((tmp_path / "g" / "guard.json").read_text())
    assert meta["representation"] == representation and meta["scaling"] == "robust"
    loaded = SRIGuard.load(tmp_path / "g", expected_key=dict(KEY), representation=representation)
    assert loaded.representation == representation and loaded.threshold == guard.threshold
    np.testing.assert_array_equal(loaded.score(X), guard.score(X))
    other = "log_ratio" if representation != "log_ratio" else "sri"
    with pytest.raises(SrilabError, match="representation"):
        SRIGuard.load(tmp_path / "g", representation=other)


def test_unbounded_representations_accept_values_outside_unit_interval() -> None:
    X = _log_ratio_rows(60, -2.0, 3.0, 6)
    guard = SRIGuard("knn", representation="log_ratio").fit(X[:40], calibration=X[40:])
    assert np.isfinite(guard.score(X)).all()
    with pytest.raises(SrilabError, match=r"outside \[0, 1\]"):
        SRIGuard("knn").fit(X[:40], calibration=X[40:])


def test_guard_and_centre_files_from_different_fits_are_one_error(tmp_path) -> None:
    from safetensors.numpy import save_file

    from srilab.sri.centres import CentreKey, Centres

    a, b = tmp_path / "a", tmp_path / "b"
    SRIGuard("autoencoder", seed=0).fit(TRAIN[:100]).save(a)
    SRIGuard("autoencoder", seed=0).fit(TRAIN[:100, :5]).save(b)  # another fit: 5 steps
    (a / "guard.safetensors").write_bytes((b / "guard.safetensors").read_bytes())  # weights of another fit
    with pytest.raises(SrilabError, match="come from different fits"):
        SRIGuard.load(a)
    key = CentreKey(model="m", sampler={}, layer="last", pooling="generated", data="x")
    Centres(np.zeros((4, 3)), np.ones((4, 3)), key, {}).save(tmp_path / "c")
    save_file({"harmless": np.zeros((4, 3), dtype=np.float32)}, str(tmp_path / "c" / "centres.safetensors"))
    with pytest.raises(SrilabError, match="cannot read .*recompute the centres"):
        Centres.load(tmp_path / "c")


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    from srilab.sri.guard import conformal_quantile

    x = np.arange(1.0, 100.0)  # 99 scores: rank ceil(100 * 0.99) = 99, the largest
    assert conformal_quantile(x, 0.99) == 99.0 and conformal_quantile(x[:9], 0.5) == 5.0
    assert conformal_quantile(x[:10], 0.99) == 10.0  # the rank exceeds n: the largest
    with pytest.raises(SrilabError, match="finite scores"):
        conformal_quantile([1.0, np.nan], 0.9)


def test_a_threshold_on_topics_the_detector_has_not_seen() -> None:
    """With topic groups, every benign and calibration row is scored by a detector fitted without its group;
    the threshold is the conformal quantile of those scores; the scoring detector is the one fitted on all."""
    from srilab.sri.guard import conformal_quantile

    levels = [0.5, 0.7, 0.9, 1.1, 1.3]
    X = np.concatenate([_log_ratio_rows(24, lv - 0.05, lv + 0.05, i) for i, lv in enumerate(levels)])
    g = np.repeat([f"t{i}" for i in range(5)], 24)
    fit, cal = np.arange(len(X)) % 3 != 0, np.arange(len(X)) % 3 == 0
    plain = SRIGuard("mahalanobis", representation="log_ratio").fit(X[fit], calibration=X[cal])
    topic = SRIGuard("mahalanobis", representation="log_ratio").fit(X[fit], calibration=X[cal], groups=(g[fit], g[cal]))
    assert plain.threshold_rule == "calibration" and topic.threshold_rule == "topic_heldout"
    np.testing.assert_allclose(topic.score(X), plain.score(X))  # the same detector scores
    held = topic.heldout_scores
    assert held is not None and held.shape == (len(X),)
    rows, labels = np.concatenate([X[fit], X[cal]]), np.concatenate([g[fit], g[cal]])
    alone = make_detector("mahalanobis", 0).fit(X[fit][g[fit] != "t4"])  # the last topic, out of its own fit
    np.testing.assert_allclose(held[labels == "t4"], alone.score(rows[labels == "t4"]))
    assert topic.threshold == conformal_quantile(held, 0.99) > plain.threshold  # the extreme topics sit far out
    unseen = _log_ratio_rows(200, 1.4, 1.5, 9)  # a topic beyond every fit topic
    assert topic.predict(unseen).mean() < plain.predict(unseen).mean()
    for bad, message in (
        (dict(groups=(g[fit], g[cal][:-1])), "one topic group per row"),
        (dict(groups=(np.full(fit.sum(), "a"), np.full(cal.sum(), "a"))), "1 topic group"),
        (dict(groups=(np.where(np.arange(fit.sum()) == 0, "one", "big"), np.full(cal.sum(), "big"))),
         "can be left out with 2 or more"),
    ):
        with pytest.raises(SrilabError, match=message):
            SRIGuard("mahalanobis", representation="log_ratio").fit(X[fit], calibration=X[cal], **bad)
    # a group that holds all but one benign row cannot be left out: its rows get no score, the others do
    lop = np.where(np.arange(fit.sum()) == 0, "one", "big")
    lopsided = SRIGuard("mahalanobis", representation="log_ratio").fit(X[fit], calibration=X[cal], groups=(lop, g[cal]))
    held, n_big = lopsided.heldout_scores, int((lop == "big").sum())
    assert np.isnan(held[1:n_big + 1]).all() and np.isfinite(held[n_big + 1:]).all() and np.isfinite(held[0])
    assert np.isfinite(lopsided.threshold)
    with pytest.raises(SrilabError, match="pass calibration too"):
        SRIGuard("mahalanobis", representation="log_ratio").fit(X[fit], groups=(g[fit], g[cal]))


def test_the_threshold_rule_is_saved(tmp_path: Path) -> None:
    X = _log_ratio_rows(90, 0.5, 1.3, 7)
    g = np.repeat(["a", "b", "c"], 30)
    guard = SRIGuard("knn", representation="log_ratio").fit(X[:60], calibration=X[60:], groups=(g[:60], g[60:]))
    loaded = SRIGuard.load(guard.save(tmp_path / "g"))
    assert loaded.threshold_rule == "topic_heldout" and loaded.threshold == guard.threshold


def test_autoencoders_fitted_together_are_the_fits_one_by_one() -> None:
    """``fit_many`` trains each member on its own rows from the same seeded start: after a few epochs its
    scores equal a fit of that member alone up to float rounding (Adam's 300 default epochs grow rounding to
    ~1% of a score, so a short run tests the arithmetic); rows of different counts, deterministic."""
    from srilab.sri.detectors import AutoencoderDetector, fit_detectors

    Xs = [TRAIN[:50], TRAIN[100:180], TRAIN[200:230]]
    together = fit_detectors("autoencoder", Xs, 4, epochs=20)
    for X, det in zip(Xs, together, strict=True):
        alone = AutoencoderDetector(4, epochs=20).fit(X)
        np.testing.assert_allclose(det.score(FRESH[:200]), alone.score(FRESH[:200]), rtol=1e-5)
        np.testing.assert_array_equal(det.state()["mean"], alone.state()["mean"])
    again = fit_detectors("autoencoder", Xs, 4, epochs=20)
    np.testing.assert_array_equal(again[1].score(BAD), together[1].score(BAD))
    # a detector without a batched fit gets the loop: the same as fitting each
    knn = fit_detectors("knn", Xs[:2], 0, k=3)
    np.testing.assert_array_equal(knn[1].score(BAD), make_detector("knn", 0, k=3).fit(Xs[1]).score(BAD))
    with pytest.raises(SrilabError, match="one width"):
        fit_detectors("autoencoder", [TRAIN[:10], TRAIN[:10, :5]])
