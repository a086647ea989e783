"""Loaders for the safety benchmarks, each row a typed :class:`Record`.

AdvBench, HarmBench, JailbreakBench, StrongREJECT, XSTest and Alpaca, from a local file (CSV / JSON /
JSONL / one-per-line text) or the dataset hub; :data:`DATASETS` (a registry) describes each and cites its source.

    from srilab.data import load_dataset, load_prompts

    behaviors = load_dataset("harmbench", "harmbench_prompts.txt", limit=50)
    xstest_safe = load_dataset("xstest", "xstest_prompts.csv", split="safe")
    mine = load_prompts("prompts.jsonl", column="question")
"""

from srilab.data.benchmarks import DATASETS, DatasetInfo, add_dataset
from srilab.data.loaders import load_dataset, load_prompts
from srilab.data.records import Record
from srilab.data.rows import DataRowWarning

__all__ = [
    "DATASETS",
    "DataRowWarning",
    "DatasetInfo",
    "Record",
    "add_dataset",
    "load_dataset",
    "load_prompts",
]
