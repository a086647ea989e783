import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import srilab.models as M
from srilab import SrilabError
from srilab.models.loading import _find_submodules


@pytest.mark.parametrize("name", ["llada-tiny", "dream-tiny"])
def test_native_parity_with_reference(golden_dir, name):
    lm = M.load(golden_dir / name)
    ref = load_file(str(golden_dir / name / "forward.safetensors"))
    captured = {}
    handle = lm.final_norm.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    try:
        with torch.no_grad():
            raw = lm.module(ref["input_ids"]).logits
    finally:
        handle.remove()
    assert raw.shape == ref["logits"].shape
    assert (raw - ref["logits"]).abs().max().item() <= 1e-4
    assert (captured["h"] - ref["final_hidden"]).abs().max().item() <= 1e-4


def test_formats_are_detected(golden_dir, tiny_pair):
    llada, dream = M.load(golden_dir / "llada-tiny"), M.load(golden_dir / "dream-tiny")
    assert (llada.kind, llada.mask_id, llada.logits_shift) == ("diffusion", 299, 0)
    assert (dream.kind, dream.mask_id, dream.logits_shift) == ("diffusion", 299, 1)
    ar, dif = M.load(tiny_pair["ar"]), M.load(tiny_pair["diffusion"])
    assert ar.kind == "ar" and dif.kind == "diffusion"
    assert dif.mask_id == dif.tokenizer.mask_token_id
    assert ar.final_norm is ar.module.model.norm and len(ar.layers) == 2


def test_dream_logits_are_shifted_for_samplers(golden_dir):
    lm = M.load(golden_dir / "dream-tiny")
    ids = load_file(str(golden_dir / "dream-tiny" / "forward.safetensors"))["input_ids"]
    raw = lm.module(ids).logits
    aligned = lm.logits(ids)
    assert torch.equal(aligned[:, 1:], raw[:, :-1]) and torch.equal(aligned[:, 0], raw[:, 0])


def test_hidden_module_selection(golden_dir):
    lm = M.load(golden_dir / "llada-tiny")
    assert lm.hidden_module("last") is lm.final_norm
    assert lm.hidden_module("first") is lm.layers[0]
    assert lm.hidden_module("middle") is lm.layers[1]
    assert lm.hidden_module(-1) is lm.layers[1]
    with pytest.raises(SrilabError, match="out of range"):
        lm.hidden_module(5)
    with pytest.raises(SrilabError, match="unknown layer"):
        lm.hidden_module("penultimate")


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(SrilabError, match="does not exist"):
        M.load(tmp_path / "nope")
    with pytest.raises(SrilabError, match="GGUF file"):
        M.load(tmp_path / "nope.gguf")


def test_bad_configs(tmp_path, golden_dir):
    (tmp_path / "a").mkdir()
    with pytest.raises(SrilabError, match="no config.json"):
        M.load(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text("{not json")
    with pytest.raises(SrilabError, match="not valid JSON"):
        M.load(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "wizardlm9000"}))
    with pytest.raises(SrilabError, match="unknown model_type"):
        M.load(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "wizardlm9000", "auto_map": {"x": "y"}}))
    with pytest.raises(SrilabError, match="trust-remote-code"):
        M.load(tmp_path / "a")


def test_incomplete_native_checkpoint(tmp_path, golden_dir):
    dst = tmp_path / "llada"
    shutil.copytree(golden_dir / "llada-tiny", dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["n_layers"] = 3  # the weights only have two blocks
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SrilabError, match="complete llada checkpoint"):
        M.load(dst)
    (dst / "model.safetensors").unlink()
    with pytest.raises(SrilabError, match="no safetensors weights"):
        M.load(dst)


def test_model_without_final_norm_is_rejected():
    class NoNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    with pytest.raises(SrilabError, match="no final norm"):
        _find_submodules(NoNorm(), "nonorm")


@pytest.mark.parametrize("which", ["toy-diffusion", "llada-tiny", "dream-tiny"])
def test_bidirectional_model_cannot_be_forced_to_ar(tiny_pair, golden_dir, which):
    # Native LLaDA/Dream checkpoints too: once accepted, then an AttributeError deep in AR sampling.
    path = tiny_pair["diffusion"] if which == "toy-diffusion" else golden_dir / which
    with pytest.raises(SrilabError, match="bidirectional attention.*block_length=1"):
        M.load(path, kind="ar")


def test_chat_prompt_and_prefill(tiny_pair):
    lm = M.load(tiny_pair["ar"])
    text = lm.chat_prompt("how do i w3 ?", prefill="sure ,")
    assert text.endswith("<assistant> sure ,") and "<user> how do i w3 ?" in text
    ids, mask = lm.encode(["w1", "w1 w2 w3"])
    assert ids.shape == (2, 3) and mask.tolist() == [[0, 0, 1], [1, 1, 1]]
    assert ids[0, 0].item() == lm.pad_token_id


def test_a_gguf_conversion_is_kept_once_per_process_and_each_caller_gets_a_copy(tmp_path, monkeypatch):
    from srilab.models import gguf

    file = tmp_path / "m.gguf"
    file.write_bytes(b"x")
    built = []

    def build():
        built.append(1)
        return torch.nn.Linear(3, 2), {"vocab": [1, 2]}

    gguf.clear()
    a, tok_a = gguf.converted(file, torch.float32, build)
    b, tok_b = gguf.converted(file, torch.float32, build)
    assert len(built) == 1 and a is not b and tok_a is not tok_b and torch.equal(a.weight, b.weight)
    with torch.no_grad():
        a.weight.add_(1.0)  # a caller's change reaches no other caller
    assert not torch.equal(a.weight, gguf.converted(file, torch.float32, build)[0].weight)
    gguf.converted(file, torch.bfloat16, build)  # another dtype is another conversion
    file.write_bytes(b"xy")  # a changed file is converted again
    gguf.converted(file, torch.float32, build)
    assert len(built) == 3
    monkeypatch.setattr(gguf, "MEMO_BYTES", 0)  # too big to keep: built every time, nothing kept
    gguf.clear()
    gguf.converted(file, torch.float32, build)
    gguf.converted(file, torch.float32, build)
    assert len(built) == 5


def test_rotary_frequencies_stay_float32_when_the_module_is_cast(golden_dir):
    """``module.to(torch.bfloat16)`` (what a GPU user does) must give the model ``load(dtype="bfloat16")`` gives: the
    rotary frequencies are not a buffer that the cast would round (at position 4096 bf16 ones are radians off)."""
    import copy

    ids = load_file(str(golden_dir / "llada-tiny" / "forward.safetensors"))["input_ids"]
    loaded = M.load(golden_dir / "llada-tiny", dtype="bfloat16").module
    cast = copy.deepcopy(M.load(golden_dir / "llada-tiny").module).to(torch.bfloat16)
    assert cast.rotary.inv_freq.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(cast(ids).logits, loaded(ids).logits)
    # built on the meta device and materialised elsewhere (to_empty), the frequencies are still there
    with torch.device("meta"):
        empty = type(loaded)(loaded.config)
    empty = empty.to_empty(device="cpu")
    assert torch.equal(empty.rotary.inv_freq, loaded.rotary.inv_freq)
