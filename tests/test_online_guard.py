"""Online reading of the SRI guard: prefix scoring, first alarms, and their agreement with offline scores."""

import numpy as np
import pytest

from srilab.errors import SrilabError
from srilab.sri.guard import SRIGuard
from srilab.sri.online import first_alarms, online_summary, online_thresholds, prefix_matrix


def benign_like(n, steps, rng):
    return np.clip(0.9 + 0.03 * rng.standard_normal((n, steps)), 0, 1)


def test_prefix_matrix_fills_the_future():
    s = np.array([[1.0, 2.0, 3.0]])
    m = prefix_matrix(s, np.zeros(3), [0, 2])
    assert m.tolist() == [[1.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
    with pytest.raises(SrilabError):
        prefix_matrix(s, np.zeros(2), [0])
    with pytest.raises(SrilabError):
        prefix_matrix(s, np.zeros(3), [3])


def test_alarms_come_when_the_signal_departs():
    rng = np.random.default_rng(0)
    steps = 24
    benign = benign_like(300, steps, rng)
    guard = SRIGuard("mahalanobis", quantile=0.99, seed=0).fit(benign)
    fill = benign.mean(axis=0)
    attack = benign_like(20, steps, rng)
    attack[:, 12:] = 0.05  # the signal collapses half-way
    alarms = first_alarms(guard, attack, fill, every=1)
    assert (alarms >= 11).all() and (alarms <= 14).all()  # not before the departure, soon after it
    held_out = benign_like(200, steps, rng)
    b_alarms = first_alarms(guard, held_out, fill, every=4)
    # The last step is always checked, so an offline flag is also an online alarm.
    offline = guard.predict(held_out)
    assert ((b_alarms >= 0) | ~offline).all()
    summary = online_summary(b_alarms, alarms, steps)
    assert summary["attack_alarm_rate"] == 1.0
    assert summary["benign_intervention_rate"] < 0.2
    assert 0.4 < summary["attack_mean_alarm_fraction"] < 0.7


def test_unfitted_guard_is_an_error():
    with pytest.raises(SrilabError, match="not fitted"):
        first_alarms(SRIGuard(), np.zeros((2, 4)), np.zeros(4))


def test_per_step_thresholds_calibrate_prefix_alarms():
    rng = np.random.default_rng(1)
    steps = 16
    benign = benign_like(400, steps, rng)
    benign[:, :4] = np.clip(benign[:, :4] + 0.03 * rng.standard_normal((400, 4)), 0, 1)  # noisier early steps
    guard = SRIGuard("mahalanobis", quantile=0.95, seed=0).fit(benign)
    fill = benign.mean(axis=0)
    limits = online_thresholds(guard, benign[guard.holdout_index], fill, every=4)
    assert limits.shape == (4,)
    fresh = benign_like(400, steps, rng)
    fresh[:, :4] = np.clip(fresh[:, :4] + 0.03 * rng.standard_normal((400, 4)), 0, 1)
    alarms = first_alarms(guard, fresh, fill, every=4, thresholds=limits)
    assert (alarms >= 0).mean() < 0.3  # about 1 - 0.95 per check, not every generation


def test_guard_monitor_reads_bf16_states():
    """The live monitor gets phi_t from the trace (float32) or from a caller's own hooks, bf16 on a GPU."""
    import torch

    from srilab.sri.centres import CentreKey, compute_centres
    from srilab.sri.online import GuardMonitor
    from srilab.sri.signal import signal

    rng = np.random.default_rng(1)
    acts = rng.standard_normal((40, 6, 8)).astype(np.float32)
    harmful = np.arange(40) >= 20
    centres = compute_centres(acts, harmful, harmful, CentreKey("m", {"kind": "ar"}, "last", "generated", "d"))
    s = signal(acts, centres)
    guard = SRIGuard("mahalanobis", seed=0).fit(s[~harmful])
    phi = torch.from_numpy(acts[:4, 0]).to(torch.bfloat16)
    answers = []
    for x in (phi, phi.float()):
        monitor = GuardMonitor(centres, guard, s[~harmful].mean(axis=0), every=1)
        monitor.reset(4)
        answers.append(monitor.after_step(0, x).stop.tolist())
    assert answers[0] == answers[1]
