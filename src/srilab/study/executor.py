"""Work units and the executors that compute them: where a study's generations run.

A *work unit* is one (cell, batch) pair of the study matrix: the cell's items cut into fixed batches, in
the run order of :func:`srilab.study.matrix.cells`, so the units follow from the config alone. Computing a
unit (:func:`compute_unit`) attacks, generates and traces its batch and returns plain data -- the records,
the trace tensors and their keys -- without touching the run directory; the driver then commits it
(:func:`commit`): the shard written atomically, then the batch's records appended (see
:mod:`srilab.study.store`). Every item has its own seed, so a unit computed again (after a kill, or by
another worker) gives the same records and the same trace, bit for bit, at the same torch thread count.

Executors: ``local`` computes the units in this process, one after another; ``ray``
(:mod:`srilab.study.executor_ray`) computes them in a pool of Ray actors, each holding one model replica,
and the driver commits the results in unit order, exactly as the local executor does. The executor is
chosen by the ``executor:`` block of a study config or ``srilab run --executor local|ray --workers N``; it is
not part of the config a resumed run must match, so a run started locally may be finished with Ray and
vice versa.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save

from srilab.attacks import AttackContext, get_attack
from srilab.errors import SrilabError
from srilab.judges import make_judge
from srilab.sampling.api import Sampler, generate
from srilab.sampling.trace import TraceConfig
from srilab.sri.dynamics import intermediate_texts
from srilab.study.interrupt import INTERRUPT
from srilab.study.store import Journal, RunDir, atomic_write_bytes
from srilab.toy.pair import pair_world

if TYPE_CHECKING:
    from srilab.models.base import LanguageModel
    from srilab.study.config import ModelSpec, StudyConfig
    from srilab.study.matrix import Cell, Item

DEFAULT_TARGET = "Sure, here is how to do that:"


# ------------------------------------------------------------------------------------------------ models
def load_model(spec: ModelSpec, cfg: StudyConfig) -> LanguageModel:
    """The model of ``spec`` on its device and in its dtype (the embedded toy pair for ``toy:ar|diffusion``)."""
    if spec.is_toy:
        from srilab.toy.pair import load_pair

        ar, dlm = load_pair(cfg.toy_pair, device=spec.device)
        lm = ar if spec.path == "toy:ar" else dlm
        if spec.kind is not None and spec.kind != lm.kind:
            raise SrilabError(f"model {spec.name!r}: {spec.path} is the {lm.kind} toy model, not {spec.kind}: "
                              "drop kind, or use the other toy model")
    else:
        from srilab.models import load

        lm = load(
            spec.path, kind=spec.kind, device=spec.device, dtype=spec.dtype, gguf_file=spec.gguf_file,
            trust_remote_code=spec.trust_remote_code, allow_pickle=spec.allow_pickle,
            allow_partial=spec.allow_partial_checkpoint,
        )
    lm.name = spec.name
    return lm


# ------------------------------------------------------------------------------------------------ units
@dataclass(frozen=True)
class Unit:
    """One (cell, batch) pair: ``position`` in the run order, the batch's items, its shard (run-relative)."""

    position: int
    cell: Cell
    batch: int
    items: tuple[Item, ...]
    shard: str


def plan_units(
    cfg: StudyConfig, run: RunDir, journal: Journal, echo: Callable[[str], None]
) -> tuple[list[Unit], int, int]:
    """The units still to compute (a batch with a missing record or an unreadable shard), in run order (model
    by model, as the models are listed); with the number of generations in all and already done."""
    from srilab.study.matrix import cell_items, cells, load_items, study_protocol

    matrix, skipped = cells(cfg)
    for note in skipped:
        echo(f"note: {note}")
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    protocol = study_protocol(cfg, items)
    done = {k for (k,) in journal.done()}
    broken = records_without_shard(run, journal)
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
    ordered = [w for spec in cfg.models for w in todo.get(spec.name, [])]
    units = [
        Unit(i, cell, b, tuple(chunk), str(run.shard_path(cell.id, b).relative_to(run.path)))
        for i, (cell, b, chunk) in enumerate(ordered)
    ]
    return units, total, already


def records_without_shard(run: RunDir, journal: Journal) -> set[str]:
    """Keys of records whose trace shard is missing, unreadable, or does not hold them (to regenerate)."""
    by_shard: dict[str, list[str]] = {}
    for r in journal.rows():
        by_shard.setdefault(str(r.get("shard", "")), []).append(r["key"])
    broken: set[str] = set()
    for rel, keys in by_shard.items():
        if not rel or not run.shard_holds(rel, keys):
            broken.update(keys)
    return broken


def commit(run: RunDir, journal: Journal, result: dict[str, Any]) -> int:
    """Write a computed unit into the run directory: its shard (atomic), then its missing records (one
    append); return how many records were new. The same for every executor."""
    data = save(result["tensors"], metadata={"keys": json.dumps(result["keys"])})
    atomic_write_bytes(run.path / result["shard"], data)
    return journal.append(result["rows"])  # only the batch's missing rows: no duplicate after a partial append


def run_local(
    units: list[Unit], cfg: StudyConfig, run: RunDir, journal: Journal, bar, *, model=load_model
) -> int:
    """Compute the units in this process (one model loaded at a time); return the number of new records."""
    import gc

    new, lm = 0, None
    for unit in units:
        if lm is None or lm.name != unit.cell.model.name:
            lm = None
            gc.collect()
            lm = model(unit.cell.model, cfg)
        bar.set_postfix_str(unit.cell.id[-40:])
        with INTERRUPT.batch():
            added = commit(run, journal, compute_unit(unit, lm, cfg))
        new += added
        bar.update(added)
        INTERRUPT.check(run)
    return new


# ------------------------------------------------------------------------------------------------ computing
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
        options["judge"] = registered_judge(options["judge"], cfg_pair)
    return AttackContext(
        target=a.target or item.target or DEFAULT_TARGET, steps=cell.sampler.num_steps,
        gen_length=cell.sampler.response_length, injection_fraction=a.injection_fraction,
        count_tokens=count if tok is not None else None, model=lm, seed=seed + item.index,
        options=options, sampler=cell.sampler, generate=generate, **extra,
    )


@functools.lru_cache(maxsize=8)
def registered_judge(name: str, toy_pair: str | None):
    """A query attack's judge by name, built once per process (the oracle needs the toy world, built once too)."""
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


def compute_unit(unit: Unit, lm: LanguageModel, cfg: StudyConfig) -> dict[str, Any]:
    """Attack, generate and trace one unit's batch; return its records, trace tensors and keys (plain data:
    nothing is written, so any process may compute it and the driver commits it)."""
    cell, batch, items = unit.cell, unit.batch, list(unit.items)
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
    keys = [cell.key(it) for it in items]
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
            "canvas": [asdict(c) for c in a.canvas], "attack_meta": jsonable(a.meta),
            "response": full, "generated": text, "category": it.category, "target": it.target,
            "meta": it.meta, "group": it.group, "seed": seeds[r], "shard": unit.shard, "row": r, "batch": batch,
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
                **x0_texts(trace, r, lm, a.prefill),
            }
    return {"shard": unit.shard, "tensors": tensors, "keys": keys, "rows": rows, "seconds": gen.seconds}


def x0_texts(trace, row: int, lm: LanguageModel, prefill: str | None) -> dict[str, Any]:
    """The decoded x0 (the sampler's guess at every response position) at the traced steps but the last."""
    if trace.x0_tokens is None or not trace.x0_steps:
        return {}
    keep = [i for i, s in enumerate(trace.x0_steps) if s < trace.num_steps - 1]
    tokens = trace.x0_tokens[row].numpy()
    texts = intermediate_texts(tokens, lm.decode, lm.mask_id, keep)
    return {"x0_steps": [trace.x0_steps[i] for i in keep],
            "x0_texts": [f"{prefill} {t}".strip() if prefill else t for t in texts]}


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
