"""srilab.defenses: baseline jailbreak defenses with one timed interface, for comparison with the SRI guard."""

from srilab.defenses.base import Defense, DefenseScores, evaluate_defense
from srilab.defenses.baselines import (
    OutputKeywordGuard,
    PerplexityFilter,
    RefusalDirectionProbe,
    SelfExamination,
    SmoothLLM,
)

#: Baseline name -> class.
BASELINES: dict[str, type[Defense]] = {
    "perplexity": PerplexityFilter,
    "self_examination": SelfExamination,
    "output_keyword": OutputKeywordGuard,
    "smoothllm": SmoothLLM,
    "refusal_direction": RefusalDirectionProbe,
}

__all__ = [
    "BASELINES",
    "Defense",
    "DefenseScores",
    "OutputKeywordGuard",
    "PerplexityFilter",
    "RefusalDirectionProbe",
    "SelfExamination",
    "SmoothLLM",
    "evaluate_defense",
]
