"""The per-step rules of masked-diffusion sampling: noise, schedule, confidence and the top-k choice.

Re-exported by :mod:`srilab.sampling.diffusion` (``add_gumbel_noise``, ``get_num_transfer_tokens``,
``REMASKING``, ``Randomness``), whose :func:`~srilab.sampling.diffusion.generate` runs them step by step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from srilab.errors import SrilabError

REMASKING = ("low_confidence", "random", "entropy", "margin")
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


def confidence(
    logits: torch.Tensor, x0: torch.Tensor, remasking: str, generator: Randomness, step: int
) -> torch.Tensor:
    """The remasking rule's score of the predictions ``x0`` (higher: committed first)."""
    if remasking == "low_confidence":
        p = F.softmax(logits, dim=-1)
        return torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
    if remasking == "random":
        return rand(tuple(x0.shape), generator, x0.device, step=step)
    if remasking == "entropy":
        logp = F.log_softmax(logits.float(), dim=-1)
        return (logp.exp() * logp).sum(dim=-1)  # minus the entropy: higher is more confident
    if remasking == "margin":
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
