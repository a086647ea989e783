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
