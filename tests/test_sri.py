import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srilab import SrilabError
from srilab.sri import CentreKey, Centres, compute_centres, data_hash, internal_recovery, signal


def _published(acts, harmless, harmful, tau=0.1, eps=1e-8):
    """The definition written out literally with torch, element by element over steps."""
    a = torch.as_tensor(acts, dtype=torch.float64)
    out = torch.empty(a.shape[:2], dtype=torch.float64)
    for t in range(a.shape[1]):
        d_h = 1 - F.cosine_similarity(a[:, t], torch.as_tensor(harmful[t]).double().unsqueeze(0), dim=-1)
        d_l = 1 - F.cosine_similarity(a[:, t], torch.as_tensor(harmless[t]).double().unsqueeze(0), dim=-1)
        out[:, t] = torch.sigmoid((torch.log(d_h + eps) - torch.log(d_l + eps)) / tau)
    return out.numpy()


KEY = CentreKey(model="m@abc", sampler={"kind": "diffusion", "steps": 4}, layer="last", pooling="generated",
                data=data_hash(["a", "b"]))


def test_signal_equals_published_definition():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(50, 12, 32))
    harmless, harmful = rng.normal(size=(12, 32)), rng.normal(size=(12, 32))
    s = signal(acts, (harmless, harmful))
    assert s.shape == (50, 12)
    assert np.abs(s - _published(acts, harmless, harmful)).max() <= 1e-6
    assert np.abs(signal(torch.tensor(acts, dtype=torch.float32), (harmless, harmful)) - s).max() < 1e-4


def test_signal_direction_and_extremes():
    harmless = np.tile([1.0, 0.0, 0.0], (3, 1))
    harmful = np.tile([0.0, 1.0, 0.0], (3, 1))
    near_harmless = np.array([[[1.0, 0.05, 0.0]] * 3])
    near_harmful = np.array([[[0.05, 1.0, 0.0]] * 3])
    assert (signal(near_harmless, (harmless, harmful)) > 0.99).all()
    assert (signal(near_harmful, (harmless, harmful)) < 0.01).all()
    exactly = signal(np.array([[[1.0, 0.0, 0.0]]]), (harmless[:1], harmful[:1]))
    assert np.isfinite(exactly).all() and exactly[0, 0] > 0.99  # d = 0 is handled by eps


def test_signal_rejects_bad_input():
    c = (np.ones((3, 4)), np.ones((3, 4)))
    with pytest.raises(SrilabError, match="NaN"):
        signal(np.full((2, 3, 4), np.nan), c)
    with pytest.raises(SrilabError, match="do not fit"):
        signal(np.ones((2, 5, 4)), c)
    with pytest.raises(SrilabError, match="tau"):
        signal(np.ones((2, 3, 4)), c, tau=0)


def test_centres_filter_by_refusal_and_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(6, 4, 8))
    harmful = [False, False, False, True, True, True]
    refused = [False, True, False, True, False, True]
    c = compute_centres(acts, harmful, refused, KEY)
    assert np.allclose(c.harmless, acts[[0, 2]].mean(0)) and np.allclose(c.harmful, acts[[3, 5]].mean(0))
    assert c.counts == {"harmless": 2, "harmful": 2}
    c.save(tmp_path / "c")
    back = Centres.load(tmp_path / "c", expected=KEY)
    assert np.allclose(back.harmless, c.harmless, atol=1e-6) and back.key == KEY
    other = CentreKey(**{**KEY.as_dict(), "layer": "middle"})
    with pytest.raises(SrilabError, match="layer: middle != last"):
        Centres.load(tmp_path / "c", expected=other)


def test_centres_need_both_groups():
    acts = np.ones((3, 2, 4))
    with pytest.raises(SrilabError, match="harmful prompts refused"):
        compute_centres(acts, [False, True, True], [False, False, False], KEY)
    with pytest.raises(SrilabError, match="must agree"):
        compute_centres(acts, [False, True], [False, True], KEY)


def test_internal_recovery():
    s = np.array([[0.2, 0.8, 0.1], [0.2, 0.4, 0.1], [0.9, 0.9, 0.9], [0.6, 0.5, 0.35]])
    assert internal_recovery(s).tolist() == [True, False, False, False]


def test_signal_and_centres_take_bf16_tensors():
    """A model run in bf16 (on a GPU) hands over bf16 tensors, which numpy cannot hold: they are widened exactly."""
    rng = np.random.default_rng(0)
    acts = torch.from_numpy(rng.standard_normal((6, 5, 16)).astype(np.float32)).to(torch.bfloat16)
    key = CentreKey("m", {"kind": "diffusion"}, "last", "generated", data_hash(["x"]))
    harmful = [False, False, False, True, True, True]
    centres = compute_centres(acts, harmful, harmful, key)
    wide = compute_centres(acts.float(), harmful, harmful, key)
    assert np.array_equal(centres.harmless, wide.harmless) and np.array_equal(centres.harmful, wide.harmful)
    assert np.array_equal(signal(acts, centres), signal(acts.float(), centres))
