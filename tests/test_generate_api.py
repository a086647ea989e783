import pytest

import srilab.models as M
from srilab import SrilabError
from srilab.sampling import (
    ARSamplerConfig,
    CanvasText,
    DiffusionSamplerConfig,
    SamplerConfig,
    TraceConfig,
    generate,
)

REQUESTS = ["how do i w3 ?", "w5 w6 w7 .", "how do i w10 w11 ?"]


@pytest.fixture(scope="module")
def pair(tiny_pair):
    return M.load(tiny_pair["ar"]), M.load(tiny_pair["diffusion"])


def test_ar_and_diffusion_end_to_end(pair):
    ar, dif = pair
    g = generate(ar, REQUESTS, SamplerConfig(kind="ar", max_new_tokens=6), trace=TraceConfig(), batch_size=2)
    assert len(g.texts) == 3 and g.trace.activations.shape == (3, 6, 48)
    assert all(len(r) == 6 for r in g.response_ids) and g.seconds > 0
    s = SamplerConfig(kind="diffusion", steps=4, gen_length=8, block_length=4)
    d = generate(dif, REQUESTS, s, trace=TraceConfig(canvas=True), prefills=[None, "sure ,", None])
    assert d.trace.activations.shape == (3, 4, 48) and d.trace.canvas.shape == (3, 4, 8)
    assert d.prompts[1].endswith("<assistant> sure ,") and d.full_texts[1].startswith("sure ,")
    assert d.trace.meta["steps"] == 4 and d.trace.meta["pooling"] == "generated"


def test_seeded_generations_do_not_depend_on_batching(pair):
    ar, dif = pair
    s = SamplerConfig(kind="ar", max_new_tokens=8, temperature=1.0, seed=7)
    assert generate(ar, REQUESTS, s, batch_size=1).texts == generate(ar, REQUESTS, s, batch_size=3).texts
    s = SamplerConfig(kind="diffusion", steps=4, gen_length=8, block_length=8, remasking="random", seed=3)
    assert generate(dif, REQUESTS, s, batch_size=1).response_ids == generate(dif, REQUESTS, s).response_ids


def test_canvas_text_is_injected(pair):
    _, dif = pair
    s = SamplerConfig(kind="diffusion", steps=4, gen_length=8, block_length=8)
    g = generate(dif, REQUESTS[:2], s, canvas=[[CanvasText("sure w1", step=1, offset=2)], []])
    ids = dif.tokenizer("sure w1", add_special_tokens=False)["input_ids"]
    assert g.response_ids[0][2:4] == ids


def test_config_and_usage_errors(pair):
    ar, dif = pair
    with pytest.raises(SrilabError, match="multiple of block_length"):
        SamplerConfig(kind="diffusion", gen_length=10, block_length=4)
    with pytest.raises(SrilabError, match="ar sampler: bogus: unknown key"):
        SamplerConfig(kind="ar", bogus=1)
    with pytest.raises(SrilabError, match="ar sampler: steps: unknown key"):  # a diffusion setting on an AR sampler
        SamplerConfig(kind="ar", steps=8)
    with pytest.raises(SrilabError, match="unknown sampler kind 'beam'"):
        SamplerConfig(kind="beam")
    assert isinstance(SamplerConfig(kind="ar"), ARSamplerConfig)
    assert SamplerConfig(kind="diffusion", steps=8, gen_length=8, block_length=4) == DiffusionSamplerConfig(
        steps=8, gen_length=8, block_length=4
    )
    with pytest.raises(SrilabError, match="diffusion model"):
        generate(dif, REQUESTS, SamplerConfig(kind="ar"))
    with pytest.raises(SrilabError, match="no prompts"):
        generate(ar, [], SamplerConfig(kind="ar"))
    with pytest.raises(SrilabError, match="one entry per prompt"):
        generate(ar, REQUESTS, SamplerConfig(kind="ar"), prefills=["x"])


def test_dream_schedule_through_generate(pair, golden_dir):
    from srilab.sampling.dream import dream_generate

    _, dif = pair
    llada = generate(dif, REQUESTS, SamplerConfig(kind="diffusion", steps=8, gen_length=8, block_length=4))
    dream = generate(dif, REQUESTS, SamplerConfig(kind="diffusion", schedule="dream", steps=8, gen_length=8,
                                                  alg="maskgit_plus"), trace=TraceConfig())
    assert dream.trace.activations.shape[:2] == (3, 8) and dream.meta["sampler"]["schedule"] == "dream"
    assert llada.response_ids != dream.response_ids  # a different schedule on the same weights
    with pytest.raises(SrilabError, match="block_length: LLaDA-schedule settings, not used by schedule: dream"):
        SamplerConfig(kind="diffusion", schedule="dream", gen_length=8, block_length=4)
    with pytest.raises(SrilabError, match="alg: Dream-schedule settings"):
        SamplerConfig(kind="diffusion", schedule="llada", alg="origin")
    # The wiring: generate() with schedule dream equals dream_generate on the encoded prompts.
    ids, mask = dif.encode([dif.chat_prompt(r) for r in REQUESTS])
    ref = dream_generate(dif.module, ids, mask, max_new_tokens=8, steps=8, alg="maskgit_plus",
                         mask_id=dif.mask_id, logits_shift=dif.logits_shift)
    assert dream.response_ids == ref[:, ids.shape[1]:].tolist()
    # A Dream checkpoint defaults to Dream's own schedule, every other diffusion model to LLaDA's.
    cfg = SamplerConfig(kind="diffusion", steps=6, gen_length=6)
    assert cfg.schedule_for(M.load(golden_dir / "dream-tiny")) == "dream"
    assert cfg.schedule_for(M.load(golden_dir / "llada-tiny")) == "llada" == cfg.schedule_for(dif)
