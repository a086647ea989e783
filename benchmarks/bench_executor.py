"""Executor throughput: generations per second, local vs Ray with N workers, as a ratio measured in one run.

    python benchmarks/bench_executor.py [--quick] [--workers 2] [--items 16] [--threads 1] [--json out.json]

The same small study on the shipped toy pair (the AR model and the diffusion model, ``--items`` harmful and
benign requests each, direct requests, batches of 4) is generated twice into fresh run directories: once by
the local executor in this process, once by ``--workers`` Ray actors (1 CPU each) on a local Ray instance.
Only the generation phase is timed (judging, defenses and the report run in the driver either way). Every
process runs torch with ``--threads`` threads (the same count everywhere, so both runs give the same records
and traces, which is checked).

Ray's start-up is stated separately: ``ray.init`` (once per driver process) and the workers' start-up
(process start, imports; once per run, in the Ray wall time). The ratio is given end to end (everything after
``ray.init``) and without the workers' start-up (steady state: what a long study approaches).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def study(items: int, tokens: int, output: Path) -> dict:
    return {
        "name": "bench-executor", "output": str(output), "seed": 0, "batch_size": 4,
        "models": [
            {"name": "toy-ar", "path": "toy:ar", "samplers": [{"kind": "ar", "max_new_tokens": tokens, "name": "ar"}]},
            {"name": "toy-diffusion", "path": "toy:diffusion", "samplers": [
                {"kind": "diffusion", "steps": tokens, "gen_length": tokens, "block_length": 8, "name": "diffusion"}]},
        ],
        "datasets": [
            {"name": "harmful", "source": "toy", "split": "harmful_direct", "limit": items, "role": "harmful"},
            {"name": "benign", "source": "toy", "split": "benign_direct", "limit": items, "role": "benign"},
        ],
        "attacks": ["direct"], "judges": ["refusal"], "sri": {"enabled": False}, "n_boot": 100,
        "analysis": {"dynamics_every": 0, "text_baseline": False},
    }


def generate_into(cfg, out: Path, echo) -> tuple[int, float, list[dict]]:
    """Generate every record of ``cfg`` into a new run directory ``out``; (records, seconds, rows)."""
    from tqdm.auto import tqdm

    from srilab.study.executor import plan_units, run_local
    from srilab.study.store import RunDir

    run = RunDir(out)
    run.create(cfg.canonical(), resume=False)
    run.lock()
    try:
        journal = run.records()
        units, total, _ = plan_units(cfg, run, journal, echo)
        bar = tqdm(total=total, disable=True)
        started = time.perf_counter()
        if cfg.executor.kind == "ray":
            from srilab.study.executor_ray import run_ray

            new = run_ray(units, cfg, run, journal, bar, echo=echo)
        else:
            new = run_local(units, cfg, run, journal, bar)
        seconds = time.perf_counter() - started
    finally:
        run.unlock()
    rows = [{k: v for k, v in r.items() if k != "timing"} for r in run.records().rows()]
    return new, seconds, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 items per dataset, 16 tokens (a smoke run).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--items", type=int, default=16, help="Items per dataset.")
    ap.add_argument("--tokens", type=int, default=32, help="New tokens (AR) and steps = gen_length (diffusion).")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every process.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    items, tokens = (8, 16) if args.quick else (args.items, args.tokens)
    torch.set_num_threads(args.threads)
    try:
        import ray
    except ImportError:
        print("bench_executor needs Ray: pip install -e '.[ray]'", file=sys.stderr)
        return 2
    from srilab.study.config import parse_config

    said: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        base = parse_config(study(items, tokens, Path(tmp) / "unused"))
        local = base.model_copy(update={"executor": base.executor.model_copy(update={"kind": "local"})})
        n_local, t_local, rows_local = generate_into(local, Path(tmp) / "local", said.append)

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - started
        try:
            spec = base.executor.model_copy(update={"kind": "ray", "workers": args.workers, "num_cpus": 1.0})
            n_ray, t_ray, rows_ray = generate_into(base.model_copy(update={"executor": spec}), Path(tmp) / "ray",
                                                   said.append)
        finally:
            ray.shutdown()
    up = next((float(m.group(1)) for line in said if (m := re.search(r"up in ([0-9.]+)s", line))), float("nan"))
    result = {
        "items_per_dataset": items, "tokens": tokens, "threads": args.threads, "workers": args.workers,
        "generations": n_local, "identical_records": rows_local == rows_ray and n_local == n_ray,
        "local": {"seconds": t_local, "gen_per_s": n_local / t_local},
        "ray": {"init_seconds": t_init, "worker_startup_seconds": up, "seconds": t_ray,
                "gen_per_s": n_ray / t_ray, "gen_per_s_without_startup": n_ray / max(1e-9, t_ray - up)},
    }
    result["ratio_ray_over_local"] = result["ray"]["gen_per_s"] / result["local"]["gen_per_s"]
    result["ratio_ray_over_local_without_startup"] = (
        result["ray"]["gen_per_s_without_startup"] / result["local"]["gen_per_s"])
    print(f"executor throughput: {n_local} generations (toy AR + diffusion, {items} items per dataset, "
          f"{tokens} tokens), {args.threads} torch thread(s) per process, on {os.cpu_count()} cores")
    print(f"  local            {t_local:7.2f}s  {result['local']['gen_per_s']:7.2f} gen/s")
    print(f"  ray, {args.workers} workers   {t_ray:7.2f}s  {result['ray']['gen_per_s']:7.2f} gen/s   "
          f"(of which workers' start-up {up:.2f}s; {result['ray']['gen_per_s_without_startup']:.2f} gen/s without)")
    print(f"  ray start-up     ray.init {t_init:.2f}s (once per driver), workers {up:.2f}s (once per run)")
    print(f"  ratio ray/local  {result['ratio_ray_over_local']:.2f}x end to end (after ray.init), "
          f"{result['ratio_ray_over_local_without_startup']:.2f}x without the workers' start-up")
    print(f"  records identical: {result['identical_records']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["identical_records"] else 1


if __name__ == "__main__":
    sys.exit(main())
