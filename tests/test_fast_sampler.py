"""The fast diffusion sampler: block-wise KV cache (prefix / dual) and confidence-threshold decoding.

A prefix or dual cache is an approximation for a bidirectional model (cached keys are computed once per
block, before the block's later commits), so these tests check what must hold exactly: a cache refresh is a
full pass; a step pass on an unchanged canvas equals a full pass; with one step per block every step is a
refresh (the cached sampler is the uncached one); a causal model's cached keys are never stale (same tokens).
"""

import numpy as np
import pytest
import torch

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import TraceConfig, Tracer
from srilab.sampling.diffusion import Injection, generate
from srilab.sampling.diffusion_cache import BlockCache
from srilab.sampling.monitor import StopRequest
from srilab.toy.pair import SHIPPED_PAIR

MODES = [("none", None), ("prefix", None), ("dual", None), ("none", 0.9), ("prefix", 0.9), ("dual", 0.9)]


@pytest.fixture(scope="module")
def llada(golden_dir):
    return M.load(golden_dir / "llada-tiny")


@pytest.fixture(scope="module")
def dream(golden_dir):
    return M.load(golden_dir / "dream-tiny")


@pytest.fixture(scope="module")
def toy():
    return M.load(SHIPPED_PAIR / "diffusion")


@pytest.fixture(scope="module")
def toy_ar():
    return M.load(SHIPPED_PAIR / "ar")


@pytest.fixture(scope="module")
def toy_prompts(toy):
    from srilab.toy.corpus import eval_sets
    from srilab.toy.pair import pair_world

    items = eval_sets(pair_world(), n_reasoning_test=0)["benign_direct"]
    return [toy.chat_prompt(it["prompt"]) for it in items]


def _batch(toy, texts):
    return toy.encode(texts)


def _shifted(logits, shift):
    return logits if not shift else torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


# ------------------------------------------------------------------------------------------------ (a) the cache
@pytest.mark.parametrize("name", ["llada", "dream", "toy", "toy_ar"])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("padded", [False, True])
def test_refresh_is_a_full_pass_and_an_unchanged_step_equals_one(request, name, mode, padded):
    model = request.getfixturevalue(name)
    torch.manual_seed(0)
    x = torch.randint(5, 250, (3, 30))
    x[:, 18:] = model.mask_id if model.mask_id is not None else 4
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    mask = mask if padded else None
    shift = model.logits_shift
    cache = BlockCache(model.module, mode, shift)
    with torch.no_grad():
        full = _shifted(model.module(x, attention_mask=mask).logits, shift)[:, 18:24]
        assert torch.equal(cache(x, mask, 18, 24, True), full)  # bit for bit: the first step of every block
        assert torch.equal(cache(x, mask, 18, 24, False), full)  # nothing changed: the cached keys are exact
        assert cache.refreshes == 1 and cache.steps == 1
        x2 = x.clone()
        x2[:, 19] = 7  # a commit inside the block: the cached keys are now stale (bidirectional) or not (causal)
        stale = cache(x2, mask, 18, 24, False)
        fresh = _shifted(model.module(x2, attention_mask=mask).logits, shift)[:, 18:24]
    if name == "toy_ar":
        assert torch.equal(stale, fresh)
    else:
        assert not torch.allclose(stale, fresh, atol=1e-6)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"cfg_scale": 1.5}, {"threshold": 0.002}, {"prompt_masks": "schedule"}, {"temperature": 1.0}],
    ids=["plain", "cfg", "threshold", "schedule", "temperature"],
)
def test_one_step_per_block_makes_every_step_a_refresh(llada, mode, extra):
    g = torch.Generator().manual_seed(5)
    prompt = torch.randint(5, 290, (3, 8), generator=g)
    prompt[1, 2] = prompt[2, 5] = 299  # masks in the prompt compete (and shorten the cached prefix)
    mask = torch.ones_like(prompt)
    mask[0, :2] = 0
    kw = dict(steps=4, gen_length=16, block_length=4, mask_id=299, **extra)
    if "temperature" in kw:
        kw["generator"] = [1, 2, 3]
    stats = {}
    fast = generate(llada.module, prompt, mask, cache=mode, stats=stats, **kw)
    assert stats["full_passes"] == stats["forward_passes"] == 4
    assert torch.equal(fast, generate(llada.module, prompt, mask, **kw))


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("threshold", [None, 0.9])
def test_causal_model_gives_the_uncached_tokens(toy_ar, toy_prompts, mode, threshold):
    ids, mask = toy_ar.encode(toy_prompts[:6])
    kw = dict(steps=32, gen_length=32, block_length=8, mask_id=4, logits_shift=1, threshold=threshold)
    stats = {}
    fast = generate(toy_ar.module, ids, mask, cache=mode, stats=stats, **kw)
    assert stats["full_passes"] == 4 < stats["forward_passes"]
    assert torch.equal(fast, generate(toy_ar.module, ids, mask, **kw))


def test_dream_model_is_cached_with_its_shift(dream):
    prompt = torch.tensor([[110, 119, 53, 140, 4], [49, 211, 136, 77, 239]])
    kw = dict(steps=8, gen_length=16, block_length=8, mask_id=299, logits_shift=1)
    exact = generate(dream.module, prompt, **kw)
    for mode in ("prefix", "dual"):
        out = generate(dream.module, prompt, cache=mode, **kw)
        assert not (out == 299).any()
        assert (out == exact).float().mean() > 0.5


def test_injection_and_remask_refresh_the_cache(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    inj = [Injection(step=3, offset=12, token_ids=(5, 6, 7, 8))]  # into a later block, mid-block
    stats = {}
    out = generate(llada.module, prompt, steps=8, gen_length=16, block_length=8, mask_id=299, injections=inj,
                   cache="dual", stats=stats)
    assert out[0, 17:21].tolist() == [5, 6, 7, 8] and not (out == 299).any()
    assert stats["full_passes"] == 3  # two blocks + the injection step

    class Remask:  # asks once, at step 6 (second block), to take back what was committed since step 1
        action = "remask"

        def after_step(self, step, phi):
            if step != 6:
                return None
            return StopRequest(np.zeros(phi.shape[0], dtype=bool), np.ones(phi.shape[0], dtype=int))

    for mode in ("prefix", "dual"):
        stats = {}
        with Tracer(llada, TraceConfig(), 1, monitor=Remask()) as tr:
            out = generate(llada.module, prompt, steps=12, gen_length=16, block_length=8, mask_id=299,
                           tracer=tr, cache=mode, stats=stats)
        assert tr.remask_counts == [1] and not (out == 299).any()
        assert stats["full_passes"] == 3  # the re-mask reached into the finished first block: a full pass


def test_unsupported_model_and_bad_options(llada):
    class Wrapped(torch.nn.Module):  # hides the native module: the cache cannot reach its attention
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, attention_mask=None):
            return self.inner(x, attention_mask=attention_mask)

    p = torch.tensor([[1, 2, 3]])
    kw = dict(steps=4, gen_length=8, block_length=4, mask_id=299)
    with pytest.raises(SrilabError, match="native LLaDA/Dream module or a transformers decoder"):
        generate(Wrapped(llada.module), p, cache="prefix", **kw)
    with pytest.raises(SrilabError, match="unknown cache"):
        generate(llada.module, p, cache="suffix", **kw)
    with pytest.raises(SrilabError, match="threshold must be a finite number"):
        generate(llada.module, p, threshold=float("nan"), **kw)
    generate(Wrapped(llada.module), p, threshold=0.5, **kw)  # threshold decoding needs no cache support


# ------------------------------------------------------------------------------------------------ (b) the threshold
@pytest.mark.parametrize("steps,block_length", [(16, 16), (16, 4), (8, 4)])
def test_threshold_above_one_is_the_fixed_schedule(llada, toy, toy_prompts, steps, block_length):
    prompt = torch.tensor([[110, 119, 53, 140, 4], [49, 211, 136, 77, 239]])
    kw = dict(steps=steps, gen_length=16, block_length=block_length, mask_id=299)
    assert torch.equal(generate(llada.module, prompt, threshold=1.01, **kw), generate(llada.module, prompt, **kw))
    ids, mask = toy.encode(toy_prompts[:4])
    kw["mask_id"] = toy.mask_id
    assert torch.equal(generate(toy.module, ids, mask, threshold=1.01, **kw), generate(toy.module, ids, mask, **kw))


def test_threshold_commits_every_confident_position_and_at_least_one(toy, toy_prompts):
    ids, mask = toy.encode(toy_prompts[:8])
    plen, thr, block = ids.shape[1], 0.9, 16
    stats = {}
    with Tracer(toy, TraceConfig(canvas=True, x0=True), 8) as tr:
        out = generate(toy.module, ids, mask, steps=80, gen_length=80, block_length=block, mask_id=toy.mask_id,
                       threshold=thr, tracer=tr, stats=stats)
    trace = tr.result()
    canvas, probs, commits = trace.canvas, trace.x0_probs.float(), stats["commits"]
    assert trace.num_steps == 80 and commits.shape == (8, 80) and not (out[:, plen:] == toy.mask_id).any()
    assert int(commits.sum()) == 8 * 80  # every response position committed exactly once
    before = torch.cat([torch.full_like(canvas[:, :1], toy.mask_id), canvas[:, :-1]], dim=1)  # canvas before step t
    for t in range(80):
        lo, hi = (t // block) * block, (t // block + 1) * block
        masked = before[:, t, lo:hi] == toy.mask_id
        now = canvas[:, t, lo:hi] != toy.mask_id
        p = probs[:, t, lo:hi]
        # every masked position of the block at least (float16-rounded) threshold confident is committed now
        assert not (masked & (p >= thr + 1e-2) & ~now).any(), t
        # at least one per step while the block has masks; those below the threshold only as the forced one
        active = masked.any(dim=1)
        assert (commits[:, t][active] >= 1).all(), t
        assert ((commits[:, t] == (masked & now).sum(dim=1)) | ~active).all()
        weak = masked & now & (p < thr - 1e-2)
        assert (weak.sum(dim=1) <= 1).all(), t
    assert stats["forward_passes"] == 80  # an x0 trace needs every step's prediction: every step ran the model
    untraced = {}
    again = generate(toy.module, ids, mask, steps=80, gen_length=80, block_length=block, mask_id=toy.mask_id,
                     threshold=thr, stats=untraced)
    assert torch.equal(again, out) and torch.equal(untraced["commits"], commits)
    assert untraced["forward_passes"] == sum(untraced["block_passes"]) < 80  # blocks ended early
    per_step = commits.sum() / (commits > 0).sum()
    print(f"\ntoy, threshold {thr}: {float(per_step):.2f} tokens per step, {untraced['forward_passes']} passes "
          "for 80 steps")


def test_threshold_with_fewer_steps_commits_at_least_the_schedule(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    stats = {}
    generate(llada.module, prompt, steps=4, gen_length=16, block_length=8, mask_id=299, threshold=0.5, stats=stats)
    assert stats["commits"].tolist() == [[4, 4, 4, 4]]  # nothing confident: exactly the schedule's budget


# ------------------------------------------------------------------------------------------------ (c) tracing
@pytest.mark.parametrize("cache,threshold", MODES)
def test_tracing_works_in_every_mode(toy, toy_prompts, cache, threshold):
    ids, mask = toy.encode(toy_prompts[:3])
    kw = dict(steps=40, gen_length=40, block_length=8, mask_id=toy.mask_id, cache=cache, threshold=threshold)
    with Tracer(toy, TraceConfig(canvas=True, x0=True, x0_every=4), 3) as tr:
        out = generate(toy.module, ids, mask, tracer=tr, **kw)
    trace = tr.result()
    assert trace.activations.shape == (3, 40, 128) and torch.isfinite(trace.activations).all()
    assert trace.canvas.shape == (3, 40, 40) and torch.equal(trace.canvas[:, -1], out[:, ids.shape[1]:])
    assert trace.x0_steps == list(range(0, 40, 4))
    assert torch.equal(out, generate(toy.module, ids, mask, **kw))  # tracing changes nothing
    with Tracer(toy, TraceConfig(), 3) as plain:
        generate(toy.module, ids, mask, tracer=plain, **kw)
    assert torch.allclose(plain.result().activations, trace.activations, atol=1e-5)  # with or without x0
    # the first step of a block is a full pass: the same state as the uncached sampler's first step
    with Tracer(toy, TraceConfig(), 3) as exact:
        generate(toy.module, ids, mask, tracer=exact, **{**kw, "cache": "none"})
    assert torch.allclose(exact.result().activations[:, 0], trace.activations[:, 0], atol=1e-5)


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_threshold_trace_does_not_depend_on_the_batch(toy, toy_prompts, cache):
    texts = toy_prompts[:4]
    kw = dict(steps=48, gen_length=48, block_length=16, mask_id=toy.mask_id, cache=cache, threshold=0.8)
    ids, mask = toy.encode(texts)
    with Tracer(toy, TraceConfig(canvas=True), 4) as tr:
        out = generate(toy.module, ids, mask, tracer=tr, **kw)
    batch = tr.result()
    for row, text in enumerate(texts):
        one_ids, one_mask = toy.encode([text])
        with Tracer(toy, TraceConfig(canvas=True), 1) as tr:
            one = generate(toy.module, one_ids, one_mask, tracer=tr, **kw)
        alone = tr.result()
        assert out[row, -48:].tolist() == one[0, -48:].tolist()
        assert torch.equal(batch.canvas[row], alone.canvas[0])
        assert torch.allclose(batch.activations[row], alone.activations[0], atol=1e-4), row


def test_threshold_with_a_silent_monitor_runs_every_step(toy, toy_prompts):
    class Silent:
        action = "stop"

        def __init__(self):
            self.seen = []

        def after_step(self, step, phi):
            self.seen.append(step)

    ids, mask = toy.encode(toy_prompts[:2])
    kw = dict(steps=32, gen_length=32, block_length=8, mask_id=toy.mask_id, cache="prefix", threshold=0.9)
    silent, stats = Silent(), {}
    with Tracer(toy, TraceConfig(), 2, monitor=silent) as tr:
        out = generate(toy.module, ids, mask, tracer=tr, stats=stats, **kw)
    with Tracer(toy, TraceConfig(), 2) as plain:
        free = {}
        ref = generate(toy.module, ids, mask, tracer=plain, stats=free, **kw)
    assert silent.seen == list(range(32)) and stats["forward_passes"] == 32 > free["forward_passes"]
    assert torch.equal(out, ref)
    assert torch.allclose(tr.result().activations, plain.result().activations, atol=1e-5)


# ------------------------------------------------------------------------------------------------ (d) agreement
def test_agreement_with_the_exact_sampler_on_benign_answers(toy, toy_prompts):
    texts = toy_prompts[:16]
    ids, mask = toy.encode(texts)
    plen = ids.shape[1]
    kw = dict(steps=80, gen_length=80, block_length=16, mask_id=toy.mask_id)
    exact = generate(toy.module, ids, mask, **kw)[:, plen:]
    print()
    for cache, threshold in MODES[1:]:
        stats = {}
        out = generate(toy.module, ids, mask, cache=cache, threshold=threshold, stats=stats, **kw)[:, plen:]
        agree = float((out == exact).float().mean())
        same = int((out == exact).all(dim=1).sum())
        print(f"toy benign ({len(texts)} answers), cache={cache}, threshold={threshold}: {100 * agree:.1f}% tokens "
              f"agree with the exact sampler, {same}/{len(texts)} answers identical, "
              f"{stats['forward_passes']} passes for 80 steps")
        assert agree > 0.3


# ------------------------------------------------------------------------------------------------ threads
def test_choose_threads():
    from srilab.sampling.threads import busy_cpus, choose_threads, set_threads, usable_cpus

    assert choose_threads(env={"SRILAB_THREADS": "3", "OMP_NUM_THREADS": "1"}) == 3
    assert choose_threads(env={"OMP_NUM_THREADS": "2"}) == 2
    assert choose_threads(env={"SRILAB_THREADS": "auto", "OMP_NUM_THREADS": "7"}, cpus=4, busy=1) == 3
    assert choose_threads(env={}, cpus=4, busy=1.4) == 3
    assert choose_threads(env={}, cpus=2, busy=5) == 1  # never fewer than one
    assert choose_threads(env={}, cpus=8, busy=0) == 8
    for bad in ("0", "-2", "many"):
        with pytest.raises(SrilabError, match="SRILAB_THREADS"):
            choose_threads(env={"SRILAB_THREADS": bad})
    assert 1 <= choose_threads(env={}) <= usable_cpus() and busy_cpus(samples=2, interval=0.0) >= 0
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bf16_logits_are_ranked_and_thresholded_in_float32():
    """A model in bf16 (on a GPU) gives bf16 logits: the confidence a rule ranks by and a threshold compares is
    taken in float32 (in bf16 the probability 0.899 would round to 0.8984375 and Fast-dLLM's 0.9, rounded the
    same way, would accept it; and probabilities 8 bits wide tie)."""
    from srilab.sampling.diffusion_rules import confidence

    # one position whose top token has probability 0.899 (just under the threshold), one with 0.95
    logits = torch.tensor([[[0.0, float(np.log(0.899 / 0.101))], [0.0, float(np.log(0.95 / 0.05))]]])
    half = logits.to(torch.bfloat16)
    x0 = half.argmax(-1)
    p = confidence(half, x0, "low_confidence", None, 0)
    assert p.dtype == torch.float32
    assert torch.equal(p, torch.softmax(half.float(), -1).gather(-1, x0[..., None]).squeeze(-1))
    assert (p >= 0.9).tolist() == [[False, True]]
    assert (torch.softmax(half, -1).max(-1).values >= 0.9).tolist() == [[True, True]]  # what bf16 would decide
    # float32 logits are unchanged (the golden runs' arithmetic)
    assert confidence(logits, x0, "low_confidence", None, 0).dtype == torch.float32
