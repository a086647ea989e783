"""``srilab ablate RUN_DIR``: what the SRI guard's detection owes to the layer it reads and to the trajectory.

An ablation reads a finished run and keeps its protocol: the same items in the same roles (centre,
guard_fit, calibration, eval_seen_topics, eval_unseen_topics, harmful_centre, attacked), the same judges,
the same detector family and thresholds set on the same calibration rows, at the same benign FPR. Variants,
per arm (model x sampler):

- ``sri_<layer>`` (``first``, ``middle``, ``last`` or an index): the SRI guard read from that layer. The
  tracer hooks one module per generation, so each layer other than the run's own (``sri.layer``) is a study
  of its own -- the run's config with ``sri.layer`` changed, no defenses, no intermediate judging -- run by
  the same runner into ``<out>/layer-<layer>/`` (a run directory: resumable, with its own report). The
  generations are the run's (same seeds); ``texts_identical`` says whether they are.
- ``static_step0``: the same detector on the first step's pooled state alone (a static probe: no
  trajectory), and ``text_tfidf``: the same detector on TF-IDF features of the answer (what a reader sees);
  both are in every run's detection figures (:mod:`srilab.study.detection`), read here from the run itself.

Every figure is the run's: AUROC of jailbroken answers against benign answers of seen and of unseen topics
(bootstrap CI and n), TPR and FPR at the protocol's FPR (k, n, Wilson interval) and cost per item.
``<out>/ablations.json`` holds them, ``<out>/ablations.png`` plots them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srilab.errors import SrilabError
from srilab.models.base import LayerSpec
from srilab.report.ablation_report import rotation_text, variant_table
from srilab.study.analysis import build_report, summarise
from srilab.study.config import StudyConfig, parse_config
from srilab.study.detection import activations
from srilab.study.guard_diagnosis import diagnose
from srilab.study.jsonsafe import json_safe
from srilab.study.store import RunDir, atomic_write_text

__all__ = ["LAYERS", "format_ablations", "layer_config", "plot_ablations", "run_ablations"]

LAYERS: tuple[str, ...] = ("first", "middle", "last")
READ_FROM_RUN: tuple[str, ...] = ("static_step0", "text_tfidf")


def parse_layers(value: str | Sequence[Any]) -> list[LayerSpec]:
    """``first,middle,last`` (or a list; integers are layer indices) as unique layer specs, in order."""
    raw = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    out: list[LayerSpec] = []
    for v in raw:
        if v == "":
            continue
        if isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and v in LAYERS:
            out.append(v)
        elif isinstance(v, str) and v.lstrip("-").isdigit():
            out.append(int(v))
        else:
            raise SrilabError(f"unknown layer {v!r}: use first, middle, last or an integer index")
    if not out:
        raise SrilabError("no layer given: name at least one (first, middle, last or an index)")
    return list(dict.fromkeys(out))


def layer_config(
    cfg: StudyConfig, layer: LayerSpec, output: Path, samplers: Sequence[str] | None = None
) -> StudyConfig:
    """The run's study with the SRI trace read at ``layer``: same items, seeds, samplers (``samplers``: only
    those labels), attacks and judges; no defenses and no intermediate judging (neither depends on the layer)."""
    data = cfg.canonical()
    if samplers is not None:
        for spec, m in zip(cfg.models, data["models"], strict=True):
            m["samplers"] = [d for s, d in zip(spec.samplers, m["samplers"], strict=True) if s.label in samplers]
        data["models"] = [m for m in data["models"] if m["samplers"]]
    data["name"] = f"{cfg.name}-layer-{layer}"
    data["output"] = str(output)
    data["sri"]["layer"] = layer
    data["defenses"] = []
    data["analysis"].update(dynamics_every=0, guard_variants=False)
    return parse_config(data, source=f"{cfg.name} with sri.layer={layer}")


def _variant(detection: dict[str, Any], name: str, fpr: str) -> dict[str, Any]:
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


def _layer_stats(run: RunDir, rows: list[dict]) -> dict[str, Any]:
    a = activations(run, rows)
    return {"activation_mean_norm": float(np.linalg.norm(a, axis=-1).mean()),
            "activation_shape": list(a.shape[1:])}


def run_ablations(
    run_dir: str | Path,
    *,
    layers: str | Sequence[Any] = LAYERS,
    samplers: str | Sequence[str] | None = None,
    out: str | Path | None = None,
    guard: bool = True,
    rotations: int = 1,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Ablate a finished run (module docstring); write ``ablations.json`` and ``ablations.png`` into ``out``
    (default ``RUN_DIR/ablations``) and return what the JSON holds. ``samplers``: only the arms of these
    sampler labels (comma-separated or a list; default all). Layer runs already in ``out`` are resumed, not
    redone. ``guard``: also diagnose the guard on unseen topics per arm
    (:func:`srilab.study.guard_diagnosis.diagnose`: figures in ``out/guard``, every guard variant beside the
    paper's with the calibration-only choice, and the guard refitted with every benign topic group held out
    once, ``rotations`` times with other draws: :mod:`srilab.study.guard_rotation`; 0 skips it). With the
    default ``out`` the run's report gains the ablations."""
    from srilab.study.runner import run_config

    if not isinstance(rotations, int) or isinstance(rotations, bool) or rotations < 0:
        raise SrilabError(f"rotations must be a whole number >= 0, got {rotations!r}")
    specs = parse_layers(layers)
    run = RunDir(run_dir)
    cfg = parse_config(run.read_config(), source=str(run.config_path))
    if not cfg.sri.enabled:
        raise SrilabError(f"{run.path}: the run has sri.enabled: false; there is no SRI guard to ablate")
    run.check_complete()
    labels = [s.label for m in cfg.models for s in m.samplers]
    chosen = None
    if samplers is not None:
        chosen = [v.strip() for v in samplers.split(",")] if isinstance(samplers, str) else list(samplers)
        chosen = [v for v in dict.fromkeys(chosen) if v]
        unknown = [v for v in chosen if v not in labels]
        if unknown or not chosen:
            raise SrilabError(f"unknown sampler(s) {', '.join(unknown) or '(none given)'}: the run has "
                              f"{', '.join(labels)}")
    out = Path(out) if out is not None else run.path / "ablations"
    fpr = f"{100 * cfg.protocol.fpr:g}%"
    echo(f"srilab ablate: {run.path} -> {out} (layers {', '.join(map(str, specs))}; {fpr} benign FPR)")
    summary, private = summarise(run.path)
    by_layer: dict[str, tuple[RunDir, dict, dict]] = {}
    for layer in specs:
        if str(layer) == str(cfg.sri.layer):
            by_layer[str(layer)] = (run, summary, private)
            continue
        sub = RunDir(out / f"layer-{layer}")
        echo(f"  layer {layer}: {sub.path}")
        indent = lambda s: echo(f"    {s}")  # noqa: E731
        run_config(layer_config(cfg, layer, sub.path, chosen), sub, resume=sub.exists(), progress=progress,
                   report=False, echo=indent)
        summarised = summarise(sub.path)  # once: for its report and for the comparison below
        build_report(sub.path, summarised=summarised, echo=indent)
        by_layer[str(layer)] = (sub, *summarised)
    arms: dict[str, Any] = {}
    notes: list[str] = []
    for name, arm in summary["arms"].items():
        if chosen is not None and arm["sampler"] not in chosen:
            continue
        if "detection" not in arm:
            notes.append(f"{name}: the run has no detection figures for this arm (see its summary's warnings)")
            continue
        texts = {r["key"]: r["response"] for r in private["arms"][name]["rows"]}
        entry: dict[str, Any] = {"n": arm["detection"]["n"], "variants": {}, "layers": {}}
        for layer, (lrun, lsum, lpriv) in by_layer.items():
            det = lsum["arms"].get(name, {}).get("detection")
            if det is None:
                notes.append(f"{name}: no detection at layer {layer}")
                continue
            rows = lpriv["arms"][name]["rows"]
            entry["variants"][f"sri_{layer}"] = _variant(det, "sri_guard", fpr)
            entry["layers"][layer] = {
                **_layer_stats(lrun, rows), "run_dir": str(lrun.path),
                "texts_identical": all(texts.get(r["key"]) == r["response"] for r in rows) and len(rows) == len(texts),
            }
        for name_ in READ_FROM_RUN:
            if name_ in arm["detection"]["detectors"]:
                entry["variants"][name_] = _variant(arm["detection"], name_, fpr)
        if guard:
            echo(f"  guard on unseen topics: {name}")
            fits = private["arms"][name].get("detection", {}).get("guard_fits")  # fitted by the study's analysis
            entry["guard"] = _guard_entry(diagnose(run.path, name, out / "guard", n_boot=cfg.n_boot, fits=fits,
                                                      rotation=rotations))
        arms[name] = entry
    result = json_safe({
        "run_dir": str(run.path), "study": cfg.name, "detector": cfg.sri.detector, "fpr": cfg.protocol.fpr,
        "layers": [str(v) for v in specs], "run_layer": str(cfg.sri.layer),
        "variants": [f"sri_{v}" for v in specs] + list(READ_FROM_RUN), "arms": arms, "notes": notes,
    })
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablations.json", json.dumps(result, indent=2) + "\n")
    plot_ablations(result, out / "ablations.png")
    echo(format_ablations(result))
    echo(f"results: {out / 'ablations.json'}   plot: {out / 'ablations.png'}")
    if out == run.path / "ablations":
        build_report(run.path, summarised=(summary, private), echo=lambda _: None)
        echo(f"report (with the ablations): {run.path / 'report.html'}")
    return result


def _guard_entry(diag: dict[str, Any]) -> dict[str, Any]:
    """What ``ablations.json`` keeps of a guard diagnosis: the choice and every variant's figures
    (:func:`srilab.report.ablation_report.variant_table`), the rule, the figures' paths and the effects (tau,
    floor, representation, number of fit groups)."""
    comp = diag["variants"]
    return {**variant_table(comp), "rule": comp["selection"]["rule"], "quantile": comp["quantile"],
            "threshold_rule": comp.get("threshold_rule", "calibration"),
            "figures": diag["figures"], "effects": diag["effects"], "rotation": diag.get("rotation")}


# ------------------------------------------------------------------------------------------------ output
def _auroc(v: dict[str, Any] | None) -> str:
    if not v or v.get("auroc") is None:
        return "-"
    lo, hi = v.get("ci") or (None, None)
    ci = f" [{lo:.2f},{hi:.2f}]" if lo is not None else ""
    return f"{v['auroc']:.3f}{ci}"


def _rate(v: dict[str, Any] | None) -> str:
    return "-" if not v or not v.get("n") else f"{100 * v['rate']:.1f}% ({v['k']}/{v['n']})"


def format_ablations(result: dict[str, Any]) -> str:
    """A plain-text table per arm: AUROC (jailbroken vs unseen / seen topics, CI), TPR and unseen FPR at the
    protocol's FPR, cost per item."""
    fpr = f"{100 * result['fpr']:g}%"
    lines = [f"SRI guard ablations (detector {result['detector']}; thresholds on the run's calibration rows at "
             f"{fpr} FPR; the run reads layer {result['run_layer']})"]
    head = (f"  {'variant':<14}{'AUROC jb/unseen':>22}{'AUROC jb/seen':>22}{'TPR jb':>18}{'FPR unseen':>18}"
            f"{'us/item':>9}")
    for name, arm in result["arms"].items():
        n = arm["n"]
        lines += ["", f"{name}: {n.get('jailbroken', 0)} jailbroken of {n.get('attacked', 0)} attacked; "
                      f"{n.get('eval_unseen_topics', 0)} unseen-topic and {n.get('eval_seen_topics', 0)} seen-topic "
                      f"benign; {n.get('calibration', 0)} calibration", head]
        for v in result["variants"]:
            m = arm["variants"].get(v)
            if m is None:
                continue
            cost = m.get("cost_per_item_s")
            us = "-" if cost is None else f"{1e6 * cost:.0f}"
            lines.append(f"  {v:<14}{_auroc(m['auroc_jailbroken_vs_unseen']):>22}"
                         f"{_auroc(m['auroc_jailbroken_vs_seen']):>22}{_rate(m['tpr_jailbroken']):>18}"
                         f"{_rate(m['fpr_unseen']):>18}{us:>9}")
        rot = (arm.get("guard") or {}).get("rotation")
        if rot:
            lines.append(f"  every benign topic group unseen once ({len(rot['splits'])} splits, {rot['groups']} "
                         "groups), FPR at the guard's threshold: "
                         + "; ".join(rotation_text(rot, g) for g in ("study", "paper")))
        differ = [layer for layer, info in arm["layers"].items() if not info["texts_identical"]]
        if differ:
            lines.append(f"  note: the answers at layer(s) {', '.join(differ)} differ from the run's")
    lines += [f"note: {w}" for w in result.get("notes", [])]
    return "\n".join(lines)


def plot_ablations(result: dict[str, Any], path: str | Path) -> Path:
    """Per variant, one bar per arm: AUROC of jailbroken vs unseen-topic benign answers (95% bootstrap CI),
    and at the threshold set for the protocol's FPR on the calibration rows, the TPR on jailbroken answers and
    the FPR it reaches on unseen-topic benign answers (95% Wilson CIs)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    variants, arms = result["variants"], list(result["arms"])
    x = np.arange(len(variants))
    width = 0.8 / max(1, len(arms))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), dpi=110)
    fpr = f"{100 * result['fpr']:g}%"
    panels = (("auroc_jailbroken_vs_unseen", "auroc", "AUROC: jailbroken vs unseen-topic benign"),
              ("tpr_jailbroken", "rate", f"TPR on jailbroken (threshold: {fpr} calibration FPR)"),
              ("fpr_unseen", "rate", f"FPR on unseen-topic benign (same threshold; nominal {fpr})"))
    for ax, (key, field, title) in zip(axes, panels, strict=True):
        for j, arm in enumerate(arms):
            vals, lo, hi = [], [], []
            for v in variants:
                m = (result["arms"][arm]["variants"].get(v) or {}).get(key) or {}
                val = m.get(field)
                ci = m.get("ci") or [val, val]
                vals.append(np.nan if val is None else val)
                lo.append(0.0 if val is None or ci[0] is None else val - ci[0])
                hi.append(0.0 if val is None or ci[1] is None else ci[1] - val)
            ax.bar(x + (j - (len(arms) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=2, label=arm)
        ax.set_xticks(x, variants, rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[2].axhline(result["fpr"], color="black", linestyle="--", linewidth=0.8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SRI guard ablations on {result['study']} ({result['detector']}; bars: 95% CI)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
