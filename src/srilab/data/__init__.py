"""Loaders for the safety benchmarks, each row a typed :class:`Record`.

AdvBench, HarmBench, JailbreakBench, StrongREJECT, XSTest and Alpaca, from a local file (CSV / JSON /
JSONL / one-per-line text) or the dataset hub; :data:`DATASETS` describes each and cites its source.

    from srilab.data import load_dataset, load_prompts

    behaviors = load_dataset("harmbench", "harmbench_prompts.txt", limit=50)
    xstest_safe = load_dataset("xstest", "xstest_prompts.csv", split="safe")
    mine = load_prompts("prompts.jsonl", column="question")
"""

from srilab.data.loaders import (
    DATASETS,
    DEFAULT_HUB_IDS,
    HUB_FILES,
    DataRowWarning,
    DatasetInfo,
    load_dataset,
    load_prompts,
)
from srilab.data.records import Record

__all__ = [
    "DATASETS",
    "DEFAULT_HUB_IDS",
    "HUB_FILES",
    "DataRowWarning",
    "DatasetInfo",
    "Record",
    "load_dataset",
    "load_prompts",
]
