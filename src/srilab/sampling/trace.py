"""Step-wise traces: the pooled activation phi_t at every generation step.

A :class:`Tracer` is a context manager that hooks one module of a :class:`~srilab.models.LanguageModel`
(the final norm by default, i.e. the LM head's input; or a decoder block) and, at every step the sampler
reports, reduces that step's output to one vector per sequence. Nothing of shape [B, L, D] outlives its
step: the hook keeps a reference to the current step's output only (the forward pass allocated it anyway)
and the sampler's ``record_*`` call pools it right after the step is decided, so memory is O(steps x D) per
sequence. The hook is always removed on exit, also on error.

Pooling (DESIGN.md, "Step activation"):

- diffusion, ``generated``: mean over response positions that are committed (not masked) once the step's
  tokens are committed; at a step that commits nothing and has nothing committed yet, all response
  positions are used;
- diffusion, ``response``: mean over all response positions, masked ones included (the authors' code);
- AR: running mean over the generated tokens so far, i.e. over the outputs at the positions whose logits
  produced tokens 0..t (the last prompt position and generated tokens 0..t-1). A sequence that ended
  (EOS) repeats its last state, so every generation of a configuration has the same number of steps.

Under classifier-free guidance the model runs on [conditional; unconditional] rows: only the first
``batch_size`` rows (the conditional branch) are traced.

Besides phi_t a trace may keep, per step, the response canvas (``canvas=True``: committed tokens only) and,
for diffusion, the sampler's x0 (``x0=True``: its current guess at every response position and the
probability the model gives it; see :class:`Trace`), which shows what the model would write at positions it
has not committed yet -- e.g. whether harmful text it was heading for is later abandoned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import torch

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel, LayerSpec
from srilab.sampling.monitor import Monitor, StopRequest

Pooling = Literal["generated", "response"]


@dataclass(frozen=True)
class TraceConfig:
    layer: LayerSpec = "last"
    pooling: Pooling = "generated"
    canvas: bool = False  # also keep the response canvas (token ids) after every step
    x0: bool = False  # diffusion: also keep the sampler's x0 and its probability (see Trace)
    x0_every: int = 1  # ... at the steps that are multiples of x0_every (0, k, 2k, ...)

    def __post_init__(self) -> None:
        if self.pooling not in ("generated", "response"):
            raise SrilabError(f"unknown pooling {self.pooling!r}: use 'generated' or 'response'")
        if self.x0_every < 1:
            raise SrilabError(f"x0_every must be a positive number of steps, got {self.x0_every}")

    def key(self) -> dict:
        return {"layer": str(self.layer), "pooling": self.pooling}


class _StepSums(NamedTuple):
    """What a traced diffusion step keeps (pooled for all steps at once by ``Tracer._pooled``)."""

    unmasked: torch.Tensor  # [B, 1, D]: the sum of the states at the response's unmasked positions
    whole: torch.Tensor  # [B, 1, D]: the sum over the whole response
    length: int  # G, the response's length
    unmasked_flags: torch.Tensor | None  # [B, 1, G] float, 1 where unmasked; None: the "response" pooling


@dataclass
class Trace:
    """What a traced generation leaves behind.

    ``activations``: float32 [B, S, D], phi_t per sequence and step. ``canvas``: int64 [B, S, G], the
    response tokens after every step, when requested; G is always the full response length (``gen_length``
    or ``max_new_tokens``). Diffusion: the mask id where still masked. AR: -1 at positions not generated yet,
    the sampler's padding after a row ended (EOS), also in the steps after every row ended.

    ``x0_tokens`` int32 / ``x0_probs`` float16 [B, S', G], when requested (diffusion): at the steps
    ``x0_steps`` (S' of them, every ``x0_every``-th from 0), the sampler's x0 after that step's forward pass:
    its argmax prediction at a masked position (the sampled token at temperature > 0) and the committed token
    at a committed one, with the probability the model gives that token. The sampler computes logits only for
    the positions the step may commit (the current block, and masked positions before it): elsewhere the
    step made no prediction, the token is the canvas's (committed token, or the mask id) and the probability 0.
    No logits are kept.

    ``meta``: kind, layer, pooling and the sampler settings.
    """

    activations: torch.Tensor
    canvas: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    x0_tokens: torch.Tensor | None = None
    x0_probs: torch.Tensor | None = None
    x0_steps: list[int] | None = None

    @property
    def num_steps(self) -> int:
        return int(self.activations.shape[1])

    def numpy(self) -> np.ndarray:
        return self.activations.numpy()

    def select(self, index) -> Trace:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return Trace(
            activations=self.activations[index],
            canvas=pick(self.canvas),
            meta=dict(self.meta),
            x0_tokens=pick(self.x0_tokens),
            x0_probs=pick(self.x0_probs),
            x0_steps=None if self.x0_steps is None else list(self.x0_steps),
        )

    @staticmethod
    def concat(traces: list[Trace]) -> Trace:
        """The traces of several batches, one after the other. Raises when they do not fit together (some
        with a canvas or x0 and some without, different widths or x0 steps): nothing is dropped silently."""
        if not traces:
            raise SrilabError("no traces to concatenate")
        steps = {t.num_steps for t in traces}
        if len(steps) != 1:
            raise SrilabError(f"traces have different numbers of steps {sorted(steps)}: use one sampler config")
        x0_steps = {None if t.x0_steps is None else tuple(t.x0_steps) for t in traces}
        if len(x0_steps) != 1:
            raise SrilabError("traces kept x0 at different steps (or some did not): use one trace config")
        return Trace(
            activations=torch.cat([t.activations for t in traces]),
            canvas=_cat([t.canvas for t in traces], "canvas"),
            meta=dict(traces[0].meta),
            x0_tokens=_cat([t.x0_tokens for t in traces], "x0_tokens"),
            x0_probs=_cat([t.x0_probs for t in traces], "x0_probs"),
            x0_steps=None if traces[0].x0_steps is None else list(traces[0].x0_steps),
        )


def _cat(parts: list[torch.Tensor | None], name: str) -> torch.Tensor | None:
    """Concatenate along the batch; None if no part has the field; raise if only some have it or shapes differ."""
    present = [p is not None for p in parts]
    if not any(present):
        return None
    if not all(present):
        raise SrilabError(f"only some traces have a {name}: use one trace config")
    shapes = {tuple(p.shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise SrilabError(f"the traces' {name} shapes differ {sorted(shapes)}: use one sampler config")
    return torch.cat(parts)


class Tracer:
    """Hooks ``model.hidden_module(config.layer)``; samplers call :meth:`record_diffusion` or
    :meth:`record_ar` once per step. Use as ``with Tracer(model, cfg, batch_size) as tracer: ...``."""

    def __init__(self, model: LanguageModel, config: TraceConfig, batch_size: int, monitor: Monitor | None = None):
        """``monitor``: optional live check (:class:`~srilab.sampling.monitor.Monitor`), whose
        ``after_step(step, phi [B, D]) -> StopRequest | None`` is called after every step with that step's
        pooled activations; rows in ``StopRequest.stop`` are *stopped*: the samplers read :attr:`stopped` and
        end them (AR: no more tokens; diffusion: no more commits).

        ``StopRequest.remask_since[b] >= 0`` asks to re-mask row b's positions committed at steps
        ``remask_since[b]`` .. now (diffusion only). The requests wait in :attr:`remask_rows` until the
        diffusion sampler takes them with :meth:`pop_remask` before its next step; :attr:`remask_counts`
        counts the ones taken. A request left at the end (made at the last step, nothing left to re-decide)
        stops its row there instead."""
        self.model = model
        self.config = config
        self.batch_size = batch_size
        self.module = model.hidden_module(config.layer)
        self._handle = None
        self._current: torch.Tensor | None = None
        self._steps: list[_StepSums] = []  # diffusion: per step, the sums to pool (see _pooled)
        self._ones_cache: torch.Tensor | None = None
        self._canvas: list[torch.Tensor] = []
        self._x0_tokens: list[torch.Tensor] = []
        self._x0_probs: list[torch.Tensor] = []
        self._x0_steps: list[int] = []
        self._ar_last: list[torch.Tensor] = []
        self._ar_active: list[torch.Tensor] = []
        self._ar_index: list[int] = []  # per AR step, which recorded state it shows (repeats point back)
        self.monitor = monitor
        if monitor is not None and hasattr(monitor, "reset"):
            monitor.reset(batch_size)
        self.stopped: torch.Tensor | None = None  # bool [B] once a monitor stopped a row
        self.stop_steps: list[int] = [-1] * batch_size  # the step at which each row was stopped (-1: never)
        self.remask_rows: dict[int, int] = {}  # pending re-mask requests: row -> first step to take back
        self.remask_counts: list[int] = [0] * batch_size  # re-masks applied per row
        self._ar_sum: torch.Tensor | None = None  # running sums, kept only when a monitor needs phi_t live
        self._ar_count: torch.Tensor | None = None

    # -------------------------------------------------------------------------------- hook lifecycle
    def __enter__(self) -> Tracer:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._current = None

    def _hook(self, _module, _inputs, output) -> None:
        out = output[0] if isinstance(output, tuple) else output
        self._current = out[: self.batch_size]

    def _take(self) -> torch.Tensor:
        if self._current is None:
            raise SrilabError(
                f"the traced module ({type(self.module).__name__}) produced no output this step: "
                "is it part of the model's forward pass?"
            )
        h, self._current = self._current, None
        return h

    # -------------------------------------------------------------------------------- recording
    @property
    def x0_due(self) -> bool:
        """Whether the next :meth:`record_diffusion` keeps x0 (samplers compute it only then)."""
        return self.config.x0 and len(self._steps) % self.config.x0_every == 0

    def record_diffusion(
        self,
        canvas: torch.Tensor,
        prompt_len: int,
        mask_id: int,
        logits_shift: int = 0,
        x0: torch.Tensor | None = None,
        x0_p: torch.Tensor | None = None,
    ) -> None:
        """Pool this step's output over the response of ``canvas`` [B, P+G] (the canvas after the step).

        ``x0`` / ``x0_p`` [B, G]: the step's x0 over the response and its probability (see :class:`Trace`);
        needed when :attr:`x0_due`, ignored otherwise."""
        if self.x0_due:
            if x0 is None or x0_p is None:
                raise SrilabError("this trace keeps x0 but the sampler reported none (x0 needs a diffusion sampler)")
            self._x0_steps.append(len(self._steps))
            self._x0_tokens.append(x0.to(torch.int32))
            self._x0_probs.append(x0_p.to(torch.float16))
        h = self._take()
        length = canvas.shape[1]
        # Dream: the output at position i predicts token i + 1, so response position p is read at p - 1.
        h = h[:, prompt_len - logits_shift : length - logits_shift].to(torch.float32)
        # A step only keeps sums (the division, and the whole-response fallback of a step in which a row has
        # nothing unmasked yet, are done for all steps at once in ``result``): a few tensor ops a step.
        every = torch.bmm(self._ones(h), h)  # [B, 1, D]: the sum over the whole response
        if self.config.pooling == "generated":
            unmasked = canvas[:, prompt_len:].ne(mask_id).to(torch.float32).unsqueeze(1)  # [B, 1, G]
            self._steps.append(_StepSums(torch.bmm(unmasked, h), every, h.shape[1], unmasked))
        else:
            self._steps.append(_StepSums(every, every, h.shape[1], None))
        if self.monitor is not None:
            self._check(len(self._steps) - 1, self._pooled(self._steps[-1:])[:, 0])
        if self.config.canvas:
            self._canvas.append(canvas[:, prompt_len:].clone())

    def _ones(self, h: torch.Tensor) -> torch.Tensor:
        """float32 [B, 1, G] ones for ``h`` [B, G, D], made once per shape and device."""
        shape = (h.shape[0], 1, h.shape[1])
        if self._ones_cache is None or self._ones_cache.shape != shape or self._ones_cache.device != h.device:
            self._ones_cache = torch.ones(shape, device=h.device)
        return self._ones_cache

    @staticmethod
    def _pooled(steps: list[_StepSums]) -> torch.Tensor:
        """float32 [B, S, D]: phi_t of the recorded diffusion steps: the mean over the unmasked positions; over
        the whole response where a row has none unmasked, or for the ``response`` pooling (no flags)."""
        whole = torch.cat([s.whole for s in steps], dim=1) / steps[0].length
        if steps[0].unmasked_flags is None:
            return whole
        sums = torch.cat([s.unmasked for s in steps], dim=1)
        counts = torch.cat([s.unmasked_flags for s in steps], dim=1).sum(dim=-1, keepdim=True)  # [B, S, 1]
        return torch.where(counts == 0, whole, sums / counts)

    def record_ar(self, active: torch.Tensor, canvas: torch.Tensor | None = None) -> None:
        """Running mean of the last position's output over the steps in which a row was still active.

        Per step this only keeps the last position's vector and the active flags; the running means are
        computed once, vectorised, in :meth:`result` (so tracing costs the decoding loop almost nothing).
        """
        if self.config.x0:
            raise SrilabError("x0 traces need a diffusion sampler: an AR step has no masked positions to guess")
        h = self._take()
        last = h[:, -1]
        if h.shape[1] > 1:
            last = last.clone()  # do not keep a whole [B, L, D] prefix output alive
        self._ar_last.append(last)
        self._ar_active.append(active)  # the sampler passes a fresh tensor each step
        self._ar_index.append(len(self._ar_last) - 1)
        if self.monitor is not None:
            act = active.to(torch.float32).unsqueeze(1)
            lastf = last.to(torch.float32)
            if self._ar_sum is None:
                self._ar_sum, self._ar_count = torch.zeros_like(lastf), torch.zeros_like(act)
            self._ar_sum += lastf * act
            self._ar_count += act
            self._check(len(self._ar_index) - 1, self._ar_sum / self._ar_count.clamp_min(1.0))
            if self.remask_rows:
                raise SrilabError("re-masking needs a diffusion sampler; use action='stop'")
        if self.config.canvas and canvas is not None:
            self._canvas.append(canvas.clone())

    def _check(self, step: int, phi: torch.Tensor) -> None:
        request = self.monitor.after_step(step, phi)
        if request is None:
            return
        if not isinstance(request, StopRequest):
            raise SrilabError(
                f"{type(self.monitor).__name__}.after_step returned {type(request).__name__}: a monitor answers "
                "with a srilab.sampling.monitor.StopRequest or None"
            )
        since = request.remask_since
        flags = torch.as_tensor(request.stop, dtype=torch.bool, device=phi.device)
        if flags.shape != (self.batch_size,):
            raise SrilabError(f"a StopRequest has {tuple(flags.shape)} stop flags for a batch of {self.batch_size}")
        if since is not None:
            for row, first in enumerate(np.asarray(since).tolist()):
                if first >= 0 and not flags[row] and (self.stopped is None or not self.stopped[row]):
                    self.remask_rows[row] = int(first)
        new = flags if self.stopped is None else flags & ~self.stopped
        for row in new.nonzero().flatten().tolist():
            self.stop_steps[row] = step
        self.stopped = flags if self.stopped is None else self.stopped | flags

    def pop_remask(self) -> dict[int, int]:
        """The pending re-mask requests (row -> first step whose commits to take back), now counted as
        applied; the sampler that calls this re-masks them before its next step."""
        requests, self.remask_rows = self.remask_rows, {}
        for row in requests:
            self.remask_counts[row] += 1
        return requests

    def repeat_last(self, pad_token_id: int | None = None) -> None:
        """A step in which no row is active (all ended): every row repeats its last state. An AR canvas still
        grows by one position, the padding the AR sampler writes for ended rows (``pad_token_id``, by default
        the model's, else 0, as :func:`srilab.sampling.generate` passes it), so that every step of a
        configuration shows the same positions whichever batch the row ran in."""
        if self._ar_index:
            self._ar_index.append(self._ar_index[-1])
        elif self._steps:
            self._steps.append(self._steps[-1])
        else:
            raise SrilabError("repeat_last() before any recorded step")
        if self.config.canvas and self._canvas:
            last = self._canvas[-1]
            if self._ar_index:
                if pad_token_id is None:
                    pad_token_id = getattr(self.model, "pad_token_id", None) or 0
                last = torch.cat([last, last.new_full((last.shape[0], 1), pad_token_id)], dim=1)
            self._canvas.append(last)

    def result(self, meta: dict | None = None) -> Trace:
        if not self._steps and not self._ar_index:
            raise SrilabError("the trace recorded no step")
        if self._ar_index:
            # Running means over active steps; a step after all rows ended repeats the previous state.
            last = torch.stack(self._ar_last, dim=1).to(torch.float32)  # [B, T, D]
            act = torch.stack(self._ar_active, dim=1).to(torch.float32).unsqueeze(-1)  # [B, T, 1]
            means = (last * act).cumsum(dim=1) / act.cumsum(dim=1).clamp_min(1.0)
            acts = means[:, torch.tensor(self._ar_index)].cpu()
        else:
            acts = self._pooled(self._steps).cpu()
        if not torch.isfinite(acts).all():
            raise SrilabError("the traced activations contain NaN or inf: check the model's dtype and weights")
        canvas = None
        if self._canvas:
            width = max(c.shape[-1] for c in self._canvas)
            canvas = torch.stack(
                [torch.nn.functional.pad(c, (0, width - c.shape[-1]), value=-1) for c in self._canvas], dim=1
            ).cpu()
        x0_tokens = x0_probs = x0_steps = None
        if self._x0_steps:
            x0_tokens = torch.stack(self._x0_tokens, dim=1).cpu()
            x0_probs = torch.stack(self._x0_probs, dim=1).cpu()
            x0_steps = list(self._x0_steps)
        info = {"kind": self.model.kind, **self.config.key(), **(meta or {})}
        if self.monitor is not None:
            for row in self.remask_rows:  # requested at the last step: nothing left to re-decide
                self.stop_steps[row] = acts.shape[1] - 1
            self.remask_rows = {}
            info["stop_steps"] = list(self.stop_steps)
            info["remask_counts"] = list(self.remask_counts)
        return Trace(
            activations=acts, canvas=canvas, meta=info, x0_tokens=x0_tokens, x0_probs=x0_probs, x0_steps=x0_steps
        )
