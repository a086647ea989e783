"""The benchmarks srilab reads, one registry entry each (``srilab list datasets``).

An entry's object is a :class:`DatasetInfo`: what the benchmark is, its citation and home, the splits it
accepts, the hub dataset and files it is downloaded from when no local file is given, and the builder that
turns a table of its rows into :class:`~srilab.data.records.Record` objects. The walledai hub copies are
Parquet and need pyarrow to be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from srilab.data.readers import Table
from srilab.data.records import Record
from srilab.data.rows import RowError, RowFn, meta, require_column, required, text
from srilab.errors import SrilabError
from srilab.registry import Registry

Builder = Callable[[Table, "str | None", bool], RowFn]  # (table, split, split implied by the file) -> row builder


@dataclass(frozen=True)
class DatasetInfo:
    """What a benchmark is, where it comes from, and how its rows are read."""

    name: str
    description: str
    citation: str
    url: str
    splits: tuple[str, ...] = ()  # the values ``split`` accepts (besides None)
    hub_id: str = ""  # the hub dataset downloaded when no path is given
    hub_files: dict[str | None, str] = field(default_factory=dict)  # split -> its file (None: no split given)
    split_file: str | None = None  # the split a downloaded file holds, when the hub has one file per split
    builder: Builder | None = None


#: Every benchmark by name (``srilab list datasets``).
DATASETS: Registry[DatasetInfo] = Registry("datasets")


def add_dataset(info: DatasetInfo) -> DatasetInfo:
    """Register a benchmark (its citation is the registry's source, its description the summary)."""
    DATASETS.add(info.name, info, source=info.citation, summary=info.description)
    return info


def _split_from_name(filename: str, splits: tuple[str, ...]) -> str | None:
    """The one split named in a file name (``benign-behaviors.csv`` -> ``benign``), else None."""
    found = [s for s in splits if s in filename.lower()]
    return found[0] if len(found) == 1 else None


def _advbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = require_column(table, "advbench", "goal", "prompt")
    target_col = table.find_column("target")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"advbench-{index}",
            prompt=required(values, prompt_col),
            dataset="advbench",
            target=text(values, target_col) or None,
            label="harmful",
            meta=meta(line, values, (prompt_col, target_col)),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "advbench",
            "520 harmful behaviors (CSV columns goal, target), each with an affirmative target string.",
            "Zou et al. 2023, 'Universal and Transferable Adversarial Attacks on Aligned Language Models', "
            "arXiv:2307.15043",
            "https://github.com/llm-attacks/llm-attacks/blob/main/data/advbench/harmful_behaviors.csv",
        hub_id='walledai/AdvBench',
        hub_files={None: 'data/train-00000-of-00001.parquet'},
        builder=_advbench,
    )
)


def _harmbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = require_column(table, "harmbench", "Behavior", "prompt")
    fc_col = table.find_column("FunctionalCategory", "functional_category")
    cat_col = table.find_column("SemanticCategory", "semantic_category", "category")
    tags_col = table.find_column("Tags")
    ctx_col = table.find_column("ContextString", "context")
    id_col = table.find_column("BehaviorID", "behavior_id")
    if split is not None and not implied and fc_col is None:
        raise SrilabError(
            f"{table.path}: split={split!r} selects on the FunctionalCategory column, which this file lacks "
            f"(columns found: {table.columns_text()}): drop split, or pass the HarmBench behaviors CSV"
        )

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record | None:
        behavior = required(values, prompt_col)
        functional = text(values, fc_col).lower() or (split if implied else "")
        if split is not None and not implied and functional != split:
            return None
        context = text(values, ctx_col)
        return Record(
            id=text(values, id_col) or f"harmbench-{index}",
            prompt=f"{context}\n\n---\n\n{behavior}" if context else behavior,  # HarmBench's contextual format
            dataset="harmbench",
            category=text(values, cat_col) or None,
            label="harmful",
            meta=meta(
                line, values, (prompt_col, fc_col, cat_col, tags_col, ctx_col, id_col),
                behavior=behavior if context else None, context=context, functional_category=functional,
                tags=text(values, tags_col),
            ),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "harmbench",
            "HarmBench text behaviors (CSV columns Behavior, FunctionalCategory, SemanticCategory, Tags, "
            "ContextString, BehaviorID) or one behavior per line; split by functional category.",
            "Mazeika et al. 2024, 'HarmBench: A Standardized Evaluation Framework for Automated Red Teaming "
            "and Robust Refusal', arXiv:2402.04249",
            "https://github.com/centerforaisafety/HarmBench/tree/main/data/behavior_datasets",
            ("standard", "contextual", "copyright"),
        hub_id='walledai/HarmBench',
        hub_files={
            None: "standard/train-00000-of-00001.parquet",
            "standard": "standard/train-00000-of-00001.parquet",
            "contextual": "contextual/train-00000-of-00001.parquet",
            "copyright": "copyright/train-00000-of-00001.parquet",
        },
        split_file='standard',
        builder=_harmbench,
    )
)


def _jailbreakbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = require_column(table, "jailbreakbench", "Goal", "prompt")
    target_col = table.find_column("Target")
    behavior_col = table.find_column("Behavior")
    cat_col = table.find_column("Category")
    source_col = table.find_column("Source")
    index_col = table.find_column("Index")
    label = split or _split_from_name(table.path.name, ("harmful", "benign")) or "harmful"

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"jailbreakbench-{label}-{text(values, index_col) or index}",
            prompt=required(values, prompt_col),
            dataset="jailbreakbench",
            category=text(values, cat_col) or None,
            target=text(values, target_col) or None,
            label=label,
            meta=meta(
                line, values, (prompt_col, target_col, behavior_col, cat_col, source_col, index_col),
                behavior=text(values, behavior_col), source=text(values, source_col),
            ),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "jailbreakbench",
            "JBB-Behaviors: 100 harmful and 100 matched benign behaviors (CSV columns Goal, Target, Behavior, "
            "Category, Source).",
            "Chao et al. 2024, 'JailbreakBench: An Open Robustness Benchmark for Jailbreaking Large Language "
            "Models', arXiv:2404.01318",
            "https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors",
            ("harmful", "benign"),
        hub_id='JailbreakBench/JBB-Behaviors',
        hub_files={
            None: "data/harmful-behaviors.csv",
            "harmful": "data/harmful-behaviors.csv",
            "benign": "data/benign-behaviors.csv",
        },
        split_file='harmful',
        builder=_jailbreakbench,
    )
)


def _strongreject(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = require_column(table, "strongreject", "forbidden_prompt", "prompt")
    cat_col = table.find_column("category")
    source_col = table.find_column("source")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"strongreject-{index}",
            prompt=required(values, prompt_col),
            dataset="strongreject",
            category=text(values, cat_col) or None,
            label="harmful",
            meta=meta(line, values, (prompt_col, cat_col, source_col), source=text(values, source_col)),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "strongreject",
            "313 forbidden prompts in 6 categories (CSV columns category, source, forbidden_prompt).",
            "Souly et al. 2024, 'A StrongREJECT for Empty Jailbreaks', arXiv:2402.10260",
            "https://github.com/alexandrasouly/strongreject",
        hub_id='walledai/StrongREJECT',
        hub_files={None: 'data/train-00000-of-00001.parquet'},
        builder=_strongreject,
    )
)


def _xstest(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = require_column(table, "xstest", "prompt")
    label_col = table.find_column("label")
    type_col = table.find_column("type")
    id_col = table.find_column("id", "id_v2")
    if label_col is None and type_col is None:
        require_column(table, "xstest", "label", "type")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record | None:
        prompt = required(values, prompt_col)
        kind = text(values, type_col)
        label = text(values, label_col).lower()
        if label and label not in ("safe", "unsafe"):
            raise RowError(f"label {label!r} is neither 'safe' nor 'unsafe'")
        if not label:
            if not kind:
                raise RowError("empty label and type: cannot tell a safe prompt from an unsafe one")
            label = "unsafe" if kind.startswith("contrast_") else "safe"
        if split is not None and label != split:
            return None
        return Record(
            id=f"xstest-{text(values, id_col) or index}",
            prompt=prompt,
            dataset="xstest",
            category=kind or None,
            label=label,
            meta=meta(line, values, (prompt_col, label_col, type_col, id_col)),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "xstest",
            "250 safe prompts that resemble unsafe ones and 200 unsafe contrast prompts, for exaggerated "
            "safety (CSV columns id, prompt, type, label).",
            "Röttger et al. 2024, 'XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in Large "
            "Language Models', NAACL 2024, arXiv:2308.01263",
            "https://github.com/paul-rottger/xstest",
            ("safe", "unsafe"),
        hub_id='walledai/XSTest',
        hub_files={None: 'data/train-00000-of-00001.parquet'},
        builder=_xstest,
    )
)


def _alpaca(table: Table, split: str | None, implied: bool) -> RowFn:
    instruction_col = require_column(table, "alpaca", "instruction", "prompt")
    input_col = table.find_column("input")
    output_col = table.find_column("output")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        instruction = required(values, instruction_col)
        extra = text(values, input_col)
        return Record(
            id=f"alpaca-{index}",
            prompt=f"{instruction}\n\n{extra}" if extra else instruction,
            dataset="alpaca",
            label="benign",
            meta=meta(
                line, values, (instruction_col, input_col, output_col),
                input=extra, output=text(values, output_col),
            ),
        )

    return row_fn


add_dataset(
    DatasetInfo(
            "alpaca",
            "52K benign instructions (JSON list of {instruction, input, output}); the benign reference set.",
            "Taori et al. 2023, 'Stanford Alpaca: An Instruction-following LLaMA model'",
            "https://github.com/tatsu-lab/stanford_alpaca",
        hub_id='tatsu-lab/alpaca',
        hub_files={None: 'alpaca_data.json'},
        builder=_alpaca,
    )
)
