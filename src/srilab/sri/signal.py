"""The SRI signal (DESIGN.md, "SRI signal").

    s_t = sigmoid((log(d_t^harmful + eps) - log(d_t^harmless + eps)) / tau)

with d the cosine distance of the step activation phi_t to the step's harmful-refused and
harmless-complied centres. s near 1: the state is closer to the harmless (compliance-like) centre;
near 0: closer to the harmful-refused (refusal-like) centre.
"""

from __future__ import annotations

import numpy as np

from srilab.errors import SrilabError

TAU = 0.1
EPS = 1e-8


def _as_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise SrilabError(f"{name} contains NaN or inf")
    return arr


def _cosine_distances(activations: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """1 - cos(phi_t, c_kt) for activations [N, S, D] and K centres [K, S, D] -> [K, N, S], one pass."""
    a_norm = np.linalg.norm(activations, axis=-1)  # [N, S]
    c_norm = np.linalg.norm(centres, axis=-1)  # [K, S]
    dot = np.einsum("nsd,ksd->kns", activations, centres, optimize=True)
    return 1.0 - dot / np.maximum(a_norm[None] * c_norm[:, None, :], 1e-12)


def signal(activations, centres, tau: float = TAU, eps: float = EPS) -> np.ndarray:
    """SRI signal for activations [N, S, D] given ``centres`` (a :class:`~srilab.sri.centres.Centres` or a
    ``(harmless [S, D], harmful [S, D])`` pair). Returns float64 numpy [N, S]."""
    if tau <= 0:
        raise SrilabError(f"tau must be positive, got {tau}")
    harmless, harmful = (centres.harmless, centres.harmful) if hasattr(centres, "harmful") else centres
    acts = _as_array(activations, "activations")
    harmless = _as_array(harmless, "harmless centre")
    harmful = _as_array(harmful, "harmful centre")
    if acts.ndim != 3:
        raise SrilabError(f"activations must be [N, steps, dim], got shape {acts.shape}")
    if harmless.shape != acts.shape[1:] or harmful.shape != acts.shape[1:]:
        raise SrilabError(
            f"centres of shape {harmless.shape} do not fit activations of shape {acts.shape}: "
            "centres and activations must come from the same sampler steps and layer"
        )
    d_harmful, d_harmless = _cosine_distances(acts, np.stack([harmful, harmless]))
    z = (np.log(np.maximum(d_harmful, 0.0) + eps) - np.log(np.maximum(d_harmless, 0.0) + eps)) / tau
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = sigmoid(z), without overflow
