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
from pathlib import Path
from typing import Any

from srilab.checks import expect_text
from srilab.data.benchmarks import DATASETS
from srilab.data.readers import check_file, read_table
from srilab.data.records import Record
from srilab.data.rows import OnError, collect, meta, required, text
from srilab.errors import SrilabError

# Column names load_prompts tries, in order, when no column is given.
PROMPT_COLUMNS: tuple[str, ...] = (
    "prompt", "goal", "behavior", "forbidden_prompt", "instruction", "question", "query", "request", "text",
)

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
            download the benchmark from the hub (``hub_id`` or the registry entry's ``hub_id``), which needs
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
    info = DATASETS.get(key)
    split = _check_split(key, split)
    _check_options(limit, on_error)
    if hub_id is not None:
        expect_text(hub_id, "hub_id")
    implied = False
    if path is None:
        file = _download(key, split, hub_id)
        implied = info.split_file is not None and (hub_id is None or ":" not in hub_id)
        if implied and split is None:
            split = info.split_file
    else:
        if hub_id is not None:
            raise SrilabError(f"both path and hub_id given for {key}: pass a local path or a hub_id, not both")
        file = check_file(path, hint=f", or pass path=None to download {key} from the hub")
    table = read_table(file)
    row_fn = info.builder(table, split, implied)
    return collect(table, row_fn, limit, on_error)


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
    if column is not None:
        expect_text(column, "column")
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
        prompt = required(values, col)
        own = text(values, id_col)
        return Record(
            id=f"{stem}-{own or index}",
            prompt=prompt,
            dataset=stem,
            category=text(values, cat_col) or None,
            target=text(values, target_col) or None,
            label=text(values, label_col) or None,
            meta=meta(line, values, (col, id_col, cat_col, target_col, label_col)),
        )

    return collect(table, row_fn, limit, on_error)


# ------------------------------------------------------------------------------------------------ checks
def _dataset_key(name: str) -> str:
    expect_text(name, "the dataset name")
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise SrilabError(f"unknown dataset {name!r}: use one of {', '.join(sorted(DATASETS))}")
    return key


def _check_split(key: str, split: str | None) -> str | None:
    if split is None:
        return None
    expect_text(split, "split")
    splits = DATASETS.get(key).splits
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


# ------------------------------------------------------------------------------------------------ hub
def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _download(key: str, split: str | None, hub_id: str | None) -> Path:
    """Download the benchmark's file from the hub (or raise if the hub is offline); the local cached path."""
    if hub_id is not None and ":" in hub_id:
        repo_id, filename = (part.strip() for part in hub_id.split(":", 1))
    else:
        info = DATASETS.get(key)
        repo_id, filename = hub_id or info.hub_id, info.hub_files.get(split, info.hub_files[None])
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
        detail = str(e).strip()
        reason = f"{type(e).__name__}: {detail.splitlines()[0]}" if detail else type(e).__name__
        raise SrilabError(
            f"could not download {filename} from the hub dataset {repo_id} ({reason}): check the connection "
            "and hub_id, or pass a local file path"
        ) from e
    return Path(local)
