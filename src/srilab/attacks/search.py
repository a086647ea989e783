"""White-box search attacks bounded by a query budget: random search and GCG (the searches; the registered
attacks, their options and the published settings are in :mod:`srilab.attacks.search_attacks`).

Both attacks look for an adversarial *suffix* of token ids appended to the request in the user turn
(``chat_prompt(request + " " + suffix)``) that makes the affirmative ``target`` ("sure . here is how :",
"Sure, here is how to ...") likely as the start of the assistant's answer.

- ``random_search`` (Andriushchenko, Croce & Flammarion 2024, "Jailbreaking Leading Safety-Aligned LLMs
  with Simple Adaptive Attacks"): change a random contiguous span of the suffix to random vocabulary
  tokens, keep the change when the target loss improves. Published: a 25-token suffix, spans of up to 4
  tokens, 10,000 iterations, the request inside the authors' rule template; their loss is the log-probability
  of the target's first token and their span length follows a schedule (srilab: the mean NLL of the whole
  target, a fixed maximum span).
- ``gcg`` (Zou et al. 2023, "Universal and Transferable Adversarial Attacks on Aligned Language Models",
  Greedy Coordinate Gradient): the gradient of the loss w.r.t. the one-hot suffix gives the top-k
  replacement tokens per position; a batch of single-token swaps drawn from them is evaluated and the
  search moves to the batch's best (the best suffix ever seen is what is returned). Published: a 20-token
  suffix of ``!``, 500 steps of 512 candidates from the top 256 tokens per position.

srilab's defaults are small, for the toy world; ``iterations`` (random search) and ``steps`` (GCG) cap the
iterations besides the query budget, so the published settings run as given
(:data:`srilab.attacks.search_attacks.PUBLISHED`).

**The loss** (:func:`target_loss`) works on token ids, never on re-tokenised text. The chat template is
formatted once around a sentinel, ``chat_prompt(request + " " + SENTINEL)``, and the text is cut at the
sentinel: the part before it (minus the one joining space) is tokenised as the *head* (chat prefix and
request), the part after it as the *tail* (the rest of the user turn up to and including the assistant
turn's opening). The sequence scored is ``head + suffix + tail + target`` where the target ids are those
of ``tail + sep + target`` after the tail (``sep`` is the space ``chat_prompt(..., prefill=target)`` would
insert), so the ids are those of the text the attacked prompt produces whenever the tokenizer splits at
those boundaries (always for word-level tokenizers; usually for BPE, whose token merges across a
boundary may differ -- the attack's ``meta['suffix_roundtrip']`` says whether the suffix text
re-tokenises to its ids).

- AR models: teacher-forced mean NLL of the target tokens (logits at position i predict token i + 1).
- Diffusion models: the masked-diffusion likelihood read in one forward pass: the response canvas is the
  target's length of ``mask_id`` (nothing else), and the loss is the mean NLL of the target tokens at
  those masked positions (with ``logits_shift=1``, Dream-style, the logits at i - 1 predict position i).

**Query accounting** (``query_budget`` is never exceeded; ``queries`` is what was used and
``len(history) == queries``, ``history[i]`` the best loss after query i + 1):

- random search: the initial suffix's loss is 1 query; every candidate suffix evaluated is 1 query
  (``batch`` candidates per iteration, the last batch clipped to the remaining budget).
- GCG: every gradient pass (one forward + backward on the current suffix) is 1 query; it also yields the
  current suffix's loss, so the first gradient pass is the initial loss evaluation. Every candidate
  evaluated is 1 query (duplicates within a batch are evaluated and counted once). An iteration starts
  only if a gradient pass and at least one candidate fit in the remaining budget.

Everything is seeded by a private ``torch.Generator`` (the global RNG is never touched): the same seed,
model, request and target give the same suffix. The model is put in eval mode; gradients are taken only
w.r.t. the one-hot suffix (parameters' ``.grad`` are not touched).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from srilab.attacks.likelihood import (
    SENTINEL,
    Layout,
    accepts_arg,
    batch_losses,
    build_layout,
    check_model,
    encode_text,
    nll,
    response_ids,
    target_logits,
    target_loss,
    vocab_rows,
)
from srilab.errors import SrilabError

if TYPE_CHECKING:  # attacks sit upstream of models: the model is only used, never imported at run time
    from srilab.models.base import LanguageModel

__all__ = ["SENTINEL", "SearchResult", "gcg", "random_search", "target_loss"]

#: Allowed suffix tokens per tokenizer (weakly keyed: dropped with the tokenizer).
_ALLOWED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: the best suffix found (text and ids) and the search's figures."""

    method: str
    suffix: str
    suffix_ids: list[int]
    best_loss: float
    initial_loss: float
    history: list[float]  # best loss after each query
    queries: int
    query_budget: int
    seconds: float
    seed: int = 0
    settings: dict = field(default_factory=dict)

    def meta(self) -> dict:
        """The figures an :class:`AttackedRequest` carries (no history: one number per query is too much)."""
        return {
            "method": self.method,
            "initial_loss": self.initial_loss,
            "best_loss": self.best_loss,
            "queries": self.queries,
            "query_budget": self.query_budget,
            "seconds": self.seconds,
            "seed": self.seed,
            "suffix_ids": list(self.suffix_ids),
            **self.settings,
        }


# ------------------------------------------------------------------------------------------------ search helpers
def _allowed_tokens(model: LanguageModel) -> torch.Tensor:
    """Ordinary vocabulary ids: not special (pad/eos/mask/chat markers...), printable ASCII, not blank."""
    tok = model.tokenizer
    n = min(len(tok), vocab_rows(model))
    try:
        cached = _ALLOWED_CACHE.get(tok)
    except TypeError:
        cached = None
    if cached is not None and cached[0] == n:
        return cached[1]
    special = set(getattr(tok, "all_special_ids", []) or [])
    special.update(model.eos_token_ids)
    special.update(t for t in (model.mask_id, model.pad_token_id) if t is not None)
    added = getattr(tok, "added_tokens_decoder", {}) or {}
    special.update(int(i) for i, t in added.items() if getattr(t, "special", False))
    texts = tok.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    ok = [i for i, s in enumerate(texts) if i not in special and s.strip() and s.isascii() and s.isprintable()]
    if len(ok) < 2:
        raise SrilabError(f"the tokenizer of {model.name} has fewer than 2 ordinary tokens to search over")
    allowed = torch.tensor(ok, dtype=torch.long)
    with contextlib.suppress(TypeError):  # a tokenizer that cannot be weakly referenced is just not cached
        _ALLOWED_CACHE[tok] = (n, allowed)
    return allowed


def _initial_suffix(model: LanguageModel, allowed: torch.Tensor, length: int, gen: torch.Generator) -> list[int]:
    """``!`` repeated when ``!`` is one ordinary token (the GCG initialisation), else a seeded random pick."""
    bang = encode_text(model.tokenizer, "!")
    if len(bang) == 1 and bool((allowed == bang[0]).any()):
        return bang * length
    return allowed[torch.randint(len(allowed), (length,), generator=gen)].tolist()


def _decode(model: LanguageModel, ids: Sequence[int]) -> str:
    return model.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False).strip()


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SrilabError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _Tally:
    """Queries used against the budget; ``history`` holds the best loss after each query."""

    def __init__(self, budget: int):
        self.budget = budget
        self.history: list[float] = []
        self.best = float("inf")

    @property
    def used(self) -> int:
        return len(self.history)

    @property
    def left(self) -> int:
        return self.budget - self.used

    def record(self, losses: Sequence[float]) -> None:
        if len(losses) > self.left:
            raise AssertionError("query budget exceeded")  # a bug, never a user error
        for v in losses:
            self.best = min(self.best, float(v))
            self.history.append(self.best)


def _result(model, method, best_ids, tally: _Tally, initial: float, t0: float, seed: int, settings: dict):
    return SearchResult(
        method=method,
        suffix=_decode(model, best_ids),
        suffix_ids=[int(t) for t in best_ids],
        best_loss=tally.best,
        initial_loss=initial,
        history=list(tally.history),
        queries=tally.used,
        query_budget=tally.budget,
        seconds=time.perf_counter() - t0,
        seed=seed,
        settings=settings,
    )


# ------------------------------------------------------------------------------------------------ random search
def random_search(
    model: LanguageModel,
    request: str,
    target: str,
    *,
    suffix_tokens: int = 20,
    query_budget: int = 200,
    n_change: int = 4,
    seed: int = 0,
    batch: int = 1,
    iterations: int | None = None,
) -> SearchResult:
    """Random search over suffix tokens (Andriushchenko et al. 2024).

    The suffix starts as ``!`` repeated (or a seeded random pick of ordinary tokens when ``!`` is not one
    token). Each iteration draws ``batch`` candidates from the current suffix, each with a contiguous span
    of 1..``n_change`` tokens (length uniform) replaced by random ordinary tokens; the best candidate
    replaces the current suffix if its loss is lower. ``batch=1`` is the paper's sequential search; larger
    batches trade queries for fewer forward passes. One query per evaluated suffix, the initial one included.
    ``iterations`` (default: no cap) caps the iterations (the paper: 10,000; budget 10,001 queries).
    """
    check_model(model, "random_search")
    suffix_tokens = _positive("suffix_tokens", suffix_tokens)
    query_budget = _positive("query_budget", query_budget)
    n_change = _positive("n_change", n_change)
    batch = _positive("batch", batch)
    iterations = None if iterations is None else _positive("iterations", iterations)
    t0 = time.perf_counter()
    model.module.eval()
    gen = torch.Generator().manual_seed(int(seed))
    layout = build_layout(model, request, target)
    allowed = _allowed_tokens(model)
    tally = _Tally(query_budget)

    current = _initial_suffix(model, allowed, suffix_tokens, gen)
    cur_loss = float(batch_losses(model, [layout], [current], 1)[0])
    tally.record([cur_loss])
    initial = cur_loss
    span_max = min(n_change, suffix_tokens)
    done = 0
    while tally.left > 0 and (iterations is None or done < iterations):
        done += 1
        b = min(batch, tally.left)
        cands = torch.tensor(current, dtype=torch.long).repeat(b, 1)
        for j in range(b):
            m = int(torch.randint(1, span_max + 1, (1,), generator=gen))
            start = int(torch.randint(0, suffix_tokens - m + 1, (1,), generator=gen))
            cands[j, start : start + m] = allowed[torch.randint(len(allowed), (m,), generator=gen)]
        losses = batch_losses(model, [layout] * b, cands.tolist(), batch)
        tally.record(losses.tolist())
        j = int(torch.argmin(losses))
        if float(losses[j]) < cur_loss:
            current, cur_loss = cands[j].tolist(), float(losses[j])
    settings = {"suffix_tokens": suffix_tokens, "n_change": n_change, "batch": batch, "iterations": done}
    return _result(model, "random_search", current, tally, initial, t0, int(seed), settings)


# ------------------------------------------------------------------------------------------------ GCG
def _embedding_scale(model: LanguageModel, embed, probe: torch.Tensor) -> float:
    """The factor the embedding module applies to its table rows (1 for most models, sqrt(d) for Gemma)."""
    with torch.no_grad():
        ref = embed(probe).float()
        rows = embed.weight[probe].float()
        scale = float((ref * rows).sum() / (rows * rows).sum().clamp_min(1e-30))
        if not torch.allclose(ref, rows * scale, rtol=1e-2, atol=1e-3 * float(ref.abs().max()) + 1e-8):
            raise SrilabError(
                f"the input embedding of {model.name} is not a (scaled) table lookup: gcg cannot differentiate "
                "through it; use random_search"
            )
    return scale


def _check_gcg(model: LanguageModel):
    module = model.module
    embed = module.get_input_embeddings() if hasattr(module, "get_input_embeddings") else None
    if embed is None or not hasattr(embed, "weight") or not accepts_arg(module, "inputs_embeds"):
        raise SrilabError(
            f"gcg needs gradients through the input embeddings, but model {model.name} "
            f"({type(module).__name__}) does not accept inputs_embeds: use random_search instead"
        )
    return embed


def _gradient(model: LanguageModel, embed, scale: float, layout: Layout, suffix: list[int]):
    """Loss of ``suffix`` and its gradient w.r.t. the one-hot suffix [L, V] (one forward + backward)."""
    device = model.device
    weight = embed.weight.detach()
    with torch.no_grad():
        head = embed(torch.tensor([layout.head], dtype=torch.long, device=device))
        rest = torch.tensor([list(layout.tail) + response_ids(model, layout)], dtype=torch.long, device=device)
        tail = embed(rest)
    with torch.enable_grad():
        one_hot = torch.zeros(len(suffix), weight.shape[0], dtype=weight.dtype, device=device)
        one_hot.scatter_(1, torch.tensor(suffix, device=device).unsqueeze(1), 1.0)
        one_hot.requires_grad_(True)
        mid = (one_hot @ weight) * scale
        embeds = torch.cat([head, mid.unsqueeze(0).to(head.dtype), tail], dim=1)
        tgt = torch.tensor(layout.target, dtype=torch.long, device=device)
        loss = nll(target_logits(model, len(layout.target), inputs_embeds=embeds), tgt)[0]
        (grad,) = torch.autograd.grad(loss, one_hot)
    return float(loss.detach()), grad.detach().float().cpu()


def gcg(
    model: LanguageModel,
    request: str,
    target: str,
    *,
    suffix_tokens: int = 20,
    query_budget: int = 200,
    top_k: int = 32,
    batch: int = 16,
    seed: int = 0,
    steps: int | None = None,
) -> SearchResult:
    """Greedy Coordinate Gradient (Zou et al. 2023) over suffix tokens.

    Each iteration: the gradient of the target loss w.r.t. the one-hot suffix (through
    ``get_input_embeddings()`` and ``inputs_embeds``; 1 query, which also gives the current loss), the
    ``top_k`` most loss-decreasing ordinary tokens per position (the current token excluded), ``batch``
    single-token swaps (uniform position, uniform among that position's top-k) evaluated (1 query each,
    duplicates once), and the search moves to the batch's best candidate, as in the paper; the best suffix
    ever evaluated is returned. Works for AR and diffusion modules that accept ``inputs_embeds``. ``steps``
    (default: no cap) caps the iterations (the paper: 500 of ``batch=512``, ``top_k=256``; 256,500 queries).
    """
    check_model(model, "gcg")
    suffix_tokens = _positive("suffix_tokens", suffix_tokens)
    query_budget = _positive("query_budget", query_budget)
    top_k = _positive("top_k", top_k)
    batch = _positive("batch", batch)
    steps = None if steps is None else _positive("steps", steps)
    embed = _check_gcg(model)
    t0 = time.perf_counter()
    model.module.eval()
    gen = torch.Generator().manual_seed(int(seed))
    layout = build_layout(model, request, target)
    allowed = _allowed_tokens(model)
    vocab = int(embed.weight.shape[0])
    blocked = torch.ones(vocab, dtype=torch.bool)
    blocked[allowed[allowed < vocab]] = False
    scale = _embedding_scale(model, embed, allowed[:16].to(model.device))
    k = min(top_k, len(allowed) - 1)
    tally = _Tally(query_budget)

    current = _initial_suffix(model, allowed, suffix_tokens, gen)
    best_ids, initial = list(current), None
    positions = torch.arange(suffix_tokens)
    done = 0
    while (tally.used == 0 or tally.left >= 2) and (steps is None or done < steps):
        done += 1
        cur_loss, grad = _gradient(model, embed, scale, layout, current)
        tally.record([cur_loss])
        if initial is None:
            initial = cur_loss
        if tally.left == 0:
            break
        scores = -grad
        scores[:, blocked] = -float("inf")
        scores[positions, torch.tensor(current)] = -float("inf")
        top = scores.topk(k, dim=1).indices  # [L, k]
        b = min(batch, tally.left)
        pos = torch.randint(suffix_tokens, (b,), generator=gen)
        pick = torch.randint(k, (b,), generator=gen)
        cands = torch.tensor(current, dtype=torch.long).repeat(b, 1)
        cands[torch.arange(b), pos] = top[pos, pick]
        cands = torch.unique(cands, dim=0)  # sorted: deterministic order
        losses = batch_losses(model, [layout] * len(cands), cands.tolist(), batch)
        before = tally.best
        tally.record(losses.tolist())
        j = int(torch.argmin(losses))
        current = cands[j].tolist()
        if float(losses[j]) < before:
            best_ids = list(current)
    settings = {"suffix_tokens": suffix_tokens, "top_k": top_k, "batch": batch, "steps": done}
    return _result(model, "gcg", best_ids, tally, float(initial), t0, int(seed), settings)
