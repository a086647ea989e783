"""``srilab sweep``: the sweep study (:mod:`srilab.study.sweep`) run through ``srilab run``'s runner, then reported
with its two figures (:mod:`srilab.report.sweep_report`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from srilab.report.build import build_report
from srilab.report.sweep_report import sweep_figures, sweep_section
from srilab.study.runner import run_config
from srilab.study.store import RunDir, archive_previous
from srilab.study.sweep import REMASKING, sweep_config


def run_sweep(
    *, out: str | Path = "sweep-out", limit: int = 12, pair: str | Path | None = None, progress: bool = True,
    echo: Callable[[str], None] = print, remasking: Sequence[str] = REMASKING,
) -> Path:
    """Run (or finish) the sweep into ``out`` and add its two figures; returns the run directory.
    ``remasking``: the remasking rules swept besides ``low_confidence`` (default :data:`REMASKING`)."""
    cfg = sweep_config(out=out, limit=limit, pair=pair, remasking=remasking)
    run = RunDir(out)
    resume = run.exists() and run.read_config() == cfg.canonical()
    if not resume and archive_previous(Path(out)) is not None:
        echo(f"the previous results in {out} were moved to {Path(out) / 'previous'}")
    path = run_config(cfg, run, resume=resume, progress=progress, echo=echo)
    build_report(path, echo=echo, extra=lambda summary, out: [sweep_section(sweep_figures(summary, out), out)])
    return path
