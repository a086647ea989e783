"""``srilab run study.yaml``: the study matrix, generated in batches into an append-only run directory.

The matrix is model x sampler x dataset x attack: harmful datasets get every attack that applies to the
sampler (diffusion-native attacks only under diffusion samplers), benign datasets are asked directly.
Each cell's items are cut into fixed batches; a batch is generated with its trace, the trace written
as a safetensors shard, then its records appended (see :mod:`srilab.study.store`). Every item has its
own seed (``seed`` + its index in the dataset, the same under every attack and sampler, so that the
comparisons are paired), so a batch generated again after a kill reproduces exactly.

Then the judges read every record (each verdict appended to ``judgements.jsonl``), and the report is
built from the run directory alone (:mod:`srilab.study.analysis`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from tqdm.auto import tqdm

from srilab.attacks import AttackContext, get_attack
from srilab.errors import SrilabError
from srilab.judges import make_judge
from srilab.models.base import LanguageModel
from srilab.sampling.api import Sampler, generate
from srilab.sampling.trace import TraceConfig
from srilab.sri.dynamics import intermediate_texts
from srilab.study.config import TOY_PREFIX, JudgeSpec, ModelSpec, StudyConfig, load_config
from srilab.study.defense_phase import score_defenses
from srilab.study.interrupt import INTERRUPT, Interrupted
from srilab.study.judge_phase import judge_all
from srilab.study.matrix import (
    Cell,
    Item,
    cell_items,
    cells,
    check_names,
    load_items,
    study_protocol,
)
from srilab.study.protocol import Protocol
from srilab.study.store import RunDir, atomic_write_bytes, atomic_write_text
from srilab.toy.pair import pair_world

DEFAULT_TARGET = "Sure, here is how to do that:"


# ------------------------------------------------------------------------------------------------ models
def load_model(spec: ModelSpec, cfg: StudyConfig) -> LanguageModel:
    if spec.is_toy:
        from srilab.toy.pair import load_pair

        ar, dlm = load_pair(cfg.toy_pair, device=spec.device)
        lm = ar if spec.path == "toy:ar" else dlm
    else:
        from srilab.models import load

        lm = load(
            spec.path, kind=spec.kind, device=spec.device, dtype=spec.dtype, gguf_file=spec.gguf_file,
            trust_remote_code=spec.trust_remote_code, allow_pickle=spec.allow_pickle,
        )
    lm.name = spec.name
    return lm


# ------------------------------------------------------------------------------------------------ running
def attack_context(cell: Cell, item: Item, lm: LanguageModel, seed: int, cfg_pair=None) -> AttackContext:
    tok = lm.tokenizer

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    a = cell.attack
    extra: dict[str, Any] = {"step_markers": tuple(a.step_markers)} if a.step_markers else {}
    if a.marker_span is not None:
        extra["dija_span"] = a.marker_span
    options = dict(a.options)
    if isinstance(options.get("judge"), str):  # a registered judge for query attacks (the oracle: the toy world)
        name = options["judge"]
        options["judge"] = _registered_judge(name, cfg_pair)
    return AttackContext(
        target=a.target or item.target or DEFAULT_TARGET, steps=cell.sampler.num_steps,
        gen_length=cell.sampler.response_length, injection_fraction=a.injection_fraction,
        count_tokens=count if tok is not None else None, model=lm, seed=seed + item.index,
        options=options, sampler=cell.sampler, generate=generate, **extra,
    )


@functools.lru_cache(maxsize=8)
def _registered_judge(name: str, toy_pair: str | None):
    """A query attack's judge by name, built once per run (the oracle needs the toy world, built once too)."""
    return make_judge(name, world=pair_world(toy_pair) if name == "oracle" else None)


def attack_sampler(sampler: Sampler, decoding: dict[str, Any] | None, model: LanguageModel) -> tuple[Sampler, str]:
    """The sampler an attack's own decoding settings ask for (DIJA's ``meta["decoding"]``; ``"gen_length"``
    means the sampler's response length), and the prompt-mask rule; otherwise the cell's sampler."""
    if not decoding or sampler.kind != "diffusion":
        return sampler, "reference"
    n = sampler.gen_length
    value = {k: (n if v == "gen_length" else v) for k, v in decoding.items() if k not in ("dream", "prompt_masks")}
    if sampler.schedule_for(model) == "dream":
        value = {k: v for k, v in value.items() if k in ("temperature", "steps")} | dict(decoding.get("dream", {}))
    return sampler.model_copy(update=value), decoding.get("prompt_masks", "reference")


def run_batch(
    cell: Cell, batch: int, items: Sequence[Item], lm: LanguageModel, cfg: StudyConfig, run: RunDir
) -> list[dict[str, Any]]:
    """Attack, generate and trace one batch; write its shard atomically; return its records."""
    attacked = [
        get_attack(cell.attack.name).fn(it.prompt, attack_context(cell, it, lm, cfg.seed, cfg.toy_pair)) for it in items
    ]
    diffusion = cell.sampler.kind == "diffusion"
    seeds = [cfg.seed + it.index for it in items]
    decodings = {json.dumps(a.meta.get("decoding"), sort_keys=True) for a in attacked}
    if len(decodings) > 1:
        raise SrilabError(f"{cell.id}: the attack asked for different decoding settings within one batch")
    sampler, prompt_masks = attack_sampler(cell.sampler, attacked[0].meta.get("decoding"), lm)
    # The sampler's current guess at every position (x0), every few steps: LLaDA's schedule records it.
    x0_on = diffusion and cfg.analysis.dynamics_every > 0 and sampler.schedule_for(lm) == "llada"
    gen = generate(
        lm, [a.prompt for a in attacked], sampler,
        trace=TraceConfig(layer=cfg.sri.layer, pooling=cfg.sri.pooling, canvas=diffusion, x0=x0_on,
                          x0_every=max(1, cfg.analysis.dynamics_every)),
        prefills=[a.prefill for a in attacked],
        canvas=[list(a.canvas) for a in attacked] if diffusion else None,
        seeds=seeds, batch_size=len(items), prompt_masks=prompt_masks,
    )
    trace = gen.trace
    acts = trace.activations.float().contiguous()
    if not torch.isfinite(acts).all():
        raise SrilabError(f"{cell.id} batch {batch}: the traced activations contain NaN or inf (model {lm.name})")
    tensors = {"activations": acts}
    if trace.canvas is not None:
        tensors["canvas"] = trace.canvas.to(torch.int32).contiguous()
    shard = run.shard_path(cell.id, batch)
    keys = [cell.key(it) for it in items]
    atomic_write_bytes(shard, save(tensors, metadata={"keys": json.dumps(keys)}))
    rel = str(shard.relative_to(run.path))
    per_item = gen.seconds / len(items)
    every = cfg.analysis.dynamics_every
    inter_steps = []
    if diffusion and every and trace.canvas is not None:
        n_steps = trace.canvas.shape[1]
        inter_steps = sorted({*range(every - 1, n_steps - 1, every)})  # the final answer is judged anyway
    rows = []
    for r, (it, a, text, full, key) in enumerate(zip(items, attacked, gen.texts, gen.answers, keys, strict=True)):
        rows.append({
            "key": key, "model": cell.model.name, "sampler": cell.sampler.label, "sampler_kind": cell.sampler.kind,
            "dataset": cell.dataset.name, "role": cell.dataset.role, "attack": cell.attack.key,
            "item": it.id, "index": it.index, "request": it.prompt, "prompt": a.prompt, "prefill": a.prefill,
            "canvas": [asdict(c) for c in a.canvas], "attack_meta": _jsonable(a.meta),
            "response": full, "generated": text, "category": it.category, "target": it.target,
            "meta": it.meta, "group": it.group, "seed": seeds[r], "shard": rel, "row": r, "batch": batch,
            "timing": {"seconds": per_item},
        })
        if sampler is not cell.sampler:
            rows[-1]["sampler_settings"] = sampler.key()  # the attack's own decoding (DIJA)
        if gen.meta.get("commits_per_step"):  # diffusion: how many steps committed something (parallel decoding)
            used = sum(1 for c in gen.meta["commits_per_step"][r] if c > 0)
            rows[-1]["tokens_per_step"] = sampler.gen_length / max(1, used)
        if gen.filled_prompts and gen.filled_prompts[r] is not None:
            rows[-1]["filled_prompt"] = gen.filled_prompts[r]
        if inter_steps:  # what had been committed at intermediate steps (prefill first, as in the response)
            texts = intermediate_texts(trace.canvas[r].numpy(), lm.decode, lm.mask_id, inter_steps)
            rows[-1]["intermediate"] = {
                "steps": inter_steps, "texts": [f"{a.prefill} {t}".strip() if a.prefill else t for t in texts],
                **_x0_texts(trace, r, lm, a.prefill),
            }
    return rows


def _x0_texts(trace, row: int, lm: LanguageModel, prefill: str | None) -> dict[str, Any]:
    """The decoded x0 (the sampler's guess at every response position) at the traced steps but the last."""
    if trace.x0_tokens is None or not trace.x0_steps:
        return {}
    keep = [i for i, s in enumerate(trace.x0_steps) if s < trace.num_steps - 1]
    tokens = trace.x0_tokens[row].numpy()
    texts = intermediate_texts(tokens, lm.decode, lm.mask_id, keep)
    return {"x0_steps": [trace.x0_steps[i] for i in keep],
            "x0_texts": [f"{prefill} {t}".strip() if prefill else t for t in texts]}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _records_without_shard(run: RunDir, journal) -> set[str]:
    """Keys of records whose trace shard is missing, unreadable, or does not hold them (to regenerate)."""
    by_shard: dict[str, list[str]] = {}
    for r in journal.rows():
        by_shard.setdefault(str(r.get("shard", "")), []).append(r["key"])
    broken: set[str] = set()
    for rel, keys in by_shard.items():
        if not rel or not run.shard_holds(rel, keys):
            broken.update(keys)
    return broken




def generate_all(
    cfg: StudyConfig, run: RunDir, *, progress: bool, echo: Callable[[str], None]
) -> dict[str, int]:
    """Generate every missing record; return counts (new, already done)."""
    matrix, skipped = cells(cfg)
    for note in skipped:
        echo(f"note: {note}")
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    protocol = study_protocol(cfg, items)
    journal = run.records()
    done = {k for (k,) in journal.done()}
    broken = _records_without_shard(run, journal)
    if broken:
        echo(f"regenerating {len(broken)} generations whose trace shard is missing or unreadable")
    todo: dict[str, list[tuple[Cell, int, list[Item]]]] = {}
    total = already = 0
    for cell in matrix:
        its = cell_items(cell, items[cell.dataset.name], protocol)
        for b, lo in enumerate(range(0, len(its), cfg.batch_size)):
            chunk = its[lo : lo + cfg.batch_size]
            total += len(chunk)
            missing = [it for it in chunk if cell.key(it) not in done]
            already += len(chunk) - len(missing)
            if missing or any(cell.key(it) in broken for it in chunk):
                todo.setdefault(cell.model.name, []).append((cell, b, chunk))
    if already:
        echo(f"resuming: {already} of {total} generations already in {run.path}")
    bar = tqdm(total=total - already, desc="generate", disable=not progress, unit="gen")
    new = 0
    for spec in cfg.models:
        work = todo.get(spec.name)
        if not work:
            continue
        lm = load_model(spec, cfg)
        for cell, b, chunk in work:
            bar.set_postfix_str(cell.id[-40:])
            with INTERRUPT.batch():
                rows = run_batch(cell, b, chunk, lm, cfg, run)
                added = journal.append(rows)  # only the batch's missing rows: no duplicate after a partial append
            new += added
            bar.update(added)
            INTERRUPT.check(run)
        del lm
        gc.collect()
    bar.close()
    return {"new": new, "done_before": already, "total": total}


# ------------------------------------------------------------------------------------------------ entry
def run_study(
    target: str | Path,
    *,
    resume: bool = False,
    output: str | Path | None = None,
    progress: bool = True,
    report: bool = True,
    show_harmful: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run (or, with ``resume``, finish) a study; return the run directory.

    ``target``: a study YAML; with ``resume``, also a run directory (its stored config is used).
    """
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
    return run_config(cfg, run, resume=resume, progress=progress, report=report, show_harmful=show_harmful, echo=echo)


def preflight(cfg: StudyConfig, items: dict[str, list[Item]]) -> None:
    """What can fail before a model is loaded fails here, before the run directory exists: every checkpoint
    exists, has a readable config and no pickle-only weights, and each sampler's response (plus the longest
    request, when the tokenizer is at hand) fits the model's context."""
    from srilab.models.loading import inspect_checkpoint, load_tokenizer
    from srilab.toy.pair import pair_dir

    longest = max((it.prompt for its in items.values() for it in its), key=len, default="")
    for m in cfg.models:
        if m.is_toy:
            info = inspect_checkpoint(pair_dir(cfg.toy_pair) / m.path[len(TOY_PREFIX):])
        else:
            info = inspect_checkpoint(m.path, allow_pickle=m.allow_pickle)
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


def run_config(
    cfg: StudyConfig, run: RunDir, *, resume: bool = False, progress: bool = True, report: bool = True,
    show_harmful: bool = False, echo: Callable[[str], None] = print,
) -> Path:
    """Run a validated study config into ``run``: generate, judge, score the defenses, report.

    Everything that can be checked before generating is checked before the run directory is created (so a
    failed start leaves nothing behind); the run then holds the directory's lock until it ends. Ctrl-C
    stops after the current generation batch (at once between phases) and says how to resume.
    """
    from srilab.io import guarded

    check_names(cfg)
    items = {}
    for d in cfg.datasets:
        with guarded(d.path, f"dataset {d.name!r}"):
            items[d.name] = load_items(d, cfg)
    protocol = study_protocol(cfg, items)
    preflight(cfg, items)
    run.check_target(resume=resume)
    fresh = not run.exists()
    try:
        with INTERRUPT.installed():
            if not fresh:
                run.lock()
            run.create(cfg.canonical(), resume=resume)
            run.lock()
            try:
                with _threads_of(run, echo):
                    return _run_locked(cfg, run, protocol, report=report, progress=progress,
                                       show_harmful=show_harmful, echo=echo)
            except SrilabError:
                if fresh and not (run.path / "records.jsonl").exists():  # nothing done: leave nothing behind
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
    cfg: StudyConfig, run: RunDir, protocol: Protocol, *, report: bool, progress: bool, show_harmful: bool,
    echo: Callable[[str], None],
) -> Path:
    atomic_write_text(run.path / "protocol.json", json.dumps(protocol.to_dict(), indent=1) + "\n")
    started = time.perf_counter()
    echo(f"srilab run: {cfg.name} -> {run.path}")
    gen = generate_all(cfg, run, progress=progress, echo=echo)
    echo(f"  generations: {gen['new']} new, {gen['done_before']} already done, {gen['total']} in all")
    INTERRUPT.check(run)
    judged = judge_all(cfg, run, progress=progress, echo=echo)
    echo("  judged: " + ", ".join(f"{k} {v} new" for k, v in judged.items()))
    if cfg.defenses:
        cache: dict[str, LanguageModel] = {}

        def load(spec: ModelSpec) -> LanguageModel:
            if spec.name not in cache:
                cache[spec.name] = load_model(spec, cfg)
            return cache[spec.name]

        scored = score_defenses(cfg, run, protocol, load, progress=progress, echo=echo)
        cache.clear()
        gc.collect()
        echo("  defenses: " + ", ".join(f"{k} {v} new" for k, v in scored.items()))
    if report:
        from srilab.study.analysis import build_report

        paths = build_report(run.path, show_harmful=show_harmful, echo=echo)
        echo(f"report: {paths['report']}   summary: {paths['summary']}")
    echo(f"done in {time.perf_counter() - started:.0f}s")
    return run.path


__all__ = [
    "Cell", "Interrupted", "Item", "JudgeSpec", "cells", "load_items", "preflight", "run_config", "run_study",
    "study_protocol",
]
