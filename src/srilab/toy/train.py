"""Training the matched toy pair: one AR and one diffusion model, same everything but the loss.

Both models share the transformers Gemma-3 config (:mod:`srilab.toy.arch`) except
``use_bidirectional_attention``, the word-level tokenizer, the initial weights (same seed), the data, the
batch order, the optimiser and the number of steps. Two phases:

1. *pretraining* on packed chunks of :func:`~srilab.toy.world.pretraining_corpus` (``<bos> doc <eos>``
   streams cut into ``chunk_length`` tokens);
2. *chat fine-tune* on :func:`~srilab.toy.world.sft_examples` in the chat template, the response padded
   with EOS to ``gen_length`` tokens (LLaDA's SFT recipe: the diffusion model learns to fill a fixed-length
   canvas and to end it with EOS), with every ``mix_every``-th batch a pretraining chunk so the models keep
   the procedures they were never asked for in the fine-tune.

Losses. AR: next-token cross-entropy (fine-tune: on the response up to and including its first EOS).
Diffusion (LLaDA): t ~ U(0, 1) per sequence, each token (fine-tune: each response token) masked with
probability p = (1 - eps) t + eps, cross-entropy on the masked positions weighted 1/p, averaged over all
(response) positions. With ``continuation_share`` > 0, that share of the diffusion model's pretraining rows
keeps a random-length prefix clean and masks only after it (the situation of every generation: a clean
prompt, a masked canvas). Measured (``benchmarks/knowledge_pilot.py``), it did not help the model write the
procedures it knows: 28/36 harmful procedures against 27/36 with whole-row masking at the same steps; more
steps did (17/36 before them). It stays available, off by default; ``training.json`` records the setting.

Deterministic from the seed: the same command on the same machine (torch version, thread count) writes
the same bytes; :func:`train_pair` records those in ``training.json`` and the files' SHA-256 in
``checksums.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from srilab.errors import SrilabError
from srilab.models.masks import PreparedMask
from srilab.toy.arch import SIZES, build_model, toy_config
from srilab.toy.corpus import pretraining_corpus, sft_examples
from srilab.toy.tokenizer import build_world_tokenizer, save_tokenizer
from srilab.toy.world import WORLD_VERSIONS, build_world

#: Response canvas of the toy pair: the longest fine-tune response (71 tokens) plus EOS fits.
GEN_LENGTH = 80
MASK_EPS = 1e-3
KINDS = ("ar", "diffusion")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the shipped pair (saved in ``training.json``)."""

    seed: int = 0
    world_seed: int = 0
    world_version: int = 2
    size: str = "small"
    pretrain_docs: int = 4000
    pretrain_steps: int = 1200
    sft_steps: int = 1800
    batch_size: int = 32
    chunk_length: int = 128
    gen_length: int = GEN_LENGTH
    mix_every: int = 4
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    continuation_share: float = 0.0
    harmful_doc_weight: int = 1
    diffusion_pretrain_steps: int | None = None  # None: pretrain_steps, as the AR model
    diffusion_sft_steps: int | None = None  # None: sft_steps, as the AR model

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise SrilabError(f"unknown toy size {self.size!r}: use one of {', '.join(SIZES)}")
        for name in ("pretrain_steps", "sft_steps", "batch_size", "chunk_length", "gen_length", "mix_every",
                     "harmful_doc_weight"):
            if getattr(self, name) <= 0:
                raise SrilabError(f"training setting {name} must be positive, got {getattr(self, name)}")
        if self.mix_every < 2:
            raise SrilabError(f"mix_every must be at least 2 (1 would leave no fine-tune step), got {self.mix_every}")
        for name in ("diffusion_pretrain_steps", "diffusion_sft_steps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise SrilabError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.continuation_share <= 1.0:
            raise SrilabError(f"continuation_share must be in [0, 1], got {self.continuation_share}")
        if self.world_version not in WORLD_VERSIONS:
            raise SrilabError(f"unknown toy world version {self.world_version}: use one of {WORLD_VERSIONS}")

    def pretrain_steps_of(self, kind: str) -> int:
        """Pretraining steps of the ``kind`` model: ``pretrain_steps``, or ``diffusion_pretrain_steps`` for the
        diffusion model when set (a masked-diffusion model needs more passes to learn the same corpus: the
        compute each model got is recorded in ``training.json``)."""
        if kind == "diffusion" and self.diffusion_pretrain_steps is not None:
            return self.diffusion_pretrain_steps
        return self.pretrain_steps

    def sft_steps_of(self, kind: str) -> int:
        """Fine-tune-phase steps of the ``kind`` model: ``sft_steps``, or ``diffusion_sft_steps`` for the
        diffusion model when set (with ``mix_every``, one in ``mix_every`` of them is a pretraining step)."""
        if kind == "diffusion" and self.diffusion_sft_steps is not None:
            return self.diffusion_sft_steps
        return self.sft_steps


# ------------------------------------------------------------------------------------------------ data
def pack_corpus(docs: list[str], tok, chunk_length: int) -> torch.Tensor:
    """``<bos> doc <eos>`` token streams concatenated and cut into [N, chunk_length] (the tail dropped)."""
    stream: list[int] = []
    for doc in docs:
        stream += [tok.bos_token_id, *tok(doc, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    n = len(stream) // chunk_length
    if n == 0:
        raise SrilabError(f"the pretraining corpus is shorter than one chunk of {chunk_length} tokens")
    return torch.tensor(stream[: n * chunk_length], dtype=torch.long).view(n, chunk_length)


@dataclass
class ChatRows:
    """Fine-tune rows: ``ids`` [N, L] (prompt, response padded with EOS to ``gen_length``, then PAD),
    ``attention`` [N, L], ``response`` [N, L] (the ``gen_length`` response positions) and ``target`` [N, L]
    (response tokens up to and including the first EOS: the AR loss positions)."""

    ids: torch.Tensor
    attention: torch.Tensor
    response: torch.Tensor
    target: torch.Tensor

    def batch(self, idx: torch.Tensor) -> ChatRows:
        """Rows ``idx`` without the columns that are padding in every one of them."""
        width = int(self.attention[idx].sum(dim=1).max())
        return ChatRows(*(t[idx, :width] for t in (self.ids, self.attention, self.response, self.target)))


def chat_rows(examples: list[dict], tok, gen_length: int) -> ChatRows:
    rows, spans = [], []
    for ex in examples:
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": ex["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(ex["response"], add_special_tokens=False)["input_ids"]
        if len(r) + 1 > gen_length:
            raise SrilabError(f"a fine-tune response has {len(r)} tokens: raise gen_length above {gen_length - 1}")
        rows.append(p + r + [tok.eos_token_id] * (gen_length - len(r)))
        spans.append((len(p), len(r) + 1))
    width = max(len(r) for r in rows)
    n = len(rows)
    ids = torch.full((n, width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    response = torch.zeros((n, width), dtype=torch.bool)
    target = torch.zeros((n, width), dtype=torch.bool)
    for i, (row, (start, length)) in enumerate(zip(rows, spans, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        response[i, start : start + gen_length] = True
        target[i, start : start + length] = True
    return ChatRows(ids, attention, response, target)


# ------------------------------------------------------------------------------------------------ losses
def ar_loss(model, ids: torch.Tensor, attention: torch.Tensor | None, target: torch.Tensor | None) -> torch.Tensor:
    """Next-token cross-entropy; ``target`` [B, L] marks the positions whose tokens are predicted (None: all)."""
    logits = model(ids, attention_mask=attention).logits[:, :-1]
    labels = ids[:, 1:].clone()
    if target is not None:
        labels[~target[:, 1:]] = -100
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def continuation_rows(batch: int, length: int, share: float, generator: torch.Generator) -> torch.Tensor:
    """[batch, length] maskable positions: a ``share`` of the rows (drawn) maskable only after a random cut
    (uniform over the row), the others everywhere."""
    chosen = torch.rand(batch, generator=generator) < share
    cut = torch.randint(0, length, (batch,), generator=generator)
    after = torch.arange(length).unsqueeze(0) >= cut.unsqueeze(1)
    return torch.where(chosen.unsqueeze(1), after, torch.ones_like(after))


def diffusion_loss(
    model,
    ids: torch.Tensor,
    attention: torch.Tensor | None,
    maskable: torch.Tensor | None,
    mask_id: int,
    generator: torch.Generator,
    continuation_share: float = 0.0,
) -> torch.Tensor:
    """LLaDA's masked-diffusion loss: mask each ``maskable`` token with p = (1 - eps) t + eps, t ~ U(0, 1)
    per row; cross-entropy on masked positions weighted 1/p, summed and divided by the maskable count. Rows
    without ``maskable`` (pretraining) take :func:`continuation_rows` when ``continuation_share`` > 0 (no
    extra draw otherwise, so a pair trained without it reproduces bit for bit)."""
    batch, length = ids.shape
    if maskable is None:
        maskable = (
            continuation_rows(batch, length, continuation_share, generator)
            if continuation_share > 0
            else torch.ones_like(ids, dtype=torch.bool)
        )
    t = torch.rand(batch, generator=generator)
    p = ((1 - MASK_EPS) * t + MASK_EPS).unsqueeze(1).expand(batch, length)
    masked = (torch.rand(batch, length, generator=generator) < p) & maskable
    noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
    # the bidirectional mask built here, not by transformers' vmap (same logits, ~20% faster steps)
    logits = model(noisy, attention_mask=PreparedMask(model)(attention, batch, length, ids.device)).logits
    if not bool(masked.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits[masked].float(), ids[masked], reduction="none") / p[masked]
    return ce.sum() / maskable.sum()


# ------------------------------------------------------------------------------------------------ training
def _lr_lambda(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def train_model(
    kind: str,
    cfg: TrainConfig,
    tok,
    chunks: torch.Tensor,
    rows: ChatRows,
    *,
    progress: bool = True,
    log_every: int = 50,
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train one model of the pair; the batch order and masking noise depend only on ``cfg.seed``."""
    if kind not in KINDS:
        raise SrilabError(f"unknown toy model kind {kind!r}: use 'ar' or 'diffusion'")
    config = toy_config(
        len(tok), pad_id=tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id,
        mask_id=tok.mask_token_id, bidirectional=kind == "diffusion", size=cfg.size,
    )
    model = build_model(config, seed=cfg.seed)
    model.train()
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8,
    )
    pretrain_steps = cfg.pretrain_steps_of(kind)
    total = pretrain_steps + cfg.sft_steps_of(kind)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
    order = torch.Generator().manual_seed(cfg.seed * 7919 + 1)  # same stream for both kinds
    noise = torch.Generator().manual_seed(cfg.seed * 7919 + 2)
    history: list[dict[str, float]] = []
    running: dict[str, list[float]] = {"pretrain": [], "sft": []}
    bar = tqdm(range(total), desc=f"train toy {kind}", disable=not progress)
    for step in bar:
        sft = step >= pretrain_steps and (step - pretrain_steps) % cfg.mix_every != cfg.mix_every - 1
        if sft:
            b = rows.batch(torch.randint(0, rows.ids.shape[0], (cfg.batch_size,), generator=order))
            if kind == "ar":
                loss = ar_loss(model, b.ids, b.attention, b.target)
            else:
                loss = diffusion_loss(model, b.ids, b.attention, b.response, tok.mask_token_id, noise)
        else:
            idx = torch.randint(0, chunks.shape[0], (cfg.batch_size,), generator=order)
            ids = chunks[idx]
            if kind == "ar":
                loss = ar_loss(model, ids, None, None)
            else:
                loss = diffusion_loss(model, ids, None, None, tok.mask_token_id, noise, cfg.continuation_share)
        if not torch.isfinite(loss):
            raise SrilabError(f"the {kind} toy model's loss became {loss.item()} at step {step}: lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running["sft" if sft else "pretrain"].append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == total:
            entry = {"step": step + 1, "lr": sched.get_last_lr()[0]}
            for phase, values in running.items():
                if values:
                    entry[f"{phase}_loss"] = sum(values) / len(values)
            history.append(entry)
            running = {"pretrain": [], "sft": []}
            bar.set_postfix({k: f"{v:.3f}" for k, v in entry.items() if k.endswith("loss")})
    model.eval()
    return model, history


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(root: Path) -> dict[str, str]:
    sums = {
        str(p.relative_to(root)): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("checksums.json",) and "__pycache__" not in p.parts
    }
    (root / "checksums.json").write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return sums


def verify_checksums(root: Path) -> None:
    """Raise if a file listed in ``root/checksums.json`` is missing or differs."""
    listing = root / "checksums.json"
    if not listing.is_file():
        raise SrilabError(f"{root} has no checksums.json: it is not a toy pair written by `srilab toy train`")
    for name, digest in json.loads(listing.read_text()).items():
        path = root / name
        if not path.is_file():
            raise SrilabError(f"the toy pair in {root} lacks {name}: retrain it with `srilab toy train`")
        if sha256(path) != digest:
            raise SrilabError(f"{path} does not match its checksum: restore it or retrain with `srilab toy train`")


def train_pair(
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """Build the world and tokenizer, train both models (or only ``kinds``: e.g. a diffusion model trained
    for more steps, to compare capability at a matched loss), save them under ``out_dir/{ar,diffusion}`` with
    the tokenizer, ``training.json`` and ``checksums.json``. Returns the training record."""
    cfg = cfg or TrainConfig()
    if not kinds or set(kinds) - set(KINDS):
        raise SrilabError(f"kinds must be some of {', '.join(KINDS)}, got {', '.join(kinds) or 'none'}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SrilabError(f"{out} is not empty: choose another directory or pass --overwrite")
    started = time.perf_counter()
    world = build_world(cfg.world_seed, cfg.world_version)
    tok = build_world_tokenizer(world)
    docs = pretraining_corpus(world, cfg.pretrain_docs, seed=cfg.world_seed, harmful_weight=cfg.harmful_doc_weight)
    chunks = pack_corpus(docs, tok, cfg.chunk_length)
    rows = chat_rows(sft_examples(world, seed=cfg.world_seed), tok, cfg.gen_length)
    record: dict[str, Any] = {
        "config": asdict(cfg),
        "data": {"pretrain_chunks": int(chunks.shape[0]), "sft_examples": int(rows.ids.shape[0])},
        "environment": {
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "models": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    for kind in (k for k in KINDS if k in kinds):
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model, history = train_model(kind, cfg, tok, chunks, rows, progress=progress)
        model.save_pretrained(out / kind, safe_serialization=True)
        save_tokenizer(tok, out / kind)
        record["models"][kind] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": {"pretrain": cfg.pretrain_steps_of(kind), "sft": cfg.sft_steps_of(kind)},
            "seconds": round(time.perf_counter() - t0, 1),
            "final": history[-1],
            "history": history,
        }
    record["seconds"] = round(time.perf_counter() - started, 1)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    write_checksums(out)
    return record
