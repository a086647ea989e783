"""The common interface of the baseline jailbreak defenses, their timing and their evaluation.

Every defense maps ``(requests, responses)`` to one float score per item, higher = more likely a jailbreak
or a harmful generation, so that all baselines (and the SRI guard) are compared with the same detection
metrics (AUROC, TPR at a fixed FPR; :mod:`srilab.stats`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from srilab.errors import SrilabError
from srilab.registry import Registry
from srilab.stats import auroc, tpr_at_fpr

__all__ = ["DEFENSES", "Defense", "DefenseScores", "evaluate_defense"]


@dataclass(frozen=True)
class DefenseScores:
    """Scores of one defense over a batch (float [N], higher = more likely harmful) and its wall time."""

    name: str
    scores: np.ndarray
    seconds: float

    def to_dict(self) -> dict:
        return {"name": self.name, "scores": self.scores.tolist(), "seconds": self.seconds}


class Defense(ABC):
    """A jailbreak defense: ``score(requests, responses)`` -> float [N], higher = more likely a jailbreak.

    ``needs_generation``: True when the defense can only act once a response exists (it reads the given
    responses, or generates its own); False for input filters that look at the request alone.
    ``run`` wraps ``score`` with validation and wall-clock timing (``time.perf_counter``).
    """

    name: str = "defense"
    needs_generation: bool = False

    def fit(self, benign_requests: Sequence[str], harmful_requests: Sequence[str]) -> Defense:
        """Calibrate on labelled requests; a no-op for defenses that need no calibration."""
        return self

    @abstractmethod
    def score(self, requests: Sequence[str], responses: Sequence[str] | None) -> np.ndarray:
        """One float per item, higher = more likely a jailbreak / harmful generation."""

    def run(self, requests: Sequence[str], responses: Sequence[str] | None = None) -> DefenseScores:
        """Score the batch and time it: a :class:`DefenseScores` with the scores and the wall time."""
        requests = as_texts(requests, "requests")
        if responses is not None:
            responses = self._require_responses(requests, responses)
        start = time.perf_counter()
        scores = np.asarray(self.score(requests, responses), dtype=np.float64)
        seconds = time.perf_counter() - start
        if scores.shape != (len(requests),):
            raise SrilabError(f"{self.name} returned scores of shape {scores.shape}, expected ({len(requests)},)")
        return DefenseScores(name=self.name, scores=scores, seconds=seconds)

    def _require_responses(self, requests: Sequence[str], responses: Sequence[str] | None) -> list[str]:
        if responses is None:
            raise SrilabError(f"{self.name} scores responses: pass one response per request")
        responses = as_texts(responses, "responses")
        if len(responses) != len(requests):
            raise SrilabError(
                f"{self.name}: {len(requests)} requests but {len(responses)} responses; "
                "pass one response per request"
            )
        return responses

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


#: Every baseline defense class by name (``srilab list defenses``).
DEFENSES: Registry[type[Defense]] = Registry("defenses")


def as_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise SrilabError(f"{what} must be a list of texts, got a single str; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise SrilabError(f"no {what} to score; pass at least one")
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise SrilabError(f"{what} must be str, got {bad[0]}; pass decoded text")
    return texts


def evaluate_defense(
    scores_pos: Sequence[float] | np.ndarray,
    scores_neg: Sequence[float] | np.ndarray,
    *,
    fpr_levels: Sequence[float] = (0.01, 0.05),
) -> dict[str, float]:
    """Detection metrics of a defense: ``auroc`` and ``tpr_at_{100 * fpr:g}pct_fpr`` for every FPR level.

    ``scores_pos``: scores of jailbreaks / harmful items; ``scores_neg``: scores of benign items. Flagged
    means ``score > threshold`` with the threshold chosen on the negatives (:func:`srilab.stats.tpr_at_fpr`).
    """
    out = {"auroc": auroc(scores_pos, scores_neg)}
    for fpr in fpr_levels:
        out[f"tpr_at_{100 * float(fpr):g}pct_fpr"] = tpr_at_fpr(scores_pos, scores_neg, fpr)
    return out


#: Arguments the study's defense phase passes itself (srilab.study.defense_phase.build_defense): not options.
_PASSED = ("self", "lm", "model", "reference", "sampler", "seed")


def defense_options(name: str) -> tuple[str, ...] | None:
    """The option keys the registered defense ``name`` takes: its class's keyword arguments (and ``reference``,
    the perplexity filter's reference model); None when it takes any (``**kwargs``)."""
    import inspect

    params = inspect.signature(DEFENSES.get(name).__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = tuple(p.name for p in params if p.name not in _PASSED and p.kind is not inspect.Parameter.VAR_POSITIONAL)
    return (*names, "reference") if name == "perplexity" else names
