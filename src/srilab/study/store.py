"""The run directory: append-only, resumable, and enough on its own to rebuild the report.

Layout::

    RUN_DIR/
      config.json          the validated study config (defaults filled in); a resume must match it
      versions.json        python, platform and package versions of the run
      records.jsonl        one generation per line, keyed by model/sampler/dataset/attack/item
      judgements.jsonl     one verdict per line, keyed by record key and judge
      defenses.jsonl       one baseline-defense score per line, keyed by record key and defense
      dynamics.jsonl       harm verdicts of a diffusion record's intermediate canvases, keyed by record and judge
      protocol.json        every item's role (srilab.study.protocol), written when the run starts
      traces/<cell>/<batch>.safetensors   step activations (and canvases) of one generation batch
      summary.json, report.html, plots/   written by ``srilab report``

Crash safety. A trace shard is written to a temporary file and renamed into place (atomic), *then*
its batch's records are appended in one write and fsynced. A kill between the two leaves a shard
without records: the batch is generated again (deterministically: seeds are per item) and the shard
replaced. A kill during the append leaves a partial last line: :meth:`Journal.repair` truncates it on
the next open and the batch's missing records are written again. A complete line that is not JSON in
the middle of the file is not a crash artefact and is reported as corruption (file and line).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from srilab.errors import SrilabError


class Journal:
    """An append-only JSONL file of dict rows, each with a unique ``key`` (within ``(key, <field>)``)."""

    def __init__(self, path: Path, unique: tuple[str, ...] = ("key",)) -> None:
        self.path = Path(path)
        self.unique = unique
        self.repaired_bytes = self.repair()
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
            # find the last newline (scan backwards in chunks)
            pos, keep = size, 0
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = pos + nl + 1
                    break
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
        with self.path.open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise SrilabError(
                        f"{self.path}:{lineno}: not valid JSON ({err.msg}); the run directory is corrupt "
                        "(not an interrupted write): restore the file or start a new run"
                    ) from None
                if not isinstance(row, dict) or any(u not in row for u in self.unique):
                    raise SrilabError(f"{self.path}:{lineno}: a row without {'/'.join(self.unique)}")
                yield row

    def ident(self, row: dict[str, Any]) -> tuple:
        return tuple(row[u] for u in self.unique)

    def done(self) -> set[tuple]:
        if self._done is None:
            self._done = {self.ident(r) for r in self.rows()}
        return self._done

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append the rows not yet present, in one write, flushed and fsynced; return how many were new."""
        done = self.done()
        new = []
        for r in rows:
            ident = self.ident(r)
            if ident not in done:
                new.append(r)
                done.add(ident)
        if not new:
            return 0
        data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in new).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(new)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("srilab", "torch", "transformers", "tokenizers", "safetensors", "numpy", "scikit-learn", "gguf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


class RunDir:
    """A study's run directory (see the module docstring for the layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self, config: dict[str, Any], *, resume: bool) -> None:
        """Start a run (write the config), or check that a resumed run's config is the stored one."""
        if self.exists():
            stored = self.read_config()
            if not resume:
                raise SrilabError(
                    f"{self.path} already holds a run: finish it with `srilab run --resume {self.path}`, "
                    "or choose another output directory"
                )
            if stored != config:
                diff = _first_difference(stored, config)
                raise SrilabError(
                    f"the config differs from the one {self.path} was started with ({diff}): "
                    "a resumed run must use the same config; start a new output directory instead"
                )
            return
        if self.path.exists() and any(p.name != "previous" for p in self.path.iterdir()):  # demo archives stay
            raise SrilabError(f"{self.path} is not empty and holds no srilab run: choose another output directory")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "traces").mkdir(exist_ok=True)
        atomic_write_text(self.path / "versions.json", json.dumps(package_versions(), indent=2) + "\n")
        atomic_write_text(self.config_path, json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        if not self.exists():
            raise SrilabError(f"{self.path} is not a srilab run directory (no config.json)")
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SrilabError(f"{self.config_path}: not valid JSON ({err.msg})") from None

    def records(self) -> Journal:
        return Journal(self.path / "records.jsonl")

    def judgements(self) -> Journal:
        return Journal(self.path / "judgements.jsonl", unique=("key", "judge"))

    def dynamics(self) -> Journal:
        return Journal(self.path / "dynamics.jsonl", unique=("key", "judge"))

    def defenses(self) -> Journal:
        return Journal(self.path / "defenses.jsonl", unique=("key", "defense"))

    def shard_path(self, cell: str, batch: int) -> Path:
        return self.path / "traces" / cell / f"{batch:05d}.safetensors"

    def read_shard(self, rel: str) -> tuple[dict[str, Any], list[str]]:
        """A trace shard's tensors and the record keys of its rows, read in one pass."""
        from safetensors import safe_open

        path = self.path / rel
        if not path.is_file():
            raise SrilabError(f"trace shard {path} is missing: resume the run to regenerate it")
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            keys = json.loads((f.metadata() or {}).get("keys", "[]"))
        return tensors, keys


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or a[k] != b[k]:
                if k in a and k in b:
                    return _first_difference(a[k], b[k], f"{path}.{k}" if path else str(k))
                return f"{path}.{k}" if path else str(k)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}.{i}")
    return f"{path or '(top level)'}: {json.dumps(a)[:60]} != {json.dumps(b)[:60]}"


def json_safe(value: Any) -> Any:
    """JSON-safe data: numpy scalars to Python, non-finite floats to None (never NaN in a file)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
