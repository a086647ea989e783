"""``srilab report RUN_DIR``: the analysis of a finished run (:func:`srilab.analysis.summary.summarise`) written out
as ``summary.json``, ``report.html`` and ``plots/`` in the run directory, and the terminal summary echoed. The run
itself never calls this: the command line and :mod:`srilab.pipeline` call it after the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srilab.analysis.summary import summarise
from srilab.report.ablation_report import ablation_section
from srilab.report.study_report import write_study_report
from srilab.report.terminal import format_summary
from srilab.study.crashpoints import crash_point
from srilab.study.jsonsafe import json_safe
from srilab.study.store import RunDir, atomic_write_text


def build_report(
    path: str | Path, *, show_harmful: bool = False, echo: Callable[[str], None] = print,
    extra: Callable[[dict[str, Any], Path], list[Any]] | None = None,
    summarised: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``summary.json``, ``report.html`` and ``plots/`` into the run directory (``extra(summary, run
    dir)`` may add report sections, e.g. the sampler sweep's; ``summarised``: :func:`summarise`'s result for
    this run when the caller already has it)."""
    summary, private = summarised if summarised is not None else summarise(path)
    run = RunDir(path)
    more = extra(json_safe(summary), run.path) if extra is not None else []
    ablations = run.path / "ablations" / "ablations.json"
    if ablations.is_file():  # `srilab ablate RUN_DIR` ran: its section joins the report
        more = [*more, ablation_section(json.loads(ablations.read_text()), ablations.parent)]
    crash_point("report:before")
    report = write_study_report(run.path, summary, private, show_harmful=show_harmful, extra=more)
    crash_point("report:after")
    summary_path = run.path / "summary.json"
    atomic_write_text(summary_path, json.dumps(json_safe(summary), indent=2) + "\n")
    if summary["warnings"]:  # every note is in the report (Overview and protocol, Notes)
        more = len(summary["warnings"]) - 1
        echo(f"note: {summary['warnings'][0]}" + (f" (and {more} more note(s) in report.html)" if more else ""))
    echo(format_summary(summary))
    return {"report": report, "summary": summary_path}
