"""Trajectory metrics over SRI signals (DESIGN.md, "Trajectory metrics")."""

from __future__ import annotations

import numpy as np

from srilab.errors import SrilabError


def internal_recovery(signals, high: float = 0.5, low: float = 0.3) -> np.ndarray:
    """Per generation: compliance-like at some step (s > ``high``) and refusal-like at the end (s < ``low``)."""
    s = np.asarray(signals, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise SrilabError(f"signals must be [N, steps], got shape {s.shape}")
    return (s > high).any(axis=1) & (s[:, -1] < low)


def internal_recovery_rate(signals, high: float = 0.5, low: float = 0.3) -> float:
    return float(internal_recovery(signals, high, low).mean())
