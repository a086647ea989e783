"""`srilab demo` is a study: a run directory, every figure rebuilt from files, resumable after SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from srilab.cli import main
from srilab.pipeline.demo import run_demo
from srilab.study.demo import demo_config, regenerated_limit
from srilab.study.store import RunDir, archive_previous, config_digest

ARMS = ("toy-ar/ar", "toy-diffusion/diffusion", "toy-diffusion/diffusion-l2r", "toy-diffusion/dream-schedule",
        "toy-diffusion/diffusion-fast")
DETECTORS = {"sri_guard", "answered_flag", "text_tfidf", "static_step0", "perplexity", "self_examination",
             "output_keyword", "refusal_direction", "early_rejection", "self_reminder", "smoothllm", "diffuguard"}
LIMIT = 6  # items per set: enough for every protocol role (benign-train gets 12: one per topic group)


def quiet(_: str) -> None:
    pass


def stable(rows):
    return sorted(({k: v for k, v in r.items() if k != "timing"} for r in rows), key=lambda r: r["key"])


@pytest.fixture(scope="module")
def demo_out(micro_pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out=out, limit=LIMIT, pair=micro_pair, progress=False, echo=quiet)
    return out


def test_the_demo_writes_a_run_directory_with_every_stage(demo_out):
    for f in ("config.json", "protocol.json", "records.jsonl", "judgements.jsonl", "defenses.jsonl",
              "dynamics.jsonl", "summary.json", "report.html"):
        assert (demo_out / f).is_file(), f
    summary = json.loads((demo_out / "summary.json").read_text())
    assert set(summary["arms"]) == set(ARMS)
    for name in ARMS:
        arm = summary["arms"][name]
        assert "reasoning exact match" in arm["capability"]
        det = arm["detection"]
        assert DETECTORS <= set(det["detectors"]) <= DETECTORS | {"sri_guard_paper"}, name
        choice = det["guard_choice"]  # sri.variant: auto, decided on calibration rows only
        # its threshold on out-of-topic scores (sri.threshold: topic_heldout): the paper's guard is listed beside
        assert choice["paper"] == "sri+autoencoder+none" and choice["threshold_rule"] == "topic_heldout"
        assert ("sri_guard_paper" in det["detectors"]) == (choice["variant"] != choice["paper"])  # other scores
        assert "paper_at_own_threshold" in det  # the paper's threshold rule, beside
        for d, e in det["detectors"].items():
            at = e["at_fpr"]["5%"]
            for part in ("flagged_eval_seen_topics", "flagged_eval_unseen_topics", "flagged_lookalike",
                         "flagged_jailbroken"):
                assert set(at[part]) == {"k", "n", "rate", "ci"}, (name, d, part)
            assert at["asr_after"]["k"] <= at["asr_before"]["k"], (name, d)
        # SmoothLLM re-generates: it is scored on a bounded, seeded random sample of each role
        smooth, cap = det["detectors"]["smoothllm"], regenerated_limit(LIMIT)
        assert 0 < smooth["n_calibration"] <= cap
        # ... and of the attacked rows, up to `cap` successful attacks and `cap` others: its TPR rests on jailbreaks
        n_jailbroken = det["detectors"]["sri_guard"]["at_fpr"]["5%"]["flagged_jailbroken"]["n"]
        assert smooth["at_fpr"]["5%"]["flagged_jailbroken"]["n"] == min(cap, n_jailbroken), name
        assert 0.0 < det["overhead_share"] < 0.5
        # the safe look-alikes: every detector's FPR on them, and over-refusal per XSTest type
        assert det["detectors"]["sri_guard"]["at_fpr"]["5%"]["flagged_lookalike"]["n"] >= LIMIT  # + look-alike groups
        types = arm["over_refusal_by_type"]["safe-lookalike/direct"]
        assert set(types) <= {"safe_targets", "safe_contexts", "homonyms", "privacy_fictional"} and len(types) >= 2
        assert sum(t["refusal"]["n"] for t in types.values()) == LIMIT
        if name == "toy-ar/ar":
            assert not arm["dynamics"]
        else:
            cell = arm["dynamics"]["harmful/response_template"]
            n = arm["cells"]["harmful/response_template"]["n"]
            committed = cell["committed"]
            assert committed["steps_judged"] == 80 // 8 - 1 and committed["harmful_intermediate"]["n"] == n
            if name != "toy-diffusion/dream-schedule":  # the sampler's guess (x0) is traced under LLaDA's schedule
                assert cell["x0"]["steps_judged"] == 80 // 8 and cell["x0"]["harmful_intermediate"]["n"] == n
    html = (demo_out / "report.html").read_text()
    assert "Detection" in html and "Denoising dynamics" in html and 'src="http' not in html


def untimed(value):
    """The summary without the figures timed while the report is built (the guard's own cost, and the overhead
    claim that reads it)."""
    if isinstance(value, dict) and value.get("kind") == "cost_ratio":
        return {k: v for k, v in value.items() if k not in ("effect", "ci", "note", "verdict")}
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in ("cost_per_item_s", "overhead_share")}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def killed_while_scoring_defenses(src, dst, arm: str) -> int:
    """``dst``: the finished run ``src`` as it stood when killed while it scored the defenses, before any
    defense score of ``arm`` (the last arm): every record, shard and verdict, the defense scores of the other
    arms, no report. Returns how many defense scores it holds."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("run.lock", "previous", "plots"))
    config = json.loads((dst / "config.json").read_text())
    config["output"] = str(dst)  # the demo's config names its own directory
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dst / "config.sha256").write_text(config_digest(config) + "  config.json\n")
    lines = (dst / "defenses.jsonl").read_text().splitlines(keepends=True)
    kept = [x for x in lines if not json.loads(x)["key"].startswith(arm + "/")]
    assert 0 < len(kept) < len(lines)
    (dst / "defenses.jsonl").write_text("".join(kept))
    for f in ("summary.json", "report.html"):
        (dst / f).unlink()
    return len(kept)


def test_sigkill_of_the_demo_then_resume_loses_and_duplicates_nothing(demo_out, micro_pair, tmp_path):
    """`srilab demo` resumed on a run killed while it scored the defenses, killed again (SIGKILL right after its
    first defense-score append), resumed with `srilab run --resume`: the records, verdicts, defense scores --
    those of the defenses that answer again (SmoothLLM, self-reminder, DiffuGuard) among them -- and the
    protocol of the uninterrupted demo. Kills during generation, judging and reporting, at every kind of
    write: test_reliability."""
    out = tmp_path / "killed"
    n_before = killed_while_scoring_defenses(demo_out, out, ARMS[-1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SRILAB_CRASH_AT": "defenses.jsonl:after:1"}
    proc = subprocess.run(
        [sys.executable, "-m", "srilab.cli", "demo", "--limit", str(LIMIT), "--pair", str(micro_pair),
         "--out", str(out), "--no-progress"], env=env, capture_output=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert n_before < (out / "defenses.jsonl").read_text().count("\n")  # it resumed, appended, and died there
    assert not (out / "previous").exists()  # the same config: resumed, not moved aside
    assert main(["run", "--resume", str(out), "--no-progress", "--no-report"]) == 0  # what is compared: the files
    ref, got = RunDir(demo_out), RunDir(out)
    assert stable(got.records().rows()) == stable(ref.records().rows())
    key = lambda r: (r["key"], r["judge"])  # noqa: E731
    assert sorted(got.judgements().rows(), key=key) == sorted(ref.judgements().rows(), key=key)
    scores = lambda run: sorted(json.dumps([r["key"], r["defense"], r["score"]]) for r in run.defenses().rows())  # noqa: E731
    assert scores(got) == scores(ref)
    assert {"smoothllm", "self_reminder", "diffuguard"} <= {
        r["defense"] for r in got.defenses().rows() if r["key"].startswith(ARMS[-1] + "/")}
    assert json.loads((out / "protocol.json").read_text()) == json.loads((demo_out / "protocol.json").read_text())


def test_running_the_demo_again_resumes_rebuilds_the_same_summary_or_keeps_the_earlier_run(
    demo_out, micro_pair, tmp_path,
):
    records = (demo_out / "records.jsonl").read_text()
    before = json.loads((demo_out / "summary.json").read_text())
    for f in ("summary.json", "report.html"):
        (demo_out / f).unlink()
    run_demo(out=demo_out, limit=LIMIT, pair=micro_pair, progress=False, echo=quiet)  # same config: resumes
    assert (demo_out / "records.jsonl").read_text() == records and not (demo_out / "previous").exists()
    # the report is rebuilt from the files alone, to the same figures
    assert untimed(json.loads((demo_out / "summary.json").read_text())) == untimed(before)
    assert (demo_out / "report.html").is_file()
    assert demo_config(out=demo_out, limit=LIMIT, pair=micro_pair).datasets[2].limit == 2 * LIMIT  # three roles
    # Another config (or anything else) in the directory is moved aside, never overwritten.
    out = tmp_path / "other"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    first = archive_previous(out)
    (out / "notes.txt").write_text("again")
    second = archive_previous(out)
    assert first != second and {p.name for p in (out / "previous").iterdir()} == {first.name, second.name}
    assert (first / "notes.txt").read_text() == "mine" and (second / "notes.txt").read_text() == "again"
    assert [p.name for p in out.iterdir()] == ["previous"] and archive_previous(out) is None


def test_cli_demo_bad_pair_is_one_line_error(tmp_path, capsys):
    code = main(["demo", "--pair", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "no toy pair" in err


@pytest.mark.parametrize("args,message", [(["--detector", "nope"], "unknown guard detector 'nope'"),
                                          (["--limit", "0"], "--limit must be at least 1")])
def test_cli_demo_bad_settings_fail_before_generating(tmp_path, capsys, args, message):
    code = main(["demo", "--out", str(tmp_path / "o"), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o").exists()  # nothing was started, nothing written


def test_the_quick_demo_leaves_out_the_defenses_that_answer_again():
    quick = {d.name for d in demo_config(quick=True).defenses}
    full = {d.name: d.limit for d in demo_config().defenses}
    regenerate = {name for name, limit in full.items() if limit}
    assert regenerate == {"smoothllm", "self_reminder", "diffuguard"}
    assert quick == set(full) - regenerate
    assert {d.name for d in demo_config(limit=6).defenses} == set(full)  # --limit keeps every defense
