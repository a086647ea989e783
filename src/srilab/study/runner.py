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

import gc
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
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
from srilab.study.config import TOY_PREFIX, AttackSpec, DatasetSpec, JudgeSpec, ModelSpec, StudyConfig, load_config
from srilab.study.defense_phase import score_defenses
from srilab.study.judge_phase import judge_all
from srilab.study.protocol import Protocol, ProtocolItem, assign
from srilab.study.store import RunDir, atomic_write_bytes, atomic_write_text
from srilab.toy.pair import pair_world

DEFAULT_TARGET = "Sure, here is how to do that:"
DIRECT = AttackSpec(name="direct")


@dataclass(frozen=True)
class Item:
    """One request of a dataset."""

    id: str
    index: int
    prompt: str
    target: str | None = None
    category: str | None = None
    meta: dict = field(default_factory=dict, hash=False)
    group: str | None = None  # the topic group (see DatasetSpec.group_by)


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    sampler: Sampler
    dataset: DatasetSpec
    attack: AttackSpec

    @property
    def id(self) -> str:
        attack = self.attack.name.replace(":", "~")
        return f"{self.model.name}.{self.sampler.label}.{self.dataset.name}.{attack}"

    def key(self, item: Item) -> str:
        return f"{self.model.name}/{self.sampler.label}/{self.dataset.name}/{self.attack.name}/{item.id}"


# ------------------------------------------------------------------------------------------------ data
def load_items(ds: DatasetSpec, cfg: StudyConfig) -> list[Item]:
    """The dataset's requests as items (ids unique within the dataset)."""
    if ds.source == "toy":
        return _toy_items(ds, cfg)
    from srilab.data import load_dataset, load_prompts

    if ds.source == "prompts":
        if ds.path is None:
            raise SrilabError(f"dataset {ds.name!r}: source: prompts needs a path")
        records = load_prompts(ds.path, column=ds.column, limit=ds.limit, on_error=ds.on_error)
    else:
        records = load_dataset(
            ds.source, ds.path, split=ds.split, limit=ds.limit, on_error=ds.on_error, hub_id=ds.hub_id
        )
    if not records:
        raise SrilabError(f"dataset {ds.name!r} has no rows (source {ds.source}, path {ds.path})")
    seen: dict[str, int] = {}
    items = []
    for i, r in enumerate(records):
        rid = r.id
        if rid in seen:  # ids must be unique keys: a repeated id gets its row number appended
            rid = f"{r.id}#{i}"
        seen[rid] = i
        items.append(Item(rid, i, r.prompt, r.target, r.category, {"label": r.label}))
    return _grouped(items, ds)


def _grouped(items: list[Item], ds: DatasetSpec) -> list[Item]:
    """Items with their topic group: the category, or ``hash:N`` groups of the id (also the fallback, with
    8 groups, for a benign set without categories)."""
    how = ds.group_by
    if how == "category" and any(it.category for it in items):
        return [replace(it, group=it.category or "(none)") for it in items]
    n = int(how[5:]) if how.startswith("hash:") else 8
    return [replace(it, group=f"h{int(hashlib.sha256(it.id.encode()).hexdigest(), 16) % n}") for it in items]


def _toy_items(ds: DatasetSpec, cfg: StudyConfig) -> list[Item]:
    from srilab.toy.corpus import eval_sets
    from srilab.toy.world import target_for

    world = pair_world(cfg.toy_pair)
    sets = eval_sets(world)
    if ds.split not in sets:
        raise SrilabError(f"dataset {ds.name!r}: toy split must be one of {', '.join(sets)}, got {ds.split!r}")
    rows = list(enumerate(sets[ds.split]))
    if ds.limit and ds.limit < len(rows):  # evenly spaced: the toy sets are ordered by task, so a prefix is one topic
        rows = [rows[int(i)] for i in np.unique(np.linspace(0, len(rows) - 1, ds.limit).round().astype(int))]
    return [
        Item(
            f"toy-{ds.split}-{i}", i, r["prompt"], target_for(world, r["task"]) if r["task"] else None, r["group"],
            {"task": r["task"], "answer": r["answer"], "kind": r["kind"]}, group=r["group"],
        )
        for i, r in rows
    ]


def check_names(cfg: StudyConfig) -> None:
    """Attack names and the oracle's world are checked before any model is loaded (judge names: by the
    config)."""
    for a in cfg.attacks:
        get_attack(a.name)
    toy_models = all(m.is_toy for m in cfg.models)
    for m in cfg.models:
        if m.is_toy and m.path[len(TOY_PREFIX):] not in ("ar", "diffusion"):
            raise SrilabError(f"model {m.name!r}: toy models are toy:ar or toy:diffusion, got {m.path!r}")
    if any(j.name == "oracle" for j in cfg.judges) and not (
        toy_models and all(d.source == "toy" for d in cfg.datasets)
    ):
        raise SrilabError("the oracle judge knows only the toy world: use it with toy models and toy datasets")


def study_protocol(cfg: StudyConfig, items: dict[str, list[Item]]) -> Protocol:
    """Every item's role (:mod:`srilab.study.protocol`), from the config and the loaded items alone."""
    by_role: dict[str, dict[str, list[ProtocolItem]]] = {"benign": {}, "harmful": {}, "capability": {}}
    for d in cfg.datasets:
        by_role[d.role][d.name] = [ProtocolItem(d.name, it.id, it.group) for it in items[d.name]]
    harmful = [d.name for d in cfg.datasets if d.role == "harmful"]
    p = cfg.protocol
    return assign(
        cfg.seed if p.seed is None else p.seed, by_role["benign"], by_role["harmful"], by_role["capability"],
        shares={"centre": p.centre, "guard_fit": p.guard_fit, "calibration": p.calibration,
                "eval_seen_topics": p.eval_seen_topics},
        dataset_roles={d.name: d.roles for d in cfg.datasets if d.role == "benign"},
        unseen_share=p.unseen_groups, centre_dataset=(cfg.sri.harmful or harmful[0]) if cfg.sri.enabled else None,
        harmful_centre_share=p.harmful_centre,
    )


def cell_items(cell: Cell, items: list[Item], protocol: Protocol) -> list[Item]:
    """The items a cell generates: harmful-centre items are asked directly only (never attacked), excluded
    items never."""
    if cell.dataset.role != "harmful":
        return items
    skip = {"excluded"} if cell.attack.name == "direct" else {"excluded", "harmful_centre"}
    return [it for it in items if protocol.role(cell.dataset.name, it.id) not in skip]


def cells(cfg: StudyConfig) -> tuple[list[Cell], list[str]]:
    """The matrix, in run order, and the (model, sampler, attack) combinations skipped as not applicable."""
    out, skipped = [], []
    for m in cfg.models:
        for s in m.samplers:
            for d in cfg.datasets:
                if d.role == "harmful":
                    attacks = [a for a in cfg.attacks if d.attacks is None or a.name in d.attacks]
                else:
                    attacks = [DIRECT]
                for a in attacks:
                    if not get_attack(a.name).applies_to(s.kind):
                        note = f"{a.name} needs a {get_attack(a.name).needs} sampler: skipped for {m.name}/{s.label}"
                        if note not in skipped:
                            skipped.append(note)
                        continue
                    out.append(Cell(m, s, d, a))
    return out, skipped


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
            trust_remote_code=spec.trust_remote_code,
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
        options["judge"] = make_judge(name, world=pair_world(cfg_pair) if name == "oracle" else None)
    return AttackContext(
        target=a.target or item.target or DEFAULT_TARGET, steps=cell.sampler.num_steps,
        gen_length=cell.sampler.response_length, injection_fraction=a.injection_fraction,
        count_tokens=count if tok is not None else None, model=lm, seed=seed + item.index,
        options=options, sampler=cell.sampler, generate=generate, **extra,
    )


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
    gen = generate(
        lm, [a.prompt for a in attacked], sampler,
        trace=TraceConfig(layer=cfg.sri.layer, pooling=cfg.sri.pooling, canvas=diffusion),
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
            "dataset": cell.dataset.name, "role": cell.dataset.role, "attack": cell.attack.name,
            "item": it.id, "index": it.index, "request": it.prompt, "prompt": a.prompt, "prefill": a.prefill,
            "canvas": [asdict(c) for c in a.canvas], "attack_meta": _jsonable(a.meta),
            "response": full, "generated": text, "category": it.category, "target": it.target,
            "meta": it.meta, "group": it.group, "seed": seeds[r], "shard": rel, "row": r, "batch": batch,
            "timing": {"seconds": per_item},
        })
        if sampler is not cell.sampler:
            rows[-1]["sampler_settings"] = sampler.key()  # the attack's own decoding (DIJA)
        if gen.filled_prompts and gen.filled_prompts[r] is not None:
            rows[-1]["filled_prompt"] = gen.filled_prompts[r]
        if inter_steps:  # what had been committed at intermediate steps (prefill first, as in the response)
            texts = intermediate_texts(trace.canvas[r].numpy(), lm.decode, lm.mask_id, inter_steps)
            rows[-1]["intermediate"] = {
                "steps": inter_steps, "texts": [f"{a.prefill} {t}".strip() if a.prefill else t for t in texts],
            }
    return rows


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


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
    todo: dict[str, list[tuple[Cell, int, list[Item]]]] = {}
    total = already = 0
    for cell in matrix:
        its = cell_items(cell, items[cell.dataset.name], protocol)
        for b, lo in enumerate(range(0, len(its), cfg.batch_size)):
            chunk = its[lo : lo + cfg.batch_size]
            total += len(chunk)
            missing = [it for it in chunk if cell.key(it) not in done]
            already += len(chunk) - len(missing)
            if missing:
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
            rows = run_batch(cell, b, chunk, lm, cfg, run)
            added = journal.append(rows)  # only the batch's missing rows: no duplicate after a partial append
            new += added
            bar.update(added)
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
    if target.is_dir():
        if not resume:
            raise SrilabError(f"{target} is a directory: pass a study YAML, or --resume to finish that run")
        run = RunDir(target)
        from srilab.study.config import parse_config

        cfg = parse_config(run.read_config(), source=str(run.config_path))
    else:
        cfg = load_config(target)
        run = RunDir(output if output is not None else cfg.output)
    return run_config(cfg, run, resume=resume, progress=progress, report=report, show_harmful=show_harmful, echo=echo)


def run_config(
    cfg: StudyConfig, run: RunDir, *, resume: bool = False, progress: bool = True, report: bool = True,
    show_harmful: bool = False, echo: Callable[[str], None] = print,
) -> Path:
    """Run a validated study config into ``run``: generate, judge, score the defenses, report."""
    check_names(cfg)
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    protocol = study_protocol(cfg, items)
    run.create(cfg.canonical(), resume=resume)
    atomic_write_text(run.path / "protocol.json", json.dumps(protocol.to_dict(), indent=1) + "\n")
    started = time.perf_counter()
    echo(f"srilab run: {cfg.name} -> {run.path}")
    gen = generate_all(cfg, run, progress=progress, echo=echo)
    echo(f"  generations: {gen['new']} new, {gen['done_before']} already done, {gen['total']} in all")
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


__all__ = ["Cell", "Item", "JudgeSpec", "cells", "load_items", "run_config", "run_study", "study_protocol"]
