"""Masked-diffusion sampling with LLaDA semantics, batched, traced, with remasking variants.

:func:`generate` is a drop-in for the reference ``generate`` of LLaDA (same argument names, order and
meaning; greedy runs reproduce the reference token for token, see ``tests/test_diffusion_sampler.py``).
The response (``gen_length`` masks after the prompt) is split into ``gen_length // block_length`` blocks
decoded left to right; inside a block, ``steps // num_blocks`` denoising steps each commit a scheduled
number of masked positions, the ones the remasking rule ranks most confident. ``block_length=1`` is the
one-token-per-step, left-to-right order: the same weights under an AR-like sampler.

Masks in the prompt (DIJA's attack prompts hold them) are handled as the reference does by default
(``prompt_masks="reference"``): the budget of a step is computed from the current block's masks only, but
every masked position up to the block's end competes for it -- a masked prompt position (or a response
position an earlier block left masked) is never excluded -- so prompt masks get filled and some response
positions may still be masked at the end. DIJA's published code calls LLaDA's reference ``generate``, so
this is what its attacks ran under. ``prompt_masks="schedule"`` budgets the prompt's masks too (in the first
block, on top of its own masks), so every mask, prompt and response, is filled by the last step.

Additions over the reference (all off by default, so the reference behaviour is unchanged):

- ``cfg_scale > 0`` without an ``attention_mask`` (the reference crashes there) and left-padded batches
  (the attention mask is a key-padding mask; rotary attention is relative, so padding does not move
  positions that matter);
- ``remasking``: ``low_confidence`` (probability of the argmax token), ``random``, ``entropy`` (lowest
  predictive entropy first), ``margin`` (largest top-1 minus top-2 probability first) and ``diffuguard``
  / ``diffuguard:<alpha_0>`` (DiffuGuard's stochastic annealing, :mod:`srilab.sampling.diffusion_rules`);
- ``revision`` (ReMDM-style revision remasking, Wang et al. 2025, "Remasking Discrete Diffusion Models with
  Inference-Time Scaling"): at every step but a block's last, ``floor(revision * c)`` of the ``c`` tokens
  already committed in the current block, those the model now finds least likely, are re-masked, and as
  many extra masked positions are committed so the schedule still ends with a fully decoded block. This
  lets the model take back a committed token, including injected text;
- ``injections``: text written into response positions at a chosen step (priming at step 0, refinement
  injection later); injected positions count as committed;
- ``logits_shift=1`` for Dream-style models; ``generator`` may be one seed per row (per-item randomness);
- ``tracer``: a :class:`~srilab.sampling.trace.Tracer` that records phi_t after every step (and, with
  ``TraceConfig(x0=True)``, the step's x0 over the response, see
  :meth:`~srilab.sampling.diffusion_canvas.Canvas.x0_trace`). A live monitor on it may stop rows (they commit
  nothing more) or ask to re-mask a row's positions committed since a given step
  (:meth:`~srilab.sampling.trace.Tracer.pop_remask`, taken before the next step): those are masked again,
  the tokens taken back are banned at their positions for the rest of the generation (logits -inf, so a
  greedy run does not commit them again), and the remaining steps of the current block re-decide them, with
  the block's own masks, also when they lie in finished blocks. Injected text and the prompt are never
  re-masked. A request made at the last step has no step left and stops its row instead.

Fast decoding (Fast-dLLM, Wu et al. 2025; both off by default, and then nothing above changes):

- ``cache="prefix"`` / ``"dual"``: block-wise approximate key/value caching
  (:mod:`srilab.sampling.diffusion_cache`). The first step of every block is a full pass whose keys and
  values are kept; the block's other steps recompute only the block and what follows it (``prefix``) or
  the block alone (``dual``), attending to the kept keys and values for the rest. The first step of a block
  is exact; the others read keys of cached positions computed before the block's later commits (stale in
  a bidirectional model -- the approximation; exact for a causal one). A step whose canvas changed by more
  than the sampler's own commits (an injection, a live monitor's re-mask, also into a finished block) is a
  full pass again. The schedule, the number of steps and the trace length do not change. Traces pool the
  response as ever: at a position the step did not recompute, the state of the block's full pass.
- ``threshold``: confidence-threshold parallel decoding. Each step commits its scheduled budget *and* every
  masked position of its window whose confidence (the remasking rule's score: the probability of x0 for
  ``low_confidence``, top-1 minus top-2 for ``margin``, minus the entropy for ``entropy``) is
  ``>= threshold``; a row that committed more than planned has its remaining masks spread again over the
  block's remaining steps. A block ends for a row when its plan is exhausted, so it may take fewer steps
  than ``steps // num_blocks``. With ``steps=gen_length`` the budget is one token per step: Fast-dLLM's
  rule, "every position above the threshold, at least the most confident one". A threshold above every
  possible confidence (> 1 for ``low_confidence``) gives the fixed schedule's tokens.

  A *step* is still one forward pass, and a trace still has ``steps`` steps, ``steps // num_blocks`` per
  block, block k starting at step ``k * steps // num_blocks`` in every generation (a "step" of the
  trace is not a unit of work any more: count ``stats["forward_passes"]`` for that). A row done with its
  block (or stopped by a live monitor) commits nothing more and is fed the input of its last pass again
  while other rows of the batch still decode, so its traced state repeats its last one (up to float
  rounding of a different batch shape); once every row is done the block's remaining
  steps run no model and repeat the last state (``Tracer.repeat_last``), except where a live monitor (it
  reads every step, and a re-mask may re-open the block) or an x0 trace needs the step, which then runs a
  pass on those same inputs. A row's trace therefore does not depend on its batch. ``stats["commits"]``
  holds the tokens each row committed at each step (0 at a repeated step): tokens per step is its row sum
  over the number of its non-zero entries. A step with an injection always runs.

Only the logits of the positions a step may commit are computed (when the module takes transformers'
``logits_to_keep``): the window from the first masked position before the block (normally none: the
block's start) to the block's end. Positions are chosen as the reference chooses them (one ``topk`` per row
over the row's whole canvas), so exact float32 ties -- frequent when predictions are near-uniform -- fall
the same way; a row's left padding is left out, so the choice does not depend on the batch. A position
whose committed token is the mask token itself (a sampled x0 can be) is still masked, and is decided again
later, as in the reference.

This module owns the entry point, the checks of its arguments and :class:`Injection`. What a step does is
:mod:`srilab.sampling.diffusion_step`'s (forward, predict, choose, commit, trace, named there), the canvas's
bookkeeping :mod:`srilab.sampling.diffusion_canvas`'s, the block cache :mod:`srilab.sampling.diffusion_cache`'s.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from srilab.errors import SrilabError
from srilab.sampling.diffusion_cache import CACHES
from srilab.sampling.diffusion_canvas import INJECTED, PROMPT_MASKS, Canvas
from srilab.sampling.diffusion_rules import (
    REMASKING,
    Randomness,
    add_gumbel_noise,
    get_num_transfer_tokens,
    remasking_rule,
)
from srilab.sampling.diffusion_step import Denoiser, Forward, Predict

if TYPE_CHECKING:
    from srilab.sampling.trace import Tracer

__all__ = [
    "CACHES", "INJECTED", "PROMPT_MASKS", "REMASKING", "Injection", "Randomness", "add_gumbel_noise", "generate",
    "get_num_transfer_tokens",
]


@dataclass(frozen=True)
class Injection:
    """Write ``token_ids`` into the response starting at response position ``offset``, before the forward
    pass of global step ``step`` (0 = before denoising starts). ``rows``: which batch rows (default all)."""

    step: int
    offset: int
    token_ids: tuple[int, ...]
    rows: tuple[int, ...] | None = None


def _check(
    steps, gen_length, block_length, remasking, revision, prompt_masks, injections, cache="none", threshold=None
) -> dict:
    """Validate the arguments; the injections by step."""
    if gen_length <= 0 or block_length <= 0 or steps <= 0:
        raise SrilabError("steps, gen_length and block_length must be positive")
    if gen_length % block_length:
        raise SrilabError(f"gen_length {gen_length} must be a multiple of block_length {block_length}")
    if steps % (gen_length // block_length):
        raise SrilabError(f"steps {steps} must be a multiple of the number of blocks {gen_length // block_length}")
    remasking_rule(remasking)  # an unknown rule (or a bad diffuguard alpha_0) is an error
    if not 0.0 <= revision < 1.0:
        raise SrilabError(f"revision must be in [0, 1), got {revision}")
    if prompt_masks not in PROMPT_MASKS:
        raise SrilabError(f"unknown prompt_masks {prompt_masks!r}: use one of {', '.join(PROMPT_MASKS)}")
    if cache not in CACHES:
        raise SrilabError(f"unknown cache {cache!r}: use one of {', '.join(CACHES)}")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)
    ):
        raise SrilabError(f"threshold must be a finite number or None, got {threshold!r}")
    by_step: dict[int, list[Injection]] = {}
    for inj in injections:
        if inj.offset < 0 or inj.offset + len(inj.token_ids) > gen_length:
            raise SrilabError(f"injection at offset {inj.offset} of {len(inj.token_ids)} tokens exceeds gen_length")
        if not 0 <= inj.step < steps:
            raise SrilabError(f"injection step {inj.step} is outside 0..{steps - 1}")
        by_step.setdefault(inj.step, []).append(inj)
    return by_step


@torch.no_grad()
def generate(
    model,
    prompt: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int = 126336,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    *,
    eos_id: int = 126081,
    eot_id: int = 126348,
    revision: float = 0.0,
    injections: Sequence[Injection] = (),
    logits_shift: int = 0,
    generator: Randomness = None,
    tracer: Tracer | None = None,
    prompt_masks: str = "reference",
    cache: str = "none",
    threshold: float | None = None,
    stats: dict | None = None,
) -> torch.Tensor:
    """Generate ``gen_length`` tokens after ``prompt`` [B, P] by masked diffusion; returns [B, P + gen_length].

    ``model`` is any module whose output has ``.logits`` and that accepts ``attention_mask``.
    ``logits_eos_inf`` / ``confidence_eos_eot_inf`` are the reference's switches (with the token ids as
    ``eos_id`` / ``eot_id``, LLaDA's by default). ``generator``: a ``torch.Generator`` (or None, the global
    RNG) as in the reference, or one integer seed per row, which makes each row's randomness its own.
    ``prompt_masks``: ``"reference"`` (LLaDA's and so DIJA's behaviour: masks in the prompt compete for the
    block's budget without adding to it; some response positions may stay masked) or ``"schedule"`` (they
    are budgeted in the first block too, so the output holds no mask).

    Fast decoding (module docstring, "Fast decoding"): ``cache`` ``"none"`` / ``"prefix"`` / ``"dual"``;
    ``threshold``: commit every masked window position whose confidence reaches it, on top of the schedule.
    ``stats``: a dict to fill with ``commits`` (long [B, steps]: positions each row committed at each step,
    0 at a padded step), ``forward_passes`` (model calls; a CFG call counts once), ``full_passes`` (those
    over the whole canvas) and ``block_passes`` (model calls per block).
    """
    by_step = _check(steps, gen_length, block_length, remasking, revision, prompt_masks, injections, cache, threshold)
    plen = prompt.shape[1]
    num_blocks = gen_length // block_length
    monitored = tracer is not None and tracer.monitor is not None  # commit steps kept for re-mask requests
    canvas = Canvas.start(prompt, gen_length, mask_id, attention_mask, prompt_masks, monitored)
    predict = Predict(temperature, remasking, generator, confidence_eos_eot_inf, eos_id, eot_id, steps)
    forward = Forward.build(model, prompt, attention_mask, gen_length, cfg_scale, logits_shift, predict.full_draw,
                            cache, tracer)
    denoiser = Denoiser(canvas, forward, predict, steps // num_blocks, by_step, tracer, threshold, revision,
                        eos_id if logits_eos_inf else None, logits_shift)
    try:
        for num_block in range(num_blocks):
            b0 = plen + num_block * block_length  # block bounds, canvas positions
            denoiser.block(num_block, b0, b0 + block_length)
    finally:
        if forward.cache is not None:
            forward.cache.close()
    if stats is not None:
        stats.update(denoiser.stats())
    return canvas.x
