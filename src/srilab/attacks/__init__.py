"""Attacks: one registry (:data:`ATTACKS`); each attack turns a request into an :class:`AttackedRequest`.

An attacked request is the prompt text, an optional assistant prefill, and for diffusion an optional
canvas plan (text written into response positions before or during denoising). :mod:`.base` says what an
attack is (and the ``<mask:N>`` prompt syntax); :mod:`.continuation` (continuation and response-canvas
attacks), :mod:`.dija` (DIJA's interleaved text/mask prompts), :mod:`.prompt` (prompt-level attacks and the
template library), :mod:`.tactics` (WildJailbreak-style tactic composition), :mod:`.pair` (PAIR) and
:mod:`.search` (white-box suffix search) register theirs; :mod:`.agents` runs the models some of them use.
"""

from srilab.attacks import continuation, dija, pair, prompt, search_attacks, tactics  # noqa: F401  (registering)
from srilab.attacks.agents import ChatModel
from srilab.attacks.base import (
    ATTACKS,
    MASK_SPAN,
    Attack,
    AttackContext,
    AttackedRequest,
    CanvasText,
    add_attack,
    apply_attack,
    get_attack,
    list_attacks,
    mask_span,
    register,
    split_mask_spans,
)
from srilab.attacks.prompt import flip_text, load_default_templates, load_templates, read_templates, unflip

__all__ = [
    "ATTACKS",
    "MASK_SPAN",
    "Attack",
    "AttackContext",
    "AttackedRequest",
    "CanvasText",
    "ChatModel",
    "add_attack",
    "apply_attack",
    "get_attack",
    "list_attacks",
    "mask_span",
    "register",
    "split_mask_spans",
    "flip_text",
    "load_default_templates",
    "load_templates",
    "read_templates",
    "unflip",
]
load_default_templates()  # the shipped template library: template:aim, template:developer_mode, ...
