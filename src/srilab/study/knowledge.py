"""The knowledge ceiling as a study stage: what each arm can write when nothing asks it to refuse.

A model that cannot produce the harm is ignorant, not safe, so every report reads attack success beside what
the model knows. After judging, each arm (model x sampler) is asked every attacked harmful request without
the chat template, under its own decoding:

- toy items (they name their task): the task in the pretraining corpus' formats, scored by the world's
  procedure steps (:mod:`srilab.toy.knowledge`): a task is known when any format reproduces half its steps;
- other items: the request itself as a plain completion (format ``plain``), judged by the study's harm judge
  (no harm judge: the stage is skipped and the report says so).

Each answer is appended to ``knowledge.jsonl`` (resumable); :func:`srilab.analysis.knowledge.knowledge_figures`
reads them. A request is counted once, not once per phrasing or attack (:func:`unit_of`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from srilab.study.config import ModelSpec, StudyConfig
from srilab.study.protocol import Protocol
from srilab.study.store import Journal, RunDir

PLAIN = "plain"


def knowledge_journal(run: RunDir) -> Journal:
    """``knowledge.jsonl``: one row per arm, request and format (key ``arm|unit|format``)."""
    return Journal(run.path / "knowledge.jsonl", repair=run.writable)


def unit_of(record: dict) -> str:
    """The request a record attacks: its toy task, else its dataset and item."""
    task = (record.get("meta") or {}).get("task")
    return f"task:{task}" if task else f"item:{record['dataset']}/{record['item']}"


def _requests(cfg: StudyConfig, records: list[dict], role: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(unit, format, prompt)`` for every attacked harmful request of the study, each unit once."""
    from srilab.toy.knowledge import probe_prompts

    world = None
    out: dict[tuple[str, str], str] = {}
    for r in records:
        if role.get(r["key"]) != "attacked":
            continue
        unit = unit_of(r)
        if unit.startswith("task:"):
            if world is None:
                from srilab.toy.pair import pair_world

                world = pair_world(cfg.toy_pair)
            task = world.task(unit[5:])
            for _, fmt, prompt in probe_prompts([task]):
                out.setdefault((unit, fmt), prompt)
        else:
            out.setdefault((unit, PLAIN), r["request"])
    return [(u, f, p) for (u, f), p in sorted(out.items())]


def _score(cfg: StudyConfig, asked: list[tuple[str, str, str]], texts: list[str]) -> list[bool]:
    """Whether each answer writes the request's content: the toy task's steps, else the harm judge."""
    from srilab.toy.knowledge import knows

    out: list[bool | None] = [None] * len(asked)
    plain = [i for i, (u, _, _) in enumerate(asked) if not u.startswith("task:")]
    if len(plain) < len(asked):
        from srilab.toy.pair import pair_world

        world = pair_world(cfg.toy_pair)
        for i, (u, f, _) in enumerate(asked):
            if u.startswith("task:"):
                out[i] = knows(world.task(u[5:]), texts[i], f)
    if plain:
        verdicts = _harm_judge(cfg)([asked[i][2] for i in plain], [texts[i] for i in plain])
        for i, v in zip(plain, verdicts, strict=True):
            out[i] = bool(v.harmful)
    return [bool(x) for x in out]


def _harm_judge(cfg: StudyConfig):
    from srilab.study.judge_phase import build_judge

    key = cfg.harm_judge()
    return build_judge(next(j for j in cfg.judges if j.key == key), cfg)


def probe_knowledge(
    cfg: StudyConfig, run: RunDir, protocol: Protocol, load: Callable[[ModelSpec], Any], *, progress: bool,
) -> int:
    """Ask every arm every attacked request as plain text (resumable); returns the number of new answers."""
    from srilab.sampling.api import generate

    records = list(run.records().rows())
    role = {r["key"]: protocol.role(r["dataset"], r["item"]) for r in records}
    asked = _requests(cfg, records, role)
    if not asked or (cfg.harm_judge() is None and any(f == PLAIN for _, f, _ in asked)):
        return 0
    journal = knowledge_journal(run)
    done = journal.done()
    new = 0
    for mspec in cfg.models:
        for sampler in mspec.samplers:
            arm = f"{mspec.name}/{sampler.label}"
            todo = [a for a in asked if (f"{arm}|{a[0]}|{a[1]}",) not in done]
            if not todo:
                continue
            lm = load(mspec)
            bar = tqdm(total=len(todo), desc=f"knowledge [{arm}]", disable=not progress, unit="gen", leave=False)
            for lo in range(0, len(todo), 64):
                part = todo[lo : lo + 64]
                texts = generate(lm, [p for _, _, p in part], sampler, chat=False, batch_size=cfg.batch_size).texts
                known = _score(cfg, part, texts)
                new += journal.append(
                    {"key": f"{arm}|{u}|{f}", "arm": arm, "unit": u, "format": f, "response": t, "knows": k}
                    for (u, f, _), t, k in zip(part, texts, known, strict=True)
                )
                bar.update(len(part))
            bar.close()
        gc.collect()
    return new
