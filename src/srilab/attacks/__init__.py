"""Attacks: one registry (:data:`ATTACKS`); each attack turns a request into an :class:`AttackedRequest`.

An attacked request is the prompt text, an optional assistant prefill, and for diffusion an optional
canvas plan (text written into response positions before or during denoising). :mod:`.base` says what an
attack is; :mod:`.continuation` (continuation and diffusion-native attacks), :mod:`.prompt` (prompt-level
attacks and the template library) and :mod:`.search` (white-box suffix search) register theirs.
"""

from srilab.attacks import continuation, prompt, search  # noqa: F401  (each registers its attacks)
from srilab.attacks.base import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackedRequest,
    CanvasText,
    add_attack,
    apply_attack,
    get_attack,
    list_attacks,
    register,
)
from srilab.attacks.prompt import flip_text, load_default_templates, load_templates, read_templates, unflip

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackContext",
    "AttackedRequest",
    "CanvasText",
    "add_attack",
    "apply_attack",
    "get_attack",
    "list_attacks",
    "register",
    "flip_text",
    "load_default_templates",
    "load_templates",
    "read_templates",
    "unflip",
]
load_default_templates()  # the shipped template library: template:aim, template:developer_mode, ...
