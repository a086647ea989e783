"""The summary of a finished run: every figure of a study, from the run directory alone (``srilab report RUN_DIR``
writes it out: :mod:`srilab.report.build`).

Per arm (model x sampler), under the protocol's roles (:mod:`srilab.study.protocol`, ``protocol.json``):
refusal and attack success per dataset x attack (attacked items only; every rate as k, n and a Wilson
95% interval); paired tests between arms on the same items; agreement between the judges; capability
(exact match on ``capability`` items, benign answers that reproduce the asked task where an oracle can
tell); denoising dynamics (harm in intermediate canvases, its revision and the final recovery); and
detection (:mod:`srilab.analysis.detection`: the SRI guard, the refusal flag, a text-only detector and every
baseline defense at one matched benign FPR, on seen and unseen benign topics); the claim table
(:mod:`srilab.analysis.claims`) and the knowledge ceiling (:mod:`srilab.analysis.knowledge`). Nothing is written,
and the model is never loaded.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from srilab import stats
from srilab.analysis.claims import claim_specs, evaluate_claims
from srilab.analysis.detection import arm_detection
from srilab.analysis.knowledge import knowledge_figures
from srilab.errors import SrilabError
from srilab.judges.xstest import XSTEST_TYPES
from srilab.study.config import StudyConfig, parse_config
from srilab.study.store import RunDir
from srilab.study.verdicts import label_verdicts, partial_mode

Arm = tuple[str, str]  # (model, sampler)


def arm_name(arm: Arm) -> str:
    return f"{arm[0]}/{arm[1]}"


def load_run(path: str | Path) -> tuple[RunDir, StudyConfig, list[dict], dict[str, dict[str, dict]]]:
    run = RunDir(path)
    cfg = parse_config(run.read_config(), source=str(run.config_path))
    records = list(run.records().rows())
    if not records:
        raise SrilabError(f"{run.path} has no generations yet: run or resume the study first")
    verdicts: dict[str, dict[str, dict]] = defaultdict(dict)
    for j in run.judgements().rows():
        verdicts[j["key"]][j["judge"]] = j
    return run, cfg, records, verdicts


def load_protocol(run: RunDir) -> dict[str, Any]:
    path = run.path / "protocol.json"
    if not path.is_file():
        raise SrilabError(f"{path} is missing: resume the run (srilab run --resume {run.path}) to write it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SrilabError(f"{path}: not valid JSON ({err.msg}); resume the run to rewrite it") from None


def _rate(flags) -> dict[str, Any]:
    return stats.rate(np.asarray(flags, dtype=bool))


def judged_rows(
    records: list[dict], verdicts: dict, cfg: StudyConfig, protocol: dict[str, Any]
) -> tuple[list[dict], str]:
    """The records every judge has judged, labelled with their verdicts (:func:`label_verdicts`) and their
    ``protocol_role``; and the basis of attack success."""
    role_of = {item: role for role, items in protocol["roles"].items() for item in items}
    judged = [r for r in records if all(j.key in verdicts.get(r["key"], {}) for j in cfg.judges)]
    asr_basis = label_verdicts(judged, verdicts, cfg)
    for r in judged:
        r["protocol_role"] = role_of.get(f"{r['dataset']}/{r['item']}", "unassigned")
    return judged, asr_basis


def summarise(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary (JSON-safe) and the arrays the plots need."""
    run, cfg, records, verdicts = load_run(path)
    protocol = load_protocol(run)
    warnings: list[str] = list(protocol.get("notes", []))
    judged, asr_basis = judged_rows(records, verdicts, cfg, protocol)
    if len(judged) < len(records):
        warnings.append(
            f"{len(records) - len(judged)} of {len(records)} generations are not judged yet: resume the run to finish"
        )
    arms: dict[Arm, list[dict]] = defaultdict(list)
    for r in judged:
        arms[(r["model"], r["sampler"])].append(r)
    summary: dict[str, Any] = {
        "study": cfg.name, "run_dir": str(run.path), "asr_basis": asr_basis,
        "judges": {"refusal": cfg.refusal_key(), "attack_success": cfg.harm_judge()},
        "judge_validity": judges_validity(cfg), "partial_refusal": partial_mode(cfg),
        "records": len(records), "judged": len(judged),
        "config": cfg.canonical(), "protocol": protocol, "arms": {}, "paired": {}, "judge_agreement": None,
        "warnings": warnings,
    }
    versions = run.versions()
    if versions is not None:
        summary["versions"] = versions
    defense_scores: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for d in run.defenses().rows():
        defense_scores[d["defense"]][d["key"]] = (d["score"], d["seconds"], d.get("weight", 1.0))
    dyn = {(d["key"]): d for d in run.dynamics().rows()}
    private: dict[str, Any] = {"arms": {}}
    for arm, rows in arms.items():
        name = arm_name(arm)
        res = {"model": arm[0], "sampler": arm[1], "sampler_kind": rows[0]["sampler_kind"], "cells": {},
               "capability": capability(rows, verdicts, cfg), "dynamics": dynamics(rows, dyn)}
        cell_rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in rows:
            if r["protocol_role"] != "harmful_centre":  # the harmful centre's items are never scored
                cell_rows[(r["dataset"], r["attack"])].append(r)
        for (ds, attack), rs in cell_rows.items():
            entry = {"dataset": ds, "attack": attack, "role": rs[0]["role"], "n": len(rs),
                     "refusal": _rate([r["refused"] for r in rs]), "partial_refusal": _rate([r["partial"] for r in rs])}
            if rs[0]["role"] == "harmful":
                entry["asr"] = _rate([r["harmful"] for r in rs])
            res["cells"][f"{ds}/{attack}"] = entry
        by_type = over_refusal_by_type(rows, cfg)
        if by_type:
            res["over_refusal_by_type"] = by_type
        res["seconds"] = float(sum(r["timing"]["seconds"] for r in rows))
        tps = [r["tokens_per_step"] for r in rows if r.get("tokens_per_step")]
        if tps:  # diffusion: response positions per step that committed something (parallel decoding: > 1)
            res["tokens_per_step"] = float(np.mean(tps))
        private["arms"][name] = {"rows": rows}
        if cfg.sri.enabled:
            notes: list[str] = []
            try:
                res["detection"], private["arms"][name]["detection"] = arm_detection(
                    run, cfg, rows, defense_scores, notes
                )
            except SrilabError as err:
                notes.append(f"{name}: detection skipped: {err}")
            warnings.extend(notes)
        summary["arms"][name] = res
    for name, figures in knowledge_figures(run, {n: a["rows"] for n, a in private["arms"].items()}).items():
        summary["arms"][name]["knowledge"] = figures
    summary["paired"] = paired_tests(arms, cfg)
    summary["judge_agreement"] = judge_agreement(judged, verdicts, cfg)
    summary["claims"] = evaluate_claims(claim_specs(cfg, run.path), summary, private, n_boot=cfg.n_boot,
                                        seed=cfg.seed)
    return summary, private


def judges_validity(cfg: StudyConfig) -> dict[str, Any]:
    """Which judge decided refusal and attack success, and its measured validity on the labelled SmolLM2
    answers (shipped ``srilab/judges/validity.json``; None: not measured on real answers)."""
    from srilab.judges.validation import judge_validity, validity_text

    def entry(key: str | None, what: str) -> dict[str, Any]:
        if key is None:  # no harm judge: attack success is "not refused" by the refusal judge, a proxy
            ref = entry(cfg.refusal_key(), "refusal")
            return {**ref, "judge": None, "proxy_of": ref["judge"],
                    "text": f"no harm judge: 'not refused' by judge {ref['judge']} (a proxy; as a measure of harm "
                            f"not measured on real answers); that judge's refusal figures: {ref['text']}"}
        spec = cfg.judge(key)
        found = judge_validity(spec.name) if spec.path is None else None  # a model-backed judge: per model
        text = validity_text(found)
        if what == "attack_success" and spec.decides != "harmful":
            text = f"'not refused' by a refusal judge (a proxy for harm); its refusal figures: {text}"
        return {"judge": key, "name": spec.name, "decides": spec.decides, "measured": found is not None,
                "validity": found, "text": text}

    return {"refusal": entry(cfg.refusal_key(), "refusal"), "attack_success": entry(cfg.harm_judge(), "attack_success")}


def over_refusal_by_type(rows: list[dict], cfg: StudyConfig) -> dict[str, dict[str, Any]]:
    """Refusal (and partial refusal) per XSTest type, per benign dataset/attack whose items carry a type: an
    ``xstest`` dataset's rows, or any benign rows whose category is one of :data:`XSTEST_TYPES`."""
    xstest = {d.name for d in cfg.datasets if d.source == "xstest"}
    cells: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        kind = r.get("category")
        if r["role"] == "benign" and kind and (r["dataset"] in xstest or kind in XSTEST_TYPES):
            cells[f"{r['dataset']}/{r['attack']}"][kind].append(r)
    return {cell: {kind: {"refusal": _rate([r["refused"] for r in rs]),
                          "partial_refusal": _rate([r["partial"] for r in rs])}
                   for kind, rs in sorted(kinds.items())} for cell, kinds in cells.items()}


def capability(rows: list[dict], verdicts: dict, cfg: StudyConfig) -> dict[str, Any]:
    """Exact match on ``capability`` items (the item's answer in the response), and benign answers that
    reproduce the asked task where the attack-success judge names the task it found (the toy oracle)."""
    from srilab.toy.reasoning import check_reasoning_answer

    out: dict[str, Any] = {}
    by_ds: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_ds[r["dataset"]].append(r)
    harm = cfg.harm_judge()
    for ds, rs in by_ds.items():
        if rs[0]["role"] == "capability":
            answered = [r for r in rs if r["meta"].get("answer") is not None]
            if answered:
                out[f"{ds} exact match"] = _rate(
                    [check_reasoning_answer(r["generated"], str(r["meta"]["answer"])) for r in answered]
                )
        elif rs[0]["role"] == "benign" and harm is not None:
            tasked = [r for r in rs if r["meta"].get("task") and r["protocol_role"].startswith("eval")]
            if tasked and any(verdicts[r["key"]][harm].get("label") for r in tasked):
                out[f"{ds} correct (eval items)"] = _rate(
                    [verdicts[r["key"]][harm].get("label") == r["meta"]["task"] for r in tasked]
                )
    return out


def dynamics(rows: list[dict], dyn: dict[str, dict]) -> dict[str, Any]:
    """Harm in intermediate states (judged every few steps), its revision and the final recovery, per harmful
    dataset/attack (diffusion arms whose records carry intermediate decodes): ``committed`` reads what had been
    committed (with low-confidence remasking a commit is final), ``x0`` the sampler's current guess at every
    position (what the model would write; it can change before it is committed)."""
    out: dict[str, Any] = {}
    cells: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["role"] == "harmful" and r["protocol_role"] == "attacked" and r["key"] in dyn:
            cells[f"{r['dataset']}/{r['attack']}"].append(r)
    for cell, rs in cells.items():
        final = np.array([r["harmful"] for r in rs], dtype=bool)
        entry: dict[str, Any] = {}
        for name, field in (("committed", "harmful"), ("x0", "x0_harmful")):
            if not all(field in dyn[r["key"]] for r in rs):
                continue
            inter = np.array([dyn[r["key"]][field] for r in rs], dtype=bool)
            ever = inter.any(axis=1)
            first = inter.argmax(axis=1)
            later_clean = np.array([(~inter[i, first[i] + 1:]).any() for i in range(len(rs))], dtype=bool)
            entry[name] = {
                "steps_judged": int(inter.shape[1]),
                "harmful_intermediate": _rate(ever),
                "revised_after_harmful": _rate(later_clean[ever]),
                "final_recovery": _rate(~final[ever]),
            }
        out[cell] = entry
    return out


def paired_tests(arms: dict[Arm, list[dict]], cfg: StudyConfig) -> dict[str, Any]:
    """Attack success of every pair of arms on the same items (exact McNemar, bootstrap CI of the difference)."""
    out: dict[str, Any] = {}
    for a, b in itertools.combinations(sorted(arms), 2):
        tests = {}
        index_a = {(r["dataset"], r["attack"], r["item"]): r for r in arms[a] if r["protocol_role"] == "attacked"}
        index_b = {(r["dataset"], r["attack"], r["item"]): r for r in arms[b] if r["protocol_role"] == "attacked"}
        cells = sorted({k[:2] for k in index_a} & {k[:2] for k in index_b})
        for ds, attack in cells:
            keys = sorted(k for k in index_a if k[:2] == (ds, attack) and k in index_b)
            if len(keys) < 2:
                continue
            t = stats.paired_test(
                [index_a[k]["harmful"] for k in keys], [index_b[k]["harmful"] for k in keys],
                seed=cfg.seed, n_boot=cfg.n_boot,
            )
            tests[f"{ds}/{attack}"] = {
                "asr_a": t.rate_a, "asr_b": t.rate_b, "diff": t.diff, "diff_low": t.diff_low,
                "diff_high": t.diff_high, "only_a": t.only_a, "only_b": t.only_b, "p_value": t.p_value, "n": t.n,
            }
        if tests:
            out[f"{arm_name(a)} vs {arm_name(b)}"] = tests
    return out


def judge_agreement(records: list[dict], verdicts: dict, cfg: StudyConfig) -> dict[str, Any] | None:
    """Agreement between the harm judges (and "answered", i.e. not refused) on the harmful requests."""
    harm_keys = [j.key for j in cfg.judges if j.decides == "harmful"]
    if not harm_keys:
        return None
    rows = [r for r in records if r["protocol_role"] == "attacked"]
    labels = {k: [bool(verdicts[r["key"]][k].get("harmful")) for r in rows] for k in harm_keys}
    labels["answered (not refused)"] = [not r["refused"] for r in rows]
    from srilab.judges.agreement import agreement

    return agreement(labels)
