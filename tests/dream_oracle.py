"""An oracle for Dream's sampler, written apart from :mod:`srilab.sampling.dream` to check it.

A plain reading of the ``_sample`` loop of Dream's ``generation_utils.py`` (no top-p / top-k, unpadded
rows), in this project's own words, one position and one row at a time except where the reference's
result is defined by one batched call (its random draws, which consume the global RNG in a fixed order,
and the ``topk`` whose kernel breaks exact ties). What it holds to, line by line of the reference:

- the canvas is the prompt followed by ``max_new_tokens`` mask tokens; the model sees the whole canvas
  with full attention (no mask, default positions);
- ``timesteps = linspace(1, eps, steps + 1)`` in float32; step ``i`` runs from ``t = timesteps[i]`` to
  ``s = timesteps[i + 1]``;
- each step: one forward pass; logits shifted right by one (position 0 keeps its own); the masked
  positions, prompt masks included, are read in row-major order;
- ``origin``: one uniform draw per masked position, committed where it is below ``1 - s/t`` (1 at the
  last step); the committed ones get a token (the argmax, or one categorical draw over all of them when
  ``temperature > 0``);
- other algs: every masked position gets a token (as above) and a confidence under the (temperature-
  scaled) distribution: the token's probability (``maskgit_plus``), top-1 minus top-2 probability
  (``topk_margin``), the sum of ``p * log(p + 1e-10)`` (``entropy``);
- the count is the same for every row: the batch's masked positions over its rows as a float32 tensor,
  then ``int(average * (1 - s / t))`` before the last step and ``int(average)`` at the last -- truncated,
  so rows with unequal masks may commit fewer than they hold, even at the end;
- each row takes the ``count`` highest confidences of its full-length row, positions that are not masked
  scoring ``-inf`` (or ``count`` positions drawn without replacement from ``softmax(score / alg_temp)``);
  a pick on a position that is not masked writes the mask token there, over what was committed.
"""

from __future__ import annotations

import torch

ORACLE_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")


def _tokens(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities [M, V] and one token per row: the argmax, or one categorical draw for all rows."""
    probs = torch.softmax(logits / temperature if temperature > 0 else logits, dim=-1)
    if temperature > 0:
        try:
            return probs, torch.distributions.Categorical(probs=probs).sample()
        except (ValueError, RuntimeError):  # the reference falls back to the argmax
            pass
    return probs, probs.argmax(dim=-1)


def _confidence(probs: torch.Tensor, tokens: torch.Tensor, alg: str) -> torch.Tensor:
    """Each position's confidence under ``alg`` (one reduction over [M, V], as the reference's)."""
    if alg == "maskgit_plus":
        return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if alg == "topk_margin":
        ranked = torch.sort(probs, dim=-1, descending=True).values
        return ranked[:, 0] - ranked[:, 1]
    return torch.sum(probs * torch.log(probs + 1e-10), dim=-1)


def _step_origin(rows, masked, logits, p_transfer, temperature, mask_id) -> None:
    flat = [(b, j) for b, cols in enumerate(masked) for j in cols]
    draws = torch.rand(len(flat))
    chosen = [pos for pos, u in zip(flat, draws.tolist(), strict=True) if u < p_transfer]
    if not chosen:
        return
    _, tokens = _tokens(torch.stack([logits[b, j] for b, j in chosen]), temperature)
    for (b, j), token in zip(chosen, tokens.tolist(), strict=True):
        rows[b][j] = token


def _step_ranked(rows, masked, logits, count, alg, alg_temp, temperature, mask_id) -> None:
    flat = [(b, j) for b, cols in enumerate(masked) for j in cols]
    probs, tokens = _tokens(torch.stack([logits[b, j] for b, j in flat]), temperature)
    confidence = _confidence(probs, tokens, alg)
    if count <= 0:
        return
    length = len(rows[0])
    scores = torch.full((len(rows), length), -torch.inf)
    proposal = [[mask_id] * length for _ in rows]
    for n, (b, j) in enumerate(flat):
        scores[b, j] = confidence[n]
        proposal[b][j] = int(tokens[n])
    if alg_temp is None or alg_temp == 0:
        picks = torch.topk(scores, count, dim=-1).indices
    else:
        picks = torch.multinomial(torch.softmax(scores / alg_temp, dim=-1), num_samples=count)
    for b, row in enumerate(rows):
        for j in picks[b].tolist():
            row[j] = proposal[b][j]


@torch.no_grad()
def dream_oracle(module, prompt: list[list[int]], *, max_new_tokens: int, steps: int, alg: str, eps: float,
                 mask_id: int, alg_temp: float | None = None, temperature: float = 0.0) -> list[list[int]]:
    """Dream's sampler on equal-length, unpadded ``prompt`` rows, its draws from the global RNG."""
    if alg not in ORACLE_ALGS:
        raise ValueError(f"the oracle covers {ORACLE_ALGS}, not {alg!r}")
    rows = [list(p) + [mask_id] * max_new_tokens for p in prompt]
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        logits = module(torch.tensor(rows)).logits
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # position j reads the logits of j - 1
        masked = [[j for j, tok in enumerate(row) if tok == mask_id] for row in rows]
        t, s, last = timesteps[i], timesteps[i + 1], i == steps - 1
        if alg == "origin":
            _step_origin(rows, masked, logits, 1 if last else float(1 - s / t), temperature, mask_id)
            continue
        average = torch.tensor(sum(len(cols) for cols in masked)) / len(rows)  # float32, as the reference
        count = int(average) if last else int(average * (1 - s / t))
        _step_ranked(rows, masked, logits, count, alg, alg_temp, temperature, mask_id)
    return rows
