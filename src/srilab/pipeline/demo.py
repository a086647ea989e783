"""``srilab demo``: the demo study (:mod:`srilab.study.demo`) run through ``srilab run``'s runner, then reported.

The demo is a study like any other: its output directory is a run directory (resumable after a kill with
``srilab run --resume DIR``; ``srilab report DIR`` rebuilds ``report.html`` and ``summary.json`` from files
alone). Running the demo again into a directory that holds a run of the same config finishes (or just
re-reports) that run; a directory holding anything else has its files moved to ``previous/<time>/`` first,
never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from srilab.pipeline.run import run_config
from srilab.study.demo import demo_config
from srilab.study.store import RunDir, archive_previous


def run_demo(
    *, out: str | Path = "demo-out", quick: bool = False, limit: int | None = None, pair: str | Path | None = None,
    detector: str | None = None, batch_size: int | None = None, progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run (or finish) the demo study into ``out`` and report it; returns the run directory."""
    cfg = demo_config(out=out, quick=quick, limit=limit, pair=pair, detector=detector, batch_size=batch_size)
    out = Path(out)
    run = RunDir(out)
    resume = run.exists() and run.read_config() == cfg.canonical()
    if not resume:
        archived = archive_previous(out)
        if archived is not None:
            echo(f"the previous results in {out} were moved to {archived}")
    return run_config(cfg, run, resume=resume, progress=progress, echo=echo)
