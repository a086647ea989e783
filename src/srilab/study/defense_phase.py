"""The defense phase of a run: every configured baseline defense scores the records it will be judged on.

After judging, each model is loaded once and each defense in ``cfg.defenses`` scores, per arm, the records
of the roles the comparison reads (``calibration``, ``eval_seen_topics``, ``eval_unseen_topics`` and
``attacked``); each score is appended to ``defenses.jsonl`` with its per-item cost, so the phase resumes
after a kill and the report compares every detector at a matched FPR from files alone
(:mod:`srilab.analysis.detection`). Scores are oriented like every detector's: higher = more likely a
successful attack.

- ``perplexity``: the attacked prompt under an AR reference model (the arm's model when it is AR, else
  ``options.reference``, else the study's first AR model);
- ``self_examination``, ``refusal_direction`` (fitted on the prompts of the ``centre``/``guard_fit`` benign
  items and of the ``harmful_centre`` items), ``smoothllm`` (re-generates ``copies`` perturbed answers under
  the arm's sampler; ``limit`` bounds its cost), ``output_keyword``: the arm's own model.

A defense with a ``limit`` (the ones that answer again: SmoothLLM, self-reminder, DiffuGuard) scores a seeded
random sample of at most ``limit`` rows of each role, and of the attacked rows a stratified one: ``limit``
successful attacks (by the study's attack-success judge) and ``limit`` others, each drawn at random within its
stratum, so its TPR on jailbroken answers rests on more than the one or two a plain sample would hold. Every
score records its sampling weight (rows of its stratum / rows sampled) and stratum, and the analysis weights
the rates over attacked rows (attack success before and after the defense) by them: population estimates,
not rates of rows picked by their outcome.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from srilab.defenses import DEFENSES, Defense
from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.study.config import DefenseSpec, ModelSpec, StudyConfig
from srilab.study.protocol import Protocol
from srilab.study.store import RunDir
from srilab.study.verdicts import label_verdicts

SCORED_ROLES = ("calibration", "eval_seen_topics", "eval_unseen_topics", "attacked")
FIT_BENIGN = ("centre", "guard_fit")


def sample_rows(rows: list[dict], limit: int | None, label: str) -> list[tuple[dict, float]]:
    """A seeded random sample of at most ``limit`` of ``rows``, each with its weight (rows / rows sampled);
    the draw depends on ``label`` and the rows' keys only, so a resume samples the same rows."""
    if limit is None or len(rows) <= limit:
        return [(r, 1.0) for r in rows]
    order = sorted(rows, key=lambda r: r["key"])
    picked = random.Random(f"srilab-defense-sample:{label}").sample(order, limit)
    return [(r, len(rows) / limit) for r in sorted(picked, key=lambda r: r["key"])]


def _reference(spec: DefenseSpec, lm: LanguageModel, cfg: StudyConfig, load: Callable[[ModelSpec], Any]):
    """The perplexity filter's AR reference: ``options.reference`` (a model name of the study), else the
    arm's model when it is AR, else the study's first AR model."""
    name = spec.options.get("reference")
    if name is None and lm.kind == "ar":
        return lm
    for m in cfg.models:
        if (m.name == name) if name else (m.name != lm.name and load(m).kind == "ar"):
            return load(m)
    raise SrilabError(
        f"defense perplexity needs an AR reference model: {'no model named ' + repr(name) if name else 'none'} "
        "in the study; add one to models or set options.reference"
    )


def build_defense(
    spec: DefenseSpec, lm: LanguageModel, sampler, cfg: StudyConfig, fit_prompts: tuple[list[str], list[str]],
    load: Callable[[ModelSpec], Any],
) -> Defense:
    cls = DEFENSES.get(spec.name)
    opts = {k: v for k, v in spec.options.items() if k != "reference"}
    if spec.name == "perplexity":
        return cls(_reference(spec, lm, cfg, load), **opts)
    if spec.name == "output_keyword":
        return cls(**opts)
    if spec.name in ("smoothllm", "self_reminder"):  # they answer again, under the arm's own sampler
        return cls(lm, sampler, seed=cfg.seed, **opts)
    if spec.name == "diffuguard":  # audits and repairs under the arm's own decoding
        defense = cls(lm, sampler, seed=cfg.seed, **opts)
        if "harmful" not in opts:
            benign, harmful = fit_prompts
            if not benign or not harmful:
                raise SrilabError("diffuguard needs benign centre/guard_fit items and harmful-centre items to fit its "
                                  "direction (or options harmful: [...] and harmless: [...])")
            defense.fit(benign, harmful)
        return defense
    defense = cls(lm, **opts)
    if spec.name == "refusal_direction":
        benign, harmful = fit_prompts
        if not benign or not harmful:
            raise SrilabError("refusal_direction needs benign centre/guard_fit items and harmful-centre items to fit")
        defense.fit(benign, harmful)
    return defense


def _succeeded(run: RunDir, records: list[dict], cfg: StudyConfig) -> set[str]:
    """Keys of the records the study's attack-success judge counts as successful attacks (judged records)."""
    verdicts: dict[str, dict[str, dict]] = {}
    for j in run.judgements().rows():
        verdicts.setdefault(j["key"], {})[j["judge"]] = j
    judged = [dict(r) for r in records if all(j.key in verdicts.get(r["key"], {}) for j in cfg.judges)]
    label_verdicts(judged, verdicts, cfg)
    return {r["key"] for r in judged if r["harmful"]}


def _strata(arm: list[dict], rl: str, role: dict[str, str], succeeded: set[str], limit: int | None):
    """The rows of one role as ``(stratum, rows)``: with a limit, the attacked rows come as the successful
    attacks and the others, sampled apart (a bounded sample still measures the TPR on jailbroken answers)."""
    rows = [x for x in arm if role[x["key"]] == rl]
    if limit is None or rl != "attacked":
        return [(rl, rows)]
    return [("attacked/succeeded", [x for x in rows if x["key"] in succeeded]),
            ("attacked/failed", [x for x in rows if x["key"] not in succeeded])]


def _answers_after(defense: Defense, n: int) -> list[dict[str, Any]]:
    """A defense that changes the answer (DiffuGuard's repair): the answer after it and whether it refuses."""
    responses, refused = getattr(defense, "last_responses", None), getattr(defense, "last_refused", None)
    if responses is None or refused is None or len(responses) != n or len(refused) != n:
        return [{} for _ in range(n)]
    return [{"response_after": str(t), "refused_after": bool(f)} for t, f in zip(responses, refused, strict=True)]


def score_defenses(
    cfg: StudyConfig, run: RunDir, protocol: Protocol, load: Callable[[ModelSpec], LanguageModel], *,
    progress: bool, echo: Callable[[str], None],
) -> dict[str, int]:
    """Score every pending (record, defense) pair; returns the number of new scores per defense."""
    if not cfg.defenses:
        return {}
    journal = run.defenses()
    done = journal.done()
    records = list(run.records().rows())
    role = {r["key"]: protocol.role(r["dataset"], r["item"]) for r in records}
    succeeded = _succeeded(run, records, cfg)
    counts = {d.name: 0 for d in cfg.defenses}
    for mspec in cfg.models:
        mine = [r for r in records if r["model"] == mspec.name]
        todo: dict[tuple[str, str], list[dict]] = {}
        for sampler in mspec.samplers:
            arm = [r for r in mine if r["sampler"] == sampler.label]
            for spec in cfg.defenses:
                # The sample comes from all of the arm's rows, not the pending ones: a resume scores the same rows.
                chosen = [(r, w, stratum) for rl in SCORED_ROLES
                          for stratum, part in _strata(arm, rl, role, succeeded, spec.limit)
                          for r, w in sample_rows(part, spec.limit, f"{cfg.seed}:{sampler.label}:{spec.name}:"
                                                                    f"{stratum}")]
                todo[(sampler.label, spec.name)] = [c for c in chosen if (c[0]["key"], spec.name) not in done]
        if not any(todo.values()):
            continue
        lm = load(mspec)
        first = mine[0]["sampler"]
        fit = ([r["prompt"] for r in mine if role[r["key"]] in FIT_BENIGN and r["sampler"] == first],
               [r["prompt"] for r in mine if role[r["key"]] == "harmful_centre" and r["sampler"] == first])
        for sampler in mspec.samplers:
            for spec in cfg.defenses:
                rows = todo[(sampler.label, spec.name)]
                if not rows:
                    continue
                defense = build_defense(spec, lm, sampler, cfg, fit, load)
                bar = tqdm(total=len(rows), desc=f"defense {spec.name} [{mspec.name}/{sampler.label}]",
                           disable=not progress, unit="gen", leave=False)
                for lo in range(0, len(rows), 64):
                    part = rows[lo : lo + 64]
                    out = defense.run([r["prompt"] for r, _, _ in part], [r["response"] for r, _, _ in part])
                    per_item = out.seconds / len(part)
                    after = _answers_after(defense, len(part))
                    counts[spec.name] += journal.append(
                        {"key": r["key"], "defense": spec.name, "score": float(s), "seconds": per_item,
                         "weight": w, "stratum": stratum, **a}
                        for (r, w, stratum), s, a in zip(part, out.scores, after, strict=True)
                    )
                    bar.update(len(part))
                bar.close()
        del lm
        gc.collect()
    return counts
