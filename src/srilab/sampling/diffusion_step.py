"""The step loop of :func:`srilab.sampling.diffusion.generate`, as named parts.

This module owns what one denoising step does, in the order of LLaDA's reference loop: :class:`Forward` (the
model call: the window's logits, CFG, the block cache), :class:`Predict` (x0 and the remasking rule's
confidence in it) and :class:`Denoiser`, the loop over a block's steps: *pad* (a threshold run whose rows
are all done repeats its last state), *inject* (text, a live monitor's re-masks), *forward*, *predict*,
*choose* (the step's budget, threshold and revision), *commit*, *trace*. The canvas's own bookkeeping
(schedule, window, commits) lives in :mod:`srilab.sampling.diffusion_canvas`; the semantics of every part are
written in :mod:`srilab.sampling.diffusion`'s docstring.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from srilab.models.base import shift_logits
from srilab.models.masks import PreparedMask
from srilab.sampling.diffusion_cache import BlockCache
from srilab.sampling.diffusion_canvas import Canvas
from srilab.sampling.diffusion_rules import Randomness, add_gumbel_noise, confidence, minus_inf_where_not, rand

if TYPE_CHECKING:
    from srilab.sampling.trace import Tracer

__all__ = ["Denoiser", "Forward", "Predict", "accepts_logits_to_keep"]


def accepts_logits_to_keep(model) -> bool:
    """Whether ``model.forward`` takes transformers' ``logits_to_keep`` (an index tensor of positions)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------- forward
@dataclass(frozen=True)
class Forward:
    """The model call of a step: aligned logits (position i predicts token i) of the window, with CFG."""

    model: object
    attention_mask: torch.Tensor | None
    cfg_scale: float
    logits_shift: int
    keep_ok: bool  # compute only the window's logits (``logits_to_keep``), not the whole canvas's
    cache: BlockCache | None = None  # cache="prefix"/"dual": refresh and step passes (diffusion_cache)
    prepared: PreparedMask | None = None  # the canvas's attention mask built once (srilab.models.masks)
    cfg_mask: torch.Tensor | None = None  # the key mask of the doubled CFG batch, made once (not every step)

    @classmethod
    def build(
        cls, model, prompt: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int, cfg_scale: float,
        logits_shift: int, full_draw: bool, cache: str, tracer: Tracer | None,
    ) -> Forward:
        """The call for a canvas of ``prompt`` plus ``gen_length`` masks: the prompt's key-padding mask
        extended over the response (None where nothing is padded: the unmasked path is the same maths,
        faster), the window's logits only (where the model takes ``logits_to_keep`` and no noise is drawn
        over the whole canvas), and the block cache of ``cache`` (``"none"``: none)."""
        if attention_mask is not None:
            ones = torch.ones((prompt.shape[0], gen_length), dtype=attention_mask.dtype, device=prompt.device)
            attention_mask = torch.cat([attention_mask, ones], dim=-1)
            if bool(attention_mask.all()):
                attention_mask = None
        keep_ok = not full_draw and accepts_logits_to_keep(model)
        block_cache = None
        if cache != "none":
            block_cache = BlockCache(model, cache, logits_shift, None if tracer is None else tracer.module)
        cfg_mask = None if attention_mask is None or cfg_scale <= 0.0 else torch.cat([attention_mask] * 2, dim=0)
        return cls(model, attention_mask, cfg_scale, logits_shift, keep_ok, block_cache, PreparedMask(model), cfg_mask)

    def window(
        self, inp: torch.Tensor, mask: torch.Tensor | None, lo: int, hi: int, refresh: bool = True
    ) -> torch.Tensor:
        """Logits [B, hi - lo, V] of canvas positions [lo, hi)."""
        if self.cache is not None:
            return self.cache(inp, mask, lo, hi, refresh)
        if self.prepared is not None:
            mask = self.prepared(mask, inp.shape[0], inp.shape[1], inp.device)
        if self.keep_ok:
            # Dream reads position i at i - 1; position 0 has no predecessor and reads itself (as shift_logits).
            keep = torch.arange(lo - self.logits_shift, hi - self.logits_shift, device=inp.device).clamp_min(0)
            return self.model(inp, attention_mask=mask, logits_to_keep=keep).logits
        return shift_logits(self.model(inp, attention_mask=mask).logits, self.logits_shift)[:, lo:hi]

    def __call__(
        self, canvas: Canvas, lo: int, x: torch.Tensor | None = None, refresh: bool = True
    ) -> torch.Tensor:
        """``x``: the input (default the canvas; a threshold run feeds finished rows their last input).
        ``refresh``: with a cache, recompute and store the whole canvas (the first step of a block)."""
        x = canvas.x if x is None else x
        if self.cfg_scale > 0.0:
            un_x = x.clone()
            un_x[canvas.prompt_index] = canvas.mask_id  # the unconditional branch: the prompt masked
            both = self.window(torch.cat([x, un_x], dim=0), self.cfg_mask, lo, canvas.b1, refresh)
            logits, un_logits = torch.chunk(both, 2, dim=0)
            return un_logits + (self.cfg_scale + 1) * (logits - un_logits)
        return self.window(x, self.attention_mask, lo, canvas.b1, refresh)


# ---------------------------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class Predict:
    """x0 (argmax of the possibly Gumbel-noised logits) and the remasking rule's confidence in it."""

    temperature: float
    remasking: str
    generator: Randomness
    confidence_eos_eot_inf: bool
    eos_id: int
    eot_id: int
    steps: int = 1  # the generation's steps (the diffuguard rule anneals its noise over them)

    @property
    def per_row(self) -> bool:
        return self.generator is not None and not isinstance(self.generator, torch.Generator)

    @property
    def full_draw(self) -> bool:
        """The reference draws its noise over the whole canvas from a global or single generator; to keep
        that random stream, noise is drawn for the whole canvas and the window's slice used."""
        return not self.per_row and (self.temperature > 0 or self.remasking == "random")

    def __call__(self, logits: torch.Tensor, canvas: Canvas, lo: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        hi = canvas.b1
        if self.full_draw and self.temperature > 0:
            full = torch.zeros((*canvas.x.shape, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
            full[:, lo:hi] = logits
            logits_with_noise = add_gumbel_noise(full, self.temperature, self.generator, step)[:, lo:hi]
        else:
            logits_with_noise = add_gumbel_noise(logits, self.temperature, self.generator, step)
        x0 = torch.argmax(logits_with_noise, dim=-1)
        if self.confidence_eos_eot_inf:  # the reference's switch, verbatim in effect
            logits_with_noise[:, :, self.eos_id] = logits[:, :, self.eot_id] = -torch.inf
        if self.remasking == "random" and not self.per_row:
            x0_p = rand(tuple(canvas.x.shape), self.generator, logits.device, step=step)[:, lo:hi]
        else:
            x0_p = confidence(logits, x0, self.remasking, self.generator, step, self.steps)
        return x0, x0_p


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class Denoiser:
    """The steps of one batch's generation, block by block; ``commits`` and ``block_passes`` fill as it runs.

    ``injections``: by global step. ``eos_inf``: a token id whose logit is set to -inf before x0 is taken
    (the reference's ``logits_eos_inf``; None: none). ``threshold`` / ``revision``: as in ``generate``."""

    canvas: Canvas
    forward: Forward
    predict: Predict
    steps_per_block: int
    injections: dict[int, list]
    tracer: Tracer | None = None
    threshold: float | None = None
    revision: float = 0.0
    eos_inf: int | None = None
    logits_shift: int = 0
    commits: list[torch.Tensor] = field(default_factory=list)  # per step, long [B]: the positions committed
    block_passes: list[int] = field(default_factory=list)  # per block entered, the model calls it made
    last_input: torch.Tensor | None = None  # threshold: each row's input at its last pass in the block

    @property
    def stopped(self) -> torch.Tensor | None:
        """Bool [B]: the rows a live monitor has stopped (None: none, or no monitor)."""
        return None if self.tracer is None else self.tracer.stopped

    def block(self, num_block: int, b0: int, b1: int) -> None:
        """Decode the block ``[b0, b1)`` (canvas positions), the generation's ``num_block``-th."""
        self.canvas.begin_block(b0, b1, self.steps_per_block, self.stopped)
        self.last_input = None
        self.block_passes.append(0)
        for i in range(self.steps_per_block):
            self.step(i, num_block * self.steps_per_block + i)

    def step(self, i: int, step: int) -> None:
        """Step ``i`` of the block, ``step`` of the generation: pad, or inject -> forward -> predict -> choose
        -> commit -> trace."""
        canvas, stopped = self.canvas, self.stopped
        if self.threshold is not None and i > 0 and self.may_pad(i, stopped, step in self.injections):
            self.pad()
            return
        changed = self.inject(step)
        lo = canvas.window_start(stopped)  # positions [lo, b1) may commit: the block and earlier masks
        if changed:
            canvas.respread(i, lo)  # the masks changed: spread what is left over the remaining steps
        mask_index = canvas.x[:, lo : canvas.b1] == canvas.mask_id
        idle = None if self.threshold is None else self.idle(i, stopped)
        logits = self.logits(lo, idle, changed, refresh=i == 0 or changed)
        x0, conf = self.x0(logits, lo, mask_index, step)
        k, revised, extra = self.budget(i, logits, lo, mask_index, conf, idle, stopped)
        transfer_index = canvas.choose(conf, lo, k)
        self.commit(i, lo, transfer_index, x0, revised, extra, step)
        self.trace(lo, x0, logits)

    # ------------------------------------------------------------------------------ the parts of a step
    def idle(self, i: int, stopped: torch.Tensor | None) -> torch.Tensor:
        """Bool [B]: the rows that commit nothing more in this block (plan exhausted, or stopped by a monitor)."""
        idle = self.canvas.budget_left(i) == 0
        return idle if stopped is None else idle | stopped

    def may_pad(self, i: int, stopped: torch.Tensor | None, injecting: bool) -> bool:
        """Whether step ``i`` of a threshold run may repeat the last state instead of running the model: every
        row is done with the block, nothing is injected, and no live monitor (it reads every step and may
        re-open the block by a re-mask) or x0 trace (it keeps every step's prediction) needs the step's pass."""
        if injecting or not bool(self.idle(i, stopped).all()):
            return False
        tracer = self.tracer
        return tracer is None or (tracer.monitor is None and not getattr(tracer, "x0_due", False))

    def pad(self) -> None:
        """A step that runs no model: the trace repeats its last state, no row commits."""
        if self.tracer is not None:
            self.tracer.repeat_last()
        x = self.canvas.x
        self.commits.append(torch.zeros(x.shape[0], dtype=torch.long, device=x.device))

    def inject(self, step: int) -> bool:
        """Text written before the forward pass, and a live monitor's re-masks; whether the canvas changed."""
        changed = self.canvas.inject(self.injections.get(step, ()))
        if self.tracer is not None and self.tracer.remask_rows:
            self.canvas.take_back(self.tracer.pop_remask())
            changed = True
        return changed

    def logits(self, lo: int, idle: torch.Tensor | None, changed: bool, refresh: bool) -> torch.Tensor:
        """The forward pass (+CFG): the window's logits, banned tokens and (optionally) EOS excluded. With a
        threshold, rows done with the block commit nothing more and see the input of their last pass again,
        so their state is their last one, whichever batch they run in (``diffusion``'s docstring)."""
        x_in = None
        if idle is not None:
            if changed or self.last_input is None:
                x_in = self.canvas.x.clone()
            else:
                x_in = torch.where(idle[:, None], self.last_input, self.canvas.x)
            self.last_input = x_in
        logits = self.forward(self.canvas, lo, x_in, refresh=refresh)
        self.block_passes[-1] += 1
        self.canvas.ban(logits, lo)
        if self.eos_inf is not None:
            logits[:, :, self.eos_inf] = -torch.inf
        return logits

    def x0(
        self, logits: torch.Tensor, lo: int, mask_index: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 and its confidence; positions already decided keep their token and cannot be chosen (-inf)."""
        x0, x0_p = self.predict(logits, self.canvas, lo, step)
        x0 = torch.where(mask_index, x0, self.canvas.x[:, lo : self.canvas.b1])
        return x0, minus_inf_where_not(mask_index, x0_p)

    def budget(
        self, i: int, logits: torch.Tensor, lo: int, mask_index: torch.Tensor, conf: torch.Tensor,
        idle: torch.Tensor | None, stopped: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """How many positions each row commits: the step's budget (with a threshold, at least every position
        whose confidence reaches it), plus as many as revision re-masks. Returns that count [B], the revised
        positions (or None) and the rows that commit more than planned (threshold; or None)."""
        k = planned = self.canvas.schedule[:, i]
        if idle is not None:
            k = torch.maximum(k, (conf >= self.threshold).sum(dim=1))
            k = torch.where(idle, torch.zeros_like(k), k)
        extra = None if idle is None else k > planned
        revised = None
        if self.revision > 0.0 and i < self.steps_per_block - 1:
            revised = self.canvas.revise(logits, lo, mask_index, k, self.revision)
            if idle is not None:
                revised &= ~idle[:, None]
            k = k + revised.sum(dim=1)
        if stopped is not None:
            k = torch.where(stopped, torch.zeros_like(k), k)  # a live monitor froze these rows
            revised = None if revised is None else revised & ~stopped[:, None]
        return k, revised, extra

    def commit(
        self, i: int, lo: int, transfer_index: torch.Tensor, x0: torch.Tensor, revised: torch.Tensor | None,
        extra: torch.Tensor | None, step: int,
    ) -> None:
        """Commit (and revise); a threshold's extra commits leave fewer masks to spread."""
        self.canvas.commit(lo, transfer_index, x0, revised, step)
        if extra is not None and i + 1 < self.steps_per_block and bool(extra.any()):
            self.canvas.respread(i + 1, lo, rows=extra)
        self.commits.append(transfer_index.sum(dim=1))

    def trace(self, lo: int, x0: torch.Tensor, logits: torch.Tensor) -> None:
        """phi_t of the step (and, when due, its x0 over the response) to the tracer."""
        if self.tracer is None:
            return
        more = {}
        if getattr(self.tracer, "x0_due", False):
            more["x0"], more["x0_p"] = self.canvas.x0_trace(lo, x0, logits)
        self.tracer.record_diffusion(self.canvas.x, self.canvas.plen, self.canvas.mask_id, self.logits_shift, **more)

    def stats(self) -> dict:
        """``generate``'s ``stats``: commits [B, steps], forward passes, full passes, passes per block."""
        cache = self.forward.cache
        return dict(
            commits=torch.stack(self.commits, dim=1),
            forward_passes=sum(self.block_passes),
            full_passes=cache.refreshes if cache is not None else sum(self.block_passes),
            block_passes=self.block_passes,
        )
