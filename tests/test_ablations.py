"""`srilab ablate RUN_DIR` on a small study of the micro pair: the layer variants are studies of their own under
the run's protocol (same items, same roles), the texts are the run's, the layers really differ, a second call
resumes instead of regenerating, and bad input fails in one line before anything is generated."""

import json
import math

import pytest

from srilab.analysis.ablations import READ_FROM_RUN
from srilab.cli import main
from srilab.errors import SrilabError
from srilab.pipeline.ablate import layer_config, run_ablations
from srilab.report.ablation_report import format_ablations
from srilab.study.config import parse_config

ARMS = ("toy-ar/ar", "toy-diffusion/diffusion")


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ablated(small_run):
    said: list[str] = []
    result = run_ablations(small_run, layers="first,last", progress=False, echo=said.append)
    return result, said


def test_every_arm_has_every_variant_with_intervals(ablated, walk):
    result, said = ablated
    assert result["variants"] == ["sri_first", "sri_last", *READ_FROM_RUN]
    assert set(result["arms"]) == set(ARMS)
    for name in ARMS:
        arm = result["arms"][name]
        assert set(arm["variants"]) == set(result["variants"]), name
        for v, m in arm["variants"].items():
            auc = m["auroc_jailbroken_vs_unseen"]
            assert set(auc) == {"auroc", "ci", "n_pos", "n_neg"} and auc["n_neg"] == arm["n"]["eval_unseen_topics"]
            assert set(m["fpr_unseen"]) == {"k", "n", "rate", "ci"}, (name, v)
            assert m["fpr_unseen"]["n"] == arm["n"]["eval_unseen_topics"]
            assert m["cost_per_item_s"] > 0
    for path, value in walk(result):
        if isinstance(value, float):
            assert math.isfinite(value), path
    assert "SRI guard ablations" in "\n".join(said) and format_ablations(result).count("sri_first") == len(ARMS)


def test_the_guard_diagnosis_joins_the_ablations_and_the_run_report(small_run, ablated):
    result, _ = ablated
    for name in ARMS:
        guard = result["arms"][name]["guard"]
        assert guard["paper"] == "sri+autoencoder+none" and guard["chosen"] in guard["variants"]
        for v in guard["variants"].values():
            assert set(v["cv_fpr"]) == {"k", "n", "rate", "ci"} and v["fpr_unseen"]["n"] > 0
        assert len(guard["figures"]) == 5 and all((small_run / "ablations" / "guard").glob("*.png"))
        assert set(guard["effects"]) == {"tau", "representation_paper_ae", "threshold_rule", "std_floor", "fit_groups"}
        assert set(guard["effects"]["threshold_rule"]) == {"calibration", "topic_heldout"}
        assert guard["threshold_rule"] == "topic_heldout"
    html = (small_run / "report.html").read_text()
    assert "Ablations (srilab ablate)" in html and "CV FPR (calibration)" in html


def test_every_benign_topic_group_is_unseen_once_and_split_zero_is_the_run(small_run, ablated):
    result, said = ablated
    summary = json.loads((small_run / "summary.json").read_text())
    for name in ARMS:
        rot = result["arms"][name]["guard"]["rotation"]
        assert {sp["repeat"] for sp in rot["splits"]} == {0}  # one rotation by default
        held = [g for sp in rot["splits"] for g in sp["held_out"]]
        assert len(held) == len(set(held)) == rot["groups"] >= 3, name  # every group held out exactly once
        for sp in rot["splits"]:
            assert sp["fit_groups"] and not set(sp["held_out"]) & set(sp["fit_groups"]), (name, sp["held_out"])
        # split 0 is the run's own protocol: the run's guard, threshold and unseen-topic FPR
        det = summary["arms"][name]["detection"]
        first = rot["splits"][0]
        assert first["study"]["threshold"] == pytest.approx(det["threshold"])
        assert first["study"]["fpr_unseen"] == det["at_own_threshold"]["flagged_eval_unseen_topics"]
        assert first["paper"]["fpr_unseen"] == det["paper_at_own_threshold"]["flagged_eval_unseen_topics"]
        for guard in ("study", "paper"):
            pooled = rot["pooled"][guard]
            assert pooled["n"] == sum(sp[guard]["fpr_unseen"]["n"] for sp in rot["splits"])
            assert pooled["k"] == sum(sp[guard]["fpr_unseen"]["k"] for sp in rot["splits"])
            lo, hi = pooled["group_ci"]
            assert lo <= pooled["rate"] <= hi
    assert "every benign topic group unseen once" in "\n".join(said)
    html = (small_run / "report.html").read_text()
    assert "every benign topic group unseen once (srilab.analysis.guard_rotation)" in html


def test_a_repeated_rotation_deals_every_group_again_with_new_roles(small_run):
    from srilab.analysis.guard_diagnosis import arm_inputs
    from srilab.analysis.guard_rotation import BENIGN_ROLES, rotate

    d = arm_inputs(small_run, "toy-ar/ar")
    rot = rotate(d, k=3, repeats=2, n_boot=50)
    n_benign = sum(len(d["sets"][r]) for r in BENIGN_ROLES)
    assert rot["pooled"]["study"]["n"] == 2 * n_benign and rot["repeats"] == 2
    for rep in (0, 1):
        splits = [sp for sp in rot["splits"] if sp["repeat"] == rep]
        held = [g for sp in splits for g in sp["held_out"]]
        assert sorted(held) == sorted(set(held)) and len(held) == rot["groups"]
        assert [sp["own_protocol"] for sp in splits] == [rep == 0] + [False] * (len(splits) - 1)
    first = {tuple(sp["held_out"]) for sp in rot["splits"] if sp["repeat"] == 0}
    assert first != {tuple(sp["held_out"]) for sp in rot["splits"] if sp["repeat"] == 1}  # dealt again
    with pytest.raises(SrilabError, match="repeats must be >= 1"):
        rotate(d, repeats=0)


def test_a_group_bootstrap_interval_is_wider_when_the_flags_sit_in_one_group():
    import numpy as np

    from srilab.analysis.guard_rotation import group_bootstrap_ci

    groups = np.repeat(np.arange(10), 20)
    spread = np.zeros(200, dtype=bool)
    spread[::20] = True  # one flag in every group
    lumped = np.zeros(200, dtype=bool)
    lumped[:10] = True  # ten flags in one group
    lo_s, hi_s = group_bootstrap_ci(spread, groups, seed=1)
    lo_l, hi_l = group_bootstrap_ci(lumped, groups, seed=1)
    assert lo_s == hi_s == 0.05  # every resample has the same rate
    assert lo_l == 0.0 and hi_l > 0.1
    assert group_bootstrap_ci(spread, np.zeros(200)) == [None, None]


def test_layer_runs_keep_the_protocol_and_the_answers_and_read_another_layer(small_run, ablated):
    result, _ = ablated
    main_protocol = json.loads((small_run / "protocol.json").read_text())
    sub = small_run / "ablations" / "layer-first"
    assert json.loads((sub / "protocol.json").read_text())["roles"] == main_protocol["roles"]
    assert json.loads((sub / "config.json").read_text())["sri"]["layer"] == "first"
    assert (sub / "summary.json").is_file() and (small_run / "ablations" / "ablations.png").stat().st_size > 0
    for name in ARMS:
        layers = result["arms"][name]["layers"]
        assert layers["first"]["texts_identical"] and layers["last"]["texts_identical"]
        assert layers["last"]["run_dir"] == str(small_run)  # the run's own layer is the run itself
        assert layers["first"]["activation_mean_norm"] != pytest.approx(layers["last"]["activation_mean_norm"])
        s_first = result["arms"][name]["variants"]["sri_first"]["auroc_jailbroken_vs_unseen"]
        s_last = result["arms"][name]["variants"]["sri_last"]["auroc_jailbroken_vs_unseen"]
        assert s_first["n_pos"] == s_last["n_pos"]  # the same jailbroken answers, scored from another layer


def test_a_second_ablation_resumes_the_layer_runs(small_run, ablated):
    said: list[str] = []
    again = run_ablations(small_run, layers="first,last", guard=False, progress=False, echo=said.append)
    assert any("generations: 0 new" in s for s in said), said
    assert again["arms"].keys() == ablated[0]["arms"].keys()


def test_samplers_restrict_the_arms_and_the_layer_runs(small_run, tmp_path):
    result = run_ablations(small_run, layers="first", samplers="ar", out=tmp_path / "abl", guard=False,
                           progress=False, echo=quiet)
    assert list(result["arms"]) == ["toy-ar/ar"]
    sub = json.loads((tmp_path / "abl" / "layer-first" / "config.json").read_text())
    assert [m["name"] for m in sub["models"]] == ["toy-ar"]
    with pytest.raises(SrilabError, match="unknown sampler"):
        run_ablations(small_run, samplers="ar,nope", out=tmp_path / "x", echo=quiet)


def test_the_layer_config_changes_only_what_the_layer_needs(small_run):
    cfg = parse_config(json.loads((small_run / "config.json").read_text()))
    sub = layer_config(cfg, 1, small_run / "x")
    a, b = cfg.canonical(), sub.canonical()
    assert b["sri"]["layer"] == 1 and b["defenses"] == [] and b["analysis"]["dynamics_every"] == 0
    for key in ("datasets", "models", "attacks", "judges", "seed", "protocol", "batch_size"):
        assert a[key] == b[key], key


def test_bad_input_is_one_line(small_run, tmp_path, capfd):
    with pytest.raises(SrilabError, match="unknown layer 'deep'"):
        run_ablations(small_run, layers="first,deep", echo=quiet)
    with pytest.raises(SrilabError, match="no layer"):
        run_ablations(small_run, layers=",", echo=quiet)
    with pytest.raises(SrilabError, match="layer index 99 is out of range"):
        run_ablations(small_run, layers="99", progress=False, echo=quiet)
    assert not (small_run / "ablations" / "layer-99").exists()  # nothing generated: nothing left behind
    with pytest.raises(SrilabError, match="not a srilab run directory"):
        run_ablations(tmp_path, echo=quiet)
    capfd.readouterr()
    assert main(["ablate", str(small_run), "--rotations", "-1"]) == 2
    assert "rotations must be a whole number >= 0" in capfd.readouterr().err
    assert main(["ablate", str(tmp_path / "nowhere")]) == 2
    assert len(capfd.readouterr().err.strip().splitlines()) == 1
