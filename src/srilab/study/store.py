"""The run directory: append-only, resumable, and enough on its own to rebuild the report.

Layout::

    RUN_DIR/
      config.json          the validated study config (defaults filled in); a resume must match it
      versions.json        python, platform, package versions and torch thread count of the run
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
import hashlib
import json
import os
import platform
import shutil
import sys
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
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    why = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8"
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
        data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in new).encode("utf-8")
        crash_point(f"{self.path.name}:before")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)[: len(data) // 2] if wants(f"{self.path.name}:torn") else memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            crash_point(f"{self.path.name}:torn")
        finally:
            os.close(fd)
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # unique per writer
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crash_point(f"{path.suffix}:before", f"{path.name}:before")
        os.replace(tmp, path)
        crash_point(f"{path.suffix}:after", f"{path.name}:after")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("srilab", "torch", "transformers", "tokenizers", "safetensors", "numpy", "scikit-learn", "gguf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    import torch

    out["torch_threads"] = str(torch.get_num_threads())  # float sums depend on it: a resume reuses it
    return out


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, indent=2).encode("utf-8") + b"\n").hexdigest()


class RunDir:
    """A study's run directory (see the module docstring for the layout).

    Opened read-only by default (``srilab report``: nothing in the directory is changed); the runner holds
    :meth:`lock` for the life of a run, and only then are journals repaired and appended to.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.writable = False
        self._lock_fd: int | None = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def digest_path(self) -> Path:
        return self.path / "config.sha256"

    @property
    def lock_path(self) -> Path:
        return self.path / "run.lock"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_target(self, *, resume: bool) -> None:
        """Before anything is written: the output can hold this run (a new run: absent or empty)."""
        if self.path.exists() and not self.path.is_dir():
            raise SrilabError(f"output {self.path} is a file, not a directory: choose another output directory")
        if self.exists():
            if not resume:
                raise SrilabError(
                    f"{self.path} already holds a run: finish it with `srilab run --resume {self.path}`, "
                    "or choose another output directory"
                )
            return
        if self.path.exists() and any(p.name != "previous" for p in self.path.iterdir()):  # demo archives stay
            raise SrilabError(f"{self.path} is not empty and holds no srilab run: choose another output directory")
        parent = self.path.resolve().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise SrilabError(f"cannot create {self.path}: {parent} is not a writable directory")

    def create(self, config: dict[str, Any], *, resume: bool) -> None:
        """Start a run (write the config), or check that a resumed run's config is the stored one.

        A new run directory appears whole: its files are written into a temporary sibling that is then
        renamed into place, so a failed start leaves nothing that blocks the next attempt.
        """
        self.check_target(resume=resume)
        if self.exists():
            stored = self.read_config()
            if stored != config:
                diff = _first_difference(stored, config)
                raise SrilabError(
                    f"the config differs from the one {self.path} was started with ({diff}): "
                    "a resumed run must use the same config; start a new output directory instead"
                )
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".new", dir=self.path.parent))
        try:
            (tmp / "traces").mkdir()
            atomic_write_text(tmp / "versions.json", json.dumps(package_versions(), indent=2) + "\n")
            atomic_write_text(tmp / "config.json", json.dumps(config, indent=2) + "\n")
            atomic_write_text(tmp / "config.sha256", config_digest(config) + "  config.json\n")
            os.chmod(tmp, 0o755)
            if not self.path.exists():
                try:
                    os.rename(tmp, self.path)
                except OSError:
                    raise SrilabError(
                        f"{self.path} appeared while this run started (another srilab run?): choose another output"
                    ) from None
            else:  # an empty directory (or one holding only the demo's archives): move the files in, config last
                for name in ("traces", "versions.json", "config.sha256", "config.json"):
                    os.replace(tmp / name, self.path / name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def recorded_threads(self) -> int | None:
        """The torch intra-op thread count the run started with (``versions.json``); None when not recorded."""
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
            return max(1, int(json.loads((self.path / "versions.json").read_text())["torch_threads"]))
        return None

    def read_config(self) -> dict[str, Any]:
        from srilab.io import read_text

        if not self.path.is_dir():
            raise SrilabError(f"{self.path} is not a srilab run directory (not a directory)")
        if not self.exists():
            raise SrilabError(f"{self.path} is not a srilab run directory (no config.json)")
        text = read_text(self.config_path, "run config", max_bytes=16 << 20)
        try:
            config = json.loads(text)
        except json.JSONDecodeError as err:
            raise SrilabError(f"{self.config_path}: not valid JSON ({err.msg})") from None
        if self.digest_path.is_file():
            want = read_text(self.digest_path, "config digest").split()[:1]
            if want != [config_digest(config)] and want != [hashlib.sha256(text.encode()).hexdigest()]:
                raise SrilabError(
                    f"{self.config_path} was changed after the run started (it no longer matches "
                    f"{self.digest_path.name}): restore it, or start a new run with the changed config"
                )
        return config

    # ------------------------------------------------------------------------------------------ lock
    def lock(self) -> None:
        """Take the run's exclusive lock (``run.lock``, held until :meth:`unlock` or the process ends).

        ``fcntl.flock`` is released by the kernel when its holder dies, so a lock left by a killed run is
        simply taken over; a live holder makes this one SrilabError naming its pid.
        """
        import fcntl

        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SrilabError(
                f"{self.path} is in use by another srilab run (pid {holder}, lock {self.lock_path.name}): "
                "wait for it to finish, or stop it, then resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        self.writable = True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
            self.writable = False

    # ------------------------------------------------------------------------------------------ journals
    def records(self) -> Journal:
        return Journal(self.path / "records.jsonl", repair=self.writable)

    def judgements(self) -> Journal:
        return Journal(self.path / "judgements.jsonl", unique=("key", "judge"), repair=self.writable)

    def dynamics(self) -> Journal:
        return Journal(self.path / "dynamics.jsonl", unique=("key", "judge"), repair=self.writable)

    def defenses(self) -> Journal:
        return Journal(self.path / "defenses.jsonl", unique=("key", "defense"), repair=self.writable)

    def shard_path(self, cell: str, batch: int) -> Path:
        return self.path / "traces" / cell / f"{batch:05d}.safetensors"

    def read_shard(self, rel: str) -> tuple[dict[str, Any], list[str]]:
        """A trace shard's tensors and the record keys of its rows, read in one pass."""
        from safetensors import safe_open

        from srilab.io import guarded

        path = self.path / rel
        if not path.is_file():
            raise SrilabError(f"trace shard {path} is missing: `srilab run --resume {self.path}` regenerates it")
        with guarded(path, "trace shard"), safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open: no __iter__)
            keys = json.loads((f.metadata() or {}).get("keys", "[]"))
        return tensors, keys

    def check_complete(self) -> None:
        """Before a report: the run has generations, judgements and every trace shard they point to (read only);
        otherwise one SrilabError saying exactly what is missing and how to finish it."""
        self.read_config()
        records = list(self.records().rows())
        resume = f"`srilab run --resume {self.path}`"
        if not records:
            raise SrilabError(f"{self.path} has no generations yet: run or resume the study first ({resume})")
        judged = {k for (k, _) in self.judgements().done()}
        unjudged = [r["key"] for r in records if r["key"] not in judged]
        if unjudged:
            raise SrilabError(
                f"{self.path}: {len(unjudged)} of {len(records)} generations are not judged yet "
                f"(first: {unjudged[0]}): finish the run with {resume}"
            )
        by_shard: dict[str, list[str]] = {}
        for r in records:
            by_shard.setdefault(str(r.get("shard", "")), []).append(r["key"])
        bad = [rel for rel, keys in by_shard.items() if not self.shard_holds(rel, keys)]
        if bad:
            missing = [rel for rel in bad if not (self.path / rel).is_file()]
            raise SrilabError(
                f"{self.path}: {len(bad)} trace shard(s) are missing or unreadable ({len(missing)} missing; first: "
                f"{bad[0]}): {resume} regenerates them"
            )

    def shard_holds(self, rel: str, keys: Iterable[str]) -> bool:
        """Whether the shard ``rel`` is readable and holds ``keys`` (a cheap header read)."""
        from safetensors import safe_open

        path = self.path / rel
        try:
            with safe_open(str(path), framework="pt") as f:
                held = set(json.loads((f.metadata() or {}).get("keys", "[]")))
                names = set(f.keys())  # noqa: SIM118 (safetensors checks the data fits the file on open)
        except Exception:  # noqa: BLE001 - missing, truncated, not safetensors: all "regenerate it"
            return False
        return set(keys) <= held and "activations" in names


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
