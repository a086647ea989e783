"""The per-step rules of masked-diffusion sampling: noise, schedule, confidence and the top-k choice.

Re-exported by :mod:`srilab.sampling.diffusion` (``add_gumbel_noise``, ``get_num_transfer_tokens``,
``REMASKING``, ``Randomness``), whose :func:`~srilab.sampling.diffusion.generate` runs them step by step.

``diffuguard`` is DiffuGuard's *stochastic annealing remasking* (Li et al. 2025, "DiffuGuard: How Intrinsic
Safety is Lost and Found in Diffusion Large Language Models"): the greedy low-confidence
score is mixed with uniform noise whose weight is annealed linearly to 0 over the generation,

    score_i(t) = (1 - alpha_t) * p_i(t) + alpha_t * u_i(t),   u_i(t) ~ U(0, 1),   alpha_t = alpha_0 * (1 - t / T),

``p_i`` the probability of position i's predicted token (the ``low_confidence`` score), ``t`` the global step
(0-based) and ``T`` the number of steps, so the early steps do not greedily commit the most confident (often
affirmative) tokens and the late ones decode as ``low_confidence`` does. ``alpha_0`` is written into the rule's
name: ``diffuguard`` (``alpha_0`` = :data:`ANNEAL_ALPHA` = 0.3) or ``diffuguard:<alpha_0>``, ``alpha_0`` in
[0, 1]; ``alpha_0 = 0`` is ``low_confidence`` token for token. Where srilab departs from, or could not check
against, the paper: the formula and the default 0.3 follow the description srilab was built from (the
project's seed documents do not quote the paper; its text was not at hand), the anneal runs over the
generation's global steps (not restarted per block), and the noise is drawn per position from the sampler's
generator (per-row seeds: a stream of its own, apart from the Gumbel and ``random`` streams), so a seed
reproduces a run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from srilab.errors import SrilabError

REMASKING = ("low_confidence", "random", "entropy", "margin", "diffuguard")
ANNEAL_ALPHA = 0.3  # DiffuGuard's alpha_0, the initial noise weight of stochastic annealing remasking
_ANNEAL_STREAM = 500_000  # step offset of the annealing noise of per-row seeds (a stream apart from Gumbel's)
Randomness = torch.Generator | Sequence[int] | None


def rand(shape: tuple[int, ...], generator: Randomness, device, dtype=torch.float32, step: int = 0) -> torch.Tensor:
    """Uniform noise. With one seed per row, row b's noise at a step comes from its own generator seeded
    by (seed, step) and is laid out from the right end of the canvas, so it depends neither on the other
    rows of the batch nor on how much left padding the batch needs."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise SrilabError(f"got {len(generator)} seeds for a batch of {shape[0]}")
    rows = []
    for seed in generator:
        g = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + step)
        rows.append(torch.rand(shape[1:], generator=g, device=device, dtype=dtype).flip(0))
    return torch.stack(rows)


def add_gumbel_noise(
    logits: torch.Tensor, temperature: float, generator: Randomness = None, step: int = 0
) -> torch.Tensor:
    """The reference's Gumbel-max perturbation (float64, as LLaDA recommends); identity at temperature 0."""
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = rand(tuple(logits.shape), generator, logits.device, torch.float64, step)
    gumbel_noise = (-torch.log(noise)) ** temperature
    return logits.exp() / gumbel_noise


def get_num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """How many tokens each step commits: masks spread as evenly as possible, the remainder first."""
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    extra = torch.arange(steps, device=mask_index.device).unsqueeze(0) < remainder
    return base + extra.to(torch.int64)


@functools.lru_cache(maxsize=64)  # read at every sampling step: parse each name once
def remasking_rule(remasking: str) -> tuple[str, float]:
    """A remasking name split into the rule and its annealing weight alpha_0 (0 for every rule but
    ``diffuguard``): ``"diffuguard"`` -> ``("diffuguard", 0.3)``, ``"diffuguard:0.5"`` -> ``("diffuguard", 0.5)``."""
    name, sep, arg = str(remasking).partition(":")
    if name not in REMASKING or (sep and name != "diffuguard"):
        raise SrilabError(f"unknown remasking {remasking!r}: use one of {', '.join(REMASKING)} (or diffuguard:<alpha>)")
    if name != "diffuguard":
        return name, 0.0
    if not sep:
        return name, ANNEAL_ALPHA
    try:
        alpha = float(arg)
    except ValueError:
        alpha = math.nan
    if not 0.0 <= alpha <= 1.0:
        raise SrilabError(f"remasking {remasking!r}: the annealing weight alpha_0 must be a number in [0, 1]")
    return name, alpha


def anneal_weight(alpha0: float, step: int, steps: int) -> float:
    """DiffuGuard's noise weight at global step ``step`` of ``steps``: alpha_0 * (1 - step / steps)."""
    return alpha0 * max(0.0, 1.0 - step / max(steps, 1))


def at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (bf16 / fp16, a model run on a GPU) widened to float32; others as they are.

    The probabilities a rule ranks by, and a threshold compares, are then float32: in bf16 they keep 8 bits, tie by
    the dozen (``topk`` then breaks the ties by position, not by the model's preference) and Fast-dLLM's 0.9
    threshold reads as 0.8984375 (the float 0.9 rounded to bf16). LLaDA's and Fast-dLLM's current reference code
    take this softmax in float64 whatever the logits' dtype; float32 logits keep srilab's float32 softmax, which
    the golden runs reproduce exactly (``tests/test_diffusion_sampler.py``)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def confidence(
    logits: torch.Tensor, x0: torch.Tensor, remasking: str, generator: Randomness, step: int, steps: int = 1
) -> torch.Tensor:
    """The remasking rule's score of the predictions ``x0`` (higher: committed first); ``steps``: the
    generation's number of steps (``diffuguard`` anneals over them)."""
    rule, alpha0 = remasking_rule(remasking)
    if rule in ("low_confidence", "diffuguard"):
        p = F.softmax(at_least_float32(logits), dim=-1)
        p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
        alpha = anneal_weight(alpha0, step, steps)
        if alpha == 0.0:  # low_confidence, and diffuguard with alpha_0 = 0 (then no noise is drawn)
            return p
        seeds_per_row = generator is not None and not isinstance(generator, torch.Generator)
        noise = rand(tuple(x0.shape), generator, x0.device, step=step + _ANNEAL_STREAM * seeds_per_row)
        return (1.0 - alpha) * p.float() + alpha * noise
    if rule == "random":
        return rand(tuple(x0.shape), generator, x0.device, step=step)
    if rule == "entropy":
        logp = F.log_softmax(logits.float(), dim=-1)
        return (logp.exp() * logp).sum(dim=-1)  # minus the entropy: higher is more confident
    if rule == "margin":
        top2 = F.softmax(logits.float(), dim=-1).topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    raise SrilabError(f"unknown remasking {remasking!r}: use one of {', '.join(REMASKING)}")


def top_k_mask(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the ``k[b]`` highest finite ``scores[b]`` per row (k clamped to what is available)."""
    k = torch.minimum(k, torch.isfinite(scores).sum(dim=1))
    out = torch.zeros_like(scores, dtype=torch.bool)
    kmax = int(k.max()) if k.numel() else 0
    if kmax > 0:
        _, idx = torch.topk(scores, k=kmax, dim=-1)
        keep = torch.arange(kmax, device=scores.device).unsqueeze(0) < k.unsqueeze(1)
        out.scatter_(1, idx, keep)
    return out


def minus_inf_where_not(keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``scores`` where ``keep``, -inf elsewhere (positions that cannot be chosen)."""
    return torch.where(keep, scores, torch.full_like(scores, -np.inf))
