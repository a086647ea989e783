"""``srilab run study.yaml``: the study matrix, generated in batches into an append-only run directory.

The matrix is model x sampler x dataset x attack: harmful datasets get every attack that applies to the
sampler (diffusion-native attacks only under diffusion samplers), benign datasets are asked directly.
Each cell's items are cut into fixed batches; a batch is generated with its trace, the trace written
as a safetensors shard, then its records appended (see :mod:`srilab.study.store`). Every item has its
own seed (``seed`` + its index in the dataset, the same under every attack and sampler, so that the
comparisons are paired), so a batch generated again after a kill reproduces exactly.

Then the judges read every record (each verdict appended to ``judgements.jsonl``), the knowledge stage and the
defenses run. The run ends there: it never analyses or reports (the analysis reads the finished run directory,
:mod:`srilab.analysis`; :mod:`srilab.pipeline` and the command line run, then report).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.study import adhoc
from srilab.study.claims import default_claims
from srilab.study.config import TOY_PREFIX, JudgeSpec, ModelSpec, StudyConfig, load_config
from srilab.study.defense_phase import score_defenses
from srilab.study.executor import load_model, plan_units, run_local
from srilab.study.interrupt import INTERRUPT, Interrupted
from srilab.study.judge_phase import judge_all
from srilab.study.knowledge import probe_knowledge
from srilab.study.matrix import Cell, Item, cells, check_names, load_items, study_protocol
from srilab.study.protocol import Protocol
from srilab.study.specs import executor_spec
from srilab.study.store import RunDir, archive_previous, atomic_write_text


# ------------------------------------------------------------------------------------------------ generating
def generate_all(
    cfg: StudyConfig, run: RunDir, *, progress: bool, echo: Callable[[str], None]
) -> dict[str, int]:
    """Generate every missing record with the config's executor (:mod:`srilab.study.executor`); return counts
    (new, already done, in all)."""
    journal = run.records()
    units, total, already = plan_units(cfg, run, journal, echo)
    if already:
        echo(f"resuming: {already} of {total} generations already in {run.path}")
    bar = tqdm(total=total - already, desc="generate", disable=not progress, unit="gen")
    try:
        if cfg.executor.kind == "ray" and units:
            from srilab.study.executor_ray import run_ray

            new = run_ray(units, cfg, run, journal, bar, echo=echo)
        else:
            new = run_local(units, cfg, run, journal, bar)
    finally:
        bar.close()
    gc.collect()
    return {"new": new, "done_before": already, "total": total}


# ------------------------------------------------------------------------------------------------ entry
def run_study(
    target: str | Path,
    *,
    resume: bool = False,
    output: str | Path | None = None,
    progress: bool = True,
    executor: str | None = None,
    workers: int | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run (or, with ``resume``, finish) a study; return the run directory.

    ``target``: a study YAML; with ``resume``, also a run directory (its stored config is used).
    ``executor`` / ``workers`` override the config's ``executor:`` block (not part of the config a resume must
    match); ``limit`` caps every dataset's items (a smoke run; recorded in the run's config, so a resume of the
    YAML needs the same ``limit``); with the SRI guard on, the datasets it is fitted on keep a floor
    (:func:`srilab.study.adhoc.limited_datasets`).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SrilabError(f"--limit must be a whole number of at least 1, got {limit!r}")
    if isinstance(target, bool) or not isinstance(target, str | os.PathLike) or not str(target).strip():
        raise SrilabError(f"a study config is the path of a YAML file (or with resume, a run directory), got "
                          f"{target!r:.40}")
    for what, value in (("resume", resume), ("progress", progress)):
        if not isinstance(value, bool):
            raise SrilabError(f"run_study: {what} must be True or False, got {value!r:.40}")
    target = Path(target)
    if output is not None and Path(output).exists() and not Path(output).is_dir():
        raise SrilabError(f"--output {output} is a file, not a directory: choose another output directory")
    if target.is_dir():
        if not resume:
            raise SrilabError(f"{target} is a directory: pass a study YAML, or --resume to finish that run")
        run = RunDir(target)
        from srilab.study.config import parse_config

        cfg = parse_config(run.read_config(), source=str(run.config_path))
    else:
        if not target.exists():
            raise SrilabError(f"study config {target} does not exist")
        cfg = load_config(target)
        run = RunDir(output if output is not None else cfg.output)
    update = {"executor": executor_spec(cfg.executor, kind=executor, workers=workers)}
    if limit is not None and cfg.sri.enabled:  # a smoke run keeps >= 2 rows in every role the SRI guard fits on
        update["datasets"] = adhoc.limited_datasets(cfg.datasets, limit)
    elif limit is not None:
        update["datasets"] = [d.model_copy(update={"limit": min(d.limit or limit, limit)}) for d in cfg.datasets]
    cfg = cfg.model_copy(update=update)
    return run_config(cfg, run, resume=resume, progress=progress, echo=echo)


def run_flags(
    models: Sequence[str], attacks: Sequence[str], datasets: Sequence[str], *, samplers: Sequence[str] = (),
    limit: int | None = None, out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
    progress: bool = True, executor: str | None = None, workers: int | None = None, echo=print,
) -> Path:
    """``srilab run --model ... --attack ... --dataset ...``: build the config
    (:func:`srilab.study.adhoc.flag_config`), then run it as ``srilab run`` runs a YAML; returns the run directory
    (:func:`srilab.pipeline.run.run_flags` then reports it)."""
    if resume and overwrite:
        raise SrilabError("--resume finishes a run and --overwrite starts it again: give one of them")
    cfg = adhoc.flag_config(models, attacks, datasets, samplers=samplers, limit=limit, out=out)
    cfg = cfg.model_copy(update={"executor": executor_spec(cfg.executor, kind=executor, workers=workers)})
    run = RunDir(cfg.output)
    if overwrite and run.path.is_dir():
        moved = archive_previous(run.path)
        if moved is not None:
            echo(f"--overwrite: the earlier files of {run.path} were moved to {moved}")
    added = [d.name for d in cfg.datasets if d.name in {t["name"] for t in adhoc.TOY_BENIGN}]
    echo(f"study {cfg.name}: models {', '.join(m.name for m in cfg.models)}; attacks "
         f"{', '.join(a.key for a in cfg.attacks)}; datasets {', '.join(d.name for d in cfg.datasets)}"
         + (f" (added for the SRI guard: {', '.join(added)})" if added else "") + f"; into {run.path}")
    return run_config(cfg, run, resume=resume, progress=progress, echo=echo)


def preflight(cfg: StudyConfig, items: dict[str, list[Item]]) -> None:
    """What can fail before a model is loaded fails here, before the run directory exists: every checkpoint
    exists, has a readable config and no pickle-only weights, and each sampler's response (plus the longest
    request, when the tokenizer is at hand) fits the model's context."""
    from srilab.models.checkpoint import inspect_checkpoint
    from srilab.models.loading import load_tokenizer
    from srilab.toy.pair import pair_dir

    longest = max((it.prompt for its in items.values() for it in its), key=len, default="")
    for m in cfg.models:
        if m.is_toy:
            info = inspect_checkpoint(pair_dir(cfg.toy_pair) / m.path[len(TOY_PREFIX):])
        else:
            info = inspect_checkpoint(m.path, allow_pickle=m.allow_pickle, allow_partial=m.allow_partial_checkpoint)
        check_kinds(m, info["kind"])
        limit = info["context_length"]
        if not limit:
            continue
        prompt_tokens = 0
        if info["format"] not in ("gguf", "hub") and longest:
            with contextlib.suppress(Exception):  # the exact count is checked again when generating
                tok = load_tokenizer(Path(info["path"]), None, False)
                if tok is not None:
                    prompt_tokens = len(tok(longest, add_special_tokens=False)["input_ids"])
        for s in m.samplers:
            if prompt_tokens + s.response_length > limit:
                what = f"the longest request ({prompt_tokens} tokens) + " if prompt_tokens else ""
                raise SrilabError(
                    f"model {m.name!r} sampler {s.label!r}: {what}the response length ({s.response_length} tokens) "
                    f"exceed the model's context of {limit} tokens: lower max_new_tokens / gen_length or shorten "
                    "the requests"
                )


def check_kinds(m: ModelSpec, weights: str | None) -> None:
    """The model is sampled as what its weights are: a causal model by AR samplers only, a bidirectional one by
    diffusion samplers only (``weights``: the kind its config says, None when only remote code knows)."""
    from srilab.models.checkpoint import bidirectional_as_ar, causal_as_diffusion

    if m.kind is not None and weights is not None and m.kind != weights:
        raise (causal_as_diffusion if weights == "ar" else bidirectional_as_ar)(f"model {m.name!r} ({m.path})")
    kind = m.kind or weights
    for s in m.samplers:
        if kind == "ar" and s.kind == "diffusion":
            raise SrilabError(
                f"model {m.name!r} ({m.path}) is autoregressive but sampler {s.label!r} is a diffusion sampler: its "
                "attention cannot see the masks to its right and every answer would be garbage; use kind: ar for "
                "it, or a diffusion model"
            )
        if kind == "diffusion" and s.kind == "ar":
            raise SrilabError(
                f"model {m.name!r} ({m.path}) is a diffusion model but sampler {s.label!r} is an AR sampler: sample "
                "it left to right with kind: diffusion and block_length: 1"
            )


def run_config(
    cfg: StudyConfig, run: RunDir, *, resume: bool = False, progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run a validated study config into ``run``: generate, judge, probe the knowledge ceiling, score the defenses.

    Everything that can be checked before generating is checked before the run directory is created (so a
    failed start leaves nothing behind); the run then holds the directory's lock until it ends. Ctrl-C
    stops after the current generation batch (at once between phases) and says how to resume.
    """
    from srilab.io import guarded

    executor_spec(cfg.executor)  # Ray installed when asked for
    check_names(cfg)
    items = {}
    for d in cfg.datasets:
        with guarded(d.path, f"dataset {d.name!r}"):
            items[d.name] = load_items(d, cfg)
    protocol = study_protocol(cfg, items)
    preflight(cfg, items)
    run.check_target(resume=resume)
    fresh = not run.exists()
    if not fresh:
        run.versions()  # a corrupt versions.json is refused before the run is touched
    try:
        with INTERRUPT.installed():
            if not fresh:
                run.lock()
                for tmp in run.remove_temporaries():  # a kill between fsync and rename left it
                    echo(f"  removed {tmp.relative_to(run.path)}, a temporary file an interrupted write left")
            run.create(cfg.canonical(), resume=resume)
            run.lock()
            try:
                with _threads_of(run, echo):
                    return _run_locked(cfg, run, protocol, progress=progress, echo=echo)
            except Exception:  # noqa: BLE001 - any failure before the first generation: leave nothing behind
                if fresh and not (run.path / "records.jsonl").exists():
                    run.unlock()
                    _remove_new_run(run)
                raise
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {run.path} keeps everything finished so far; continue with "
            f"`srilab run --resume {run.path}`"
        ) from None
    finally:
        run.unlock()


@contextlib.contextmanager
def _threads_of(run: RunDir, echo: Callable[[str], None]):
    """Run with the torch thread count the run started with: float sums (and so traces, scores and, at a
    tie, tokens) depend on it, and a resumed run must finish as the uninterrupted run would have."""
    import torch

    before, recorded = torch.get_num_threads(), run.recorded_threads()
    if recorded is None or recorded == before:
        yield
        return
    echo(f"  using {recorded} torch threads as this run started with (this process had {before}): "
         "float results depend on the count")
    torch.set_num_threads(recorded)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _remove_new_run(run: RunDir) -> None:
    """Undo a run directory this call created and that holds no generation (a model that failed to load)."""
    import shutil

    for p in run.path.iterdir():
        if p.name == "previous":  # the demo's archives stay
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run.path.rmdir()


def _run_locked(
    cfg: StudyConfig, run: RunDir, protocol: Protocol, *, progress: bool, echo: Callable[[str], None],
) -> Path:
    atomic_write_text(run.path / "protocol.json", json.dumps(protocol.to_dict(), indent=1) + "\n")
    atomic_write_text(run.path / "claims.json", json.dumps(default_claims(cfg), indent=1) + "\n")  # pre-registered
    started = time.perf_counter()
    echo(f"srilab run: {cfg.name} -> {run.path}")
    gen = generate_all(cfg, run, progress=progress, echo=echo)
    echo(f"  generations: {gen['new']} new, {gen['done_before']} already done, {gen['total']} in all")
    INTERRUPT.check(run)
    judged = judge_all(cfg, run, progress=progress, echo=echo)
    echo("  judged: " + ", ".join(f"{k} {v} new" for k, v in judged.items()))
    cache: dict[str, LanguageModel] = {}

    def load(spec: ModelSpec) -> LanguageModel:
        if spec.name not in cache:
            cache[spec.name] = load_model(spec, cfg)
        return cache[spec.name]

    if cfg.analysis.knowledge:
        echo(f"  knowledge ceiling: {probe_knowledge(cfg, run, protocol, load, progress=progress)} new answers")
        INTERRUPT.check(run)
    if cfg.defenses:
        scored = score_defenses(cfg, run, protocol, load, progress=progress, echo=echo)
        echo("  defenses: " + ", ".join(f"{k} {v} new" for k, v in scored.items()))
    cache.clear()
    gc.collect()
    echo(f"done in {time.perf_counter() - started:.0f}s")
    return run.path


__all__ = [
    "Cell", "Interrupted", "Item", "JudgeSpec", "cells", "load_items", "preflight", "run_config", "run_flags",
    "run_study", "study_protocol",
]
