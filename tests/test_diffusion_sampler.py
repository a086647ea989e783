import json

import pytest
import torch

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import TraceConfig, Tracer
from srilab.sampling.diffusion import Injection, generate


@pytest.fixture(scope="module")
def llada(golden_dir):
    return M.load(golden_dir / "llada-tiny")


@pytest.fixture(scope="module")
def golden_rows(golden_dir):
    return json.loads((golden_dir / "llada-tiny" / "generate.json").read_text())


def _run(model, row, **kw):
    return generate(
        model, torch.tensor(row["prompt"]), steps=row["steps"], gen_length=row["gen_length"],
        block_length=row["block_length"], temperature=row["temperature"], cfg_scale=row["cfg_scale"],
        remasking=row["remasking"], mask_id=row["mask_id"], **kw,
    )


def test_reproduces_every_reference_output(llada, golden_rows):
    assert any(r["block_length"] == 1 for r in golden_rows) and any(r["cfg_scale"] > 0 for r in golden_rows)
    for row in golden_rows:
        assert _run(llada.module, row).tolist() == row["output"], {k: row[k] for k in ("steps", "block_length")}


def test_cfg_without_and_with_attention_mask_agree(llada, golden_rows):
    row = next(r for r in golden_rows if r["cfg_scale"] > 0)
    prompt = torch.tensor(row["prompt"])
    with_mask = _run(llada.module, row, attention_mask=torch.ones_like(prompt))
    assert with_mask.tolist() == row["output"] == _run(llada.module, row).tolist()


def test_left_padded_batch_matches_single_prompts(llada):
    short, long_ = [5, 17, 42], [9, 3, 77, 120, 64, 31]
    pad = 297
    batch = torch.tensor([[pad] * 3 + short, long_])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    kw = dict(steps=8, gen_length=16, block_length=8, mask_id=299)
    out = generate(llada.module, batch, mask, **kw)
    assert out[0, 6:].tolist() == generate(llada.module, torch.tensor([short]), **kw)[0, 3:].tolist()
    assert out[1].tolist() == generate(llada.module, torch.tensor([long_]), **kw)[0].tolist()
    kw["cfg_scale"] = 1.0  # guidance with padding: the unconditional branch keeps the key-padding mask
    out = generate(llada.module, batch, mask, **kw)
    assert out[0, 6:].tolist() == generate(llada.module, torch.tensor([short]), **kw)[0, 3:].tolist()


@pytest.mark.parametrize("remasking", ["low_confidence", "random", "entropy", "margin"])
def test_remasking_rules_decode_everything(llada, remasking):
    g = torch.Generator().manual_seed(0)
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    with Tracer(llada, TraceConfig(canvas=True), 1) as tr:
        out = generate(llada.module, prompt, steps=8, gen_length=16, block_length=8, mask_id=299,
                       remasking=remasking, generator=g, tracer=tr)
    canvas = tr.result().canvas[0]
    assert (out != 299).all()
    masked = (canvas == 299).sum(dim=1).tolist()
    assert masked == [14, 12, 10, 8, 6, 4, 2, 0]  # two tokens per step, blocks in order
    assert (canvas[3, 8:] == 299).all()  # the second block is untouched while the first is decoded


def test_rules_rank_differently(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4, 284, 151, 191, 154], [49, 211, 136, 77, 239, 167, 52, 223, 288]])
    outs = {
        r: generate(llada.module, prompt, steps=16, gen_length=16, block_length=16, mask_id=299, remasking=r,
                    generator=torch.Generator().manual_seed(1)).tolist()
        for r in ("low_confidence", "random", "entropy", "margin")
    }
    assert len({json.dumps(v) for v in outs.values()}) >= 2


def test_random_remasking_and_temperature_are_seeded(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]] * 2)
    kw = dict(steps=8, gen_length=8, block_length=8, mask_id=299, remasking="random", temperature=1.0)
    a = generate(llada.module, prompt, generator=[3, 4], **kw)
    b = generate(llada.module, prompt, generator=[3, 4], **kw)
    single = generate(llada.module, prompt[:1], generator=[4], **kw)
    assert torch.equal(a, b)
    assert torch.equal(a[1], single[0])  # per-item seeds: an item's output does not depend on its batch


def test_block_length_one_is_left_to_right(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    with Tracer(llada, TraceConfig(canvas=True), 1) as tr:
        generate(llada.module, prompt, steps=8, gen_length=8, block_length=1, mask_id=299, tracer=tr)
    canvas = tr.result().canvas[0]
    for t in range(8):
        assert (canvas[t, : t + 1] != 299).all() and (canvas[t, t + 1 :] == 299).all()


def test_injection_writes_text_and_revision_can_take_it_back(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    inj = [Injection(step=0, offset=2, token_ids=(7, 7, 7))]
    kw = dict(steps=8, gen_length=16, block_length=16, mask_id=299, injections=inj)
    out = generate(llada.module, prompt, **kw)
    assert out[0, 7:10].tolist() == [7, 7, 7] and (out != 299).all()
    with Tracer(llada, TraceConfig(canvas=True), 1) as tr:
        out = generate(llada.module, prompt, revision=0.5, tracer=tr, **kw)
    canvas = tr.result().canvas[0]
    assert (out != 299).all()
    # Some position was committed at one step and masked again at the next: a revision happened.
    remasked = (canvas[:-1] != 299) & (canvas[1:] == 299)
    assert remasked.any()
    assert not (out[0, 7:10] == 7).all()  # the model re-decided at least one injected token


def test_injection_later_step_respects_schedule(llada):
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    inj = [Injection(step=3, offset=12, token_ids=(5, 6, 7, 8))]
    with Tracer(llada, TraceConfig(canvas=True), 1) as tr:
        out = generate(llada.module, prompt, steps=8, gen_length=16, block_length=16, mask_id=299,
                       injections=inj, tracer=tr)
    canvas = tr.result().canvas[0]
    assert out[0, 17:21].tolist() == [5, 6, 7, 8] and (out != 299).all()
    assert not (canvas[2, 12:] == torch.tensor([5, 6, 7, 8])).all()
    assert (canvas[3, 12:] == torch.tensor([5, 6, 7, 8])).all()  # written before step 3's forward pass
    assert [int((c == 299).sum()) for c in canvas[3:]] == sorted({int((c == 299).sum()) for c in canvas[3:]})[::-1]


def test_dream_model_samples_with_shift(golden_dir):
    dream = M.load(golden_dir / "dream-tiny")
    prompt = torch.tensor([[110, 119, 53, 140, 4]])
    out = generate(dream.module, prompt, steps=4, gen_length=4, block_length=4, mask_id=299, logits_shift=1)
    # With shift, the first committed token is the argmax of the raw logits one position earlier.
    x = torch.cat([prompt, torch.full((1, 4), 299)], dim=1)
    raw = dream.module(x).logits
    probs = raw.softmax(-1)[0, 4:8]
    first = int(probs.max(-1).values.argmax())
    assert out[0, 5 + first].item() == int(raw[0, 4 + first].argmax())


def test_bad_arguments(llada):
    p = torch.tensor([[1, 2, 3]])
    with pytest.raises(SrilabError, match="multiple of block_length"):
        generate(llada.module, p, steps=4, gen_length=10, block_length=4, mask_id=299)
    with pytest.raises(SrilabError, match="multiple of the number of blocks"):
        generate(llada.module, p, steps=3, gen_length=8, block_length=4, mask_id=299)
    with pytest.raises(SrilabError, match="unknown remasking"):
        generate(llada.module, p, steps=4, gen_length=8, block_length=4, mask_id=299, remasking="vibes")
    with pytest.raises(SrilabError, match="exceeds gen_length"):
        generate(llada.module, p, steps=4, gen_length=8, block_length=4, mask_id=299,
                 injections=[Injection(0, 6, (1, 2, 3))])


class _FullLogitsOnly(torch.nn.Module):
    """A module without ``logits_to_keep``: the sampler must compute full logits and slice them."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, attention_mask=None):
        return self.inner(x, attention_mask=attention_mask)


@pytest.mark.parametrize("name,shift,mask_id", [("llada-tiny", 0, None), ("dream-tiny", 1, 299)])
@pytest.mark.parametrize("block_length,cfg", [(8, 0.0), (2, 0.0), (4, 1.5)])
def test_block_logits_path_equals_full_logits_path(golden_dir, name, shift, mask_id, block_length, cfg):
    model = M.load(golden_dir / name)
    mask_id = mask_id or model.mask_id
    g = torch.Generator().manual_seed(3)
    prompt = torch.randint(5, 90, (3, 6), generator=g)
    attention = torch.ones_like(prompt)
    attention[0, :2] = 0  # left padding in one row
    kw = dict(steps=8, gen_length=8, block_length=block_length, mask_id=mask_id, logits_shift=shift, cfg_scale=cfg)
    fast = generate(model.module, prompt, attention, **kw)
    slow = generate(_FullLogitsOnly(model.module), prompt, attention, **kw)
    assert torch.equal(fast, slow)
    assert not (fast[:, 6:] == mask_id).any()
