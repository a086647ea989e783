"""The executor seam: a study run on Ray workers gives the local executor's records, traces (bit for bit),
judgements, defense scores and summary; a worker killed mid-run changes nothing; a run started on one
executor is finished on the other; a bad executor setting is one line and exit 2, before anything is written.

The Ray tests share one local Ray instance (2 CPUs, started once for the module) and a tiny study: the micro
toy pair under an AR and a diffusion sampler, 4 items per dataset, 6 new tokens.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from srilab.cli import main
from srilab.pipeline.run import run_study
from srilab.study.executor_ray import FAULT_ENV
from srilab.study.store import RunDir


def study(pair: Path, out: Path, **over) -> dict:
    cfg = {
        "name": "exec", "output": str(out), "seed": 5, "batch_size": 2, "toy_pair": str(pair),
        "models": [
            {"name": "a", "path": "toy:ar", "samplers": [{"kind": "ar", "max_new_tokens": 6, "name": "ar"}]},
            {"name": "d", "path": "toy:diffusion", "samplers": [
                {"kind": "diffusion", "steps": 6, "gen_length": 6, "block_length": 6, "name": "diff"}]},
        ],
        "datasets": [
            {"name": "harm", "source": "toy", "split": "harmful_direct", "limit": 4, "role": "harmful"},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 4, "role": "benign"},
        ],
        "attacks": ["direct", "prefill"],
        "judges": ["refusal", "oracle"],
        "defenses": ["output_keyword"],
        "sri": {"enabled": False},
        "n_boot": 100,
        "analysis": {"dynamics_every": 2, "text_baseline": False},
    }
    cfg.update(over)
    return cfg


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def quiet(_: str) -> None:
    pass


def same_run(want: Path, got: Path) -> None:
    """Records (in the same order), traces (bit for bit), verdicts, defense scores and summary figures."""
    a, b = RunDir(want), RunDir(got)
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "timing"} for r in rows]  # noqa: E731
    assert untimed(b.records().rows()) == untimed(a.records().rows())
    verdict = lambda r: (r["key"], r["judge"], r["refused"], r["harmful"], r.get("score"))  # noqa: E731
    assert sorted(map(verdict, b.judgements().rows())) == sorted(map(verdict, a.judgements().rows()))
    score = lambda r: (r["key"], r["defense"], r["score"])  # noqa: E731
    assert sorted(map(score, b.defenses().rows())) == sorted(map(score, a.defenses().rows()))
    dyn = lambda r: json.dumps({k: v for k, v in r.items() if "second" not in k}, sort_keys=True)  # noqa: E731
    assert sorted(map(dyn, b.dynamics().rows())) == sorted(map(dyn, a.dynamics().rows()))
    for r in a.records().rows():
        x, y = load_file(str(want / r["shard"])), load_file(str(got / r["shard"]))
        assert x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x), r["key"]
    for name in ("records.jsonl", "judgements.jsonl", "defenses.jsonl"):
        keys = [tuple(json.loads(x).get(f) for f in ("key", "judge", "defense")) for x in (got / name).open()]
        assert len(keys) == len(set(keys)), name
    s_want, s_got = (json.loads((p / "summary.json").read_text()) for p in (want, got))
    assert figures(s_got) == figures(s_want)


def figures(summary: dict) -> dict:
    """The summary without the run's paths and timings (seconds differ from run to run)."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in ("run_dir", "output") and "second" not in k}
        return [strip(x) for x in v] if isinstance(v, list) else v

    return strip(summary)


def cut(run: Path, keep: int) -> None:
    """Leave ``run`` as a generation interrupted after ``keep`` records: later records (and a torn last
    line), their shards, every verdict and the report gone."""
    lines = (run / "records.jsonl").read_text().splitlines(keepends=True)
    kept = lines[:keep]
    (run / "records.jsonl").write_text("".join(kept) + lines[keep][:40])
    shards = {json.loads(x)["shard"] for x in kept}
    for p in (run / "traces").rglob("*.safetensors"):
        if str(p.relative_to(run)) not in shards:
            p.unlink()
    for name in ("judgements.jsonl", "defenses.jsonl", "dynamics.jsonl", "summary.json", "report.html"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "plots", ignore_errors=True)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (the executor reuses it and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(micro_pair, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exec-local")
    run_study(write(root / "study.yaml", study(micro_pair, root / "run")), progress=False, echo=quiet)
    return root / "run"


@pytest.fixture(scope="module")
def ray_run(micro_pair, ray_session, tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("exec-ray")
    said: list[str] = []
    run_study(write(root / "study.yaml", study(micro_pair, root / "run")), executor="ray", workers=2,
              progress=False, echo=said.append)
    return root / "run", said


# ------------------------------------------------------------------------------------------------ tests
def test_ray_with_two_workers_equals_the_local_executor(local_run, ray_run):
    out, said = ray_run
    assert any("ray: 2 workers" in line for line in said), said
    assert any("generations: 24 new" in line for line in said), said
    same_run(local_run, out)
    # the executor is not part of the stored config (a resume on the other executor must match it)
    assert "executor" not in RunDir(out).read_config()
    assert RunDir(out).read_config() == RunDir(local_run).read_config() | {"output": str(out)}


def test_a_worker_killed_mid_run_is_replaced_and_changes_nothing(micro_pair, ray_session, local_run, tmp_path,
                                                                monkeypatch):
    flag = tmp_path / "worker-died"
    monkeypatch.setenv(FAULT_ENV, f"2:{flag}")  # the first worker to reach its 2nd unit exits (os._exit)
    said: list[str] = []
    run_study(write(tmp_path / "study.yaml", study(micro_pair, tmp_path / "run")), executor="ray", workers=2,
              progress=False, echo=said.append)
    assert flag.exists()
    assert any("a worker died" in line for line in said), said
    same_run(local_run, tmp_path / "run")


def test_started_local_finished_on_ray_from_the_yaml_executor_block(micro_pair, ray_session, local_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(local_run, out)
    cut(out, keep=5)
    # the study's YAML (its output: the copied run's) with an executor block it did not have when it started
    cfg = study(micro_pair, local_run, executor={"kind": "ray", "workers": 2, "num_cpus": 1, "max_in_flight": 2})
    path = write(tmp_path / "study.yaml", cfg)
    with pytest.warns(RuntimeWarning, match="partial last line"):
        assert main(["run", "--resume", str(path), "--output", str(out), "--no-progress"]) == 0
    same_run(local_run, out)


def test_started_on_ray_finished_locally(ray_run, local_run, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(ray_run[0], out)
    cut(out, keep=13)
    with pytest.warns(RuntimeWarning, match="partial last line"):
        assert main(["run", "--resume", str(out), "--executor", "local", "--no-progress"]) == 0
    assert "ray:" not in capfd.readouterr().out
    same_run(local_run, out)


def test_limit_is_recorded_and_a_resume_must_repeat_it(micro_pair, tmp_path, capfd):
    small = study(micro_pair, tmp_path / "run", models=study(micro_pair, tmp_path)["models"][:1], defenses=[],
                  judges=["refusal"])
    path = write(tmp_path / "study.yaml", small)
    assert main(["run", str(path), "--limit", "2", "--no-progress", "--no-report"]) == 0
    stored = RunDir(tmp_path / "run").read_config()
    assert [d["limit"] for d in stored["datasets"]] == [2, 2]
    assert len((tmp_path / "run" / "records.jsonl").read_text().splitlines()) == 2 * 2 + 2  # direct, prefill; benign
    capfd.readouterr()
    assert main(["run", "--resume", str(path), "--no-progress", "--no-report"]) == 2  # a different config
    assert "datasets.0.limit" in capfd.readouterr().err
    assert main(["run", "--resume", str(path), "--limit", "2", "--no-progress", "--no-report"]) == 0
    assert main(["run", "--resume", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 0


BAD = {
    "unknown-executor": (["--executor", "slurm"], {}, "unknown executor 'slurm'"),
    "workers-0": (["--executor", "ray", "--workers", "0"], {}, "--workers must be"),
    "limit-0": (["--limit", "0"], {}, "--limit must be"),
    "yaml-kind": ([], {"executor": {"kind": "dask"}}, "executor.kind"),
    "yaml-workers": ([], {"executor": {"kind": "ray", "workers": 0}}, "executor.workers"),
    "yaml-gpus": ([], {"executor": {"kind": "ray", "num_gpus": -1}}, "executor.num_gpus"),
    "yaml-unknown-key": ([], {"executor": {"kind": "ray", "nodes": 3}}, "executor.nodes: unknown key"),
    "ray-missing": (["--executor", "ray"], {}, "needs Ray"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_executor_setting_is_one_line_exit_2_and_writes_nothing(case, micro_pair, tmp_path, capfd,
                                                                      monkeypatch):
    flags, over, expect = BAD[case]
    if case == "ray-missing":
        monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    path = write(tmp_path / "study.yaml", study(micro_pair, tmp_path / "run", **over))
    capfd.readouterr()
    assert main(["run", str(path), "--no-progress", *flags]) == 2
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err[-2000:]
    assert not (tmp_path / "run").exists()
