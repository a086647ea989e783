"""The SRI guard read online: an alarm as soon as the signal so far looks anomalous.

At step t a monitor knows s_1..s_t only. It scores that prefix with the (full-length) guard by filling the
steps still to come with the benign mean trajectory, and raises an alarm the first time the score crosses
the guard's threshold. Because a trace at step t depends only on steps <= t, replaying a recorded trace
step by step gives exactly the alarms a live monitor would raise; :func:`first_alarms` does that, in one
vectorised pass, and :func:`online_summary` reports how often the monitor would intervene on benign
generations and how early it catches attacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from srilab.errors import SrilabError
from srilab.sampling.monitor import StopRequest


def prefix_matrix(signals, fill, checks: Sequence[int]) -> np.ndarray:
    """[N * len(checks), S]: for each generation and check step t, s_1..s_t followed by ``fill`` after t."""
    s = np.asarray(signals, dtype=np.float64)
    f = np.asarray(fill, dtype=np.float64)
    if s.ndim != 2 or f.shape != (s.shape[1],):
        raise SrilabError(f"signals must be [N, S] and fill [S]; got {s.shape} and {f.shape}")
    n, steps = s.shape
    if any(not 0 <= t < steps for t in checks):
        raise SrilabError(f"check steps must lie in 0..{steps - 1}")
    t = np.asarray(list(checks))
    keep = np.arange(steps)[None, :] <= t[:, None]  # [C, S]
    out = np.where(keep[None], s[:, None, :], f[None, None, :])  # [N, C, S]
    return out.reshape(n * len(t), steps)


def check_steps(steps: int, every: int) -> list[int]:
    """The steps a monitor checking every ``every`` steps looks at (0-based; always the last)."""
    return sorted({*range(max(1, every) - 1, steps, max(1, every)), steps - 1})


def prefix_scores(guard, signals, fill, every: int = 1) -> np.ndarray:
    """Guard scores of every generation's prefixes at the check steps: [N, C]."""
    if not guard.fitted:
        raise SrilabError("the SRI guard is not fitted: fit it on benign signals before monitoring")
    s = np.asarray(signals, dtype=np.float64)
    checks = check_steps(s.shape[1], every)
    return guard.score(prefix_matrix(s, fill, checks)).reshape(s.shape[0], len(checks))


def online_thresholds(guard, benign_signals, fill, every: int = 1, quantile: float | None = None) -> np.ndarray:
    """Per check step, the ``quantile`` (default: the guard's) of held-out benign prefix scores. A prefix
    filled with the benign mean is not a full benign signal, so each step gets its own calibrated threshold;
    pass held-out benign signals (e.g. ``benign[guard.holdout_index]``), not the detector's training rows."""
    scores = prefix_scores(guard, benign_signals, fill, every)
    return np.quantile(scores, guard.quantile if quantile is None else quantile, axis=0)


def first_alarms(guard, signals, fill, every: int = 1, thresholds=None) -> np.ndarray:
    """Per generation, the first checked step (0-based) whose prefix score exceeds the threshold (per check
    step from :func:`online_thresholds`, else the guard's own); -1 if none."""
    scores = prefix_scores(guard, signals, fill, every)
    limit = guard.threshold if thresholds is None else np.asarray(thresholds, dtype=np.float64)[None, :]
    over = scores > limit
    checks = np.asarray(check_steps(np.asarray(signals).shape[1], every))
    return np.where(over.any(axis=1), checks[over.argmax(axis=1)], -1)


def online_summary(alarms_benign, alarms_attack, steps: int) -> dict[str, float]:
    """Intervention rate on benign generations; alarm rate and mean alarm step (as a fraction of the
    generation) on attacked ones."""
    b = np.asarray(alarms_benign)
    a = np.asarray(alarms_attack)
    out = {
        "benign_intervention_rate": float((b >= 0).mean()) if b.size else 0.0,
        "attack_alarm_rate": float((a >= 0).mean()) if a.size else 0.0,
    }
    if (a >= 0).any():
        out["attack_mean_alarm_fraction"] = float(((a[a >= 0] + 1) / steps).mean())
    return out


class GuardMonitor:
    """The SRI guard live, for ``srilab.sampling.generate(..., monitor=GuardMonitor(...))``.

    After every step it turns that step's pooled activation into s_t (with ``centres``); at every
    ``every``-th step it scores each row's prefix, filled with ``fill`` (the benign mean signal), and stops
    the rows whose score exceeds the threshold of that check step (``thresholds`` from
    :func:`online_thresholds`, else the guard's own). A stopped AR generation gets no more tokens; a stopped
    diffusion generation commits nothing more (its remaining positions stay masked).

    ``action="remask"`` (diffusion only) takes back instead of stopping: an alarm on a row at check step t
    asks the sampler to re-mask the positions of that row committed at steps ``c + 1 .. t``, where c is the
    row's last clean check (-1 before any), i.e. the window that made the score cross; generation goes on
    and the sampler re-decides them, with the tokens it just took back banned at those positions for the
    rest of the generation (so a greedy sampler does not commit them again); text injected into the canvas
    (e.g. a DIJA template) is the attacker's input and is never re-masked. The monitor then rewinds its
    own signal history of that row to its last clean check: s_{c+1..t} is replaced by ``fill``, the benign
    mean used for steps not yet seen, so later checks score the recovered trajectory instead of alarming
    again on a window that is no longer on the canvas (the trace keeps what happened). After
    ``max_remasks`` re-masks of a row, or on an alarm at the last step (no step left to re-decide a
    window), the row is stopped as with ``action="stop"``.
    """

    def __init__(
        self, centres, guard, fill, *, thresholds=None, every: int = 4, action: str = "stop", max_remasks: int = 2
    ) -> None:
        from srilab.sri.signal import TAU

        if not guard.fitted:
            raise SrilabError("the SRI guard is not fitted: fit it on benign signals before monitoring")
        if action not in ("stop", "remask"):
            raise SrilabError(f"unknown monitor action {action!r}: use 'stop' or 'remask'")
        if max_remasks < 0:
            raise SrilabError(f"max_remasks must be >= 0, got {max_remasks}")
        key = getattr(centres, "key", None)
        if action == "remask" and (getattr(key, "sampler", None) or {}).get("kind") == "ar":
            raise SrilabError("re-masking needs a diffusion sampler; use action='stop'")
        self.harmless = np.asarray(centres.harmless, dtype=np.float64)
        self.harmful = np.asarray(centres.harmful, dtype=np.float64)
        self.guard = guard
        self.fill = np.asarray(fill, dtype=np.float64)
        steps = self.harmless.shape[0]
        if self.fill.shape != (steps,) or guard.steps != steps:
            raise SrilabError(f"centres ({steps} steps), guard ({guard.steps}) and fill {self.fill.shape} must agree")
        self.checks = {t: i for i, t in enumerate(check_steps(steps, every))}
        self.thresholds = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        if self.thresholds is not None and self.thresholds.shape != (len(self.checks),):
            raise SrilabError(f"thresholds must have one value per check step ({len(self.checks)})")
        self.tau = TAU
        self.action = action
        self.max_remasks = max_remasks
        self._signals: list[np.ndarray] = []
        self.reset(0)

    def reset(self, batch_size: int) -> None:
        self._signals = []
        self._clean = np.full(batch_size, -1)  # per row, its last check without alarm
        self._remasks = np.zeros(batch_size, dtype=int)
        self._stopped = np.zeros(batch_size, dtype=bool)

    def after_step(self, step: int, phi) -> StopRequest | None:
        """None between checks; at a check, the rows to stop and, with ``action="remask"``, per row the first
        step whose commits to re-mask (-1 for none)."""
        from srilab.sri.signal import signal, tensor_to_numpy

        if step >= self.harmless.shape[0]:
            raise SrilabError(f"the generation has more steps than the centres ({self.harmless.shape[0]})")
        acts = np.asarray(tensor_to_numpy(phi))[:, None, :]  # from any device and dtype (bf16 included)
        s_t = signal(acts, (self.harmless[step : step + 1], self.harmful[step : step + 1]), tau=self.tau)[:, 0]
        self._signals.append(s_t)
        if step not in self.checks:
            return None
        prefix = np.stack(self._signals, axis=1)
        future = np.broadcast_to(self.fill[step + 1 :], (prefix.shape[0], self.fill.shape[0] - step - 1))
        scores = self.guard.score(np.concatenate([prefix, future], axis=1))
        limit = self.guard.threshold if self.thresholds is None else self.thresholds[self.checks[step]]
        over = scores > limit
        if self.action == "stop":
            return StopRequest(over)
        last = step == self.harmless.shape[0] - 1
        stop = over & (self._stopped | (self._remasks >= self.max_remasks) | last)
        remask = over & ~stop
        since = np.where(remask, self._clean + 1, -1)
        for row in np.flatnonzero(remask):  # rewind the row's signal to its last clean check
            for t in range(since[row], step + 1):
                self._signals[t][row] = self.fill[t]
        self._remasks += remask
        self._stopped |= stop
        self._clean = np.where(over, self._clean, step)
        return StopRequest(stop, since)
