"""Reliability as a hostile user sees it: every bad input is one line and exit 2 (nothing written), every
interruption (SIGKILL, Ctrl-C, a deleted shard, a concurrent resume) is recoverable, no pickle is loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from srilab.cli import main
from srilab.errors import SrilabError
from srilab.pipeline.run import run_study
from srilab.study.store import Journal, RunDir

# spawned runs use this process's thread count: float sums, and so traces, depend on it
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}


def small_config(pair: Path, out: Path, **over) -> dict:
    cfg = {
        "name": "rel",
        "output": str(out),
        "seed": 5,
        "batch_size": 2,
        "toy_pair": str(pair),
        "models": [{"name": "m", "path": "toy:ar", "samplers": [{"kind": "ar", "max_new_tokens": 6, "name": "ar"}]}],
        "datasets": [
            {"name": "harm", "source": "toy", "split": "harmful_direct", "limit": 4, "role": "harmful"},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 4, "role": "benign"},
        ],
        "attacks": ["direct"],
        "judges": ["refusal"],
        "sri": {"enabled": False},
        "n_boot": 100,
        "analysis": {"dynamics_every": 0, "text_baseline": False},
    }
    cfg.update(over)
    return cfg


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
        for p in sorted(root.rglob("*"))
    }


def stable(rows):
    return sorted(({k: v for k, v in r.items() if k != "timing"} for r in rows), key=lambda r: r["key"])


def quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture(scope="module")
def bad_world(micro_pair, tiny_pair, tmp_path_factory):
    """Files a hostile user hands srilab (built once)."""
    root = tmp_path_factory.mktemp("bad")
    w = {"root": root, "pair": micro_pair}
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    (root / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "syntax.yaml").write_text("name: x\nmodels: [\n  - a: b\n")
    (root / "afile").write_text("not a directory\n")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("user data\n")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00\x81" * 100)
    (root / "huge.txt").write_text("word " * 200_000 + "\n")
    # checkpoints: pickle-only, truncated safetensors, a config without size fields, a binary config
    src = tiny_pair["ar"]
    import shutil

    from safetensors.torch import load_file as read_weights

    pkl = root / "pickle_only"
    pkl.mkdir()
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, pkl / f.name)
    torch.save(read_weights(str(src / "model.safetensors")), pkl / "pytorch_model.bin")
    assert not list(pkl.glob("*.safetensors")) and list(pkl.glob("*.bin"))
    trunc = root / "truncated"
    shutil.copytree(src, trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    nosize = root / "nosize"
    shutil.copytree(src, nosize)
    cfg = json.loads((nosize / "config.json").read_text())
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "head_dim"):
        cfg.pop(k, None)
    (nosize / "config.json").write_text(json.dumps(cfg))
    binconf = root / "binconf"
    shutil.copytree(src, binconf)
    (binconf / "config.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xff")
    w.update(pickle=pkl, truncated=trunc, nosize=nosize, binconf=binconf, tiny=src)
    return w


def _cfg(w, **over):
    return small_config(w["pair"], w["root"] / "out-never", **over)


def _model(path, **over):
    return [{"name": "m", "path": str(path), "samplers": [{"kind": "ar", "max_new_tokens": 4, "name": "ar"}], **over}]


def _sampler(**s):
    return [{"name": "m", "path": "toy:ar", "samplers": [{"name": "s", **s}]}]


def _ds(**d):
    return [{"name": "p", "source": "prompts", "role": "harmful", **d},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 2, "role": "benign"}]


# (case id, how to build the argv from the world, expected text in the message)
YAML_CASES = {
    "alias-bomb": (None, "aliases"),
    "binary-yaml": (None, "not UTF-8"),
    "yaml-list": (None, "must be a mapping"),
    "yaml-syntax": (None, "not valid YAML"),
    "unknown-key": (lambda w: _cfg(w, sede=1), "unknown key"),
    "seed-2**80": (lambda w: _cfg(w, seed=2**80), "seed"),
    "seed-negative": (lambda w: _cfg(w, seed=-1), "seed"),
    "batch-size-0": (lambda w: _cfg(w, batch_size=0), "batch_size"),
    "device-cuda": (lambda w: _cfg(w, models=[{**_cfg(w)["models"][0], "device": "cuda"}]), "device"),
    "device-bogus": (lambda w: _cfg(w, models=[{**_cfg(w)["models"][0], "device": "gpu0"}]), "device"),
    "dtype-float8": (lambda w: _cfg(w, models=[{**_cfg(w)["models"][0], "dtype": "float8"}]), "dtype"),
    "dtype-toy-fp16": (lambda w: _cfg(w, models=[{**_cfg(w)["models"][0], "dtype": "float16"}]), "float32"),
    "max-new-tokens-1e12": (lambda w: _cfg(w, models=_sampler(kind="ar", max_new_tokens=10**12)), "context"),
    "gen-length-1e9": (lambda w: _cfg(w, models=[{"name": "d", "path": "toy:diffusion", "samplers": [
        {"kind": "diffusion", "steps": 10, "gen_length": 10**9, "name": "s"}]}]), "context"),
    "prompt-1MB": (lambda w: _cfg(w, datasets=_ds(path=str(w["root"] / "huge.txt"))), "context"),
    "dataset-binary": (lambda w: _cfg(w, datasets=_ds(path=str(w["root"] / "binary.txt"))), "binary.txt"),
    "dataset-missing": (lambda w: _cfg(w, datasets=_ds(path=str(w["root"] / "nope.txt"))), "nope.txt"),
    "model-missing": (lambda w: _cfg(w, models=_model(w["root"] / "nope-model")), "does not exist"),
    "model-pickle-only": (lambda w: _cfg(w, models=_model(w["pickle"])), "pickle"),
    "model-truncated": (lambda w: _cfg(w, models=_model(w["truncated"])), "truncated"),
    "model-binary-config": (lambda w: _cfg(w, models=_model(w["binconf"])), "not UTF-8"),
    "unknown-attack": (lambda w: _cfg(w, attacks=["direct", "nope"]), "nope"),
    "unknown-judge": (lambda w: _cfg(w, judges=["refusal", "gpt5"]), "gpt5"),
    "toy-pair-missing": (lambda w: _cfg(w, toy_pair=str(w["root"] / "nopair")), "toy pair"),
    "toy-bad-name": (lambda w: _cfg(w, models=[{**_cfg(w)["models"][0], "path": "toy:big"}]), "toy:ar"),
    "output-is-file": (lambda w: _cfg(w, output=str(w["root"] / "afile")), "is a file"),
    "output-not-empty": (lambda w: _cfg(w, output=str(w["root"] / "full")), "not empty"),
}
RAW_YAML = {"alias-bomb": "bomb.yaml", "binary-yaml": "binary.yaml", "yaml-list": "list.yaml",
            "yaml-syntax": "syntax.yaml"}

ARGV_CASES = {
    "config-missing": (lambda w: ["run", str(w["root"] / "nope.yaml")], "does not exist"),
    "config-is-dir": (lambda w: ["run", str(w["root"] / "full")], "directory"),
    "resume-not-a-run": (lambda w: ["run", "--resume", str(w["root"] / "full")], "not a srilab run"),
    "output-flag-is-file": (lambda w: ["run", str(w["root"] / "good.yaml"), "--output", str(w["root"] / "afile")],
                            "is a file"),
    "demo-batch-size-0": (lambda w: ["demo", "--batch-size", "0", "--out", str(w["root"] / "demo")], "batch-size"),
    "demo-limit-0": (lambda w: ["demo", "--limit", "0", "--out", str(w["root"] / "demo")], "limit"),
    "ablate-not-a-run": (lambda w: ["ablate", str(w["root"] / "full")], "not a srilab run"),
    "ablate-bad-layer": (lambda w: ["ablate", str(w["root"] / "full"), "--layers", "deep"], "unknown layer"),
    "sweep-bad-remasking": (lambda w: ["sweep", "--remasking", "bogus", "--out", str(w["root"] / "sw")],
                            "unknown remasking 'bogus'"),
    "list-bogus": (lambda w: ["list", "bogus"], "unknown kind"),
    "report-missing-dir": (lambda w: ["report", str(w["root"] / "nope-run")], "not a srilab run"),
    "report-not-a-run": (lambda w: ["report", str(w["root"] / "full")], "not a srilab run"),
    "info-missing": (lambda w: ["info", str(w["root"] / "nope-model")], "does not exist"),
    "info-pickle-only": (lambda w: ["info", str(w["pickle"])], "--allow-pickle"),
    "info-truncated": (lambda w: ["info", str(w["truncated"])], "truncated"),
    "info-no-size-fields": (lambda w: ["info", str(w["nosize"])], "nosize"),
    "info-binary-config": (lambda w: ["info", str(w["binconf"])], "not UTF-8"),
    "info-dtype-file": (lambda w: ["info", str(w["root"] / "afile")], "is a file"),
    "unknown-option": (lambda w: ["run", "--frobnicate"], "frobnicate"),
}


def _argv(case: str, w) -> list[str]:
    if case in YAML_CASES:
        if case in RAW_YAML:
            return ["run", str(w["root"] / RAW_YAML[case]), "--no-progress"]
        path = write_yaml(w["root"] / f"{case}.yaml", YAML_CASES[case][0](w))
        return ["run", str(path), "--no-progress"]
    return ARGV_CASES[case][0](w)


@pytest.mark.parametrize("case", [*YAML_CASES, *ARGV_CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, bad_world, capfd):
    if case == "device-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    w = bad_world
    write_yaml(w["root"] / "good.yaml", _cfg(w))
    argv = _argv(case, w)
    capfd.readouterr()
    before = snapshot(w["root"])
    code = main(argv)
    out, err = capfd.readouterr()
    expect = (YAML_CASES.get(case) or ARGV_CASES[case])[1]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case, code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, err[-2000:])
    assert "Traceback" not in err + out
    assert expect.lower() in lines[0].lower(), (case, lines[0])
    assert snapshot(w["root"]) == before, case  # nothing written or changed, no directory left behind
    assert not (w["root"] / "out-never").exists()


def test_python_api_errors_are_srilab_errors(bad_world, micro_pair):
    from srilab.models import load
    from srilab.sampling.api import ARSamplerConfig as ARSampler
    from srilab.sampling.api import DiffusionSamplerConfig as DiffusionSampler
    from srilab.sampling.api import generate
    from srilab.study.config import load_config, parse_config
    from srilab.toy.pair import load_pair

    w = bad_world
    with pytest.raises(SrilabError, match="pickle"):
        load(w["pickle"])
    with pytest.raises(SrilabError, match="float8"):
        load(w["tiny"], dtype="float8")
    with pytest.raises(SrilabError, match="cuda"):
        load(w["tiny"], device="cuda:99")
    with pytest.raises(SrilabError, match="truncated"):
        load(w["truncated"])
    with pytest.raises(SrilabError, match="not UTF-8"):
        load_config(w["root"] / "binary.yaml")
    with pytest.raises(SrilabError, match="aliases"):
        load_config(w["root"] / "bomb.yaml")
    with pytest.raises(SrilabError, match="seed"):
        parse_config(_cfg(w, seed=2**80))
    ar, dlm = load_pair(micro_pair)
    with pytest.raises(SrilabError, match=r"1000000000000 tokens .* context of \d+"):
        generate(ar, ["hi"], ARSampler(max_new_tokens=10**12))
    with pytest.raises(SrilabError, match="context"):
        generate(dlm, ["hi"], DiffusionSampler(steps=10, gen_length=10**9))
    with pytest.raises(SrilabError, match=r"prompt \(\d+ tokens\) \+ response"):
        generate(ar, ["word " * 200_000], ARSampler(max_new_tokens=4))
    with pytest.raises(SrilabError, match="seeds"):
        generate(ar, ["hi"], ARSampler(max_new_tokens=4, temperature=1.0), seeds=[2**80])


def test_pickle_only_checkpoint_is_refused_unless_allowed(bad_world, capfd):
    from srilab.models import load

    with pytest.raises(SrilabError, match=r"pickled weights .*--allow-pickle"):
        load(bad_world["pickle"])
    lm = load(bad_world["pickle"], allow_pickle=True)  # explicitly trusted
    assert lm.kind == "ar"
    capfd.readouterr()
    assert main(["info", str(bad_world["pickle"]), "--allow-pickle"]) == 0


# ------------------------------------------------------------------------------------------------ run directory
@pytest.fixture(scope="module")
def reference(micro_pair, tmp_path_factory):
    root = tmp_path_factory.mktemp("relref")
    cfg = write_yaml(root / "study.yaml", small_config(micro_pair, root / "run", defenses=["output_keyword"]))
    run_study(cfg, progress=False, echo=quiet)
    return root / "run"


def _same_as_reference(reference: Path, out: Path) -> None:
    ref, got = RunDir(reference), RunDir(out)
    assert stable(got.records().rows()) == stable(ref.records().rows())
    verdict = lambda r: (r["key"], r["judge"], r["refused"], r["harmful"])  # noqa: E731
    assert sorted(map(verdict, got.judgements().rows())) == sorted(map(verdict, ref.judgements().rows()))
    score = lambda r: (r["key"], r["defense"], r["score"])  # noqa: E731  (not its seconds)
    assert sorted(map(score, got.defenses().rows())) == sorted(map(score, ref.defenses().rows()))
    for r in ref.records().rows():
        a = load_file(str(reference / r["shard"]))["activations"][r["row"]]
        b = load_file(str(out / r["shard"]))["activations"][r["row"]]
        assert (a == b).all(), r["key"]
    for name in ("records.jsonl", "judgements.jsonl", "defenses.jsonl"):
        lines = (out / name).read_text().splitlines()
        keys = [(json.loads(x)["key"], json.loads(x).get("judge"), json.loads(x).get("defense")) for x in lines]
        assert len(keys) == len(set(keys)), name  # no duplicate line on disk either
    s_ref = json.loads((reference / "summary.json").read_text())
    s_got = json.loads((out / "summary.json").read_text())
    assert s_ref.keys() == s_got.keys()


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "srilab.cli", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.003)
    return False


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


#: Where a run is killed (srilab.study.crashpoints): before, half-way through and after journal appends, around
#: the trace shards' atomic rename, after the protocol, before the report (plots, HTML) and before the summary.
CRASH_POINTS = [
    "records.jsonl:before:1", "records.jsonl:torn:2", "records.jsonl:after:3", ".safetensors:before:1",
    ".safetensors:after:2", "protocol.json:after:1", "judgements.jsonl:torn:1", "judgements.jsonl:after:1",
    "defenses.jsonl:after:1", "report:before:1", "summary.json:before:1",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_at_each_point_then_resume_equals_the_reference(point, micro_pair, reference, tmp_path):
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "study.yaml", small_config(micro_pair, out, defenses=["output_keyword"]))
    proc = subprocess.run([sys.executable, "-m", "srilab.cli", "run", str(cfg), "--no-progress"],
                          env={**ENV, "SRILAB_CRASH_AT": point}, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])  # it crashed there
    assert (out / "config.json").exists()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    _same_as_reference(reference, out)


def test_ctrl_c_exits_130_with_the_resume_command_and_resumes(micro_pair, reference, tmp_path):
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "study.yaml", small_config(micro_pair, out, defenses=["output_keyword"]))
    proc = _spawn(["run", str(cfg), "--no-progress", "--no-report"])
    _wait_for(proc, lambda: _lines(out / "records.jsonl") >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    assert _lines(out / "records.jsonl") >= 2
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    _same_as_reference(reference, out)


def test_concurrent_resumes_never_duplicate(micro_pair, reference, tmp_path):
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "study.yaml", small_config(micro_pair, out, defenses=["output_keyword"]))
    first = _spawn(["run", str(cfg), "--no-progress", "--no-report"])
    _wait_for(first, lambda: _lines(out / "records.jsonl") >= 1)
    second = _spawn(["run", "--resume", str(out), "--no-progress", "--no-report"])
    _, err2 = second.communicate(timeout=180)
    first.communicate(timeout=180)
    assert first.returncode == 0
    if second.returncode != 0:  # the usual case: the first holds the lock
        assert second.returncode == 2 and "in use by another srilab run" in err2.decode(), err2.decode()[-2000:]
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    _same_as_reference(reference, out)


def test_resume_uses_the_thread_count_the_run_started_with(reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    recorded = RunDir(out).recorded_threads()
    assert recorded == int(json.loads((out / "versions.json").read_text())["torch_threads"]) >= 1
    sorted((out / "traces").rglob("*.safetensors"))[0].unlink()
    before = torch.get_num_threads()
    torch.set_num_threads(recorded + 1)
    try:
        said: list[str] = []
        run_study(out, resume=True, progress=False, echo=said.append)
        assert torch.get_num_threads() == recorded + 1  # the caller's count is given back
    finally:
        torch.set_num_threads(before)
    assert any(f"using {recorded} torch threads" in line for line in said), said
    _same_as_reference(reference, out)


def test_lock_is_exclusive_and_a_dead_holders_lock_is_taken_over(reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from srilab.study.store import RunDir; r = RunDir(sys.argv[1]); r.lock(); "
        "print('locked', flush=True); time.sleep(60)"), str(out)], env=ENV, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    with pytest.raises(SrilabError, match=f"in use by another srilab run \\(pid {holder.pid}"):
        run_study(out, resume=True, progress=False, echo=quiet)
    holder.kill()
    holder.wait()
    run_study(out, resume=True, report=False, progress=False, echo=quiet)  # the stale lock is taken over


def test_duplicate_lines_are_warned_and_counted_once(reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines + lines[:2]))
    jl = (out / "judgements.jsonl").read_text().splitlines(keepends=True)
    (out / "judgements.jsonl").write_text("".join(jl + jl[:1]))
    with pytest.warns(RuntimeWarning, match="duplicate"):
        rows = list(RunDir(out).records().rows())
    assert len(rows) == len(lines)
    with pytest.warns(RuntimeWarning, match="duplicate"):
        assert main(["report", str(out)]) == 0
    got, want = (json.loads((p / "summary.json").read_text()) for p in (out, reference))
    got.pop("run_dir"), want.pop("run_dir")
    assert got == want


def test_edited_config_is_refused_on_resume_and_report(reference, tmp_path, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["n_boot"] = 101
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    before = snapshot(out)
    capfd.readouterr()
    for argv in (["run", "--resume", str(out), "--no-progress"], ["report", str(out)]):
        assert main(argv) == 2
        err = capfd.readouterr().err
        assert "changed after the run started" in err and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before


def test_deleted_or_truncated_shard_is_reported_then_regenerated(reference, tmp_path, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    shards = sorted((out / "traces").rglob("*.safetensors"))
    shards[0].unlink()
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 3])
    records = (out / "records.jsonl").read_text()
    before = snapshot(out)
    capfd.readouterr()
    assert main(["report", str(out)]) == 2
    err = capfd.readouterr().err
    assert "2 trace shard(s) are missing or unreadable (1 missing" in err and "--resume" in err
    assert snapshot(out) == before  # report is read-only
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert (out / "records.jsonl").read_text() == records  # shards replaced, no record duplicated
    _same_as_reference(reference, out)


def test_report_on_a_torn_journal_is_read_only(reference, tmp_path, capfd):
    """A torn last record is refused by ``srilab report`` (finish the run first); ``--allow-incomplete`` reports
    on the complete rows, with a warning. Neither repairs the journal."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    with (out / "records.jsonl").open("a") as f:
        f.write('{"key": "m/ar/harm/direct/toy-harm')
    size = (out / "records.jsonl").stat().st_size
    with pytest.warns(RuntimeWarning, match="partial last line"):
        assert len(list(Journal(out / "records.jsonl", repair=False).rows())) == len(
            list(RunDir(reference).records().rows()))
    capfd.readouterr()
    assert main(["report", str(out)]) == 2
    err = capfd.readouterr().err
    assert "ends in a partial line" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    with pytest.warns(RuntimeWarning, match="partial last line"):
        assert main(["report", str(out), "--allow-incomplete"]) == 0
    assert (out / "records.jsonl").stat().st_size == size


def test_report_without_judgements_says_so(reference, tmp_path, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "judgements.jsonl").unlink()
    capfd.readouterr()
    assert main(["report", str(out)]) == 2
    err = capfd.readouterr().err
    assert "are not judged yet" in err and "--resume" in err


def test_a_failed_start_leaves_nothing_that_blocks_the_fixed_config(micro_pair, bad_world, tmp_path, capfd):
    """A model that fails only when its weights are read (no size fields in config.json) fails after the
    cheap checks; the run directory it created is removed, and the corrected config then runs."""
    out = tmp_path / "run"
    bad = small_config(micro_pair, out, models=_model(bad_world["nosize"]))
    capfd.readouterr()
    assert main(["run", str(write_yaml(tmp_path / "bad.yaml", bad)), "--no-progress"]) == 2
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    good = small_config(micro_pair, out)
    assert main(["run", str(write_yaml(tmp_path / "good.yaml", good)), "--no-progress", "--no-report"]) == 0
