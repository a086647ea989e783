"""Autoregressive sampling: batched, left-padded, KV-cached, greedy / temperature / top-p, EOS-aware.

One step = one generated token. Every row runs the same ``max_new_tokens`` steps: a row that has emitted
EOS is fed padding from then on and is inactive for the trace (its phi_t repeats its last state). With
``use_cache=False`` the whole prefix is recomputed every token (the slow baseline the benchmark compares).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from srilab.errors import SrilabError

if TYPE_CHECKING:
    from srilab.sampling.trace import Tracer

Generators = torch.Generator | Sequence[torch.Generator] | None


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: Generators) -> torch.Tensor:
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generator, strict=True)])


@torch.no_grad()
def generate(
    module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_token_id: int | Sequence[int] = (),
    pad_token_id: int = 0,
    use_cache: bool = True,
    generator: Generators = None,
    tracer: Tracer | None = None,
) -> torch.Tensor:
    """Generate ``max_new_tokens`` tokens after left-padded ``input_ids`` [B, P]; returns [B, P + N]."""
    if max_new_tokens <= 0:
        raise SrilabError("max_new_tokens must be positive")
    if temperature < 0 or not 0.0 < top_p <= 1.0:
        raise SrilabError(f"temperature must be >= 0 and top_p in (0, 1], got {temperature} and {top_p}")
    device = input_ids.device
    batch = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    eos = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    seq = input_ids
    out = module(input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache)
    past = out.past_key_values if use_cache else None
    logits = out.logits[:, -1]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    new_tokens: list[torch.Tensor] = []
    pad = torch.full((batch,), pad_token_id, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        tok = torch.where(finished, pad, _sample(logits, temperature, top_p, generator))
        new_tokens.append(tok)
        if tracer is not None:
            tracer.record_ar(~finished, torch.stack(new_tokens, dim=1) if tracer.config.canvas else None)
            if tracer.stopped is not None:
                finished = finished | tracer.stopped  # a live monitor ended these rows
        finished = finished | torch.isin(tok, eos)
        if t == max_new_tokens - 1:
            break
        if bool(finished.all()):
            # Every row has ended: the remaining steps are padding and repeat the last traced state.
            for _ in range(max_new_tokens - 1 - t):
                new_tokens.append(pad)
                if tracer is not None:
                    tracer.repeat_last()
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=1)
        if use_cache:
            position_ids = position_ids[:, -1:] + 1
            out = module(
                tok.unsqueeze(1),
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
        else:
            seq = torch.cat([seq, tok.unsqueeze(1)], dim=1)
            position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
            out = module(seq, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        logits = out.logits[:, -1]
    return torch.cat([input_ids, torch.stack(new_tokens, dim=1)], dim=1)
