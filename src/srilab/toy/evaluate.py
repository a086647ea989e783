"""Quality of a toy pair under the three samplers the study compares (what ``srilab toy eval`` prints).

* ``ar``: the AR model, greedy, ``gen_length`` new tokens;
* ``diffusion``: the diffusion model, LLaDA low-confidence remasking, semi-autoregressive blocks;
* ``diffusion-l2r``: the *same diffusion weights* sampled one token per step, left to right
  (``block_length=1``): the AR order on diffusion weights.

Figures: refusal of direct harmful requests (train phrasings), benign requests answered with the right
procedure (held-out phrasings; the oracle), and reasoning exact match (the capability cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.sampling.api import Sampler, SamplerConfig, generate
from srilab.toy.corpus import eval_sets
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
    sampler: str
    harmful_refused: float
    benign_correct: float
    reasoning_exact: float
    n_harmful: int
    n_benign: int
    n_reasoning: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


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
    """Greedy generations on the world's direct harmful, benign and reasoning sets under each sampler."""
    sets = eval_sets(world, n_reasoning_test=n_reasoning)
    harmful = sets["harmful_direct"][:limit]
    benign = sets["benign_direct"][:limit]
    reasoning = sets["reasoning_test"][:limit]
    judge = OracleJudge(world)
    out = []
    for name, sampler in samplers.items():
        model = model_for(name, ar, dlm)
        items: Sequence[dict] = [*harmful, *benign, *reasoning]
        gen = generate(model, [it["prompt"] for it in items], sampler, batch_size=batch_size, progress=progress)
        texts = gen.texts
        h = texts[: len(harmful)]
        b = texts[len(harmful) : len(harmful) + len(benign)]
        r = texts[len(harmful) + len(benign) :]
        refused = sum(judge.refused(t) for t in h)
        correct = sum(
            judge.judge(t).task == it["task"] and not judge.refused(t) for t, it in zip(b, benign, strict=True)
        )
        exact = sum(check_reasoning_answer(t, it["answer"]) for t, it in zip(r, reasoning, strict=True))
        out.append(
            Quality(
                sampler=name,
                harmful_refused=refused / max(1, len(h)),
                benign_correct=correct / max(1, len(b)),
                reasoning_exact=exact / max(1, len(r)),
                n_harmful=len(h),
                n_benign=len(b),
                n_reasoning=len(r),
            )
        )
    return out


def format_quality(rows: Sequence[Quality]) -> str:
    lines = [f"{'sampler':<15}{'harmful refused':>17}{'benign correct':>16}{'reasoning exact':>17}"]
    for q in rows:
        lines.append(
            f"{q.sampler:<15}{q.harmful_refused:>16.1%} {q.benign_correct:>15.1%} {q.reasoning_exact:>16.1%}"
        )
    return "\n".join(lines)
