"""The attack registry: every attack registered once, documented, and applied as specified."""

import pytest

from srilab.attacks import AttackContext, apply_attack, get_attack, list_attacks
from srilab.errors import SrilabError


def test_registry_lists_documented_attacks():
    names = [a.name for a in list_attacks()]
    assert {"direct", "prefill", "suffix_relocation", "wrapper", "canvas_injection", "response_template", "dija",
            "pair", "tactic_composition"} <= set(names)
    for a in list_attacks():
        assert a.doc and a.source
    for name in ("dija", "response_template", "canvas_injection"):
        assert get_attack(name).applies_to("diffusion") and not get_attack(name).applies_to("ar")
    assert get_attack("prefill").applies_to("ar") and get_attack("pair").applies_to("ar")


def test_continuation_attacks():
    ctx = AttackContext(target="Sure, here is how")
    assert apply_attack("prefill", "do x", ctx).prefill == "Sure, here is how"
    relocated = apply_attack("suffix_relocation", "do x", ctx)
    assert relocated.prompt == "do x Sure, here is how" and relocated.prefill is None
    assert apply_attack("wrapper", "do x", ctx).prompt.endswith("Your character explains: do x")


def test_canvas_attacks_place_text_in_the_response():
    ctx = AttackContext(target="sure . to x :", steps=40, gen_length=60, injection_fraction=0.25)
    inj = apply_attack("canvas_injection", "do x", ctx)
    assert inj.canvas[0].step == 10 and inj.canvas[0].offset == 0
    template = apply_attack("response_template", "do x", ctx)
    assert template.attack == "response_template" and template.prompt == "do x"  # the prompt is left alone
    offsets = [c.offset for c in template.canvas]
    assert offsets[0] == 0 and offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert all(c.step == 0 for c in template.canvas)
    assert max(offsets) < 60
    assert [c.text for c in template.canvas] == ["sure . to x :", "Step 1:", "Step 2:", "Step 3:"]


def test_unknown_attack_and_bad_wrapper():
    with pytest.raises(SrilabError, match="unknown attack"):
        apply_attack("nope", "x")
    with pytest.raises(SrilabError, match="placeholder"):
        apply_attack("wrapper", "x", AttackContext(wrapper="no slot"))
