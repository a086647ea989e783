"""The SRI signal (DESIGN.md, "SRI signal").

    s_t = sigmoid((log(d_t^harmful + eps) - log(d_t^harmless + eps)) / tau)

with d the cosine distance of the step activation phi_t to the step's harmful-refused and
harmless-complied centres. s near 1: the state is closer to the harmless (compliance-like) centre;
near 0: closer to the harmful-refused (refusal-like) centre.

Precision: by default the cosine distances are computed in float64 (float32 activations are widened once,
exactly). ``precision="float32"`` keeps float32 activations as they are and computes the dot products and
norms in float32 (the log-ratio and sigmoid stay float64): about twice as fast; the signal moves by the
float32 rounding of the distances amplified by 1/(tau d), at most ~1e-4 for d ~ 1e-2 (measured: <= 3e-6 on
the shipped toy pair's traces, <= 2e-5 on SmolLM2-135M's). The float64 default gives the values of the
published definition (and of the earlier implementation) up to summation order, ~1e-13.
"""

from __future__ import annotations

import numpy as np

from srilab.errors import SrilabError

TAU = 0.1
EPS = 1e-8
PRECISIONS = ("float64", "float32")


def tensor_to_numpy(x):
    """A torch tensor as a numpy array, from any device and dtype: bfloat16 and float16 (what a model run on a GPU
    hands over; numpy has no bfloat16) are widened to float32, exactly; anything else is returned as it is."""
    if not hasattr(x, "detach"):
        return x
    import torch

    x = x.detach()
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return x.cpu().numpy()


def _as_array(x, name: str, dtype=np.float64, check: bool = True) -> np.ndarray:
    if x is None or isinstance(x, str | bytes):
        raise SrilabError(f"{name} must be an array or tensor, got {type(x).__name__}")
    arr = np.asarray(tensor_to_numpy(x))
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if check:
        _check_finite(arr, name)
    return arr if arr.dtype == dtype else arr.astype(dtype)  # float32 -> float64 is exact


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise SrilabError(f"{name} contains NaN or inf")


def _cosine_distances(activations: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """1 - cos(phi_t, c_kt) for activations [N, S, D] and K centres [K, S, D] -> [K, N, S].

    One ``einsum`` per centre and one for the norms (no temporaries of the activations' size, no batched
    matmul with a width-2 output); the division and the clamp are as in the definition, in float64."""
    a_norm = np.sqrt(np.einsum("nsd,nsd->ns", activations, activations)).astype(np.float64)  # [N, S]
    c_norm = np.sqrt(np.einsum("ksd,ksd->ks", centres, centres)).astype(np.float64)  # [K, S]
    dot = np.stack([np.einsum("nsd,sd->ns", activations, c) for c in centres]).astype(np.float64)  # [K, N, S]
    return 1.0 - dot / np.maximum(a_norm[None] * c_norm[:, None, :], 1e-12)


def step_distances(activations, centres, *, precision: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The two cosine distances per step, ``(d_harmful, d_harmless)``, each float64 ``[N, S]`` and clamped at 0
    (the inputs of the signal below; checked as :func:`signal` checks them)."""
    if precision not in PRECISIONS:
        raise SrilabError(f"unknown precision {precision!r}: use 'float64' or 'float32'")
    dtype = np.float64 if precision == "float64" else np.float32
    if not hasattr(centres, "harmful") and not (isinstance(centres, tuple | list) and len(centres) == 2):
        raise SrilabError(f"centres must be a Centres or a (harmless, harmful) pair, got {type(centres).__name__}")
    harmless, harmful = (centres.harmless, centres.harmful) if hasattr(centres, "harmful") else centres
    # The activations' finiteness is checked on the distances (D times fewer values): a NaN or inf in phi_t
    # makes its norm, hence both distances, NaN or inf; only then is every value checked (and an overflow of
    # finite values, which the float64 definition shares, passes as before).
    acts = _as_array(activations, "activations", dtype, check=False)
    harmless = _as_array(harmless, "harmless centre", dtype)
    harmful = _as_array(harmful, "harmful centre", dtype)
    if acts.ndim != 3:
        raise SrilabError(f"activations must be [N, steps, dim], got shape {acts.shape}")
    if harmless.shape != acts.shape[1:] or harmful.shape != acts.shape[1:]:
        raise SrilabError(
            f"centres of shape {harmless.shape} do not fit activations of shape {acts.shape}: "
            "centres and activations must come from the same sampler steps and layer"
        )
    with np.errstate(invalid="ignore", over="ignore"):  # a bad phi_t is reported just below, not warned about
        d_harmful, d_harmless = distances = _cosine_distances(acts, np.stack([harmful, harmless]))
    if not np.isfinite(distances).all():
        _check_finite(acts, "activations")
    return np.maximum(d_harmful, 0.0), np.maximum(d_harmless, 0.0)


def log_ratio(activations, centres, eps: float = EPS, *, precision: str = "float64") -> np.ndarray:
    """The signal before its sigmoid and temperature: ``log(d_harmful + eps) - log(d_harmless + eps)`` [N, S].

    Positive: closer to the harmless centre. It does not saturate, so benign rows that all have s_t ~ 1
    under tau = 0.1 still differ here by how far they are from the centres."""
    d_harmful, d_harmless = step_distances(activations, centres, precision=precision)
    return np.log(d_harmful + eps) - np.log(d_harmless + eps)


def signal(activations, centres, tau: float = TAU, eps: float = EPS, *, precision: str = "float64") -> np.ndarray:
    """SRI signal for activations [N, S, D] given ``centres`` (a :class:`~srilab.sri.centres.Centres` or a
    ``(harmless [S, D], harmful [S, D])`` pair). Returns float64 numpy [N, S].

    ``precision``: ``"float64"`` (default, exact up to float64 rounding) or ``"float32"`` (faster; see the
    module docstring for its tolerance)."""
    if tau <= 0:
        raise SrilabError(f"tau must be positive, got {tau}")
    return sigmoid_of_log_ratio(log_ratio(activations, centres, eps, precision=precision), tau)


def sigmoid_of_log_ratio(z: np.ndarray, tau: float = TAU) -> np.ndarray:
    """``sigmoid(z / tau)`` without overflow: the SRI signal from :func:`log_ratio`."""
    if tau <= 0:
        raise SrilabError(f"tau must be positive, got {tau}")
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64) / tau))
