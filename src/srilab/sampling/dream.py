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
  for ``entropy``) and every row commits the same number of positions, :func:`dream_count`: the batch's
  masked positions over its rows, a float32 average, times ``1 - s/t``, truncated (at the last step the
  average itself, truncated): the most confident ones (``alg_temp`` None or 0, one ``topk`` over the
  ``[batch, length]`` matrix), or a draw without replacement from ``softmax(confidence / alg_temp)``;
- a left-padded batch runs with Dream's attention: a 4-D boolean mask (no attention from or to padding)
  and position ids counted from each row's first real token;
- a committed prediction that is itself the mask token leaves its position masked, as in Dream.

With ``generator`` None or a ``torch.Generator`` this is Dream's loop exactly, quirks included: when rows
hold different numbers of masks (prompt masks, a row whose prediction was the mask token, injections), the
batch-wide count can exceed a row's masks -- the extra picks land on positions that are not masked and write
the mask token there, over committed tokens -- or fall short of them, leaving masks at the end. Checked
against an oracle written apart from this module (``tests/dream_oracle.py``) on 1-4 tokens a step, step
counts that do not divide the length, batches of 1-3 rows and every ``alg``, and against every golden run.

Where srilab departs, only when asked (the study pipeline always asks):

- ``generator`` may be one integer seed per row: row b then draws all its randomness from its own
  ``torch.Generator`` seeded with ``seeds[b]``, commits ``int(n_masked_b * (1 - s/t))`` of its own masks
  (all that remain at the last step) and ranks only its own (unpadded) positions, so its output does not
  depend on the other rows of the batch nor on how much left padding they force on it; a row never commits
  more than its masked positions and never re-masks a committed token. On a batch whose rows hold equal
  masks, with nothing drawn, this is Dream's result.
- ``tracer``: a :class:`~srilab.sampling.trace.Tracer` records phi_t after every step; rows a live monitor
  stopped commit nothing more (and, under Dream's rule, do not count in the batch average).
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

__all__ = ["ALGS", "dream_count", "dream_generate", "sample_tokens", "top_k_logits", "top_p_logits"]


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


def _check_arguments(input_ids, max_new_tokens, steps, alg, eps, alg_temp, top_k, logits_shift) -> None:
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


def _inject(x: torch.Tensor, plen: int, injections: Sequence[Injection]) -> None:
    for inj in injections:
        rows = list(inj.rows) if inj.rows is not None else slice(None)
        ids = torch.tensor(inj.token_ids, dtype=torch.long, device=x.device)
        x[rows, plen + inj.offset : plen + inj.offset + len(ids)] = ids


class _Forward:
    """The model's forward pass over the canvas as Dream runs it: full attention (transformers' own mask,
    built once) or, for a left-padded batch, a 4-D boolean mask with no attention from or to padding and
    position ids counted from each row's first real token. ``own``: each row's unpadded positions."""

    def __init__(self, model, input_ids, attention_mask, max_new_tokens: int, logits_shift: int):
        batch, plen = input_ids.shape
        self.model, self.shift = model, logits_shift
        self.length, self.device = plen + max_new_tokens, input_ids.device
        self.own = torch.ones((batch, self.length), dtype=torch.bool, device=self.device)
        self.kwargs: dict = {"attention_mask": None}
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise SrilabError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {(batch, plen)}")
            if bool((attention_mask == 0).any()):
                self.own = F.pad(attention_mask, (0, max_new_tokens), value=1) != 0
                position_ids = self.own.long().cumsum(-1) - 1
                position_ids.masked_fill_(~self.own, 1)
                attend = self.own[:, None, None, :] & self.own[:, None, :, None]  # [B, 1, query, key]
                self.kwargs = {"attention_mask": attend, "position_ids": position_ids}
        if self.kwargs["attention_mask"] is None:  # transformers' own mask, built once (srilab.models.masks)
            self.kwargs["attention_mask"] = PreparedMask(model)(None, batch, self.length, self.device)
        self.partial = _accepts(model, "logits_to_keep")

    def masked_logits(self, x: torch.Tensor, mask_index: torch.Tensor) -> torch.Tensor:
        """Shifted logits of the masked positions [M, V], in Dream's order (row-major)."""
        if not self.partial:
            return shift_logits(self.model(x, **self.kwargs).logits, self.shift)[mask_index]
        # Only the positions some row still has masked: the rows of the output the step reads.
        cols = mask_index.any(dim=0).nonzero().squeeze(1)
        sub = self.model(x, logits_to_keep=(cols - self.shift).clamp_min(0), **self.kwargs).logits
        where = torch.full((self.length,), -1, dtype=torch.long, device=self.device)
        where[cols] = torch.arange(len(cols), device=self.device)
        rows, pos = mask_index.nonzero(as_tuple=True)
        return sub[rows, where[pos]]


def dream_count(masked: torch.Tensor, rows: int, t: torch.Tensor, s: torch.Tensor, last: bool) -> int:
    """How many positions every row commits at a step, as Dream computes it: the masked positions of the
    batch (``masked``, an integer tensor) over its ``rows``, a float32 average, times ``1 - s/t`` and
    truncated; at the last step the average itself, truncated. With rows that hold different numbers of
    masks the count can exceed a row's masks, or leave masks at the end."""
    average = masked / rows
    return int(average) if last else int(average * (1 - s / t))


def _commit_origin(x, mask_index, mask_logits, p_transfer, active, rng, sample_kw, mask_id) -> None:
    """``alg="origin"``: each masked position is committed with probability ``p_transfer``."""
    row_of = mask_index.nonzero(as_tuple=True)[0]  # the batch row of each masked position
    if isinstance(rng, list):
        for b in active.nonzero().flatten().tolist():
            pos = mask_index[b].nonzero().squeeze(1)
            take = torch.rand(len(pos), generator=rng[b], device=x.device) < p_transfer
            if take.any():
                _, tokens = sample_tokens(mask_logits[row_of == b][take], generator=rng[b], **sample_kw)
                x[b, pos[take]] = tokens
        return
    take = torch.rand(len(row_of), generator=rng, device=x.device) < p_transfer
    x0 = torch.full_like(row_of, mask_id)
    _, x0[take] = sample_tokens(mask_logits[take], generator=rng, **sample_kw)
    x0[~active[row_of]] = mask_id  # a stopped row commits nothing
    x[mask_index] = x0


def _commit_reference(x, mask_index, mask_logits, when, active, rng, alg_temp, sample_kw, mask_id) -> None:
    """Dream's rule, exact: every active row commits the same :func:`dream_count` positions (``when``: the
    step's ``(t, s, last)``; rows a monitor stopped do not count in the average), its
    most confident (or drawn from ``softmax(confidence / alg_temp)`` over the ``[batch, length]`` matrix);
    positions that are not masked score ``-inf``, and a pick that lands on one writes the mask token
    there, as Dream's ``x_`` holds the mask token everywhere but at masked positions."""
    confidence, tokens = sample_tokens(mask_logits, generator=rng, **sample_kw)
    count = dream_count(mask_index[active].sum(), max(int(active.sum()), 1), *when)
    if count <= 0:
        return
    scores = torch.full_like(x, -torch.inf, dtype=confidence.dtype)
    scores[mask_index] = confidence
    proposal = torch.full_like(x, mask_id)
    proposal[mask_index] = tokens
    rows = active.nonzero().flatten()
    if not bool(active.all()):  # rows a monitor stopped take no part
        scores = scores[rows]
    if alg_temp is None or alg_temp == 0:
        pick = torch.topk(scores, count).indices
    else:
        try:
            pick = torch.multinomial(F.softmax(scores / alg_temp, dim=-1), count, generator=rng)
        except RuntimeError as err:
            raise SrilabError(
                f"Dream's sampler draws {count} positions per row and a row has fewer masked positions ({err}); "
                "Dream's own code fails here too: pass one seed per row (generator=[...]) to rank each row alone"
            ) from None
    rows = rows.unsqueeze(1).expand_as(pick)
    x[rows, pick] = proposal[rows, pick]


def _commit_per_row(x, mask_index, mask_logits, own, when, active, gens, alg_temp, sample_kw, mask_id) -> None:
    """srilab's per-row rule: row b commits ``int(n_b * (1 - s/t))`` of its own masked positions (all of them
    at the last step; ``when`` is ``(1 - s/t, last)``), ranked among its own unpadded positions, with its own
    generator. Deterministic settings (no draw anywhere) rank every row in one batched call."""
    ratio, last = when
    if sample_kw["temperature"] == 0 and (alg_temp is None or alg_temp == 0):
        confidence, tokens = sample_tokens(mask_logits, **sample_kw)
        n = mask_index.sum(dim=1)
        k = torch.where(active, n if last else (n.to(ratio.dtype) * ratio).long(), torch.zeros_like(n))
        kmax = int(k.max())
        if kmax == 0:
            return
        scores = torch.full_like(x, -torch.inf, dtype=confidence.dtype)
        scores[mask_index] = confidence
        proposal = torch.full_like(x, mask_id)
        proposal[mask_index] = tokens
        pick = torch.topk(scores, kmax).indices
        rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(pick)
        keep = (torch.arange(kmax, device=x.device) < k.unsqueeze(1)) & mask_index[rows, pick]
        x[rows[keep], pick[keep]] = proposal[rows[keep], pick[keep]]
        return
    row_of = mask_index.nonzero(as_tuple=True)[0]
    for b in active.nonzero().flatten().tolist():
        pos = mask_index[b].nonzero().squeeze(1)
        if len(pos) == 0:
            continue
        confidence, tokens = sample_tokens(mask_logits[row_of == b], generator=gens[b], **sample_kw)
        k = len(pos) if last else int(torch.tensor(len(pos), device=x.device) * ratio)
        if k == 0:
            continue
        mine = own[b].nonzero().squeeze(1)  # rank over the row's own positions only
        full = torch.full((x.shape[1],), -torch.inf, dtype=confidence.dtype, device=x.device)
        full[pos] = confidence
        scores = full[mine]
        if alg_temp is None or alg_temp == 0:
            pick = torch.topk(scores, k).indices
        else:
            pick = torch.multinomial(F.softmax(scores / alg_temp, dim=-1), k, generator=gens[b])
        pick = mine[pick]
        canvas = torch.full((x.shape[1],), mask_id, dtype=torch.long, device=x.device)
        canvas[pos] = tokens
        pick = pick[mask_index[b, pick]]
        x[b, pick] = canvas[pick]


def _row_generators(generator: Randomness, batch: int, device) -> list[torch.Generator] | torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if len(generator) != batch:
        raise SrilabError(f"got {len(generator)} seeds for a batch of {batch}")
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in generator]


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
    ``generator``: None (the global RNG) or a ``torch.Generator``: Dream's own rule and random stream, exact;
    or one integer seed per row: srilab's per-row rule (each row's count, ranking and randomness its own).
    ``tracer`` / ``injections``: see the module docstring. Each step reads as Dream's loop: inject, forward,
    choose and commit (:func:`_commit_origin`, :func:`_commit_reference` or :func:`_commit_per_row`), trace.
    """
    if isinstance(model, LanguageModel):
        model = model.module
    _check_arguments(input_ids, max_new_tokens, steps, alg, eps, alg_temp, top_k, logits_shift)
    batch, plen = input_ids.shape
    by_step = _injections_by_step(injections, steps, max_new_tokens, batch)
    rng = _row_generators(generator, batch, input_ids.device)
    forward = _Forward(model, input_ids, attention_mask, max_new_tokens, logits_shift)
    x = F.pad(input_ids, (0, max_new_tokens), value=mask_id)
    timesteps = torch.linspace(1, eps, steps + 1, device=x.device)
    sample_kw = dict(
        temperature=temperature, top_p=top_p, top_k=top_k,
        margin_confidence=alg == "topk_margin", neg_entropy=alg == "entropy",
    )
    for i in range(steps):
        _inject(x, plen, by_step.get(i, ()))
        if tracer is not None and tracer.remask_rows:
            raise SrilabError("the Dream sampler cannot re-mask committed tokens; use a monitor that stops rows")
        stopped = None if tracer is None else tracer.stopped
        active = torch.ones(batch, dtype=torch.bool, device=x.device) if stopped is None else ~stopped.to(x.device)
        mask_index = x == mask_id
        mask_logits = forward.masked_logits(x, mask_index)
        t, s, last = timesteps[i], timesteps[i + 1], i == steps - 1
        if alg == "origin":
            _commit_origin(x, mask_index, mask_logits, 1 if last else 1 - s / t, active, rng, sample_kw, mask_id)
        elif isinstance(rng, list):
            _commit_per_row(x, mask_index, mask_logits, forward.own, (1 - s / t, last), active, rng, alg_temp,
                            sample_kw, mask_id)
        else:
            _commit_reference(x, mask_index, mask_logits, (t, s, last), active, rng, alg_temp, sample_kw, mask_id)
        if tracer is not None:
            tracer.record_diffusion(x, plen, mask_id, logits_shift)
    return x
