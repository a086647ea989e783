"""Turning the rows of a table into :class:`Record` objects, and the helpers the benchmark builders share.

A builder (:data:`RowFn`) maps one row's values to a record, or None when the row is filtered out; a
malformed row raises :class:`RowError`, which :func:`collect` turns into one error naming ``file:line``
(``on_error="raise"``) or a :class:`DataRowWarning` (``on_error="skip"``), never a silent skip.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, Literal

from srilab.data.readers import Row, Table
from srilab.data.records import Record
from srilab.errors import SrilabError

OnError = Literal["raise", "skip"]
RowFn = Callable[[dict[str, Any], int, int], Record | None]  # (values, row index, line) -> record, None if filtered


class DataRowWarning(UserWarning):
    """A malformed data row was skipped (``on_error="skip"``); the message names ``file:line``."""


class RowError(Exception):
    """A malformed row; the message says what is wrong with it (the caller adds file:line)."""


def collect(table: Table, row_fn: RowFn, limit: int | None, on_error: OnError) -> list[Record]:
    """Build the records of a table, raising or warning on malformed rows, stopping at ``limit``."""
    records: list[Record] = []
    first_line: dict[str, int] = {}
    if limit == 0:
        return records
    for index, row in enumerate(table.rows):
        try:
            record = build_record(row, row_fn, index)
            if record is None:
                continue  # filtered out by the split
            if record.id in first_line:
                raise RowError(f"duplicate id {record.id!r} (first on line {first_line[record.id]})")
        except RowError as e:
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


def build_record(row: Row, row_fn: RowFn, index: int) -> Record | None:
    if row.problem is not None or row.values is None:
        raise RowError(row.problem or "unreadable row")
    return row_fn(row.values, index, row.line)


def text(values: dict[str, Any], column: str | None) -> str:
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
    raise RowError(f"field {column!r} holds {type(value).__name__} data, expected text")


def required(values: dict[str, Any], column: str) -> str:
    value = text(values, column)
    if not value:
        raise RowError(f"empty prompt (column {column!r})")
    return value


def meta(line: int, values: dict[str, Any], used: Iterable[str | None], **named: Any) -> dict[str, Any]:
    """``line``, the named values that are set, then the row's other non-empty columns verbatim."""
    taken = {c for c in used if c is not None}
    meta: dict[str, Any] = {"line": line}
    meta.update({k: v for k, v in named.items() if v not in (None, "")})
    meta.update({k: v for k, v in values.items() if k not in taken and v not in (None, "")})
    return meta




def require_column(table: Table, key: str, *names: str) -> str:
    col = table.find_column(*names)
    if col is None:
        wanted = " or ".join(repr(n) for n in names)
        raise SrilabError(
            f"{table.path}: no column {wanted} for {key} (columns found: {table.columns_text()}): "
            f"rename the column to {names[0]!r}, or check that this is a {key} file"
        )
    return col
