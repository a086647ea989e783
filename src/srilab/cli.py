"""The command line: a thin typer layer over the Python API.

Every error a user can cause is a :class:`~srilab.errors.SrilabError`; the CLI prints its one-line
message to stderr and exits with code 2 (no traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from srilab.errors import SrilabError

PAIR_HELP = "A toy pair: a shipped one by name (v2, v3) or a directory `srilab toy train` wrote (default: v2)."
app = typer.Typer(add_completion=False, no_args_is_help=True, help="srilab: safety science for diffusion and AR LMs.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"srilab {version('srilab')}")
        except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
            typer.echo("srilab (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """srilab: safety science for diffusion and AR LMs."""


@app.command()
def info(
    model: str = typer.Argument(..., help="A model directory, a GGUF file, a hub id (cached), or a study YAML "
                                "(then: what the study will cost, before any model is loaded)."),
    kind: str | None = typer.Option(None, help="Force 'ar' or 'diffusion' (default: from config.json)."),
    gguf_file: str | None = typer.Option(None, help="GGUF file name inside MODEL (a directory or hub id)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the checkpoint's own code."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Load pickled .bin/.pt weights (unpickling can run code: trusted files only)."
    ),
    allow_partial_checkpoint: bool = typer.Option(
        False, "--allow-partial-checkpoint", help="Load a checkpoint with missing, unexpected or misshapen tensors "
        "(random ones in their place), with a warning."
    ),
) -> None:
    """Load a model and describe it (kind, mask id, logits shift, layers, final norm); for a study YAML, estimate
    its memory and time per model and sampler instead (srilab.study.estimate)."""
    if model.endswith((".yaml", ".yml")):
        from srilab.study.config import load_config
        from srilab.study.estimate import estimate_study, format_estimate

        typer.echo(format_estimate(estimate_study(load_config(Path(model)))))
        return
    if model.startswith("toy:"):  # the embedded toy pair
        from srilab.study.adhoc import toy_model

        lm = toy_model(model)
        for key, value in lm.describe().items():
            typer.echo(f"{key:>16}: {value}")
        return
    from srilab.models import load

    lm = load(model, kind=kind, gguf_file=gguf_file, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
              allow_partial=allow_partial_checkpoint)
    for key, value in lm.describe().items():
        typer.echo(f"{key:>16}: {value}")


@app.command("list")
def list_(
    kind: str | None = typer.Argument(None, help="attacks | judges | defenses | detectors | datasets | models | "
                                      "samplers (default: every kind)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (name, summary, source, tags) instead."),
) -> None:
    """List what is registered under KIND: each name with its source and a one-line summary."""
    import json

    from srilab.study.adhoc import catalogue

    everything = catalogue()
    if kind is not None and kind not in everything:
        raise SrilabError(f"unknown kind {kind!r}: choose one of {', '.join(sorted(everything))}")
    chosen = {kind: everything[kind]} if kind else everything
    if as_json:
        typer.echo(json.dumps(chosen[kind] if kind else chosen, indent=2))
        return
    for name, entries in chosen.items():
        if kind is None:
            typer.echo(f"{name}: {', '.join(e['name'] for e in entries)}")
            continue
        width = max(len(e["name"]) for e in entries)
        for e in entries:
            tags = "".join(f" [{k}: {v}]" for k, v in e["tags"].items() if v not in (None, "any"))
            typer.echo(f"{e['name']:<{width}}  {e['summary']}{tags}")
            typer.echo(f"{'':<{width}}  source: {e['source'] or '-'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Run directory (records, traces, report.html, summary.json)."),
    quick: bool = typer.Option(False, "--quick", help="Every set cut to a small evenly spaced slice (about 2 min)."),
    pair: Path | None = typer.Option(None, help=PAIR_HELP),
    limit: int | None = typer.Option(None, help="Items per set (default: all; --quick: 12)."),
    detector: str | None = typer.Option(None, help="SRI guard: autoencoder|mahalanobis|knn|isolation_forest."),
    batch_size: int | None = typer.Option(None, min=1, help="Generation batch size (default: the demo config's)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Run the demo study (srilab/toy/demo.yaml) on the embedded toy pair into a resumable run directory."""
    from srilab.pipeline.demo import run_demo

    run_demo(out=out, quick=quick, limit=limit, pair=pair, detector=detector, batch_size=batch_size,
             progress=not no_progress, echo=typer.echo)


@app.command()
def sweep(
    out: Path = typer.Option(Path("sweep-out"), help="Run directory of the sweep study."),
    limit: int = typer.Option(12, help="Harmful requests (and benign held-out ones; twice as many benign train)."),
    pair: Path | None = typer.Option(None, help=PAIR_HELP),
    remasking: str | None = typer.Option(None, help="Remasking rules swept besides low_confidence, comma-separated "
                                         "(diffuguard:<alpha_0> too; default: random,entropy,margin,diffuguard)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """The sampler as the experiment: the toy diffusion model under tokens-per-step, remasking, temperature,
    schedule and injection-step settings, attacked, judged and traced; plots ASR against each."""
    from srilab.pipeline.sweep import run_sweep
    from srilab.study.sweep import REMASKING

    if limit < 2:
        raise SrilabError(f"--limit must be at least 2, got {limit}")
    rules = REMASKING if remasking is None else [r.strip() for r in remasking.split(",") if r.strip()]
    run_sweep(out=out, limit=limit, pair=pair, progress=not no_progress, echo=typer.echo, remasking=rules)


@app.command()
def run(
    target: Path | None = typer.Argument(None, help="A study YAML; with --resume, the YAML or its run directory. "
                                         "Or leave it out and name the study with --model/--attack/--dataset."),
    model: list[str] = typer.Option([], "--model", help="A model (repeatable): toy:ar, toy:diffusion, a folder, a "
                                    ".gguf file, a hub id (srilab list models)."),
    attack: list[str] = typer.Option([], "--attack", help="An attack (repeatable; direct is always run too)."),
    dataset: list[str] = typer.Option([], "--dataset", help="toy:SPLIT, SOURCE or SOURCE:FILE (repeatable; on "
                                      "the toy world the benign sets the guard needs are added)."),
    sampler: list[str] = typer.Option([], "--sampler", help="Sampler presets (repeatable; default: ar for AR "
                                      "models, diffusion for diffusion models; srilab list samplers)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run (same config, no duplicates)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default: the config's output)."),
    output: Path | None = typer.Option(None, "--output", hidden=True),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in a directory that holds a run: its "
                                   "files are moved to OUT/previous/<time>/ (never deleted)."),
    no_report: bool = typer.Option(False, "--no-report", help="Generate and judge only; `srilab report` later."),
    show_harmful: bool = typer.Option(False, "--show-harmful", help="Do not redact harmful generations in the HTML."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    executor: str | None = typer.Option(None, help="Where generations run: local | ray (default: the config's)."),
    workers: int | None = typer.Option(None, help="Ray workers (actors), one model replica each."),
    limit: int | None = typer.Option(None, help="Items per dataset (a smoke run; recorded in the run's config)."),
) -> None:
    """Run a study (models x samplers x datasets x attacks, judged, traced) into an append-only run directory."""
    from srilab.pipeline.run import run_flags, run_study

    out = out if out is not None else output
    if target is None or model or dataset or attack or sampler:
        if target is not None:
            raise SrilabError(f"give a study YAML ({target}) or --model/--attack/--dataset, not both")
        run_flags(model, attack, dataset, samplers=sampler, limit=limit, out=out, resume=resume, overwrite=overwrite,
                  progress=not no_progress, report=not no_report, show_harmful=show_harmful, executor=executor,
                  workers=workers, echo=typer.echo)
        return
    if overwrite:
        from srilab.study.adhoc import make_room

        make_room(out, target, echo=typer.echo)
    run_study(target, resume=resume, output=out, progress=not no_progress, report=not no_report,
              show_harmful=show_harmful, executor=executor, workers=workers, limit=limit, echo=typer.echo)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `srilab run`."),
    show_harmful: bool = typer.Option(False, "--show-harmful", help="Do not redact harmful generations in the HTML."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Report on an unfinished run (a partial last line, missing verdicts): "
        "only the complete rows count, and the report says how many are left out."
    ),
    markdown: Path | None = typer.Option(None, help="Also write the headline tables (claims, knowledge, attack "
                                                    "success, benign quality) as Markdown to this file."),
) -> None:
    """Rebuild summary.json, report.html and the plots from a run directory alone."""
    from srilab.report.build import build_report
    from srilab.study.store import RunDir

    RunDir(run_dir).check_complete(allow_incomplete=allow_incomplete)
    paths = build_report(run_dir, show_harmful=show_harmful, echo=typer.echo)
    typer.echo(f"report: {paths['report']}   summary: {paths['summary']}")
    if markdown is not None:
        import json

        from srilab.report.markdown import summary_markdown

        markdown.write_text(summary_markdown(json.loads(Path(paths["summary"]).read_text())), encoding="utf-8")
        typer.echo(f"tables: {markdown}")


@app.command()
def ablate(
    run_dir: Path = typer.Argument(..., help="A finished run directory (`srilab run` / `srilab demo`)."),
    layers: str = typer.Option("first,middle,last", help="Comma-separated layers (first|middle|last|index)."),
    samplers: str | None = typer.Option(None, help="Only these sampler labels, comma-separated (default: all)."),
    out: Path | None = typer.Option(None, help="Output directory (default: RUN_DIR/ablations)."),
    guard: bool = typer.Option(True, "--guard/--no-guard", help="Also diagnose the guard on unseen topics (its "
                                                             "variants, tau, floor, fit groups) per arm."),
    rotations: int = typer.Option(1, help="Refit the guard with every benign topic group held out once, this many "
                                          "times with other draws (0: skip)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """The guard's ablations under the run's protocol: SRI read at other layers, the first step alone, text only,
    and the guard's variants on unseen topics (added to the run's report)."""
    from srilab.pipeline.ablate import run_ablations

    run_ablations(run_dir, layers=layers, samplers=samplers, out=out, guard=guard, rotations=rotations,
                  progress=not no_progress, echo=typer.echo)


toy_app = typer.Typer(no_args_is_help=True, help="The embedded toy world: train and evaluate the matched pair.")
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train(
    out: Path = typer.Option(..., help="Directory for the pair (ar/, diffusion/, training.json, checksums.json)."),
    seed: int = typer.Option(0, help="Training seed (initial weights, batch order, masking noise)."),
    size: str = typer.Option("small", help="Architecture size: small (shipped) or micro (tests)."),
    pretrain_steps: int = typer.Option(1200, help="Pretraining steps."),
    sft_steps: int = typer.Option(1800, help="Chat fine-tune steps."),
    world_version: int = typer.Option(2, help="Toy world version: 2 (the shipped pair's, 36 harmful tasks) or 3 "
                                              "(192 harmful tasks in 16 groups)."),
    pretrain_docs: int = typer.Option(4000, help="Pretraining documents (scale with the world's task count)."),
    continuation_share: float = typer.Option(0.0, help="Share of the diffusion model's pretraining rows masked "
                                                       "only after a random clean prefix (srilab.toy.train)."),
    harmful_doc_weight: int = typer.Option(1, help="Pretraining documents per harmful task, relative to a benign "
                                                   "one (srilab.toy.corpus.pretraining_corpus)."),
    mix_every: int = typer.Option(4, help="During the fine-tune, every mix_every-th step is a pretraining step."),
    diffusion_pretrain_steps: int | None = typer.Option(None, help="The diffusion model's pretraining steps "
                                                                   "(default: --pretrain-steps, as the AR model)."),
    diffusion_sft_steps: int | None = typer.Option(None, help="The diffusion model's fine-tune-phase steps "
                                                              "(default: --sft-steps, as the AR model)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty directory."),
    only: str | None = typer.Option(None, help="Train one model only: ar or diffusion (e.g. a diffusion model "
                                               "trained longer, for `srilab toy eval --diffusion`)."),
) -> None:
    """Train the matched AR + diffusion toy pair deterministically (the shipped pair: the defaults)."""
    from srilab.toy.train import KINDS, TrainConfig, train_pair

    cfg = TrainConfig(seed=seed, size=size, pretrain_steps=pretrain_steps, sft_steps=sft_steps,
                      world_version=world_version, pretrain_docs=pretrain_docs, continuation_share=continuation_share,
                      diffusion_pretrain_steps=diffusion_pretrain_steps, harmful_doc_weight=harmful_doc_weight,
                      mix_every=mix_every, diffusion_sft_steps=diffusion_sft_steps)
    record = train_pair(out, cfg, overwrite=overwrite, kinds=(only,) if only else KINDS)
    for kind, m in record["models"].items():
        losses = {k: round(v, 4) for k, v in m["final"].items() if k.endswith("loss")}
        typer.echo(f"{kind:>10}: {m['parameters']:,} parameters, {m['seconds']}s, final {losses}")
    typer.echo(f"wrote {out} (checksums in {Path(out) / 'checksums.json'})")


@toy_app.command("eval")
def toy_eval(
    pair: Path | None = typer.Option(None, help=PAIR_HELP),
    limit: int | None = typer.Option(None, help="Items per set (default: all)."),
    diffusion: Path | None = typer.Option(None, help="Another diffusion model of the same world (e.g. one "
                                                    "`srilab toy train --only diffusion` trained longer)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Quality of the pair under ar / diffusion / diffusion-l2r: refusal, benign correctness, safe look-alikes
    answered and reasoning, each with k/n and a Wilson interval; then the knowledge probe: the harmful and
    benign procedures each model writes as plain text in the pretraining formats (srilab.toy.knowledge)."""
    from srilab.models import load
    from srilab.toy.evaluate import evaluate_pair, format_knowledge, format_quality, knowledge_probe, pair_samplers
    from srilab.toy.pair import load_pair, pair_gen_length, pair_world

    ar, dlm = load_pair(pair)
    if diffusion is not None:
        dlm = load(diffusion / "diffusion" if (diffusion / "diffusion").is_dir() else diffusion)
        if dlm.kind != "diffusion":
            raise SrilabError(f"--diffusion {diffusion} holds a {dlm.kind} model: give a diffusion model")
    world, samplers = pair_world(pair), pair_samplers(pair_gen_length(pair))
    rows = evaluate_pair(ar, dlm, world, samplers, limit=limit, progress=not no_progress)
    typer.echo(format_quality(rows))
    typer.echo(format_knowledge(knowledge_probe(ar, dlm, world, samplers, limit=limit, progress=not no_progress)))


def _quiet_third_parties() -> None:
    """Third-party chatter that is not the user's business on the command line (``SRILAB_VERBOSE=1`` keeps it):
    transformers' deprecation notes (``past_key_values``) and weight-loading bars, Ray's future warnings."""
    if os.environ.get("SRILAB_VERBOSE"):
        return
    import warnings

    for module in ("transformers", "ray", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # srilab shows its own progress; not one bar per weight file
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``srilab`` script; returns the exit code."""
    _quiet_third_parties()
    if os.environ.get("SRILAB_THREADS"):  # opt-in: the thread count changes float rounding, so results
        from srilab.sampling.threads import set_threads  # are reproducible only at a fixed count

        set_threads()
    try:
        code = app(args=argv, standalone_mode=False)
    except SrilabError as err:
        typer.echo(f"error: {err}", err=True)
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except Exception as err:  # click usage errors carry their own exit code
        bases = {c.__name__ for c in type(err).__mro__}  # click's, or the copy typer vendors
        if "ClickException" in bases and hasattr(err, "format_message"):  # one line, like every other error
            hint = " (see --help)" if "UsageError" in bases else ""
            typer.echo(f"error: {' '.join(err.format_message().split())}{hint}", err=True)
            return err.exit_code
        from srilab.io import user_error

        converted = user_error(err)  # an expected failure (I/O, decoding, safetensors, memory): one line
        if converted is None:
            raise
        typer.echo(f"error: {converted}", err=True)
        return converted.exit_code
    return code if isinstance(code, int) else 0

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

