import pytest
import torch

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import TraceConfig, Tracer
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
        assert all(s.shape == (2, 64) for s in tr._steps)


def test_dream_trace_reads_the_shifted_positions(golden_dir):
    dream = M.load(golden_dir / "dream-tiny")
    with Tracer(dream, TraceConfig(pooling="response"), 2) as tr:
        generate(dream.module, PROMPT, steps=2, gen_length=4, block_length=4, mask_id=299, logits_shift=1, tracer=tr)
    x = torch.cat([PROMPT, torch.full((2, 4), 299)], dim=1)
    expect = _final_hidden(dream, x)[:, 4:8].mean(1)  # the outputs that predict response positions 5..8
    assert torch.allclose(tr.result().activations[:, 0], expect, atol=1e-5)
