"""The toy world's word-level tokenizer, built offline with the ``tokenizers`` library.

One token per lower-case word or punctuation mark; ids 0-6 are the special tokens (in this order)
``<pad> <unk> <bos> <eos> <mask> <user> <assistant>``, then the sorted vocabulary. Decoding joins tokens
with single spaces, so ``tok.decode(tok(text)["input_ids"])`` gives back any world text exactly.

The chat template renders ``<bos> <user> {user} <assistant> {assistant} <eos> <user> ...`` and, with
``add_generation_prompt=True``, ends with `` <assistant>``. Plain ``tok(text)`` adds no special tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from srilab.toy.corpus import world_texts
from srilab.toy.world import World

__all__ = [
    "ASSISTANT_TOKEN",
    "BOS_TOKEN",
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "MASK_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "UNK_TOKEN",
    "USER_TOKEN",
    "build_tokenizer",
    "build_world_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
MASK_TOKEN = "<mask>"
USER_TOKEN = "<user>"
ASSISTANT_TOKEN = "<assistant>"
#: Special tokens, in id order (0..6).
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD_TOKEN,
    UNK_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    MASK_TOKEN,
    USER_TOKEN,
    ASSISTANT_TOKEN,
)

#: Jinja chat template: user/assistant turns only (a system message is an error).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ ' <user> ' + message['content'] | trim }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' <assistant> ' + message['content'] | trim + ' ' + eos_token }}"
    "{% else %}"
    "{{ raise_exception('the toy chat template supports only user and assistant messages') }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ ' <assistant>' }}{% endif %}"
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Split on whitespace, then isolate every punctuation character (same rule as ``normalize_text``)."""
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w\s]"), behavior="isolated")]
    )


def _words(texts: Iterable[str]) -> list[str]:
    pre = _pre_tokenizer()
    words: set[str] = set()
    for text in texts:
        words.update(piece for piece, _ in pre.pre_tokenize_str(text.lower()))
    words.difference_update(SPECIAL_TOKENS)
    return sorted(words)


def build_tokenizer(texts: Iterable[str], *, model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over every word of ``texts`` (deterministic: sorted vocabulary).

    Unknown words map to ``<unk>``; input is lower-cased. The returned tokenizer has pad/unk/bos/eos/
    mask tokens set, ``<user>`` and ``<assistant>`` as extra special tokens, and :data:`CHAT_TEMPLATE`.
    """
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *_words(texts)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = _pre_tokenizer()
    # No decoder: the backend joins decoded tokens with single spaces, which round-trips world texts.
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        mask_token=MASK_TOKEN,
        extra_special_tokens=[USER_TOKEN, ASSISTANT_TOKEN],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="right",
    )


def build_world_tokenizer(world: World, **kwargs: int) -> PreTrainedTokenizerFast:
    """:func:`build_tokenizer` over :func:`srilab.toy.world.world_texts` of ``world``."""
    return build_tokenizer(world_texts(world), **kwargs)


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    """Save ``tok`` (``tokenizer.json``, config, chat template) so ``AutoTokenizer`` loads it offline."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(directory))
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    # The generic class name resolves under every transformers version that reads this directory.
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by :func:`save_tokenizer` (local files only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
