"""srilab's attention masks for transformers decoders equal the ones transformers builds, bit for bit."""

import pytest
import torch

import srilab.models as M
from srilab.models.masks import PreparedMask, layer_masks
from srilab.sampling.diffusion import generate
from srilab.toy.arch import build_model, toy_config


@pytest.fixture(scope="module")
def bidirectional(tiny_pair):
    return M.load(tiny_pair["diffusion"])


def _inputs(lm, padded: bool):
    torch.manual_seed(0)
    ids = torch.randint(10, 120, (3, 40))
    key = torch.ones_like(ids)
    if padded:
        key[0, :7] = 0
        key[2, :3] = 0
    return ids, (key if padded else None)


@pytest.mark.parametrize("padded", [False, True])
def test_the_prepared_mask_gives_transformers_logits(bidirectional, padded):
    module = bidirectional.module
    ids, key = _inputs(bidirectional, padded)
    prepared = PreparedMask(module)
    assert prepared.enabled  # bidirectional, SDPA, per-layer-type masks
    mask = prepared(key, *ids.shape)
    assert mask.shape == (3, 1, 40, 40) and mask.dtype == torch.bool
    assert prepared(key, *ids.shape) is mask  # built once for the same key mask, batch and length
    with torch.no_grad():
        own = module(ids, attention_mask=key).logits
        ours = module(ids, attention_mask=mask).logits
    assert torch.equal(own, ours)


def test_a_window_shorter_than_the_canvas_keeps_transformers_mask(tiny_pair):
    """Layer types whose masks differ: no single prepared mask; the per-layer masks still match transformers'."""
    tok_vocab = M.load(tiny_pair["diffusion"]).module.config.vocab_size
    cfg = toy_config(tok_vocab, pad_id=0, bos_id=2, eos_id=3, mask_id=4, bidirectional=True, size="micro")
    cfg.layer_types = ["sliding_attention", "full_attention"]
    cfg.sliding_window = 8
    module = build_model(cfg, 0).eval()
    ids = torch.randint(10, 120, (2, 30))
    key = torch.ones_like(ids)
    key[1, :5] = 0
    assert PreparedMask(module)(key, *ids.shape) is key  # falls back to the key mask
    masks = layer_masks(PreparedMask(module).layout, key, 0, 30, 30, ids.device)
    assert not torch.equal(*torch.broadcast_tensors(masks["sliding_attention"], masks["full_attention"]))
    with torch.no_grad():
        assert torch.equal(module(ids, attention_mask=key).logits, module(ids, attention_mask=masks).logits)


def test_causal_and_eager_models_are_left_alone(tiny_pair):
    assert not PreparedMask(M.load(tiny_pair["ar"]).module).enabled  # transformers skips a causal mask itself
    cfg = toy_config(130, pad_id=0, bos_id=2, eos_id=3, mask_id=4, bidirectional=True, size="micro")
    cfg._attn_implementation = "eager"  # eager attention adds a float mask: a boolean one would be wrong
    assert not PreparedMask(build_model(cfg, 0)).enabled


@pytest.mark.parametrize("padded", [False, True])
def test_diffusion_sampling_is_unchanged(bidirectional, padded, monkeypatch):
    ids, key = _inputs(bidirectional, padded)
    kw = dict(steps=8, gen_length=16, block_length=8, mask_id=bidirectional.mask_id)
    fast = generate(bidirectional.module, ids, key, **kw)
    monkeypatch.setattr(PreparedMask, "__call__", lambda self, key_mask, *a, **k: key_mask)
    assert torch.equal(fast, generate(bidirectional.module, ids, key, **kw))


def test_the_diffusion_training_step_is_unchanged(bidirectional, monkeypatch):
    """The toy's diffusion loss builds its padded mask with srilab: same loss and gradients as transformers'."""
    from srilab.toy.train import diffusion_loss

    module = bidirectional.module
    ids, key = _inputs(bidirectional, padded=True)

    def step():
        module.zero_grad()
        loss = diffusion_loss(module, ids, key, None, bidirectional.mask_id, torch.Generator().manual_seed(0))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in module.parameters()]

    loss, grads = step()
    monkeypatch.setattr(PreparedMask, "__call__", lambda self, key_mask, *a, **k: key_mask)
    loss_2d, grads_2d = step()
    assert torch.equal(loss, loss_2d) and all(torch.equal(a, b) for a, b in zip(grads, grads_2d, strict=True))
