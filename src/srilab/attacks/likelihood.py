"""The white-box target likelihood the search attacks minimise (see :mod:`srilab.attacks.search`).

The chat template is formatted once around a sentinel, ``chat_prompt(request + " " + SENTINEL)``, and cut
there: the part before it is the *head* (chat prefix and request), the part after it the *tail* (the rest
of the user turn up to the assistant's opening). The sequence scored is ``head + suffix + tail + target``,
on token ids, never re-tokenised text. AR models: teacher-forced mean NLL of the target tokens. Diffusion
models: the masked-diffusion likelihood in one forward pass (the response canvas is the target's length of
``mask_id``; with ``logits_shift=1`` the logits at i - 1 predict position i).
"""


from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from srilab.errors import SrilabError

if TYPE_CHECKING:  # attacks sit upstream of models: the model is only used, never imported at run time
    from srilab.models.base import LanguageModel

__all__ = ["SENTINEL", "Layout", "batch_losses", "build_layout", "target_loss"]

#: Text put where the suffix goes when the chat template is formatted (lower-case letters only, so that a
#: template that normalises case or whitespace keeps it findable).
SENTINEL = "srilabsuffixsentinel"


# ------------------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class Layout:
    """Token ids around the suffix: ``head + suffix + tail + target``."""

    head: tuple[int, ...]
    tail: tuple[int, ...]
    target: tuple[int, ...]


def encode_text(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []


def build_layout(model: LanguageModel, request: str, target: str) -> Layout:
    tok = model.require_tokenizer()
    text = model.chat_prompt(f"{request} {SENTINEL}")
    if text.count(SENTINEL) != 1:
        raise SrilabError(
            f"the chat template of {model.name} does not keep the user text verbatim: cannot place a suffix"
        )
    before, after = text.split(SENTINEL)
    if before.endswith(" "):
        before = before[:-1]  # the space joining request and suffix: the suffix's ids follow the request's
    head = encode_text(tok, before)
    tail = encode_text(tok, after)
    sep = "" if after.endswith((" ", "\n")) else " "
    joint = encode_text(tok, f"{after}{sep}{target}")
    target_ids = joint[len(tail) :] if joint[: len(tail)] == tail else encode_text(tok, f"{sep}{target}")
    if not target_ids:
        raise SrilabError(f"the target {target!r} has no tokens under the tokenizer of {model.name}")
    if not head:
        raise SrilabError("the request in its chat format has no tokens before the suffix")
    return Layout(tuple(head), tuple(tail), tuple(target_ids))


# ------------------------------------------------------------------------------------------------ forward
def accepts_arg(module, name: str) -> bool:
    try:
        return name in inspect.signature(module.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def logits_offset(model: LanguageModel) -> int:
    """How many positions before a token its logits sit (1 for AR and Dream-style diffusion, else 0)."""
    if model.kind == "ar":
        return 1
    if model.logits_shift not in (0, 1):
        raise SrilabError(f"logits_shift must be 0 or 1, got {model.logits_shift}")
    return model.logits_shift


def target_logits(model: LanguageModel, n: int, **inputs) -> torch.Tensor:
    """Logits [B, n, V] predicting the last ``n`` positions of the (unpadded) input."""
    module = model.module
    off = logits_offset(model)
    kwargs = dict(inputs)
    if accepts_arg(module, "use_cache"):
        kwargs["use_cache"] = False
    if accepts_arg(module, "logits_to_keep"):
        return module(**kwargs, logits_to_keep=n + off).logits[:, :n]
    logits = module(**kwargs).logits
    length = logits.shape[1]
    return logits[:, length - n - off : length - off]


def nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean NLL per row of ``target`` [n] under ``logits`` [B, n, V]."""
    b, n, v = logits.shape
    ce = F.cross_entropy(logits.float().reshape(b * n, v), target.repeat(b), reduction="none")
    return ce.view(b, n).mean(dim=1)


def response_ids(model: LanguageModel, layout: Layout) -> list[int]:
    """What follows the tail: the target (AR, teacher-forced) or as many masks (diffusion)."""
    return list(layout.target) if model.kind == "ar" else [int(model.mask_id)] * len(layout.target)


@torch.no_grad()
def batch_losses(model: LanguageModel, layouts: Sequence[Layout], suffixes: Sequence[Sequence[int]], batch: int):
    """Loss of each (layout, suffix) row; rows of equal length are batched (no padding ever)."""
    device = model.device
    rows = [
        list(lay.head) + list(s) + list(lay.tail) + response_ids(model, lay)
        for lay, s in zip(layouts, suffixes, strict=True)
    ]
    out = torch.empty(len(rows), dtype=torch.float32)
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for i, (row, lay) in enumerate(zip(rows, layouts, strict=True)):
        groups.setdefault((len(row), lay.target), []).append(i)
    for (_, target), idx in groups.items():
        tgt = torch.tensor(target, dtype=torch.long, device=device)
        for lo in range(0, len(idx), batch):
            chunk = idx[lo : lo + batch]
            ids = torch.tensor([rows[i] for i in chunk], dtype=torch.long, device=device)
            losses = nll(target_logits(model, len(target), input_ids=ids), tgt)
            out[chunk] = losses.float().cpu()
    return out


def as_rows(suffixes_ids) -> list[list[int]]:
    if isinstance(suffixes_ids, torch.Tensor):
        t = suffixes_ids.detach().cpu().long()
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2:
            raise SrilabError(f"suffix ids must be a [K, L] tensor, got shape {tuple(t.shape)}")
        return t.tolist()
    rows = [list(map(int, r)) for r in suffixes_ids]
    return rows


def target_loss(
    model: LanguageModel,
    prompts: str | Sequence[str],
    suffixes_ids: torch.Tensor | Sequence[Sequence[int]],
    target: str,
    *,
    batch: int = 64,
) -> torch.Tensor:
    """Loss [K] of the affirmative ``target`` as the start of the answer to ``request + " " + suffix``.

    ``prompts``: the requests (one, broadcast over the suffixes, or one per suffix); ``suffixes_ids``: K
    suffixes of token ids (a [K, L] tensor or lists, lengths may differ). AR: teacher-forced mean NLL of the
    target tokens; diffusion: mean NLL of the target tokens at a canvas of masks in one forward pass (see
    the module docstring for the token layout). Evaluated ``batch`` rows per forward pass, on CPU float32.
    """
    check_model(model, "target_loss")
    rows = as_rows(suffixes_ids)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) not in (1, len(rows)):
        raise SrilabError(f"target_loss got {len(prompts)} prompts for {len(rows)} suffixes: give 1 or one each")
    vocab = vocab_rows(model)
    for r in rows:
        if any(t < 0 or t >= vocab for t in r):
            raise SrilabError(f"a suffix holds token ids outside the vocabulary of {model.name}")
    cache = {p: build_layout(model, p, target) for p in dict.fromkeys(prompts)}
    layouts = [cache[prompts[0] if len(prompts) == 1 else prompts[i]] for i in range(len(rows))]
    model.module.eval()
    return batch_losses(model, layouts, rows, max(1, int(batch)))


def is_language_model(model) -> bool:
    """A srilab LanguageModel, recognised by what search uses (attacks do not import models)."""
    return all(hasattr(model, a) for a in ("module", "tokenizer", "require_tokenizer", "chat_prompt", "kind"))



def check_model(model, what: str) -> None:
    if not is_language_model(model):
        raise SrilabError(f"{what} needs a srilab LanguageModel (srilab.models.load), got {type(model).__name__}")
    model.require_tokenizer()



def vocab_rows(model: LanguageModel) -> int:
    module = model.module
    if hasattr(module, "get_input_embeddings"):
        return int(module.get_input_embeddings().weight.shape[0])
    for attr in ("embed", "wte"):
        if hasattr(module, attr):
            return int(getattr(module, attr).weight.shape[0])
    return len(model.tokenizer)
