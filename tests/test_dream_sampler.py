"""Dream's own sampler (`srilab.sampling.dream`): golden parity with Dream's `_sample`, padded batches,
per-row seeds, the sampled distribution, tracing, live monitors and injections."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import srilab.models as M
from dream_oracle import dream_oracle
from srilab import SrilabError
from srilab.sampling import TraceConfig, Tracer
from srilab.sampling.diffusion import Injection
from srilab.sampling.dream import dream_count, dream_generate, sample_tokens
from srilab.sampling.monitor import StopRequest

MASK, PAD = 299, 297


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The model is tiny: on a shared, loaded machine torch's thread pool only adds waiting (10x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dream(golden_dir):
    return M.load(golden_dir / "dream-tiny")


@pytest.fixture(scope="module")
def golden_rows(golden_dir):
    return json.loads((golden_dir / "dream-tiny" / "generate.json").read_text())


def _run(module, row, **kw):
    return dream_generate(
        module, torch.tensor(row["prompt"]), max_new_tokens=row["max_new_tokens"], steps=row["steps"],
        alg=row["alg"], alg_temp=row["alg_temp"], temperature=row["temperature"], eps=row["eps"],
        mask_id=row["mask_id"], **kw,
    )


class _FullLogitsOnly(torch.nn.Module):
    """The module without ``logits_to_keep``: the sampler then computes every position's logits."""

    def __init__(self, module):
        super().__init__()
        self.inner = module

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return self.inner(input_ids, attention_mask=attention_mask, position_ids=position_ids)


class _Sharpened(torch.nn.Module):
    """The tiny model's logits times ``scale``: its random weights predict almost uniformly (entropy within
    0.002 nats of log V), too flat for a distribution test to tell right from wrong."""

    def __init__(self, module, scale: float):
        super().__init__()
        self.inner, self.scale = module, scale

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        out = self.inner(input_ids, attention_mask=attention_mask, position_ids=position_ids)
        out.logits = out.logits * self.scale
        return out


# ------------------------------------------------------------------------------------------------ golden parity
GOLDEN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import srilab.models as M
    from srilab.sampling.dream import dream_generate
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from dream_oracle import dream_oracle
    root = Path(sys.argv[1])
    model = M.load(root)
    rows = json.loads((root / "generate.json").read_text())
    result = {"capability": torch.backends.cpu.get_cpu_capability(), "reference": [], "seeded": [], "oracle": []}
    for row in rows:
        prompt = torch.tensor(row["prompt"])
        kw = dict(max_new_tokens=row["max_new_tokens"], steps=row["steps"], alg=row["alg"],
                  alg_temp=row["alg_temp"], temperature=row["temperature"], eps=row["eps"], mask_id=row["mask_id"])
        result["reference"].append(dream_generate(model.module, prompt, **kw).tolist() == row["output"])
        seeds = list(range(len(prompt)))
        result["seeded"].append(dream_generate(model.module, prompt, generator=seeds, **kw).tolist() == row["output"])
        oracle_kw = {k: v for k, v in kw.items() if k != "alg_temp"}
        result["oracle"].append(dream_oracle(model.module, row["prompt"], **oracle_kw) == row["output"])
    print(json.dumps(result))
    """
)


def test_reproduces_every_reference_output_with_avx2_kernels(golden_dir, golden_rows):
    """Every golden row, token for token. The tiny model predicts almost uniformly, so under ``entropy``
    the confidences of many positions agree to one float32 ulp and the reference's choice among them is
    decided by the CPU kernels' rounding: the golden runs were made with torch's AVX2 kernels, which an
    AVX-512 machine uses when asked (ATEN_CPU_CAPABILITY, read once per process: hence a subprocess)."""
    assert {r["alg"] for r in golden_rows} == {"maskgit_plus", "topk_margin", "entropy"}
    assert any((torch.tensor(r["prompt"]) == MASK).any() for r in golden_rows)  # masks inside a prompt
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", GOLDEN_SCRIPT, str(golden_dir / "dream-tiny"), str(Path(__file__).parent)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["capability"] != "AVX2":
        pytest.skip(f"this CPU cannot run torch's AVX2 kernels (got {result['capability']})")
    assert result["reference"] == [True] * len(golden_rows)
    assert result["seeded"] == [True] * len(golden_rows)  # deterministic settings: seeds change nothing
    assert result["oracle"] == [True] * len(golden_rows)  # the oracle below is checked here first


def test_reproduces_reference_outputs_in_process(dream, golden_rows):
    """In this process's kernels: the rows whose choices have margins above float noise always match;
    all of them on an AVX2 machine."""
    exact_everywhere = torch.backends.cpu.get_cpu_capability() == "AVX2"
    for row in golden_rows:
        if exact_everywhere or row["alg"] != "entropy":
            assert _run(dream.module, row).tolist() == row["output"], row["alg"]


def test_partial_logits_path_equals_full_logits_path(dream, golden_rows):
    prompt = torch.tensor([[PAD, PAD, 90, MASK, 191, 7], [21, 188, MASK, MASK, 160, 5]])
    mask = (prompt != PAD).long()
    for alg in ("maskgit_plus", "topk_margin", "entropy", "origin"):
        kw = dict(max_new_tokens=10, steps=5, alg=alg, mask_id=MASK, temperature=0.7 if alg == "origin" else 0.0)
        fast = dream_generate(dream.module, prompt, mask, generator=[1, 2], **kw)
        full = dream_generate(_FullLogitsOnly(dream.module), prompt, mask, generator=[1, 2], **kw)
        assert torch.equal(fast, full), alg
    for row in golden_rows:
        assert torch.equal(_run(dream.module, row), _run(_FullLogitsOnly(dream.module), row))


def test_language_model_is_accepted(dream, golden_rows):
    row = golden_rows[0]
    assert torch.equal(_run(dream, row), _run(dream.module, row))


# ------------------------------------------------------------------------------------------------ Dream's rule, exact
# (new tokens, steps): 1, 2, 3 and 4 tokens a step, and step counts that do not divide the length
SCHEDULES = [(12, 12), (16, 8), (18, 6), (20, 5), (13, 4), (17, 5), (10, 3), (9, 7)]


def _grid_prompt(batch: int, case: int, uneven: bool) -> list[list[int]]:
    g = torch.Generator().manual_seed(1000 + case)
    rows = torch.randint(0, 296, (batch, 6), generator=g).tolist()
    if uneven:  # rows with different numbers of prompt masks: Dream's batch-wide count then differs per row
        for b, row in enumerate(rows):
            row[1 : 1 + b] = [MASK] * b
    return rows


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy", "origin"])
@pytest.mark.parametrize("case,schedule", list(enumerate(SCHEDULES)))
def test_matches_the_oracle_on_every_schedule_and_batch(dream, alg, case, schedule):
    """Greedy (``origin``: its transfer draws from the seeded global RNG), batches of 1-3 rows, even and
    uneven prompt masks: the canvas is the oracle's, token for token."""
    new, steps = schedule
    for batch in (1, 2, 3):
        for uneven in ((False, True) if batch > 1 else (False,)):
            prompt = _grid_prompt(batch, case, uneven)
            kw = dict(max_new_tokens=new, steps=steps, alg=alg, eps=1e-3, mask_id=MASK)
            torch.manual_seed(case)
            expected = dream_oracle(dream.module, prompt, **kw)
            torch.manual_seed(case)
            assert dream_generate(dream.module, torch.tensor(prompt), **kw).tolist() == expected, (batch, uneven)


@pytest.mark.parametrize("cfg", [
    dict(alg="origin", temperature=0.8),
    dict(alg="maskgit_plus", alg_temp=0.5),
    dict(alg="entropy", temperature=0.7, alg_temp=0.3),
    dict(alg="topk_margin", temperature=1.0),
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_the_oracle_random_stream(dream, cfg):
    """Sampled tokens and sampled positions: the same draws from the global RNG, in Dream's order."""
    for batch, (new, steps) in zip((1, 2, 3), SCHEDULES[1:4], strict=True):
        prompt = _grid_prompt(batch, steps, uneven=False)
        kw = dict(max_new_tokens=new, steps=steps, eps=1e-3, mask_id=MASK, **cfg)
        torch.manual_seed(7)
        expected = dream_oracle(dream.module, prompt, **kw)
        torch.manual_seed(7)
        assert dream_generate(dream.module, torch.tensor(prompt), **kw).tolist() == expected, batch


def test_dream_count_truncates_like_the_reference():
    """18 new tokens in 6 steps is not 3 a step: float32 ``1 - s/t`` truncates the first step to 2 and the
    last takes the remaining 4; a batch average of 4.5 masks commits 4 at the last step."""
    timesteps = torch.linspace(1, 1e-3, 7)
    left, counts = 18, []
    for i in range(6):
        k = dream_count(torch.tensor(left), 1, timesteps[i], timesteps[i + 1], i == 5)
        counts.append(k)
        left -= k
    assert counts == [2, 3, 3, 3, 3, 4] and left == 0
    assert dream_count(torch.tensor(9), 2, timesteps[5], timesteps[6], True) == 4


# ------------------------------------------------------------------------------------------------ padded batches
class _Recorder(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.inner, self.calls = module, []

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
        self.calls.append((attention_mask, position_ids))
        return self.inner(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          logits_to_keep=logits_to_keep)


def test_left_padded_batch_uses_dreams_mask_and_positions(dream):
    rec = _Recorder(dream.module)
    ids = torch.tensor([[PAD, PAD, 5, 17, 42], [9, 3, 77, 120, 64]])
    dream_generate(rec, ids, (ids != PAD).long(), max_new_tokens=3, steps=1, mask_id=MASK)
    attend, positions = rec.calls[0]
    assert positions.tolist() == [[1, 1, 0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 6, 7]]
    assert attend.shape == (2, 1, 8, 8) and attend.dtype == torch.bool
    assert not attend[0, 0, :2].any() and not attend[0, 0, :, :2].any() and attend[0, 0, 2:, 2:].all()
    assert attend[1].all()
    rec.calls.clear()  # no padding: no mask and no positions, as Dream's "full" attention
    dream_generate(rec, ids[1:], torch.ones_like(ids[1:]), max_new_tokens=3, steps=1, mask_id=MASK)
    assert rec.calls[0] == (None, None)


@pytest.mark.parametrize("alg,sharpen", [("maskgit_plus", 1.0), ("topk_margin", 1.0), ("entropy", 30.0)])
def test_left_padded_batch_matches_single_prompts(dream, alg, sharpen):
    """Padding changes the logits in the last float bit only; the raw tiny model's entropies tie to the
    last bit, so ``entropy`` is checked on sharpened logits (on real models such ties are rare)."""
    model = _Sharpened(dream.module, sharpen)
    short, long_ = [5, 17, 42], [9, 3, 77, 120, 64, 31]
    batch = torch.tensor([[PAD] * 3 + short, long_])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    kw = dict(max_new_tokens=12, steps=6, alg=alg, mask_id=MASK)
    out = dream_generate(model, batch, mask, **kw)
    assert out[0, 6:].tolist() == dream_generate(model, torch.tensor([short]), **kw)[0, 3:].tolist()
    assert out[1].tolist() == dream_generate(model, torch.tensor([long_]), **kw)[0].tolist()
    assert out[0, :3].tolist() == [PAD] * 3


# ------------------------------------------------------------------------------------------------ randomness
STOCHASTIC = [
    dict(alg="origin", temperature=1.0),
    dict(alg="origin", temperature=0.5, top_k=20),
    dict(alg="maskgit_plus", alg_temp=0.5),
    dict(alg="entropy", temperature=0.8, top_p=0.9),
    dict(alg="topk_margin", temperature=1.0, top_k=5, alg_temp=0.2),
]


@pytest.mark.parametrize("cfg", STOCHASTIC, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_per_row_seeds_are_independent_of_batch_composition(dream, cfg):
    """A row's output depends on its seed only. (Sharpened logits: padding changes the logits in the last
    float bit, and the raw tiny model's entropies tie to the last bit, which would test float noise.)"""
    model = _Sharpened(dream.module, 30.0)
    rows = [[5, 17, 42], [9, 3, 77, 120, 64, 31], [200, 1, MASK, 261, 229]]
    kw = dict(max_new_tokens=10, steps=5, mask_id=MASK, **cfg)

    def run(indices, seeds):
        width = max(len(rows[i]) for i in indices)
        ids = torch.tensor([[PAD] * (width - len(rows[i])) + rows[i] for i in indices])
        out = dream_generate(model, ids, (ids != PAD).long(), generator=seeds, **kw)
        return [out[j, width - len(rows[i]) :].tolist() for j, i in enumerate(indices)]

    together = run([0, 1, 2], [11, 12, 13])
    assert run([1], [12]) == together[1:2]  # alone, no padding
    assert run([2, 0], [13, 11]) == [together[2], together[0]]  # other companions, other padding
    assert run([0, 1, 2], [11, 12, 13]) == together  # and reproducible
    other = run([0, 1, 2], [21, 22, 23])
    assert sum(a != b for a, b in zip(together, other, strict=True)) >= 2
    for out, row in zip(together, rows, strict=True):  # everything decoded, prompts untouched (prompt masks aside)
        assert MASK not in out
        assert all(o == p for o, p in zip(out[: len(row)], row, strict=True) if p != MASK)


@pytest.mark.parametrize("cfg", STOCHASTIC[:1] + STOCHASTIC[2:], ids=lambda c: c["alg"])
def test_a_generator_reproduces_the_global_random_stream(dream, cfg):
    """``generator=torch.Generator`` draws exactly what Dream draws from torch's global RNG."""
    ids = torch.tensor([[5, 17, 42, 8], [9, 3, MASK, 120]])
    kw = dict(max_new_tokens=8, steps=4, mask_id=MASK, **cfg)
    torch.manual_seed(1234)
    from_global = dream_generate(dream.module, ids, **kw)
    from_generator = dream_generate(dream.module, ids, generator=torch.Generator().manual_seed(1234), **kw)
    assert torch.equal(from_global, from_generator)
    torch.manual_seed(99)
    assert not torch.equal(from_global, dream_generate(dream.module, ids, **kw))


def test_sample_tokens_draws_as_torch_categorical():
    logits = torch.randn(50, 30) * 2
    torch.manual_seed(7)
    expected = torch.distributions.Categorical(probs=torch.softmax(logits / 0.8, dim=-1)).sample()
    _, drawn = sample_tokens(logits, temperature=0.8, generator=torch.Generator().manual_seed(7))
    assert torch.equal(drawn, expected)
    conf, top = sample_tokens(logits)
    assert torch.equal(top, logits.argmax(-1)) and torch.allclose(conf, torch.softmax(logits, -1).max(-1).values)
    margin, _ = sample_tokens(logits, margin_confidence=True)
    two = torch.softmax(logits, -1).topk(2).values
    assert torch.allclose(margin, two[:, 0] - two[:, 1])
    _, nucleus = sample_tokens(logits, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nucleus, logits.argmax(-1))  # a tiny nucleus keeps the top token only


def _chi2(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic, cells with expectation < 5 pooled; returns (statistic, degrees of freedom)."""
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    return float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()), int(keep.sum() - 1)


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.5, 4)])
def test_sampled_tokens_follow_the_models_distribution(dream, temperature, top_k):
    """One masked position, 4000 rows with their own seeds: the token frequencies agree with
    softmax(shifted logits / temperature) (top-k renormalised), and clearly disagree with the plausible
    mistakes (unshifted logits, no temperature)."""
    model = _Sharpened(dream.module, 60.0)
    prompt = [165, 119, 244, 268, 3, 233, 141, 251]
    n = 4000
    ids = torch.tensor([prompt] * n)
    out = dream_generate(model, ids, max_new_tokens=1, steps=1, alg="maskgit_plus", temperature=temperature,
                         top_k=top_k, mask_id=MASK, generator=list(range(n)))
    counts = np.bincount(out[:, -1].numpy(), minlength=300)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + [MASK]])).logits[0]

    def dist(position, temp):
        z = logits[position] / temp
        if top_k is not None:
            z = torch.where(z >= z.topk(top_k).values[-1], z, torch.tensor(-torch.inf))
        return torch.softmax(z.double(), -1).numpy()

    right = dist(len(prompt) - 1, temperature)  # Dream: position i's logits predict token i + 1
    assert right.max() < 0.9 and (right > 0.01).sum() >= 3  # a distribution worth testing
    stat, dof = _chi2(counts, right)
    limit = dof + 6 * np.sqrt(2 * dof) + 10
    assert stat < limit, (stat, dof)
    other_temperature = 2.0 if temperature == 1.0 else 1.0
    for wrong in (dist(len(prompt), temperature), dist(len(prompt) - 1, other_temperature)):
        assert _chi2(counts, wrong)[0] > 3 * limit, (_chi2(counts, wrong), stat, limit)
    if top_k is not None:
        assert (counts[right == 0] == 0).all()


# ------------------------------------------------------------------------------------------------ trace, monitor
class StopRowAt:
    def __init__(self, row: int, step: int):
        self.row, self.step = row, step

    def after_step(self, step, phi):
        flags = np.zeros(phi.shape[0], dtype=bool)
        flags[self.row] = step == self.step
        return StopRequest(flags)


class RemaskAt:
    def after_step(self, step, phi):
        return StopRequest(np.zeros(phi.shape[0], dtype=bool), np.full(phi.shape[0], 0 if step == 1 else -1))


def test_tracer_records_one_step_per_denoising_step(dream):
    ids = torch.tensor([[165, 119, 244, 268], [239, 152, 8, 169]])
    with Tracer(dream, TraceConfig(canvas=True), 2) as tracer:
        out = dream_generate(dream.module, ids, max_new_tokens=8, steps=6, mask_id=MASK, tracer=tracer)
    trace = tracer.result()
    assert trace.num_steps == 6 and trace.activations.shape == (2, 6, 64)
    masked = (trace.canvas == MASK).sum(dim=-1)  # [B, steps]: falls step by step to nothing
    assert (masked[:, 1:] <= masked[:, :-1]).all() and (masked[:, -1] == 0).all()
    assert torch.equal(trace.canvas[:, -1], out[:, 4:])


@pytest.mark.parametrize("generator", [None, [3, 4]])
@pytest.mark.parametrize("alg", ["entropy", "origin"])
def test_monitor_stopped_row_stays_frozen(dream, generator, alg):
    ids = torch.tensor([[165, 119, 244, 268], [239, 152, 8, 169]])
    kw = dict(max_new_tokens=10, steps=6, alg=alg, mask_id=MASK, generator=generator,
              temperature=0.5 if alg == "origin" else 0.0)
    with Tracer(dream, TraceConfig(canvas=True), 2, monitor=StopRowAt(row=0, step=2)) as tracer:
        out = dream_generate(dream.module, ids, tracer=tracer, **kw)
    trace = tracer.result()
    assert trace.meta["stop_steps"] == [2, -1]
    frozen = trace.canvas[0, 2]
    assert (trace.canvas[0, 2:] == frozen).all() and torch.equal(out[0, 4:], frozen)
    assert (frozen == MASK).any()  # stopped with work left
    assert MASK not in out[1].tolist()  # the other row finished


def test_remasking_monitor_is_refused(dream):
    ids = torch.tensor([[165, 119, 244, 268]])
    with Tracer(dream, TraceConfig(), 1, monitor=RemaskAt()) as tracer, pytest.raises(SrilabError, match="re-mask"):
        dream_generate(dream.module, ids, max_new_tokens=6, steps=4, mask_id=MASK, tracer=tracer)


# ------------------------------------------------------------------------------------------------ masks, injections
@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy", "origin"])
def test_every_mask_is_filled_prompt_masks_included(dream, alg):
    prompt = torch.tensor([[90, 214, MASK, MASK, 216, MASK, 156]])
    out = dream_generate(dream.module, prompt, max_new_tokens=9, steps=5, alg=alg, mask_id=MASK)
    assert MASK not in out.tolist()[0]
    assert out[0, [0, 1, 4, 6]].tolist() == [90, 214, 216, 156]


def test_uneven_prompt_masks_never_overwrite_tokens_with_per_row_seeds(dream):
    """Rows with different mask counts (Dream's batch-averaged count exceeds the lighter row's masks): with one
    seed per row every mask gets filled and no committed token is touched, greedy and sampled selection."""
    prompt = torch.tensor([[90, MASK, MASK, MASK, 216], [21, 188, 66, 237, 137]])
    for alg_temp in (None, 0.5):
        out = dream_generate(dream.module, prompt, max_new_tokens=6, steps=4, alg="entropy", alg_temp=alg_temp,
                             mask_id=MASK, generator=[3, 4])
        assert MASK not in out.flatten().tolist()
        assert out[1, :5].tolist() == prompt[1].tolist() and out[0, [0, 4]].tolist() == [90, 216]


def test_uneven_prompt_masks_follow_dreams_rule_without_seeds(dream):
    """The same batch under Dream's own rule: the batch-wide count is the oracle's, and here it leaves the
    heavier row with masks at the end (int(4.5) = 4 of its 9 at the last step) -- Dream's result, exact."""
    prompt = [[90, MASK, MASK, MASK, 216], [21, 188, 66, 237, 137]]
    kw = dict(max_new_tokens=6, steps=4, alg="entropy", eps=1e-3, mask_id=MASK)
    out = dream_generate(dream.module, torch.tensor(prompt), **kw)
    assert out.tolist() == dream_oracle(dream.module, prompt, **kw)
    assert MASK in out[0].tolist()


def test_injections_write_tokens_before_the_step(dream):
    ids = torch.tensor([[165, 119, 244, 268], [239, 152, 8, 169]])
    injections = [Injection(step=0, offset=0, token_ids=(7, 8)), Injection(step=3, offset=6, token_ids=(9,), rows=(1,))]
    with Tracer(dream, TraceConfig(canvas=True), 2) as tracer:
        out = dream_generate(dream.module, ids, max_new_tokens=8, steps=5, mask_id=MASK, tracer=tracer,
                             injections=injections, generator=[1, 2])  # per-row counts: rows differ at step 3
    canvas = tracer.result().canvas
    assert out[:, 4:6].tolist() == [[7, 8], [7, 8]] and (canvas[:, 0, :2] == torch.tensor([7, 8])).all()
    assert out[1, 10] == 9 and (canvas[1, 3:, 6] == 9).all()
    assert MASK not in out.flatten().tolist()


def test_bad_arguments(dream):
    ids = torch.tensor([[5, 17, 42]])
    kw = dict(max_new_tokens=4, steps=2, mask_id=MASK)
    with pytest.raises(SrilabError, match="alg"):
        dream_generate(dream.module, ids, alg="low_confidence", **kw)
    with pytest.raises(SrilabError, match="seeds"):
        dream_generate(dream.module, ids, generator=[1, 2], **kw)
    with pytest.raises(SrilabError, match="positive"):
        dream_generate(dream.module, ids, max_new_tokens=4, steps=0, mask_id=MASK)
    with pytest.raises(SrilabError, match="exceeds"):
        dream_generate(dream.module, ids, injections=[Injection(0, 3, (1, 2))], **kw)
    with pytest.raises(SrilabError, match="step"):
        dream_generate(dream.module, ids, injections=[Injection(2, 0, (1,))], **kw)
    with pytest.raises(SrilabError, match="attention_mask"):
        dream_generate(dream.module, ids, torch.ones(1, 4), **kw)
