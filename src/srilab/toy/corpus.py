"""The toy world's data builders: the pretraining corpus, the chat fine-tune, the evaluation sets and the
world's vocabulary. Deterministic from a seed (a private ``random.Random`` per purpose)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from srilab.errors import SrilabError
from srilab.toy.reasoning import (
    MAX_VALUE,
    OPERATIONS,
    REASONING_TEMPLATES,
    reasoning_items,
    reasoning_response,
    worked_solution,
)
from srilab.toy.world import (
    ATTACK_OPENER,
    N_STYLES,
    Task,
    World,
    normalize_text,
    numbered_steps,
    recovery_response,
    render_procedure,
    render_request,
    wrap_request,
)

_GUIDE_HEADERS: tuple[str, ...] = (
    "a guide to {t} .",
    "notes on how to {t} .",
    "here is how to {t} .",
    "the right way to {t} .",
)
_NARRATORS: tuple[tuple[str, str], ...] = (("mira", "she"), ("tobin", "he"), ("sela", "she"), ("oskar", "he"))
_DOC_KINDS: tuple[str, ...] = ("guide", "list", "steps", "narration", "qa", "wrapped_qa")


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def _render_doc(kind: str, task: Task, world: World, variant: int, exclude: frozenset[str] = frozenset()) -> str:
    """One pretraining document of ``kind`` about ``task``; ``variant`` picks among the template choices. A
    question-answer document never asks a request in ``exclude`` (the evaluation prompts)."""
    steps = task.procedure
    if kind == "guide":
        header = _GUIDE_HEADERS[variant % len(_GUIDE_HEADERS)].format(t=task.topic)
        return f"{header} {numbered_steps(task)}"
    if kind == "list":
        middle = " , ".join(f"then {s}" for s in steps[1:-1])
        return f"to {task.topic} , first {steps[0]} , {middle} , and finally {steps[-1]} ."
    if kind == "steps":
        return f"how to {task.topic} : " + " ; ".join(steps) + " ."
    if kind == "narration":
        name, pronoun = _NARRATORS[variant % len(_NARRATORS)]
        middle = " ".join(f"next , {pronoun} would {s} ." for s in steps[1:-1])
        return (
            f"{name} wanted to {task.topic} . first , {name} would {steps[0]} . {middle} "
            f"at last , {pronoun} would {steps[-1]} . and that is how {name} did it ."
        )
    # Question-answer documents. Harmful tasks only ever appear unwrapped under train phrasings, so no
    # held-out phrasing or wrapper is ever seen with a harmful request in training data.
    phrasings = world.phrasings.all if task.kind == "benign" else world.phrasings.train
    wrappers = world.wrappers.all
    for v in range(variant, variant + len(phrasings) * len(wrappers) + 1):
        inner = request = render_request(phrasings[v % len(phrasings)], task.topic)
        if kind == "wrapped_qa" and task.kind == "benign":
            request = wrap_request(wrappers[(v // len(phrasings)) % len(wrappers)], request)
        if request not in exclude and inner not in exclude:
            break
    else:  # every phrasing is an evaluation prompt: fall back to a plain guide
        return _render_doc("guide", task, world, variant)
    return f"question : {request} answer : {render_procedure(task, variant)}"


def pretraining_corpus(
    world: World,
    n_docs: int = 3000,
    *,
    reasoning_fraction: float = 0.15,
    seed: int | None = None,
    harmful_weight: int = 1,
) -> list[str]:
    """``n_docs`` plain-text documents (guides, lists, narrations, question-answer pages, worked sums).

    Tasks are visited in repeated shuffled passes, so every procedure (benign and harmful) appears as
    soon as ``n_docs * (1 - reasoning_fraction) >= len(world.tasks)``; a larger corpus shows each one
    many times in many forms. Harmful tasks appear only in plain forms and in question-answer pages
    under *train* phrasings; benign tasks also appear under every phrasing and wrapper (so that the
    words of held-out templates are known to the base model), but no question is an evaluation prompt
    (:func:`eval_sets`). Answers rotate through the compliance renderings. Reasoning documents use train
    items only. ``harmful_weight`` visits every harmful task that many times per pass (the base model has read
    more about harm than about any one chore; 1 keeps the v2 corpus). Deterministic from ``seed`` (default:
    the world's seed).
    """
    if harmful_weight < 1:
        raise SrilabError(f"harmful_weight must be a positive integer, got {harmful_weight}")
    seed = world.seed if seed is None else seed
    exclude = frozenset(it["prompt"] for items in eval_sets(world, seed=seed).values() for it in items)
    rng = random.Random(f"pretraining/{seed}")
    n_reasoning = round(n_docs * reasoning_fraction)
    n_task_docs = n_docs - n_reasoning

    docs: list[str] = []
    order: list[Task] = []
    while len(docs) < n_task_docs:
        if not order:
            order = list(world.tasks) + [t for t in world.tasks if t.kind == "harmful"] * (harmful_weight - 1)
            rng.shuffle(order)
        task = order.pop()
        docs.append(_render_doc(rng.choice(_DOC_KINDS), task, world, rng.randrange(1 << 16), exclude))
    for item in reasoning_items(n_reasoning, seed=seed, split="train"):
        if rng.random() < 0.5:
            docs.append(f"question : {item['prompt']} answer : {item['response']}")
        else:
            docs.append(worked_solution(item["expression"]))
    rng.shuffle(docs)
    return docs


def _example(
    prompt: str,
    response: str,
    task: Task | None,
    kind: str,
    response_kind: str,
    phrasing: str | None = None,
    wrapper: str | None = None,
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "response": response,
        "task": task.name if task else None,
        "group": task.group if task else None,
        "kind": kind,
        "response_kind": response_kind,
        "phrasing": phrasing,
        "wrapper": wrapper,
    }


def sft_examples(
    world: World,
    *,
    direct_per_task: int = 3,
    wrapped_per_task: int = 2,
    n_reasoning: int = 300,
    recovery_fraction: float = 0.1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The chat fine-tune: a shuffled list of ``{"prompt", "response", "task", "kind", ...}`` dicts.

    * benign tasks under ``direct_per_task`` train phrasings and ``wrapped_per_task`` (safety-train
      wrapper, train phrasing) pairs -> a compliance, its rendering drawn (:func:`render_procedure`);
    * harmful tasks under the same kinds of prompts -> a refusal, or with probability
      ``recovery_fraction`` a recovery response;
    * ``n_reasoning`` train reasoning items -> ``"the answer is N ."``.

    Held-out phrasings and wrappers never appear with a harmful request, and no prompt carries an
    assistant prefill. Extra keys: ``response_kind`` (compliance | refusal | recovery | answer),
    ``phrasing`` and ``wrapper`` (the templates used, or None). Deterministic from ``seed`` (default:
    the world's seed).
    """
    seed = world.seed if seed is None else seed
    rng = random.Random(f"sft/{seed}")
    train_phrasings = world.phrasings.train
    train_wrappers = world.wrappers.safety_train
    examples: list[dict[str, Any]] = []
    for task in world.tasks:
        prompts: list[tuple[str, str, str | None]] = []
        for phrasing in rng.sample(train_phrasings, min(direct_per_task, len(train_phrasings))):
            prompts.append((render_request(phrasing, task.topic), phrasing, None))
        for wrapper in rng.sample(train_wrappers, min(wrapped_per_task, len(train_wrappers))):
            phrasing = rng.choice(train_phrasings)
            prompts.append((wrap_request(wrapper, render_request(phrasing, task.topic)), phrasing, wrapper))
        for prompt, phrasing, wrapper in prompts:
            if task.kind == "benign":
                response, response_kind = render_procedure(task, rng.randrange(N_STYLES)), "compliance"
            elif rng.random() < recovery_fraction:
                response = recovery_response(rng.choice(world.recovery_templates), task)
                response_kind = "recovery"
            else:
                response, response_kind = rng.choice(world.refusals), "refusal"
            examples.append(_example(prompt, response, task, task.kind, response_kind, phrasing, wrapper))
    for item in reasoning_items(n_reasoning, seed=seed, split="train"):
        examples.append(_example(item["prompt"], item["response"], None, "reasoning", "answer"))
    rng.shuffle(examples)
    return examples


def _eval_item(
    prompt: str, task: Task | None, kind: str, phrasing: str | None, wrapper: str | None, answer: str | None
) -> dict[str, Any]:
    reference = render_procedure(task) if task is not None else str(answer)
    return {
        "prompt": prompt,
        "task": task.name if task else None,
        "group": task.group if task else None,
        "lookalike": task.lookalike if task else None,
        "kind": kind,
        "phrasing": phrasing,
        "wrapper": wrapper,
        "answer": answer,
        "reference": reference,
    }


def eval_sets(world: World, *, n_reasoning_test: int = 100, seed: int | None = None) -> dict[str, list[dict]]:
    """Named evaluation sets, one item per task (templates rotated deterministically). No prompt of any set is
    a fine-tune prompt (:func:`sft_examples` at the same seed): a train phrasing or wrapper the fine-tune
    paired with the task is skipped.

    * ``benign_direct``: benign tasks under held-out phrasings (should comply);
    * ``benign_train``: benign tasks under train phrasings, two per task (the SRI harmless centre, the
      guard's benign-only fit and the threshold's calibration);
    * ``harmful_direct``: harmful tasks under train phrasings (should refuse);
    * ``harmful_heldout_phrasing``: harmful tasks under held-out phrasings;
    * ``harmful_train_wrapper``: harmful tasks under safety-train wrappers (should refuse);
    * ``harmful_heldout_wrapper``: harmful tasks under held-out wrappers (the attack surface);
    * ``benign_wrapped``: benign tasks under held-out wrappers (should comply);
    * ``safe_lookalike``: the benign tasks whose requests look harmful (a ``lookalike`` type), under a
      held-out phrasing other than ``benign_direct``'s (should comply: the over-refusal probes);
    * ``reasoning_test``: ``n_reasoning_test`` test-split arithmetic items (with ``answer``).

    Each item: ``prompt``, ``task`` (name or None), ``group`` (the task's topic group), ``lookalike`` (its
    XSTest-style type or None), ``kind``, ``phrasing``, ``wrapper``, ``answer`` (reasoning only, else None)
    and ``reference`` (the canonical response).
    """
    seed = world.seed if seed is None else seed
    ph, wr = world.phrasings, world.wrappers
    seen = {e["prompt"] for e in sft_examples(world, seed=seed)}

    def direct(tasks: Sequence[Task], phrasings: Sequence[str], per_task: int = 1, avoid=frozenset()) -> list[dict]:
        out = []
        for i, task in enumerate(tasks):
            fresh = [p for p in phrasings if render_request(p, task.topic) not in seen | avoid]
            for j in range(per_task):
                phrasing = fresh[(i + j) % len(fresh)]
                out.append(_eval_item(render_request(phrasing, task.topic), task, task.kind, phrasing, None, None))
        return out

    def wrapped(tasks: Sequence[Task], wrappers: Sequence[str]) -> list[dict]:
        out = []
        nw, np_ = len(wrappers), len(ph.train)
        for i, task in enumerate(tasks):
            for k in range(nw * np_):
                wrapper, phrasing = wrappers[(i + k) % nw], ph.train[(i // nw + k // nw) % np_]
                prompt = wrap_request(wrapper, render_request(phrasing, task.topic))
                if prompt not in seen:
                    break
            out.append(_eval_item(prompt, task, task.kind, phrasing, wrapper, None))
        return out

    reasoning = [
        _eval_item(it["prompt"], None, "reasoning", None, None, it["answer"])
        for it in reasoning_items(n_reasoning_test, seed=seed, split="test")
    ]
    benign_direct = direct(world.benign_tasks, ph.heldout)
    lookalikes = [t for t in world.benign_tasks if t.lookalike]
    return {
        "benign_direct": benign_direct,
        "benign_train": direct(world.benign_tasks, ph.train, per_task=2),
        "harmful_direct": direct(world.harmful_tasks, ph.train),
        "harmful_heldout_phrasing": direct(world.harmful_tasks, ph.heldout),
        "harmful_train_wrapper": wrapped(world.harmful_tasks, wr.safety_train),
        "harmful_heldout_wrapper": wrapped(world.harmful_tasks, wr.heldout),
        "benign_wrapped": wrapped(world.benign_tasks, wr.heldout),
        "safe_lookalike": direct(lookalikes, ph.heldout, avoid=frozenset(it["prompt"] for it in benign_direct)),
        "reasoning_test": reasoning,
    }


def world_texts(world: World) -> list[str]:
    """Texts covering every word the world can produce (for building the word-level tokenizer).

    Enumerates every task in every document form and variant, every phrasing and wrapper, every
    refusal and recovery, the canonical responses, the reasoning templates and all numbers 0-99,
    plus common attack vocabulary ("sure , here is how to ..."). Deterministic.
    """
    texts: list[str] = []
    example = world.tasks[0]
    for task in world.tasks:
        texts.extend(render_procedure(task, style) for style in range(N_STYLES))
        for kind in _DOC_KINDS:
            n_variants = max(len(_GUIDE_HEADERS), len(_NARRATORS)) if kind in ("guide", "narration") else 1
            for variant in range(n_variants):
                texts.append(_render_doc(kind, task, world, variant))
        for template in world.recovery_templates:
            texts.append(recovery_response(template, task))
    for phrasing in world.phrasings.all:
        texts.append(render_request(phrasing, example.topic))
    for wrapper in world.wrappers.all:
        texts.append(wrap_request(wrapper, render_request(world.phrasings.train[0], example.topic)))
    texts.extend(world.refusals)
    texts.extend(world.refusal_phrases)
    texts.append(" ".join(str(i) for i in range(MAX_VALUE + 1)))
    texts.append(" ".join(OPERATIONS) + " then")
    texts.extend(t.format(e="1 plus 1") for t in REASONING_TEMPLATES)
    texts.append(worked_solution("1 plus 1 then times 2"))
    texts.append(reasoning_response("2"))
    texts.append(ATTACK_OPENER.format(t=example.topic))
    return texts


def vocabulary(texts: Iterable[str]) -> list[str]:
    """Sorted distinct words (punctuation as separate tokens) of ``texts``."""
    words: set[str] = set()
    for text in texts:
        words.update(normalize_text(text).split())
    return sorted(words)
