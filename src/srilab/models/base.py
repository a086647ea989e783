"""`LanguageModel`: a thin, uniform view over a torch module and its tokenizer.

Everything downstream (samplers, tracing, SRI) talks to this object, never to a model family directly:

- ``kind``: ``"ar"`` (causal, sampled token by token) or ``"diffusion"`` (bidirectional, sampled by
  iterative unmasking; may also be sampled left to right with ``block_length=1``);
- ``mask_id`` (diffusion), ``logits_shift`` (1 for Dream-style models whose logits at position i predict
  token i + 1, else 0);
- ``final_norm``: the module whose output is the LM head's input, the activation the SRI signal reads;
  ``layers``: the decoder blocks, for layer-selectable traces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from srilab.errors import SrilabError

Kind = Literal["ar", "diffusion"]
LayerSpec = str | int


@dataclass
class LanguageModel:
    module: nn.Module
    tokenizer: object | None
    kind: Kind
    final_norm: nn.Module
    layers: Sequence[nn.Module]
    name: str
    mask_id: int | None = None
    logits_shift: int = 0
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    source: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("ar", "diffusion"):
            raise SrilabError(f"model kind must be 'ar' or 'diffusion', got {self.kind!r}")
        if self.kind == "diffusion" and self.mask_id is None:
            raise SrilabError(
                f"diffusion model {self.name} has no mask token id: set mask_token_id in its config.json "
                "or give the tokenizer a mask token"
            )

    # ------------------------------------------------------------------------------------------ forward
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits aligned so that ``logits[:, i]`` predicts the token at position ``i`` (diffusion) or
        ``i + 1`` (AR, the usual causal-LM convention). Dream's shift is undone here."""
        out = self.module(input_ids, attention_mask=attention_mask).logits
        return shift_logits(out, self.logits_shift)

    # ------------------------------------------------------------------------------------------ layers
    def hidden_module(self, layer: LayerSpec = "last") -> nn.Module:
        """The module whose output a trace reads: ``last`` is the final norm (the LM head's input);
        ``first``/``middle`` or an integer index select a decoder block's output."""
        if layer == "last":
            return self.final_norm
        n = len(self.layers)
        if layer == "first":
            idx = 0
        elif layer == "middle":
            idx = n // 2
        elif isinstance(layer, int) or (isinstance(layer, str) and layer.lstrip("-").isdigit()):
            idx = int(layer)
            if not -n <= idx < n:
                raise SrilabError(f"layer index {idx} is out of range: {self.name} has {n} decoder layers")
        else:
            raise SrilabError(f"unknown layer {layer!r}: use first, middle, last or an integer index")
        return self.layers[idx]

    # ------------------------------------------------------------------------------------------ text
    def require_tokenizer(self):
        """The tokenizer; a model loaded without one is a clear error."""
        if self.tokenizer is None:
            raise SrilabError(f"model {self.name} was loaded without a tokenizer; pass token ids instead of text")
        return self.tokenizer

    def chat_prompt(self, request: str, prefill: str | None = None) -> str:
        """The request in the model's chat format, ending where the assistant's answer starts; ``prefill``
        (an attacker-chosen start of the answer) is appended after the generation prompt."""
        tok = self.require_tokenizer()
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                [{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = request
        if prefill:
            sep = "" if text.endswith((" ", "\n")) else " "
            text = f"{text}{sep}{prefill}"
        return text

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``input_ids`` and ``attention_mask`` for a batch of already formatted texts."""
        tok = self.require_tokenizer()
        rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        return left_pad(rows, self.pad_token_id if self.pad_token_id is not None else 0)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of response token ids, cut at the first EOS, without special tokens."""
        tok = self.require_tokenizer()
        ids = list(ids)
        for i, t in enumerate(ids):
            if t in self.eos_token_ids:
                ids = ids[:i]
                break
        if self.mask_id is not None:
            ids = [t for t in ids if t != self.mask_id]
        return tok.decode(ids, skip_special_tokens=True).strip()

    # ------------------------------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """A short id of the weights (name, parameter shapes and a checksum of the final norm), used in the
        keys of centres and guards so that they are never silently reused with other weights."""
        h = hashlib.sha256(self.name.encode())
        for k, v in self.module.state_dict().items():
            h.update(f"{k}:{tuple(v.shape)}".encode())
        for p in self.final_norm.parameters():
            h.update(p.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "mask_id": self.mask_id,
            "logits_shift": self.logits_shift,
            "n_layers": len(self.layers),
            "n_params": sum(p.numel() for p in self.module.parameters()),
            "source": self.source,
            **self.info,
        }

    def __repr__(self) -> str:
        return f"LanguageModel({json.dumps(self.describe())})"


def shift_logits(logits: torch.Tensor, shift: int) -> torch.Tensor:
    """Undo a Dream-style shift: logits[:, i] predicted token i + 1; after this, logits[:, i] predicts i."""
    if shift == 0:
        return logits
    if shift != 1:
        raise SrilabError(f"logits_shift must be 0 or 1, got {shift}")
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not rows or any(len(r) == 0 for r in rows):
        raise SrilabError("every prompt must have at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask
