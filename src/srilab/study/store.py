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
      claims.json          the claims the analysis tests (srilab.study.claims), fixed when the run starts
      knowledge.jsonl      each arm's plain-text answers to the attacked requests (srilab.study.knowledge)
      traces/<cell>/<batch>.safetensors   step activations (and canvases) of one generation batch
      summary.json, report.html, plots/   written by ``srilab report``

Crash safety. A trace shard is written to a temporary file and renamed into place (atomic), *then*
its batch's records are appended in one write and fsynced. A kill between the two leaves a shard
without records: the batch is generated again (deterministically: seeds are per item) and the shard
replaced. A kill during the append leaves a partial last line: :meth:`Journal.repair` truncates it on
the next open and the batch's missing records are written again. A complete line that is not JSON in
the middle of the file is not a crash artefact and is reported as corruption (file and line). A kill between
a temporary file's fsync and its rename leaves a ``.<name>.<random>.tmp`` file: a resume removes it
(:meth:`RunDir.remove_temporaries`). A write that fails (a full disk, a read-only folder) is one SrilabError
naming the file; what was written before stays.

Tamper evidence: ``config.sha256`` holds the digest of ``config.json``; both must be there and agree before a
resume or a report reads the run (a run whose digest was deleted is refused, with how to restore it).

Starting again in a folder that holds other files moves them to ``previous/<time>/`` first
(:func:`archive_previous`), never deleting them.
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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.study.journal import TEMP_GLOB, Journal, atomic_write_bytes, atomic_write_text, write_error  # noqa: F401


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
        if isinstance(path, bool) or not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise SrilabError(f"a run directory is a path (str or Path), got {path!r:.40}")
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
                diff = first_difference(stored, config)
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

    @property
    def versions_path(self) -> Path:
        return self.path / "versions.json"

    def versions(self) -> dict[str, str] | None:
        """``versions.json`` (package versions and the torch thread count the run started with); None when the run
        has none. A file that is there but unreadable is one SrilabError saying how to restore it."""
        path = self.versions_path
        if not path.exists():
            return None
        fix = ("restore it from a backup, or write it again as {{\"torch_threads\": \"N\"}} with the torch thread "
               "count the run started with (results depend on it)")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            why = err.msg if isinstance(err, json.JSONDecodeError) else (
                err.strerror if isinstance(err, OSError) else "not UTF-8 JSON")
            raise SrilabError(f"{path} is corrupt ({why}): {fix}") from None
        if not isinstance(data, dict):
            raise SrilabError(f"{path} is corrupt (not a JSON object): {fix}")
        threads = data.get("torch_threads")
        if threads is not None and not (str(threads).isdigit() and int(str(threads)) >= 1):
            raise SrilabError(f"{path} is corrupt (torch_threads {str(threads)[:20]!r} is not a positive integer): "
                              f"{fix}")
        return {str(k): v if isinstance(v, str | int | float) else json.dumps(v) for k, v in data.items()}

    def recorded_threads(self) -> int | None:
        """The torch intra-op thread count the run started with (``versions.json``); None when not recorded."""
        threads = (self.versions() or {}).get("torch_threads")
        return None if threads is None else max(1, int(str(threads)))

    def remove_temporaries(self) -> list[Path]:
        """Remove the temporary files a killed writer left (``.<name>.<random>.tmp``, between fsync and rename):
        under the lock, nothing else writes them. Returns what was removed."""
        if not self.writable:
            raise RuntimeError("remove_temporaries needs the run's lock")
        removed = []
        for tmp in [*self.path.glob(TEMP_GLOB), *self.path.glob(f"*/{TEMP_GLOB}"), *self.path.glob(f"*/*/{TEMP_GLOB}")]:
            if tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(OSError):
                    tmp.unlink()
                    removed.append(tmp)
        return removed

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
        except RecursionError:
            raise SrilabError(f"{self.config_path}: not valid JSON (nested too deeply)") from None
        if not isinstance(config, dict):
            raise SrilabError(f"{self.config_path}: not a JSON object: restore it from a backup")
        if not self.digest_path.exists():
            raise SrilabError(
                f"{self.digest_path} is missing, so {self.config_path.name} cannot be checked against the config the "
                f"run started with: restore it from a backup; or, if you are sure config.json is unchanged, write it "
                f"again with `cd {self.path} && sha256sum config.json > config.sha256`; otherwise start a new run"
            )
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

    def torn_journals(self) -> list[Path]:
        """The journals whose last line is partial (a killed writer; read only)."""
        torn = []
        for name in ("records.jsonl", "judgements.jsonl", "defenses.jsonl", "dynamics.jsonl"):
            path = self.path / name
            if path.is_file() and path.stat().st_size:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        torn.append(path)
        return torn

    def check_complete(self, *, allow_incomplete: bool = False) -> None:
        """Before a report: the run has generations, every judge's verdict on each, no partial last line in a
        journal, and every trace shard the generations point to (read only); otherwise one SrilabError saying
        exactly what is missing and how to finish it. ``allow_incomplete`` (``srilab report --allow-incomplete``)
        accepts a partial last line and missing verdicts: the report then covers the complete rows and says so."""
        config = self.read_config()
        self.versions()
        resume = f"`srilab run --resume {self.path}`"
        torn = self.torn_journals()
        if torn and not allow_incomplete:
            raise SrilabError(
                f"{torn[0]} ends in a partial line (the run was interrupted while writing it): finish the run with "
                f"{resume}, or pass --allow-incomplete to report on the complete rows only"
            )
        records = list(self.records().rows())
        if not records:
            raise SrilabError(f"{self.path} has no generations yet: run or resume the study first ({resume})")
        judges = [j.get("label") or j.get("name") for j in config.get("judges") or [] if isinstance(j, dict)]
        verdicts = self.judgements().done()
        judged_by_any = {k for (k, _) in verdicts}
        unjudged = [r["key"] for r in records if r["key"] not in judged_by_any]
        if unjudged and not allow_incomplete:
            raise SrilabError(
                f"{self.path}: {len(unjudged)} of {len(records)} generations are not judged yet "
                f"(first: {unjudged[0]}): finish the run with {resume}, or pass --allow-incomplete to report on the "
                "judged ones only"
            )
        missing = [(r["key"], j) for r in records for j in judges if r["key"] in judged_by_any and (r["key"], j)
                   not in verdicts]
        if missing and not allow_incomplete:
            raise SrilabError(
                f"{self.path}: {len(missing)} verdict(s) are missing (first: judge {missing[0][1]!r} on "
                f"{missing[0][0]}): finish the run with {resume}, or pass --allow-incomplete to report on the "
                "generations every judge has judged"
            )
        if allow_incomplete and len(unjudged) == len(records):
            raise SrilabError(f"{self.path}: no generation is judged yet: finish the run with {resume}")
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


def first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or a[k] != b[k]:
                if k in a and k in b:
                    return first_difference(a[k], b[k], f"{path}.{k}" if path else str(k))
                return f"{path}.{k}" if path else str(k)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}.{i}")
    return f"{path or '(top level)'}: {json.dumps(a)[:60]} != {json.dumps(b)[:60]}"


def archive_previous(out: Path) -> Path | None:
    """Move everything in ``out`` (but earlier archives) to ``out/previous/<time>``; return that folder."""
    if not out.is_dir():
        return None
    entries = [p for p in out.iterdir() if p.name != "previous"]
    if not entries:
        return None
    dest = out / "previous" / time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name}-{n}")
        n += 1
    dest.mkdir(parents=True)
    for p in entries:
        shutil.move(str(p), dest / p.name)
    return dest
