"""Attention masks of transformers decoders, built by srilab where transformers would rebuild them every call.

A transformers decoder with bidirectional attention (``use_bidirectional_attention``, or ``is_causal: false``;
Gemma-3 style, e.g. the toy pair's diffusion model) builds its per-layer-type masks inside every forward call
from mask *functions*, through ``torch.vmap``: on the toy model that is a third of a forward pass. A diffusion
sampler calls the model on the same canvas length with the same key padding at every step, so the mask is
the same every time. :func:`layer_masks` builds the boolean masks transformers would build (True = attend),
and :class:`PreparedMask` builds the full-canvas one once and hands it to every call as a prepared 4-D mask,
which transformers passes through as is (``masking_utils._preprocess_mask_arguments``: a 4-D mask is
"already prepared"). The logits are the same bit for bit (``tests/test_masks.py``).

Only for SDPA attention (a boolean mask; eager attention adds a float mask) and only when every layer type
gets the same mask at that length (a sliding window at least as long as the canvas): otherwise the model is
called with the key-padding mask as before. Causal models are left alone: transformers skips their mask when
nothing is padded.
"""

from __future__ import annotations

import torch

__all__ = ["MaskLayout", "PreparedMask", "layer_masks"]


class MaskLayout:
    """What a transformers decoder's masks depend on: its layer types, causality and sliding window."""

    def __init__(self, module) -> None:
        cfg = getattr(module, "config", None)
        self.layer_types: tuple[str, ...] = tuple(getattr(cfg, "layer_types", None) or ())
        self.bidirectional = bool(getattr(cfg, "use_bidirectional_attention", False)) or not getattr(
            cfg, "is_causal", True
        )
        self.window: int | None = getattr(cfg, "sliding_window", None)
        self.sdpa = getattr(cfg, "_attn_implementation", None) == "sdpa"


def layer_masks(
    layout: MaskLayout, key_mask: torch.Tensor | None, start: int, end: int, length: int, device
) -> dict[str, torch.Tensor | None]:
    """transformers' per-layer-type attention masks for queries ``[start, end)`` over all ``length`` keys
    (bool [B|1, 1, Q, K], True = attend; None = attend everywhere), as the model would build them.
    ``key_mask``: the [B, length] key-padding mask (1 = a real token) or None."""
    q = torch.arange(start, end, device=device)[:, None]
    k = torch.arange(length, device=device)[None, :]
    pad = None if key_mask is None else key_mask.bool()[:, None, None, :]
    out: dict[str, torch.Tensor | None] = {}
    for kind in set(layout.layer_types):
        m = None if layout.bidirectional else k <= q
        if kind == "sliding_attention" and layout.window:
            band = (q - k).abs() < layout.window if layout.bidirectional else (q - k) < layout.window
            m = band if m is None else m & band
        if m is not None:
            m = m[None, None]
        if pad is not None:
            m = pad if m is None else m & pad
        out[kind] = m
    return out


class PreparedMask:
    """The full-canvas mask of one module, built once per (key mask, batch, length) instead of every call.

    ``mask(key_mask, batch, length)`` returns what to pass as ``attention_mask``: the prepared bool
    [batch, 1, length, length] mask where that applies (module docstring), else ``key_mask`` unchanged. The
    last few masks are remembered by the identity of ``key_mask`` (a sampler passes the same tensor, or None,
    at every step)."""

    def __init__(self, module, keep: int = 4) -> None:
        layout = MaskLayout(module)
        self.layout = layout
        self.enabled = layout.sdpa and layout.bidirectional and bool(layout.layer_types)
        self._keep = keep
        self._memo: list[tuple[torch.Tensor | None, int, int, torch.Tensor | None]] = []

    def __call__(self, key_mask: torch.Tensor | None, batch: int, length: int, device=None):
        if not self.enabled:
            return key_mask
        for km, b, n, prepared in self._memo:
            if km is key_mask and b == batch and n == length:
                return key_mask if prepared is None else prepared
        prepared = self._build(key_mask, batch, length, device)
        # the key mask itself is kept with its entry, so its identity cannot be reused by another tensor
        self._memo = [*self._memo[-(self._keep - 1):], (key_mask, batch, length, prepared)]
        return key_mask if prepared is None else prepared

    def _build(self, key_mask, batch, length, device) -> torch.Tensor | None:
        device = device if key_mask is None else key_mask.device
        masks = layer_masks(self.layout, key_mask, 0, length, length, device)
        full = [torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device) if m is None else m for m in masks.values()]
        full = [m.expand(batch, 1, length, length) for m in full]
        if any(not torch.equal(full[0], m) for m in full[1:]):
            return None  # the layer types differ at this length (a window shorter than the canvas)
        return full[0]
