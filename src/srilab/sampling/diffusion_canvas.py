"""The state of one masked-diffusion generation, :class:`Canvas`, and what a step does to it.

:class:`srilab.sampling.diffusion_step.Denoiser` keeps one canvas per batch and calls its methods in the order
of LLaDA's reference loop (inject -> forward -> x0 and confidence -> choose -> commit -> trace). All positions
here are canvas positions (prompt included), so a masked prompt position is handled like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from srilab.sampling.diffusion_rules import get_num_transfer_tokens, minus_inf_where_not, top_k_mask

INJECTED = -2  # commit step of injected positions: a live monitor's re-masking leaves them alone
PROMPT_MASKS = ("reference", "schedule")


@dataclass
class Canvas:
    """The sequence being decoded and its bookkeeping.

    ``x`` [B, P + G]: the prompt then the response, the mask id where still masked. ``prompt_index``: the
    positions that held a token at the start (what classifier-free guidance masks in its unconditional
    branch). ``commit_step`` [B, P + G]: the step that committed each position (-1: masked or given,
    :data:`INJECTED`: written by an injection), kept only under a live monitor, which may ask to re-mask by
    commit step. ``banned`` [n, 3]: (row, position, token) a live monitor took back; never recommitted.
    ``schedule`` [B, steps per block]: how many positions each step of the current block ``[b0, b1)``
    commits.
    """

    x: torch.Tensor
    plen: int
    mask_id: int
    prompt_index: torch.Tensor
    prompt_masks: str = "reference"
    row_start: tuple[int, ...] = ()
    commit_step: torch.Tensor | None = None
    banned: torch.Tensor | None = None
    schedule: torch.Tensor | None = None
    b0: int = 0
    b1: int = 0
    steps: int = 1

    @classmethod
    def start(
        cls, prompt: torch.Tensor, gen_length: int, mask_id: int, attention_mask: torch.Tensor | None = None,
        prompt_masks: str = "reference", monitored: bool = False,
    ) -> Canvas:
        """The prompt (left-padded where ``attention_mask`` is 0) followed by ``gen_length`` masks."""
        batch, plen = prompt.shape
        x = torch.full((batch, plen + gen_length), mask_id, dtype=torch.long, device=prompt.device)
        x[:, :plen] = prompt.clone()
        row_start = (0,) * batch
        if attention_mask is not None and plen:
            row_start = tuple((attention_mask != 0).to(torch.int8).argmax(dim=1).tolist())
        commit_step = torch.full_like(x, -1) if monitored else None
        return cls(x, plen, mask_id, x != mask_id, prompt_masks, row_start, commit_step)

    @property
    def response(self) -> torch.Tensor:
        """The response part of ``x`` (a view: writing into it writes into ``x``)."""
        return self.x[:, self.plen :]

    # ------------------------------------------------------------------------------ schedule
    def begin_block(self, b0: int, b1: int, steps: int, stopped: torch.Tensor | None) -> None:
        """Enter the block ``[b0, b1)`` (canvas positions) decoded in ``steps`` steps and plan its schedule:
        the block's own masks (``prompt_masks="reference"``, LLaDA's budget) or every mask up to the block's
        end (``"schedule"``: masked prompt positions are budgeted too, so they are all filled)."""
        self.b0, self.b1, self.steps = b0, b1, steps
        lo = self.window_start(stopped) if self.prompt_masks == "schedule" else b0
        self.schedule = get_num_transfer_tokens(self.x[:, lo:b1] == self.mask_id, steps)

    def window_start(self, stopped: torch.Tensor | None) -> int:
        """The first position that may be committed this step: the first masked position before the block in
        a row that is not stopped (a masked prompt position, one a live monitor re-masked in a finished
        block, one left over by an earlier block), else the block's start. As in the reference, those compete
        with the block for the step's budget."""
        late = self.x[:, : self.b0] == self.mask_id
        if stopped is not None:
            late &= ~stopped[:, None]
        cols = late.any(dim=0).nonzero()
        return int(cols[0]) if len(cols) else self.b0

    def respread(self, i: int, lo: int, rows: torch.Tensor | None = None) -> None:
        """The canvas changed before step ``i`` of the block: spread what is left over the remaining steps
        (the block's masks, plus, once a live monitor re-masked, the masked response positions before it;
        with ``prompt_masks="schedule"`` every mask from ``lo``). ``rows`` (bool [B]): only those rows' plans
        change (threshold decoding respreads the rows that committed more than planned)."""
        if self.prompt_masks == "schedule":
            start = lo
        else:
            start = self.b0 if self.banned is None else max(lo, self.plen)
        left = get_num_transfer_tokens(self.x[:, start : self.b1] == self.mask_id, self.steps - i)
        if rows is not None:
            left = torch.where(rows[:, None], left, self.schedule[:, i:])
        self.schedule = torch.cat([self.schedule[:, :i], left], dim=1)

    def budget_left(self, i: int) -> torch.Tensor:
        """Long [B]: how many commits the plan still holds for steps ``i..`` of the block (0: the row is done
        with the block, as far as the schedule goes)."""
        return self.schedule[:, i:].sum(dim=1)

    # ------------------------------------------------------------------------------ changes before a step
    def inject(self, injections: Sequence) -> bool:
        """Write the injections' tokens into the response; whether anything was written."""
        for inj in injections:
            rows = list(inj.rows) if inj.rows is not None else slice(None)
            a = self.plen + inj.offset
            ids = torch.tensor(inj.token_ids, dtype=torch.long, device=self.x.device)
            self.x[rows, a : a + len(ids)] = ids
            if self.commit_step is not None:
                self.commit_step[rows, a : a + len(ids)] = INJECTED
        return bool(injections)

    def take_back(self, requests: dict[int, int]) -> None:
        """Re-mask, per requested row, the response positions committed at or after the requested step and
        ban the tokens taken back there. Injected text and the prompt (masked prompt positions the model
        filled included) are the attacker's input and stay."""
        taken = [] if self.banned is None else [self.banned]
        for row, since in requests.items():
            back = (self.commit_step[row, self.plen :] >= since).nonzero().flatten() + self.plen
            taken.append(torch.stack([torch.full_like(back, row), back, self.x[row, back]], dim=1))
            self.x[row, back] = self.mask_id
            self.commit_step[row, back] = -1
        self.banned = torch.cat(taken)

    def ban(self, logits: torch.Tensor, lo: int) -> None:
        """Set to -inf, in the logits of the window ``[lo, b1)``, the tokens banned at their positions."""
        if self.banned is None:
            return
        b = self.banned[(self.banned[:, 1] >= lo) & (self.banned[:, 1] < self.b1)]
        logits[b[:, 0], b[:, 1] - lo, b[:, 2]] = -torch.inf

    # ------------------------------------------------------------------------------ the step's decision
    def revise(
        self, logits: torch.Tensor, lo: int, mask_index: torch.Tensor, k: torch.Tensor, revision: float
    ) -> torch.Tensor:
        """ReMDM-style revision: which committed positions of the current block to re-mask, the
        ``floor(revision * c)`` of its ``c`` committed tokens the model now finds least likely (no more than
        the masks left beyond the step's budget ``k``). Bool [B, b1 - lo]."""
        window = self.x[:, lo : self.b1]
        committed = ~mask_index
        committed[:, : self.b0 - lo] = False  # revision takes back tokens of the current block only
        p_cur = F.softmax(logits.float(), dim=-1).gather(-1, window.unsqueeze(-1)).squeeze(-1)
        n_re = torch.floor(revision * committed.sum(dim=1).float()).long()
        n_re = torch.minimum(n_re, mask_index.sum(dim=1) - k)
        return top_k_mask(minus_inf_where_not(committed, -p_cur), n_re)

    def choose(self, conf: torch.Tensor, lo: int, k: torch.Tensor) -> torch.Tensor:
        """Which positions of the window ``[lo, b1)`` to commit: per row, the ``k[b]`` most confident, chosen
        as the reference chooses them -- one ``topk`` per row over the row's confidence laid out on its whole
        canvas, -inf outside the window -- so that exact ties (frequent in float32 when predictions are
        near-uniform) fall the same way. A row's left padding is left out of that layout, so the choice does
        not depend on the batch it is in. Bool [B, b1 - lo]."""
        k = torch.minimum(k, torch.isfinite(conf).sum(dim=1)).tolist()
        full = torch.full(self.x.shape, -torch.inf, dtype=conf.dtype, device=conf.device)
        full[:, lo : self.b1] = conf
        out = torch.zeros(self.x.shape, dtype=torch.bool, device=conf.device)
        for row, (kr, s) in enumerate(zip(k, self.row_start, strict=True)):
            if kr > 0:
                out[row, s + torch.topk(full[row, s:], kr).indices] = True
        return out[:, lo : self.b1]

    def commit(
        self, lo: int, transfer: torch.Tensor, x0: torch.Tensor, revised: torch.Tensor | None, step: int
    ) -> None:
        """Write ``x0`` at the ``transfer`` positions of the window ``[lo, b1)`` and re-mask the revised ones."""
        window = self.x[:, lo : self.b1]  # a view
        window[transfer] = x0[transfer]
        if self.commit_step is not None:
            self.commit_step[:, lo : self.b1][transfer] = step
        if revised is not None:
            window[revised] = self.mask_id
            if self.commit_step is not None:
                self.commit_step[:, lo : self.b1][revised] = -1

    def x0_trace(self, lo: int, x0: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's x0 over the response, for the tracer: tokens int32 [B, G] and probabilities float16.

        Inside the window ``[lo, b1)`` (the positions whose logits the step computed) the token is the
        sampler's x0 (its prediction where the position was masked, the committed token where it was not) and
        the probability the model now gives it. Outside the window the step made no prediction: the token
        is the canvas's (committed token, or the mask id where still masked) and the probability 0."""
        p = F.softmax(logits.float(), dim=-1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        tokens = self.x.clone()
        tokens[:, lo : self.b1] = x0
        probs = torch.zeros(self.x.shape, dtype=torch.float16, device=self.x.device)
        probs[:, lo : self.b1] = p.to(torch.float16)
        return tokens[:, self.plen :].to(torch.int32), probs[:, self.plen :]
