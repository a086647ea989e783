import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="module")
def prompt_mask_rows(golden_dir):
    return json.loads((golden_dir / "llada-tiny" / "generate_prompt_masks.json").read_text())


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


# ------------------------------------------------------------------------------------------------ masks in the prompt
# The golden rows were computed where float32 softmax sums over 8 lanes (AVX2). On an AVX-512 CPU it sums
# over 16 and rounds differently; the tiny random model's predictions are near-uniform (p ~ 1/280), so
# float32 confidences tie exactly now and then, and a different rounding changes which position a tie
# gives -- LLaDA's reference itself, re-run on such a CPU, then differs from these rows. So the reference
# rows are re-run in a process pinned to the golden's arithmetic (ATEN_CPU_CAPABILITY must be set before
# torch loads), through both the block-logits path and the full-logits path.
REFERENCE_CPU = "avx2"


def _reference_runs(model_dir: str, out_path: str) -> None:
    """(Run in the pinned process.) Every row of both golden files through the sampler, both logits paths."""
    import srilab.models as models

    torch.set_num_threads(1)  # a tiny model: one thread, and no spinning against the test process
    model = models.load(Path(model_dir))
    runs = {}
    for name in ("generate.json", "generate_prompt_masks.json"):
        rows = json.loads((Path(model_dir) / name).read_text())
        runs[name] = [[_run(m, row).tolist() for m in (model.module, _FullLogitsOnly(model.module))] for row in rows]
    Path(out_path).write_text(json.dumps(runs))


@pytest.fixture(scope="module")
def reference_runs(golden_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "runs.json"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": REFERENCE_CPU, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, __file__, str(golden_dir / "llada-tiny"), str(out)], env=env, check=True, timeout=600,
        capture_output=True,
    )
    return json.loads(out.read_text())


def test_reproduces_every_prompt_mask_reference_output(prompt_mask_rows, reference_runs):
    rows, runs = prompt_mask_rows, reference_runs["generate_prompt_masks.json"]
    assert rows and all(any(299 in p for p in row["prompt"]) for row in rows)
    assert len(runs) == len(rows)
    for n, (row, (fast, full)) in enumerate(zip(rows, runs, strict=True)):
        assert fast == row["output"], n
        assert full == row["output"], n
        # masks_left counts the masks of the whole output: filled prompt masks, response positions left masked
        assert sum(t == row["mask_id"] for r in fast for t in r) == row["masks_left"], n


def test_reproduces_every_reference_output_under_the_reference_arithmetic(golden_rows, reference_runs):
    runs = reference_runs["generate.json"]
    assert len(runs) == len(golden_rows)
    for row, (fast, full) in zip(golden_rows, runs, strict=True):
        assert fast == full == row["output"]


def test_reference_prompt_masks_compete_for_the_block_budget(llada, prompt_mask_rows):
    # Masked prompt positions are never excluded: they get filled, and the response may keep masks.
    filled = left = 0
    for row in prompt_mask_rows:
        prompt = torch.tensor(row["prompt"])
        out = _run(llada.module, row)
        given = prompt != row["mask_id"]
        assert torch.equal(out[:, : prompt.shape[1]][given], prompt[given])
        filled += int((out[:, : prompt.shape[1]][~given] != row["mask_id"]).sum())
        left += int((out[:, prompt.shape[1] :] == row["mask_id"]).sum())
    assert filled > 0 and left > 0


def test_schedule_mode_fills_every_mask(llada, prompt_mask_rows, golden_rows):
    for row in prompt_mask_rows:
        prompt = torch.tensor(row["prompt"])
        out = _run(llada.module, row, prompt_masks="schedule")
        assert not (out == row["mask_id"]).any()
        given = prompt != row["mask_id"]
        assert torch.equal(out[:, : prompt.shape[1]][given], prompt[given])
    for row in golden_rows:  # without masks in the prompt the two modes are the same sampler
        assert _run(llada.module, row, prompt_masks="schedule").tolist() == row["output"]


def test_schedule_mode_spreads_prompt_masks_over_the_first_block(llada):
    prompt = torch.tensor([[110, 299, 299, 299, 299, 4, 299, 191]])  # 5 prompt masks
    with Tracer(llada, TraceConfig(canvas=True), 1) as tr:
        out = generate(llada.module, prompt, steps=8, gen_length=16, block_length=8, mask_id=299,
                       prompt_masks="schedule", tracer=tr)
    canvas = tr.result().canvas[0]
    assert not (out == 299).any()
    assert (canvas[3, :8] != 299).all() and (canvas[3, 8:] == 299).all()  # block 0 done, block 1 untouched
    # 8 + 5 masks over the first block's 4 steps: 4, 3, 3, 3 commits; the response part is what is left.
    assert [int((c == 299).sum()) for c in canvas[4:]] == [6, 4, 2, 0]


@pytest.mark.parametrize("mode", ["reference", "schedule"])
@pytest.mark.parametrize("name,shift", [("llada-tiny", 0), ("dream-tiny", 1)])
@pytest.mark.parametrize("block_length,cfg", [(8, 0.0), (4, 0.0), (4, 1.5)])
def test_prompt_masks_block_logits_path_equals_full_logits_path(golden_dir, name, shift, mode, block_length, cfg):
    model = M.load(golden_dir / name)
    g = torch.Generator().manual_seed(4)
    prompt = torch.randint(5, 90, (3, 7), generator=g)
    prompt[0, 0] = prompt[1, 3] = prompt[1, 4] = prompt[2, 6] = 299  # position 0 too: Dream has no position -1
    attention = torch.ones_like(prompt)
    attention[2, :2] = 0  # left padding in one row
    kw = dict(steps=8, gen_length=16, block_length=block_length, mask_id=299, logits_shift=shift, cfg_scale=cfg,
              prompt_masks=mode)
    fast = generate(model.module, prompt, attention, **kw)
    slow = generate(_FullLogitsOnly(model.module), prompt, attention, **kw)
    assert torch.equal(fast, slow)


def test_prompt_masks_are_not_traced_as_response(llada):
    prompt = torch.tensor([[110, 299, 299, 140, 4], [49, 211, 299, 77, 239]])
    with Tracer(llada, TraceConfig(canvas=True, pooling="response"), 2) as tr:
        out = generate(llada.module, prompt, steps=8, gen_length=16, block_length=8, mask_id=299, tracer=tr)
    trace = tr.result()
    assert trace.canvas.shape == (2, 8, 16) and torch.equal(trace.canvas[:, -1], out[:, 5:])
    x = torch.cat([prompt, torch.full((2, 16), 299)], dim=1)
    captured = {}
    hook = llada.final_norm.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    with torch.no_grad():
        llada.module(x)
    hook.remove()
    assert torch.allclose(trace.activations[:, 0], captured["h"][:, 5:].mean(1), atol=1e-5)


def test_unknown_prompt_masks_mode(llada):
    with pytest.raises(SrilabError, match="unknown prompt_masks"):
        generate(llada.module, torch.tensor([[1, 2]]), steps=2, gen_length=2, block_length=2, mask_id=299,
                 prompt_masks="ignore")


if __name__ == "__main__":  # the pinned reference process of reference_runs
    _reference_runs(sys.argv[1], sys.argv[2])
