"""Reliability, round 2: the inputs nobody tried in the first round, as a matrix.

Every bad input -- a number at the edge of float32 in a config, text that is not valid Unicode, nesting tens of
thousands deep, an unclosed CSV quote, a key written twice, an option an attack does not take, an empty list that
names nothing, AR weights under a diffusion sampler, a checkpoint missing tensors or naming more layers than its
weights hold, a run whose config digest or versions.json was removed or broken, a torn journal, a full disk, a
``None`` where the Python API wants text -- ends in one ``SrilabError`` line (exit 2 on the command line) with
nothing written, or is handled as the README's Reliability section says (the opt-in flags, the crash-point
count, the temporary files a resume removes). Most cases validate only; a handful run a tiny study."""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from srilab.cli import main
from srilab.errors import SrilabError
from srilab.study.store import Journal, RunDir

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}


def small_config(out: Path, **over) -> dict:
    """A tiny study on the shipped toy pair (nothing to train): 4 harmful and 4 benign items, 6 AR tokens."""
    cfg = {
        "name": "rel2", "output": str(out), "seed": 5, "batch_size": 2,
        "models": [{"name": "m", "path": "toy:ar", "samplers": [{"kind": "ar", "max_new_tokens": 6, "name": "ar"}]}],
        "datasets": [
            {"name": "harm", "source": "toy", "split": "harmful_direct", "limit": 4, "role": "harmful"},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 4, "role": "benign"},
        ],
        "attacks": ["direct"], "judges": ["refusal"], "sri": {"enabled": False}, "n_boot": 100,
        "analysis": {"dynamics_every": 0, "text_baseline": False},
    }
    cfg.update(over)
    return cfg


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in sorted(root.rglob("*"))}


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    return lines[0]


def quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ the bad world
def _save_weights(path: Path, tensors: dict) -> None:
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def world(tiny_pair, tmp_path_factory):
    """The files a user hands srilab in this round (built once): broken checkpoints and data files."""
    root = tmp_path_factory.mktemp("bad2")
    w = {"root": root, "tiny_ar": tiny_pair["ar"], "tiny_dlm": tiny_pair["diffusion"]}
    src = tiny_pair["ar"]
    weights = load_file(str(src / "model.safetensors"))
    cfg = json.loads((src / "config.json").read_text())

    def variant(name: str, tensors: dict | None = None, config: dict | None = None) -> Path:
        path = root / name
        shutil.copytree(src, path)
        if tensors is not None:
            _save_weights(path, tensors)
        if config is not None:
            (path / "config.json").write_text(json.dumps(config))
        return path

    gone = next(k for k in weights if "layers.0.mlp.up_proj" in k)
    w["missing"] = variant("missing", {k: v for k, v in weights.items() if k != gone})
    w["unexpected"] = variant("unexpected", {**weights, "model.extra_head.weight": torch.zeros(3, 3)})
    more = dict(cfg, num_hidden_layers=cfg["num_hidden_layers"] + 2, layer_types=cfg["layer_types"] * 2)
    w["more_layers"] = variant("more_layers", config=more)
    fewer = dict(cfg, num_hidden_layers=1, layer_types=cfg["layer_types"][:1])
    w["fewer_layers"] = variant("fewer_layers", config=fewer)
    w["causal_forced"] = variant("causal_forced")  # an AR checkpoint a config asks to sample by diffusion
    data = root / "data"
    data.mkdir()
    deep = "[" * 60_000 + "]" * 60_000
    files = {
        "unclosed.csv": 'prompt,id\nfirst request,1\n"second request,2\nthird request,3\n',
        "quote_text.csv": 'prompt,id\n"first" request,1\nsecond,2\n',
        "dup_header.csv": "prompt,prompt\na,b\n",
        "surrogate.jsonl": '{"prompt": "fine"}\n{"prompt": "broken \\ud83d text"}\n',
        "surrogate.json": '[{"prompt": "fine"}, {"prompt": "broken \\udfff"}]',
        "surrogate_key.jsonl": '{"prompt": "fine", "\\ud800": 1}\n',
        "deep.jsonl": '{"prompt": "fine", "meta": ' + deep + "}\n",
        "deep.json": '[{"prompt": "fine", "meta": ' + deep + "}]",
        "deep40.jsonl": '{"prompt": "fine", "meta": ' + "[" * 40 + "]" * 40 + "}\n",
        "dup_key.jsonl": '{"prompt": "a", "prompt": "b"}\n',
        "dup_key.json": '[{"prompt": "a", "id": 1, "id": 2}]',
        "good.txt": "first request\nsecond request\n",
    }
    for name, text in files.items():
        (data / name).write_text(text)
    (root / "deep.yaml").write_text("name: " + "[" * 60_000 + "]" * 60_000 + "\n")
    return w


def _cfg(w, **over):
    return small_config(w["root"] / "out-never", **over)


def _sampler(**s):
    return [{"name": "m", "path": "toy:ar", "samplers": [{"name": "s", "kind": "ar", "max_new_tokens": 4, **s}]}]


def _diffusion(**s):
    return [{"name": "d", "path": "toy:diffusion",
             "samplers": [{"name": "s", "kind": "diffusion", "steps": 4, "gen_length": 4, **s}]}]


def _model(path, samplers=None, **over):
    return [{"name": "m", "path": str(path),
             "samplers": samplers or [{"kind": "ar", "max_new_tokens": 4, "name": "ar"}], **over}]


def _ds(w, name, **d):
    return [{"name": "p", "source": "prompts", "role": "harmful", "path": str(w["root"] / "data" / name), **d},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 2, "role": "benign"}]


def _attack(**a):
    return [{"name": "direct", **a}] if "name" not in a else [a]


def _nested(depth: int) -> dict:
    out: dict = {}
    cur = out
    for _ in range(depth):
        cur["a"] = {}
        cur = cur["a"]
    return out


INF, NAN = float("inf"), float("nan")
DIFF = {"kind": "diffusion", "steps": 4, "gen_length": 4, "name": "diff"}

# (case id) -> (how to build the config from the world, expected text in the one-line message)
CONFIG_CASES = {
    # numbers at the edges of float32
    "temperature-inf": (lambda w: _cfg(w, models=_sampler(temperature=INF)), "temperature: is infinite"),
    "temperature-neg-inf": (lambda w: _cfg(w, models=_sampler(temperature=-INF)), "temperature: is -infinite"),
    "temperature-nan": (lambda w: _cfg(w, models=_sampler(temperature=NAN)), "temperature: is not a number"),
    "temperature-underflow": (lambda w: _cfg(w, models=_sampler(temperature=1e-320)), "underflows"),
    "temperature-float32-underflow": (lambda w: _cfg(w, models=_sampler(temperature=1e-40)), "underflows"),
    "temperature-tiny": (lambda w: _cfg(w, models=_sampler(temperature=1e-9)), "use 0 for greedy"),
    "temperature-overflow": (lambda w: _cfg(w, models=_sampler(temperature=1e39)), "overflows float32"),
    "temperature-huge": (lambda w: _cfg(w, models=_sampler(temperature=1e6)), "temperature"),
    "temperature-negative": (lambda w: _cfg(w, models=_sampler(temperature=-0.5)), "temperature"),
    "temperature-gumbel": (lambda w: _cfg(w, models=_diffusion(temperature=40.0)), "gumbel"),
    "top-p-nan": (lambda w: _cfg(w, models=_sampler(top_p=NAN)), "top_p: is not a number"),
    "top-p-underflow": (lambda w: _cfg(w, models=_sampler(top_p=5e-324)), "underflows"),
    "cfg-scale-huge": (lambda w: _cfg(w, models=_diffusion(cfg_scale=1e30)), "cfg_scale"),
    "cfg-scale-inf": (lambda w: _cfg(w, models=_diffusion(cfg_scale=INF)), "cfg_scale: is infinite"),
    "threshold-nan": (lambda w: _cfg(w, models=_diffusion(threshold=NAN)), "threshold"),
    "threshold-inf": (lambda w: _cfg(w, models=_diffusion(threshold=INF)), "threshold"),
    "alg-temp-inf": (lambda w: _cfg(w, models=_diffusion(schedule="dream", alg_temp=INF)), "alg_temp"),
    "eps-underflow": (lambda w: _cfg(w, models=_diffusion(schedule="dream", eps=1e-320)), "underflows"),
    "steps-2**63": (lambda w: _cfg(w, models=_diffusion(steps=2**63, gen_length=4)), "steps"),
    "sampler-seed-2**80": (lambda w: _cfg(w, models=_sampler(seed=2**80)), "seed"),
    "protocol-seed-2**80": (lambda w: _cfg(w, protocol={"seed": 2**80}), "seed"),
    "protocol-fpr-nan": (lambda w: _cfg(w, protocol={"fpr": NAN}), "protocol.fpr"),
    "protocol-share-overflow": (lambda w: _cfg(w, protocol={"centre": 1e308}), "overflows"),
    "protocol-share-underflow": (lambda w: _cfg(w, protocol={"guard_fit": 1e-310}), "underflows"),
    "sri-quantile-inf": (lambda w: _cfg(w, sri={"enabled": False, "quantile": INF}), "sri.quantile"),
    "injection-fraction-nan": (lambda w: _cfg(w, attacks=_attack(injection_fraction=NAN)), "injection_fraction"),
    "option-inf": (lambda w: _cfg(w, attacks=_attack(name="flip", options={"mode": INF})), "is infinite"),
    "n-boot-1e12": (lambda w: _cfg(w, n_boot=10**12), "n_boot"),
    # text that is not valid Unicode
    "name-surrogate": (lambda w: _cfg(w, name="study\ud800"), "surrogate"),
    "target-surrogate": (lambda w: _cfg(w, attacks=_attack(name="prefill", target="Sure \udfff")), "surrogate"),
    "markers-surrogate": (lambda w: _cfg(w, attacks=_attack(name="direct", step_markers=["\ud800"])), "surrogate"),
    "option-key-surrogate": (lambda w: _cfg(w, attacks=_attack(name="flip", options={"\ud800": 1})), "surrogate"),
    # nesting
    "option-nested-40": (lambda w: _cfg(w, attacks=_attack(name="direct", options=_nested(40))), "levels deep"),
    # empty lists that name nothing
    "roles-empty": (lambda w: _cfg(w, datasets=[_cfg(w)["datasets"][0], {**_cfg(w)["datasets"][1], "roles": []}]),
                    "empty list"),
    "dataset-attacks-empty": (lambda w: _cfg(w, datasets=[{**_cfg(w)["datasets"][0], "attacks": []},
                                                          _cfg(w)["datasets"][1]]), "empty list"),
    "attacks-empty": (lambda w: _cfg(w, attacks=[]), "attacks nothing"),
    "judges-empty": (lambda w: _cfg(w, judges=[]), "judges nothing"),
    "step-markers-empty": (lambda w: _cfg(w, attacks=_attack(name="direct", step_markers=[])), "step_markers"),
    "target-blank": (lambda w: _cfg(w, attacks=_attack(name="prefill", target="   ")), "empty target"),
    "roles-twice": (lambda w: _cfg(w, datasets=[_cfg(w)["datasets"][0], {**_cfg(w)["datasets"][1],
                                                                         "roles": ["centre", "centre"]}]), "twice"),
    "samplers-empty": (lambda w: _cfg(w, models=[{"name": "m", "path": "toy:ar", "samplers": []}]), "samplers"),
    # options an attack or a defense does not take
    "direct-option": (lambda w: _cfg(w, attacks=_attack(name="direct", options={"strength": 3})), "takes no options"),
    "prefill-option": (lambda w: _cfg(w, attacks=_attack(name="prefill", options={"target": "x"})), "prefill"),
    "flip-option": (lambda w: _cfg(w, attacks=_attack(name="flip", options={"mood": "x"})), "allowed are mode"),
    "nesting-option": (lambda w: _cfg(w, attacks=_attack(name="context_nesting", options={"scenery": "code"})),
                       "scenery"),
    "template-option": (lambda w: _cfg(w, attacks=_attack(name="template:aim", options={"x": 1})), "template:aim"),
    "defense-option": (lambda w: _cfg(w, defenses=[{"name": "output_keyword", "options": {"bogus": 1}}]), "bogus"),
    # mismatched parts
    "ar-weights-diffusion-sampler": (lambda w: _cfg(w, models=_model("toy:ar", [DIFF])), "autoregressive"),
    "toy-ar-kind-diffusion": (lambda w: _cfg(w, models=_model("toy:ar", [DIFF], kind="diffusion")), "causal"),
    "toy-diffusion-kind-ar": (lambda w: _cfg(w, models=_model("toy:diffusion", kind="ar")), "bidirectional"),
    "toy-diffusion-ar-sampler": (lambda w: _cfg(w, models=_model("toy:diffusion")), "AR sampler"),
    "tiny-ar-diffusion-sampler": (lambda w: _cfg(w, models=_model(w["tiny_ar"], [DIFF])), "autoregressive"),
    "checkpoint-kind-forced": (lambda w: _cfg(w, models=_model(w["causal_forced"], [DIFF], kind="diffusion")),
                               "causal"),
    "checkpoint-more-layers": (lambda w: _cfg(w, models=_model(w["more_layers"])), "names 4 decoder layers"),
    "checkpoint-missing-tensor": (lambda w: _cfg(w, models=_model(w["missing"])), "missing tensor"),
    "checkpoint-unexpected-tensor": (lambda w: _cfg(w, models=_model(w["unexpected"])), "unexpected tensor"),
    "checkpoint-fewer-layers": (lambda w: _cfg(w, models=_model(w["fewer_layers"])), "unexpected tensor"),
    # data files
    "csv-unclosed-quote": (lambda w: _cfg(w, datasets=_ds(w, "unclosed.csv")), "never closed"),
    "csv-quote-then-text": (lambda w: _cfg(w, datasets=_ds(w, "quote_text.csv")), "quote_text.csv:2"),
    "csv-duplicate-header": (lambda w: _cfg(w, datasets=_ds(w, "dup_header.csv")), "more than once"),
    "jsonl-surrogate": (lambda w: _cfg(w, datasets=_ds(w, "surrogate.jsonl")), "surrogate.jsonl:2"),
    "json-surrogate": (lambda w: _cfg(w, datasets=_ds(w, "surrogate.json")), "surrogate"),
    "jsonl-surrogate-key": (lambda w: _cfg(w, datasets=_ds(w, "surrogate_key.jsonl")), "surrogate"),
    "jsonl-deep": (lambda w: _cfg(w, datasets=_ds(w, "deep.jsonl")), "deep.jsonl:1"),
    "json-deep": (lambda w: _cfg(w, datasets=_ds(w, "deep.json")), "nested too deeply"),
    "jsonl-deep-40": (lambda w: _cfg(w, datasets=_ds(w, "deep40.jsonl")), "levels deep"),
    "jsonl-duplicate-key": (lambda w: _cfg(w, datasets=_ds(w, "dup_key.jsonl")), "written twice"),
    "json-duplicate-key": (lambda w: _cfg(w, datasets=_ds(w, "dup_key.json")), "written twice"),
    "prompt-column-number": (lambda w: _cfg(w, datasets=_ds(w, "good.txt", column=5)), "column"),
}

# YAML text that the mapping -> yaml.safe_dump route cannot write: (text, expected)
def _yaml(w, old: str = "", new: str = "") -> str:
    return yaml.safe_dump(_cfg(w), sort_keys=False).replace(old, new, 1) if old else yaml.safe_dump(_cfg(w))


RAW_YAML = {
    "yaml-duplicate-top-key": (lambda w: _yaml(w) + "seed: 7\n", "'seed' is written twice"),
    "yaml-duplicate-nested-key": (lambda w: _yaml(w, "max_new_tokens: 6", "max_new_tokens: 6\n    max_new_tokens: 7"),
                                  "'max_new_tokens' is written twice"),
    "yaml-nested-60000": (None, "levels deep"),
    "yaml-inf-literal": (lambda w: _yaml(w, "n_boot: 100", "n_boot: 100\nprotocol: {unseen_groups: .inf}"),
                         "is infinite"),
    "yaml-nan-literal": (lambda w: _yaml(w, "max_new_tokens: 6", "max_new_tokens: 6\n    temperature: .nan"),
                         "not a number"),
    "yaml-surrogate-escape": (lambda w: _yaml(w, "name: rel2", 'name: "x\\ud800"'), "surrogate"),
}


@pytest.mark.parametrize("case", [*CONFIG_CASES, *RAW_YAML])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(case, world, capfd):
    w = world
    path = w["root"] / f"{case}.yaml"
    if case in RAW_YAML:
        build, expect = RAW_YAML[case]
        path = w["root"] / "deep.yaml" if build is None else path
        if build is not None:
            path.write_text(build(w))
    else:
        build, expect = CONFIG_CASES[case]
        path.write_text(yaml.safe_dump(build(w), sort_keys=False, allow_unicode=False))
    capfd.readouterr()
    before = snapshot(w["root"])
    code = main(["run", str(path), "--no-progress"])
    err = capfd.readouterr().err
    line = one_line(err)
    assert code == 2, (case, err[-2000:])
    assert expect.lower() in line.lower(), (case, line)
    assert snapshot(w["root"]) == before, case  # nothing written, no run directory left to block the fix
    assert not (w["root"] / "out-never").exists()


# ------------------------------------------------------------------------------------------------ finished runs
def _finished_config(tiny_ar: Path, out: Path) -> dict:
    """The tiny random AR model on the toy sets, judged by two keyword judges: the fastest real study."""
    return small_config(out, models=_model(tiny_ar), judges=["refusal", "xstest_strings"])


@pytest.fixture(scope="module")
def finished(tiny_pair, tmp_path_factory):
    """A finished tiny study judged by two judges."""
    from srilab.study.runner import run_study

    root = tmp_path_factory.mktemp("rel2ref")
    cfg = root / "study.yaml"
    cfg.write_text(yaml.safe_dump(_finished_config(tiny_pair["ar"], root / "run")))
    run_study(cfg, progress=False, echo=quiet)  # the cases below test report themselves
    return root / "run"


def _drop_digest(run: Path) -> None:
    (run / "config.sha256").unlink()


def _edit_config_and_drop_digest(run: Path) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg["n_boot"] = 101
    (run / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (run / "config.sha256").unlink()


def _versions(text: bytes):
    return lambda run: (run / "versions.json").write_bytes(text)


def _tear_records(run: Path) -> None:
    with (run / "records.jsonl").open("a") as f:
        f.write('{"key": "m/ar/harm/direct/toy-harm')


def _tear_judgements(run: Path) -> None:
    with (run / "judgements.jsonl").open("a") as f:
        f.write('{"key": "m/ar/harm/dire')


def _drop_second_verdict(run: Path) -> None:
    lines = (run / "judgements.jsonl").read_text().splitlines(keepends=True)
    drop = next(i for i, ln in enumerate(lines) if json.loads(ln)["judge"] == "xstest_strings")
    (run / "judgements.jsonl").write_text("".join(lines[:drop] + lines[drop + 1:]))


def _deep_config(run: Path) -> None:
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)


# (case id) -> (how to damage a copy of the finished run, commands to try, expected text)
RUN_CASES = {
    "report-no-digest": (_drop_digest, ["report"], "config.sha256 is missing"),
    "resume-no-digest": (_drop_digest, ["resume"], "sha256sum config.json"),
    "resume-edited-no-digest": (_edit_config_and_drop_digest, ["resume", "report"], "config.sha256 is missing"),
    "versions-not-json": (_versions(b"{not json"), ["report", "resume"], "versions.json is corrupt"),
    "versions-binary": (_versions(b"\xff\xfe\x00\x81" * 10), ["report", "resume"], "versions.json is corrupt"),
    "versions-a-list": (_versions(b"[1, 2]"), ["report", "resume"], "not a JSON object"),
    "versions-bad-threads": (_versions(b'{"torch_threads": "many"}'), ["report", "resume"], "torch_threads"),
    "versions-zero-threads": (_versions(b'{"torch_threads": 0}'), ["report", "resume"], "torch_threads"),
    "versions-empty": (_versions(b""), ["report", "resume"], "versions.json is corrupt"),
    "report-torn-records": (_tear_records, ["report"], "partial line"),
    "report-torn-judgements": (_tear_judgements, ["report"], "partial line"),
    "report-missing-verdict": (_drop_second_verdict, ["report"], "verdict(s) are missing"),
    "config-deep": (_deep_config, ["report", "resume"], "nested too deeply"),
}


@pytest.mark.parametrize("case", RUN_CASES)
def test_damaged_run_is_one_line_and_read_only(case, finished, tmp_path, capfd):
    damage, commands, expect = RUN_CASES[case]
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    damage(out)
    before = snapshot(out)
    for command in commands:
        argv = ["report", str(out)] if command == "report" else ["run", "--resume", str(out), "--no-progress"]
        capfd.readouterr()
        code = main(argv)
        line = one_line(capfd.readouterr().err)
        assert code == 2 and expect.lower() in line.lower(), (case, command, line)
        assert snapshot(out) == before, (case, command)  # refused before anything was touched


def test_report_allow_incomplete_reports_on_the_complete_rows_only(finished, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    _drop_second_verdict(out)
    _tear_records(out)
    size = (out / "records.jsonl").stat().st_size
    capfd.readouterr()
    with pytest.warns(RuntimeWarning, match="partial last line"):
        assert main(["report", str(out), "--allow-incomplete"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judged"] == summary["records"] - 1  # the one missing a verdict is left out, and said so
    assert any("not judged yet" in w for w in summary["warnings"])
    assert (out / "records.jsonl").stat().st_size == size  # report never repairs the journal


def test_a_digest_written_again_with_sha256sum_is_accepted(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    _drop_digest(out)
    digest = subprocess.run(["sha256sum", "config.json"], cwd=out, capture_output=True, text=True, check=True)
    (out / "config.sha256").write_text(digest.stdout)  # what the error message tells the user to do
    assert RunDir(out).read_config()["name"] == "rel2"


def test_resume_removes_the_temporary_files_a_kill_left(finished, tmp_path):
    from srilab.study.runner import run_study

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    shard = sorted((out / "traces").rglob("*.safetensors"))[0]
    left = [out / ".summary.json.k2j4h1.tmp", shard.parent / f".{shard.name}.x8f3.tmp"]
    for p in left:
        p.write_bytes(b"half")
    said: list[str] = []
    run_study(out, resume=True, progress=False, echo=said.append)
    assert not any(p.exists() for p in left)
    assert not list(out.rglob("*.tmp"))
    assert sum("temporary file" in s for s in said) == 2, said


def test_sigkill_between_fsync_and_rename_then_resume_leaves_no_tmp(tiny_pair, finished, tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(_finished_config(tiny_pair["ar"], out)))
    proc = subprocess.run([sys.executable, "-m", "srilab.cli", "run", str(cfg), "--no-progress", "--no-report"],
                          env={**ENV, "SRILAB_CRASH_AT": ".safetensors:before:2"}, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert list(out.rglob(".*.tmp"))  # the kill left the shard's temporary file
    assert main(["run", "--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert not list(out.rglob("*.tmp"))
    key = lambda r: (r["key"], r["response"])  # noqa: E731
    assert sorted(map(key, RunDir(out).records().rows())) == sorted(map(key, RunDir(finished).records().rows()))


# ------------------------------------------------------------------------------------------------ crash points
def test_crash_point_count_tears_only_the_nth_write(tmp_path, monkeypatch):
    """``<file>:torn:n``: the n-th append is torn and killed; every earlier one is whole (as a real kill makes)."""
    import srilab.study.crashpoints as cp

    class Killed(Exception):
        pass

    def kill(pid, sig):
        raise Killed

    monkeypatch.setenv(cp.ENV, "j.jsonl:torn:3")
    monkeypatch.setattr(cp.os, "kill", kill)
    monkeypatch.setattr(cp, "_passed", type(cp._passed)())
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([{"key": "a"}])
    journal.append([{"key": "b"}])
    assert (tmp_path / "j.jsonl").read_text() == '{"key": "a"}\n{"key": "b"}\n'
    with pytest.raises(Killed):
        journal.append([{"key": "c", "text": "a longer row, torn half way"}])
    text = (tmp_path / "j.jsonl").read_text()
    assert text.startswith('{"key": "a"}\n{"key": "b"}\n{"key": "c"') and not text.endswith("\n")


# ------------------------------------------------------------------------------------------------ full disk
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_names_the_file_and_loses_nothing(tmp_path, monkeypatch):
    import srilab.study.journal as store

    journal = Journal(tmp_path / "records.jsonl")
    journal.append([{"key": "a"}])
    with monkeypatch.context() as m:
        m.setattr(store.os, "write", _enospc)
        with pytest.raises(SrilabError, match=r"no space left .*records\.jsonl") as info:
            journal.append([{"key": "b"}])
    assert "\n" not in str(info.value) and "Errno" not in str(info.value)
    assert (tmp_path / "records.jsonl").read_text() == '{"key": "a"}\n'  # nothing torn, nothing lost
    assert journal.append([{"key": "b"}]) == 1  # and the row is written once the disk has room
    (tmp_path / "summary.json").write_text("old\n")
    with monkeypatch.context() as m:
        m.setattr(store.os, "fsync", _enospc)
        with pytest.raises(SrilabError, match=r"no space left .*summary\.json"):
            store.atomic_write_text(tmp_path / "summary.json", "new\n")
    assert (tmp_path / "summary.json").read_text() == "old\n" and not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------------------------ checkpoints
INFO_CASES = {
    "info-missing-tensor": (lambda w: ["info", str(w["missing"])], "missing tensor"),
    "info-unexpected-tensor": (lambda w: ["info", str(w["unexpected"])], "unexpected tensor"),
    "info-more-layers": (lambda w: ["info", str(w["more_layers"])], "--allow-partial-checkpoint"),
    "info-fewer-layers": (lambda w: ["info", str(w["fewer_layers"])], "unexpected tensor"),
    "info-ar-as-diffusion": (lambda w: ["info", str(w["tiny_ar"]), "--kind", "diffusion"], "causal"),
    "info-diffusion-as-ar": (lambda w: ["info", str(w["tiny_dlm"]), "--kind", "ar"], "bidirectional"),
    "info-kind-bogus": (lambda w: ["info", str(w["tiny_ar"]), "--kind", "mixed"], "kind"),
    "report-allow-incomplete-no-run": (lambda w: ["report", str(w["root"]), "--allow-incomplete"], "not a srilab run"),
}


@pytest.mark.parametrize("case", INFO_CASES)
def test_bad_command_is_one_line_exit_2(case, world, capfd):
    build, expect = INFO_CASES[case]
    capfd.readouterr()
    before = snapshot(world["root"])
    code = main(build(world))
    out, err = capfd.readouterr()
    line = one_line(err)
    assert code == 2 and expect.lower() in line.lower(), (case, line)
    assert "LOAD REPORT" not in out + err  # transformers' own multi-line report is not shown
    assert snapshot(world["root"]) == before


def test_partial_checkpoint_loads_only_when_asked(world, capfd):
    from srilab.models import load

    for name in ("missing", "more_layers", "unexpected"):
        with pytest.warns(RuntimeWarning, match="not a complete checkpoint"):
            lm = load(world[name], allow_partial=True)
        assert lm.kind == "ar"
    capfd.readouterr()
    with pytest.warns(RuntimeWarning, match="allow_partial"):
        assert main(["info", str(world["missing"]), "--allow-partial-checkpoint"]) == 0
    assert "kind" in capfd.readouterr().out
    lm = load(world["tiny_ar"])  # a complete checkpoint: no warning, no error
    assert lm.kind == "ar"


def test_a_partial_checkpoint_study_runs_only_when_asked_and_a_failed_start_blocks_nothing(world, tmp_path, capfd):
    out = tmp_path / "run"
    bad = small_config(out, models=_model(world["missing"]))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    capfd.readouterr()
    assert main(["run", str(tmp_path / "bad.yaml"), "--no-progress"]) == 2  # fails when the weights are read
    assert "missing tensor" in one_line(capfd.readouterr().err)
    assert not out.exists()  # the directory that start created is gone
    ok = small_config(out, models=_model(world["missing"], allow_partial_checkpoint=True))
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(ok))
    with pytest.warns(RuntimeWarning, match="allow_partial"):
        assert main(["run", str(tmp_path / "ok.yaml"), "--no-progress", "--no-report"]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["models"][0]["allow_partial_checkpoint"] is True


def test_native_checkpoint_missing_tensor_is_refused_unless_allowed(golden_dir, tmp_path):
    from srilab.models import load

    src = next((p for p in sorted(golden_dir.rglob("config.json"))
                if json.loads(p.read_text()).get("model_type", "").lower() == "llada"), None)
    if src is None:
        pytest.skip("no LLaDA checkpoint among the golden vectors")
    ckpt = tmp_path / "llada"
    shutil.copytree(src.parent, ckpt)
    weights = load_file(str(ckpt / "model.safetensors"))
    gone = sorted(k for k in weights if "blocks.0." in k)[0]
    _save_weights(ckpt, {k: v for k, v in weights.items() if k != gone})
    with pytest.raises(SrilabError, match="allow-partial-checkpoint"):
        load(ckpt)
    with pytest.warns(RuntimeWarning, match="allow_partial"):
        assert load(ckpt, allow_partial=True).kind == "diffusion"


# ------------------------------------------------------------------------------------------------ Python API
@pytest.fixture(scope="module")
def api(world):
    from srilab.models import load

    return {"ar": load(world["tiny_ar"]), "dlm": load(world["tiny_dlm"]), "world": world}


def _gen(**over):
    def call(a):
        from srilab.sampling import ARSamplerConfig, generate

        kw = {"model": a["ar"], "prompts": ["how do i"], "sampler": ARSamplerConfig(max_new_tokens=2), **over}
        return generate(kw.pop("model"), kw.pop("prompts"), kw.pop("sampler"), **kw)

    return call


def _call(path: str, *args, **kw):
    def call(a):
        import importlib

        mod, _, name = path.rpartition(".")
        fn = getattr(importlib.import_module(mod), name)
        return fn(*[x(a) if callable(x) and getattr(x, "world_arg", False) else x for x in args], **kw)

    return call


def _w(key: str):
    def get(a):
        return a["world"][key] if key in a["world"] else a["world"]["root"] / "data" / key

    get.world_arg = True
    return get


def _refusal(*args, **kw):
    def call(a):
        from srilab.judges import RefusalJudge

        return RefusalJudge(**kw)(*args) if args else RefusalJudge(**kw)

    return call


def _attack_call(name, request, context=None, **ctx):
    def call(a):
        from srilab.attacks import AttackContext, apply_attack

        c = AttackContext(**ctx) if ctx else context
        return apply_attack(name, request, c)

    return call


API_CASES = {
    # generate
    "generate-model-none": (_gen(model=None), "LanguageModel"),
    "generate-prompts-none": (_gen(prompts=None), "prompts"),
    "generate-prompts-str": (_gen(prompts="how do i"), "single str"),
    "generate-prompts-int": (_gen(prompts=[5]), "prompts[0]"),
    "generate-prompt-surrogate": (_gen(prompts=["how \ud800 do"]), "surrogate"),
    "generate-sampler-none": (_gen(sampler=None), "sampler"),
    "generate-sampler-dict": (_gen(sampler={"kind": "ar"}), "sampler"),
    "generate-prefills-str": (_gen(prefills="Sure"), "single str"),
    "generate-prefills-int": (_gen(prefills=[3]), "prefills[0]"),
    "generate-seeds-str": (_gen(seeds="1"), "seeds"),
    "generate-seeds-float": (_gen(seeds=[1.5]), "seed"),
    "generate-batch-size-str": (_gen(batch_size="2"), "batch_size"),
    "generate-batch-size-0": (_gen(batch_size=0), "batch_size"),
    "generate-trace-str": (_gen(trace="yes"), "TraceConfig"),
    "generate-chat-str": (_gen(chat="no"), "chat"),
    "generate-canvas-str": (_gen(canvas="x"), "canvas"),
    "generate-prompt-masks": (_gen(prompt_masks="all"), "prompt_masks"),
    "generate-monitor-str": (_gen(monitor="guard"), "monitor"),
    "generate-ar-diffusion-sampler": (lambda a: _gen(sampler=__import__("srilab.sampling", fromlist=["x"])
                                                     .DiffusionSamplerConfig(steps=2, gen_length=2))(a),
                                      "autoregressive"),
    # sampler configs: one SrilabError, not pydantic's ValidationError
    "ar-config-temperature-inf": (_call("srilab.sampling.ARSamplerConfig", temperature=INF), "infinite"),
    "ar-config-temperature-str": (_call("srilab.sampling.ARSamplerConfig", temperature="hot"), "temperature"),
    "ar-config-temperature-underflow": (_call("srilab.sampling.ARSamplerConfig", temperature=1e-320), "underflows"),
    "ar-config-max-new-tokens-0": (_call("srilab.sampling.ARSamplerConfig", max_new_tokens=0), "max_new_tokens"),
    "ar-config-unknown-key": (_call("srilab.sampling.ARSamplerConfig", steps=3), "unknown key"),
    "ar-config-seed-none": (_call("srilab.sampling.ARSamplerConfig", seed=None), "seed"),
    "diffusion-config-steps-0": (_call("srilab.sampling.DiffusionSamplerConfig", steps=0), "steps"),
    "diffusion-config-cfg-nan": (_call("srilab.sampling.DiffusionSamplerConfig", cfg_scale=NAN), "cfg_scale"),
    "diffusion-config-gumbel": (_call("srilab.sampling.DiffusionSamplerConfig", temperature=50.0), "gumbel"),
    "diffusion-config-validate": (lambda a: __import__("srilab.sampling", fromlist=["x"]).DiffusionSamplerConfig
                                  .model_validate({"gen_length": -1}), "gen_length"),
    "sampler-config-nan": (_call("srilab.sampling.SamplerConfig", "ar", top_p=NAN), "top_p"),
    # judges
    "refusal-judge-none-none": (_refusal(None, None), "list of requests"),
    "refusal-judge-none-responses": (_refusal(["a"], None), "list of responses"),
    "refusal-judge-int-responses": (_refusal(["a"], [5]), "judges text"),
    "refusal-judge-str-setting": (_refusal(opening_sentences="2"), "opening_sentences"),
    "refusal-judge-patterns-str": (_refusal(extra_patterns=5), "extra_patterns"),
    "refusal-is-refusal-none": (lambda a: __import__("srilab.judges", fromlist=["x"]).RefusalJudge().is_refusal(None),
                                "str"),
    "make-judge-none": (_call("srilab.judges.make_judge", None), "judge spec"),
    "make-judge-unknown": (_call("srilab.judges.make_judge", "gpt5"), "gpt5"),
    # data
    "load-prompts-column-int": (_call("srilab.data.load_prompts", _w("good.txt"), column=5), "column"),
    "load-prompts-path-none": (_call("srilab.data.load_prompts", None), "path"),
    "load-prompts-path-int": (_call("srilab.data.load_prompts", 7), "path"),
    "load-prompts-limit-str": (_call("srilab.data.load_prompts", _w("good.txt"), limit="3"), "limit"),
    "load-prompts-on-error": (_call("srilab.data.load_prompts", _w("good.txt"), on_error=None), "on_error"),
    "load-prompts-surrogate": (_call("srilab.data.load_prompts", _w("surrogate.jsonl")), "surrogate"),
    "load-prompts-unclosed": (_call("srilab.data.load_prompts", _w("unclosed.csv")), "never closed"),
    "load-prompts-deep": (_call("srilab.data.load_prompts", _w("deep.jsonl")), "nested"),
    "load-dataset-name-none": (_call("srilab.data.load_dataset", None, _w("good.txt")), "dataset name"),
    "load-dataset-path-int": (_call("srilab.data.load_dataset", "advbench", 5), "path"),
    "load-dataset-split-int": (_call("srilab.data.load_dataset", "harmbench", _w("good.txt"), split=5), "split"),
    # attacks
    "apply-prefill-none": (_attack_call("prefill", None), "request"),
    "apply-direct-int": (_attack_call("direct", 5), "request"),
    "apply-direct-empty": (_attack_call("direct", "  "), "empty"),
    "apply-direct-surrogate": (_attack_call("direct", "x\ud800"), "surrogate"),
    "apply-name-none": (_attack_call(None, "how do i"), "attack name"),
    "apply-context-str": (_attack_call("direct", "how do i", "ctx"), "AttackContext"),
    "apply-unknown-option": (_attack_call("flip", "how do i", options={"mood": 1}), "allowed are mode"),
    "apply-direct-option": (_attack_call("direct", "how do i", options={"x": 1}), "takes no options"),
    "context-target-none": (_attack_call("prefill", "how do i", target=None), "target"),
    "context-steps-str": (_attack_call("canvas_injection", "how do i", steps="3"), "steps"),
    "context-fraction-nan": (_attack_call("canvas_injection", "how do i", injection_fraction=NAN),
                             "injection_fraction"),
    "context-markers-str": (_attack_call("response_template", "how do i", step_markers="Step 1:"), "step_markers"),
    # models
    "load-none": (_call("srilab.models.load", None), "model path"),
    "load-empty": (_call("srilab.models.load", ""), "empty"),
    "load-kind-bogus": (_call("srilab.models.load", _w("tiny_ar"), kind="mixed"), "kind"),
    "load-device-none": (_call("srilab.models.load", _w("tiny_ar"), device=None), "device"),
    "load-allow-partial-str": (_call("srilab.models.load", _w("tiny_ar"), allow_partial="yes"), "allow_partial"),
    "load-missing-tensor": (_call("srilab.models.load", _w("missing")), "missing tensor"),
    "load-more-layers": (_call("srilab.models.load", _w("more_layers")), "missing tensor"),
    "load-unexpected": (_call("srilab.models.load", _w("unexpected")), "unexpected tensor"),
    "load-ar-as-diffusion": (_call("srilab.models.load", _w("tiny_ar"), kind="diffusion"), "causal"),
    # the rest of the public API a user calls directly
    "canvas-text-none": (_call("srilab.sampling.CanvasText", None), "CanvasText text"),
    "canvas-text-step-negative": (_call("srilab.sampling.CanvasText", "Sure", step=-1), "step"),
    "flip-text-none": (_call("srilab.attacks.flip_text", None), "flip"),
    "split-mask-spans-int": (_call("srilab.attacks.split_mask_spans", 5), "mask"),
    "load-templates-none": (_call("srilab.attacks.load_templates", None), "template"),
    "llama-guard-output-none": (_call("srilab.judges.parse_llama_guard_output", None), "Llama Guard"),
    "cohen-kappa-none": (_call("srilab.judges.cohen_kappa", None, [True]), "labels"),
    "stats-rate-none": (_call("srilab.stats.rate", None), "flags"),
    "stats-auroc-none": (_call("srilab.stats.auroc_with_ci", None, [0.5]), "scores_pos"),
    "stats-mcnemar-float": (_call("srilab.stats.mcnemar_exact_p", 1.5, 2), "discordant"),
    "sri-signal-none": (_call("srilab.sri.signal", None, (None, None)), "activations"),
    "sri-signal-centres-none": (_call("srilab.sri.signal", [[[1.0]]], None), "centres"),
    "sri-data-hash-str": (_call("srilab.sri.data_hash", "how do i"), "list of prompts"),
    "defense-smoothllm-none": (_call("srilab.defenses.SmoothLLM", None, None), "LanguageModel"),
    "defense-perplexity-none": (_call("srilab.defenses.PerplexityFilter", None), "LanguageModel"),
    "defense-smoothllm-no-sampler": (lambda a: __import__("srilab.defenses", fromlist=["x"]).SmoothLLM(a["ar"], None),
                                     "sampler config"),
    # study
    "parse-config-none": (_call("srilab.study.config.parse_config", None), "mapping"),
    "load-config-none": (_call("srilab.study.config.load_config", None), "study config"),
    "load-config-int": (_call("srilab.study.config.load_config", 5), "study config"),
    "run-study-none": (_call("srilab.study.runner.run_study", None), "study config"),
    "run-dir-none": (_call("srilab.study.store.RunDir", None), "run directory"),
}


@pytest.mark.parametrize("case", API_CASES)
def test_python_api_bad_argument_is_one_srilab_error(case, api):
    build, expect = API_CASES[case]
    with pytest.raises(SrilabError) as info:
        build(api)
    message = str(info.value)
    assert "\n" not in message and expect.lower() in message.lower(), (case, message)


def test_good_values_at_the_edges_still_pass(world):
    """The checks refuse what breaks, not what is unusual: 0 and -0.0, float32's smallest normal number, a
    temperature of 100 under Dream's schedule, and a config that reads back as itself."""
    from srilab.sampling import ARSamplerConfig, DiffusionSamplerConfig
    from srilab.study.config import parse_config

    assert ARSamplerConfig(temperature=0.0).temperature == 0 and ARSamplerConfig(temperature=-0.0).temperature == 0
    assert ARSamplerConfig(temperature=0.001, top_p=1.2e-38).top_p == 1.2e-38
    assert DiffusionSamplerConfig(schedule="dream", temperature=100.0).temperature == 100
    assert DiffusionSamplerConfig(temperature=19.0).temperature == 19
    data = _cfg(world, models=_sampler(temperature=0.7, top_p=0.9), attacks=[{"name": "flip",
                                                                            "options": {"mode": "chars"}}])
    cfg = parse_config(copy.deepcopy(data))
    assert parse_config(cfg.canonical()).canonical() == cfg.canonical()
