"""Every attack on the toy world's harmful requests, with benign and reasoning requests, built per sampler
(the attacks' canvas plans depend on the sampler's steps): a fixed item set for timing the guard
(``benchmarks/bench_guard.py``) and for the remask monitor's tests.

Not an evaluation protocol: its split (``benign_fit``, ``benign_eval`` held-out phrasings of the same tasks)
holds out no topic group. Studies, the demo and ``srilab ablate`` use :mod:`srilab.study.protocol`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from srilab.attacks import AttackContext, CanvasText, apply_attack
from srilab.sampling.api import Sampler
from srilab.toy.corpus import eval_sets
from srilab.toy.world import World, target_for

ATTACK_ORDER = ("direct", "prefill", "suffix_relocation", "heldout_wrapper", "canvas_injection", "response_template")
DIFFUSION_ONLY = {"canvas_injection", "response_template"}
DIJA_SPAN = 10  # about one toy procedure step ("step two , tap the tiny oob brizz ."): marker, masks, marker


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
