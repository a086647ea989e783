"""srilab.defenses: baseline jailbreak defenses with one timed interface, for comparison with the SRI guard."""

from srilab.defenses import diffuguard, dllm  # noqa: F401  (register diffuguard, early_rejection, self_reminder)
from srilab.defenses.base import DEFENSES, Defense, DefenseScores, evaluate_defense
from srilab.defenses.baselines import (
    OutputKeywordGuard,
    PerplexityFilter,
    RefusalDirectionProbe,
    SelfExamination,
    SmoothLLM,
)

__all__ = [
    "DEFENSES",
    "Defense",
    "DefenseScores",
    "OutputKeywordGuard",
    "PerplexityFilter",
    "RefusalDirectionProbe",
    "SelfExamination",
    "SmoothLLM",
    "evaluate_defense",
]
