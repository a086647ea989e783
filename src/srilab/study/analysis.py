"""``srilab report RUN_DIR``: every figure of a study, from the run directory alone.

Per arm (model x sampler): refusal rate and attack success rate per dataset x attack with bootstrap
95% CIs; paired tests between arms on the same items; agreement between the judges; the SRI centres,
signal, internal recovery and the SRI guard (fitted on benign generations only) with its detection
figures and overhead. Writes ``summary.json`` (machine-readable), ``report.html`` (self-contained,
harmful generations redacted unless ``show_harmful``) and the plots.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from srilab import stats
from srilab.errors import SrilabError
from srilab.study.config import StudyConfig, parse_config
from srilab.study.store import RunDir, atomic_write_text, json_safe

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


def _rate(flags, cfg: StudyConfig) -> dict[str, float]:
    return stats.rate_with_ci(np.asarray(flags, dtype=bool), n_boot=cfg.n_boot, seed=cfg.seed)


def summarise(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary (JSON-safe) and the arrays the plots need."""
    run, cfg, records, verdicts = load_run(path)
    refusal, harm = cfg.refusal_key(), cfg.harm_judge()
    warnings: list[str] = []
    judged = [r for r in records if all(j.key in verdicts.get(r["key"], {}) for j in cfg.judges)]
    if len(judged) < len(records):
        warnings.append(
            f"{len(records) - len(judged)} of {len(records)} generations are not judged yet: resume the run to finish"
        )
    harm_decided = harm is not None and cfg.judge(harm).decides == "harmful"
    for r in judged:
        v = verdicts[r["key"]]
        r["refused"] = bool(v[refusal].get("refused"))
        if harm_decided:
            r["harmful"] = bool(v[harm].get("harmful"))
        else:  # no harm judge, or asr_judge names a refusal judge: "answered" as the proxy, said so
            answered = not bool(v[harm].get("refused")) if harm is not None else not r["refused"]
            r["harmful"] = r["role"] == "harmful" and answered
    if harm_decided:
        asr_basis = f"judge {harm}"
    elif harm is not None:
        asr_basis = f"not refused by judge {harm} (a refusal judge: a proxy, not harm)"
    else:
        asr_basis = "not refused (no harm judge configured: a proxy, not harm)"

    arms: dict[Arm, list[dict]] = defaultdict(list)
    for r in judged:
        arms[(r["model"], r["sampler"])].append(r)
    summary: dict[str, Any] = {
        "study": cfg.name, "run_dir": str(run.path), "asr_basis": asr_basis,
        "judges": {"refusal": refusal, "attack_success": harm},
        "records": len(records), "judged": len(judged),
        "config": cfg.canonical(), "arms": {}, "paired": {}, "judge_agreement": None, "warnings": warnings,
    }
    versions = run.path / "versions.json"
    if versions.is_file():
        summary["versions"] = json.loads(versions.read_text())
    private: dict[str, Any] = {"arms": {}}
    for arm, rows in arms.items():
        res = {"model": arm[0], "sampler": arm[1], "sampler_kind": rows[0]["sampler_kind"], "cells": {}}
        cell_rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in rows:
            cell_rows[(r["dataset"], r["attack"])].append(r)
        for (ds, attack), rs in cell_rows.items():
            entry = {"dataset": ds, "attack": attack, "role": rs[0]["role"], "n": len(rs),
                     "refusal": _rate([r["refused"] for r in rs], cfg)}
            if rs[0]["role"] == "harmful":
                entry["asr"] = _rate([r["harmful"] for r in rs], cfg)
            res["cells"][f"{ds}/{attack}"] = entry
        res["seconds"] = float(sum(r["timing"]["seconds"] for r in rows))
        private["arms"][arm_name(arm)] = {"rows": rows}
        if cfg.sri.enabled:
            try:
                notes: list[str] = []
                res["sri"] = sri_for_arm(run, cfg, rows, private["arms"][arm_name(arm)], notes)
                warnings.extend(f"{arm_name(arm)}: {n}" for n in notes)
            except SrilabError as err:
                warnings.append(f"{arm_name(arm)}: SRI skipped: {err}")
        summary["arms"][arm_name(arm)] = res
    summary["paired"] = paired_tests(arms, cfg)
    summary["judge_agreement"] = judge_agreement(judged, verdicts, cfg)
    return summary, private


def paired_tests(arms: dict[Arm, list[dict]], cfg: StudyConfig) -> dict[str, Any]:
    """Attack success of every pair of arms on the same items (exact McNemar, bootstrap CI of the difference)."""
    out: dict[str, Any] = {}
    for a, b in itertools.combinations(sorted(arms), 2):
        tests = {}
        index_a = {(r["dataset"], r["attack"], r["item"]): r for r in arms[a] if r["role"] == "harmful"}
        index_b = {(r["dataset"], r["attack"], r["item"]): r for r in arms[b] if r["role"] == "harmful"}
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
    rows = [r for r in records if r["role"] == "harmful"]
    labels = {k: [bool(verdicts[r["key"]][k].get("harmful")) for r in rows] for k in harm_keys}
    labels["answered (not refused)"] = [not r["refused"] for r in rows]
    from srilab.judges.agreement import agreement

    return agreement(labels)


# ------------------------------------------------------------------------------------------------ SRI
def sri_for_arm(
    run: RunDir, cfg: StudyConfig, rows: list[dict], private: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """Centres, signal, internal recovery and the SRI guard for one arm (``notes`` collects warnings)."""
    from srilab.sri.centres import CentreKey, compute_centres, data_hash
    from srilab.sri.guard import SRIGuard
    from srilab.sri.metrics import internal_recovery
    from srilab.sri.signal import signal as sri_signal

    benign = [d.name for d in cfg.datasets if d.role == "benign"]
    harmful_ds = [d.name for d in cfg.datasets if d.role == "harmful"]
    harmless_name = cfg.sri.harmless or benign[0]
    harmful_name = cfg.sri.harmful or harmful_ds[0]
    acts = _activations(run, rows)
    idx = {k: np.array([i for i, r in enumerate(rows) if pred(r)], dtype=int) for k, pred in {
        "harmless": lambda r: r["dataset"] == harmless_name,
        "harmful_direct": lambda r: r["dataset"] == harmful_name and r["attack"] == "direct",
    }.items()}
    if not len(idx["harmful_direct"]):
        raise SrilabError(f"the harmful centre needs the direct attack on {harmful_name!r}: add 'direct' to attacks")
    harmless = idx["harmless"][np.argsort([rows[i]["index"] for i in idx["harmless"]], kind="stable")]
    n_fit = int(round(len(harmless) * (1 - cfg.sri.holdout)))
    others = np.array([i for i, r in enumerate(rows) if r["role"] == "benign" and r["dataset"] != harmless_name])
    if n_fit < 4:
        raise SrilabError(f"benign dataset {harmless_name!r} leaves {n_fit} generations to fit the guard (need 4)")
    fit, held = harmless[:n_fit], harmless[n_fit:]
    negatives = np.concatenate([held, others]).astype(int)
    if not len(negatives):
        raise SrilabError("no benign generations are left to test the guard on: set sri.holdout or add a benign set")
    refused = np.array([r["refused"] for r in rows])
    centre_idx = np.concatenate([fit, idx["harmful_direct"]])
    labels_harmful = np.array([False] * len(fit) + [True] * len(idx["harmful_direct"]))
    key = CentreKey(
        model=rows[0]["model"], sampler={"label": rows[0]["sampler"]}, layer=str(cfg.sri.layer),
        pooling=cfg.sri.pooling, data=data_hash(rows[i]["prompt"] for i in centre_idx),
    )
    centre_refused = refused[centre_idx].copy()
    if not centre_refused[labels_harmful].any():
        notes.append(
            f"no direct request of {harmful_name!r} was refused: the harmful centre averages all of them "
            "(the signal then separates compliance from the harmful-request state, not from refusal)"
        )
        centre_refused[labels_harmful] = True
    if centre_refused[~labels_harmful].all():
        notes.append(f"every {harmless_name!r} request used for the fit was refused: the harmless centre uses all")
        centre_refused[~labels_harmful] = False
    centres = compute_centres(acts[centre_idx], labels_harmful, centre_refused, key)
    t0 = time.perf_counter()
    signals = sri_signal(acts, centres)
    t_signal = time.perf_counter() - t0
    guard = SRIGuard(cfg.sri.detector, quantile=cfg.sri.quantile, seed=cfg.seed, key=key.as_dict())
    guard.fit(signals[fit])
    t0 = time.perf_counter()
    scores = guard.score(signals)
    t_score = time.perf_counter() - t0
    flagged = scores > guard.threshold
    harmful_flags = np.array([r["harmful"] for r in rows])
    attacked = np.array([i for i, r in enumerate(rows) if r["role"] == "harmful"], dtype=int)
    jail = attacked[harmful_flags[attacked]]
    neg = scores[negatives]
    gen_seconds = sum(r["timing"]["seconds"] for r in rows)
    out: dict[str, Any] = {
        "centre_counts": centres.counts, "steps": int(signals.shape[1]), "harmless": harmless_name,
        "harmful": harmful_name, "detector": cfg.sri.detector, "threshold": float(guard.threshold),
        "fit": int(len(fit)), "negatives": int(len(negatives)),
        "overhead_share": (t_signal + t_score) / max(gen_seconds, 1e-9),
        "fpr": {f"{harmless_name} (held out)": float(flagged[held].mean())} if len(held) else {},
        **stats.detection_figures(scores[attacked], neg, "_attempts"),
        "n_jailbroken": int(len(jail)), "per_cell": {},
        "asr_before": float(harmful_flags[attacked].mean()),
        "asr_after": float((harmful_flags[attacked] & ~flagged[attacked]).mean()),  # what gets past the guard
    }
    for d in benign:
        if d != harmless_name:
            sel = np.array([i for i, r in enumerate(rows) if r["dataset"] == d], dtype=int)
            if len(sel):
                out["fpr"][d] = float(flagged[sel].mean())
    if len(jail):
        out.update(stats.detection_figures(scores[jail], neg, "_jailbroken"))
        out["detected_jailbroken"] = float(flagged[jail].mean())
    groups: dict[str, np.ndarray] = {}
    for cell in sorted({(rows[i]["dataset"], rows[i]["attack"]) for i in attacked}):
        sel = np.array([i for i in attacked if (rows[i]["dataset"], rows[i]["attack"]) == cell], dtype=int)
        succ = sel[harmful_flags[sel]]
        out["per_cell"]["/".join(cell)] = {
            "auroc": stats.auroc(scores[sel], neg), "flagged": float(flagged[sel].mean()),
            "internal_recovery": float(internal_recovery(signals[sel]).mean()),
            **({"flagged_jailbroken": float(flagged[succ].mean())} if len(succ) else {}),
        }
    groups["benign"] = signals[negatives]
    refused_harm = attacked[refused[attacked]]
    groups["harmful refused"] = signals[refused_harm]
    groups["jailbroken"] = signals[jail]
    private.update(signals=signals, scores=scores, neg=neg, attacked=attacked, jail=jail, groups=groups)
    return out


def _activations(run: RunDir, rows: list[dict]) -> np.ndarray:
    """The step activations of ``rows`` [N, S, D], each shard read once and checked against the row's key."""
    shards: dict[str, tuple[dict, list[str]]] = {}
    out = []
    for r in rows:
        if r["shard"] not in shards:
            shards[r["shard"]] = run.read_shard(r["shard"])
        tensors, keys = shards[r["shard"]]
        if r["row"] >= len(keys) or keys[r["row"]] != r["key"]:
            raise SrilabError(
                f"trace shard {r['shard']} does not hold {r['key']} at row {r['row']}: the run directory is corrupt"
            )
        out.append(tensors["activations"][r["row"]].numpy())
    return np.stack(out).astype(np.float32)


# ------------------------------------------------------------------------------------------------ report
def build_report(
    path: str | Path, *, show_harmful: bool = False, echo: Callable[[str], None] = print
) -> dict[str, Path]:
    """Write ``summary.json``, ``report.html`` and ``plots/`` into the run directory."""
    from srilab.report.study_report import write_study_report

    summary, private = summarise(path)
    run = RunDir(path)
    report = write_study_report(run.path, summary, private, show_harmful=show_harmful)
    summary_path = run.path / "summary.json"
    atomic_write_text(summary_path, json.dumps(json_safe(summary), indent=2) + "\n")
    for w in summary["warnings"]:
        echo(f"note: {w}")
    echo(format_summary(summary))
    return {"report": report, "summary": summary_path}


def format_summary(summary: dict[str, Any]) -> str:
    from srilab.report.html import rate_text as fmt_rate

    lines = [f"attack success ({summary['asr_basis']}), % [95% CI]"]
    for name, arm in summary["arms"].items():
        for cell, e in arm["cells"].items():
            asr = fmt_rate(e["asr"]) if "asr" in e else "-"
            lines.append(f"  {name:<32} {cell:<36} ASR {asr:<24} refusal {fmt_rate(e['refusal'])}")
        if "sri" in arm:
            s = arm["sri"]
            lines.append(
                f"  {name:<32} SRI guard AUROC {s['auroc_attempts']:.3f}, "
                f"FPR {', '.join(f'{k} {100 * v:.1f}%' for k, v in s['fpr'].items())}"
            )
    return "\n".join(lines)
