"""The sampler sweep's report section (``srilab sweep``): attack success against tokens per step and against the
injection step, read from the sweep run's summary (``sweep.json``, ``plots/sweep_*.png``; the sweep's points:
:mod:`srilab.study.sweep`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srilab.report import html, plots
from srilab.study.store import atomic_write_text
from srilab.study.sweep import INJECT_AT, TOKENS_PER_STEP


def sweep_figures(summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Attack success against tokens per step and against the injection step, from a sweep's summary."""
    arms = summary["arms"]
    figs = out / "plots"
    figs.mkdir(exist_ok=True)
    result: dict[str, Any] = {"tokens_per_step": {}, "injection": {}}
    for attack in ("direct", "prefill", "inject_sure@0.25"):
        cell = f"harmful/{attack}"
        result["tokens_per_step"][attack] = {
            k: arms[f"toy-diffusion/tps{k}"]["cells"][cell]["asr"] for k in TOKENS_PER_STEP
            if f"toy-diffusion/tps{k}" in arms and cell in arms[f"toy-diffusion/tps{k}"]["cells"]
        }
    base = "toy-diffusion/tps1"
    for opener in ("sure", "sorry"):
        result["injection"][opener] = {
            f: arms[base]["cells"][f"harmful/inject_{opener}@{f:g}"]["asr"] for f in INJECT_AT
            if f"harmful/inject_{opener}@{f:g}" in arms.get(base, {}).get("cells", {})
        }
    plots.curve_plot(
        {a: {float(k): r for k, r in v.items()} for a, v in result["tokens_per_step"].items()},
        xlabel="tokens committed per step", ylabel="attack success rate", path=figs / "sweep_tokens_per_step.png",
    )
    plots.curve_plot(
        {f"'{o}' opener injected": v for o, v in result["injection"].items()},
        xlabel="injection step (fraction of the steps)", ylabel="attack success rate",
        path=figs / "sweep_injection_step.png",
    )
    atomic_write_text(out / "sweep.json", json.dumps(result, indent=1) + "\n")
    return result


def sweep_section(result: dict[str, Any], out: Path) -> html.Section:
    """The section: both curves as tables and figures."""
    rows = [[a, *(html.rate_text(v[k]) if k in v else "n/a" for k in TOKENS_PER_STEP)]
            for a, v in result["tokens_per_step"].items()]
    inj = [[o, *(html.rate_text(v[f]) if f in v else "n/a" for f in INJECT_AT)] for o, v in result["injection"].items()]
    return html.Section(
        "The sampler as the experiment (same weights)",
        paragraphs=["Attack success of the same diffusion weights as the number of tokens committed per step "
                    "grows (LLaDA's schedule, blocks of 16), and as an opener is written into the canvas at a "
                    "later step (one token per step). Every other sampler point is an arm of the tables above."],
        tables=[(["attack", *(f"{k} token(s)/step" for k in TOKENS_PER_STEP)], rows),
                (["opener", *(f"injected at {100 * f:g}%" for f in INJECT_AT)], inj)],
        figures=[("Attack success vs tokens per step (95% Wilson CI)",
                  (out / "plots" / "sweep_tokens_per_step.png").read_bytes()),
                 ("Attack success vs injection step (95% Wilson CI)",
                  (out / "plots" / "sweep_injection_step.png").read_bytes())],
    )
