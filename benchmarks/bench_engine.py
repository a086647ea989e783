"""Engine benchmarks: every figure is a ratio of two timings (or a token agreement) measured in this one run.

    python benchmarks/bench_engine.py [--runs 5] [--repeats 10] [--quick] [--json out.json]

1. Trace overhead: diffusion and AR generation (batch 16) with the SRI trace on vs off; and the diffusion
   sampler in every mode (cache none / prefix / dual, fixed schedule / threshold) on the shipped toy pair and
   on the random LLaDA-format model of part 4, at batch 1 and 16: the median of the ratios of alternating
   on/off pairs, its 95% interval and the pairs' range, and the largest median of all (the figure the 2%
   target is about); beside it, the trace's direct cost, the time spent inside its own code (clocked, so
   immune to the machine's noise) over the untraced time.
2. Batched diffusion (batch 32) vs the authors' reference loop: one prompt at a time, all hidden states
   returned and cloned at every step (what their trace-collection code does).
3. AR with KV cache vs recomputing the whole prefix for every one of 64 new tokens.
4. The fast diffusion sampler (``cache="prefix"`` / ``"dual"``, ``threshold=0.9``, Fast-dLLM's default)
   vs the exact batched sampler, on the same prompts: speed ratio, share of response tokens that agree with
   the exact sampler's, forward passes. On the shipped toy diffusion model (trained: its benign answers) and
   on a randomly initialised LLaDA-format model of ~51M parameters built here (random weights predict
   near-uniformly: no position reaches the threshold, and the cache's stale keys flip near-ties, so there
   only the speed ratios mean anything), at batch 1 (one prompt after another) and 16. "cached + threshold"
   is ``cache="dual", threshold=0.9``.
5. A small generation workload (the quick demo's: the toy pair, AR and diffusion, traced, a few dozen
   prompts) idle vs beside a CPU-bound neighbour process (a Python busy loop), with torch's default thread
   count (one per usable CPU) and with :func:`srilab.sampling.threads.choose_threads`.

Parts 1-3 use toy-size Gemma-3 pairs (the toy world's "small" architecture) with seeded random weights;
parts 1 and 4-5 also the shipped toy pair. Nothing is downloaded. ``--quick`` runs every part once on
small inputs (a smoke run: its figures are not results).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

import srilab.models as M
from srilab.models.native import FORMATS, BidirectionalLM
from srilab.sampling import SamplerConfig, TraceConfig, Tracer
from srilab.sampling import autoregressive as ar_sampler
from srilab.sampling import diffusion as dlm_sampler
from srilab.sampling import generate as api_generate
from srilab.sampling.threads import busy_cpus, choose_threads, usable_cpus
from srilab.toy.arch import build_model, toy_config

VOCAB, PAD, BOS, EOS, MASK = 600, 0, 2, 3, 4


def toy_models(root: Path) -> tuple[M.LanguageModel, M.LanguageModel]:
    out = []
    for name, bidirectional in (("ar", False), ("diffusion", True)):
        cfg = toy_config(VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS, mask_id=MASK, bidirectional=bidirectional)
        build_model(cfg, seed=0).save_pretrained(root / name)
        out.append(M.load(root / name))
    return out[0], out[1]


def timeit(fn, repeats: int, warmup: bool = True) -> float:
    """Best of ``repeats`` wall-clock timings: the least disturbed by other load on the machine."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def prompts(n: int, length: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, VOCAB, (n, length), generator=g), torch.ones(n, length, dtype=torch.long)


@torch.no_grad()
def reference_generate(model, prompt, steps: int, gen_length: int, block_length: int, mask_id: int):
    """LLaDA's reference ``generate`` at temperature 0 with low-confidence remasking, as the authors run it:
    softmax and argmax over the whole canvas, one ``topk`` per row."""
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt.clone()
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for num_block in range(num_blocks):
        lo = prompt.shape[1] + num_block * block_length
        block_mask_index = x[:, lo : lo + block_length] == mask_id
        num_transfer = dlm_sampler.get_num_transfer_tokens(block_mask_index, steps_per_block)
        for i in range(steps_per_block):
            mask_index = x == mask_id
            logits = model(x).logits
            x0 = torch.argmax(logits, dim=-1)
            p = torch.nn.functional.softmax(logits, dim=-1)
            x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, lo + block_length :] = -float("inf")
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -float("inf"))
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select = torch.topk(confidence[j], k=int(num_transfer[j, i]))
                transfer_index[j, select] = True
            x[transfer_index] = x0[transfer_index]
    return x


class FullLogits(torch.nn.Module):
    """Hides ``logits_to_keep``: the sampler then computes logits for the whole canvas, as the reference does."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, attention_mask=None):
        return self.inner(x, attention_mask=attention_mask)


def reference_loop(module, ids: torch.Tensor, steps: int, gen_length: int, block_length: int) -> list:
    """The authors' reference pattern: one prompt at a time, every hidden state cloned at every step."""

    class Cloning(torch.nn.Module):
        def __init__(self, inner, states: list):
            super().__init__()
            self.inner, self.states = inner, states

        def forward(self, x, attention_mask=None):
            out = self.inner(x, attention_mask=attention_mask, output_hidden_states=True)
            self.states.append([h.clone() for h in out.hidden_states])
            return out

    kept = []
    for i in range(ids.shape[0]):
        states: list = []
        reference_generate(Cloning(module, states), ids[i : i + 1], steps, gen_length, block_length, MASK)
        kept.append(states)
    return kept


THRESHOLD = 0.9  # Fast-dLLM's default
FAST_MODES = (  # label, cache, threshold
    ("cache=prefix", "prefix", None),
    ("cache=dual", "dual", None),
    ("threshold", "none", THRESHOLD),
    ("cache=prefix + threshold", "prefix", THRESHOLD),
    ("cache=dual + threshold", "dual", THRESHOLD),
)
TRACE_MODES = (("exact", "none", None), *FAST_MODES)


def random_llada(quick: bool) -> tuple[BidirectionalLM, int]:
    """A LLaDA-format model (its ``config.json`` fields, mapped by the native loader) with seeded N(0, 0.02)
    weights, as LLaDA initialises them: ~51M parameters, 12 layers of d 512 and a 12k vocabulary, so that, as in
    LLaDA-8B, the layers and not the LM head dominate a pass (tiny in quick mode)."""
    raw = {"model_type": "llada", "d_model": 512, "n_heads": 8, "n_kv_heads": 8, "n_layers": 12,
           "mlp_hidden_size": 1408, "vocab_size": 12288, "embedding_size": 12288, "rope_theta": 500000.0,
           "rms_norm_eps": 1e-5, "weight_tying": False, "max_sequence_length": 4096}
    if quick:
        raw.update(d_model=128, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=352, vocab_size=4000,
                   embedding_size=4000)
    cfg = FORMATS["llada"][0](raw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = BidirectionalLM(cfg)
        for p in module.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
    return module.eval(), cfg.vocab_size - 1  # the last row serves as the mask token


def toy_pair_prompts(model: M.LanguageModel, n: int) -> list[str]:
    """The toy world's benign held-out requests (the quick demo's kind of prompt), chat-formatted."""
    from srilab.toy.corpus import eval_sets
    from srilab.toy.pair import pair_world

    items = eval_sets(pair_world(), n_reasoning_test=0)["benign_direct"]
    return [model.chat_prompt(items[i % len(items)]["prompt"]) for i in range(n)]


def compare_fast(module, ids, mask, batch: int, rounds: int, **kw) -> dict:
    """Every fast mode vs the exact sampler on the prompts ``ids`` [N, P], in batches of ``batch`` (one prompt
    after another at batch 1): best-of-rounds time ratio (each round runs every mode once, so drifting load
    hits all alike; the first round's tokens are compared), share of response tokens equal to the exact
    sampler's, forward passes per batch."""
    plen = ids.shape[1]

    def run(cache="none", threshold=None, passes=None, ids=ids, mask=mask):
        outs = []
        for lo in range(0, ids.shape[0], batch):
            one = {}
            outs.append(dlm_sampler.generate(module, ids[lo : lo + batch], mask[lo : lo + batch], cache=cache,
                                             threshold=threshold, stats=one, **kw))
            if passes is not None:
                passes.append(one["forward_passes"])
        return torch.cat(outs)[:, plen:]

    for cache, threshold in (("none", None), ("dual", THRESHOLD)):  # warm-up, on one prompt
        run(cache, threshold, ids=ids[:1], mask=mask[:1])
    modes = (("exact", "none", None), *FAST_MODES)
    times: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    outs, passes = {}, {}
    for r in range(rounds):
        for label, cache, threshold in modes:
            counted: list[int] = []
            t0 = time.perf_counter()
            out = run(cache, threshold, counted)
            times[label].append(time.perf_counter() - t0)
            if r == 0:
                outs[label], passes[label] = out, statistics.mean(counted)
    t_exact = min(times["exact"])
    return {
        label: {
            "speedup": t_exact / min(times[label]),
            "agree_pct": 100.0 * float((outs[label] == outs["exact"]).float().mean()),
            "passes": passes[label],
        }
        for label, _, _ in FAST_MODES
    } | {"exact": {"seconds": t_exact, "passes": passes["exact"]}}


def traced(model: M.LanguageModel, batch: int, trace: bool, sample) -> None:
    """``sample(tracer)`` with a fresh :class:`Tracer` on ``model`` (``None`` when not ``trace``), ending with the
    finished trace, as a study's run does (``Tracer.result()`` completes the steps' pooling)."""
    tracer = Tracer(model, TraceConfig(), batch) if trace else None
    with tracer if tracer else nullcontext():
        sample(tracer)
    if tracer:
        tracer.result()


#: Seconds spent inside the trace's own code (see :func:`clock_trace`), summed since the last reset.
TRACE_CLOCK = [0.0]


def clock_trace() -> None:
    """Wrap the trace's own code -- the tracer's set-up, forward hook, per-step recording and padding and the
    finished trace (``result``), and the block cache's two hooks that complete a cached step's state for it --
    so that the time spent in it adds up in :data:`TRACE_CLOCK`. That is the trace's direct cost, timed to the
    microsecond whatever the machine's noise; what it leaves out is indirect (PyTorch's slower module call once a
    hook is registered, ~15 us a pass here, and the cache a step's extra tensors take), which only the on/off
    wall-clock ratio sees."""
    from srilab.sampling.diffusion_cache import BlockCache

    def clocked(fn):
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                TRACE_CLOCK[0] += time.perf_counter() - t0
        inner.clocked = True
        return inner

    for owner, names in ((Tracer, ("__init__", "_hook", "record_diffusion", "repeat_last", "__enter__", "__exit__",
                                   "result")),
                         (BlockCache, ("_complete", "_restore"))):
        for name in names:
            if not getattr(getattr(owner, name), "clocked", False):
                setattr(owner, name, clocked(getattr(owner, name)))


@dataclass(frozen=True)
class Overhead:
    """One sampling mode's trace overhead, in % (traced / untraced - 1)."""

    median: float  # the median of the per-pair wall-clock ratios
    low: float  # the smallest and largest per-pair ratio
    high: float
    ci: tuple[float, float]  # the median's distribution-free 95% interval (order statistics)
    pairs: int
    direct: float  # the time inside the trace's own code over the untraced time (see clock_trace)


def median_interval(xs: list[float], level: float = 0.95) -> tuple[float, float]:
    """The distribution-free interval for the median of ``xs``: order statistics x_(j) .. x_(n+1-j), with the
    largest j whose Binomial(n, 1/2) tails leave at least ``level`` between them (the whole range when n is too
    small for that)."""
    xs, n = sorted(xs), len(xs)
    j = 0  # 0-based rank of the lower bound
    while j + 1 < n - j - 1 and 2 * sum(math.comb(n, i) for i in range(j + 2)) / 2**n <= 1 - level:
        j += 1
    return xs[j], xs[n - 1 - j]


def trace_overhead_modes(model: M.LanguageModel, ids, mask, pair_s: float, min_pairs: int, max_pairs: int,
                         **kw) -> dict[str, Overhead]:
    """Every sampling mode's trace overhead on the prompts ``ids``.

    Wall clock: untraced and traced generations alternate in pairs (the order flipping every pair), as many pairs
    as fill ``pair_s`` seconds (between ``min_pairs`` and ``max_pairs``); the overhead is the median of the
    per-pair ratios, printed with its distribution-free 95% interval and the pairs' range, so that what this
    machine's noise leaves unresolved shows (pairing cancels a load that drifts over seconds, not one within a
    pair: on a shared 2-core VM one run can be 20-30% slower than the next). Direct: the time inside the trace's
    own code (:func:`clock_trace`) in the traced runs over the untraced time, the best of each side."""
    out = {}
    for label, cache, threshold in TRACE_MODES:
        def run(trace: bool, cache=cache, threshold=threshold) -> float:
            TRACE_CLOCK[0] = 0.0
            t0 = time.perf_counter()
            traced(model, ids.shape[0], trace, lambda tracer: dlm_sampler.generate(
                model.module, ids, mask, cache=cache, threshold=threshold, tracer=tracer, **kw))
            return time.perf_counter() - t0

        run(False)  # warm-up
        one = run(True)
        n = min(max_pairs, max(min_pairs, math.ceil(pair_s / (2 * one))))
        ratios, untraced, in_trace = [], [], []
        for i in range(n):
            times = {}
            for flag in (False, True) if i % 2 == 0 else (True, False):
                times[flag] = run(flag)
                if flag:
                    in_trace.append(TRACE_CLOCK[0])
            untraced.append(times[False])
            ratios.append(100.0 * (times[True] / times[False] - 1.0))
        out[label] = Overhead(statistics.median(ratios), min(ratios), max(ratios), median_interval(ratios), n,
                              100.0 * min(in_trace) / min(untraced))
    return out


def native_lm(module: BidirectionalLM, mask_id: int, name: str) -> M.LanguageModel:
    """A LanguageModel over a native module built here (no tokenizer: the benchmark feeds token ids)."""
    return M.LanguageModel(module=module, tokenizer=None, kind="diffusion", final_norm=module.norm,
                           layers=module.layers, name=name, mask_id=mask_id)


def neighbour_slowdown(ar: M.LanguageModel, dlm: M.LanguageModel, n_prompts: int, length: int, rounds: int) -> dict:
    """The quick demo's kind of workload (toy pair, AR and diffusion with the demo's samplers, traced, batch 16)
    idle vs beside a CPU-bound neighbour (a Python busy loop in a subprocess), at torch's default thread count
    and at ``choose_threads``'s. Idle and adapted runs are best of ``rounds``; the crowded one runs once."""
    prompts_ = toy_pair_prompts(dlm, n_prompts)
    samplers = [(ar, SamplerConfig("ar", max_new_tokens=length)),
                (dlm, SamplerConfig("diffusion", steps=length, gen_length=length, block_length=length // 5))]

    def workload():
        for model, sampler in samplers:
            api_generate(model, prompts_, sampler, trace=TraceConfig(), batch_size=16)

    before = torch.get_num_threads()
    default = usable_cpus()  # torch's own default: one thread per usable CPU
    try:
        torch.set_num_threads(default)
        workload()  # warm-up
        idle = min(timeit(workload, 1, warmup=False) for _ in range(rounds))
        neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)  # let the scheduler see it
            chosen = choose_threads(env={})  # from the machine alone, not from OMP_NUM_THREADS / SRILAB_THREADS
            busy = busy_cpus()
            crowded = timeit(workload, 1, warmup=False)
            torch.set_num_threads(chosen)
            adapted = min(timeit(workload, 1, warmup=False) for _ in range(rounds))
        finally:
            neighbour.kill()
            neighbour.wait()
    finally:
        torch.set_num_threads(before)
    return {"default_threads": default, "chosen_threads": chosen, "busy_cpus_seen": busy, "idle_s": idle,
            "neighbour_default_ratio": crowded / idle, "neighbour_chosen_ratio": adapted / idle}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="every part once on small inputs (a smoke run)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 1
    torch.manual_seed(0)
    started = time.perf_counter()
    results: dict[str, float] = {}
    parts: dict[str, float] = {}

    def lap(name: str) -> None:
        parts[name] = time.perf_counter() - started - sum(parts.values())
        print(f"[{name}: {parts[name]:.0f} s]", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ar, dlm = toy_models(Path(tmp))
        steps = gen = 32
        block = 8

        # 1. trace overhead, batch 16
        ids, mask = prompts(16)

        def dlm_run(trace: bool):
            traced(dlm, 16, trace, lambda tracer: dlm_sampler.generate(
                dlm.module, ids, mask, steps=steps, gen_length=gen, block_length=block, mask_id=MASK, tracer=tracer))

        def ar_run(trace: bool):
            traced(ar, 16, trace, lambda tracer: ar_sampler.generate(
                ar.module, ids, mask, max_new_tokens=gen, pad_token_id=PAD, tracer=tracer))

        # Interleave on/off runs so drifting machine load hits both alike.
        # On/off runs alternate, and the overhead is the median of the per-round ratios: robust to the drifts of
        # a shared machine. An AR run is ~50 ms here, so it gets more rounds.
        for name, fn, rounds in (("diffusion", dlm_run, 2 * args.repeats), ("ar", ar_run, 6 * args.repeats)):
            on, off = [], []
            fn(False)
            fn(True)
            for i in range(rounds):
                first, second = (False, True) if i % 2 == 0 else (True, False)
                a = timeit(lambda fn=fn, f=first: fn(f), 1, warmup=False)
                b = timeit(lambda fn=fn, f=second: fn(f), 1, warmup=False)
                off.append(a if not first else b)
                on.append(b if not first else a)
            results[f"{name}_untraced_s"] = min(off)
            results[f"{name}_traced_s"] = min(on)
            ratio = statistics.median(t_on / t_off for t_on, t_off in zip(on, off, strict=True))
            results[f"{name}_trace_overhead_pct"] = 100.0 * (ratio - 1.0)

        lap("1 trace overhead")

        # 2. batched diffusion (32) vs the one-at-a-time cloning loop, per prompt
        n_ref = 8 if args.quick else 32
        ids32, mask32 = prompts(n_ref, seed=1)
        reps = max(1, args.repeats // 2)
        # Interleaved rounds, best of each: the allocator and caches are in the same state for both.
        batched, reference = [], []
        for _ in range(max(2, args.repeats // 3)):
            reference.append(timeit(lambda: reference_loop(dlm.module, ids32, steps, gen, block), 1, warmup=False))
            batched.append(timeit(lambda: dlm_sampler.generate(dlm.module, ids32, mask32, steps=steps, gen_length=gen,
                                                               block_length=block, mask_id=MASK), 2))
        t_batched, t_ref = min(batched), min(reference)
        # The baseline is faithful: one prompt at a time, with the same full-canvas logits, it commits exactly
        # the tokens our sampler commits. (Block-only logits or another batch size may change the last float
        # bits, and with random weights near-ties are common, so the check compares like with like; torch.topk
        # may still break an exact tie differently in a block-long and a canvas-long vector.)
        ours = torch.cat([dlm_sampler.generate(FullLogits(dlm.module), ids32[i : i + 1], steps=steps, gen_length=gen,
                                               block_length=block, mask_id=MASK) for i in range(n_ref)])
        theirs = torch.cat([reference_generate(dlm.module, ids32[i : i + 1], steps, gen, block, MASK)
                            for i in range(n_ref)])
        results["diffusion_prompts_same_tokens_as_reference"] = int((ours == theirs).all(dim=1).sum())
        results["diffusion_batched_per_prompt_s"] = t_batched / n_ref
        results["diffusion_reference_per_prompt_s"] = t_ref / n_ref
        results["diffusion_batched_speedup"] = t_ref / t_batched

        lap("2 batched vs reference loop")

        # 3. AR: KV cache vs full recompute, 64 new tokens
        t_cache = timeit(lambda: ar_sampler.generate(ar.module, ids, mask, max_new_tokens=64, pad_token_id=PAD), reps)
        t_nocache = timeit(
            lambda: ar_sampler.generate(ar.module, ids, mask, max_new_tokens=64, pad_token_id=PAD, use_cache=False),
            reps,
        )
        results["ar_kv_cache_s"] = t_cache
        results["ar_recompute_s"] = t_nocache
        results["ar_kv_cache_speedup"] = t_nocache / t_cache
        lap("3 AR KV cache")

    # 1b, 4, 5: the shipped toy pair (trained weights) and a random LLaDA-format model
    from srilab.toy.pair import load_pair

    pair_ar, pair_dlm = load_pair()
    n_toy = 8 if args.quick else 32
    toy_kw = dict(steps=80, gen_length=80, block_length=16, mask_id=pair_dlm.mask_id)
    if args.quick:
        toy_kw.update(steps=32, gen_length=32, block_length=8)
    toy_ids, toy_mask = pair_dlm.encode(toy_pair_prompts(pair_dlm, n_toy))

    # 1b. trace overhead in every mode: the shipped toy pair's diffusion model and the random LLaDA-format model,
    # batch 1 and 16 (the LLaDA model is built here, before part 4 uses it too)
    llada, llada_mask_id = random_llada(args.quick)
    llada_params = sum(p.numel() for p in llada.parameters())
    llada_name = f"llada-random-{llada_params / 1e6:.0f}M"
    g = torch.Generator().manual_seed(2)
    n_llada, llada_plen = (4, 8) if args.quick else (16, 16)
    l_ids = torch.randint(10, llada_mask_id - 10, (n_llada, llada_plen), generator=g)
    l_mask = torch.ones_like(l_ids)
    llada_kw = dict(steps=24, gen_length=24, block_length=8, mask_id=llada_mask_id)
    if args.quick:
        llada_kw.update(steps=16, gen_length=16, block_length=8)
    llada_lm = native_lm(llada, llada_mask_id, llada_name)
    # Pairs of runs fill ``pair_s`` seconds a mode (5 to 30 pairs; one in a smoke run).
    pair_s, min_pairs, max_pairs = (0.0, 1, 1) if args.quick else (args.repeats * 0.8, 5, 30)
    overhead: dict[str, dict[str, Overhead]] = {}
    # The 51M model's overhead is read over one block of 8 steps (part 4 times 24): a ratio per step (the trace's
    # fixed costs weigh more in a shorter run, if anything), and a batch-16 run of it is the benchmark's longest.
    llada_trace_kw = {**llada_kw, "steps": 8, "gen_length": 8}
    clock_trace()
    for where, lm, i, m, kw in (("toy-diffusion", pair_dlm, toy_ids, toy_mask, toy_kw),
                                (llada_name, llada_lm, l_ids, l_mask, llada_trace_kw)):
        for batch in (16, 1):
            overhead[f"{where}, batch {batch}"] = trace_overhead_modes(lm, i[:batch], m[:batch], pair_s, min_pairs,
                                                                       max_pairs, **kw)
    for where, modes in overhead.items():
        for label, o in modes.items():
            results[f"trace_overhead_pct[{where}][{label}]"] = o.median
            results[f"trace_overhead_range_pct[{where}][{label}]"] = [o.low, o.high]
            results[f"trace_overhead_interval_pct[{where}][{label}]"] = list(o.ci)
            results[f"trace_overhead_pairs[{where}][{label}]"] = o.pairs
            results[f"trace_direct_pct[{where}][{label}]"] = o.direct
    lap("1b trace overhead per mode")

    # 4. fast sampler vs exact, batch 1 (one prompt after another) and 16
    fast: dict[str, dict] = {}
    toy_rounds = max(1, args.repeats // 5)
    fast["toy-diffusion, batch 16"] = compare_fast(pair_dlm.module, toy_ids, toy_mask, 16, toy_rounds, **toy_kw)
    fast["toy-diffusion, batch 1"] = compare_fast(pair_dlm.module, toy_ids[:4], toy_mask[:4], 1, toy_rounds, **toy_kw)
    lap("4 fast sampler, toy")
    fast[f"{llada_name}, batch 16"] = compare_fast(llada, l_ids, l_mask, 16, 1, **llada_kw)
    fast[f"{llada_name}, batch 1"] = compare_fast(llada, l_ids[:2], l_mask[:2], 1, 1, **llada_kw)
    lap("4 fast sampler, random LLaDA")
    for where, rows in fast.items():
        for label, row in rows.items():
            for key, value in row.items():
                results[f"fast[{where}][{label}]_{key}"] = value

    # 5. a small workload idle vs beside a CPU-bound neighbour
    n_work, work_len = (8, 30) if args.quick else (32, 80)
    neighbour = neighbour_slowdown(pair_ar, pair_dlm, n_work, work_len, 1 if args.quick else 2)
    results.update({f"neighbour_{k}": v for k, v in neighbour.items()})
    lap("5 neighbour")
    results["total_s"] = time.perf_counter() - started

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {usable_cpus()} usable CPUs"
          f"{'  [--quick: a smoke run, not results]' if args.quick else ''}")
    print("toy 'small' Gemma-3 pair (random weights):")
    print(f"trace overhead, diffusion (batch 16, {steps} steps): {results['diffusion_trace_overhead_pct']:+.2f}%")
    print(f"trace overhead, AR (batch 16, {gen} tokens):        {results['ar_trace_overhead_pct']:+.2f}%")
    print(f"diffusion batched ({n_ref}) vs reference loop, per prompt: {results['diffusion_batched_speedup']:.1f}x "
          f"faster (same tokens as the reference on {results['diffusion_prompts_same_tokens_as_reference']}/{n_ref}"
          " prompts)")
    print(f"AR KV cache vs recompute (64 new tokens):             {results['ar_kv_cache_speedup']:.1f}x faster")
    print(f"shipped toy pair; {llada_name}: a LLaDA-format model, {llada_params / 1e6:.1f}M random parameters;"
          f" threshold {THRESHOLD}:")
    print(f"trace overhead per mode (toy: {toy_kw['steps']} steps; {llada_name}: {llada_trace_kw['steps']} steps), "
          "traced / untraced - 1: wall clock, the median of n alternating pairs (its 95% interval; the pairs' range), "
          "then the direct cost: the time inside the trace's own code over the untraced time:")
    for where, modes in overhead.items():
        print(f"  {where}")
        for label, o in modes.items():
            print(f"    {label:<26} {o.median:+5.1f}% ({o.ci[0]:+.1f}, {o.ci[1]:+.1f}; range {o.low:+.1f}, "
                  f"{o.high:+.1f}; n {o.pairs:>2})   direct {o.direct:.2f}%")
    worst = max(o.median for modes in overhead.values() for o in modes.values())
    worst_direct = max(o.direct for modes in overhead.values() for o in modes.values())
    print(f"trace overhead, largest median over every mode, model and batch: {worst:+.2f}% wall clock, "
          f"{worst_direct:.2f}% direct")
    results["trace_overhead_worst_median_pct"] = worst
    results["trace_direct_worst_median_pct"] = worst_direct
    for where, rows in fast.items():
        kw = toy_kw if where.startswith("toy") else llada_kw
        print(f"fast sampler vs exact ({where}; {kw['steps']} steps, block {kw['block_length']}; "
              f"exact: {rows['exact']['passes']} passes):")
        for label, _, _ in FAST_MODES:
            row = rows[label]
            print(f"  {label:<26} {row['speedup']:5.2f}x faster, {row['agree_pct']:5.1f}% tokens agree, "
                  f"{row['passes']:.1f} passes")
    for where, rows in fast.items():
        if where.endswith("batch 16"):
            row = rows["cache=dual + threshold"]
            model_name = where.split(",")[0]
            print(f"cached + threshold vs batched sampler ({model_name}, batch 16): {row['speedup']:.1f}x, "
                  f"{row['agree_pct']:.1f}% tokens agree")
    print(f"generation beside a CPU-bound neighbour (toy pair, AR + diffusion, traced, {n_work} prompts, {work_len} "
          f"tokens): {neighbour['neighbour_default_ratio']:.2f}x the idle time at {neighbour['default_threads']} "
          f"threads (torch's default), {neighbour['neighbour_chosen_ratio']:.2f}x at "
          f"{neighbour['chosen_threads']} (choose_threads; {neighbour['busy_cpus_seen']:.0f} busy CPUs seen)")
    print(f"benchmark total: {results['total_s']:.0f} s ("
          + ", ".join(f"{name} {secs:.0f} s" for name, secs in parts.items()) + ")")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


#: The headline ratios whose range over runs ``--runs N`` prints: (label, the result key's start and end).
HEADLINES = (
    ("trace overhead, largest median over every mode, model and batch (%)", "trace_overhead_worst_median_pct", ""),
    ("trace overhead, direct, largest median over every mode, model and batch (%)", "trace_direct_worst_median_pct",
     ""),
    ("trace overhead, diffusion, random toy model (%)", "diffusion_trace_overhead_pct", ""),
    ("trace overhead, AR, random toy model (%)", "ar_trace_overhead_pct", ""),
    ("diffusion batched vs reference loop (x)", "diffusion_batched_speedup", ""),
    ("AR KV cache vs recompute (x)", "ar_kv_cache_speedup", ""),
    ("cached + threshold vs exact, toy, batch 16 (x)", "fast[toy-diffusion, batch 16][cache=dual + threshold]_speedup",
     ""),
    ("cached + threshold vs exact, random LLaDA, batch 16 (x)", "fast[llada-random", "batch 16][cache=dual + threshold]"
     "_speedup"),
    ("beside a busy neighbour, default threads (x idle)", "neighbour_default_ratio", ""),
    ("beside a busy neighbour, choose_threads (x idle)", "neighbour_chosen_ratio", ""),
)


def over_runs(argv: list[str] | None = None) -> list[dict]:
    """``--runs N`` (default 1): the whole benchmark N times back to back, then each headline ratio's first
    value and its range over the N runs (what the README quotes). ``--json F``: every run's results, a list
    of them when N > 1."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    known, rest = ap.parse_known_args(argv)
    if known.runs < 1:
        raise SystemExit(f"--runs must be at least 1, got {known.runs}")
    runs = []
    for i in range(known.runs):
        if known.runs > 1:
            print(f"== run {i + 1} of {known.runs}", flush=True)
        runs.append(main(rest))
    if known.runs > 1:
        print(f"== the headline ratios over {known.runs} runs: first run, [min, max]")
        for label, start, end in HEADLINES:
            keys = [k for k in runs[0] if k.startswith(start) and k.endswith(end)]
            if not keys:
                continue
            values = [r[keys[0]] for r in runs]
            print(f"{label:<72} {values[0]:8.2f}  [{min(values):.2f}, {max(values):.2f}]")
    if known.json is not None:  # every run's results (one run: its results alone)
        known.json.write_text(json.dumps(runs if known.runs > 1 else runs[0], indent=2))
    return runs


if __name__ == "__main__":
    sys.exit(0 if over_runs() else 1)
