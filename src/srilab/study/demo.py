"""``srilab demo``: the whole study on the embedded toy pair, offline, in minutes.

For each of three samplers -- the AR model (``ar``), the diffusion model under diffusion sampling
(``diffusion``) and the *same diffusion weights* sampled one token per step left to right
(``diffusion-l2r``) -- the demo

1. runs every attack on the world's harmful requests and judges the answers (keyword refusal judge;
   the oracle for attack success), with bootstrap 95% CIs and paired tests for the sampler swaps;
2. computes SRI centres (from a calibration set: benign requests answered, harmful requests under
   safety-train wrappers refused), the SRI signal of every generation, and the SRI plot;
3. fits the SRI guard on benign signals only and evaluates it on every attack (AUROC, TPR at 1%/5%
   FPR, FPR on held-out benign requests) with its overhead as a share of generation time;
4. measures the capability cost (reasoning exact match);
5. writes ``report.html``, ``summary.json``, ``generations.jsonl`` and the plots, and prints a table.

Data splits (all from :mod:`srilab.toy.world`; disjoint prompts):

- ``benign_fit``: benign tasks under train phrasings (harmless centre, guard fit and calibration);
- ``harmful_calib``: harmful tasks under safety-train wrappers (harmful centre);
- ``benign_eval``: benign tasks under held-out phrasings and held-out wrappers (guard negatives, quality);
- attacks on harmful tasks under train phrasings (``direct``, ``prefill``, ``suffix_relocation``,
  ``canvas_injection``, ``dija``) and under held-out wrappers (``heldout_wrapper``);
- ``reasoning``: held-out arithmetic items (capability).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.sri.guard import SRIGuard
from srilab.study.demo_analysis import analyse, paired
from srilab.study.demo_data import ATTACK_ORDER, DemoConfig, Item, SamplerRun, build_items, run_sampler
from srilab.study.store import json_safe
from srilab.toy.evaluate import model_for, pair_samplers
from srilab.toy.pair import load_pair, pair_dir, pair_gen_length, pair_world, training_record

__all__ = ["ATTACK_ORDER", "DemoConfig", "Item", "SamplerRun", "build_items", "format_table", "run_demo"]


# ------------------------------------------------------------------------------------------------ main
def run_demo(cfg: DemoConfig, *, progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, Any]:
    started = time.perf_counter()
    # Settings that would only fail after minutes of generation are checked first.
    SRIGuard(cfg.detector, quantile=cfg.quantile)
    if cfg.limit is not None and cfg.limit < 1:
        raise SrilabError(f"--limit must be at least 1, got {cfg.limit}")
    root = pair_dir(cfg.pair)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    archived = archive_previous(out)
    if archived is not None:
        echo(f"the previous results in {out} were moved to {archived}")
    (out / "plots").mkdir(exist_ok=True)
    ar, dlm = load_pair(root)
    world = pair_world(root)
    gen_length = pair_gen_length(root)
    samplers = pair_samplers(gen_length, steps=cfg.diffusion_steps, block_length=cfg.block_length)
    unknown = [s for s in cfg.samplers if s not in samplers]
    if unknown:
        raise SrilabError(f"unknown sampler(s) {unknown}: choose from {', '.join(samplers)}")
    echo(f"srilab demo: toy pair {root} -> {out}{' (quick)' if cfg.quick else ''}")
    runs: dict[str, SamplerRun] = {}
    results: dict[str, Any] = {}
    warnings: list[str] = []
    records = out / "generations.jsonl"
    with records.open("w", encoding="utf-8") as f:
        for name in cfg.samplers:
            sampler = samplers[name]
            run = run_sampler(name, sampler, model_for(name, ar, dlm), world, cfg, progress)
            runs[name] = run
            for it, text, ref, harm in zip(run.items, run.texts, run.refused, run.harmful, strict=True):
                rec = {
                    "sampler": name, "group": it.group, "attack": it.attack, "index": it.index, "task": it.task,
                    "prompt": it.prompt, "prefill": it.prefill,
                    "canvas": [asdict(c) for c in it.canvas], "response": text,
                    "refused": bool(ref), "harmful": bool(harm),
                }
                f.write(json.dumps(rec) + "\n")
            f.flush()
            results[name] = analyse(run, cfg, out, warnings, reference=ar)
            echo(f"  {name}: {len(run.items)} generations in {run.seconds:.1f}s")

    summary: dict[str, Any] = {
        "pair": {"path": str(root), "training": {k: v for k, v in training_record(root).items() if k != "models"}},
        "config": {
            "quick": cfg.quick, "items_per_set": cfg.items_per_set(), "detector": cfg.detector,
            "quantile": cfg.quantile, "seed": cfg.seed, "n_boot": cfg.n_boot,
        },
        "samplers": {n: samplers[n].key() for n in cfg.samplers},
        "results": {n: {k: v for k, v in r.items() if k != "_private"} for n, r in results.items()},
        "paired": {},
    }
    for a, b in (("diffusion", "diffusion-l2r"), ("ar", "diffusion"), ("ar", "diffusion-l2r")):
        if a in runs and b in runs:
            summary["paired"][f"{a} vs {b}"] = paired(runs, a, b, cfg)
    summary["warnings"] = warnings
    summary["seconds"] = round(time.perf_counter() - started, 1)

    from srilab.report.demo_report import write_report

    write_report(out, summary, runs, results)
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    echo(format_table(summary))
    echo(f"report: {out / 'report.html'}   summary: {out / 'summary.json'}   ({summary['seconds']:.0f}s)")
    return summary


def archive_previous(out: Path) -> Path | None:
    """Move an earlier run's files out of the way (into ``out/previous/<time>``): results are never lost."""
    import shutil

    entries = [p for p in out.iterdir() if p.name != "previous"]
    if not entries:
        return None
    summary = out / "summary.json"
    when = summary.stat().st_mtime if summary.exists() else time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    target = out / "previous" / stamp
    n = 1
    while target.exists():
        n += 1
        target = out / "previous" / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for p in entries:
        shutil.move(str(p), str(target / p.name))
    return target


def _pct(r: dict) -> str:
    return f"{100 * r['rate']:5.1f} [{100 * r['low']:4.1f}-{100 * r['high']:5.1f}]"


def format_table(summary: dict[str, Any]) -> str:
    res = summary["results"]
    names = list(res)
    lines = ["", "attack success rate, % [95% CI] (oracle judge)"]
    lines.append(f"{'attack':<19}" + "".join(f"{n:>22}" for n in names))
    for a in ATTACK_ORDER:
        row = f"{a:<19}"
        for n in names:
            row += f"{_pct(res[n]['attacks'][a]['asr']) if a in res[n]['attacks'] else 'n/a':>22}"
        lines.append(row)
    lines.append("")
    lines.append(f"{'quality / guard':<19}" + "".join(f"{n:>22}" for n in names))
    rows = [
        ("harmful refused", lambda r: _pct(r["quality"]["harmful_refused"])),
        ("benign correct", lambda r: _pct(r["quality"]["benign_correct"])),
        ("reasoning exact", lambda r: _pct(r["quality"]["reasoning_exact"])),
        ("guard AUROC", lambda r: f"{r['guard']['auroc_attempts']:.3f}"),
        ("guard TPR@5%FPR", lambda r: f"{100 * r['guard']['tpr_at_5pct_fpr_attempts']:.1f}%"),
        ("guard FPR benign", lambda r: f"{100 * r['guard']['fpr_benign']:.1f}%"),
        ("guard overhead", lambda r: f"{100 * r['guard']['overhead_share']:.3f}%"),
    ]
    for label, fn in rows:
        lines.append(f"{label:<19}" + "".join(f"{fn(res[n]):>22}" for n in names))
    p = summary["paired"].get("diffusion vs diffusion-l2r")
    if p:
        lines.append("")
        lines.append("same diffusion weights, diffusion vs left-to-right sampling (paired, exact McNemar):")
        for a, t in p.items():
            lines.append(
                f"  {a:<18} ASR {100 * t['asr_a']:5.1f}% vs {100 * t['asr_b']:5.1f}%  "
                f"diff {100 * t['diff']:+5.1f} [{100 * t['diff_low']:+.1f}, {100 * t['diff_high']:+.1f}]  "
                f"p={t['p_value']:.3g}"
            )
    for w in summary.get("warnings", []):
        lines.append(f"note: {w}")
    return "\n".join(lines)

