"""The run directory's files: append-only journals and whole-or-nothing file writes (see
:mod:`srilab.study.store` for the layout and the crash-safety argument).

:class:`Journal` is a JSONL file of rows, appended in one fsynced write; :func:`atomic_write_bytes` writes a
temporary sibling (``.<name>.<random>.tmp``), fsyncs it and renames it into place. Both pass the crash points of
:mod:`srilab.study.crashpoints`. A failed write (a full disk, a read-only folder) is one SrilabError naming the
file (:func:`write_error`), and leaves what was written before as it was: a journal append that fails half way is
truncated back, a failed atomic write leaves the old file and no temporary one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.study.crashpoints import crash_point, wants


class Journal:
    """An append-only JSONL file of dict rows, each with a unique ``key`` (within ``(key, <field>)``).

    Reading never writes: a partial last line (a killed writer) is skipped with a warning, and a row whose
    identity was already read (two writers racing before the run lock existed, a hand edit) is warned about
    and ignored, never counted twice. ``repair=True`` (the writer, under the run lock) truncates the partial
    last line on open; :meth:`append` repairs before it writes in any case.
    """

    def __init__(self, path: Path, unique: tuple[str, ...] = ("key",), *, repair: bool = True) -> None:
        self.path = Path(path)
        self.unique = unique
        self.repaired_bytes = self.repair() if repair else 0
        self._done: set[tuple] | None = None

    def repair(self) -> int:
        """Truncate a partial last line left by a killed writer; return the number of bytes dropped."""
        if not self.path.exists():
            return 0
        size = self.path.stat().st_size
        if size == 0:
            return 0
        with self.path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return 0
            keep = _last_newline(f, size)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        dropped = size - keep
        warnings.warn(
            f"{self.path}: dropped a partial last line ({dropped} bytes) left by an interrupted run; "
            "its rows are written again",
            RuntimeWarning,
            stacklevel=3,
        )
        return dropped

    def rows(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        seen: set[tuple] = set()
        duplicates = 0
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):  # a partial last line: a killed writer (resume rewrites it)
                    warnings.warn(
                        f"{self.path}:{lineno}: ignored a partial last line ({len(raw)} bytes) left by an "
                        "interrupted run; `srilab run --resume` writes its rows again",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    break
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
                    why = err.msg if isinstance(err, json.JSONDecodeError) else (
                        "not UTF-8" if isinstance(err, UnicodeDecodeError) else "nested too deeply")
                    raise SrilabError(
                        f"{self.path}:{lineno}: not valid JSON ({why}); the run directory is corrupt "
                        "(not an interrupted write): restore the file or start a new run"
                    ) from None
                if not isinstance(row, dict) or any(u not in row for u in self.unique):
                    raise SrilabError(f"{self.path}:{lineno}: a row without {'/'.join(self.unique)}")
                ident = self.ident(row)
                if ident in seen:
                    duplicates += 1
                    continue
                seen.add(ident)
                yield row
        if duplicates:
            warnings.warn(
                f"{self.path}: ignored {duplicates} duplicate row(s) (same {'/'.join(self.unique)} as an earlier "
                "line); each is counted once",
                RuntimeWarning,
                stacklevel=2,
            )

    def ident(self, row: dict[str, Any]) -> tuple:
        return tuple(_hashable(row[u]) for u in self.unique)

    def done(self) -> set[tuple]:
        if self._done is None:
            self._done = {self.ident(r) for r in self.rows()}
        return self._done

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append the rows not yet present, in one write, flushed and fsynced; return how many were new."""
        if self._done is None:
            self.repair()
        done = self.done()
        new = []
        for r in rows:
            ident = self.ident(r)
            if ident not in done:
                new.append(r)
                done.add(ident)
        if not new:
            return 0
        try:
            data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in new).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as err:  # NaN, or a lone surrogate: nothing is written
            raise SrilabError(
                f"{self.path}: a row cannot be stored as JSON ({_first(err)}); nothing was written: report this"
            ) from None
        crash_point(f"{self.path.name}:before")
        start = self.path.stat().st_size if self.path.exists() else 0
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)[: len(data) // 2] if wants(f"{self.path.name}:torn") else memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
                crash_point(f"{self.path.name}:torn")
            except OSError:
                with contextlib.suppress(OSError):  # leave no partial line of a failed write behind
                    os.ftruncate(fd, start)
                raise
            finally:
                os.close(fd)
        except OSError as err:
            self._done = None  # what was added to the set above was not written
            raise write_error(self.path, err) from None
        crash_point(f"{self.path.name}:after")
        return len(new)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _last_newline(f, size: int) -> int:
    """The offset just after the last newline of an open binary file (0: none)."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        nl = f.read(step).rfind(b"\n")
        if nl >= 0:
            return pos + nl + 1
    return 0


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def write_error(path: Path, err: OSError) -> SrilabError:
    """A failed write as one line naming the file (``[Errno 28]`` alone names nothing)."""
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        run = next((p for p in path.parents if (p / "config.json").is_file()), None)
        then = f"`srilab run --resume {run}` continues where it stopped" if run else "run the command again"
        return SrilabError(
            f"no space left on the device (or over quota) while writing {path}: free some space, then {then} "
            "(nothing written before is lost)"
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return SrilabError(f"cannot write {path} ({err.strerror}): make the folder writable, or choose another one")
    return SrilabError(f"cannot write {path} ({err.strerror or _first(err)}): check the disk and the folder")


#: What :func:`atomic_write_bytes` names its temporary files: ``.<name>.<random>.tmp`` beside the target.
TEMP_GLOB = ".*.tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary sibling, fsynced, then renamed over it. A failed write
    (a full disk) is one SrilabError naming ``path``, and leaves the old file (if any) as it was."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # unique per writer
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crash_point(f"{path.suffix}:before", f"{path.name}:before")
        os.replace(tmp, path)
        crash_point(f"{path.suffix}:after", f"{path.name}:after")
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError | NotADirectoryError):
            raise write_error(path, err) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise SrilabError(f"{path}: the text cannot be stored as UTF-8 ({_first(err)}): report this") from None
    atomic_write_bytes(path, data)
