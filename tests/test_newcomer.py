"""A newcomer's first hour (issue 32): `srilab run` from flags, --version, list/info of the toy pair, the
compact terminal summary, the report's contents, notes, samples view and plot fixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srilab.cli import main
from srilab.errors import SrilabError
from srilab.study.adhoc import BENIGN_FLOOR, flag_config, limited_datasets
from srilab.study.config import load_config
from srilab.study.matrix import load_items, study_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FIT_ROLES = ("centre", "guard_fit", "calibration", "harmful_centre")


def _counts(cfg) -> dict[str, int]:
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    return study_protocol(cfg, items).to_dict()["counts"]


def test_version_and_list_json(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith("srilab 0.")
    assert main(["list", "models", "--json"]) == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert names[:2] == ["toy:ar", "toy:diffusion"] and "FILE.gguf" in names
    assert main(["list", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert {"attacks", "datasets", "models", "samplers"} <= set(everything)
    assert "toy:harmful_direct" in [e["name"] for e in everything["datasets"]]
    assert main(["list", "samplers"]) == 0
    assert "diffusion-l2r" in capsys.readouterr().out
    assert main(["list", "nonsense"]) == 2


def test_summaries_end_a_sentence(capsys):
    assert main(["list", "defenses"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.strip().startswith("source:")]
    assert all(ln.rstrip().endswith((".", ")", "]")) for ln in lines), lines


def test_info_of_the_toy_models(capsys):
    assert main(["info", "toy:ar"]) == 0
    out = capsys.readouterr().out
    assert "kind: ar" in out and "n_params" in out
    assert main(["info", "toy:nope"]) == 2
    assert "toy:ar or toy:diffusion" in capsys.readouterr().err


def test_flags_build_the_study_a_yaml_would():
    cfg = flag_config(["toy:ar", "toy:diffusion"], ["prefill"], ["toy:harmful_direct"], limit=8, out="x")
    assert [(m.path, [s.kind for s in m.samplers]) for m in cfg.models] == [("toy:ar", ["ar"]),
                                                                            ("toy:diffusion", ["diffusion"])]
    assert cfg.models[1].samplers[0].block_length == 16  # LLaDA's block schedule
    assert [a.name for a in cfg.attacks] == ["direct", "prefill"]  # the harmful centre needs direct requests
    assert {d.name: d.role for d in cfg.datasets} == {"harmful-direct": "harmful", "benign-train": "benign",
                                                      "benign-heldout": "benign"}
    assert {d.name: d.limit for d in cfg.datasets}["benign-train"] == BENIGN_FLOOR
    assert [j.name for j in cfg.judges] == ["refusal", "oracle"] and cfg.sri.harmful == "harmful-direct"
    counts = _counts(cfg)
    assert all(counts[r] >= 2 for r in FIT_ROLES), counts
    assert flag_config(["toy:diffusion"], [], ["toy:harmful_direct"], samplers=["diffusion-l2r"]).models[0] \
        .samplers[0].block_length == 1


@pytest.mark.parametrize("limit", [1, 4])
def test_a_smoke_limit_keeps_two_rows_in_every_fitting_role(limit):
    cfg = load_config(EXAMPLES / "toy-study.yaml")
    cfg = cfg.model_copy(update={"datasets": limited_datasets(cfg.datasets, limit)})
    counts = _counts(cfg)
    assert all(counts[r] >= 2 for r in FIT_ROLES), counts


@pytest.mark.parametrize("args, message", [
    (["--model", "toy:ar"], "needs --model and --dataset"),
    (["--model", "toy:ar", "--dataset", "toy:benign_direct"], "no harmful dataset"),
    (["--model", "toy:gpt", "--dataset", "toy:harmful_direct"], "toy:ar or toy:diffusion"),
    (["--model", "toy:ar", "--dataset", "toy:harmful_direct", "--sampler", "warp"], "unknown --sampler"),
    (["--model", "toy:ar", "--dataset", "toy:harmful_direct", "--sampler", "diffusion"], "add --sampler ar"),
    (["--model", "toy:ar", "--dataset", "toy:harmful_nope"], "toy split must be one of"),
    (["--model", "toy:ar", "--dataset", "toy:harmful_direct", "--attack", "nope"], "nope"),
])
def test_flag_errors_are_one_line(args, message, capsys, tmp_path):
    assert main(["run", *args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_finished_run_is_kept_unless_overwrite(small_run, tmp_path, capsys):
    import shutil

    import yaml

    from srilab.study.adhoc import make_room
    from srilab.study.store import RunDir

    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(RunDir(out).read_config()))
    assert main(["run", str(study), "--out", str(out), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    moved = make_room(out, study, echo=lambda _: None)
    assert moved is not None and (moved / "records.jsonl").is_file()  # moved, never deleted
    assert sorted(p.name for p in out.iterdir()) == ["previous"]
    with pytest.raises(SrilabError, match="not the run directory"):
        make_room(None, out)


def test_the_terminal_summary_is_compact_and_the_report_navigable(small_run, capsys):
    from srilab.report.build import build_report

    lines = []
    build_report(small_run, echo=lines.append)
    text = "\n".join(lines)
    assert len(text.splitlines()) <= 40, text
    for arm in ("toy-ar/ar", "toy-diffusion/diffusion"):
        assert arm in text
    assert "attack success" in text and "refusal" in text and "AUROC" in text and "FPR" in text
    page = (small_run / "report.html").read_text()
    assert "<nav><b>Contents</b>" in page and "href='#sec-" in page
    assert page.index("<h2") < page.index("<h2 id='sec-overview")  # the claims (the headline) open it
    assert page.count("Note: ") == 0 and ("<summary>Notes (" in page or not json.loads(
        (small_run / "summary.json").read_text())["warnings"])
    assert "id='samples'" in page and "data-verdict=" in page and "<details>" in page
    rows = len((small_run / "records.jsonl").read_text().splitlines())
    assert page.count("<tr data-arm=") == rows


def test_report_writes_the_headline_tables_as_markdown(small_run, tmp_path):
    """`srilab report DIR --markdown FILE`: the claims, knowledge, attack and quality tables, every rate read
    back from summary.json with its k/n and interval (what the README's tables are rebuilt with)."""
    import shutil

    from srilab.report.markdown import rate_cell

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    out = tmp_path / "tables.md"
    assert main(["report", str(run), "--markdown", str(out)]) == 0
    text = out.read_text()
    summary = json.loads((run / "summary.json").read_text())
    for title in ("Attack success beside what each arm knows", "Attack success per attack",
                  "Benign quality and capability"):
        assert f"### {title}" in text
    arms = list(summary["arms"])
    header = next(line for line in text.splitlines() if line.startswith("| attack success (attacked set"))
    assert header.strip("| ").split(" | ")[1:] == arms
    row = next(line for line in text.splitlines() if line.startswith("| `harmful/prefill`"))
    for name, arm in summary["arms"].items():
        prefill = arm["cells"]["harmful/prefill"]["asr"]
        assert rate_cell(prefill) in row.split(" | ")[1 + arms.index(name)]
        assert f"({prefill['k']}/{prefill['n']})" in rate_cell(prefill)
    tested = [c for c in summary.get("claims") or [] if c["verdict"] != "not tested"]
    assert ("### The sources' claims, tested" in text) == bool(tested)  # this small run's arms test few claims
    assert rate_cell(None) == "n/a" and rate_cell({"k": 0, "n": 0, "rate": None}) == "n/a"


def test_the_markdown_claim_table_carries_every_figure_of_a_claim():
    from srilab.report.markdown import claims_table

    claim = {"statement": "a | b", "n": 96, "effect": 0.125, "ci": [-0.19, 0.357], "p": 0.072, "mde": 0.29,
             "verdict": "refuted", "among_known": {"n": 90, "effect": 0.1, "ci": [-0.2, 0.3]}}
    untested = {**claim, "statement": "untested", "verdict": "not tested"}
    text = claims_table({"claims": [claim, untested]})
    row = text.splitlines()[2]
    assert row == ("| a \\| b | 96 | 0.125 [-0.190, 0.357] | 0.072 | 0.29 | **refuted** | "
                   "0.100 [-0.200, 0.300], n = 90 |")
    assert "untested" not in text and claims_table({"claims": [untested]}) is None


def test_samples_view_redacts_harmful_answers_unless_asked():
    from srilab.report.samples import samples_html
    from srilab.report.study_report import redact

    rows = [{"dataset": "h", "attack": "prefill", "prompt": "p", "response": "SECRET steps", "role": "harmful",
             "refused": False, "harmful": True},
            {"dataset": "b", "attack": "direct", "prompt": "q", "response": "fine <b>", "role": "benign",
             "refused": False, "harmful": False}]
    hidden = samples_html({"m/s": rows}, show_harmful=False, redact=redact)
    assert "SECRET" not in hidden and "redacted" in hidden and "fine &lt;b&gt;" in hidden
    assert "data-verdict='jailbroken'" in hidden and "data-verdict='answered'" in hidden
    assert "SECRET" in samples_html({"m/s": rows}, show_harmful=True, redact=redact)


def _capture(monkeypatch):
    from srilab.report import plots

    seen = {}

    def keep(plt, fig, path):
        seen["ax"] = fig.axes[0]
        plt.close(fig)
        return b""

    monkeypatch.setattr(plots, "_png", keep)
    return plots, seen


def test_sri_plot_groups_have_distinct_colours(monkeypatch):
    from matplotlib.colors import to_hex

    plots, seen = _capture(monkeypatch)
    rng = np.random.default_rng(0)
    groups = {g: rng.random((4, 6)) for g in ("benign (eval)", "harmful refused", "jailbroken")}
    plots.sri_plot(groups)
    colours = [to_hex(line.get_color()) for line in seen["ax"].get_lines()[:3]]
    assert len(set(colours)) == 3, colours
    assert colours[0] == plots.GROUP_COLOURS["benign"]


def test_roc_without_a_jailbroken_answer_says_so(monkeypatch):
    plots, seen = _capture(monkeypatch)
    plots.roc_plot({"sri_guard": (np.array([]), np.array([0.1, 0.2]))}, title="arm")
    texts = [t.get_text() for t in seen["ax"].texts]
    assert any("no jailbroken answer on this arm" in t for t in texts)
    assert not seen["ax"].get_lines()
    plots.roc_plot({"sri_guard": (np.array([0.9]), np.array([0.1, 0.2]))})
    assert seen["ax"].get_lines() and not seen["ax"].texts
