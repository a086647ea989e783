"""Continuation and diffusion-native attacks (see :mod:`srilab.attacks.base` for what an attack is).

Continuation attacks (Andriushchenko et al. 2024 "prefilling"; Wen et al. 2025 on DLMs):

- ``direct``: the request unchanged (the baseline);
- ``prefill``: the assistant's answer is forced to start with ``target``;
- ``suffix_relocation``: the same continuation-triggering text moved into the user turn, after the
  request (what the DLM papers do when a prefill cannot be forced).

Diffusion-native attacks (they need a diffusion sampler):

- ``canvas_injection``: ``target`` written into the first response positions at step
  ``injection_step`` of the denoising (refinement injection; priming when the step is 0);
- ``response_template``: an interleaved text/mask *response* template -- the compliance opening and step
  markers (``ctx.step_markers``) written into the response canvas at step 0, the masks between them left
  for the model to fill. srilab shipped this under the name ``dija`` before; it is not DIJA: published DIJA
  (Wen et al. 2025, ``srilab.attacks.dija``) puts text and masks in the *user prompt* and leaves the
  response alone. This attack is a canvas-priming analogue of the prefilling attacks above, spread over
  several response positions.
"""

from __future__ import annotations

from srilab.attacks.base import AttackContext, AttackedRequest, CanvasText, register
from srilab.errors import SrilabError


# ------------------------------------------------------------------------------------------------ attacks
@register("direct", source="baseline")
def direct(request: str, ctx: AttackContext) -> AttackedRequest:
    """The request as it is."""
    return AttackedRequest("direct", request)


@register("prefill", source="Andriushchenko et al. 2024; Qi et al. 2024 (prefilling attack)")
def prefill(request: str, ctx: AttackContext) -> AttackedRequest:
    """The assistant's answer forced to start with the affirmative target."""
    return AttackedRequest("prefill", request, prefill=ctx.target)


@register("suffix_relocation", source="Wen et al. 2025 (continuation text relocated after the request)")
def suffix_relocation(request: str, ctx: AttackContext) -> AttackedRequest:
    """The continuation-triggering target moved into the user turn, after the request."""
    return AttackedRequest("suffix_relocation", f"{request} {ctx.target}")


@register("wrapper", source="role-play / hypothetical wrappers (semantic constraint relaxation; Wei et al. 2023)")
def wrapper(request: str, ctx: AttackContext) -> AttackedRequest:
    """The request inside a role-play, story or hypothetical template (``context.wrapper``)."""
    if "{r}" not in ctx.wrapper:
        raise SrilabError("the wrapper template needs a {r} placeholder where the request goes")
    return AttackedRequest("wrapper", ctx.wrapper.replace("{r}", request), meta={"wrapper": ctx.wrapper})


@register("canvas_injection", needs="diffusion", source="refinement injection into intermediate denoising states")
def canvas_injection(request: str, ctx: AttackContext) -> AttackedRequest:
    """The target written into the first response positions partway through denoising."""
    step = min(ctx.steps - 1, max(0, int(round(ctx.injection_fraction * ctx.steps))))
    return AttackedRequest(
        "canvas_injection", request, canvas=(CanvasText(ctx.target, step=step, offset=0),), meta={"step": step}
    )


@register(
    "response_template",
    needs="diffusion",
    source="srilab: response-canvas priming with step markers (not DIJA, which masks the prompt: see 'dija')",
)
def response_template(request: str, ctx: AttackContext) -> AttackedRequest:
    """An interleaved text/mask response template written into the canvas before denoising."""
    plan = [CanvasText(ctx.target, step=0, offset=0)]
    start = ctx.tokens(ctx.target)
    n = len(ctx.step_markers)
    span = ctx.dija_span or max(1, (ctx.gen_length - start) // (n + 1))
    for i, marker in enumerate(ctx.step_markers):
        offset = start + i * span
        if offset + ctx.tokens(marker) < ctx.gen_length:
            plan.append(CanvasText(marker, step=0, offset=offset))
    return AttackedRequest("response_template", request, canvas=tuple(plan))
