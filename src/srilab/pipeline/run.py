"""A study run, then reported: :func:`srilab.study.runner.run_study` (and ``run_config``, ``run_flags``) followed by
:func:`srilab.report.build.build_report`, as ``srilab run`` does.
The run never reports by itself; ``report=False`` stops after the run (``srilab report RUN_DIR`` later)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from srilab.errors import SrilabError
from srilab.report.build import build_report
from srilab.study import runner
from srilab.study.config import StudyConfig
from srilab.study.store import RunDir


def check_flags(report: object, show_harmful: object) -> None:
    """``report`` and ``show_harmful`` are True or False (checked before anything runs)."""
    for what, value in (("report", report), ("show_harmful", show_harmful)):
        if not isinstance(value, bool):
            raise SrilabError(f"run_study: {what} must be True or False, got {value!r:.40}")


def report_run(
    path: Path, *, report: bool = True, show_harmful: bool = False, echo: Callable[[str], None] = print,
) -> Path:
    """Write the finished run's report (unless ``report`` is False) and say where; returns ``path``."""
    if report:
        paths = build_report(path, show_harmful=show_harmful, echo=echo)
        echo(f"report: {paths['report']}   summary: {paths['summary']}")
    return path


def run_study(
    target: str | Path, *, resume: bool = False, output: str | Path | None = None, progress: bool = True,
    report: bool = True, show_harmful: bool = False, executor: str | None = None, workers: int | None = None,
    limit: int | None = None, echo: Callable[[str], None] = print,
) -> Path:
    """Run (or, with ``resume``, finish) a study (:func:`srilab.study.runner.run_study`), then report it; return
    the run directory. ``show_harmful``: harmful generations unredacted in ``report.html``."""
    check_flags(report, show_harmful)
    path = runner.run_study(target, resume=resume, output=output, progress=progress, executor=executor,
                            workers=workers, limit=limit, echo=echo)
    return report_run(path, report=report, show_harmful=show_harmful, echo=echo)


def run_config(
    cfg: StudyConfig, run: RunDir, *, resume: bool = False, progress: bool = True, report: bool = True,
    show_harmful: bool = False, echo: Callable[[str], None] = print,
) -> Path:
    """Run a validated study config into ``run`` (:func:`srilab.study.runner.run_config`), then report it."""
    check_flags(report, show_harmful)
    path = runner.run_config(cfg, run, resume=resume, progress=progress, echo=echo)
    return report_run(path, report=report, show_harmful=show_harmful, echo=echo)


def run_flags(
    models: Sequence[str], attacks: Sequence[str], datasets: Sequence[str], *, samplers: Sequence[str] = (),
    limit: int | None = None, out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
    progress: bool = True, report: bool = True, show_harmful: bool = False, executor: str | None = None,
    workers: int | None = None, echo: Callable[[str], None] = print,
) -> Path:
    """``srilab run --model ... --attack ... --dataset ...`` (:func:`srilab.study.runner.run_flags`), then report."""
    check_flags(report, show_harmful)
    path = runner.run_flags(models, attacks, datasets, samplers=samplers, limit=limit, out=out, resume=resume,
                           overwrite=overwrite, progress=progress, executor=executor, workers=workers, echo=echo)
    return report_run(path, report=report, show_harmful=show_harmful, echo=echo)
