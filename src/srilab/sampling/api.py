"""The high-level entry point: ``generate(model, prompts, sampler_config, trace=...)``.

It formats requests with the model's chat template (plus an optional assistant prefill), batches them
(left-padded), seeds every item on its own (so a rerun, or the same item in another batch, reproduces),
runs the AR or diffusion sampler, decodes, and returns texts, token ids and the step-wise trace. The checks of
the arguments come first (``_check_arguments``: each on its own; ``_check_request``: together), then the
batches, one after the other (``_Batches``: encode, sample, collect, and the :class:`Generation` at the end).

Prompts may hold ``<mask:N>`` spans (DIJA's syntax, :data:`srilab.attacks.base.MASK_SPAN`): see the last
section, :func:`encode_with_mask_spans`, and ``Generation.filled_prompts``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from srilab.attacks.base import MASK_SPAN, CanvasText, split_mask_spans
from srilab.checks import expect, expect_int, expect_text, expect_texts, type_name
from srilab.errors import SrilabError
from srilab.models.base import LanguageModel, left_pad
from srilab.sampling import autoregressive, diffusion
from srilab.sampling.config import (  # noqa: F401  (re-exported: the configs' home is srilab.sampling.config)
    AnySampler,
    ARSamplerConfig,
    DiffusionSamplerConfig,
    Sampler,
    SamplerConfig,
)
from srilab.sampling.diffusion import Injection
from srilab.sampling.dream import dream_generate
from srilab.sampling.monitor import Monitor
from srilab.sampling.trace import Trace, TraceConfig, Tracer


@dataclass
class Generation:
    texts: list[str]  # decoded responses (generated tokens only, without prompt or prefill)
    response_ids: list[list[int]]  # generated token ids (full length; EOS/padding included)
    prompts: list[str]  # the exact formatted prompts
    prefills: list[str | None]
    trace: Trace | None
    seconds: float
    meta: dict = field(default_factory=dict)
    # <mask:N> prompts (DIJA): the prompt's user text with every span replaced by what the model wrote there
    # (None: the prompt held no span), and each span's text on its own; see encode_with_mask_spans.
    filled_prompts: list[str | None] = field(default_factory=list)
    filled_spans: list[list[str]] = field(default_factory=list)

    @property
    def full_texts(self) -> list[str]:
        """What a reader of the answer sees: the prefill (if any) followed by the generated text."""
        return [f"{p} {t}".strip() if p else t for p, t in zip(self.prefills, self.texts, strict=True)]

    @property
    def answers(self) -> list[str]:
        """The text to judge: :attr:`full_texts`, preceded by the filled prompt where the prompt held
        ``<mask:N>`` spans (DIJA's answer is what the model wrote into the prompt, plus the response)."""
        filled = self.filled_prompts or [None] * len(self.texts)
        return [f"{f}\n\n{t}".strip() if f is not None else t for f, t in zip(filled, self.full_texts, strict=True)]


def item_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per item, on the device the sampler draws on (``torch.multinomial`` refuses a CPU generator
    for CUDA probabilities). A CUDA generator's stream is not the CPU's: a seed reproduces per device."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _check_lengths(model: LanguageModel, sampler: Sampler, texts: Sequence[str]) -> None:
    """Prompt + response must fit the model's context (``max_position_embeddings``): one error naming the numbers,
    before anything is allocated."""
    from srilab.models.loading import model_context

    limit = model_context(model)
    if not limit:
        return
    response = sampler.response_length
    if response >= limit:
        raise SrilabError(
            f"{model.name}: a response of {response} tokens does not fit the model's context of {limit} tokens: "
            "lower max_new_tokens / gen_length"
        )
    if model.tokenizer is None:
        return
    long = [t for t in texts if len(t.encode("utf-8")) > limit - response]  # a token covers at least one byte
    if not long:
        return
    n_prompt = max(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in long)
    if n_prompt + response > limit:
        raise SrilabError(
            f"{model.name}: prompt ({n_prompt} tokens) + response ({response} tokens) = {n_prompt + response} "
            f"exceed the model's context of {limit} tokens: shorten the prompt or lower max_new_tokens / gen_length"
        )


def _check_arguments(model, prompts, sampler, trace, prefills, canvas, chat, batch_size, seeds, progress, monitor,
                     prompt_masks, mask_spans) -> None:
    """generate's arguments, by type: a wrong one is one SrilabError naming it (not a traceback further in)."""
    if not isinstance(model, LanguageModel):
        raise SrilabError(f"generate: model must be a srilab LanguageModel (srilab.models.load(path)), got "
                          f"{type_name(model)}")
    expect_texts(prompts, "generate: prompts")
    if not isinstance(sampler, ARSamplerConfig | DiffusionSamplerConfig):
        raise SrilabError(f"generate: sampler must be an ARSamplerConfig or DiffusionSamplerConfig (srilab.sampling."
                          f"SamplerConfig(kind, ...)), got {type_name(sampler)}")
    if trace is not None and not isinstance(trace, TraceConfig):
        raise SrilabError(f"generate: trace must be a TraceConfig or None, got {type_name(trace)}")
    if prefills is not None:
        expect_texts(prefills, "generate: prefills", optional_items=True)
    if canvas is not None:
        if isinstance(canvas, str) or not isinstance(canvas, list | tuple):
            raise SrilabError(f"generate: canvas must be a list (one list of CanvasText per prompt), got "
                              f"{type_name(canvas)}")
        for plan in canvas:
            if isinstance(plan, str) or not isinstance(plan, list | tuple) or not all(
                    isinstance(c, CanvasText) for c in plan):
                raise SrilabError("generate: each canvas entry must be a list of CanvasText (empty: none)")
            for c in plan:
                expect_text(c.text, "generate: a CanvasText's text")
                expect_int(c.step, "generate: a CanvasText's step", minimum=0)
                expect_int(c.offset, "generate: a CanvasText's offset", minimum=0)
    for what, value in (("chat", chat), ("progress", progress), ("mask_spans", mask_spans)):
        expect(value, bool, f"generate: {what}")
    expect_int(batch_size, "generate: batch_size", minimum=1)
    if seeds is not None and (isinstance(seeds, str) or not isinstance(seeds, list | tuple)):
        raise SrilabError(f"generate: seeds must be a list of integers (one per prompt), got {type_name(seeds)}")
    if seeds is not None:
        for s in seeds:
            expect(s, int, "generate: each seed")
    if prompt_masks not in ("reference", "schedule"):
        raise SrilabError(f"generate: prompt_masks must be 'reference' or 'schedule', got {prompt_masks!r}")
    if monitor is not None and not all(callable(getattr(monitor, m, None)) for m in ("reset", "after_step")):
        raise SrilabError(f"generate: monitor must be a Monitor with reset and after_step (e.g. srilab.sri.online."
                          f"GuardMonitor), got {type_name(monitor)}")


def generate(
    model: LanguageModel,
    prompts: Sequence[str],
    sampler: Sampler,
    *,
    trace: TraceConfig | None = None,
    prefills: Sequence[str | None] | None = None,
    canvas: Sequence[Sequence[CanvasText]] | None = None,
    chat: bool = True,
    batch_size: int = 16,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    monitor: Monitor | None = None,
    prompt_masks: str = "reference",
    mask_spans: bool = True,
) -> Generation:
    """Sample a response for every request in ``prompts``.

    ``prefills``: per-prompt text the assistant's answer is forced to start with. ``canvas``: per-prompt
    :class:`CanvasText` plans (diffusion only). ``chat=False`` feeds the prompts as they are. ``seeds``:
    one per prompt (default ``sampler.seed + index``). ``monitor``: a live check run on the trace after
    every step that may stop generations (e.g. :class:`srilab.sri.online.GuardMonitor`; needs ``trace``);
    ``meta["stop_steps"]`` then says where each was stopped (-1: never) and ``meta["remask_counts"]`` how
    often each was re-masked (a monitor with ``action="remask"``, diffusion only). ``<mask:N>`` spans in a
    prompt become ``N`` mask tokens (diffusion only; see :func:`encode_with_mask_spans`); ``prompt_masks``
    says how LLaDA's schedule treats them (``"reference"``: LLaDA's and DIJA's behaviour, ``"schedule"``:
    every mask filled; see :func:`srilab.sampling.diffusion.generate`; Dream's schedule always fills all).
    ``mask_spans=False`` keeps ``<mask:N>`` as plain text (a prompt that only shows the syntax).
    """
    _check_arguments(model, prompts, sampler, trace, prefills, canvas, chat, batch_size, seeds, progress, monitor,
                     prompt_masks, mask_spans)
    prefills, seeds = _check_request(model, prompts, sampler, trace, prefills, canvas, seeds, monitor, batch_size)
    n = len(prompts)
    texts = [
        model.chat_prompt(p, f) if chat else (f"{p} {f}" if f else p)
        for p, f in zip(prompts, prefills, strict=True)
    ]
    _check_lengths(model, sampler, texts)
    spans = mask_spans and _check_mask_spans(model, sampler, prompts, prefills, texts)
    run = _Batches(model, sampler, trace, monitor, canvas, seeds, prompt_masks, spans, sampler.stochastic)
    start = time.perf_counter()
    bar = tqdm(total=n, desc=f"{model.name} [{sampler.label}]", disable=not progress, leave=False)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        run.batch(texts, lo, hi)
        bar.update(hi - lo)
    bar.close()
    return run.generation(prompts, texts, prefills, time.perf_counter() - start)


def _check_request(model, prompts, sampler, trace, prefills, canvas, seeds, monitor, batch_size) -> tuple[list, list]:
    """generate's arguments, together: model and sampler agree, one entry per prompt, a monitor has its trace.
    Returns the prefills and seeds, one per prompt (defaults filled in)."""
    n = len(prompts)
    if n == 0:
        raise SrilabError("no prompts to generate from")
    if sampler.kind == "ar" and model.kind == "diffusion":
        raise SrilabError(
            f"{model.name} is a diffusion model: sample it left to right with kind: diffusion and block_length: 1"
        )
    if sampler.kind == "diffusion" and model.kind == "ar":
        raise SrilabError(
            f"{model.name} is an autoregressive model: a diffusion sampler would unmask with attention that cannot "
            "see the masks to its right (garbage answers); sample it with ARSamplerConfig, or load a diffusion model"
        )
    if sampler.kind == "diffusion" and model.mask_id is None:
        raise SrilabError(f"{model.name} has no mask token: it cannot be sampled by diffusion")
    prefills = list(prefills) if prefills is not None else [None] * n
    if len(prefills) != n or (canvas is not None and len(canvas) != n) or (seeds is not None and len(seeds) != n):
        raise SrilabError("prefills, canvas and seeds must have one entry per prompt")
    if monitor is not None and trace is None:
        raise SrilabError("a monitor reads the trace: pass trace=TraceConfig() with it")
    if getattr(monitor, "action", "stop") == "remask" and sampler.kind != "diffusion":
        raise SrilabError("re-masking needs a diffusion sampler; use action='stop'")
    if canvas is not None and any(canvas) and sampler.kind != "diffusion":
        raise SrilabError("canvas injections need a diffusion sampler")
    seeds = list(seeds) if seeds is not None else [sampler.seed + i for i in range(n)]
    if any(not isinstance(s, int) or not 0 <= s < 2**63 for s in seeds):
        raise SrilabError(f"seeds must be integers in [0, 2**63): got {max(seeds, key=lambda s: abs(int(s)))}")
    if batch_size < 1:
        raise SrilabError(f"batch_size must be at least 1, got {batch_size}")
    return prefills, seeds


@dataclass
class _Batches:
    """generate's batches, one after the other: encode, sample (AR, Dream or LLaDA's schedule), collect."""

    model: LanguageModel
    sampler: Sampler
    trace: TraceConfig | None
    monitor: Monitor | None
    canvas: Sequence[Sequence[CanvasText]] | None
    seeds: list[int]
    prompt_masks: str
    spans: bool  # the prompts hold <mask:N> spans (expanded into mask ids, read back after sampling)
    stochastic: bool
    responses: list[list[int]] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)
    stop_steps: list[int] = field(default_factory=list)
    remask_counts: list[int] = field(default_factory=list)
    commits: list[list[int]] = field(default_factory=list)  # diffusion (LLaDA's schedule): per row and step
    filled: list[tuple[list[str], int]] = field(default_factory=list)

    def batch(self, texts: Sequence[str], lo: int, hi: int) -> None:
        """Encode, sample and collect the requests ``lo:hi`` of ``texts``."""
        model = self.model
        if self.spans:
            ids, mask, where = encode_with_mask_spans(model, texts[lo:hi])
        else:
            (ids, mask), where = model.encode(texts[lo:hi]), []
        ids, mask = ids.to(model.device), mask.to(model.device)
        tracer = Tracer(model, self.trace, hi - lo, monitor=self.monitor) if self.trace is not None else None
        with tracer if tracer is not None else nullcontext():
            out = self.sample(ids, mask, lo, hi, tracer)
        self.responses.extend(out[:, ids.shape[1]:].tolist())
        self.filled.extend(read_mask_spans(model, out, where) if self.spans else [])
        if tracer is not None:
            self.traces.append(tracer.result(self.sampler.key()))
            self.stop_steps.extend(tracer.stop_steps)
            self.remask_counts.extend(tracer.remask_counts)

    def sample(self, ids: torch.Tensor, mask: torch.Tensor, lo: int, hi: int, tracer: Tracer | None) -> torch.Tensor:
        """The sampler's output [b, P + response] for the batch ``lo:hi`` (its seeds, its canvas plans)."""
        model, sampler = self.model, self.sampler
        if sampler.kind == "ar":
            return autoregressive.generate(
                model.module, ids, mask,
                max_new_tokens=sampler.max_new_tokens, temperature=sampler.temperature, top_p=sampler.top_p,
                eos_token_id=model.eos_token_ids, pad_token_id=model.pad_token_id or 0,
                generator=item_generators(self.seeds[lo:hi], ids.device) if self.stochastic else None, tracer=tracer,
            )
        injections = _injections(model, self.canvas[lo:hi] if self.canvas is not None else None,
                                 getattr(sampler, "gen_length", None))
        rng = self.seeds[lo:hi] if self.stochastic else None
        if sampler.schedule_for(model) == "dream":
            # Per-row seeds even when nothing is drawn: Dream's own batch-wide count would make an
            # item's answer depend on its batch (rows with unequal masks: prompt masks, injections).
            return dream_generate(
                model.module, ids, mask, max_new_tokens=sampler.gen_length, steps=sampler.steps,
                alg=sampler.alg, alg_temp=sampler.alg_temp, temperature=sampler.temperature,
                top_p=sampler.top_p, top_k=sampler.top_k, eps=sampler.eps, mask_id=model.mask_id,
                logits_shift=model.logits_shift, generator=list(self.seeds[lo:hi]), tracer=tracer,
                injections=injections,
            )
        step_stats: dict[str, Any] = {}
        out = diffusion.generate(
            model.module, ids, mask,
            steps=sampler.steps, gen_length=sampler.gen_length, block_length=sampler.blocks_of,
            temperature=sampler.temperature, cfg_scale=sampler.cfg_scale, remasking=sampler.remasking,
            mask_id=model.mask_id, revision=sampler.revision, injections=injections,
            logits_shift=model.logits_shift, generator=rng, tracer=tracer,
            cache=sampler.cache, threshold=sampler.threshold, stats=step_stats, prompt_masks=self.prompt_masks,
        )
        self.commits.extend(step_stats["commits"].tolist() if "commits" in step_stats else [])
        return out

    def generation(self, prompts: Sequence[str], texts: list[str], prefills: list, seconds: float) -> Generation:
        """What generate returns, from the collected batches."""
        model, sampler, spans, filled, n = self.model, self.sampler, self.spans, self.filled, len(prompts)
        return Generation(
            texts=[model.decode(r) for r in self.responses],
            response_ids=self.responses,
            prompts=texts,
            prefills=prefills,
            trace=Trace.concat(self.traces) if self.traces else None,
            seconds=seconds,
            meta={"model": model.name, "sampler": sampler.key(), "label": sampler.label,
                  **({"stop_steps": self.stop_steps, "remask_counts": self.remask_counts}
                     if self.monitor is not None else {}),
                  **({"commits_per_step": self.commits} if self.commits else {}),
                  **({"prompt_masks": self.prompt_masks, "unfilled_prompt_masks": [left for _, left in filled]}
                     if spans else {})},
            filled_prompts=[_fill(p, f) for p, (f, _) in zip(prompts, filled, strict=True)] if spans else [None] * n,
            filled_spans=[f for f, _ in filled] if spans else [[] for _ in range(n)],
        )
def _injections(
    model: LanguageModel, plans: Sequence[Sequence[CanvasText]] | None, gen_length: int | None = None
) -> list[Injection]:
    """Canvas texts as token injections. A text that runs past the canvas (``gen_length``) is cut at its end,
    as an attacker writing into a fixed canvas would be; one that starts past it is dropped."""
    if not plans:
        return []
    out = []
    for row, plan in enumerate(plans):
        for c in plan:
            ids = model.encode([c.text])[0][0].tolist()
            if gen_length is not None:
                ids = ids[: max(0, gen_length - c.offset)]
            if ids:
                out.append(Injection(step=c.step, offset=c.offset, token_ids=tuple(ids), rows=(row,)))
    return out


# ------------------------------------------------------------------------------------------------ <mask:N> spans
# DIJA's prompt syntax (Wen et al. 2025): ``<mask:N>`` in a prompt stands for N mask tokens. The chat-formatted
# text is cut at its markers, the text pieces are tokenised on their own (as a tokenizer splits text at special
# tokens) and N copies of ``model.mask_id`` are spliced between them, so each span is exactly N mask ids. Rows
# are then left-padded as ``model.encode`` pads them (a row without markers gets the same ids as from it).
def _check_mask_spans(model: LanguageModel, sampler: Sampler, prompts, prefills, texts) -> bool:
    """Whether any prompt holds ``<mask:N>`` spans; they need a diffusion model and sampler."""
    if any(f and MASK_SPAN.search(f) for f in prefills):
        raise SrilabError("a prefill holds a <mask:N> span: spans go in the prompt (the response is masked anyway)")
    if not any(MASK_SPAN.search(p) for p in prompts):
        return False
    if sampler.kind != "diffusion" or model.kind != "diffusion" or model.mask_id is None:
        raise SrilabError(
            f"a prompt holds <mask:N> spans, which only a diffusion model can fill: {model.name} ({model.kind}) "
            f"under a {sampler.kind} sampler cannot; drop the spans or use a diffusion model and sampler"
        )
    for p, t in zip(prompts, texts, strict=True):
        if MASK_SPAN.findall(p) != MASK_SPAN.findall(t):
            raise SrilabError(f"the chat template of {model.name} does not keep the <mask:N> markers of a prompt")
    return True


def encode_with_mask_spans(
    model: LanguageModel, texts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, list[list[tuple[int, int]]]]:
    """Left-padded ids and attention mask of formatted ``texts`` whose ``<mask:N>`` markers are expanded into
    ``N`` mask ids each, and per row the ``[start, end)`` positions of its spans (in the padded row)."""
    tok = model.require_tokenizer()
    rows, where = [], []
    for text in texts:
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for piece in split_mask_spans(text):
            if isinstance(piece, int):
                spans.append((len(ids), len(ids) + piece))
                ids.extend([model.mask_id] * piece)
            elif piece:
                ids.extend(tok(piece, add_special_tokens=False)["input_ids"])
        rows.append(ids)
        where.append(spans)
    ids, mask = left_pad(rows, model.pad_token_id if model.pad_token_id is not None else 0)
    width = ids.shape[1]
    shifted = [[(a + width - len(r), b + width - len(r)) for a, b in s] for r, s in zip(rows, where, strict=True)]
    return ids, mask, shifted


def read_mask_spans(
    model: LanguageModel, out: torch.Tensor, where: list[list[tuple[int, int]]]
) -> list[tuple[list[str], int]]:
    """Per row, each span's text as the model filled it (special tokens skipped, stripped; positions still
    masked are left out) and how many span positions are still masked (LLaDA's reference schedule may leave
    some: prompt masks compete with the response's for the block's budget)."""
    tok = model.require_tokenizer()
    rows = []
    for row, spans in zip(out.tolist(), where, strict=True):
        texts, left = [], 0
        for a, b in spans:
            ids = [t for t in row[a:b] if t != model.mask_id]
            left += (b - a) - len(ids)
            texts.append(tok.decode(ids, skip_special_tokens=True).strip())
        rows.append((texts, left))
    return rows


def _fill(prompt: str, spans: list[str]) -> str | None:
    """``prompt`` with its ``<mask:N>`` markers replaced by the filled spans' text (None: no marker)."""
    pieces = split_mask_spans(prompt)
    if len(pieces) == 1:
        return None
    filled = iter(spans)
    return "".join(p if isinstance(p, str) else next(filled) for p in pieces)
