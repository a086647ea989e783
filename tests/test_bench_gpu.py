"""``benchmarks/bench_gpu.py --tiny``: the GPU check's smoke run, the same code paths on tiny shapes (here the CPU).

It must print every line the GPU run prints, finish every part, and give sane figures; where the "device" is the
CPU itself, the device-vs-CPU comparison of the toy demo's generation must agree record for record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, golden_dir):
    out = tmp_path_factory.mktemp("bench_gpu") / "figures.json"
    # The golden rows were made with torch's AVX2 kernels (tests/test_diffusion_sampler.py): pin them.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ATEN_CPU_CAPABILITY": "avx2"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--device", "cpu", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_prints_every_section_and_labels_it_a_smoke_run(tiny_run):
    stdout, figures = tiny_run
    lines = stdout.strip().splitlines()
    assert lines == figures["lines"]
    assert "[--tiny: a smoke run" in lines[0] and lines[-1].startswith("bench_gpu total")
    assert all(line.startswith(("(a) ", "(b) ", "(c) ", "(d) ")) for line in lines[1:-1])
    text = "\n".join(lines)
    for needle in ("(a) golden llada-tiny logits", "(a) golden llada-tiny generate rows",
                   "(a) golden llada-tiny at temperature 1", "(a) golden dream-tiny logits",
                   "(a) golden dream-tiny generate rows", "(b) LLaDA-8B-shaped diffusion model",
                   "(c) AR model of the same shape", "(d) toy pair under the demo's samplers", "guard live",
                   "sampled (temperature 0.7"):
        assert needle in text, needle
    for batch in (1, 4):
        for mode in ("exact", "prefix", "dual", "dual + threshold"):
            for trace in ("off", "on "):
                assert f"(b)   batch  {batch}, {mode:<16} trace {trace}:" in text
        assert f"(b)   batch  {batch}, speed-up over the exact sampler" in text
        assert f"(c)   batch  {batch}, KV cache, trace off:" in text
    assert "skipped" not in text and "FAILED" not in text and not figures["failed"]


def test_golden_figures(tiny_run):
    _, figures = tiny_run
    golden = figures["parts"]["golden"]
    for name in ("llada-tiny", "dream-tiny"):
        f32, b16 = golden[name]["float32"], golden[name]["bfloat16"]
        assert f32["logits_max_abs_diff"] <= 1e-4 and f32["argmax_agree_pct"] == 100.0
        assert 0 < b16["logits_max_abs_diff"] < 0.05 and b16["argmax_agree_pct"] > 90.0
        if figures["cpu_capability"] == "AVX2":  # the golden rows' own arithmetic: every row, token for token
            assert f32["rows_exact"] == f32["rows"] and f32["tokens_agree_pct"] == 100.0
        assert 0 <= b16["rows_exact"] <= b16["rows"]
    assert 0.0 <= golden["llada-tiny"]["temperature1_bf16_vs_fp32_agree_pct"] <= 100.0


def test_speed_figures(tiny_run):
    _, figures = tiny_run
    for part in ("diffusion", "ar"):
        res = figures["parts"][part]
        assert res["dtype"] == "bfloat16" and res["params"] > 0
        for batch in ("1", "4"):
            rows = res["batches"][batch]
            timed = [row for key, row in rows.items() if key in ("on", "off") or "|" in key]
            assert len(timed) == (8 if part == "diffusion" else 2)
            assert all(row["tokens_per_s"] > 0 and row["peak_gib"] is None for row in timed)  # no GPU memory here
            assert rows["sri_signal_ok"] is True
            keeps = rows["trace_keeps_tokens"]
            assert all(keeps.values()) if isinstance(keeps, dict) else keeps
    diffusion = figures["parts"]["diffusion"]["batches"]["4"]
    assert diffusion["exact|off"]["passes"] == 8 and set(diffusion["speedup_over_exact"]) >= {"prefix", "dual"}


def test_the_device_run_matches_the_cpu_run_record_for_record(tiny_run):
    _, figures = tiny_run
    toy = figures["parts"]["toy"]
    assert set(toy["arms"]) == {"ar", "diffusion", "diffusion-l2r", "dream-schedule", "diffusion-fast"}
    n = toy["requests"]
    for arm in toy["arms"].values():
        same = arm["cpu float32"]  # the "device" is the CPU here: everything must agree exactly
        assert same["records_identical"] == same["texts_identical"] == n and same["tokens_agree_pct"] == 100.0
        assert same["phi_max_abs_diff"] == 0.0 and same["signal_max_abs_diff"] == 0.0
        assert same["guard_flags_agree"] == n
        low = arm["cpu bfloat16"]
        assert 0 <= low["records_identical"] <= n and low["signal_max_abs_diff"] < 1.0
        if "live_monitor" in arm:
            assert arm["live_monitor"]["stop_steps_agree"]["cpu float32"] == n
    assert {"ar", "diffusion"} <= {k for k, v in toy["arms"].items() if "live_monitor" in v}
    assert all(v == n for v in toy["sampled"].values())  # a seeded sampled run reproduces itself
