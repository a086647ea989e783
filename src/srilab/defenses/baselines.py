"""Baseline jailbreak defenses, for comparison with the SRI guard.

* :class:`PerplexityFilter`: request perplexity under an AR reference model (Alon & Kamfonas 2023,
  "Detecting Language Model Attacks with Perplexity"; Jain et al. 2023, "Baseline Defenses for
  Adversarial Attacks Against Aligned Language Models").
* :class:`SelfExamination`: the model judges its own answer (Phute et al. 2023, "LLM Self Defense: By
  Self Examination, LLMs Know They Are Being Tricked").
* :class:`OutputKeywordGuard`: an output classifier (the refusal keyword judge, a stand-in for Llama Guard,
  Inan et al. 2023, in the toy world).
* :class:`SmoothLLM`: majority vote over randomly perturbed copies of the request (Robey et al. 2023,
  "SmoothLLM: Defending Large Language Models Against Jailbreaking Attacks").
* :class:`RefusalDirectionProbe`: projection onto the difference-of-means refusal direction (Arditi et al.
  2024, "Refusal in Language Models Is Mediated by a Single Direction").
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import torch

from srilab.defenses.base import DEFENSES, Defense, as_texts
from srilab.errors import SrilabError
from srilab.judges.refusal import RefusalJudge
from srilab.models.base import LanguageModel, LayerSpec, left_pad, shift_logits
from srilab.sampling.api import ARSamplerConfig, DiffusionSamplerConfig, Sampler, generate


def _require_model(model, what: str, sampler=None, *, with_sampler: bool = False) -> None:
    """A defense's model is a srilab LanguageModel (and its sampler a sampler config): one SrilabError otherwise."""
    if not isinstance(model, LanguageModel):
        raise SrilabError(f"{what} needs a srilab LanguageModel (srilab.models.load(path)), got "
                          f"{type(model).__name__}")
    if (sampler is not None or with_sampler) and not isinstance(sampler, ARSamplerConfig | DiffusionSamplerConfig):
        raise SrilabError(f"{what} needs a sampler config (srilab.sampling.SamplerConfig), got "
                          f"{type(sampler).__name__}")


__all__ = [
    "OutputKeywordGuard",
    "PerplexityFilter",
    "RefusalDirectionProbe",
    "SelfExamination",
    "SmoothLLM",
]


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SrilabError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


@torch.no_grad()
def _forward(model: LanguageModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Raw logits of one forward pass over a left-padded batch (AR: position ids as the AR sampler uses)."""
    ids, mask = ids.to(model.device), mask.to(model.device)
    if model.kind == "ar":
        position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
        return model.module(ids, attention_mask=mask, position_ids=position_ids).logits
    return model.module(ids, attention_mask=mask).logits


# ---------------------------------------------------------------------------------------------- perplexity
@DEFENSES.register("perplexity", source='Alon & Kamfonas 2023; Jain et al. 2023 (perplexity filter)')
class PerplexityFilter(Defense):
    """Mean token negative log-likelihood (log perplexity) of the raw request under an AR reference model.

    Adversarial suffixes (GCG-style gibberish) have a high perplexity (Alon & Kamfonas 2023; Jain et al.
    2023). The request is tokenised as it is (no chat template); when the tokenizer has a BOS token it is
    prepended so that the first request token is scored too.
    """

    needs_generation = False

    def __init__(self, reference: LanguageModel, batch_size: int = 16, name: str = "perplexity") -> None:
        _require_model(reference, "PerplexityFilter")
        if reference.kind != "ar":
            raise SrilabError(
                f"PerplexityFilter needs an autoregressive reference model, got {reference.name} ({reference.kind})"
            )
        self.reference = reference
        self.batch_size = _check_batch_size(batch_size)
        self.name = name

    @torch.no_grad()
    def score(self, requests: Sequence[str], responses: Sequence[str] | None = None) -> np.ndarray:
        tok = self.reference.require_tokenizer()
        bos = getattr(tok, "bos_token_id", None)
        rows = []
        for text in as_texts(requests, "requests"):
            row = list(tok(text, add_special_tokens=False)["input_ids"])
            if bos is not None:
                row = [bos, *row]
            if len(row) < 2:
                raise SrilabError(f"request {text!r} has fewer than 2 tokens: its perplexity is undefined")
            rows.append(row)
        pad = self.reference.pad_token_id if self.reference.pad_token_id is not None else 0
        out = np.empty(len(rows), dtype=np.float64)
        for lo in range(0, len(rows), self.batch_size):
            ids, mask = left_pad(rows[lo : lo + self.batch_size], pad)
            logits = _forward(self.reference, ids, mask).float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = ids[:, 1:].to(logp.device)
            nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            keep = (mask[:, :-1] * mask[:, 1:]).to(nll.device).float()  # both context and target are real
            out[lo : lo + len(ids)] = ((nll * keep).sum(-1) / keep.sum(-1)).cpu().numpy()
        return out


# ---------------------------------------------------------------------------------------------- self-examination
def single_token_id(tokenizer, word: str) -> int:
    """The id of ``word`` as one vocabulary token (tried as is and with a leading space), or SrilabError."""
    unk = getattr(tokenizer, "unk_token_id", None)
    for candidate in (word, f" {word}"):
        ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] != unk:
            return int(ids[0])
    raise SrilabError(
        f"the tokenizer has no single token for {word!r}; choose yes_word/no_word that are single vocabulary tokens"
    )


@DEFENSES.register("self_examination", source='Phute et al. 2023, "LLM Self Defense"')
class SelfExamination(Defense):
    """The model examines its own response: score = log P(yes) - log P(no) for the first answer token.

    Phute et al. 2023 ("LLM Self Defense"): ask the LLM whether a text is harmful. The question is put in
    the model's chat format; AR models are read from the next-token logits after the prompt, diffusion
    models from the logits at one masked answer position appended to the prompt (one forward pass).
    ``question_template`` may use ``{response}`` and ``{request}``.
    """

    needs_generation = True

    def __init__(
        self,
        model: LanguageModel,
        question_template: str = "does this answer describe something harmful ? {response}",
        *,
        yes_word: str = "yes",
        no_word: str = "no",
        batch_size: int = 16,
        name: str = "self_examination",
    ) -> None:
        _require_model(model, "SelfExamination")
        if not isinstance(question_template, str) or "{response}" not in question_template:
            raise SrilabError("question_template must contain {response}, where the examined answer goes")
        if model.kind == "diffusion" and model.mask_id is None:
            raise SrilabError(f"{model.name} has no mask token: self-examination cannot read its answer logits")
        tok = model.require_tokenizer()
        self.yes_id = single_token_id(tok, yes_word)
        self.no_id = single_token_id(tok, no_word)
        if self.yes_id == self.no_id:
            raise SrilabError(f"yes_word {yes_word!r} and no_word {no_word!r} are the same token; pick two words")
        self.model = model
        self.question_template = question_template
        self.yes_word, self.no_word = yes_word, no_word
        self.batch_size = _check_batch_size(batch_size)
        self.name = name

    def prompts(self, requests: Sequence[str], responses: Sequence[str]) -> list[str]:
        """The chat-formatted examination prompts."""
        try:
            questions = [
                self.question_template.format(request=q, response=r) for q, r in zip(requests, responses, strict=True)
            ]
        except (KeyError, IndexError) as exc:
            raise SrilabError(
                f"question_template has an unknown field {exc}; use {{response}} and {{request}}"
            ) from None
        return [self.model.chat_prompt(q) for q in questions]

    @torch.no_grad()
    def score(self, requests: Sequence[str], responses: Sequence[str] | None) -> np.ndarray:
        requests = as_texts(requests, "requests")
        responses = self._require_responses(requests, responses)
        prompts = self.prompts(requests, responses)
        model = self.model
        out = np.empty(len(prompts), dtype=np.float64)
        for lo in range(0, len(prompts), self.batch_size):
            ids, mask = model.encode(prompts[lo : lo + self.batch_size])
            if model.kind == "ar":
                logits = _forward(model, ids, mask)[:, -1]
            else:
                ids = torch.cat([ids, torch.full((len(ids), 1), int(model.mask_id), dtype=ids.dtype)], dim=1)
                mask = torch.cat([mask, torch.ones((len(mask), 1), dtype=mask.dtype)], dim=1)
                # aligned: position i predicts token i, so the masked answer position is the last one
                logits = shift_logits(_forward(model, ids, mask), model.logits_shift)[:, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            out[lo : lo + len(ids)] = (logp[:, self.yes_id] - logp[:, self.no_id]).cpu().numpy()
        return out


# ---------------------------------------------------------------------------------------------- output guard
@DEFENSES.register("output_keyword", source="stand-in for an output guard (Llama Guard, Inan et al. 2023)")
class OutputKeywordGuard(Defense):
    """An output classifier: 1.0 when the response is not a refusal (the model complied), 0.0 for a refusal.

    The toy world's stand-in for an output guard model such as Llama Guard (Inan et al. 2023); uses the
    refusal keyword judge (:class:`srilab.judges.refusal.RefusalJudge`).
    """

    needs_generation = True

    def __init__(self, judge: RefusalJudge | None = None, name: str = "output_keyword") -> None:
        self.judge = judge if judge is not None else RefusalJudge()
        self.name = name

    def score(self, requests: Sequence[str], responses: Sequence[str] | None) -> np.ndarray:
        responses = self._require_responses(as_texts(requests, "requests"), responses)
        return np.array([0.0 if r else 1.0 for r in self.judge.judge_batch(responses)], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- SmoothLLM
#: Replacement characters: printable ASCII without the line-breaking whitespace (so prompts stay one line).
_PRINTABLE = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")


@DEFENSES.register("smoothllm", source='Robey et al. 2023, "SmoothLLM"')
class SmoothLLM(Defense):
    """SmoothLLM (Robey et al. 2023): answer ``copies`` randomly perturbed copies of the request and vote.

    Each copy swaps ``floor(rate * len)`` characters (chosen without replacement) for random printable
    characters; the draw is deterministic from ``seed`` and the item's index. Score = the fraction of copies
    whose response is not a refusal (:class:`RefusalJudge`); the majority vote flags ``score > 0.5``.
    Responses are generated with :func:`srilab.sampling.generate` and its default chat formatting; the given
    responses are ignored.
    """

    needs_generation = True

    def __init__(
        self,
        model: LanguageModel,
        sampler: Sampler,
        copies: int = 4,
        rate: float = 0.1,
        seed: int = 0,
        *,
        judge: RefusalJudge | None = None,
        batch_size: int = 16,
        name: str = "smoothllm",
    ) -> None:
        _require_model(model, "SmoothLLM", sampler, with_sampler=True)
        if not isinstance(copies, int) or copies < 1:
            raise SrilabError(f"copies must be a positive integer, got {copies!r}")
        if not 0.0 <= float(rate) <= 1.0:
            raise SrilabError(f"rate must be in [0, 1], got {rate!r}; use e.g. rate=0.1")
        self.model = model
        self.sampler = sampler
        self.copies = copies
        self.rate = float(rate)
        self.seed = int(seed)
        self.judge = judge if judge is not None else RefusalJudge()
        self.batch_size = _check_batch_size(batch_size)
        self.name = name
        self.last_responses: list[list[str]] = []  # per request, the responses to its copies (last score call)

    def perturb(self, request: str, index: int = 0) -> list[str]:
        """The ``copies`` perturbed copies of ``request`` (item ``index``): deterministic, never empty."""
        rng = np.random.default_rng([self.seed, int(index)])
        out = []
        for _ in range(self.copies):
            chars = list(request) if request else [_PRINTABLE[int(rng.integers(len(_PRINTABLE)))]]
            n_swap = int(self.rate * len(chars))
            if n_swap:
                positions = rng.choice(len(chars), size=n_swap, replace=False)
                for pos in positions:
                    chars[int(pos)] = _PRINTABLE[int(rng.integers(len(_PRINTABLE)))]
            text = "".join(chars)
            if not text.strip():
                text = text[:-1] + "."
            out.append(text)
        return out

    @staticmethod
    def majority(scores: np.ndarray) -> np.ndarray:
        """SmoothLLM's majority vote: True (jailbroken) where more than half of the copies complied."""
        return np.asarray(scores) > 0.5

    def score(self, requests: Sequence[str], responses: Sequence[str] | None = None) -> np.ndarray:
        requests = as_texts(requests, "requests")
        perturbed = [c for i, q in enumerate(requests) for c in self.perturb(q, i)]
        gen = generate(self.model, perturbed, self.sampler, batch_size=self.batch_size)
        texts = gen.full_texts
        self.last_responses = [texts[i * self.copies : (i + 1) * self.copies] for i in range(len(requests))]
        refused = np.array(self.judge.judge_batch(texts), dtype=np.float64).reshape(len(requests), self.copies)
        return 1.0 - refused.mean(axis=1)


# ---------------------------------------------------------------------------------------------- refusal direction
@DEFENSES.register("refusal_direction", source='Arditi et al. 2024, "Refusal is mediated by a single direction"')
class RefusalDirectionProbe(Defense):
    """A static probe on the refusal direction (Arditi et al. 2024).

    ``fit`` takes the activation of ``model.hidden_module(layer)`` at the last prompt token of the
    chat-formatted requests and sets the direction to the normalised difference of means (harmful - benign).
    Score = the projection of a request's activation onto it minus the midpoint of the two class means'
    projections (> 0: closer to the harmful side).
    """

    needs_generation = False

    def __init__(
        self, model: LanguageModel, layer: LayerSpec = "last", batch_size: int = 16, name: str = "refusal_direction"
    ) -> None:
        _require_model(model, "RefusalDirectionProbe")
        self.model = model
        self.layer = layer
        self.module = model.hidden_module(layer)
        self.batch_size = _check_batch_size(batch_size)
        self.name = name
        self.direction: np.ndarray | None = None
        self.midpoint: float | None = None

    @torch.no_grad()
    def activations(self, requests: Sequence[str]) -> np.ndarray:
        """float [N, D]: the hooked module's output at the last prompt position of every request."""
        prompts = [self.model.chat_prompt(q) for q in as_texts(requests, "requests")]
        captured: list[torch.Tensor] = []

        def hook(_module, _inputs, output) -> None:
            out = output[0] if isinstance(output, tuple) else output
            captured.append(out[:, -1].detach().float().cpu())

        handle = self.module.register_forward_hook(hook)
        try:
            for lo in range(0, len(prompts), self.batch_size):
                ids, mask = self.model.encode(prompts[lo : lo + self.batch_size])
                _forward(self.model, ids, mask)
        finally:
            handle.remove()
        acts = torch.cat(captured, dim=0).numpy().astype(np.float64)
        if acts.shape[0] != len(prompts):
            raise SrilabError(
                f"layer {self.layer!r} of {self.model.name} ran {acts.shape[0]} times for {len(prompts)} prompts; "
                "pick a layer that runs once per forward pass"
            )
        return acts

    def fit(self, benign_requests: Sequence[str], harmful_requests: Sequence[str]) -> RefusalDirectionProbe:
        mu_benign = self.activations(benign_requests).mean(axis=0)
        mu_harmful = self.activations(harmful_requests).mean(axis=0)
        diff = mu_harmful - mu_benign
        norm = float(np.linalg.norm(diff))
        if not np.isfinite(norm) or norm == 0.0:
            raise SrilabError("benign and harmful requests have the same mean activation: no refusal direction")
        self.direction = diff / norm
        self.midpoint = float((mu_harmful @ self.direction + mu_benign @ self.direction) / 2.0)
        return self

    def score(self, requests: Sequence[str], responses: Sequence[str] | None = None) -> np.ndarray:
        if self.direction is None or self.midpoint is None:
            raise SrilabError(f"{self.name} is not fitted: call fit(benign_requests, harmful_requests) first")
        return self.activations(requests) @ self.direction - self.midpoint
