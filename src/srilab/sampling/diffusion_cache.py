"""Block-wise approximate key/value caching for masked-diffusion sampling (Fast-dLLM, Wu et al. 2025).

A bidirectional model recomputes every position at every step, although within a block only the block's
positions change. :class:`BlockCache` runs one *refresh* pass over the whole canvas at the first step of
every block (and again whenever the canvas changed other than by the sampler's own commits: an injection, a
live monitor's re-mask), keeps every layer's keys and values of that pass, and answers the block's other
steps with a *step* pass over a part of the canvas only, whose queries attend over the stored keys and
values spliced with the part's fresh ones (in canvas order, so a key-padding mask and a causal mask apply
as in a full pass):

- ``"prefix"``: the part is ``[start, L)`` -- the block and everything after it; the prefix ``[0, start)``
  (the prompt and the finished blocks) comes from the refresh pass;
- ``"dual"``: the part is ``[start, block end)``; the suffix (the masked blocks still to come) comes from the
  refresh pass too.

``start`` is the first position whose token may still change or whose logits the step reads: the block's
start, or earlier when masked positions before the block compete for it (masks in the prompt, positions a
live monitor re-masked) -- for a Dream-style model (``logits_shift=1``) one position earlier still.

What is exact and what is approximate: the refresh pass *is* a full pass (bit for bit, the sampler's first
step of every block is the uncached one), and a step pass on a canvas that did not change since the refresh
equals a full pass up to float rounding. Once the block's commits change the canvas, the stored keys and
values of the cached positions are stale: in a bidirectional model they were computed attending to the
block as it was at the refresh. That is the approximation. In a causal model a position's keys depend only
on earlier tokens, so the prefix's are never stale and the block's queries never read the suffix: both
caches then give the uncached sampler's tokens (up to float rounding).

Under a trace, the hooked module's output of a step pass covers the part only; the state a
:class:`~srilab.sampling.trace.Tracer` reads is completed with the refresh pass's state at the cached
positions (the state their cached keys and values came from), so phi_t pools the whole response as ever.

Supported modules: the native LLaDA / Dream :class:`~srilab.models.native.BidirectionalLM` and transformers
decoders that build their masks per layer type (``config.layer_types``: Gemma-3, e.g. the toy pair), which
take ``logits_to_keep``, ``position_ids`` and a cache object.
"""

from __future__ import annotations

import inspect

import torch

from srilab.errors import SrilabError
from srilab.models.masks import PreparedMask, layer_masks
from srilab.models.native import BidirectionalLM

CACHES = ("none", "prefix", "dual")


class _Splice:
    """The key/value store of one block, in transformers' cache protocol (``update(key, value, layer_idx)``).

    Recording (the refresh pass): every layer's keys and values [B, kv_heads, L, head_dim] are kept and
    returned unchanged, so the pass computes exactly what it computes without a cache. Splicing (a step
    pass over positions ``[start, end)``): the part's fresh keys and values are written over those positions
    of the stored ones, and the whole canvas's are returned."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.recording = True
        self.start = self.end = 0

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.recording:
            self.keys.append(key)
            self.values.append(value)
            return key, value
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, self.start : self.end] = key
        values[:, :, self.start : self.end] = value
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always passed explicitly


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _with_first(output, value):
    return (value, *output[1:]) if isinstance(output, tuple) else value


class BlockCache:
    """The model calls of a cached diffusion sampler: :meth:`__call__` returns the logits of the window
    ``[lo, hi)`` (aligned: position i predicts token i), from a refresh or a step pass (module docstring).

    ``trace_module``: the module a tracer hooks (``Tracer.module``), whose step-pass output is completed
    with the refresh pass's state for the tracer (two hooks around the tracer's own, removed by
    :meth:`close`)."""

    def __init__(self, model, mode: str, logits_shift: int = 0, trace_module=None):
        if mode not in ("prefix", "dual"):
            raise SrilabError(f"unknown cache {mode!r}: use one of {', '.join(CACHES)}")
        self.model, self.mode, self.shift = model, mode, logits_shift
        self.native = isinstance(model, BidirectionalLM)
        if not self.native:
            cfg = getattr(model, "config", None)
            params = _parameters(model)
            if cfg is None or not getattr(cfg, "layer_types", None) or "logits_to_keep" not in params:
                raise SrilabError(
                    f"cache={mode!r} needs a native LLaDA/Dream module or a transformers decoder with per-layer "
                    f"attention masks (config.layer_types, e.g. Gemma-3); {type(model).__name__} is neither: "
                    "use cache='none'"
                )
            self.cache_kw = "cache" if "cache" in params else "past_key_values"
            self.prepared = PreparedMask(model)  # the refresh pass's full-canvas mask, built once
            self.layout = self.prepared.layout  # the step passes' per-layer masks
        self.splice: _Splice | None = None
        self.refreshes = 0
        self.steps = 0
        self._phase: str | None = None
        self._state: torch.Tensor | None = None
        self._full: torch.Tensor | None = None  # the traced state of the steps since the refresh
        self._partial = None
        self._hooks = []
        if trace_module is not None:
            self._hooks = [
                trace_module.register_forward_hook(self._complete, prepend=True),
                trace_module.register_forward_hook(self._restore),
            ]

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.splice = self._state = self._full = self._partial = None

    # ------------------------------------------------------------------------------------------ passes
    def __call__(
        self, inp: torch.Tensor, mask: torch.Tensor | None, lo: int, hi: int, refresh: bool
    ) -> torch.Tensor:
        """Logits [B, hi - lo, V] of canvas positions ``[lo, hi)`` of ``inp`` [B, L]; ``mask``: the [B, L]
        key-padding mask or None. ``refresh``: recompute the whole canvas and store it (also done when the
        window reaches before the stored part, or the rows changed)."""
        keep = torch.arange(lo - self.shift, hi - self.shift, device=inp.device).clamp_min(0)
        start = max(lo - self.shift, 0)
        s = self.splice
        if refresh or s is None or start < s.start or hi > s.end or s.keys[0].shape[0] != inp.shape[0]:
            return self._refresh(inp, mask, keep, start, hi)
        return self._step(inp, mask, keep - s.start)

    def _refresh(self, inp, mask, keep, start, hi) -> torch.Tensor:
        self.refreshes += 1
        self._phase = "refresh"
        try:
            if self.native:
                splice = _Splice()
                logits = self.model(inp, attention_mask=mask, logits_to_keep=keep, past_key_values=splice).logits
            else:
                from transformers import DynamicCache

                store = DynamicCache()
                full = self.prepared(mask, inp.shape[0], inp.shape[1], inp.device)
                logits = self.model(inp, attention_mask=full, logits_to_keep=keep, use_cache=True,
                                    **{self.cache_kw: store}).logits
                splice = _Splice()
                splice.keys, splice.values = _layers_of(store)
        finally:
            self._phase = None
        splice.recording = False
        splice.start, splice.end = start, inp.shape[1] if self.mode == "prefix" else hi
        self.splice = splice
        return logits

    def _step(self, inp, mask, keep) -> torch.Tensor:
        s = self.splice
        self.steps += 1
        part = inp[:, s.start : s.end]
        pos = torch.arange(s.start, s.end, device=inp.device).unsqueeze(0)
        self._phase = "step"
        try:
            if self.native:
                return self.model(part, attention_mask=mask, logits_to_keep=keep, position_ids=pos,
                                  past_key_values=s).logits
            masks = layer_masks(self.layout, mask, s.start, s.end, inp.shape[1], inp.device)
            return self.model(part, attention_mask=masks, logits_to_keep=keep, position_ids=pos, use_cache=False,
                              **{self.cache_kw: s}).logits
        finally:
            self._phase = None
            self._partial = None

    # ------------------------------------------------------------------------------------------ trace
    def _complete(self, _module, _inputs, output):
        """Before the tracer's hook: keep the refresh pass's state; complete a step pass's. The completed
        state is one buffer per refresh, copied from the refresh pass's once: every step pass of a refresh
        covers the same positions ``[start, end)``, so writing the part over them leaves the others as the
        refresh pass computed them (the tracer pools it within the step and keeps no reference)."""
        if self._phase == "refresh":
            self._state = _first(output).detach()
            self._full = None
        elif self._phase == "step" and self._state is not None:
            if self._full is None:
                self._full = self._state.clone()
            self._full[:, self.splice.start : self.splice.end] = _first(output)
            self._partial = output
            return _with_first(output, self._full)
        return None

    def _restore(self, _module, _inputs, _output):
        """After the tracer's hook: the model goes on with the step pass's own output."""
        if self._phase == "step" and self._partial is not None:
            out, self._partial = self._partial, None
            return out
        return None


def _parameters(model) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError, AttributeError):
        return set()


def _layers_of(store) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The per-layer keys and values of a transformers ``DynamicCache`` (old and new layouts)."""
    if hasattr(store, "layers"):
        return [layer.keys for layer in store.layers], [layer.values for layer in store.layers]
    return list(store.key_cache), list(store.value_cache)
