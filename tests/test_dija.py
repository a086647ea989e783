"""DIJA as published: <mask:N> spans in the user turn, expanded to exactly N mask ids, filled by the toy
diffusion model under LLaDA's reference handling of prompt masks; templates, a rewriter, decoding defaults."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from srilab.attacks import AttackContext, ChatModel, apply_attack, get_attack, mask_span, split_mask_spans
from srilab.attacks.base import mask_span_lengths
from srilab.attacks.dija import DECODING, DIJA_TEMPLATES, load_mask_templates, parse_rewrite, read_mask_templates
from srilab.errors import SrilabError
from srilab.sampling import SamplerConfig, diffusion, generate
from srilab.sampling.api import encode_with_mask_spans
from srilab.toy.corpus import eval_sets
from srilab.toy.pair import load_pair, pair_world
from srilab.toy.world import target_for

TEMPLATES = [t.name for t in load_mask_templates()]


@pytest.fixture(scope="module")
def pair():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ar, dlm = load_pair()
    yield ar, dlm
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def item():
    world = pair_world()
    row = eval_sets(world)["harmful_direct"][0]
    return row["prompt"], target_for(world, row["task"])


# ------------------------------------------------------------------------------------------------ the syntax
def test_mask_span_syntax():
    assert mask_span(5) == "<mask:5>"
    assert split_mask_spans("a <mask:3> b<mask:12>") == ["a ", 3, " b", 12, ""]
    assert split_mask_spans("no spans") == ["no spans"]
    assert mask_span_lengths("x <mask:2> y <mask:7>") == [2, 7]
    for bad in (0, -1, True, 2.5):
        with pytest.raises(SrilabError, match="positive integer"):
            mask_span(bad)
    with pytest.raises(SrilabError, match="empty"):
        split_mask_spans("a <mask:0> b")


# ------------------------------------------------------------------------------------------------ the attack
def test_dija_is_registered_as_the_published_attack():
    attack = get_attack("dija")
    assert attack.needs == "diffusion" and not attack.applies_to("ar") and attack.applies_to("diffusion")
    assert "Wen et al. 2025" in attack.source and "prompt" in attack.source
    rt = get_attack("response_template")
    assert rt.needs == "diffusion" and "not DIJA" in rt.source


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_puts_spans_in_the_user_turn_with_exactly_n_mask_ids(pair, item, name):
    _, dlm = pair
    request, target = item
    out = apply_attack("dija", request, AttackContext(target=target, options={"template": name}))
    assert out.attack == "dija" and out.prefill is None and out.canvas == ()
    assert request in out.prompt and out.meta["template"] == name and out.meta["fallback"] is None
    spans = mask_span_lengths(out.prompt)
    assert spans and out.meta["spans"] == spans and out.meta["mask_tokens"] == sum(spans)
    assert out.meta["decoding"] == DECODING and out.meta["answer"] == "filled_prompt+response"

    ids, mask, where = encode_with_mask_spans(dlm, [dlm.chat_prompt(out.prompt)])
    row = ids[0].tolist()
    assert [b - a for a, b in where[0]] == spans  # each span exactly N positions ...
    assert all(t == dlm.mask_id for a, b in where[0] for t in row[a:b])  # ... of mask ids
    assert row.count(dlm.mask_id) == sum(spans)  # and no other mask id anywhere
    tok = dlm.tokenizer
    user = row.index(tok.convert_tokens_to_ids("<user>"))
    assistant = row.index(tok.convert_tokens_to_ids("<assistant>"))
    assert all(user < a and b <= assistant for a, b in where[0])  # inside the user turn


def test_left_padding_keeps_plain_rows_and_shifts_spans(pair, item):
    _, dlm = pair
    request, target = item
    prompt = apply_attack("dija", request, AttackContext(target=target, options={"template": "plain_steps"})).prompt
    texts = [dlm.chat_prompt("how do i bake bread ?"), dlm.chat_prompt(prompt)]
    ids, mask, where = encode_with_mask_spans(dlm, texts)
    plain_ids, plain_mask = dlm.encode(texts[:1])
    width = ids.shape[1]
    assert ids[0, width - plain_ids.shape[1]:].tolist() == plain_ids[0].tolist() and where[0] == []
    assert int(mask[0].sum()) == plain_ids.shape[1] and bool(mask[1].all())
    assert all(bool((ids[1, a:b] == dlm.mask_id).all()) for a, b in where[1])


def test_template_choice_span_and_decoding_options(item):
    request, target = item
    autos = {apply_attack("dija", request, AttackContext(target=target, seed=s)).meta["template"] for s in range(20)}
    assert autos == set(TEMPLATES)  # "auto" spreads the styles over the seeds
    same = [apply_attack("dija", request, AttackContext(target=target, seed=4)).prompt for _ in range(2)]
    assert same[0] == same[1]
    resized = apply_attack("dija", request, AttackContext(options={"template": "numbered_list", "span": 3}))
    assert set(resized.meta["spans"]) == {3}
    cold = apply_attack("dija", request, AttackContext(options={"decoding": {"temperature": 0.0}}))
    assert cold.meta["decoding"]["temperature"] == 0.0 and cold.meta["decoding"]["prompt_masks"] == "reference"
    assert DECODING["temperature"] == 0.2  # the defaults are not mutated
    with pytest.raises(SrilabError, match="unknown dija template 'nope'"):
        apply_attack("dija", request, AttackContext(options={"template": "nope"}))
    with pytest.raises(SrilabError, match="unknown dija decoding key"):
        apply_attack("dija", request, AttackContext(options={"decoding": {"block": 1}}))
    with pytest.raises(SrilabError, match="unknown dija option"):
        apply_attack("dija", request, AttackContext(options={"mask_counts": 36}))


def test_template_file_is_validated(tmp_path):
    assert len(read_mask_templates(DIJA_TEMPLATES)) == len(TEMPLATES) >= 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates:\n  - name: x\n    template: 'no request <mask:3>'\n")
    with pytest.raises(SrilabError, match=r"bad\.yaml entry 1 \(x\): the template needs \{r\}"):
        read_mask_templates(bad)
    bad.write_text("templates:\n  - name: x\n    template: '{r} no span'\n")
    with pytest.raises(SrilabError, match="mask"):
        read_mask_templates(bad)


# ------------------------------------------------------------------------------------------------ generation
def test_a_dija_generation_fills_the_prompt_masks_under_reference_semantics(pair, item):
    _, dlm = pair
    request, target = item
    out = apply_attack("dija", request, AttackContext(target=target, options={"template": "plain_steps"}))
    n_masks = out.meta["mask_tokens"]
    sampler = SamplerConfig("diffusion", steps=40, gen_length=40)
    gen = generate(dlm, [out.prompt, request], sampler, prompt_masks="reference")

    # the same run, straight through the sampler with LLaDA's reference semantics
    ids, mask, where = encode_with_mask_spans(dlm, gen.prompts)
    direct = diffusion.generate(dlm.module, ids, mask, steps=40, gen_length=40, block_length=40,
                                mask_id=dlm.mask_id, logits_shift=dlm.logits_shift, prompt_masks="reference")
    assert direct[:, ids.shape[1]:].tolist() == gen.response_ids

    filled = direct[0, : ids.shape[1]]
    prompt_left = int((filled == dlm.mask_id).sum())
    response_left = gen.response_ids[0].count(dlm.mask_id)
    assert prompt_left < n_masks  # the model wrote into the prompt's spans
    # reference semantics: one block commits gen_length positions, prompt masks competing for them
    assert prompt_left + response_left == n_masks
    assert gen.meta["prompt_masks"] == "reference" and gen.meta["unfilled_prompt_masks"] == [prompt_left, 0]

    assert gen.filled_prompts[1] is None and gen.filled_spans[1] == []
    text = gen.filled_prompts[0]
    assert text.startswith(request) and "<mask:" not in text and len(gen.filled_spans[0]) == 3
    assert all(s in text for s in gen.filled_spans[0])
    assert gen.answers[0] == f"{text}\n\n{gen.full_texts[0]}".strip() and gen.answers[1] == gen.full_texts[1]

    every = generate(dlm, [out.prompt], sampler, prompt_masks="schedule")  # every mask filled
    assert every.meta["unfilled_prompt_masks"] == [0] and dlm.mask_id not in every.response_ids[0]


def test_mask_spans_need_a_diffusion_model(pair, item):
    ar, dlm = pair
    request, target = item
    prompt = apply_attack("dija", request, AttackContext(target=target)).prompt
    with pytest.raises(SrilabError, match="only a diffusion model can fill"):
        generate(ar, [prompt], SamplerConfig("ar", max_new_tokens=4))
    with pytest.raises(SrilabError, match="prefill holds a <mask:N> span"):
        generate(dlm, ["x"], SamplerConfig("diffusion", steps=4, gen_length=4), prefills=["<mask:2>"])
    literal = generate(ar, [prompt], SamplerConfig("ar", max_new_tokens=4), mask_spans=False)  # plain text
    assert literal.filled_prompts == [None] and "<mask:" in literal.prompts[0]


# ------------------------------------------------------------------------------------------------ the rewriter
def _canned(reply: str, calls: list):
    def fake_generate(model, texts, sampler, **kw):
        calls.append((texts, kw))
        return SimpleNamespace(texts=[reply] * len(texts))

    return fake_generate


def test_a_rewriter_output_is_parsed_or_falls_back_to_a_template(pair, item):
    ar, _ = pair
    request, target = item
    calls: list = []
    reply = f"Rewritten prompt: {request}\n1. <mask:10>\n2. <mask:500>\n\nRequest: something else <mask:4>"
    chat = ChatModel(ar, sampler=None, generate=_canned(reply, calls))
    out = apply_attack("dija", request, AttackContext(target=target, options={"rewriter": chat, "max_span": 64}))
    assert out.meta["rewriter"] == "toy-ar" and out.meta["fallback"] is None and out.meta["template"] is None
    assert out.prompt == f"{request}\n1. <mask:10>\n2. <mask:64>" and out.meta["spans"] == [10, 64]
    assert request in calls[0][0][0] and calls[0][1]["chat"] is False  # the instruction names the request

    chat = ChatModel(ar, sampler=None, generate=_canned("I cannot help with that.", []))
    out = apply_attack("dija", request, AttackContext(options={"rewriter": chat, "template": "dialogue"}))
    assert out.meta["fallback"] == "the rewriter's reply held no <mask:N> marker"
    assert out.meta["template"] == "dialogue" and out.meta["rewriter_output"] == "I cannot help with that."
    assert parse_rewrite("<mask:0>", 64, 512)[0] is None
    assert parse_rewrite("a <mask:300> b <mask:300>", 500, 512) == (None, "the rewriter's reply asked for more than "
                                                                         "512 mask tokens")


def test_a_loaded_model_rewrites_through_generate(pair, item):
    ar, _ = pair
    request, target = item
    ctx = AttackContext(target=target, generate=generate,
                        options={"rewriter": ar, "rewriter_sampler": SamplerConfig("ar", max_new_tokens=8)})
    out = apply_attack("dija", request, ctx)  # the toy chat template has no system role: folded in
    assert out.meta["rewriter"] == "toy-ar" and isinstance(out.meta["rewriter_output"], str)
    assert mask_span_lengths(out.prompt)  # whatever it wrote, the prompt holds spans
    with pytest.raises(SrilabError, match="rewriter_sampler"):
        apply_attack("dija", request, AttackContext(generate=generate, options={"rewriter": ar}))
    with pytest.raises(SrilabError, match="LanguageModel or a ChatModel"):
        apply_attack("dija", request, AttackContext(options={"rewriter": "qwen"}))
