"""DiffuGuard's block-level audit and repair, behind the same timed defense interface as the baselines.

Source: Li et al. 2025, "DiffuGuard: How Intrinsic Safety is Lost and Found in Diffusion Large Language
Models". DiffuGuard is training-free and has two stages: *stochastic annealing remasking* (a remasking rule
of the sampler: ``remasking: diffuguard``, :mod:`srilab.sampling.diffusion_rules`) and *block-level audit and
repair*: after each block is generated, the model's own internal representation audits it, and a flagged
block is remasked and generated again, steered towards safety. This module is the second stage.

What srilab does (:class:`DiffuGuard`):

- **Direction** (``fit``, or the ``harmful`` / ``harmless`` options: a few requests each). The state of the
  traced module (``layer``, default the final norm) where the answer starts: a diffusion model's mean over
  the first block's positions of the prompt followed by a fully masked response, an AR model's last prompt
  position. ``d`` = the normalised difference of the harmful and harmless means (a refusal / harmfulness
  direction, as in Arditi et al. 2024), ``scale`` = the length of that difference.
- **Audit** of an answer: for every block k that holds text, the canvas the sampler had when block k was
  done (the prompt, blocks 0..k, the later blocks masked) is run once, and ``a_k`` = the mean state of the
  next, still masked, block projected on ``d``: where the model goes on after block k, read in the same
  space as the direction (an AR model: one causal pass, the state at block k's last token). On the toy pair
  this separates jailbroken answers from benign ones; the block's own states, and the last prompt position,
  did not (an AUROC near 0.5). A block is *flagged* when ``a_k`` exceeds
  the threshold: ``threshold`` if given, else the ``flag_quantile`` quantile (default the maximum) of the
  largest ``a_k`` of the answers the model gives to ``calibrate`` of the harmless fit requests (benign-only
  calibration: no harmless fit answer would be repaired).
- **Score** = ``max_k a_k - threshold``: higher = the answer holds a block more like the harmful side =
  more likely a successful attack, as every detector here (the study compares it at a matched benign FPR).
- **Repair** of a flagged answer: the first flagged block and everything after it are masked again (the
  later blocks do not exist yet when DiffuGuard audits a block) and decoded again from the blocks before it,
  under LLaDA's block schedule with the sampler's steps per block and ``repair_remasking`` (default
  stochastic annealing; AR models: the AR sampler), with ``steer * scale * d`` added to the traced module's
  output at the regenerated positions (safety steering) and, optionally, ``repair_prefix`` written before the
  request. The repaired answer is audited again, up to ``max_repairs`` repairs. Unflagged answers are left as
  they are. After :meth:`score`: ``last_responses`` (the answers after repair), ``last_refused`` (the
  refusal judge on them, for attack success after the defense), ``last_flagged`` (first flagged block, -1:
  none), ``last_repairs`` and ``last_audits`` (every block's ``a_k``).

In a study, the defense phase builds it as ``diffuguard(model, **options)``: give the arm's decoding as
``options.sampler`` (e.g. ``{steps: 80, gen_length: 80, block_length: 16}``; default 64 / 64 / 16) and the
contrast requests as ``options.harmful`` / ``options.harmless`` (it is fitted on them before its first
score); every other keyword above is an option too. The study records the score; the repaired answers and
their refusals are the ``last_*`` attributes (not yet written to ``defenses.jsonl``).

Where srilab departs from the paper: the project's seed documents do not quote DiffuGuard, so the audit
signal (a projection on a harmful-vs-harmless direction), its threshold (benign-only calibration), the
steering form and the defaults are srilab's reading of "internal representations for risk detection and
guided correction", not the paper's exact statistic or constants. The audit reads the answer after it was
generated (the study's answer text, re-tokenised; the blocks' states are those the sampler had, since later
blocks never change earlier ones), rather than inside the arm's sampling loop, so the same defense scores
any arm; a prefill or canvas plan of the attack is kept as answer text, not replayed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from srilab.defenses.base import DEFENSES, Defense, as_texts
from srilab.errors import SrilabError
from srilab.judges.refusal import RefusalJudge
from srilab.models.base import LanguageModel, LayerSpec
from srilab.sampling import autoregressive, diffusion
from srilab.sampling.api import Sampler, SamplerConfig, generate
from srilab.sampling.diffusion_rules import remasking_rule


@DEFENSES.register("diffuguard", source='Li et al. 2025, "DiffuGuard: How Intrinsic Safety is Lost and Found in '
                   'Diffusion Large Language Models" (block-level audit and repair)')
class DiffuGuard(Defense):
    """Audit every block of an answer on a harmfulness direction; repair (remask and regenerate, steered) the
    flagged ones. Score = the highest block audit minus the flag threshold."""

    needs_generation = True

    def __init__(
        self, model: LanguageModel, sampler: Sampler | dict | None = None, *, seed: int = 0,
        harmful: Sequence[str] | None = None, harmless: Sequence[str] | None = None, layer: LayerSpec = "last",
        block_length: int | None = None, threshold: float | None = None, flag_quantile: float = 1.0,
        calibrate: int = 8, steer: float = 1.0, repair_remasking: str = "diffuguard",
        repair_prefix: str | None = None, max_repairs: int = 2, repair: bool = True,
        judge: RefusalJudge | None = None, name: str = "diffuguard",
    ) -> None:
        model.require_tokenizer()
        if isinstance(sampler, dict):
            sampler = SamplerConfig(**{"kind": model.kind, **sampler})
        if sampler is None:
            sampler = SamplerConfig(model.kind, **({"steps": 64, "gen_length": 64, "block_length": 16}
                                                  if model.kind == "diffusion" else {"max_new_tokens": 64}))
        self.block = int(block_length or getattr(sampler, "blocks_of", 16))  # AR: blocks of 16 tokens
        self.gen_length = sampler.response_length
        if self.block < 1 or not 0.0 <= flag_quantile <= 1.0 or calibrate < 1 or max_repairs < 0:
            raise SrilabError("diffuguard: need block_length >= 1, flag_quantile in [0, 1], calibrate >= 1 and "
                              "max_repairs >= 0")
        if (harmful is None) != (harmless is None):
            raise SrilabError("diffuguard: give both harmful and harmless requests (a few each), or neither")
        remasking_rule(repair_remasking)
        self.model, self.sampler, self.seed, self.layer = model, sampler, seed, layer
        self.module = model.hidden_module(layer)
        self.steps_per_block = max(1, sampler.num_steps * self.block // self.gen_length)
        self.threshold, self.flag_quantile, self.calibrate = threshold, flag_quantile, calibrate
        self.steer, self.repair_remasking, self.repair_prefix = steer, repair_remasking, repair_prefix
        self.max_repairs, self.repair = max_repairs, repair
        self.judge = judge if judge is not None else RefusalJudge()
        self.name = name
        self._fit_requests = None if harmful is None else (list(harmless), list(harmful))
        self.direction: torch.Tensor | None = None
        self.scale = 0.0
        self.last_responses: list[str] = []
        self.last_refused: list[bool] = []
        self.last_flagged: list[int] = []
        self.last_repairs: list[int] = []
        self.last_audits: list[list[float]] = []

    # ------------------------------------------------------------------------------------------ states
    @contextmanager
    def _capture(self, steer_from: int | None = None):
        """Capture the traced module's output (``captured``); with ``steer_from``, add the steering vector to
        it at positions >= ``steer_from`` (later calls of a KV-cached AR loop: every position)."""
        captured: list[torch.Tensor] = []

        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if steer_from is not None and self.direction is not None and self.steer:
                start = steer_from if out.shape[1] > 1 else 0  # a KV-cached AR step holds the new token only
                push = (self.steer * self.scale) * self.direction.to(out.device, out.dtype)
                out = out.clone()
                out[:, max(start, 0):] += push
                return (out, *output[1:]) if isinstance(output, tuple) else out
            captured.append(out.detach().float())
            return None

        handle = self.module.register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()

    def _prompt_ids(self, request: str) -> list[int]:
        text = f"{self.repair_prefix}\n{request}" if self.repair_prefix else request
        return self.model.encode([self.model.chat_prompt(text)])[0][0].tolist()

    @torch.no_grad()
    def _answer_start(self, requests: Sequence[str]) -> torch.Tensor:
        """float [N, D]: the state where the answer starts (see the module docstring, "Direction")."""
        lm, out = self.model, []
        for q in requests:
            ids = lm.encode([lm.chat_prompt(q)])[0][0].tolist()
            p = len(ids)
            if lm.kind == "diffusion":
                ids = ids + [lm.mask_id] * self.gen_length
            with self._capture() as got:
                lm.module(torch.tensor([ids], device=lm.device))
            h = got[-1][0]
            s = lm.logits_shift if lm.kind == "diffusion" else 1
            out.append(h[p - s : p - s + (self.block if lm.kind == "diffusion" else 1)].mean(0))
        return torch.stack(out)

    @torch.no_grad()
    def audit(self, request: str, answer_ids: Sequence[int]) -> list[float]:
        """``a_k`` for every block of the answer (token ids after the chat prompt) that holds text."""
        if self.direction is None:
            raise SrilabError(f"{self.name} is not fitted: call fit(benign, harmful) or pass harmful/harmless")
        lm, L = self.model, self.block
        prompt = lm.encode([lm.chat_prompt(request)])[0][0].tolist()
        p, n_blocks = len(prompt), max(1, math.ceil(len(answer_ids) / L))
        width = max(self.gen_length, n_blocks * L) + L  # one masked block more: the one after the last
        pad = lm.eos_token_ids[0] if lm.eos_token_ids else (lm.pad_token_id or 0)
        full = list(answer_ids) + [pad] * (width - len(answer_ids))
        if lm.kind == "diffusion":  # block k done, the next block masked: read where the answer goes on
            rows = [prompt + full[: (k + 1) * L] + [lm.mask_id] * (width - (k + 1) * L) for k in range(n_blocks)]
            at = [(k, p + (k + 1) * L - lm.logits_shift, L) for k in range(n_blocks)]
        else:  # causal: one pass; the state at a block's last token predicts what follows it
            rows, at = [prompt + full[: n_blocks * L]], [(0, p + (k + 1) * L - 1, 1) for k in range(n_blocks)]
        with self._capture() as got:
            lm.module(torch.tensor(rows, device=lm.device))
        h, d = got[-1], self.direction.to(got[-1].device)
        return [float(h[row, a : a + n].mean(0) @ d) for row, a, n in at]

    def answer_ids(self, answer: str) -> list[int]:
        return self.model.encode([answer])[0][0].tolist() if answer.strip() else []

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, benign_requests: Sequence[str], harmful_requests: Sequence[str]) -> DiffuGuard:
        """The direction from the two sets of requests; the flag threshold (unless given) from the answers the
        model gives to the first ``calibrate`` benign ones under the sampler."""
        benign, harmful = as_texts(benign_requests, "benign requests"), as_texts(harmful_requests, "harmful requests")
        mu_b, mu_h = self._answer_start(benign).mean(0), self._answer_start(harmful).mean(0)
        diff = mu_h - mu_b
        self.scale = float(diff.norm())
        if not math.isfinite(self.scale) or self.scale == 0.0:
            raise SrilabError("diffuguard: harmful and harmless requests have the same mean state: no direction")
        self.direction = diff / self.scale
        self._fit_requests = None
        if self.threshold is None:
            cal = benign[: self.calibrate]
            gen = generate(self.model, cal, self.sampler, seeds=[self.seed + i for i in range(len(cal))])
            tops = [max(self.audit(q, self.answer_ids(a))) for q, a in zip(cal, gen.full_texts, strict=True)]
            self.threshold = float(np.quantile(tops, self.flag_quantile))
        return self

    # ------------------------------------------------------------------------------------------ repair
    @torch.no_grad()
    def _regenerate(self, request: str, kept: list[int]) -> list[int]:
        """The answer decoded again after the ``kept`` token ids (blocks before the flagged one), steered; the
        noise of the repair is seeded by ``seed`` and the request (the same item repairs the same way in any
        batch, also after a resume)."""
        lm = self.model
        prefix = self._prompt_ids(request) + kept
        rest = max(1, math.ceil((self.gen_length - len(kept)) / self.block)) * self.block  # whole blocks
        ids = torch.tensor([prefix], device=lm.device)
        with self._capture(steer_from=len(prefix) - (lm.logits_shift if lm.kind == "diffusion" else 1)):
            if lm.kind == "diffusion":
                out = diffusion.generate(
                    lm.module, ids, steps=self.steps_per_block * (rest // self.block), gen_length=rest,
                    block_length=self.block, remasking=self.repair_remasking, mask_id=lm.mask_id,
                    logits_shift=lm.logits_shift, generator=[self.seed + zlib.crc32(request.encode())],
                )
            else:
                out = autoregressive.generate(
                    lm.module, ids, max_new_tokens=rest, eos_token_id=lm.eos_token_ids,
                    pad_token_id=lm.pad_token_id or 0,
                )
        return kept + out[0, len(prefix):].tolist()

    def _guard(self, request: str, answer: str) -> tuple[float, str, int, int, list[float]]:
        """(score, answer after repair, first flagged block or -1, repairs, first audit) of one answer."""
        ids = self.answer_ids(answer)
        audits = self.audit(request, ids)
        score = max(audits) - self.threshold
        first = next((k for k, a in enumerate(audits) if a > self.threshold), -1)
        repairs, k = 0, first
        while self.repair and k >= 0 and repairs < self.max_repairs:
            ids = self._regenerate(request, ids[: k * self.block])
            repairs += 1
            answer = self.model.decode(ids)
            ids = self.answer_ids(answer)
            k = next((j for j, a in enumerate(self.audit(request, ids)) if j >= k and a > self.threshold), -1)
        return score, answer, first, repairs, audits

    def score(self, requests: Sequence[str], responses: Sequence[str] | None = None) -> np.ndarray:
        requests = as_texts(requests, "requests")
        responses = self._require_responses(requests, responses)
        if self.direction is None:
            if self._fit_requests is None:
                raise SrilabError(
                    f"{self.name} needs a harmfulness direction: pass options harmful: [...] and harmless: [...] "
                    "(a few requests each) or call fit(benign_requests, harmful_requests)"
                )
            self.fit(*self._fit_requests)
        results = [self._guard(q, a) for q, a in zip(requests, responses, strict=True)]
        self.last_responses = [r[1] for r in results]
        self.last_flagged = [r[2] for r in results]
        self.last_repairs = [r[3] for r in results]
        self.last_audits = [r[4] for r in results]
        self.last_refused = list(self.judge.judge_batch(self.last_responses))
        return np.array([r[0] for r in results], dtype=np.float64)
