"""The study matrix: the items of every dataset (with their topic groups), their protocol roles, and the
cells (model x sampler x dataset x attack) that generate them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from srilab.attacks import get_attack
from srilab.errors import SrilabError
from srilab.sampling.api import Sampler
from srilab.study.config import TOY_PREFIX, AttackSpec, DatasetSpec, ModelSpec, StudyConfig
from srilab.study.protocol import Protocol, ProtocolItem, assign
from srilab.toy.pair import pair_world

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
        attack = self.attack.key.replace(":", "~")
        return f"{self.model.name}.{self.sampler.label}.{self.dataset.name}.{attack}"

    def key(self, item: Item) -> str:
        return f"{self.model.name}/{self.sampler.label}/{self.dataset.name}/{self.attack.key}/{item.id}"


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
            f"toy-{ds.split}-{i}", i, r["prompt"], target_for(world, r["task"]) if r["task"] else None,
            r.get("lookalike") or r["group"],  # a safe look-alike's category is its XSTest type
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
        if m.is_toy and m.dtype not in (None, "float32"):
            raise SrilabError(f"model {m.name!r}: the toy pair runs in float32 only (dtype {m.dtype!r}): drop dtype")
    if any(j.name == "oracle" for j in cfg.judges) and not (
        toy_models and all(d.source == "toy" for d in cfg.datasets)
    ):
        raise SrilabError("the oracle judge knows only the toy world: use it with toy models and toy datasets")


def _task(item: Item) -> str | None:
    """The task an item asks (its phrasings share it: the toy world's ``task``), or None: the item is its own."""
    task = item.meta.get("task") if isinstance(item.meta, dict) else None
    return str(task) if task not in (None, "") else None


def study_protocol(cfg: StudyConfig, items: dict[str, list[Item]]) -> Protocol:
    """Every item's role (:mod:`srilab.study.protocol`), from the config and the loaded items alone."""
    by_role: dict[str, dict[str, list[ProtocolItem]]] = {"benign": {}, "harmful": {}, "capability": {}}
    for d in cfg.datasets:
        by_role[d.role][d.name] = [ProtocolItem(d.name, it.id, it.group, _task(it)) for it in items[d.name]]
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
    if cell.dataset.role != "harmful":  # a benign task fitted in another dataset may be left out here
        return [it for it in items if protocol.role(cell.dataset.name, it.id) != "excluded"]
    skip = {"excluded"} if cell.attack.name == "direct" else {"excluded", "harmful_centre"}
    return [it for it in items if protocol.role(cell.dataset.name, it.id) not in skip]


def cells(cfg: StudyConfig) -> tuple[list[Cell], list[str]]:
    """The matrix, in run order, and the (model, sampler, attack) combinations skipped as not applicable."""
    out, skipped = [], []
    for m in cfg.models:
        for s in m.samplers:
            for d in cfg.datasets:
                if d.role == "harmful":
                    attacks = [a for a in cfg.attacks if d.attacks is None or a.key in d.attacks]
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
