import pytest
import torch

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import TraceConfig, Tracer
from srilab.sampling.autoregressive import generate


@pytest.fixture(scope="module")
def ar(tiny_pair):
    return M.load(tiny_pair["ar"])


def _prompt(ar, texts):
    return ar.encode([ar.chat_prompt(t) for t in texts])


def test_kv_cache_equals_recompute_and_transformers(ar):
    ids, mask = _prompt(ar, ["how do i w3 w4 ?", "w9 w10 w11 w12 w13 w14 ."])
    cached = generate(ar.module, ids, mask, max_new_tokens=12, eos_token_id=(), pad_token_id=ar.pad_token_id)
    recomputed = generate(ar.module, ids, mask, max_new_tokens=12, eos_token_id=(), pad_token_id=ar.pad_token_id,
                          use_cache=False)
    assert torch.equal(cached, recomputed)
    ref = ar.module.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                             eos_token_id=None, pad_token_id=ar.pad_token_id)
    assert torch.equal(cached, ref)


def test_left_padding_does_not_change_outputs(ar):
    texts = ["w1 ?", "how do i w3 w4 w5 w6 w7 ?"]
    ids, mask = _prompt(ar, texts)
    batched = generate(ar.module, ids, mask, max_new_tokens=10, pad_token_id=ar.pad_token_id)
    for i, t in enumerate(texts):
        sid, smask = _prompt(ar, [t])
        single = generate(ar.module, sid, smask, max_new_tokens=10, pad_token_id=ar.pad_token_id)
        assert batched[i, ids.shape[1]:].tolist() == single[0, sid.shape[1]:].tolist()


def test_eos_stops_a_row_and_pads_it(ar):
    ids, mask = _prompt(ar, ["w1 ?", "w2 w3 ?"])
    free = generate(ar.module, ids, mask, max_new_tokens=8, pad_token_id=ar.pad_token_id)
    eos = int(free[0, ids.shape[1] + 2])  # pretend the third generated token of row 0 is EOS
    out = generate(ar.module, ids, mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=ar.pad_token_id)
    row = out[0, ids.shape[1]:].tolist()
    k = row.index(eos)
    assert k <= 2 and all(t == ar.pad_token_id for t in row[k + 1:])
    assert out.shape[1] == ids.shape[1] + 8


def test_top_p_sampling_is_seeded_per_item(ar):
    ids, mask = _prompt(ar, ["w1 ?", "w2 w3 ?"])
    kw = dict(max_new_tokens=10, temperature=1.0, top_p=0.9, pad_token_id=ar.pad_token_id)
    a = generate(ar.module, ids, mask, generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **kw)
    b = generate(ar.module, ids, mask, generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **kw)
    c = generate(ar.module, ids, mask, generator=[torch.Generator().manual_seed(s) for s in (5, 6)], **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_p_keeps_only_the_nucleus():
    from srilab.sampling.autoregressive import _sample

    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    draws = {int(_sample(logits, 1.0, 0.8, torch.Generator().manual_seed(s))) for s in range(200)}
    assert draws == {0, 1}


def test_trace_is_running_mean_and_repeats_after_eos(ar):
    ids, mask = _prompt(ar, ["w1 ?", "w2 w3 w4 ?"])
    free = generate(ar.module, ids, mask, max_new_tokens=6, pad_token_id=ar.pad_token_id)
    eos = int(free[0, ids.shape[1] + 1])
    with Tracer(ar, TraceConfig(), 2) as tr:
        out = generate(ar.module, ids, mask, max_new_tokens=6, eos_token_id=eos, pad_token_id=ar.pad_token_id,
                       tracer=tr)
    acts = tr.result().activations
    assert acts.shape == (2, 6, ar.final_norm.weight.shape[0])
    # Recompute: the final-norm outputs at the positions that produced each token, from one full pass.
    captured = {}
    h = ar.final_norm.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    with torch.no_grad():
        full_mask = torch.cat([mask, torch.ones(2, 6, dtype=mask.dtype)], dim=1)
        ar.module(out, attention_mask=full_mask, position_ids=(full_mask.cumsum(-1) - 1).clamp_min(0))
    h.remove()
    p = ids.shape[1]
    states = captured["h"][:, p - 1 : p + 5]
    row1 = states[1].cumsum(0) / torch.arange(1, 7).unsqueeze(1)
    assert torch.allclose(acts[1], row1, atol=1e-5)
    k = out[0, p:].tolist().index(eos)  # row 0 ended at step k: later steps repeat step k
    row0 = states[0, : k + 1].mean(0)
    assert torch.allclose(acts[0, k], row0, atol=1e-5)
    assert all(torch.equal(acts[0, k], acts[0, j]) for j in range(k, 6))


def test_bad_arguments(ar):
    ids, mask = _prompt(ar, ["w1"])
    with pytest.raises(SrilabError):
        generate(ar.module, ids, mask, max_new_tokens=0)
    with pytest.raises(SrilabError):
        generate(ar.module, ids, mask, max_new_tokens=3, top_p=0.0)
