"""What the SRI guard sees of a generation: its *representation*, and a robust per-column scaling.

* ``"sri"`` - the paper's signal s_t = sigmoid(log-ratio / tau) per step, ``[N, S]`` in ``[0, 1]`` (the
  definition of :func:`srilab.sri.signal.signal`; the guard's default).
* ``"log_ratio"`` - ``log(d_harmful + eps) - log(d_harmless + eps)`` per step, ``[N, S]``: the signal
  before the sigmoid, which does not saturate (at tau = 0.1 a benign row with log-ratio 1 and one with 3
  both give s ~ 1).
* ``"distances"`` - both log cosine distances per step, ``[N, 2S]`` (harmful steps first, then harmless):
  how far the state is from either centre, not only which one is nearer.

:class:`RobustScaler` centres each column on its benign median and divides by its IQR / 1.349 (the normal
sigma), floored at ``floor`` times the median column scale (so a near-constant step cannot turn a tiny
deviation into a large standardised one, whatever the units of the representation) and at ``1e-12``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from srilab.errors import SrilabError
from srilab.sri.signal import EPS, TAU, sigmoid_of_log_ratio, step_distances

__all__ = ["REPRESENTATIONS", "RobustScaler", "features", "features_from_distances", "width"]

REPRESENTATIONS = ("sri", "log_ratio", "distances")


def _check(representation: str) -> str:
    if representation not in REPRESENTATIONS:
        raise SrilabError(f"unknown SRI representation {representation!r}: use one of {', '.join(REPRESENTATIONS)}")
    return representation


def width(representation: str, steps: int) -> int:
    """Columns of a representation of ``steps`` sampler steps."""
    return 2 * steps if _check(representation) == "distances" else steps


def features_from_distances(
    d_harmful: np.ndarray, d_harmless: np.ndarray, representation: str = "sri", *, tau: float = TAU,
    eps: float = EPS,
) -> np.ndarray:
    """The representation ``[N, width]`` from the two per-step distances (each ``[N, S]``)."""
    rep = _check(representation)
    lh, ll = np.log(np.maximum(d_harmful, 0.0) + eps), np.log(np.maximum(d_harmless, 0.0) + eps)
    if rep == "distances":
        return np.concatenate([lh, ll], axis=1)
    z = lh - ll
    return sigmoid_of_log_ratio(z, tau) if rep == "sri" else z


def features(
    activations: Any, centres: Any, representation: str = "sri", *, tau: float = TAU, eps: float = EPS,
    precision: str = "float64",
) -> np.ndarray:
    """The representation of activations ``[N, S, D]`` given the centres (see the module docstring)."""
    d_harmful, d_harmless = step_distances(activations, centres, precision=precision)
    return features_from_distances(d_harmful, d_harmless, representation, tau=tau, eps=eps)


class RobustScaler:
    """Per-column ``(x - median) / max(IQR / 1.349, floor * median column scale, 1e-12)``."""

    def __init__(self, floor: float = 0.1) -> None:
        if not floor >= 0:
            raise SrilabError(f"robust scaling floor must be >= 0, got {floor!r}")
        self.floor = float(floor)
        self.centre: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> RobustScaler:
        X = np.asarray(X, dtype=np.float64)
        q1, med, q3 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
        spread = (q3 - q1) / 1.349
        typical = float(np.median(spread)) if spread.size else 0.0
        self.centre = med
        self.scale = np.maximum(spread, max(self.floor * typical, 1e-12))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.centre is None or self.scale is None:
            raise SrilabError("robust scaler is not fitted; call fit() first")
        return (np.asarray(X, dtype=np.float64) - self.centre) / self.scale

    def state(self) -> dict[str, np.ndarray]:
        if self.centre is None or self.scale is None:
            raise SrilabError("robust scaler is not fitted; call fit() first")
        return {"scaler.centre": self.centre, "scaler.scale": self.scale}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], floor: float) -> RobustScaler:
        out = cls(floor)
        try:
            out.centre = np.asarray(state["scaler.centre"], dtype=np.float64)
            out.scale = np.asarray(state["scaler.scale"], dtype=np.float64)
        except KeyError:
            raise SrilabError("saved guard has no robust scaling arrays; refit and save the guard again") from None
        return out
