"""White-box search attacks (random search, GCG) on the shipped toy pair: the loss, the budget, the registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srilab.attacks import AttackContext, AttackedRequest, apply_attack, get_attack
from srilab.attacks.search import SearchResult, gcg, random_search, target_loss
from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.toy.corpus import eval_sets
from srilab.toy.pair import load_pair, pair_world

TARGET = "sure . here is how :"


@pytest.fixture(scope="module")
def pair():
    # One thread: the toy forward is ~1 ms, and two threads on a shared 2-core machine only contend.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ar, dlm = load_pair()
    yield ar, dlm
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def request_text() -> str:
    return eval_sets(pair_world())["harmful_direct"][0]["prompt"]


def _words(model: LanguageModel, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


SUFFIX = "bread oven twice slowly"


def _hand_ar(ar: LanguageModel, request: str, suffix: str) -> float:
    text = ar.chat_prompt(f"{request} {suffix}", prefill=TARGET)
    ids, _ = ar.encode([text])
    n = len(_words(ar, TARGET))
    logits = ar.logits(ids)[0]  # logits[i] predicts token i + 1
    return float(F.cross_entropy(logits[-n - 1 : -1], ids[0, -n:]))


def _hand_diffusion(dlm: LanguageModel, request: str, suffix: str) -> float:
    prompt, _ = dlm.encode([dlm.chat_prompt(f"{request} {suffix}")])
    target = torch.tensor(_words(dlm, TARGET))
    n = len(target)
    canvas = torch.cat([prompt, torch.full((1, n), dlm.mask_id)], dim=1)
    logits = dlm.logits(canvas)[0]  # aligned: logits[i] predicts token i (Dream's shift undone)
    return float(F.cross_entropy(logits[-n:], target))


def test_target_loss_is_teacher_forced_nll_on_ar(pair, request_text):
    ar, _ = pair
    suffix = _words(ar, SUFFIX)
    assert 1 not in suffix  # every word is in the toy vocabulary (no <unk>)
    got = target_loss(ar, [request_text], torch.tensor([suffix]), TARGET)
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(_hand_ar(ar, request_text, SUFFIX), abs=1e-4)
    # batched rows (different lengths, one prompt each) agree with one-at-a-time evaluation
    rows = [suffix, suffix[:2], _words(ar, "cake")]
    prompts = [request_text, request_text, "how do i bake bread ?"]
    batched = target_loss(ar, prompts, rows, TARGET, batch=2)
    single = [float(target_loss(ar, [p], [r], TARGET)[0]) for p, r in zip(prompts, rows, strict=True)]
    assert batched.tolist() == pytest.approx(single, abs=1e-5)
    assert float(batched[1]) == pytest.approx(_hand_ar(ar, request_text, "bread oven"), abs=1e-4)


def test_target_loss_reads_a_masked_canvas_on_diffusion(pair, request_text):
    _, dlm = pair
    suffix = _words(dlm, SUFFIX)
    got = float(target_loss(dlm, request_text, [suffix], TARGET)[0])
    assert got == pytest.approx(_hand_diffusion(dlm, request_text, SUFFIX), abs=1e-4)
    # a Dream-style view of the same weights: the logits one position earlier are read
    dream = dataclasses.replace(dlm, logits_shift=1)
    shifted = float(target_loss(dream, request_text, [suffix], TARGET)[0])
    assert shifted == pytest.approx(_hand_diffusion(dream, request_text, SUFFIX), abs=1e-4)
    assert abs(shifted - got) > 1e-3


def _check_result(model: LanguageModel, r: SearchResult, request: str, budget: int) -> None:
    assert r.queries <= budget and r.queries == len(r.history) and r.query_budget == budget
    assert r.history[0] == pytest.approx(r.initial_loss)
    assert all(b <= a for a, b in zip(r.history, r.history[1:], strict=False))
    assert r.history[-1] == pytest.approx(r.best_loss)
    # the returned suffix really has the reported loss, and its text is its ids
    again = float(target_loss(model, request, [r.suffix_ids], TARGET)[0])
    assert again == pytest.approx(r.best_loss, abs=1e-4)
    assert _words(model, r.suffix) == r.suffix_ids
    assert r.seconds > 0


def test_random_search_lowers_the_loss_within_its_budget(pair, request_text):
    ar, _ = pair
    r = random_search(ar, request_text, TARGET, suffix_tokens=12, query_budget=80, seed=0)
    _check_result(ar, r, request_text, 80)
    assert r.queries == 80  # one candidate per query, the budget used exactly
    assert len(r.suffix_ids) == 12
    assert r.best_loss < r.initial_loss - 1.0
    batched = random_search(ar, request_text, TARGET, suffix_tokens=12, query_budget=45, batch=8, seed=0)
    _check_result(ar, batched, request_text, 45)
    assert batched.queries == 45 and batched.best_loss < batched.initial_loss


def test_gcg_lowers_the_loss_within_its_budget(pair, request_text):
    ar, _ = pair
    r = gcg(ar, request_text, TARGET, suffix_tokens=12, query_budget=80, top_k=16, batch=12, seed=0)
    _check_result(ar, r, request_text, 80)
    assert r.queries >= 79  # a last iteration needs 2 queries (gradient + one candidate)
    assert r.best_loss < r.initial_loss - 1.0


def test_gcg_runs_on_the_diffusion_model(pair, request_text):
    _, dlm = pair
    r = gcg(dlm, request_text, TARGET, suffix_tokens=8, query_budget=40, top_k=16, batch=12, seed=0)
    _check_result(dlm, r, request_text, 40)
    assert r.best_loss < r.initial_loss
    first = gcg(dlm, request_text, TARGET, suffix_tokens=8, query_budget=1, seed=0)
    again = float(target_loss(dlm, request_text, [first.suffix_ids], TARGET)[0])
    assert first.initial_loss == pytest.approx(again, abs=1e-4)
    assert first.initial_loss == pytest.approx(r.initial_loss)  # same seed, same initial suffix


def test_tiny_budgets_are_respected(pair, request_text):
    ar, _ = pair
    for fn in (random_search, gcg):
        one = fn(ar, request_text, TARGET, suffix_tokens=5, query_budget=1, seed=0)
        assert one.queries == 1 and one.best_loss == one.initial_loss
        # gcg's first loss comes from its gradient pass (inputs_embeds): the same as the loss from ids
        again = float(target_loss(ar, request_text, [one.suffix_ids], TARGET)[0])
        assert one.initial_loss == pytest.approx(again, abs=1e-4)
    two = gcg(ar, request_text, TARGET, suffix_tokens=5, query_budget=2, batch=8, seed=0)
    assert two.queries == 2
    with pytest.raises(SrilabError, match="query_budget"):
        random_search(ar, request_text, TARGET, query_budget=0)


def test_same_seed_same_suffix(pair, request_text):
    ar, _ = pair
    for fn in (random_search, gcg):
        a = fn(ar, request_text, TARGET, suffix_tokens=6, query_budget=20, seed=3)
        b = fn(ar, request_text, TARGET, suffix_tokens=6, query_budget=20, seed=3)
        c = fn(ar, request_text, TARGET, suffix_tokens=6, query_budget=20, seed=4)
        assert a.suffix_ids == b.suffix_ids and a.history == b.history
        assert a.suffix_ids != c.suffix_ids


class _IdsOnly(nn.Module):
    """A module that takes token ids only (no ``inputs_embeds``), like srilab's native LLaDA/Dream stack."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self) -> nn.Module:
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_gcg_needs_inputs_embeds(pair, request_text):
    ar, _ = pair
    ids_only = dataclasses.replace(ar, module=_IdsOnly(ar.module), name="ids-only-model")
    with pytest.raises(SrilabError, match="ids-only-model.*inputs_embeds"):
        gcg(ids_only, request_text, TARGET, query_budget=5)
    # random search and the loss need ids only
    r = random_search(ids_only, request_text, TARGET, suffix_tokens=4, query_budget=5)
    assert r.best_loss == pytest.approx(float(target_loss(ar, request_text, [r.suffix_ids], TARGET)[0]), abs=1e-4)


def test_registered_attacks(pair, request_text):
    ar, _ = pair
    for name in ("random_search", "gcg"):
        attack = get_attack(name)
        assert attack.needs == "whitebox" and attack.doc and attack.source
        assert attack.applies_to("ar") and attack.applies_to("diffusion")
        ctx = AttackContext(target=TARGET, model=ar, seed=1, options={"query_budget": 30, "suffix_tokens": 6})
        out = apply_attack(name, request_text, ctx)
        assert isinstance(out, AttackedRequest) and out.attack == name
        assert out.prompt.startswith(request_text + " ") and out.prompt == f"{request_text} {out.meta['suffix']}"
        assert out.prefill is None and not out.canvas
        assert out.meta["queries"] <= 30 and out.meta["best_loss"] <= out.meta["initial_loss"]
        assert len(out.meta["suffix_ids"]) == 6 and out.meta["suffix_roundtrip"]
        assert apply_attack(name, request_text, ctx).prompt == out.prompt  # deterministic in the seed


def test_attack_errors(pair, request_text):
    ar, _ = pair
    with pytest.raises(SrilabError, match="the random_search attack is white-box: it needs the attacked model"):
        apply_attack("random_search", request_text, AttackContext(target=TARGET))
    with pytest.raises(SrilabError, match="the gcg attack is white-box"):
        apply_attack("gcg", request_text, AttackContext(target=TARGET))
    bad = AttackContext(target=TARGET, model=ar, options={"budget": 10})
    with pytest.raises(SrilabError, match="unknown random_search option.*budget.*query_budget, suffix_tokens"):
        apply_attack("random_search", request_text, bad)
    with pytest.raises(SrilabError, match="top_k"):
        apply_attack("gcg", request_text, AttackContext(target=TARGET, model=ar, options={"top_k": 0}))
    with pytest.raises(SrilabError, match="n_change"):
        apply_attack("gcg", request_text, AttackContext(target=TARGET, model=ar, options={"n_change": 2}))


# ------------------------------------------------------------------------------------------------ published settings
def test_published_settings_are_accepted_not_run():
    from srilab.attacks.search_attacks import PUBLISHED, check_options

    gcg_opts = check_options("gcg", PUBLISHED["gcg"])
    assert gcg_opts == {"steps": 500, "batch": 512, "top_k": 256, "suffix_tokens": 20, "query_budget": 256_500}
    rs = check_options("random_search", PUBLISHED["random_search"])
    assert rs["iterations"] == 10_000 and rs["query_budget"] == 10_001 and rs["template"] == "rules"
    assert rs["suffix_tokens"] == 25 and rs["n_change"] == 4
    with pytest.raises(SrilabError, match="template must be one of none, rules"):
        check_options("random_search", {"template": "best"})
    with pytest.raises(SrilabError, match="unknown gcg option.*iterations"):
        check_options("gcg", {"iterations": 3})  # GCG caps with steps, random search with iterations


def test_iteration_caps_stop_before_the_budget(pair, request_text):
    ar, _ = pair
    rs = random_search(ar, request_text, TARGET, suffix_tokens=4, query_budget=50, iterations=3, seed=0)
    assert rs.queries == 1 + 3 and rs.settings["iterations"] == 3
    g = gcg(ar, request_text, TARGET, suffix_tokens=4, query_budget=500, batch=4, steps=2, seed=0)
    assert g.queries <= 2 * (1 + 4) and g.settings["steps"] == 2
    with pytest.raises(SrilabError, match="steps"):
        gcg(ar, request_text, TARGET, steps=0)


def test_random_search_in_the_rule_template(pair, request_text):
    from srilab.attacks.search_attacks import RULE_TEMPLATE

    ar, _ = pair
    ctx = AttackContext(target=TARGET, model=ar, options={"query_budget": 3, "suffix_tokens": 3, "template": "rules"})
    out = apply_attack("random_search", request_text, ctx)
    templated = RULE_TEMPLATE.replace("{target}", TARGET).replace("{r}", request_text)
    assert out.prompt == f"{templated} {out.meta['suffix']}" and out.meta["template"] == "rules"
    assert request_text in out.prompt and out.prompt.count("<rule>\n") == 6 and out.meta["queries"] <= 3
