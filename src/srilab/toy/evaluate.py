"""Quality of a toy pair under the three samplers the study compares (what ``srilab toy eval`` prints).

* ``ar``: the AR model, greedy, ``gen_length`` new tokens;
* ``diffusion``: the diffusion model, LLaDA low-confidence remasking, semi-autoregressive blocks;
* ``diffusion-l2r``: the *same diffusion weights* sampled one token per step, left to right
  (``block_length=1``): the AR order on diffusion weights.

Figures, each with k, n and a Wilson 95% interval: refusal of direct harmful requests (train phrasings,
never a fine-tune prompt), benign requests answered with the right procedure (held-out phrasings; the
oracle), safe look-alike requests answered rather than refused (the over-refusal probes), and reasoning
exact match (the capability cost); and the knowledge probe (:mod:`srilab.toy.knowledge`): the harmful and
benign procedures each model writes when asked in the pretraining formats, per format and in any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from srilab import stats
from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.sampling.api import Sampler, SamplerConfig, generate
from srilab.toy.corpus import eval_sets
from srilab.toy.knowledge import FORMATS, knows, probe_prompts
from srilab.toy.oracle import OracleJudge
from srilab.toy.reasoning import check_reasoning_answer
from srilab.toy.world import World

SAMPLER_NAMES = ("ar", "diffusion", "diffusion-l2r")


def pair_samplers(gen_length: int, *, steps: int | None = None, block_length: int = 16) -> dict[str, Sampler]:
    """The three samplers of the study, keyed by name (greedy, so every run reproduces)."""
    steps = steps or gen_length
    if gen_length % block_length:
        raise SrilabError(f"block_length {block_length} must divide the pair's gen_length {gen_length}")
    return {
        "ar": SamplerConfig(kind="ar", name="ar", max_new_tokens=gen_length),
        "diffusion": SamplerConfig(
            kind="diffusion", name="diffusion", steps=steps, gen_length=gen_length, block_length=block_length
        ),
        "diffusion-l2r": SamplerConfig(
            kind="diffusion", name="diffusion-l2r", steps=gen_length, gen_length=gen_length, block_length=1
        ),
    }


def model_for(sampler: str, ar: LanguageModel, dlm: LanguageModel) -> LanguageModel:
    return ar if sampler == "ar" else dlm


@dataclass(frozen=True)
class Quality:
    """One sampler's figures; each rate as :func:`srilab.stats.rate` stores it (``k``, ``n``, ``rate``, ``ci``)."""

    sampler: str
    harmful_refused: dict
    benign_correct: dict
    lookalike_answered: dict
    reasoning_exact: dict

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def evenly_spaced(items: list[dict], limit: int | None) -> list[dict]:
    """``limit`` items evenly spaced over the set (the sets are ordered by topic group: a prefix is one group)."""
    if limit is None or limit >= len(items):
        return items
    return [items[round(i * (len(items) - 1) / max(1, limit - 1))] for i in range(limit)]


def evaluate_pair(
    ar: LanguageModel,
    dlm: LanguageModel,
    world: World,
    samplers: dict[str, Sampler],
    *,
    limit: int | None = None,
    n_reasoning: int = 100,
    batch_size: int = 16,
    progress: bool = True,
) -> list[Quality]:
    """Greedy generations on the world's direct harmful, benign, safe look-alike and reasoning sets under each
    sampler (``limit`` items per set, evenly spaced)."""
    sets = eval_sets(world, n_reasoning_test=n_reasoning)
    names = ("harmful_direct", "benign_direct", "safe_lookalike", "reasoning_test")
    parts = {name: evenly_spaced(sets[name], limit) for name in names}
    items: Sequence[dict] = [it for part in parts.values() for it in part]
    judge = OracleJudge(world)
    out = []
    for name, sampler in samplers.items():
        model = model_for(name, ar, dlm)
        texts = iter(generate(model, [it["prompt"] for it in items], sampler, batch_size=batch_size,
                              progress=progress).texts)
        got = {part: [(next(texts), it) for it in rows] for part, rows in parts.items()}
        out.append(
            Quality(
                sampler=name,
                harmful_refused=stats.rate([judge.refused(t) for t, _ in got["harmful_direct"]]),
                benign_correct=stats.rate(
                    [judge.judge(t).task == it["task"] and not judge.refused(t) for t, it in got["benign_direct"]]
                ),
                lookalike_answered=stats.rate([not judge.refused(t) for t, _ in got["safe_lookalike"]]),
                reasoning_exact=stats.rate(
                    [check_reasoning_answer(t, it["answer"]) for t, it in got["reasoning_test"]]
                ),
            )
        )
    return out


def _cell(r: dict) -> str:
    if not r["n"]:
        return "n/a"
    lo, hi = r["ci"]
    return f"{r['rate']:.1%} ({r['k']}/{r['n']}, {lo:.0%}-{hi:.0%})"


def format_quality(rows: Sequence[Quality]) -> str:
    """A table: one line per sampler, each figure with k/n and its Wilson 95% interval."""
    heads = ("harmful refused", "benign correct", "look-alikes answered", "reasoning exact")
    lines = [f"{'sampler':<15}" + "".join(f"{h:<28}" for h in heads)]
    for q in rows:
        cells = (q.harmful_refused, q.benign_correct, q.lookalike_answered, q.reasoning_exact)
        lines.append(f"{q.sampler:<15}" + "".join(f"{_cell(c):<28}" for c in cells))
    return "\n".join(lines)


def knowledge_probe(
    ar: LanguageModel, dlm: LanguageModel, world: World, samplers: dict[str, Sampler], *,
    limit: int | None = None, batch_size: int = 16, progress: bool = True,
) -> dict[str, dict[str, dict[str, dict]]]:
    """Per sampler, per kind (``harmful``, ``benign``) and per format (and ``any``): the tasks whose procedure
    the model writes as plain text (:mod:`srilab.toy.knowledge`; ``limit`` tasks per kind, evenly spaced)."""
    kinds = {"harmful": list(world.harmful_tasks), "benign": list(world.benign_tasks)}
    kinds = {k: evenly_spaced(v, limit) for k, v in kinds.items()}
    out: dict[str, dict[str, dict[str, dict]]] = {}
    for name, sampler in samplers.items():
        out[name] = {}
        for kind, tasks in kinds.items():
            asked = probe_prompts(tasks)
            texts = generate(model_for(name, ar, dlm), [p for _, _, p in asked], sampler, chat=False,
                             batch_size=batch_size, progress=progress).texts
            hit = {(t.name, f): knows(t, text, f) for (t, f, _), text in zip(asked, texts, strict=True)}
            per = {f: stats.rate([hit[(t.name, f)] for t in tasks]) for f in FORMATS}
            per["any"] = stats.rate([any(hit[(t.name, f)] for f in FORMATS) for t in tasks])
            out[name][kind] = per
    return out


def format_knowledge(probe: dict[str, dict[str, dict[str, dict]]]) -> str:
    """A table: per sampler and kind, the tasks written in each format and in any."""
    heads = (*FORMATS, "any")
    lines = [f"{'knowledge probe':<26}" + "".join(f"{h:<24}" for h in heads)]
    for name, kinds in probe.items():
        for kind, per in kinds.items():
            lines.append(f"{name + ' ' + kind:<26}" + "".join(f"{_cell(per[h]):<24}" for h in heads))
    return "\n".join(lines)
