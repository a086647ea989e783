"""The toy pair's architecture: one transformers Gemma-3 text config serves both models.

The AR and the diffusion model share every setting (and the tokenizer, data, steps and seed); the only
difference is ``use_bidirectional_attention``, saved in ``config.json``, which ``srilab.models.load`` reads
to tell a diffusion model from an AR one. ``mask_token_id`` is saved in the config of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ToySize:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 256


SIZES = {
    "micro": ToySize(hidden_size=48, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96),
    "small": ToySize(),
}


def toy_config(
    vocab_size: int,
    *,
    pad_id: int,
    bos_id: int,
    eos_id: int,
    mask_id: int,
    bidirectional: bool,
    size: ToySize | str = "small",
):
    """A Gemma-3 text config for a toy model (full attention in every layer, no soft-capping)."""
    from transformers import Gemma3TextConfig

    s = SIZES[size] if isinstance(size, str) else size
    head_dim = s.hidden_size // s.num_heads
    return Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        num_key_value_heads=s.num_kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        max_position_embeddings=s.max_position_embeddings,
        layer_types=["full_attention"] * s.num_layers,
        sliding_window=s.max_position_embeddings,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        mask_token_id=mask_id,
        use_bidirectional_attention=bidirectional,
        use_cache=not bidirectional,
    )


def build_model(config, seed: int):
    """A freshly initialised Gemma-3 causal LM, deterministic from ``seed``."""
    from transformers import Gemma3ForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    return model
