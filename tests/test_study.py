"""The study runner: config validation, the append-only run directory, SIGKILL-safe resume, the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from srilab.cli import main
from srilab.errors import SrilabError
from srilab.pipeline.run import run_study
from srilab.study.config import load_config, parse_config
from srilab.study.runner import cells
from srilab.study.store import Journal, RunDir


def micro_config(pair: Path, out: Path, **over) -> dict:
    cfg = {
        "name": "micro",
        "output": str(out),
        "seed": 3,
        "batch_size": 2,
        "toy_pair": str(pair),
        "models": [
            {"name": "m-ar", "path": "toy:ar", "samplers": [{"kind": "ar", "max_new_tokens": 10, "name": "ar"}]},
            {"name": "m-dlm", "path": "toy:diffusion", "samplers": [
                {"kind": "diffusion", "steps": 10, "gen_length": 10, "block_length": 5, "name": "diff"},
                {"kind": "diffusion", "steps": 10, "gen_length": 10, "block_length": 1, "name": "l2r"},
            ]},
        ],
        "datasets": [
            {"name": "harm", "source": "toy", "split": "harmful_direct", "limit": 6, "role": "harmful"},
            {"name": "fit", "source": "toy", "split": "benign_train", "limit": 12, "role": "benign",
             "roles": ["centre", "guard_fit", "calibration"]},
            {"name": "ben", "source": "toy", "split": "benign_direct", "limit": 6, "role": "benign",
             "roles": ["eval_seen_topics"]},
        ],
        "attacks": ["direct", "prefill", "response_template"],
        "judges": ["refusal", "oracle"],
        "n_boot": 200,
    }
    cfg.update(over)
    return cfg


def _dicts(value, path="summary"):
    """Every nested dict of ``value`` with its path."""
    if isinstance(value, dict):
        yield path, value
        for k, v in value.items():
            yield from _dicts(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _dicts(v, f"{path}[{i}]")


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def quiet(_: str) -> None:
    pass


def stable(rows):
    """Records without their timing (the only field allowed to differ between runs)."""
    return sorted(({k: v for k, v in r.items() if k != "timing"} for r in rows), key=lambda r: r["key"])


# ------------------------------------------------------------------------------------------------ config
def test_config_errors_name_the_field(tmp_path, micro_pair):
    base = micro_config(micro_pair, tmp_path / "run")
    bad = json.loads(json.dumps(base))
    bad["models"][1]["samplers"][0]["steps"] = "many"
    with pytest.raises(SrilabError, match=r"models\.1\.samplers\.0\.steps"):
        parse_config(bad)
    bad = json.loads(json.dumps(base))
    bad["datasets"][0]["limt"] = 3
    with pytest.raises(SrilabError, match=r"datasets\.0\.limt: unknown key"):
        parse_config(bad)
    bad = json.loads(json.dumps(base))
    bad["sri"] = {"harmful": "fit"}
    with pytest.raises(SrilabError, match="sri.harmful 'fit' is not a harmful dataset"):
        parse_config(bad)
    bad = json.loads(json.dumps(base))
    bad["datasets"][1]["roles"] = ["centre", "eval_unseen_topics"]  # unseen topics are never chosen by hand
    with pytest.raises(SrilabError, match=r"datasets\.1\.roles\.1"):
        parse_config(bad)
    bad = json.loads(json.dumps(base))
    bad["models"][0]["name"] = "a/b"
    with pytest.raises(SrilabError, match=r"models\.0\.name"):
        parse_config(bad)
    bad = json.loads(json.dumps(base))
    bad["judges"] = ["oracle"]
    with pytest.raises(SrilabError, match="a judge that decides refusal is required"):
        parse_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nmodels: [\n  - a: b\n")
    with pytest.raises(SrilabError, match=r"broken\.yaml:\d+: not valid YAML"):
        load_config(broken)
    with pytest.raises(SrilabError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_matrix_skips_diffusion_only_attacks_on_ar(tmp_path, micro_pair):
    cfg = parse_config(micro_config(micro_pair, tmp_path / "run"))
    matrix, skipped = cells(cfg)
    ids = {c.id for c in matrix}
    assert "m-ar.ar.harm.response_template" not in ids and "m-dlm.diff.harm.response_template" in ids
    assert "m-ar.ar.fit.direct" in ids and "m-ar.ar.fit.prefill" not in ids  # benign sets are asked directly
    assert any("response_template" in s for s in skipped)
    # 3 arms x (harm: direct+prefill [+response_template]) + 3 arms x 2 benign sets
    assert len(matrix) == 2 + 3 + 3 + 3 * 2


def test_unknown_attack_or_judge_fails_before_any_model_loads(tmp_path, micro_pair):
    cfg = micro_config(micro_pair, tmp_path / "run", attacks=["direct", "nope"])
    with pytest.raises(SrilabError, match="unknown attack 'nope'"):
        run_study(write_yaml(tmp_path / "a.yaml", cfg), progress=False, echo=quiet)
    assert not (tmp_path / "run").exists()


def test_judges_are_read_by_what_they_decide_not_by_name(micro_pair, tmp_path):
    ar_only = [micro_config(micro_pair, tmp_path)["models"][0]]
    small = {"attacks": ["direct"], "models": ar_only, "sri": {"enabled": False}}
    # A labelled refusal judge (once a KeyError: 'refusal'), and asr_judge naming a refusal judge (once a
    # KeyError: 'harmful'): both run, and say which judge decided what.
    labelled = micro_config(micro_pair, tmp_path / "a", judges=[{"name": "refusal", "label": "kw"}, "oracle"], **small)
    run_study(write_yaml(tmp_path / "a.yaml", labelled), progress=False, echo=quiet)
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert a["judges"] == {"refusal": "kw", "attack_success": "oracle"} and a["asr_basis"] == "judge oracle"
    by_refusal = micro_config(micro_pair, tmp_path / "b", judges=["refusal", "oracle"], asr_judge="refusal", **small)
    run_study(write_yaml(tmp_path / "b.yaml", by_refusal), progress=False, echo=quiet)
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert b["asr_basis"].startswith("not refused by judge refusal")
    cell_a, cell_b = a["arms"]["m-ar/ar"]["cells"]["harm/direct"], b["arms"]["m-ar/ar"]["cells"]["harm/direct"]
    assert cell_a["refusal"] == cell_b["refusal"]  # the same keyword verdicts under either name
    assert cell_b["asr"]["rate"] == pytest.approx(1 - cell_b["refusal"]["rate"])
    verdicts = list(RunDir(tmp_path / "a").judgements().rows())
    assert {v["judge"] for v in verdicts} == {"kw", "oracle"}
    assert all(set(v) >= {"refused", "harmful", "score", "label"} for v in verdicts)  # one verdict type
    bad = micro_config(micro_pair, tmp_path / "c", judges=["refusal", "oracle"], refusal_judge="oracle")
    with pytest.raises(SrilabError, match="refusal_judge 'oracle' does not decide refusal"):
        parse_config(bad)
    with pytest.raises(SrilabError, match=r"judges\.1\.name: unknown judge 'gpt4'"):
        parse_config(micro_config(micro_pair, tmp_path / "c", judges=["refusal", "gpt4"]))


# ------------------------------------------------------------------------------------------------ store
def test_journal_repairs_a_partial_last_line_and_rejects_corruption(tmp_path):
    j = Journal(tmp_path / "r.jsonl")
    assert j.append([{"key": "a", "v": 1}, {"key": "b", "v": 2}]) == 2
    assert j.append([{"key": "a", "v": 9}]) == 0  # never a duplicate
    with (tmp_path / "r.jsonl").open("a") as f:
        f.write('{"key": "c", "v"')  # a kill in the middle of a write
    with pytest.warns(RuntimeWarning, match="partial last line"):
        j2 = Journal(tmp_path / "r.jsonl")
    assert [r["key"] for r in j2.rows()] == ["a", "b"]
    assert j2.append([{"key": "c", "v": 3}]) == 1
    assert [r["v"] for r in Journal(tmp_path / "r.jsonl").rows()] == [1, 2, 3]
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    lines[1] = "not json"
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SrilabError, match=r"r\.jsonl:2: not valid JSON"):
        list(Journal(tmp_path / "r.jsonl").rows())


# ------------------------------------------------------------------------------------------------ run + resume
@pytest.fixture(scope="module")
def reference_run(micro_pair, tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    cfg = write_yaml(root / "study.yaml", micro_config(micro_pair, root / "run"))
    run_study(cfg, progress=False, echo=quiet)
    return root / "run"


def test_run_writes_records_traces_and_judgements(reference_run):
    run = RunDir(reference_run)
    records = list(run.records().rows())
    # 6 harmful, 2 of them the harmful centre (asked directly only): direct 6 x 3 arms, prefill 4 x 3,
    # response_template 4 x 2 diffusion arms; benign 3 arms x (12 + 6)
    assert len(records) == 6 * 3 + 4 * 3 + 4 * 2 + 3 * 18
    protocol = json.loads((reference_run / "protocol.json").read_text())
    centre = set(protocol["roles"]["harmful_centre"])
    assert len(centre) == 2
    assert all(r["attack"] == "direct" for r in records if f"{r['dataset']}/{r['item']}" in centre)
    assert len({r["key"] for r in records}) == len(records)
    judgements = list(run.judgements().rows())
    assert len(judgements) == 2 * len(records)
    first = records[0]
    shard = load_file(str(reference_run / first["shard"]))
    assert shard["activations"].shape[1] == 10  # steps
    dlm = next(r for r in records if r["sampler"] == "diff")
    assert "canvas" in load_file(str(reference_run / dlm["shard"]))
    # the same request gets the same seed under every attack and sampler (paired comparisons)
    seeds = {(r["dataset"], r["item"]): set() for r in records}
    for r in records:
        seeds[(r["dataset"], r["item"])].add(r["seed"])
    assert all(len(s) == 1 for s in seeds.values())
    prefill = next(r for r in records if r["attack"] == "prefill")
    assert prefill["prefill"] and prefill["response"].startswith(prefill["prefill"])
    assert json.loads((reference_run / "versions.json").read_text())["torch"]


def test_rerun_without_resume_is_refused(reference_run, tmp_path):
    cfg = parse_config(json.loads((reference_run / "config.json").read_text()))
    path = write_yaml(tmp_path / "again.yaml", cfg.canonical())
    with pytest.raises(SrilabError, match="already holds a run"):
        run_study(path, progress=False, echo=quiet)
    changed = cfg.canonical()
    changed["seed"] = 4
    with pytest.raises(SrilabError, match="seed"):
        run_study(write_yaml(tmp_path / "changed.yaml", changed), resume=True, progress=False, echo=quiet)


def test_sigkill_then_resume_equals_an_uninterrupted_run(micro_pair, reference_run, tmp_path):
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "study.yaml", micro_config(micro_pair, out))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srilab.cli", "run", str(cfg), "--no-progress", "--no-report"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    records = out / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    n_before = records.read_text().count("\n")
    total = len(list(RunDir(reference_run).records().rows()))
    assert 3 <= n_before < total
    with records.open("a") as f:  # as if the kill had landed inside the next append
        f.write('{"key": "m-ar/ar/harm/prefill/toy-harmful')
    with pytest.warns(RuntimeWarning, match="partial last line"):  # what is compared: the files, not the report
        assert main(["run", "--resume", str(out), "--no-progress", "--no-report"]) == 0
    ref, got = RunDir(reference_run), RunDir(out)
    assert stable(got.records().rows()) == stable(ref.records().rows())
    key = lambda r: (r["key"], r["judge"])  # noqa: E731
    assert sorted(got.judgements().rows(), key=key) == sorted(ref.judgements().rows(), key=key)
    for r in ref.records().rows():
        a = load_file(str(reference_run / r["shard"]))["activations"][r["row"]]
        b = load_file(str(out / r["shard"]))["activations"][r["row"]]
        assert (a == b).all(), r["key"]
    # a second resume has nothing left to do
    lines = records.read_text()
    assert main(["run", "--resume", str(out), "--no-progress", "--no-report"]) == 0
    assert records.read_text() == lines


# ------------------------------------------------------------------------------------------------ report
def test_report_from_the_run_directory_alone(reference_run, capsys):
    for f in ("summary.json", "report.html"):
        (reference_run / f).unlink(missing_ok=True)
    assert main(["report", str(reference_run)]) == 0
    summary = json.loads((reference_run / "summary.json").read_text())
    assert set(summary["arms"]) == {"m-ar/ar", "m-dlm/diff", "m-dlm/l2r"}
    cell = summary["arms"]["m-dlm/diff"]["cells"]["harm/response_template"]
    assert cell["n"] == 4 and cell["asr"]["n"] == 4 and 0.0 <= cell["asr"]["ci"][0] <= cell["asr"]["ci"][1] <= 1.0
    assert summary["arms"]["m-dlm/diff"]["cells"]["harm/direct"]["n"] == 4  # the harmful centre is never scored
    assert summary["asr_basis"] == "judge oracle"
    assert "m-dlm/diff vs m-dlm/l2r" in summary["paired"]
    assert summary["judge_agreement"]["pairs"][0]["n"] == 4 * 8
    assert (reference_run / "plots" / "asr.png").stat().st_size > 1000
    for arm in summary["arms"].values():
        if "detection" in arm:
            at = arm["detection"]["at_own_threshold"]
            assert at["asr_after"]["k"] <= at["asr_before"]["k"] and at["asr_after"]["n"] == at["asr_before"]["n"]
    assert any("detection" in arm for arm in summary["arms"].values()), summary["warnings"]
    assert "srilab study: micro" in (reference_run / "report.html").read_text()


def test_the_papers_guard_and_threshold_rule_is_the_sri_guard_paper_beside_the_default(reference_run, monkeypatch):
    """By default the guard's threshold is set on out-of-topic scores and the paper's guard (threshold on the
    calibration rows) is listed beside it; asked for (sri: {variant: paper, threshold: calibration}) the paper's
    guard is the guard, with the same figures, and nothing is listed beside it."""
    from srilab.analysis import summary as analysis

    if not (reference_run / "summary.json").is_file():
        assert main(["report", str(reference_run)]) == 0
    default = json.loads((reference_run / "summary.json").read_text())
    load_run = analysis.load_run

    def paper_config(path):
        run, cfg, records, verdicts = load_run(path)
        sri = cfg.sri.model_copy(update={"variant": "paper", "threshold": "calibration"})
        return run, cfg.model_copy(update={"sri": sri}), records, verdicts

    monkeypatch.setattr(analysis, "load_run", paper_config)
    paper, _ = analysis.summarise(reference_run)
    arms = [n for n, a in default["arms"].items() if "detection" in a]
    assert arms
    for name in arms:
        d, p = default["arms"][name]["detection"], paper["arms"][name]["detection"]
        assert d["guard_choice"]["threshold_rule"] == "topic_heldout" and p["guard_choice"] is None
        assert "sri_guard_paper" not in p["detectors"]  # listed only when the default's scores differ from it
        assert ("sri_guard_paper" in d["detectors"]) == (d["guard_choice"]["variant"] != d["guard_choice"]["paper"])
        paper_scores = d["detectors"].get("sri_guard_paper", d["detectors"]["sri_guard"])
        assert p["detectors"]["sri_guard"]["auroc_attacked_vs_eval"] == paper_scores["auroc_attacked_vs_eval"]
        assert p["at_own_threshold"] == d["paper_at_own_threshold"] and p["threshold"] != d["threshold"]


def test_summary_protocol_is_disjoint_and_every_rate_carries_an_interval(reference_run):
    if not (reference_run / "summary.json").is_file():
        assert main(["report", str(reference_run)]) == 0
    summary = json.loads((reference_run / "summary.json").read_text())
    p = summary["protocol"]
    members = {role: set(items) for role, items in p["roles"].items()}
    roles = list(members)
    for i, a in enumerate(roles):
        for b in roles[i + 1:]:
            assert not members[a] & members[b], (a, b)
    assert p["unseen_groups"] and not set(p["unseen_groups"]) & set(p["seen_groups"])
    for role in ("centre", "guard_fit", "calibration"):
        assert members[role] and not {p["groups"][i] for i in members[role]} & set(p["unseen_groups"]), role
    assert {p["groups"][i] for i in members["eval_unseen_topics"]} <= set(p["unseen_groups"])
    rates = [(path, node) for path, node in _dicts(summary) if "rate" in node]
    assert len(rates) > 20
    for path, node in rates:  # every stored rate is {"k", "n", "rate", "ci"}, Wilson: 0/n has an upper bound > 0
        assert set(node) == {"k", "n", "rate", "ci"}, path
        if node["n"]:
            assert node["rate"] == pytest.approx(node["k"] / node["n"]), path
            assert node["ci"][0] <= node["rate"] <= node["ci"][1] and node["ci"][1] > 0 and node["ci"][0] < 1, path
    for name, arm in summary["arms"].items():
        sri = arm["detection"]["detectors"]["sri_guard"]
        for part in ("eval_seen_topics", "eval_unseen_topics"):
            a = sri[f"auroc_jailbroken_vs_{part}"]
            assert a["n_neg"] > 0, (name, part)
            if a["n_pos"]:
                assert a["ci"][0] <= a["auroc"] <= a["ci"][1], (name, part)


def test_report_redacts_harmful_generations_unless_asked(micro_pair, tmp_path):
    import html as html_lib

    # No harm judge: "not refused" on a harmful request stands in for harmful (and is redacted).
    cfg = micro_config(micro_pair, tmp_path / "run", judges=["refusal"], attacks=["direct"],
                       models=[micro_config(micro_pair, tmp_path)["models"][0]])
    run_study(write_yaml(tmp_path / "s.yaml", cfg), progress=False, echo=quiet)
    rows = [r for r in RunDir(tmp_path / "run").records().rows() if r["dataset"] == "harm"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["asr_basis"].startswith("not refused")
    first = rows[0]
    page = (tmp_path / "run" / "report.html").read_text()
    shown = html_lib.escape(first["response"][:40])
    verdicts = {j["key"]: j for j in RunDir(tmp_path / "run").judgements().rows()}
    if verdicts[first["key"]]["refused"]:
        pytest.skip("the micro model refused the first harmful request: nothing to redact in the examples")
    assert page.count("[redacted: judged harmful") >= 1
    assert "[redacted: judged harmful" in page
    assert main(["report", str(tmp_path / "run"), "--show-harmful"]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "[redacted" not in page and shown in page
