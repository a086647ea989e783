"""``srilab ablate RUN_DIR``: what the SRI guard's detection owes to the layer it reads and to the trajectory (the
layer studies run here; the figures: :mod:`srilab.analysis.ablations`; the table and plot:
:mod:`srilab.report.ablation_report`).

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
  both are in every run's detection figures (:mod:`srilab.analysis.detection`), read here from the run itself.

Every figure is the run's: AUROC of jailbroken answers against benign answers of seen and of unseen topics
(bootstrap CI and n), TPR and FPR at the protocol's FPR (k, n, Wilson interval) and cost per item.
``<out>/ablations.json`` holds them, ``<out>/ablations.png`` plots them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from srilab.analysis.ablations import Layers, ablation_result
from srilab.analysis.summary import summarise
from srilab.errors import SrilabError
from srilab.models.base import LayerSpec
from srilab.report.ablation_report import format_ablations, plot_ablations
from srilab.report.build import build_report
from srilab.study.config import StudyConfig, parse_config
from srilab.study.runner import run_config
from srilab.study.store import RunDir, atomic_write_text

__all__ = ["LAYERS", "layer_config", "parse_layers", "run_ablations"]

LAYERS: tuple[str, ...] = ("first", "middle", "last")


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


def chosen_samplers(samplers: str | Sequence[str] | None, cfg: StudyConfig) -> list[str] | None:
    """The sampler labels ``samplers`` names (comma-separated or a list), each one of the run's; None: all."""
    if samplers is None:
        return None
    labels = [s.label for m in cfg.models for s in m.samplers]
    chosen = [v.strip() for v in samplers.split(",")] if isinstance(samplers, str) else list(samplers)
    chosen = [v for v in dict.fromkeys(chosen) if v]
    unknown = [v for v in chosen if v not in labels]
    if unknown or not chosen:
        raise SrilabError(f"unknown sampler(s) {', '.join(unknown) or '(none given)'}: the run has {', '.join(labels)}")
    return chosen


def run_layers(
    run: RunDir, cfg: StudyConfig, summarised: tuple[dict, dict], specs: Sequence[LayerSpec], out: Path,
    chosen: Sequence[str] | None, *, progress: bool, echo: Callable[[str], None],
) -> Layers:
    """Per layer, the run that read it: the run itself at its own layer, else a layer study in
    ``out/layer-<layer>`` (run or resumed, then reported), with its summary."""
    by_layer: Layers = {}
    for layer in specs:
        if str(layer) == str(cfg.sri.layer):
            by_layer[str(layer)] = (run, *summarised)
            continue
        sub = RunDir(out / f"layer-{layer}")
        echo(f"  layer {layer}: {sub.path}")
        indent = lambda s: echo(f"    {s}")  # noqa: E731
        run_config(layer_config(cfg, layer, sub.path, chosen), sub, resume=sub.exists(), progress=progress,
                   echo=indent)
        layer_summary = summarise(sub.path)  # once: for its report and for the comparison
        build_report(sub.path, summarised=layer_summary, echo=indent)
        by_layer[str(layer)] = (sub, *layer_summary)
    return by_layer


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
    (:func:`srilab.analysis.guard_diagnosis.diagnose`: figures in ``out/guard``, every guard variant beside the
    paper's with the calibration-only choice, and the guard refitted with every benign topic group held out
    once, ``rotations`` times with other draws: :mod:`srilab.analysis.guard_rotation`; 0 skips it). With the
    default ``out`` the run's report gains the ablations."""
    if not isinstance(rotations, int) or isinstance(rotations, bool) or rotations < 0:
        raise SrilabError(f"rotations must be a whole number >= 0, got {rotations!r}")
    specs = parse_layers(layers)
    run = RunDir(run_dir)
    cfg = parse_config(run.read_config(), source=str(run.config_path))
    if not cfg.sri.enabled:
        raise SrilabError(f"{run.path}: the run has sri.enabled: false; there is no SRI guard to ablate")
    run.check_complete()
    chosen = chosen_samplers(samplers, cfg)
    out = Path(out) if out is not None else run.path / "ablations"
    echo(f"srilab ablate: {run.path} -> {out} (layers {', '.join(map(str, specs))}; "
         f"{100 * cfg.protocol.fpr:g}% benign FPR)")
    summarised = summarise(run.path)
    by_layer = run_layers(run, cfg, summarised, specs, out, chosen, progress=progress, echo=echo)
    result = ablation_result(run, cfg, summarised, by_layer, chosen=chosen, guard_dir=out / "guard" if guard else None,
                             rotations=rotations, echo=echo)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablations.json", json.dumps(result, indent=2) + "\n")
    plot_ablations(result, out / "ablations.png")
    echo(format_ablations(result))
    echo(f"results: {out / 'ablations.json'}   plot: {out / 'ablations.png'}")
    if out == run.path / "ablations":
        build_report(run.path, summarised=summarised, echo=lambda _: None)
        echo(f"report (with the ablations): {run.path / 'report.html'}")
    return result
