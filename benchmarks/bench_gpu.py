"""GPU check: srilab on CUDA in bf16, in one command that fits the few minutes a GPU is lent (<= 8 min on one GPU).

    python benchmarks/bench_gpu.py [--tiny] [--json OUT] [--device cuda|cpu] [--parts abcd] [--budget-s 450]
                                   [--steps 64]

(a) The golden llada-tiny / dream-tiny checkpoints (``../shared/golden``) on the device in float32 and bfloat16:
    logits and final-norm states against the reference's float32 ones (max |diff|, argmax agreement), and every
    golden ``generate`` row (rows reproduced exactly, share of decided tokens that agree). Plus a temperature-1
    run with per-row seeds, bfloat16 against float32: LLaDA's reference draws its Gumbel noise in float64 (as
    srilab does), so the noise is the same in both and what moves is the logits' rounding.
(b) An LLaDA-8B-shaped model (32 layers, 4096 wide, LLaDA-8B's config, random N(0, 0.02) weights built on the
    device in bf16, nothing downloaded), batch 1 and 16, 256 new tokens after 64 prompt tokens: tokens/s and
    peak memory of the exact sampler, the prefix and dual caches and dual cache + threshold 0.9, with the SRI
    trace off and on. To fit the time, the 256 tokens take 64 denoising steps (4 per step, blocks of 32; ``--steps``),
    not 256: the figures are per pass, and the speed-ups are those of the cache, not of threshold decoding (random
    weights reach no 0.9 confidence, so the threshold commits nothing extra: its passes show it).
(c) The same for an AR model of the same shape (a transformers Llama with LLaDA-8B's sizes, causal, KV cache):
    256 new tokens, batch 1 and 16, trace off and on.
(d) The shipped toy pair under the demo's samplers (``srilab/toy/demo.yaml``) on benign and harmful toy requests:
    on the device (float32, then bfloat16) against the CPU run, record for record (identical records, token
    agreement, traced states); the SRI signal and a guard fitted on the CPU run's benign signals read from the
    device traces; and the guard live (``GuardMonitor``) in a device generation against the same on the CPU.

``--tiny``: the same code paths with tiny shapes (2 layers, 64 wide, a few requests) on CUDA if there is one,
else the CPU (bf16 where the CPU has it): the test suite's smoke run (``tests/test_bench_gpu.py``); its
figures are not results. Every line says what it measures; a part that fails prints its error and the others
still run (exit code 1). ``--json OUT`` writes every figure. Without a GPU and without ``--tiny`` it refuses.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

try:  # a bare GPU machine may have the checkout but not the package installed
    import srilab
except ImportError:  # pragma: no cover - depends on the machine
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import srilab

import numpy as np
import torch

import srilab.models as M
from srilab.models.native import FORMATS, BidirectionalLM
from srilab.sampling import TraceConfig, Tracer
from srilab.sampling import autoregressive as ar_sampler
from srilab.sampling import diffusion as dlm_sampler
from srilab.sampling import generate as api_generate
from srilab.sampling.dream import dream_generate

REPO = Path(__file__).resolve().parents[1]
# the golden vectors sit in shared/ beside the clone (tests/conftest.py), or inside it where a copy put them there
GOLDEN_PLACES = (REPO.parent / "shared" / "golden", REPO / "shared" / "golden")
GIB = 1024**3
THRESHOLD = 0.9  # Fast-dLLM's default, as in bench_engine.py
TINY_NOTE = "  [--tiny: a smoke run with tiny shapes; its figures are not results]"

# LLaDA-8B's config.json fields (GSAI-ML/LLaDA-8B-Instruct), mapped by srilab's native loader; mask id 126336.
LLADA_8B = {"model_type": "llada", "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "n_layers": 32,
            "mlp_hidden_size": 12288, "vocab_size": 126464, "embedding_size": 126464, "rope_theta": 500000.0,
            "rms_norm_eps": 1e-5, "weight_tying": False, "max_sequence_length": 4096}
LLADA_TINY = {**LLADA_8B, "d_model": 64, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 176,
              "vocab_size": 512, "embedding_size": 512}
SPEED_MODES = (  # label, cache, threshold
    ("exact", "none", None),
    ("prefix", "prefix", None),
    ("dual", "dual", None),
    ("dual + threshold", "dual", THRESHOLD),
)


# ---------------------------------------------------------------------------------------------- device helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def allocated_gib(device: torch.device) -> float | None:
    return torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else None


def gib(value: float | None) -> str:
    return "n/a (cpu)" if value is None else f"{value:.2f} GiB"


def measure(fn: Callable, device: torch.device):
    """``fn()``'s result, wall-clock seconds (synchronised) and peak device memory (GiB; None on the CPU)."""
    sync(device)
    reset_peak(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0, peak_gib(device)


@contextmanager
def built_on(device: torch.device, dtype: torch.dtype):
    """Modules constructed inside are allocated on ``device`` in ``dtype`` directly (an 8B model never exists
    in float32 or on the CPU). srilab's rotary frequencies stay float32 whatever the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(before)


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Clock:
    """The run's time budget: a measurement that would start past it is skipped (and says so)."""

    def __init__(self, budget_s: float):
        self.start = time.perf_counter()
        self.budget_s = budget_s

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.elapsed > self.budget_s


def agree(a: torch.Tensor, b: torch.Tensor) -> float:
    return 100.0 * float((a == b).float().mean()) if a.numel() else 100.0


# ---------------------------------------------------------------------------------------------- (a) golden
@torch.no_grad()
def golden_part(device: torch.device, emit) -> dict:
    from safetensors.torch import load_file

    out: dict = {}
    golden = next((g for g in GOLDEN_PLACES if g.is_dir()), None)
    if golden is None:
        raise FileNotFoundError(f"no golden vectors in {' or '.join(map(str, GOLDEN_PLACES))}")
    for name in ("llada-tiny", "dream-tiny"):
        folder = golden / name
        ref = load_file(str(folder / "forward.safetensors"))
        rows = json.loads((folder / "generate.json").read_text())
        if name == "llada-tiny":
            rows += json.loads((folder / "generate_prompt_masks.json").read_text())
        res: dict = {}
        for dtype in (torch.float32, torch.bfloat16):
            tag = str(dtype).removeprefix("torch.")
            lm = M.load(folder, device=str(device), dtype=dtype)
            captured = []
            handle = lm.final_norm.register_forward_hook(lambda _m, _i, o, c=captured: c.append(o))
            try:
                logits = lm.module(ref["input_ids"].to(device)).logits.float().cpu()
            finally:
                handle.remove()
            hidden = captured[-1].float().cpu()
            ref_logits = ref["logits"]
            diff = (logits - ref_logits).abs().max().item()
            res[tag] = {
                "logits_max_abs_diff": diff,
                "logits_rel_diff": diff / ref_logits.abs().max().item(),
                "argmax_agree_pct": agree(logits.argmax(-1), ref_logits.argmax(-1)),
                "final_hidden_max_abs_diff": (hidden - ref["final_hidden"]).abs().max().item(),
            }
            runs = [_golden_row(lm, row, device) for row in rows]
            decided = [torch.tensor(row["prompt"]) for row in rows]
            exact, same, total = 0, 0, 0
            for row, run, prompt in zip(rows, runs, decided, strict=True):
                want = torch.tensor(row["output"])
                exact += int(run.tolist() == row["output"])
                where = torch.ones_like(want, dtype=torch.bool)  # the positions the sampler decided
                where[:, : prompt.shape[1]] = prompt == row["mask_id"]
                same += int((run[where] == want[where]).sum())
                total += int(where.sum())
            res[tag].update(rows_exact=exact, rows=len(rows), tokens_agree_pct=100.0 * same / max(total, 1))
            if name == "llada-tiny":  # temperature 1, per-row seeds: the noise is float64, the same for both
                res[tag]["sampled"] = [_golden_row(lm, row, device, temperature=1.0) for row in rows[:3]]
        sampled = [agree(a, b) for a, b in zip(res["float32"].pop("sampled", []), res["bfloat16"].pop("sampled", []),
                                               strict=True)]
        if sampled:
            res["temperature1_bf16_vs_fp32_agree_pct"] = float(np.mean(sampled))
        out[name] = res
        f32, b16 = res["float32"], res["bfloat16"]
        emit(f"(a) golden {name} logits on {device.type} vs the reference's float32: float32 max |diff| "
             f"{f32['logits_max_abs_diff']:.2e}, argmax agree {f32['argmax_agree_pct']:.1f}%; bfloat16 max |diff| "
             f"{b16['logits_max_abs_diff']:.2e} (relative {b16['logits_rel_diff']:.2e}), argmax agree "
             f"{b16['argmax_agree_pct']:.1f}%; final-norm state max |diff| float32 "
             f"{f32['final_hidden_max_abs_diff']:.2e}, bfloat16 {b16['final_hidden_max_abs_diff']:.2e}")
        emit(f"(a) golden {name} generate rows reproduced exactly on {device.type} (greedy, reference outputs): "
             f"float32 {f32['rows_exact']}/{f32['rows']} ({f32['tokens_agree_pct']:.1f}% of decided tokens), "
             f"bfloat16 {b16['rows_exact']}/{b16['rows']} ({b16['tokens_agree_pct']:.1f}%)")
        if sampled:
            emit(f"(a) golden {name} at temperature 1 with per-row seeds (Gumbel noise in float64, the same for both"
                 f" dtypes): bfloat16 vs float32 tokens agree {res['temperature1_bf16_vs_fp32_agree_pct']:.1f}%")
    return out


def _golden_row(lm, row: dict, device: torch.device, temperature: float | None = None) -> torch.Tensor:
    prompt = torch.tensor(row["prompt"], device=device)
    if "alg" in row:  # Dream's sampler
        return dream_generate(
            lm.module, prompt, max_new_tokens=row["max_new_tokens"], steps=row["steps"], alg=row["alg"],
            alg_temp=row["alg_temp"], temperature=row["temperature"], eps=row["eps"], mask_id=row["mask_id"],
        ).cpu()
    seeds = list(range(prompt.shape[0])) if temperature else None
    return dlm_sampler.generate(
        lm.module, prompt, steps=row["steps"], gen_length=row["gen_length"], block_length=row["block_length"],
        temperature=row["temperature"] if temperature is None else temperature, cfg_scale=row["cfg_scale"],
        remasking=row["remasking"], mask_id=row["mask_id"], generator=seeds,
    ).cpu()


# ---------------------------------------------------------------------------------------------- (b) diffusion speed
def random_llada(raw: dict, device: torch.device, dtype: torch.dtype, seed: int = 0) -> BidirectionalLM:
    """A LLaDA-format model of the config ``raw`` with N(0, 0.02) weights (norms 1), as LLaDA initialises them,
    allocated and initialised on ``device`` in ``dtype``."""
    cfg = FORMATS["llada"][0](raw)
    with built_on(device, dtype), torch.no_grad():
        module = BidirectionalLM(cfg)
        gen = torch.Generator(device=device).manual_seed(seed)
        for p in module.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02, generator=gen)
    return module.eval()


def wrap(module, kind: str, name: str, mask_id: int | None = None) -> M.LanguageModel:
    """A ``LanguageModel`` over a bare module (no tokenizer), for the tracer."""
    inner = getattr(module, "model", module)
    return M.LanguageModel(module, None, kind, final_norm=inner.norm, layers=inner.layers, name=name, mask_id=mask_id)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def shape_line(raw: dict, params: int) -> str:
    size = f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.2f}M"
    return f"{raw['n_layers']} layers, {raw['d_model']} wide, {size} random parameters"


@torch.no_grad()
def diffusion_part(device, dtype, raw, batches, plen, gen, steps, block, clock, emit) -> dict:
    built, t_build, _ = measure(lambda: random_llada(raw, device, dtype), device)
    module = built
    mask_id = 126336 if raw["vocab_size"] > 126336 else raw["vocab_size"] - 1
    lm = wrap(module, "diffusion", "llada-shaped", mask_id)
    params = n_params(module)
    tag = str(next(module.parameters()).dtype).removeprefix("torch.")
    weights = allocated_gib(device)
    res: dict = {"params": params, "build_s": t_build, "weights_gib": weights, "dtype": tag, "batches": {},
                 "prompt_tokens": plen, "new_tokens": gen, "steps": steps, "block_length": block}
    emit(f"(b) LLaDA-8B-shaped diffusion model ({shape_line(raw, params)}, {tag}, built on {device.type} in "
         f"{t_build:.1f} s, weights {gib(weights)}): {gen} new tokens after {plen} prompt tokens in {steps} steps "
         f"({gen // steps} tokens per step, blocks of {block}); tokens/s = batch x {gen} / wall time; peak memory "
         "includes the weights")
    kw = dict(steps=steps, gen_length=gen, block_length=block, mask_id=mask_id)
    g = torch.Generator().manual_seed(1)
    ids_all = torch.randint(10, mask_id - 10, (max(batches), plen), generator=g).to(device)
    # warm-up: every cache mode once on a short canvas (kernel selection, allocator)
    for _, cache, threshold in SPEED_MODES:
        dlm_sampler.generate(module, ids_all[:1], cache=cache, threshold=threshold,
                             **{**kw, "steps": 2, "gen_length": block, "block_length": block})
    sync(device)
    for batch in batches:
        ids = ids_all[:batch]
        rows: dict = {}
        for label, cache, threshold in SPEED_MODES:
            for trace in (False, True):
                if clock.over():
                    rows.setdefault("skipped", []).append(f"{label}, trace {'on' if trace else 'off'}")
                    continue
                stats: dict = {}
                tracer = Tracer(lm, TraceConfig(), batch) if trace else None

                def run(tracer=tracer, cache=cache, threshold=threshold, stats=stats, ids=ids):
                    with tracer if tracer is not None else nullcontext():
                        return dlm_sampler.generate(module, ids, cache=cache, threshold=threshold, tracer=tracer,
                                                    stats=stats, **kw)

                out, secs, peak = measure(run, device)
                row = {"seconds": secs, "tokens_per_s": batch * gen / secs, "peak_gib": peak,
                       "passes": int(stats["forward_passes"]), "tokens": out[:, plen:].cpu()}
                if tracer is not None:
                    row["sri"] = _sri_check(tracer.result().activations)
                rows[f"{label}|{'on' if trace else 'off'}"] = row
                emit(f"(b)   batch {batch:>2}, {label:<16} trace {'on ' if trace else 'off'}: "
                     f"{row['tokens_per_s']:9.1f} tokens/s, {secs:7.2f} s, {row['passes']:>4} forward passes, "
                     f"peak memory {gib(peak)}")
        res["batches"][batch] = _speed_summary(rows, batch, emit)
    return res


def _sri_check(acts: torch.Tensor) -> dict:
    """The SRI signal on a traced batch, with centres from its first and second halves: finite and in [0, 1]."""
    from srilab.sri.signal import signal

    half = max(1, acts.shape[0] // 2)
    centres = (acts[:half].double().mean(0).numpy(), acts[half:].double().mean(0).numpy()
               if acts.shape[0] > 1 else acts[:1].double().mean(0).numpy() * 0.5)
    s = signal(acts, centres)
    return {"shape": list(acts.shape), "dtype": str(acts.dtype).removeprefix("torch."),
            "signal_ok": bool(np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all())}


def _speed_summary(rows: dict, batch: int, emit) -> dict:
    """Speed-ups over the exact sampler (trace off), trace overheads, and whether tracing changed any token."""
    out = {k: {kk: vv for kk, vv in v.items() if kk != "tokens"} for k, v in rows.items() if k != "skipped"}
    if "skipped" in rows:
        out["skipped"] = rows["skipped"]
        emit(f"(b)   batch {batch:>2}: skipped (over the time budget): {', '.join(rows['skipped'])}")
    exact = rows.get("exact|off")
    speedups, overheads, same = {}, {}, {}
    for label, _, _ in SPEED_MODES:
        off, on = rows.get(f"{label}|off"), rows.get(f"{label}|on")
        if exact and off:
            speedups[label] = exact["seconds"] / off["seconds"]
        if off and on:
            overheads[label] = 100.0 * (on["seconds"] / off["seconds"] - 1.0)
            same[label] = bool(torch.equal(off["tokens"], on["tokens"]))
    sri = [row["sri"] for row in rows.values() if isinstance(row, dict) and "sri" in row]
    out.update(speedup_over_exact=speedups, trace_overhead_pct=overheads, trace_keeps_tokens=same,
               sri_signal_ok=all(s["signal_ok"] for s in sri) if sri else None)
    emit(f"(b)   batch {batch:>2}, speed-up over the exact sampler (trace off): "
         + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items() if k != "exact")
         + "; trace overhead: " + ", ".join(f"{k} {v:+.1f}%" for k, v in overheads.items()))
    emit(f"(b)   batch {batch:>2}, tokens identical with the trace on and off: "
         + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items())
         + f"; SRI signal on the traces ({sri[0]['dtype'] if sri else '-'} "
         f"{'x'.join(map(str, sri[0]['shape'])) if sri else '-'}): "
         + ("finite, in [0, 1]" if out["sri_signal_ok"] else "NOT finite / out of [0, 1]"
            if out["sri_signal_ok"] is not None else "not measured"))
    return out


# ---------------------------------------------------------------------------------------------- (c) AR speed
def random_llama(raw: dict, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A transformers Llama (causal, SDPA attention) with the sizes of the LLaDA config ``raw``, its own
    initialisation (N(0, 0.02), norms 1) run on ``device`` in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=raw["vocab_size"], hidden_size=raw["d_model"], intermediate_size=raw["mlp_hidden_size"],
        num_hidden_layers=raw["n_layers"], num_attention_heads=raw["n_heads"], num_key_value_heads=raw["n_kv_heads"],
        max_position_embeddings=raw["max_sequence_length"], rms_norm_eps=raw["rms_norm_eps"],
        rope_theta=raw["rope_theta"], tie_word_embeddings=False, attn_implementation="sdpa",
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with built_on(device, dtype):
            module = LlamaForCausalLM(config)
    return module.eval()


@torch.no_grad()
def ar_part(device, dtype, raw, batches, plen, gen, clock, emit) -> dict:
    module, t_build, _ = measure(lambda: random_llama(raw, device, dtype), device)
    lm = wrap(module, "ar", "llama-shaped")
    params = n_params(module)
    tag = str(next(module.parameters()).dtype).removeprefix("torch.")
    weights = allocated_gib(device)
    res: dict = {"params": params, "build_s": t_build, "weights_gib": weights, "dtype": tag, "batches": {},
                 "prompt_tokens": plen, "new_tokens": gen}
    emit(f"(c) AR model of the same shape (transformers Llama, {shape_line(raw, params)}, {tag}, built on "
         f"{device.type} in {t_build:.1f} s, weights {gib(weights)}): {gen} new tokens after {plen} prompt tokens, "
         "greedy, KV cache; tokens/s = batch x new tokens / wall time; peak memory includes the weights")
    g = torch.Generator().manual_seed(2)
    ids_all = torch.randint(10, raw["vocab_size"] - 10, (max(batches), plen), generator=g).to(device)
    ar_sampler.generate(module, ids_all[:1], max_new_tokens=4)  # warm-up
    sync(device)
    for batch in batches:
        ids = ids_all[:batch]
        rows: dict = {}
        for trace in (False, True):
            if clock.over():
                rows.setdefault("skipped", []).append(f"trace {'on' if trace else 'off'}")
                continue
            tracer = Tracer(lm, TraceConfig(), batch) if trace else None

            def run(tracer=tracer, ids=ids):
                with tracer if tracer is not None else nullcontext():
                    return ar_sampler.generate(module, ids, max_new_tokens=gen, pad_token_id=0, tracer=tracer)

            out, secs, peak = measure(run, device)
            row = {"seconds": secs, "tokens_per_s": batch * gen / secs, "peak_gib": peak, "tokens": out[:, plen:].cpu()}
            if tracer is not None:
                row["sri"] = _sri_check(tracer.result().activations)
            rows["on" if trace else "off"] = row
            emit(f"(c)   batch {batch:>2}, KV cache, trace {'on ' if trace else 'off'}: {row['tokens_per_s']:9.1f} "
                 f"tokens/s, {secs:7.2f} s, peak memory {gib(peak)}")
        summary = {k: {kk: vv for kk, vv in v.items() if kk != "tokens"} for k, v in rows.items() if k != "skipped"}
        if "skipped" in rows:
            summary["skipped"] = rows["skipped"]
            emit(f"(c)   batch {batch:>2}: skipped (over the time budget): {', '.join(rows['skipped'])}")
        if "on" in rows and "off" in rows:
            summary["trace_overhead_pct"] = 100.0 * (rows["on"]["seconds"] / rows["off"]["seconds"] - 1.0)
            summary["trace_keeps_tokens"] = bool(torch.equal(rows["on"]["tokens"], rows["off"]["tokens"]))
            summary["sri_signal_ok"] = rows["on"]["sri"]["signal_ok"]
            emit(f"(c)   batch {batch:>2}, trace overhead {summary['trace_overhead_pct']:+.1f}%, tokens identical "
                 f"with the trace on and off: {'yes' if summary['trace_keeps_tokens'] else 'NO'}; SRI signal on the "
                 f"trace: {'finite, in [0, 1]' if summary['sri_signal_ok'] else 'NOT finite / out of [0, 1]'}")
        res["batches"][batch] = summary
    return res


# ---------------------------------------------------------------------------------------------- (d) toy demo
def demo_arms(tiny: bool):
    """The demo's (model name, sampler) arms, read from ``srilab/toy/demo.yaml``; ``tiny``: 16 new tokens, not 80."""
    import yaml

    from srilab.sampling import SamplerConfig

    data = yaml.safe_load((Path(srilab.__file__).parent / "toy" / "demo.yaml").read_text(encoding="utf-8"))
    arms = []
    for spec in data["models"]:
        for settings in spec["samplers"]:
            settings = dict(settings)
            if tiny and settings["kind"] == "ar":
                settings["max_new_tokens"] = 16
            elif tiny:
                settings.update(steps=16, gen_length=16)
                if "block_length" in settings:
                    settings["block_length"] = min(settings["block_length"], 16)
            arms.append((spec["name"], SamplerConfig(**settings)))
    return arms


def toy_requests(n: int) -> tuple[list[str], list[bool]]:
    """``n`` benign held-out and ``n`` harmful toy requests (evenly spaced over their sets), and which are harmful."""
    from srilab.toy.corpus import eval_sets
    from srilab.toy.pair import pair_world

    sets = eval_sets(pair_world(), n_reasoning_test=0)
    out, harmful = [], []
    for name, bad in (("benign_direct", False), ("harmful_direct", True)):
        items = sets[name]
        step = max(1, len(items) // n)
        out += [items[i * step % len(items)]["prompt"] for i in range(n)]
        harmful += [bad] * n
    return out, harmful


def load_toy(device: torch.device, dtype: torch.dtype) -> dict[str, M.LanguageModel]:
    """The shipped toy pair on ``device`` in ``dtype`` (its checksums verified on the way)."""
    from srilab.toy.pair import pair_dir
    from srilab.toy.train import verify_checksums

    verify_checksums(pair_dir())
    return {f"toy-{k}": M.load(pair_dir() / k, device=str(device), dtype=dtype) for k in ("ar", "diffusion")}


def _trace_config(sampler, model) -> TraceConfig:
    """The demo's trace: the canvas for diffusion, x0 every 8 steps under LLaDA's schedule (study executor)."""
    diffusion = sampler.kind == "diffusion"
    x0 = diffusion and sampler.schedule_for(model) == "llada"
    return TraceConfig(canvas=diffusion, x0=x0, x0_every=8)


def toy_part(device: torch.device, n: int, tiny: bool, clock: Clock, emit) -> dict:
    from srilab.sri.centres import CentreKey, compute_centres
    from srilab.sri.guard import SRIGuard
    from srilab.sri.online import GuardMonitor
    from srilab.sri.signal import signal

    cpu = torch.device("cpu")
    prompts, harmful = toy_requests(n)
    is_harmful = np.asarray(harmful)
    arms = demo_arms(tiny)
    runs = {"cpu": load_toy(cpu, torch.float32), f"{device.type} float32": load_toy(device, torch.float32),
            f"{device.type} bfloat16": load_toy(device, torch.bfloat16)}
    gens: dict = {}
    res: dict = {"requests": len(prompts), "arms": {}}
    emit(f"(d) toy pair under the demo's samplers, {n} benign + {n} harmful toy requests, traced as the demo traces: "
         f"{device.type} runs against the CPU float32 run, record for record")
    for model_name, sampler in arms:
        if clock.over():
            res.setdefault("skipped", []).append(sampler.label)
            continue
        arm: dict = {}
        for where, models in runs.items():
            lm = models[model_name]

            def run(lm=lm, sampler=sampler):
                return api_generate(lm, prompts, sampler, trace=_trace_config(sampler, lm), batch_size=16)

            gen, secs, _ = measure(run, torch.device(str(lm.device)))
            gens[(sampler.label, where)] = gen
            arm.setdefault("seconds", {})[where] = secs
        base = gens[(sampler.label, "cpu")]
        for where in list(runs)[1:]:
            g = gens[(sampler.label, where)]
            a, b = torch.tensor(base.response_ids), torch.tensor(g.response_ids)
            d = (g.trace.activations - base.trace.activations).abs().max().item()
            scale = base.trace.activations.abs().max().item()
            arm[where] = {"records_identical": int((a == b).all(dim=1).sum()), "records": len(prompts),
                          "tokens_agree_pct": agree(a, b), "texts_identical": sum(
                              x == y for x, y in zip(base.texts, g.texts, strict=True)),
                          "phi_max_abs_diff": d, "phi_rel_diff": d / max(scale, 1e-12)}
        # SRI: centres from the CPU run (benign rows vs harmful rows), its signal against the device traces'
        key = CentreKey(model_name, sampler.key(), "last", "generated", "bench_gpu")
        centres = compute_centres(base.trace.activations, is_harmful, is_harmful, key)
        s_cpu = signal(base.trace.activations, centres)
        guard = SRIGuard(seed=0, options={"epochs": 60} if tiny else {}).fit(s_cpu[~is_harmful])
        flags_cpu = guard.predict(s_cpu)
        for where in list(runs)[1:]:
            s_dev = signal(gens[(sampler.label, where)].trace.activations, centres)
            arm[where].update(signal_max_abs_diff=float(np.abs(s_dev - s_cpu).max()),
                              guard_flags_agree=int((guard.predict(s_dev) == flags_cpu).sum()))
        res["arms"][sampler.label] = arm
        line = ", ".join(
            f"{where}: {arm[where]['records_identical']}/{len(prompts)} records identical "
            f"({arm[where]['tokens_agree_pct']:.1f}% tokens), phi max |diff| {arm[where]['phi_max_abs_diff']:.1e} "
            f"(relative {arm[where]['phi_rel_diff']:.1e}), SRI signal max |diff| "
            f"{arm[where]['signal_max_abs_diff']:.1e}, guard flags agree "
            f"{arm[where]['guard_flags_agree']}/{len(prompts)}"
            for where in list(runs)[1:])
        emit(f"(d)   {sampler.label:<15} vs cpu: {line}")
        # the guard live: a GuardMonitor stops rows during generation, on the CPU and on the device
        if sampler.label in ("ar", "diffusion"):
            fill = s_cpu[~is_harmful].mean(axis=0)
            stops = {}
            for where, models in runs.items():
                if clock.over():
                    break
                monitor = GuardMonitor(centres, guard, fill, every=8)
                gen = api_generate(models[model_name], prompts, sampler, trace=TraceConfig(), monitor=monitor,
                                   batch_size=16)
                stops[where] = gen.meta["stop_steps"]
            if len(stops) == len(runs):
                live = {where: sum(x == y for x, y in zip(stops["cpu"], stops[where], strict=True))
                        for where in list(runs)[1:]}
                arm["live_monitor"] = {"stopped_cpu": sum(s >= 0 for s in stops["cpu"]), "stop_steps_agree": live}
                emit(f"(d)   {sampler.label:<15} guard live (GuardMonitor, every 8 steps): the CPU run stopped "
                     f"{arm['live_monitor']['stopped_cpu']}/{len(prompts)} rows; stop steps agree with it: "
                     + ", ".join(f"{where} {v}/{len(prompts)}" for where, v in live.items()))
    if "skipped" in res:
        emit(f"(d)   skipped (over the time budget): {', '.join(res['skipped'])}")
    if not clock.over():
        res["sampled"] = _sampled_arms(runs, prompts, tiny, emit)
    return res


def _sampled_arms(runs: dict, prompts: list[str], tiny: bool, emit) -> dict:
    """Temperature 0.7 with per-item seeds, AR (top-p 0.9) and diffusion: each run twice where it runs. The
    generators live on the model's device, whose random stream is not the CPU's, so the check is that a device
    reproduces itself, not that it reproduces the CPU."""
    from srilab.sampling import SamplerConfig

    n = 16 if tiny else 80
    samplers = {"toy-ar": SamplerConfig("ar", max_new_tokens=n, temperature=0.7, top_p=0.9),
                "toy-diffusion": SamplerConfig("diffusion", steps=n, gen_length=n, block_length=n // 5 if n % 5 == 0
                                               else n, temperature=0.7)}
    out: dict = {}
    for model_name, sampler in samplers.items():
        for where, models in runs.items():
            first, second = (api_generate(models[model_name], prompts, sampler, batch_size=16).response_ids
                             for _ in range(2))
            out[f"{model_name}|{where}"] = sum(a == b for a, b in zip(first, second, strict=True))
        same = ", ".join(f"{where} {out[f'{model_name}|{where}']}/{len(prompts)}" for where in runs)
        emit(f"(d)   {model_name} sampled (temperature 0.7, per-item seeds), a run repeated with the same seeds gives "
             f"the same records: {same}")
    return out


# ---------------------------------------------------------------------------------------------- main
def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return (f"{torch.cuda.get_device_name(device)}, {p.total_memory / GIB:.0f} GiB, CUDA {torch.version.cuda}, "
                f"bf16 {'supported' if torch.cuda.is_bf16_supported() else 'NOT supported'}, TF32 matmul "
                f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    return f"CPU ({torch.backends.cpu.get_cpu_capability()} kernels), {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, CUDA if present else the CPU (a smoke run)")
    ap.add_argument("--device", default=None, help="cuda (default when present) or cpu (only with --tiny)")
    ap.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip measurements that would start later")
    ap.add_argument("--steps", type=int, default=64, help="(b): denoising steps for the 256 new tokens (default 64)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU is available here: run with --tiny --device cpu for the smoke run",
              file=sys.stderr)
        return 2
    if not (8 <= args.steps <= 256 and args.steps % 8 == 0):
        print(f"bench_gpu: --steps {args.steps}: use a multiple of 8 (the blocks) from 8 to 256", file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.tiny:
        print("bench_gpu: the full run needs a CUDA GPU (none here): use --tiny for the smoke run", file=sys.stderr)
        return 2
    if args.tiny:  # tiny shapes gain nothing from threads, and beside other load spinning threads cost 10x
        torch.set_num_threads(1)
    torch.manual_seed(0)
    clock = Clock(args.budget_s)
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    tiny = args.tiny
    raw = LLADA_TINY if tiny else LLADA_8B
    batches = (1, 4) if tiny else (1, 16)
    plen, gen, steps, block = (8, 32, 8, 8) if tiny else (64, 256, args.steps, 32)
    n_toy = 3 if tiny else 16  # the guard fits on the benign rows: 3 at least
    results: dict = {"device": describe_device(device), "torch": torch.__version__, "tiny": tiny,
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(), "parts": {}, "failed": []}
    emit(f"bench_gpu on {device.type}: {results['device']}; torch {torch.__version__}; time budget "
         f"{args.budget_s:.0f} s" + (TINY_NOTE if tiny else ""))
    parts = {
        "a": ("golden", lambda: golden_part(device, emit)),
        "b": ("diffusion", lambda: diffusion_part(device, torch.bfloat16, raw, batches, plen, gen, steps, block,
                                                  clock, emit)),
        "c": ("ar", lambda: ar_part(device, torch.bfloat16, raw, batches, plen, gen, clock, emit)),
        "d": ("toy", lambda: toy_part(device, n_toy, tiny, clock, emit)),
    }
    laps = {}
    for key in args.parts:
        name, fn = parts[key]
        t0 = time.perf_counter()
        if clock.over():
            emit(f"({key}) skipped: over the time budget")
            continue
        try:
            results["parts"][name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others' figures
            results["failed"].append({"part": key, "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc()})
            emit(f"({key}) FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            traceback.print_exc(file=sys.stderr)
        gc.collect()  # the part's models (16 GB each in the full run) go before the next part builds its own
        free(device)
        laps[key] = time.perf_counter() - t0
    results["seconds"] = {**laps, "total": clock.elapsed}
    emit(f"bench_gpu total {clock.elapsed:.0f} s (" + ", ".join(f"({k}) {v:.0f} s" for k, v in laps.items()) + ")"
         + (f"; FAILED parts: {', '.join(f['part'] for f in results['failed'])}" if results["failed"] else ""))
    results["lines"] = lines
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=_jsonable))
    return 1 if results["failed"] else 0


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
