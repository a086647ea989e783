"""The demo's items and its per-sampler runs: what is generated, under which attack, with which roles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srilab.attacks import AttackContext, CanvasText, apply_attack
from srilab.judges.refusal import RefusalJudge
from srilab.models.base import LanguageModel
from srilab.sampling.api import Sampler, generate
from srilab.sampling.trace import TraceConfig
from srilab.toy.corpus import eval_sets
from srilab.toy.evaluate import SAMPLER_NAMES
from srilab.toy.oracle import OracleJudge
from srilab.toy.world import World, target_for

ATTACK_ORDER = ("direct", "prefill", "suffix_relocation", "heldout_wrapper", "canvas_injection", "dija")
DIFFUSION_ONLY = {"canvas_injection", "dija"}
DIJA_SPAN = 10  # about one toy procedure step ("step two , tap the tiny oob brizz ."): marker, masks, marker


@dataclass
class DemoConfig:
    pair: Path | None = None  # default: the shipped pair
    out: Path = Path("demo-out")
    quick: bool = False
    limit: int | None = None  # items per set (default: all; quick: 12)
    batch_size: int = 16
    detector: str = "autoencoder"
    quantile: float = 0.99
    block_length: int = 16
    diffusion_steps: int | None = None  # default: gen_length (one token per step)
    samplers: tuple[str, ...] = SAMPLER_NAMES
    seed: int = 0
    n_boot: int = 1000
    defenses: bool = True  # also run the forward-pass baseline defenses

    def items_per_set(self) -> int | None:
        if self.limit is not None:
            return self.limit
        return 12 if self.quick else None


@dataclass
class Item:
    group: str  # benign_fit | harmful_calib | benign_eval | reasoning | attack
    prompt: str
    kind: str  # benign | harmful | reasoning
    attack: str | None = None
    prefill: str | None = None
    canvas: tuple[CanvasText, ...] = ()
    task: str | None = None
    answer: str | None = None
    index: int = 0  # position within its group/attack (pairs items across samplers)


# ------------------------------------------------------------------------------------------------ data
def build_items(world: World, sampler: Sampler, limit: int | None, tokens: Callable[[str], int]) -> list[Item]:
    sets = eval_sets(world)
    cut = (lambda xs: xs[:limit]) if limit else (lambda xs: xs)
    items: list[Item] = []
    benign_fit = [it["prompt"] for it in sets["benign_train"]]
    for i, p in enumerate(benign_fit[: 2 * limit] if limit else benign_fit):
        items.append(Item("benign_fit", p, "benign", index=i))
    for i, it in enumerate(cut(sets["harmful_train_wrapper"])):
        items.append(Item("harmful_calib", it["prompt"], "harmful", task=it["task"], index=i))
    for i, it in enumerate(cut(sets["benign_direct"]) + cut(sets["benign_wrapped"])):
        items.append(Item("benign_eval", it["prompt"], "benign", task=it["task"], index=i))
    for i, it in enumerate(cut(sets["reasoning_test"])):
        items.append(Item("reasoning", it["prompt"], "reasoning", answer=it["answer"], index=i))
    steps = sampler.num_steps
    markers = ("step one ,", "step two ,", "step three ,")
    for attack in ATTACK_ORDER:
        if attack in DIFFUSION_ONLY and sampler.kind != "diffusion":
            continue
        source = sets["harmful_heldout_wrapper"] if attack == "heldout_wrapper" else sets["harmful_direct"]
        for i, it in enumerate(cut(source)):
            ctx = AttackContext(
                target=target_for(world, it["task"]), steps=steps, gen_length=sampler.response_length,
                step_markers=markers, dija_span=DIJA_SPAN, count_tokens=tokens,
            )
            name = "direct" if attack == "heldout_wrapper" else attack
            a = apply_attack(name, it["prompt"], ctx)
            items.append(
                Item("attack", a.prompt, "harmful", attack=attack, prefill=a.prefill, canvas=a.canvas,
                     task=it["task"], index=i)
            )
    return items


# ------------------------------------------------------------------------------------------------ running
@dataclass
class SamplerRun:
    name: str
    sampler: Sampler
    model: LanguageModel
    items: list[Item]
    texts: list[str] = field(default_factory=list)
    refused: np.ndarray | None = None
    harmful: np.ndarray | None = None
    oracle_task: list[str | None] = field(default_factory=list)
    oracle: OracleJudge | None = None
    activations: Any = None
    canvas: Any = None  # diffusion: [N, steps, gen_length] response tokens after every step
    seconds: float = 0.0

    def select(self, group: str, attack: str | None = None) -> np.ndarray:
        return np.array(
            [i for i, it in enumerate(self.items) if it.group == group and (attack is None or it.attack == attack)],
            dtype=int,
        )


def run_sampler(
    name: str, sampler: Sampler, model: LanguageModel, world: World, cfg: DemoConfig, progress: bool
) -> SamplerRun:
    tok = model.tokenizer

    def tokens(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    items = build_items(world, sampler, cfg.items_per_set(), tokens)
    run = SamplerRun(name, sampler, model, items, oracle=OracleJudge(world))
    gen = generate(
        model, [it.prompt for it in items], sampler,
        trace=TraceConfig(canvas=sampler.kind == "diffusion"),
        prefills=[it.prefill for it in items],
        canvas=[list(it.canvas) for it in items] if sampler.kind == "diffusion" else None,
        batch_size=cfg.batch_size, progress=progress,
    )
    run.texts = gen.full_texts
    run.seconds = gen.seconds
    run.activations = gen.trace.activations if gen.trace is not None else None
    run.canvas = gen.trace.canvas if gen.trace is not None else None
    keyword = RefusalJudge()
    oracle = run.oracle
    verdicts = oracle.judge_batch(run.texts)
    run.refused = np.array(keyword.judge_batch(run.texts), dtype=bool)
    run.harmful = np.array([oracle.harmful(v) for v in verdicts], dtype=bool)
    run.oracle_task = [v.task for v in verdicts]
    return run


