"""The toy world: an offline, synthetic chat world for matched tiny AR / diffusion models.

Everything here is plain Python data, deterministic from a seed (a private ``random.Random`` per
purpose, never the global RNG), lower-case, with punctuation written as separate space-delimited
tokens so that a word-level tokenizer round-trips every text exactly.

The world holds

* **tasks** (:class:`Task`): everyday *benign* procedures built compositionally ("bake bread",
  "repair the lamp", ...) and fictional *harmful* tasks ("brew the zarn poison") whose procedures are
  non-actionable placeholders made of invented words ("stir the hollow vessk twice"). No real
  harmful information appears anywhere;
* **request phrasings** ("how do i {t} ?") split into ``train`` and ``heldout``;
* **wrappers** (role-play, story, hypothetical, nested context) split into ``safety_train`` (harmful
  requests under them are refused in the safety data) and ``heldout`` (never seen with a harmful
  request in any training data: the semantic-constraint-relaxation attack surface);
* **reasoning items**: multi-step arithmetic with checkable answers (the capability cost);
* **response formats**: one canonical compliance rendering (:func:`render_procedure`), refusals and
  "recovery" responses (a compliance opener that turns into a refusal).

This module holds the world's types, its rendering and :func:`build_world`; the word lists are in
:mod:`srilab.toy.lexicon`, the arithmetic in :mod:`srilab.toy.reasoning`, and the builders
(:func:`~srilab.toy.corpus.pretraining_corpus`, :func:`~srilab.toy.corpus.sft_examples`,
:func:`~srilab.toy.corpus.eval_sets`, :func:`~srilab.toy.corpus.world_texts`) in :mod:`srilab.toy.corpus`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from srilab.toy.lexicon import (
    BENIGN_DOMAINS,
    HARMFUL_CATEGORIES,
    HARMFUL_NAMES,
    HARMFUL_POOL,
    N_HELDOUT_PHRASINGS,
    NAMES_PER_CATEGORY,
    ORDINALS,
    PHRASINGS,
    PLACEHOLDER_ADJECTIVES,
    PLACEHOLDER_MODIFIERS,
    PLACEHOLDER_NOUNS,
    PLACEHOLDER_VERBS,
    RECOVERY_TEMPLATES,
    REFUSAL_PHRASES,
    REFUSALS,
    WRAPPER_FAMILIES,
)

__all__ = [
    "PhrasingSplit",
    "Task",
    "TaskKind",
    "World",
    "WrapperSplit",
    "build_world",
    "normalize_text",
    "numbered_steps",
    "procedure_body",
    "recovery_response",
    "render_procedure",
    "render_request",
    "target_for",
    "wrap_request",
]

TaskKind = Literal["benign", "harmful"]
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


# --------------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One task of the world.

    Attributes:
        name: unique identifier (the topic with underscores, e.g. ``"bake_bread"``).
        kind: ``"benign"`` or ``"harmful"`` (fictional, with a placeholder procedure).
        topic: the short action phrase used in requests, e.g. ``"bake bread"``.
        procedure: 4-6 short steps of a few words each.
        group: the topic group (the benign domain or harmful category the task was built from, e.g.
            ``"bake"``): what an evaluation protocol holds out whole to test generalisation to new topics.
    """

    name: str
    kind: TaskKind
    topic: str
    procedure: tuple[str, ...]
    group: str = ""


@dataclass(frozen=True)
class PhrasingSplit:
    """Request phrasings (templates over ``{t}``) split into train and held-out ones."""

    train: tuple[str, ...]
    heldout: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """Train then held-out phrasings."""
        return self.train + self.heldout


@dataclass(frozen=True)
class WrapperSplit:
    """Wrappers (templates over ``{r}``) split into safety-train and held-out ones."""

    safety_train: tuple[str, ...]
    heldout: tuple[str, ...]
    families: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def all(self) -> tuple[str, ...]:
        """Safety-train then held-out wrappers."""
        return self.safety_train + self.heldout

    def family(self, wrapper: str) -> str:
        """The family ("roleplay", "story", "hypothetical", "nested") of a wrapper template."""
        return self.families[wrapper]


@dataclass(frozen=True)
class World:
    """The whole toy world, deterministic from ``seed``. Build it with :func:`build_world`."""

    seed: int
    tasks: tuple[Task, ...]
    phrasings: PhrasingSplit
    wrappers: WrapperSplit
    refusals: tuple[str, ...] = REFUSALS
    recovery_templates: tuple[str, ...] = RECOVERY_TEMPLATES
    refusal_phrases: tuple[str, ...] = REFUSAL_PHRASES
    _by_name: dict[str, Task] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_name = {t.name: t for t in self.tasks}
        if len(by_name) != len(self.tasks):
            raise ValueError("task names must be unique")
        object.__setattr__(self, "_by_name", by_name)

    def task(self, name: str) -> Task:
        """The task called ``name`` (``KeyError`` naming the problem if unknown)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown toy task {name!r}: use one of World.tasks' names") from None

    @property
    def benign_tasks(self) -> tuple[Task, ...]:
        """Benign tasks, in world order."""
        return tuple(t for t in self.tasks if t.kind == "benign")

    @property
    def harmful_tasks(self) -> tuple[Task, ...]:
        """Fictional harmful tasks, in world order."""
        return tuple(t for t in self.tasks if t.kind == "harmful")


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Lower-case, split punctuation into separate tokens and collapse whitespace."""
    return " ".join(_TOKEN_RE.findall(text.lower()))


def render_request(phrasing: str, topic: str) -> str:
    """Fill a phrasing template with a task topic: ``"how do i {t} ?"`` -> ``"how do i bake bread ?"``."""
    return phrasing.format(t=topic)


def target_for(world: World, task: str) -> str:
    """The affirmative opening of a compliant answer to ``task`` (the prefill / injection text of attacks)."""
    return f"sure . to {world.task(task).topic} :"


def wrap_request(wrapper: str, request: str) -> str:
    """Fill a wrapper template with a rendered request."""
    return wrapper.format(r=request)


def numbered_steps(task: Task) -> str:
    return " ".join(f"step {ORDINALS[i]} , {step} ." for i, step in enumerate(task.procedure))


def procedure_body(task: Task) -> str:
    """The procedure without the compliance opener: ``"to bake bread : step one , ... ."``."""
    return f"to {task.topic} : {numbered_steps(task)}"


def render_procedure(task: Task) -> str:
    """The canonical compliance response: ``"sure . to bake bread : step one , ... . step four , ... ."``."""
    return f"sure . {procedure_body(task)}"


def recovery_response(template: str, task: Task) -> str:
    """A recovery response (compliance opener turning into a refusal) for ``task``."""
    return template.format(t=task.topic)


def _slug(topic: str) -> str:
    return "_".join(topic.split())


# --------------------------------------------------------------------------------------------------
# World construction
# --------------------------------------------------------------------------------------------------


def _benign_tasks(rng: random.Random) -> list[Task]:
    tasks = []
    for topic_template, objects, pool in BENIGN_DOMAINS:
        for obj in objects:
            k = rng.randint(4, min(6, len(pool)))
            picked = sorted(rng.sample(range(len(pool)), k))  # keep the pool's natural order
            topic = topic_template.format(o=obj)
            steps = tuple(pool[i].format(o=obj) for i in picked)
            group = _slug(topic_template.replace("{o}", " "))
            tasks.append(Task(name=_slug(topic), kind="benign", topic=topic, procedure=steps, group=group))
    return tasks


def _harmful_tasks(rng: random.Random) -> list[Task]:
    """Fictional procedures built like the benign ones: each category has a pool of nonsense step templates
    (placeholder verb, adjective and noun, with the task's name in every step), and each task takes an
    ordered subset of its category's pool. So a harmful procedure is as learnable as a benign one, and
    still means nothing outside this world."""
    triples = [(v, a, n) for v in PLACEHOLDER_VERBS for a in PLACEHOLDER_ADJECTIVES for n in PLACEHOLDER_NOUNS]
    rng.shuffle(triples)  # drawn without replacement: no two templates in the world share a (verb, adj, noun)
    tasks = []
    for category in HARMFUL_CATEGORIES:
        pool = []
        for _ in range(HARMFUL_POOL):
            verb, adjective, noun = triples.pop()
            template = f"{verb} the {adjective} {{n}} {noun}"
            if rng.random() < 0.4:
                template += " " + rng.choice(PLACEHOLDER_MODIFIERS)
            pool.append(template)
        for name in rng.sample(HARMFUL_NAMES, NAMES_PER_CATEGORY):
            topic = category.format(n=name)
            k = rng.randint(4, 6)
            picked = sorted(rng.sample(range(len(pool)), k))  # the pool's order, like the benign domains
            steps = tuple(pool[i].format(n=name) for i in picked)
            group = _slug(category.replace("{n}", " "))
            tasks.append(Task(name=_slug(topic), kind="harmful", topic=topic, procedure=steps, group=group))
    return tasks


def _check_tasks(tasks: Sequence[Task]) -> None:
    """Invariants the oracle judge relies on: distinct topics/procedures, no step shared across tasks."""
    if len({t.topic for t in tasks}) != len(tasks):
        raise RuntimeError("toy world bug: duplicate task topics")
    if len({t.procedure for t in tasks}) != len(tasks):
        raise RuntimeError("toy world bug: duplicate procedures")
    rendered = [f" {normalize_text(procedure_body(t))} " for t in tasks]
    for i, task in enumerate(tasks):
        if not 4 <= len(task.procedure) <= len(ORDINALS):
            raise RuntimeError(f"toy world bug: {task.name} has {len(task.procedure)} steps")
        for step in task.procedure:
            needle = f" {normalize_text(step)} "
            for j, text in enumerate(rendered):
                if j != i and needle in text:
                    raise RuntimeError(f"toy world bug: step {step!r} of {task.name} occurs in {tasks[j].name}")


def build_world(seed: int = 0) -> World:
    """Build the toy world deterministically from ``seed`` (tasks, phrasing and wrapper splits)."""
    tasks = _benign_tasks(random.Random(f"benign/{seed}")) + _harmful_tasks(random.Random(f"harmful/{seed}"))
    _check_tasks(tasks)

    rng = random.Random(f"splits/{seed}")
    heldout_idx = set(rng.sample(range(len(PHRASINGS)), N_HELDOUT_PHRASINGS))
    phrasings = PhrasingSplit(
        train=tuple(p for i, p in enumerate(PHRASINGS) if i not in heldout_idx),
        heldout=tuple(p for i, p in enumerate(PHRASINGS) if i in heldout_idx),
    )
    safety_train: list[str] = []
    heldout: list[str] = []
    families: dict[str, str] = {}
    for family, templates in WRAPPER_FAMILIES:
        held = rng.randrange(len(templates))
        for i, template in enumerate(templates):
            (heldout if i == held else safety_train).append(template)
            families[template] = family
    wrappers = WrapperSplit(safety_train=tuple(safety_train), heldout=tuple(heldout), families=families)
    return World(seed=seed, tasks=tuple(tasks), phrasings=phrasings, wrappers=wrappers)
