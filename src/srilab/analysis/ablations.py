"""The figures of ``srilab ablate``: per arm of a finished run, the SRI guard read at other layers (each a run of its
own, :mod:`srilab.pipeline.ablate`), on the first step alone and on the answer's text, and the guard diagnosed on
unseen topics (:mod:`srilab.analysis.guard_diagnosis`), every figure under the run's protocol (its calibration
rows, its benign FPR). The result is what ``ablations.json`` holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srilab.analysis.detection import activations
from srilab.analysis.guard_diagnosis import diagnose
from srilab.analysis.guard_variants import variant_table
from srilab.study.config import StudyConfig
from srilab.study.jsonsafe import json_safe
from srilab.study.store import RunDir

#: The variants every run's detection figures already hold (read from the run itself, no new run).
READ_FROM_RUN: tuple[str, ...] = ("static_step0", "text_tfidf")
#: Per layer: the run directory that read it, its summary and the private part of its summary.
Layers = dict[str, tuple[RunDir, dict[str, Any], dict[str, Any]]]


def variant_figures(detection: dict[str, Any], name: str, fpr: str) -> dict[str, Any]:
    """One detector's figures in an arm's detection: AUROCs, and TPR / FPRs at the protocol's FPR, cost per item."""
    d = detection["detectors"][name]
    at = (d.get("at_fpr") or {}).get(fpr, {})
    return {
        "auroc_jailbroken_vs_unseen": d["auroc_jailbroken_vs_eval_unseen_topics"],
        "auroc_jailbroken_vs_seen": d["auroc_jailbroken_vs_eval_seen_topics"],
        "auroc_attacked_vs_eval": d["auroc_attacked_vs_eval"],
        "tpr_jailbroken": at.get("flagged_jailbroken"),
        "fpr_unseen": at.get("flagged_eval_unseen_topics"),
        "fpr_seen": at.get("flagged_eval_seen_topics"),
        "cost_per_item_s": d.get("cost_per_item_s"),
    }


def layer_stats(run: RunDir, rows: list[dict]) -> dict[str, Any]:
    """The mean norm and shape of the traced activations of ``rows``."""
    a = activations(run, rows)
    return {"activation_mean_norm": float(np.linalg.norm(a, axis=-1).mean()),
            "activation_shape": list(a.shape[1:])}


def guard_entry(diag: dict[str, Any]) -> dict[str, Any]:
    """What ``ablations.json`` keeps of a guard diagnosis: the choice and every variant's figures
    (:func:`srilab.analysis.guard_variants.variant_table`), the rule, the figures' paths and the effects (tau,
    floor, representation, number of fit groups)."""
    comp = diag["variants"]
    return {**variant_table(comp), "rule": comp["selection"]["rule"], "quantile": comp["quantile"],
            "threshold_rule": comp.get("threshold_rule", "calibration"),
            "figures": diag["figures"], "effects": diag["effects"], "rotation": diag.get("rotation")}


def arm_layers(name: str, texts: dict[str, str], by_layer: Layers, fpr: str, notes: list[str]) -> dict[str, Any]:
    """``variants`` (``sri_<layer>``) and ``layers`` (activation stats, run directory, whether the answers are
    the run's) of one arm over the layer runs."""
    entry: dict[str, Any] = {"variants": {}, "layers": {}}
    for layer, (lrun, lsum, lpriv) in by_layer.items():
        det = lsum["arms"].get(name, {}).get("detection")
        if det is None:
            notes.append(f"{name}: no detection at layer {layer}")
            continue
        rows = lpriv["arms"][name]["rows"]
        entry["variants"][f"sri_{layer}"] = variant_figures(det, "sri_guard", fpr)
        entry["layers"][layer] = {
            **layer_stats(lrun, rows), "run_dir": str(lrun.path),
            "texts_identical": all(texts.get(r["key"]) == r["response"] for r in rows) and len(rows) == len(texts),
        }
    return entry


def ablation_result(
    run: RunDir, cfg: StudyConfig, summarised: tuple[dict[str, Any], dict[str, Any]], by_layer: Layers,
    *, chosen: Sequence[str] | None, guard_dir: Path | None, rotations: int = 1,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """What ``ablations.json`` holds (JSON-safe): per arm (of the ``chosen`` sampler labels; None: all) its
    variants at every layer of ``by_layer`` and read from the run, and (``guard_dir`` given) the guard's
    diagnosis written there (:func:`srilab.analysis.guard_diagnosis.diagnose`, ``rotations`` rotations)."""
    summary, private = summarised
    fpr = f"{100 * cfg.protocol.fpr:g}%"
    arms: dict[str, Any] = {}
    notes: list[str] = []
    for name, arm in summary["arms"].items():
        if chosen is not None and arm["sampler"] not in chosen:
            continue
        if "detection" not in arm:
            notes.append(f"{name}: the run has no detection figures for this arm (see its summary's warnings)")
            continue
        texts = {r["key"]: r["response"] for r in private["arms"][name]["rows"]}
        entry = {"n": arm["detection"]["n"], **arm_layers(name, texts, by_layer, fpr, notes)}
        for read in READ_FROM_RUN:
            if read in arm["detection"]["detectors"]:
                entry["variants"][read] = variant_figures(arm["detection"], read, fpr)
        if guard_dir is not None:
            echo(f"  guard on unseen topics: {name}")
            fits = private["arms"][name].get("detection", {}).get("guard_fits")  # fitted by the study's analysis
            entry["guard"] = guard_entry(diagnose(run.path, name, guard_dir, n_boot=cfg.n_boot, fits=fits,
                                                  rotation=rotations))
        arms[name] = entry
    return json_safe({
        "run_dir": str(run.path), "study": cfg.name, "detector": cfg.sri.detector, "fpr": cfg.protocol.fpr,
        "layers": list(by_layer), "run_layer": str(cfg.sri.layer),
        "variants": [f"sri_{v}" for v in by_layer] + list(READ_FROM_RUN), "arms": arms, "notes": notes,
    })
