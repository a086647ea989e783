"""Dream's own masked-diffusion sampler, exact: a drop-in for Dream's ``diffusion_generate`` / ``_sample``.

Dream (Ye et al. 2025, "Dream 7B: Diffusion Large Language Models") decodes differently from LLaDA, and
:func:`dream_generate` follows Dream's reference sampler step for step (greedy runs reproduce it token for
token, see ``tests/test_dream_sampler.py``):

- no blocks: the canvas is the prompt followed by ``max_new_tokens`` masks, and every masked position of
  the whole sequence is a candidate at every step, masks inside the prompt included;
- the schedule is continuous time: ``timesteps = linspace(1, eps, steps + 1)``; step ``i`` goes from
  ``t = timesteps[i]`` to ``s = timesteps[i + 1]``;
- the logits are shifted right by one (Dream's logits at position i predict token i + 1);
- ``alg="origin"``: each masked position is committed with probability ``1 - s/t`` (1 at the last step),
  its token drawn from the (temperature, top-p, top-k filtered) distribution;
- otherwise every masked position gets a token and a confidence from :func:`sample_tokens` (probability
  of the token for ``maskgit_plus``, top-1 minus top-2 probability for ``topk_margin``, minus the entropy
  for ``entropy``) and ``int(n_masked * (1 - s/t))`` of them are committed, ``n_masked`` averaged over the
  batch as Dream does (everything left at the last step): the most confident ones (``alg_temp`` None or
  0), or a draw without replacement from ``softmax(confidence / alg_temp)``;
- a left-padded batch runs with Dream's attention: a 4-D boolean mask (no attention from or to padding)
  and position ids counted from each row's first real token;
- a committed prediction that is itself the mask token leaves its position masked, as in Dream.

Where srilab departs (nothing changes a run Dream itself handles correctly):

- ``generator`` may be one integer seed per row: row b then draws all its randomness from its own
  ``torch.Generator`` seeded with ``seeds[b]``, uses its own count ``int(n_masked_b * (1 - s/t))`` and
  ranks only its own (unpadded) positions, so its output does not depend on the other rows of the batch
  nor on how much left padding they force on it. With ``None`` or a ``torch.Generator`` the random
  stream is Dream's (the global RNG or that generator, in Dream's order);
- a row never commits more than its masked positions, and the last step fills every mask of every row.
  (With rows holding different numbers of masks -- uneven prompt masks, injections -- Dream's batch-wide
  count can exceed a row's masks, and Dream then writes the mask token over committed tokens, or leaves
  masks at the end.)
- ``tracer``: a :class:`~srilab.sampling.trace.Tracer` records phi_t after every step; rows a live monitor
  stopped commit nothing more (and, in the reference random stream, do not count in the batch average).
  Re-masking monitors are refused: Dream's schedule has no notion of a commit to take back;
- ``injections``: text written into response positions before a step's forward pass (as in
  :mod:`srilab.sampling.diffusion`); injected positions are simply no longer masked.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel, shift_logits
from srilab.models.masks import PreparedMask
from srilab.sampling.diffusion import Injection, Randomness

if TYPE_CHECKING:
    from srilab.sampling.trace import Tracer

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")

__all__ = ["ALGS", "dream_generate", "sample_tokens", "top_k_logits", "top_p_logits"]


# ---------------------------------------------------------------------------------------------- token sampling
def top_p_logits(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter as in Dream: in probability order, a token is dropped once the mass of the tokens
    before it exceeds ``top_p`` (the most likely token always stays). Dropped logits become the dtype's
    lowest finite value (not -inf)."""
    ranked, order = torch.sort(logits, dim=-1, descending=True)
    mass = F.softmax(ranked, dim=-1).cumsum(dim=-1)
    drop_ranked = torch.zeros_like(mass, dtype=torch.bool)
    drop_ranked[..., 1:] = mass[..., :-1] > top_p
    drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, drop_ranked)
    return logits.masked_fill(drop, torch.finfo(logits.dtype).min)


def top_k_logits(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the logits at least as large as the ``top_k``-th largest (ties at the boundary stay)."""
    kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def _categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
    """One draw per row of ``probs`` through ``torch.distributions.Categorical`` (its normalisation and
    validation, as Dream), from the global RNG or ``generator``; None where Dream's draw would fail."""
    try:
        dist = torch.distributions.Categorical(probs=probs)
        if generator is None:
            return dist.sample()
        flat = dist.probs.reshape(-1, dist.probs.shape[-1])
        return torch.multinomial(flat, 1, True, generator=generator).reshape(dist.batch_shape)
    except (ValueError, RuntimeError):
        return None


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    margin_confidence: bool = False,
    neg_entropy: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(confidence, token)`` per row of ``logits`` [M, V], as Dream's ``sample_tokens``.

    Logits are divided by ``temperature`` (when > 0), then top-p and top-k filtered; with ``temperature > 0``
    the token is drawn from the resulting distribution (falling back to the argmax if that distribution is
    invalid, as Dream does), else it is the argmax. Confidence: the token's probability, or the top-1 minus
    top-2 probability (``margin_confidence``), or minus the entropy (``neg_entropy``), all under the
    filtered distribution."""
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = top_p_logits(logits, top_p)
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    token = _categorical(probs, generator) if temperature > 0 else None
    if token is None:
        confidence, token = probs.max(dim=-1)
    else:
        confidence = torch.gather(probs, -1, token.unsqueeze(-1)).squeeze(-1)
    if margin_confidence:
        top2 = torch.topk(probs, 2, dim=-1).values
        confidence = top2[..., 0] - top2[..., 1]
    if neg_entropy:
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, token


# ---------------------------------------------------------------------------------------------- the sampler
def _accepts(module, name: str) -> bool:
    try:
        return name in inspect.signature(module.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def _injections_by_step(injections: Sequence[Injection], steps: int, max_new_tokens: int, batch: int):
    by_step: dict[int, list[Injection]] = {}
    for inj in injections:
        if inj.offset < 0 or inj.offset + len(inj.token_ids) > max_new_tokens:
            raise SrilabError(
                f"injection at offset {inj.offset} of {len(inj.token_ids)} tokens exceeds max_new_tokens"
            )
        if not 0 <= inj.step < steps:
            raise SrilabError(f"injection step {inj.step} is outside 0..{steps - 1}")
        if inj.rows is not None and any(not 0 <= r < batch for r in inj.rows):
            raise SrilabError(f"injection rows {inj.rows} are outside the batch of {batch}")
        by_step.setdefault(inj.step, []).append(inj)
    return by_step


@torch.no_grad()
def dream_generate(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_new_tokens: int,
    steps: int,
    alg: str = "entropy",
    alg_temp: float | None = None,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    eps: float = 1e-3,
    mask_id: int,
    logits_shift: int = 1,
    generator: Randomness = None,
    tracer: Tracer | None = None,
    injections: Sequence[Injection] = (),
) -> torch.Tensor:
    """Dream's sampler on ``input_ids`` [B, P] (left-padded, with ``attention_mask`` 1 on real tokens);
    returns the full canvas [B, P + max_new_tokens]. Arguments as in Dream's ``diffusion_generate``.

    ``model``: a module returning ``.logits`` that takes ``attention_mask`` (a 4-D boolean mask for padded
    batches) and ``position_ids``, or a :class:`~srilab.models.LanguageModel` (its module is used).
    ``generator``: None (the global RNG) or a ``torch.Generator``, drawn in Dream's order, or one integer
    seed per row (each row's randomness its own). ``tracer`` / ``injections``: see the module docstring.
    """
    if isinstance(model, LanguageModel):
        model = model.module
    if input_ids.dim() != 2:
        raise SrilabError(f"input_ids must be [batch, prompt length], got shape {tuple(input_ids.shape)}")
    if max_new_tokens <= 0 or steps <= 0:
        raise SrilabError("max_new_tokens and steps must be positive")
    if alg not in ALGS:
        raise SrilabError(f"unknown alg {alg!r}: use one of {', '.join(ALGS)}")
    if not 0.0 <= eps <= 1.0:
        raise SrilabError(f"eps must be in [0, 1], got {eps}")
    if alg_temp is not None and alg_temp < 0:
        raise SrilabError(f"alg_temp must be None or >= 0, got {alg_temp}")
    if top_k is not None and top_k <= 0:
        raise SrilabError(f"top_k must be positive, got {top_k}")
    if logits_shift not in (0, 1):
        raise SrilabError(f"logits_shift must be 0 or 1, got {logits_shift}")
    device = input_ids.device
    batch, plen = input_ids.shape
    length = plen + max_new_tokens
    by_step = _injections_by_step(injections, steps, max_new_tokens, batch)

    per_row = generator is not None and not isinstance(generator, torch.Generator)
    if per_row:
        if len(generator) != batch:
            raise SrilabError(f"got {len(generator)} seeds for a batch of {batch}")
        gens = [torch.Generator(device=device).manual_seed(int(seed)) for seed in generator]
        shared = None
    else:
        gens, shared = None, generator

    x = F.pad(input_ids, (0, max_new_tokens), value=mask_id)
    # Dream's padded-batch attention: no attention from or to padding; positions count real tokens.
    forward_kw: dict = {"attention_mask": None}
    own = torch.ones_like(x, dtype=torch.bool)  # each row's own (unpadded) positions
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise SrilabError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {(batch, plen)}")
        if bool((attention_mask == 0).any()):
            full = F.pad(attention_mask, (0, max_new_tokens), value=1)
            own = full != 0
            position_ids = full.long().cumsum(-1) - 1
            position_ids.masked_fill_(~own, 1)
            attend = own[:, None, None, :] & own[:, None, :, None]  # [B, 1, query, key]
            forward_kw = {"attention_mask": attend, "position_ids": position_ids}
    if forward_kw["attention_mask"] is None:  # transformers' own mask, built once (srilab.models.masks)
        forward_kw["attention_mask"] = PreparedMask(model)(None, batch, length, device)
    keep_ok = _accepts(model, "logits_to_keep")

    def masked_logits(mask_index: torch.Tensor) -> torch.Tensor:
        """Shifted logits of the masked positions [M, V], in Dream's order (row-major)."""
        if not keep_ok:
            logits = shift_logits(model(x, **forward_kw).logits, logits_shift)
            return logits[mask_index]
        # Only the positions some row still has masked: the rows of the output the step reads.
        cols = mask_index.any(dim=0).nonzero().squeeze(1)
        sub = model(x, logits_to_keep=(cols - logits_shift).clamp_min(0), **forward_kw).logits
        where = torch.full((length,), -1, dtype=torch.long, device=device)
        where[cols] = torch.arange(len(cols), device=device)
        rows, pos = mask_index.nonzero(as_tuple=True)
        return sub[rows, where[pos]]

    timesteps = torch.linspace(1, eps, steps + 1, device=device)
    sample_kw = dict(
        temperature=temperature, top_p=top_p, top_k=top_k,
        margin_confidence=alg == "topk_margin", neg_entropy=alg == "entropy",
    )
    greedy_pick = alg_temp is None or alg_temp == 0
    for i in range(steps):
        for inj in by_step.get(i, ()):
            rows = list(inj.rows) if inj.rows is not None else slice(None)
            ids = torch.tensor(inj.token_ids, dtype=torch.long, device=device)
            x[rows, plen + inj.offset : plen + inj.offset + len(ids)] = ids
        if tracer is not None and tracer.remask_rows:
            raise SrilabError("the Dream sampler cannot re-mask committed tokens; use a monitor that stops rows")
        stopped = None if tracer is None else tracer.stopped
        active = torch.ones(batch, dtype=torch.bool, device=device) if stopped is None else ~stopped.to(device)
        mask_index = x == mask_id
        mask_logits = masked_logits(mask_index)
        t, s = timesteps[i], timesteps[i + 1]
        last = i == steps - 1
        row_of = mask_index.nonzero(as_tuple=True)[0]  # the batch row of each masked position

        if alg == "origin":
            p_transfer = 1 if last else 1 - s / t
            if per_row:
                for b in active.nonzero().flatten().tolist():
                    pos = mask_index[b].nonzero().squeeze(1)
                    take = torch.rand(len(pos), generator=gens[b], device=device) < p_transfer
                    if take.any():
                        _, tokens = sample_tokens(mask_logits[row_of == b][take], generator=gens[b], **sample_kw)
                        x[b, pos[take]] = tokens
            else:
                take = torch.rand(len(row_of), generator=shared, device=device) < p_transfer
                x0 = torch.full_like(row_of, mask_id)
                _, x0[take] = sample_tokens(mask_logits[take], generator=shared, **sample_kw)
                x0[~active[row_of]] = mask_id  # a stopped row commits nothing
                x[mask_index] = x0
        else:
            n_masked = mask_index.sum(dim=1)
            if per_row:
                for b in active.nonzero().flatten().tolist():
                    m = int(n_masked[b])
                    k = m if last else int(n_masked[b].to(timesteps.dtype) * (1 - s / t))
                    if m == 0:
                        continue
                    pos = mask_index[b].nonzero().squeeze(1)
                    confidence, tokens = sample_tokens(mask_logits[row_of == b], generator=gens[b], **sample_kw)
                    if k == 0:
                        continue
                    mine = own[b].nonzero().squeeze(1)  # rank over the row's own positions only
                    full = torch.full((length,), -torch.inf, dtype=confidence.dtype, device=device)
                    full[pos] = confidence
                    scores = full[mine]
                    if greedy_pick:
                        pick = torch.topk(scores, k).indices
                    else:
                        pick = torch.multinomial(F.softmax(scores / alg_temp, dim=-1), k, generator=gens[b])
                    pick = mine[pick]
                    canvas = torch.full((length,), mask_id, dtype=torch.long, device=device)
                    canvas[pos] = tokens
                    pick = pick[mask_index[b, pick]]
                    x[b, pick] = canvas[pick]
            else:
                confidence, tokens = sample_tokens(mask_logits, generator=shared, **sample_kw)
                if last:
                    k = n_masked
                else:
                    n_active = max(int(active.sum()), 1)
                    avg = n_masked[active].sum() / n_active  # Dream: mask_index.sum() / batch size
                    k = torch.clamp(n_masked, max=int(avg * (1 - s / t)))
                k = torch.where(active, k, torch.zeros_like(k))
                kmax = int(k.max())
                if kmax > 0:
                    full = torch.full_like(x, -torch.inf, dtype=confidence.dtype)
                    full[mask_index] = confidence
                    canvas = torch.full_like(x, mask_id)
                    canvas[mask_index] = tokens
                    if greedy_pick:
                        pick = torch.topk(full, kmax).indices
                    elif bool((k == kmax).all()):
                        pick = torch.multinomial(F.softmax(full / alg_temp, dim=-1), kmax, generator=shared)
                    else:  # rows with different counts (Dream has none): one draw per row, in row order
                        pick = torch.zeros((batch, kmax), dtype=torch.long, device=device)
                        for b in (k > 0).nonzero().flatten().tolist():
                            probs = F.softmax(full[b] / alg_temp, dim=-1)
                            pick[b, : int(k[b])] = torch.multinomial(probs, int(k[b]), generator=shared)
                    rows = torch.arange(batch, device=device).unsqueeze(1).expand_as(pick)
                    keep = torch.arange(kmax, device=device).unsqueeze(0) < k.unsqueeze(1)
                    keep &= mask_index[rows, pick]
                    x[rows[keep], pick[keep]] = canvas[rows[keep], pick[keep]]

        if tracer is not None:
            tracer.record_diffusion(x, plen, mask_id, logits_shift)
    return x
