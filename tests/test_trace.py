import pytest
import torch

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import Trace, TraceConfig, Tracer
from srilab.sampling.diffusion import generate

PROMPT = torch.tensor([[110, 119, 53, 140, 4], [49, 211, 136, 77, 239]])
KW = dict(steps=8, gen_length=16, block_length=8, mask_id=299)


@pytest.fixture(scope="module")
def llada(golden_dir):
    return M.load(golden_dir / "llada-tiny")


def _final_hidden(model, x, layer_module=None):
    captured = {}
    mod = layer_module or model.final_norm
    h = mod.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        model.module(x)
    h.remove()
    return captured["h"]


@pytest.mark.parametrize("pooling", ["generated", "response"])
def test_diffusion_trace_matches_recomputation(llada, pooling):
    with Tracer(llada, TraceConfig(pooling=pooling, canvas=True), 2) as tr:
        generate(llada.module, PROMPT, tracer=tr, **KW)
    trace = tr.result()
    assert trace.activations.shape == (2, 8, 64) and trace.activations.dtype == torch.float32
    assert trace.canvas.shape == (2, 8, 16)
    before = torch.full((2, 16), 299)
    for t in range(8):
        x = torch.cat([PROMPT, before], dim=1)
        h = _final_hidden(llada, x)[:, 5:]
        after = trace.canvas[:, t]
        w = (after != 299).float() if pooling == "generated" else torch.ones(2, 16)
        expect = (h * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True)
        assert torch.allclose(trace.activations[:, t], expect, atol=1e-5), t
        before = after


def test_trace_reads_a_selected_layer(llada):
    with Tracer(llada, TraceConfig(layer="first", pooling="response"), 2) as tr:
        generate(llada.module, PROMPT, steps=2, gen_length=4, block_length=4, mask_id=299, tracer=tr)
    first = tr.result().activations[:, 0]
    x = torch.cat([PROMPT, torch.full((2, 4), 299)], dim=1)
    expect = _final_hidden(llada, x, llada.layers[0])[:, 5:].mean(1)
    assert torch.allclose(first, expect, atol=1e-5)


def test_cfg_trace_is_the_conditional_branch_only(llada):
    with Tracer(llada, TraceConfig(pooling="response"), 2) as tr:
        generate(llada.module, PROMPT, cfg_scale=1.0, tracer=tr, **KW)
    step0 = tr.result().activations[:, 0]
    x = torch.cat([PROMPT, torch.full((2, 16), 299)], dim=1)
    assert torch.allclose(step0, _final_hidden(llada, x)[:, 5:].mean(1), atol=1e-5)


def test_hook_is_removed_even_on_error(llada):
    n_before = len(llada.final_norm._forward_hooks)
    with pytest.raises(SrilabError), Tracer(llada, TraceConfig(), 2) as tr:
        generate(llada.module, PROMPT, steps=3, gen_length=8, block_length=4, mask_id=299, tracer=tr)
    assert len(llada.final_norm._forward_hooks) == n_before


def test_memory_is_per_step_vectors_only(llada):
    with Tracer(llada, TraceConfig(), 2) as tr:
        generate(llada.module, PROMPT, tracer=tr, **KW)
        assert tr._current is None  # no [B, L, D] output is held between steps
        for sums, every, size, unmasked in tr._steps:  # per step: two D-vectors and the response's flags
            assert sums.shape == every.shape == (2, 1, 64)
            assert unmasked.shape == (2, 1, size) and size == KW["gen_length"]


def test_dream_trace_reads_the_shifted_positions(golden_dir):
    dream = M.load(golden_dir / "dream-tiny")
    with Tracer(dream, TraceConfig(pooling="response"), 2) as tr:
        generate(dream.module, PROMPT, steps=2, gen_length=4, block_length=4, mask_id=299, logits_shift=1, tracer=tr)
    x = torch.cat([PROMPT, torch.full((2, 4), 299)], dim=1)
    expect = _final_hidden(dream, x)[:, 4:8].mean(1)  # the outputs that predict response positions 5..8
    assert torch.allclose(tr.result().activations[:, 0], expect, atol=1e-5)


# ------------------------------------------------------------------------------------------------ x0 traces
X0_KW = dict(steps=8, gen_length=16, block_length=8, mask_id=299)


def _x0_run(llada, every=1, **kw):
    with Tracer(llada, TraceConfig(canvas=True, x0=True, x0_every=every), 2) as tr:
        out = generate(llada.module, PROMPT, tracer=tr, **{**X0_KW, **kw})
    return out, tr.result()


def test_x0_trace_shapes_and_final_step(llada):
    out, trace = _x0_run(llada)
    assert trace.x0_tokens.shape == trace.x0_probs.shape == (2, 8, 16)
    assert trace.x0_tokens.dtype == torch.int32 and trace.x0_probs.dtype == torch.float16
    assert trace.x0_steps == list(range(8))
    assert torch.equal(trace.x0_tokens[:, -1].long(), out[:, 5:])  # at the last step x0 is the output


def test_x0_committed_positions_carry_their_token(llada):
    _, trace = _x0_run(llada, revision=0.5)
    committed = trace.canvas != 299
    assert committed.any() and (~committed).any()
    assert torch.equal(trace.x0_tokens.long()[committed], trace.canvas[committed])


def test_x0_is_the_prediction_inside_the_window_only(llada):
    _, trace = _x0_run(llada)
    x = torch.cat([PROMPT, torch.full((2, 16), 299)], dim=1)
    with torch.no_grad():
        p = llada.module(x).logits[:, 5:13].softmax(-1)  # step 0: the first block's predictions
    best = p.max(-1)
    assert torch.equal(trace.x0_tokens[:, 0, :8].long(), best.indices)
    assert torch.allclose(trace.x0_probs[:, 0, :8].float(), best.values, rtol=1e-3)
    # The second block has no logits while the first is decoded: mask id, probability 0.
    assert (trace.x0_tokens[:, :4, 8:] == 299).all() and (trace.x0_probs[:, :4, 8:] == 0).all()
    assert (trace.x0_probs[:, 4:, 8:] > 0).all() and (trace.x0_probs[:, :4, :8] > 0).all()


def test_x0_every_subsamples_the_steps(llada):
    _, every = _x0_run(llada)
    _, third = _x0_run(llada, every=3)
    assert third.x0_steps == [0, 3, 6]
    assert torch.equal(third.x0_tokens, every.x0_tokens[:, [0, 3, 6]])
    assert torch.equal(third.x0_probs, every.x0_probs[:, [0, 3, 6]])
    assert torch.equal(third.activations, every.activations)  # x0 does not change the generation
    with Tracer(llada, TraceConfig(), 2) as tr:
        generate(llada.module, PROMPT, tracer=tr, **X0_KW)
    plain = tr.result()
    assert plain.x0_tokens is None and plain.x0_probs is None and plain.x0_steps is None
    assert torch.equal(plain.activations, every.activations)
    with pytest.raises(SrilabError, match="x0_every"):
        TraceConfig(x0=True, x0_every=0)


def test_x0_select_and_concat_carry_it(llada):
    _, trace = _x0_run(llada)
    one = trace.select([1])
    assert torch.equal(one.x0_tokens, trace.x0_tokens[[1]]) and one.x0_steps == trace.x0_steps
    both = Trace.concat([trace.select([0]), one])
    assert torch.equal(both.x0_tokens, trace.x0_tokens) and torch.equal(both.x0_probs, trace.x0_probs)
    assert torch.equal(both.canvas, trace.canvas)
    without = Trace(trace.activations[:1], trace.canvas[:1])
    with pytest.raises(SrilabError, match="x0"):
        Trace.concat([trace.select([0]), without])


def test_x0_needs_a_diffusion_sampler():
    from srilab.sampling import SamplerConfig
    from srilab.sampling import generate as generate_texts
    from srilab.toy.pair import SHIPPED_PAIR

    ar = M.load(SHIPPED_PAIR / "ar")
    with pytest.raises(SrilabError, match="diffusion"):
        generate_texts(ar, ["hello"], SamplerConfig(kind="ar", max_new_tokens=4), trace=TraceConfig(x0=True))


# ------------------------------------------------------------------------------------------------ canvas widths
def test_ar_canvas_has_the_full_width_in_every_batching():
    from srilab.sampling import SamplerConfig
    from srilab.sampling import generate as generate_texts
    from srilab.toy.pair import SHIPPED_PAIR

    ar = M.load(SHIPPED_PAIR / "ar")
    prompts = ["how do i w1 ?", "w5 w6", "tell me about w3", "no"]
    sampler = SamplerConfig(kind="ar", max_new_tokens=80)
    runs = [generate_texts(ar, prompts, sampler, trace=TraceConfig(canvas=True), batch_size=b) for b in (4, 2)]
    ends = [next(i for i, t in enumerate(ids) if t in ar.eos_token_ids) for ids in runs[0].response_ids]
    assert max(ends) < 79  # every batch ended early: its last steps were repeats (the bug's case)
    for g in runs:
        canvas = g.trace.canvas
        assert canvas is not None and canvas.shape == (4, 80, 80)
        assert torch.equal(canvas[:, -1], torch.tensor(g.response_ids))  # the last step shows the output
    assert torch.equal(runs[0].trace.canvas, runs[1].trace.canvas)
    pad = ar.pad_token_id or 0
    for row, end in enumerate(ends):
        assert (runs[0].trace.canvas[row, -1, end + 1 :] == pad).all()  # padding after EOS, to the full width
        assert (runs[0].trace.canvas[row, end, end + 1 :] == -1).all()  # not generated yet at that step


def test_concat_raises_instead_of_dropping_the_canvas():
    acts = torch.zeros(1, 3, 4)
    a = Trace(acts, torch.zeros(1, 3, 5, dtype=torch.long))
    b = Trace(acts, torch.zeros(1, 3, 6, dtype=torch.long))
    with pytest.raises(SrilabError, match="canvas"):
        Trace.concat([a, b])
    with pytest.raises(SrilabError, match="canvas"):
        Trace.concat([a, Trace(acts)])
    assert Trace.concat([Trace(acts), Trace(acts)]).canvas is None
    assert Trace.concat([a, a]).canvas.shape == (2, 3, 5)
