"""Loaders for the safety benchmarks, from a local file or the dataset hub, each row a :class:`Record`.

``load_dataset(name, path)`` reads one of :data:`DATASETS` from a local file (CSV, JSON, JSONL,
one-per-line text; Parquet if pyarrow is installed); with ``path=None`` it downloads the benchmark's file
from the hub with ``huggingface_hub.hf_hub_download`` (no ``datasets`` dependency), unless
``HF_HUB_OFFLINE=1``. ``load_prompts(path)`` reads any such file of prompts.

Column names are matched case-insensitively and accept the names of both the upstream files and the
hub copies (e.g. AdvBench's ``goal`` or ``prompt``). A missing required column, an unknown dataset or
extension, a missing file: each raises :class:`~srilab.errors.SrilabError` with one line naming the
problem and the fix. A malformed row (empty prompt, wrong number of CSV fields, invalid JSON line,
duplicate id) raises a ``SrilabError`` naming ``file:line`` with ``on_error="raise"``; with
``on_error="skip"`` it is skipped with a :class:`DataRowWarning` naming ``file:line``, never silently.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from srilab.data.readers import Row, Table, check_file, read_table
from srilab.data.records import Record
from srilab.errors import SrilabError

OnError = Literal["raise", "skip"]


class DataRowWarning(UserWarning):
    """A malformed data row was skipped (``on_error="skip"``); the message names ``file:line``."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a benchmark is and where it comes from."""

    name: str
    description: str
    citation: str
    url: str
    splits: tuple[str, ...] = ()  # the values ``split`` accepts (besides None)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "advbench",
            "520 harmful behaviors (CSV columns goal, target), each with an affirmative target string.",
            "Zou et al. 2023, 'Universal and Transferable Adversarial Attacks on Aligned Language Models', "
            "arXiv:2307.15043",
            "https://github.com/llm-attacks/llm-attacks/blob/main/data/advbench/harmful_behaviors.csv",
        ),
        DatasetInfo(
            "harmbench",
            "HarmBench text behaviors (CSV columns Behavior, FunctionalCategory, SemanticCategory, Tags, "
            "ContextString, BehaviorID) or one behavior per line; split by functional category.",
            "Mazeika et al. 2024, 'HarmBench: A Standardized Evaluation Framework for Automated Red Teaming "
            "and Robust Refusal', arXiv:2402.04249",
            "https://github.com/centerforaisafety/HarmBench/tree/main/data/behavior_datasets",
            ("standard", "contextual", "copyright"),
        ),
        DatasetInfo(
            "jailbreakbench",
            "JBB-Behaviors: 100 harmful and 100 matched benign behaviors (CSV columns Goal, Target, Behavior, "
            "Category, Source).",
            "Chao et al. 2024, 'JailbreakBench: An Open Robustness Benchmark for Jailbreaking Large Language "
            "Models', arXiv:2404.01318",
            "https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors",
            ("harmful", "benign"),
        ),
        DatasetInfo(
            "strongreject",
            "313 forbidden prompts in 6 categories (CSV columns category, source, forbidden_prompt).",
            "Souly et al. 2024, 'A StrongREJECT for Empty Jailbreaks', arXiv:2402.10260",
            "https://github.com/alexandrasouly/strongreject",
        ),
        DatasetInfo(
            "xstest",
            "250 safe prompts that resemble unsafe ones and 200 unsafe contrast prompts, for exaggerated "
            "safety (CSV columns id, prompt, type, label).",
            "Röttger et al. 2024, 'XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in Large "
            "Language Models', NAACL 2024, arXiv:2308.01263",
            "https://github.com/paul-rottger/xstest",
            ("safe", "unsafe"),
        ),
        DatasetInfo(
            "alpaca",
            "52K benign instructions (JSON list of {instruction, input, output}); the benign reference set.",
            "Taori et al. 2023, 'Stanford Alpaca: An Instruction-following LLaMA model'",
            "https://github.com/tatsu-lab/stanford_alpaca",
        ),
    )
}

# The hub dataset each benchmark is downloaded from when ``path`` is None, and the file for each split
# (None: the file used without a split). The walledai copies are Parquet and need pyarrow to be read.
DEFAULT_HUB_IDS: dict[str, str] = {
    "advbench": "walledai/AdvBench",
    "harmbench": "walledai/HarmBench",
    "jailbreakbench": "JailbreakBench/JBB-Behaviors",
    "strongreject": "walledai/StrongREJECT",
    "xstest": "walledai/XSTest",
    "alpaca": "tatsu-lab/alpaca",
}
HUB_FILES: dict[str, dict[str | None, str]] = {
    "advbench": {None: "data/train-00000-of-00001.parquet"},
    "harmbench": {
        None: "standard/train-00000-of-00001.parquet",
        "standard": "standard/train-00000-of-00001.parquet",
        "contextual": "contextual/train-00000-of-00001.parquet",
        "copyright": "copyright/train-00000-of-00001.parquet",
    },
    "jailbreakbench": {
        None: "data/harmful-behaviors.csv",
        "harmful": "data/harmful-behaviors.csv",
        "benign": "data/benign-behaviors.csv",
    },
    "strongreject": {None: "data/train-00000-of-00001.parquet"},
    "xstest": {None: "data/train-00000-of-00001.parquet"},
    "alpaca": {None: "alpaca_data.json"},
}
# Datasets whose hub copy has one file per split: a file downloaded for a split holds only that split.
_SPLIT_FILES = {"harmbench": "standard", "jailbreakbench": "harmful"}

# Column names load_prompts tries, in order, when no column is given.
PROMPT_COLUMNS: tuple[str, ...] = (
    "prompt", "goal", "behavior", "forbidden_prompt", "instruction", "question", "query", "request", "text",
)

RowFn = Callable[[dict[str, Any], int, int], Record | None]  # (values, row index, line) -> record, None if filtered


class _RowError(Exception):
    """A malformed row; the message says what is wrong with it (the caller adds file:line)."""


# ------------------------------------------------------------------------------------------------ public API
def load_dataset(
    name: str,
    path: str | Path | None = None,
    *,
    split: str | None = None,
    limit: int | None = None,
    on_error: OnError = "raise",
    hub_id: str | None = None,
) -> list[Record]:
    """Load a safety benchmark as a list of records.

    Args:
        name: one of :data:`DATASETS` (case, ``-`` and ``_`` ignored: ``"JailbreakBench"`` works).
        path: a local ``.csv``, ``.json``, ``.jsonl`` or ``.txt`` file (``.parquet`` with pyarrow). None:
            download the benchmark from the hub (``hub_id`` or :data:`DEFAULT_HUB_IDS`), which needs
            ``HF_HUB_OFFLINE`` unset.
        split: ``harmbench``: ``"standard"``, ``"contextual"`` or ``"copyright"`` (filters on the
            FunctionalCategory column; from the hub, None means ``"standard"``); ``jailbreakbench``:
            ``"harmful"`` or ``"benign"`` (labels the records and, from the hub, picks the file; for a
            local file None is read from the file name, else ``"harmful"``); ``xstest``: ``"safe"`` or
            ``"unsafe"`` (filters on the label). The other datasets have no splits.
        limit: keep the first ``limit`` records (after the split filter).
        on_error: a malformed row raises (``"raise"``) or is skipped with a :class:`DataRowWarning`
            naming ``file:line`` (``"skip"``).
        hub_id: the hub dataset to download from instead of the default, as ``"owner/name"`` (same file
            layout as the default) or ``"owner/name:path/in/repo.csv"``. Only with ``path=None``.

    Returns:
        The records, in file order.

    Raises:
        SrilabError: an unknown name or split, a missing or unreadable file, a missing column, the hub
            offline, or (with ``on_error="raise"``) a malformed row.
    """
    key = _dataset_key(name)
    split = _check_split(key, split)
    _check_options(limit, on_error)
    implied = False
    if path is None:
        file = _download(key, split, hub_id)
        implied = key in _SPLIT_FILES and (hub_id is None or ":" not in hub_id)
        if implied and split is None:
            split = _SPLIT_FILES[key]
    else:
        if hub_id is not None:
            raise SrilabError(f"both path and hub_id given for {key}: pass a local path or a hub_id, not both")
        file = check_file(path, hint=f", or pass path=None to download {key} from the hub")
    table = read_table(file)
    row_fn = _BUILDERS[key](table, split, implied)
    return _collect(table, row_fn, limit, on_error)


def load_prompts(
    path: str | Path,
    column: str | None = None,
    *,
    limit: int | None = None,
    on_error: OnError = "raise",
) -> list[Record]:
    """Load a file of prompts (``.csv``, ``.json``, ``.jsonl``, one-per-line ``.txt``) as records.

    Args:
        path: the file.
        column: the column (CSV) or field (JSON/JSONL) holding the prompt. None: the first of
            :data:`PROMPT_COLUMNS` present, or the only column. Ignored for ``.txt`` files (each line is
            a prompt); JSON items that are plain strings are read as the column ``prompt``.
        limit: keep the first ``limit`` records.
        on_error: ``"raise"`` or ``"skip"`` a malformed row (with a :class:`DataRowWarning`).

    Returns:
        One record per row: ``dataset`` is the file stem; ``id`` is ``<stem>-<id column>`` if the file has
        an ``id`` column, else ``<stem>-<row>``; ``category``, ``target`` and ``label`` are taken from
        columns of those names when present; the other columns go to ``meta``.
    """
    _check_options(limit, on_error)
    table = read_table(check_file(path))
    if column is not None and table.format != "txt":
        col = table.find_column(column)
        if col is None:
            raise SrilabError(
                f"{table.path}: no column {column!r} (columns found: {table.columns_text()}): pass one of them "
                "as column="
            )
    else:
        col = table.find_column(*PROMPT_COLUMNS)
        if col is None and len(table.columns) == 1:
            col = table.columns[0]
        if col is None:
            raise SrilabError(
                f"{table.path}: cannot tell which column holds the prompt (columns found: "
                f"{table.columns_text()}): pass column="
            )
    stem = table.path.stem
    id_col, cat_col = table.find_column("id"), table.find_column("category")
    target_col, label_col = table.find_column("target"), table.find_column("label")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        prompt = _required(values, col)
        own = _text(values, id_col)
        return Record(
            id=f"{stem}-{own or index}",
            prompt=prompt,
            dataset=stem,
            category=_text(values, cat_col) or None,
            target=_text(values, target_col) or None,
            label=_text(values, label_col) or None,
            meta=_meta(line, values, (col, id_col, cat_col, target_col, label_col)),
        )

    return _collect(table, row_fn, limit, on_error)


# ------------------------------------------------------------------------------------------------ checks
def _dataset_key(name: str) -> str:
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise SrilabError(f"unknown dataset {name!r}: use one of {', '.join(sorted(DATASETS))}")
    return key


def _check_split(key: str, split: str | None) -> str | None:
    if split is None:
        return None
    splits = DATASETS[key].splits
    norm = str(split).strip().lower()
    if not splits:
        raise SrilabError(f"{key} has no splits, got split={split!r}: drop split")
    if norm not in splits:
        raise SrilabError(f"{key} has no split {split!r}: use one of {', '.join(splits)}, or None")
    return norm


def _check_options(limit: int | None, on_error: str) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise SrilabError(f"limit must be a whole number >= 0 or None, got {limit!r}: fix limit")
    if on_error not in ("raise", "skip"):
        raise SrilabError(f"on_error must be 'raise' or 'skip', got {on_error!r}: fix on_error")


def _require_column(table: Table, key: str, *names: str) -> str:
    col = table.find_column(*names)
    if col is None:
        wanted = " or ".join(repr(n) for n in names)
        raise SrilabError(
            f"{table.path}: no column {wanted} for {key} (columns found: {table.columns_text()}): "
            f"rename the column to {names[0]!r}, or check that this is a {key} file"
        )
    return col


# ------------------------------------------------------------------------------------------------ hub
def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _download(key: str, split: str | None, hub_id: str | None) -> Path:
    """Download the benchmark's file from the hub (or raise if the hub is offline); the local cached path."""
    if hub_id is not None and ":" in hub_id:
        repo_id, filename = (part.strip() for part in hub_id.split(":", 1))
    else:
        files = HUB_FILES[key]
        repo_id, filename = hub_id or DEFAULT_HUB_IDS[key], files.get(split, files[None])
    if not repo_id or not filename:
        raise SrilabError(f"hub_id {hub_id!r} is incomplete: use 'owner/name' or 'owner/name:path/in/repo.csv'")
    if _hub_offline():
        raise SrilabError(
            f"cannot download {key} from the hub ({repo_id}, {filename}): the hub is offline (HF_HUB_OFFLINE=1): "
            f"pass a local file path, e.g. load_dataset({key!r}, 'path/to/file.csv')"
        )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise SrilabError(
            f"downloading {key} needs huggingface_hub, which is not installed: pip install huggingface_hub, "
            "or pass a local file path"
        ) from None
    try:
        local = hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset")
    except Exception as e:  # network, authentication, or a missing repo or file
        text = str(e).strip()
        reason = f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
        raise SrilabError(
            f"could not download {filename} from the hub dataset {repo_id} ({reason}): check the connection "
            "and hub_id, or pass a local file path"
        ) from e
    return Path(local)


# ------------------------------------------------------------------------------------------------ rows
def _collect(table: Table, row_fn: RowFn, limit: int | None, on_error: OnError) -> list[Record]:
    """Build the records of a table, raising or warning on malformed rows, stopping at ``limit``."""
    records: list[Record] = []
    first_line: dict[str, int] = {}
    if limit == 0:
        return records
    for index, row in enumerate(table.rows):
        try:
            record = _build(row, row_fn, index)
            if record is None:
                continue  # filtered out by the split
            if record.id in first_line:
                raise _RowError(f"duplicate id {record.id!r} (first on line {first_line[record.id]})")
        except _RowError as e:
            where = f"{table.where(row)}: {e}"
            if on_error == "raise":
                raise SrilabError(f"{where}: fix or delete the row, or pass on_error='skip' to skip it") from None
            warnings.warn(f"{where}: row skipped", DataRowWarning, stacklevel=3)
            continue
        first_line[record.id] = row.line
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    return records


def _build(row: Row, row_fn: RowFn, index: int) -> Record | None:
    if row.problem is not None or row.values is None:
        raise _RowError(row.problem or "unreadable row")
    return row_fn(row.values, index, row.line)


def _text(values: dict[str, Any], column: str | None) -> str:
    """The stripped text of a field ('' if the column is absent or the value empty)."""
    if column is None:
        return ""
    value = values.get(column)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)):
        return str(value)
    raise _RowError(f"field {column!r} holds {type(value).__name__} data, expected text")


def _required(values: dict[str, Any], column: str) -> str:
    text = _text(values, column)
    if not text:
        raise _RowError(f"empty prompt (column {column!r})")
    return text


def _meta(line: int, values: dict[str, Any], used: Iterable[str | None], **named: Any) -> dict[str, Any]:
    """``line``, the named values that are set, then the row's other non-empty columns verbatim."""
    taken = {c for c in used if c is not None}
    meta: dict[str, Any] = {"line": line}
    meta.update({k: v for k, v in named.items() if v not in (None, "")})
    meta.update({k: v for k, v in values.items() if k not in taken and v not in (None, "")})
    return meta


# ------------------------------------------------------------------------------------------------ datasets
def _advbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = _require_column(table, "advbench", "goal", "prompt")
    target_col = table.find_column("target")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"advbench-{index}",
            prompt=_required(values, prompt_col),
            dataset="advbench",
            target=_text(values, target_col) or None,
            label="harmful",
            meta=_meta(line, values, (prompt_col, target_col)),
        )

    return row_fn


def _harmbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = _require_column(table, "harmbench", "Behavior", "prompt")
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
        behavior = _required(values, prompt_col)
        functional = _text(values, fc_col).lower() or (split if implied else "")
        if split is not None and not implied and functional != split:
            return None
        context = _text(values, ctx_col)
        return Record(
            id=_text(values, id_col) or f"harmbench-{index}",
            prompt=f"{context}\n\n---\n\n{behavior}" if context else behavior,  # HarmBench's contextual format
            dataset="harmbench",
            category=_text(values, cat_col) or None,
            label="harmful",
            meta=_meta(
                line, values, (prompt_col, fc_col, cat_col, tags_col, ctx_col, id_col),
                behavior=behavior if context else None, context=context, functional_category=functional,
                tags=_text(values, tags_col),
            ),
        )

    return row_fn


def _jailbreakbench(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = _require_column(table, "jailbreakbench", "Goal", "prompt")
    target_col = table.find_column("Target")
    behavior_col = table.find_column("Behavior")
    cat_col = table.find_column("Category")
    source_col = table.find_column("Source")
    index_col = table.find_column("Index")
    label = split or _split_from_name(table.path.name, ("harmful", "benign")) or "harmful"

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"jailbreakbench-{label}-{_text(values, index_col) or index}",
            prompt=_required(values, prompt_col),
            dataset="jailbreakbench",
            category=_text(values, cat_col) or None,
            target=_text(values, target_col) or None,
            label=label,
            meta=_meta(
                line, values, (prompt_col, target_col, behavior_col, cat_col, source_col, index_col),
                behavior=_text(values, behavior_col), source=_text(values, source_col),
            ),
        )

    return row_fn


def _split_from_name(filename: str, splits: tuple[str, ...]) -> str | None:
    """The one split named in a file name (``benign-behaviors.csv`` -> ``benign``), else None."""
    found = [s for s in splits if s in filename.lower()]
    return found[0] if len(found) == 1 else None


def _strongreject(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = _require_column(table, "strongreject", "forbidden_prompt", "prompt")
    cat_col = table.find_column("category")
    source_col = table.find_column("source")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        return Record(
            id=f"strongreject-{index}",
            prompt=_required(values, prompt_col),
            dataset="strongreject",
            category=_text(values, cat_col) or None,
            label="harmful",
            meta=_meta(line, values, (prompt_col, cat_col, source_col), source=_text(values, source_col)),
        )

    return row_fn


def _xstest(table: Table, split: str | None, implied: bool) -> RowFn:
    prompt_col = _require_column(table, "xstest", "prompt")
    label_col = table.find_column("label")
    type_col = table.find_column("type")
    id_col = table.find_column("id", "id_v2")
    if label_col is None and type_col is None:
        _require_column(table, "xstest", "label", "type")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record | None:
        prompt = _required(values, prompt_col)
        kind = _text(values, type_col)
        label = _text(values, label_col).lower()
        if label and label not in ("safe", "unsafe"):
            raise _RowError(f"label {label!r} is neither 'safe' nor 'unsafe'")
        if not label:
            if not kind:
                raise _RowError("empty label and type: cannot tell a safe prompt from an unsafe one")
            label = "unsafe" if kind.startswith("contrast_") else "safe"
        if split is not None and label != split:
            return None
        return Record(
            id=f"xstest-{_text(values, id_col) or index}",
            prompt=prompt,
            dataset="xstest",
            category=kind or None,
            label=label,
            meta=_meta(line, values, (prompt_col, label_col, type_col, id_col)),
        )

    return row_fn


def _alpaca(table: Table, split: str | None, implied: bool) -> RowFn:
    instruction_col = _require_column(table, "alpaca", "instruction", "prompt")
    input_col = table.find_column("input")
    output_col = table.find_column("output")

    def row_fn(values: dict[str, Any], index: int, line: int) -> Record:
        instruction = _required(values, instruction_col)
        extra = _text(values, input_col)
        return Record(
            id=f"alpaca-{index}",
            prompt=f"{instruction}\n\n{extra}" if extra else instruction,
            dataset="alpaca",
            label="benign",
            meta=_meta(
                line, values, (instruction_col, input_col, output_col),
                input=extra, output=_text(values, output_col),
            ),
        )

    return row_fn


_BUILDERS: dict[str, Callable[[Table, str | None, bool], RowFn]] = {
    "advbench": _advbench,
    "harmbench": _harmbench,
    "jailbreakbench": _jailbreakbench,
    "strongreject": _strongreject,
    "xstest": _xstest,
    "alpaca": _alpaca,
}
