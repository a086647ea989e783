"""Toy pair training: losses fall, runs are deterministic, checkpoints load and are checksummed."""

import json

import pytest
import torch

from srilab.errors import SrilabError
from srilab.models import load
from srilab.toy.arch import build_model, toy_config
from srilab.toy.corpus import pretraining_corpus, sft_examples
from srilab.toy.tokenizer import build_world_tokenizer
from srilab.toy.train import (
    TrainConfig,
    chat_rows,
    continuation_rows,
    diffusion_loss,
    pack_corpus,
    train_model,
    train_pair,
    verify_checksums,
)
from srilab.toy.world import build_world


@pytest.fixture(scope="module")
def world_data():
    world = build_world(0)
    tok = build_world_tokenizer(world)
    chunks = pack_corpus(pretraining_corpus(world, 300), tok, 64)
    rows = chat_rows(sft_examples(world)[:200], tok, 80)
    return world, tok, chunks, rows


def test_chat_rows_pad_response_with_eos(world_data):
    _, tok, _, rows = world_data
    for i in range(5):
        resp = rows.ids[i][rows.response[i]]
        assert resp.shape[0] == 80
        target = rows.ids[i][rows.target[i]]
        assert target[-1].item() == tok.eos_token_id  # the AR target ends at the first EOS
        assert (resp[target.shape[0] :] == tok.eos_token_id).all()  # then EOS fills the canvas
        assert not (target[:-1] == tok.eos_token_id).any()
        assert rows.attention[i].sum() == rows.response[i].nonzero().max() + 1


def test_pack_corpus_chunks(world_data):
    _, tok, chunks, _ = world_data
    assert chunks.shape[1] == 64
    assert (chunks == tok.bos_token_id).any() and (chunks == tok.eos_token_id).any()


def test_response_too_long_is_a_clear_error(world_data):
    world, tok, _, _ = world_data
    with pytest.raises(SrilabError, match="raise gen_length"):
        chat_rows(sft_examples(world)[:50], tok, 10)


def test_diffusion_loss_only_masks_maskable(world_data):
    _, tok, _, rows = world_data
    from srilab.toy.arch import build_model, toy_config

    cfg = toy_config(len(tok), pad_id=0, bos_id=2, eos_id=3, mask_id=4, bidirectional=True, size="micro")
    model = build_model(cfg, 0)
    ids, att = rows.ids[:4], rows.attention[:4]
    nothing = torch.zeros_like(ids, dtype=torch.bool)
    assert diffusion_loss(model, ids, att, nothing, 4, torch.Generator().manual_seed(0)).item() == 0.0
    loss = diffusion_loss(model, ids, att, rows.response[:4], 4, torch.Generator().manual_seed(0))
    assert loss.item() > 1.0  # an untrained model: about log(vocab) per masked token


@pytest.mark.parametrize("kind", ["ar", "diffusion"])
def test_micro_training_loss_falls(world_data, kind):
    _, tok, chunks, rows = world_data
    cfg = TrainConfig(size="micro", pretrain_steps=60, sft_steps=60, batch_size=8, warmup_steps=5)
    _, history = train_model(kind, cfg, tok, chunks, rows, progress=False, log_every=20)
    pre = [h["pretrain_loss"] for h in history if h["step"] <= cfg.pretrain_steps]  # pretraining phase only
    sft = [h["sft_loss"] for h in history if "sft_loss" in h]
    assert pre[-1] < 0.9 * pre[0], pre
    assert sft[-1] < sft[0], sft


def test_train_pair_is_deterministic_and_loadable(micro_pair, micro_train, tmp_path):
    again = tmp_path / "again"
    train_pair(again, TrainConfig(**micro_train), progress=False)
    a = json.loads((micro_pair / "checksums.json").read_text())
    b = json.loads((again / "checksums.json").read_text())
    for name in ("ar/model.safetensors", "diffusion/model.safetensors", "ar/tokenizer.json"):
        assert a[name] == b[name], name
    assert a["ar/model.safetensors"] != a["diffusion/model.safetensors"]
    ar, dlm = load(micro_pair / "ar"), load(micro_pair / "diffusion")
    assert (ar.kind, dlm.kind) == ("ar", "diffusion")
    assert dlm.mask_id == dlm.tokenizer.mask_token_id
    # same config except the bidirectional flag
    ca = json.loads((micro_pair / "ar" / "config.json").read_text())
    cd = json.loads((micro_pair / "diffusion" / "config.json").read_text())
    diff = {k for k in ca.keys() | cd.keys() if ca.get(k) != cd.get(k)}
    assert diff <= {"use_bidirectional_attention", "use_cache"}, diff


def test_train_pair_refuses_non_empty_dir(micro_pair, micro_train):
    with pytest.raises(SrilabError, match="not empty"):
        train_pair(micro_pair, TrainConfig(**micro_train), progress=False)


def test_checksums_catch_a_changed_file(micro_pair, tmp_path):
    import shutil

    copy = tmp_path / "pair"
    shutil.copytree(micro_pair, copy)
    verify_checksums(copy)
    data = bytearray((copy / "ar" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "ar" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(SrilabError, match="checksum"):
        verify_checksums(copy)


def test_bad_training_config():
    with pytest.raises(SrilabError, match="toy size"):
        TrainConfig(size="huge")
    with pytest.raises(SrilabError, match="positive"):
        TrainConfig(sft_steps=0)
    with pytest.raises(SrilabError, match="continuation_share"):
        TrainConfig(continuation_share=1.5)
    with pytest.raises(SrilabError, match="world version 7"):
        TrainConfig(world_version=7)
    with pytest.raises(SrilabError, match="diffusion_pretrain_steps"):
        TrainConfig(diffusion_pretrain_steps=0)
    with pytest.raises(SrilabError, match="diffusion_sft_steps"):
        TrainConfig(diffusion_sft_steps=-1)
    more = TrainConfig(pretrain_steps=10, diffusion_pretrain_steps=30, sft_steps=5, diffusion_sft_steps=7)
    assert (more.pretrain_steps_of("ar"), more.pretrain_steps_of("diffusion")) == (10, 30)
    assert (more.sft_steps_of("ar"), more.sft_steps_of("diffusion")) == (5, 7)


def test_continuation_rows_mask_only_after_a_cut(world_data):
    """A continuation row keeps a clean prefix and is maskable from its cut to its end; share 0 draws nothing,
    so the loss of a pair trained without continuation rows is the same bit for bit."""
    rows = continuation_rows(400, 32, 0.5, torch.Generator().manual_seed(0))
    starts = rows.int().argmax(dim=1)
    for row, start in zip(rows, starts, strict=True):  # maskable positions are one suffix
        assert bool(row[start:].all()) and not bool(row[:start].any())
    partial = (~rows.all(dim=1)).float().mean().item()
    assert 0.35 < partial < 0.55  # half the rows chosen, a few of them cut at 0
    assert bool(continuation_rows(8, 32, 0.0, torch.Generator()).all())
    _, tok, chunks, _ = world_data
    model = build_model(toy_config(len(tok), pad_id=0, bos_id=2, eos_id=3, mask_id=4, bidirectional=True,
                                   size="micro"), 0)
    ids = chunks[:4]
    plain = diffusion_loss(model, ids, None, None, 4, torch.Generator().manual_seed(3))
    zero = diffusion_loss(model, ids, None, None, 4, torch.Generator().manual_seed(3), 0.0)
    cont = diffusion_loss(model, ids, None, None, 4, torch.Generator().manual_seed(3), 1.0)
    assert plain.item() == zero.item() and cont.item() != plain.item()


def test_pair_world_reads_the_version_from_the_training_record(tmp_path):
    from srilab.toy.pair import pair_world

    for version, harmful in ((None, 36), (3, 192)):
        root = tmp_path / f"v{version}"
        for kind in ("ar", "diffusion"):
            (root / kind).mkdir(parents=True)
        config = {"world_seed": 0} | ({"world_version": version} if version else {})
        (root / "training.json").write_text(json.dumps({"config": config}))
        assert len(pair_world(root).harmful_tasks) == harmful
