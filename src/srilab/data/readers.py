"""Readers for the file formats the loaders accept, each turning a file into a :class:`Table` of rows.

Formats, chosen by the file extension:

- ``.csv``: a header row, then one row per record (quoted fields may span lines);
- ``.json``: a list of objects (or of strings, each a prompt);
- ``.jsonl``: one object (or string) per line;
- ``.txt``: one prompt per line, blank lines ignored; each line becomes the column ``prompt``;
- ``.parquet``: read with ``pyarrow`` when it is installed (the hub's copies of several benchmarks are
  Parquet); ``pyarrow`` is not a dependency of srilab.

Every row keeps the 1-based line where it starts (for Parquet, its 1-based row number) so that a
malformed row can be reported as ``file:line``. A row that cannot be read (wrong number of CSV fields, a
quote that is never closed or is followed by text, a JSONL line that is not valid JSON, a JSON item that is not
an object, an object with a key written twice, text that is not valid Unicode -- a ``"\ud800"`` escape makes a
lone surrogate that no file can hold --, or nesting deeper than :data:`srilab.checks.MAX_DEPTH`) is kept as a
:class:`Row` with a ``problem`` instead of values: the loaders decide whether to raise or to skip it with a
warning. Problems with the whole file (missing, empty, not UTF-8, a ``.json`` file that is not a JSON list, a
CSV header naming a column twice) raise :class:`~srilab.errors.SrilabError` at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srilab.checks import MAX_DEPTH, text_problem, walk
from srilab.errors import SrilabError

EXTENSIONS: tuple[str, ...] = (".csv", ".json", ".jsonl", ".txt", ".parquet")
TEXT_COLUMN = "prompt"  # the column each line of a one-per-line text file (or each JSON string) becomes

_JSON_WS = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True)
class Row:
    """One data row of a file: where it starts, and its values or the reason it could not be read."""

    line: int
    values: dict[str, Any] | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Table:
    """A file read into rows, with the columns found in it (in file order)."""

    path: Path
    format: str  # "csv" | "json" | "jsonl" | "txt" | "parquet"
    columns: tuple[str, ...]
    rows: tuple[Row, ...]

    def where(self, row: Row) -> str:
        """``file:line`` of a row (``file:row N`` for Parquet, which has no lines)."""
        return f"{self.path}:row {row.line}" if self.format == "parquet" else f"{self.path}:{row.line}"

    def find_column(self, *names: str) -> str | None:
        """The first column matching one of ``names`` (compared case-insensitively), or None."""
        by_lower = {c.lower(): c for c in reversed(self.columns)}
        for name in names:
            if name in self.columns:
                return name
            if name.lower() in by_lower:
                return by_lower[name.lower()]
        return None

    def columns_text(self) -> str:
        """The columns found, for error messages."""
        return ", ".join(repr(c) for c in self.columns) if self.columns else "none"


def check_file(path: str | Path, *, hint: str = "") -> Path:
    """The path as a :class:`Path` after checking that it is an existing file with a known extension."""
    if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
        raise SrilabError(f"a data file path must be a str or Path, got {type(path).__name__}")
    if not str(path).strip() or "\x00" in str(path):
        raise SrilabError(f"the data file path {str(path)!r:.60} is empty or holds a NUL character: pass the path of "
                          "a .csv, .json, .jsonl or .txt file")
    p = Path(path).expanduser()
    if not p.exists():
        raise SrilabError(f"{p}: file not found: check the path{hint}")
    if p.is_dir():
        raise SrilabError(f"{p} is a directory: pass the data file inside it ({_extensions_text()})")
    suffix = p.suffix.lower()
    if suffix not in EXTENSIONS:
        what = f"unknown file extension {suffix!r}" if suffix else "no file extension"
        raise SrilabError(f"{p}: {what}: rename or convert the file to one of {_extensions_text()}")
    return p


def read_table(path: str | Path) -> Table:
    """Read a data file into a :class:`Table`; the format follows the extension (see the module docstring)."""
    p = check_file(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt == "parquet":
        table = _read_parquet(p)
    else:
        text = _read_text(p)
        if not text.strip():
            raise SrilabError(f"{p} is empty: pass a file with at least one row")
        reader = {"csv": _read_csv, "json": _read_json, "jsonl": _read_jsonl, "txt": _read_txt}[fmt]
        table = reader(p, text)
    if not table.rows:
        raise SrilabError(f"{p} has no data rows (columns found: {table.columns_text()}): add at least one row")
    if all(r.problem is not None for r in table.rows):  # no readable row: its problem, not "no columns"
        first = table.rows[0]
        raise SrilabError(f"{table.where(first)}: {first.problem}: no row of the file can be read; fix the file")
    return table


# ------------------------------------------------------------------------------------------------ formats
def _extensions_text() -> str:
    return ", ".join(EXTENSIONS[:-1]) + f" (or {EXTENSIONS[-1]} with pyarrow installed)"


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SrilabError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}): re-save the file as UTF-8") from None
    except OSError as e:
        raise SrilabError(f"{p}: cannot read the file ({e.strerror}): check its permissions") from None


def _read_txt(p: Path, text: str) -> Table:
    rows = [Row(i + 1, {TEXT_COLUMN: line.strip()}) for i, line in enumerate(text.split("\n")) if line.strip()]
    return Table(p, "txt", (TEXT_COLUMN,), tuple(rows))


def _read_csv(p: Path, text: str) -> Table:
    # strict: a quote followed by text, or one never closed, is an error (not rows merged into one field)
    reader = csv.reader(io.StringIO(text), strict=True)
    header: list[str] | None = None
    header_line = 0
    rows: list[Row] = []
    end = 0  # the last physical line consumed so far
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            end = reader.line_num
            why = str(e)
            if "unexpected end of data" in why:
                why = ("a quoted field opened in this row is never closed: every later line was read into it; "
                       'close the quote (write "" for a quote inside a quoted field)')
            elif "expected after" in why:
                why = f'{why}: a quote ends a quoted field only before a comma or the line end (write "" inside it)'
            if header is None:
                raise SrilabError(f"{p}:{start}: unreadable CSV header ({why}): fix the first row") from None
            rows.append(Row(start, problem=f"unreadable CSV ({why})"))
            continue
        end = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line is not a row
        if header is None:
            header, header_line = [f.strip() for f in fields], start
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise SrilabError(
                    f"{p}:{start}: the header names the column(s) {', '.join(map(repr, twice))} more than once (the "
                    "later would silently replace the earlier): rename them"
                )
            continue
        if len(fields) != len(header):
            rows.append(
                Row(start, problem=f"expected {len(header)} fields (as in the header on line {header_line}), "
                    f"found {len(fields)}: quote fields that contain commas")
            )
            continue
        rows.append(Row(start, dict(zip(header, fields, strict=True))))
    return Table(p, "csv", tuple(header or ()), tuple(rows))


def _item_row(line: int, item: Any) -> Row:
    """A JSON/JSONL item as a row: an object gives its fields, a string is a prompt, anything else is a problem
    (so is text that is not valid Unicode, or nesting deeper than MAX_DEPTH)."""
    if problem := _value_problem(item):
        return Row(line, problem=problem)
    if isinstance(item, dict):
        return Row(line, item)
    if isinstance(item, str):
        return Row(line, {TEXT_COLUMN: item})
    return Row(line, problem=f"expected a JSON object, found {_json_type(item)}")


def _value_problem(item: Any) -> str | None:
    """Text in ``item`` (values and keys) that is not valid Unicode, or nesting deeper than MAX_DEPTH."""
    try:
        for path, value in walk(item, max_depth=MAX_DEPTH):
            if isinstance(value, str) and (problem := text_problem(value)):
                return f"the field {path!r} {problem}" if path != "(top level)" else f"the text {problem}"
            for key in value if isinstance(value, dict) else ():
                if isinstance(key, str) and (problem := text_problem(key)):
                    return f"a key {problem}"
    except SrilabError:
        return f"a value nested more than {MAX_DEPTH} levels deep: flatten the row"
    return None


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key written twice (``json`` would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _json_type(item: Any) -> str:
    names = {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(item), "a number")


def _columns(rows: list[Row]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.values or ():
            seen.setdefault(str(key), None)
    return tuple(seen)


def _read_jsonl(p: Path, text: str) -> Table:
    rows: list[Row] = []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            item = _loads(line)
        except json.JSONDecodeError as e:
            rows.append(Row(i + 1, problem=f"invalid JSON ({e.msg} at column {e.colno})"))
            continue
        except _DuplicateKey as e:
            rows.append(Row(i + 1, problem=f"the key {e.args[0]!r} is written twice in one object: keep one"))
            continue
        except RecursionError:
            rows.append(Row(i + 1, problem=f"nested too deeply to read (more than {MAX_DEPTH} levels): flatten it"))
            continue
        rows.append(_item_row(i + 1, item))
    return Table(p, "jsonl", _columns(rows), tuple(rows))


def _read_json(p: Path, text: str) -> Table:
    """A JSON list, read item by item so that each item keeps the line where it starts."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)
    lines = _LineCounter(text)
    pos = _JSON_WS.match(text, 0).end()
    if text[pos] != "[":
        try:
            doc = json.loads(text)
        except RecursionError:
            raise SrilabError(f"{p}: nested too deeply to read: a .json file holds one list of objects") from None
        except json.JSONDecodeError as e:
            if e.msg == "Extra data":
                raise SrilabError(
                    f"{p}:{e.lineno}: invalid JSON (extra data after the first value): a .json file holds one list "
                    "of objects; for one object per line, name the file .jsonl"
                ) from None
            raise SrilabError(f"{p}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno}): fix the file") from None
        raise SrilabError(
            f"{p}: expected a JSON list of objects, found {_json_type(doc)}: "
            "wrap the records in [...] (or use .jsonl for one object per line)"
        )
    rows: list[Row] = []
    pos = _JSON_WS.match(text, pos + 1).end()
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                item, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise SrilabError(
                    f"{p}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno}): fix the file "
                    "(a .json file must parse as a whole; use .jsonl to be able to skip bad lines)"
                ) from None
            except _DuplicateKey as e:
                raise SrilabError(
                    f"{p}:{lines.at(pos)}: the key {e.args[0]!r} is written twice in one object of the item starting "
                    "here: keep one"
                ) from None
            except RecursionError:
                raise SrilabError(
                    f"{p}:{lines.at(pos)}: the item starting here is nested too deeply to read (more than "
                    f"{MAX_DEPTH} levels): flatten it"
                ) from None
            rows.append(_item_row(lines.at(pos), item))
            pos = _JSON_WS.match(text, end).end()
            if pos < len(text) and text[pos] == ",":
                pos = _JSON_WS.match(text, pos + 1).end()
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise SrilabError(f"{p}:{lines.at(pos)}: invalid JSON (expected ',' or ']' after an item): fix the file")
    pos = _JSON_WS.match(text, pos).end()
    if pos < len(text):
        raise SrilabError(
            f"{p}:{lines.at(pos)}: invalid JSON (extra data after the list): fix the file "
            "(for one object per line, name it .jsonl)"
        )
    return Table(p, "json", _columns(rows), tuple(rows))


class _LineCounter:
    """1-based line numbers of increasing offsets into a text, counted incrementally."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        if pos < self.pos:
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _read_parquet(p: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SrilabError(
            f"{p}: reading Parquet needs pyarrow, which is not installed: pip install pyarrow, "
            "or pass the data as a .csv, .json, .jsonl or .txt file"
        ) from None
    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises its own error types for corrupt or non-Parquet files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SrilabError(f"{p}: not a readable Parquet file ({first}): check the file or pass a CSV/JSON") from None
    rows = tuple(Row(i + 1, values) for i, values in enumerate(table.to_pylist()))
    return Table(p, "parquet", tuple(table.column_names), rows)
