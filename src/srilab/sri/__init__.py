"""SRI: step-wise refusal internal dynamics (centres, signal, trajectory metrics, the guard)."""

from srilab.sri.centres import CentreKey, Centres, compute_centres, data_hash
from srilab.sri.metrics import internal_recovery, internal_recovery_rate
from srilab.sri.signal import signal

__all__ = [
    "CentreKey",
    "Centres",
    "compute_centres",
    "data_hash",
    "internal_recovery",
    "internal_recovery_rate",
    "signal",
]
