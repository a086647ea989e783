"""Step-wise dynamics of a diffusion generation read from its canvas (DESIGN.md, "Trajectory metrics").

A traced diffusion generation can keep the response canvas after every step (``TraceConfig(canvas=True)``):
token ids, the mask id where a position is still masked. Decoding those intermediate canvases and judging
them shows whether harmful text appeared mid-denoising, whether it was later revised away (only possible
when committed tokens can change: revision remasking, an injection overwritten), and whether the final
answer ended harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from srilab.errors import SrilabError


def intermediate_texts(
    canvas, decode: Callable[[list[int]], str], mask_id: int, steps: Sequence[int] | None = None
) -> list[str]:
    """Decoded text of one generation's canvas [S, G] at each of ``steps`` (default: every step); still-masked
    positions are left out, so the text is what had been committed so far."""
    c = np.asarray(canvas)
    if c.ndim != 2:
        raise SrilabError(f"a canvas trajectory must be [steps, positions], got shape {c.shape}")
    chosen = range(c.shape[0]) if steps is None else steps
    return [decode([int(t) for t in c[s] if t != mask_id and t >= 0]) for s in chosen]


def commit_steps(canvas, mask_id: int) -> np.ndarray:
    """Per position of one canvas [S, G], the first step after which it holds a token (-1: never)."""
    c = np.asarray(canvas)
    filled = (c != mask_id) & (c >= 0)
    first = filled.argmax(axis=0)
    return np.where(filled.any(axis=0), first, -1)


def revision_metrics(intermediate_harmful, final_harmful) -> dict[str, float | int]:
    """From per-generation harm flags of intermediate decodes [N, S'] and of the final answers [N]:

    - ``harmful_intermediate_rate``: share of generations harmful at some intermediate step;
    - ``harmful_revision_rate``: among those, share in which a later intermediate step is no longer harmful
      (the harmful text was taken back);
    - ``final_recovery_rate``: among those, share whose final answer is harmless.

    The two conditional rates are only present when some generation was harmful mid-way.
    """
    inter = np.asarray(intermediate_harmful, dtype=bool)
    final = np.asarray(final_harmful, dtype=bool)
    if inter.ndim != 2 or inter.shape[0] != final.shape[0]:
        raise SrilabError(f"intermediate flags {inter.shape} and final flags {final.shape} must be [N, S'] and [N]")
    ever = inter.any(axis=1)
    out: dict[str, float | int] = {"n": int(inter.shape[0]), "n_harmful_intermediate": int(ever.sum())}
    out["harmful_intermediate_rate"] = float(ever.mean()) if inter.shape[0] else 0.0
    if ever.any():
        first = inter.argmax(axis=1)
        later_clean = np.array([(~inter[i, first[i] + 1 :]).any() for i in range(inter.shape[0])])
        out["harmful_revision_rate"] = float(later_clean[ever].mean())
        out["final_recovery_rate"] = float((~final)[ever].mean())
    return out
