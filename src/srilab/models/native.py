"""Native LLaDA and Dream architectures: no remote code.

Both public diffusion-LM families are Llama-style decoder stacks (RMSNorm, rotary embeddings, SwiGLU MLP)
with the causal mask removed. :class:`BidirectionalLM` implements that stack once; the two checkpoint
formats differ only in weight names, grouped-query attention and q/k/v biases, which the loaders map:

- LLaDA (``model_type: llada``): weights ``model.transformer.*`` (``wte``, ``blocks.N.{q,k,v}_proj``,
  ``attn_out``, ``ff_proj`` (gate), ``up_proj``, ``ff_out`` (down), ``attn_norm``, ``ff_norm``, ``ln_f``,
  ``ff_out`` as the LM head unless the embedding is tied). Logits predict the token at the same position.
- Dream (``model_type: Dream``): Qwen2 names (``model.layers.N.self_attn.*``, ``mlp.*``, ``model.norm``,
  ``lm_head``) with q/k/v biases. Logits at position i predict the token at position i + 1; the sampler
  shifts them (``LanguageModel.logits_shift``), the architecture does not.

The module returns an object with ``.logits`` (and takes ``attention_mask`` as a key-padding mask, or
Dream's 4-D boolean mask with ``position_ids``), so it is a drop-in for the reference samplers; ``norm`` is
the final-norm module whose output the SRI trace reads.

Key/value caching follows transformers' protocol (``past_key_values`` / ``use_cache``): every attention
layer hands its keys and values (after rotary, before grouped-query repetition) to
``past_key_values.update(key, value, layer_idx)`` and attends over what that returns, so a cache object
decides which keys the queries see -- :class:`KVCache` appends them (transformers' ``DynamicCache``), the
block caches of :mod:`srilab.sampling.diffusion_cache` splice them into a stored canvas. Without a cache the
forward pass is exactly what it was.
Parity with the reference implementations is proven against ``shared/golden`` in the test suite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srilab.errors import SrilabError


@dataclass(frozen=True)
class ArchConfig:
    vocab_size: int  # rows of the embedding / LM head (may exceed the tokenizer's vocabulary)
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    rope_theta: float
    norm_eps: float
    qkv_bias: bool = False
    tie_embeddings: bool = False
    max_position_embeddings: int = 4096

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass
class LMOutput:
    logits: torch.Tensor
    past_key_values: object | None = None  # the cache, when one was passed or ``use_cache=True``


class KVCache:
    """Appending key/value cache (transformers' ``DynamicCache`` protocol): per layer, the keys and values
    [B, kv_heads, T, head_dim] of every position fed so far, the new ones appended at each call."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        else:
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key], dim=-2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value], dim=-2)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.keys[layer_idx].shape[-2]) if len(self.keys) > layer_idx else 0


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """Rotary position embedding in full precision (LLaDA's ``rope_full_precision``; Qwen2 computes the same). Its
    inverse frequencies are a float32 CPU attribute, not a buffer: ``module.to(torch.bfloat16)`` cannot round them
    (radians off at position 4096) and ``to_empty`` keeps them (``tests/test_models.py``)."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim))
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def cos_sin(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self._cache[0] < seq_len or self._cache[1].device != device:
            pos = torch.arange(seq_len, device=device, dtype=torch.float32)
            freqs = torch.outer(pos, self.inv_freq.to(device))
            emb = torch.cat((freqs, freqs), dim=-1)
            self._cache = (seq_len, emb.cos(), emb.sin())
        _, cos, sin = self._cache
        return cos[:seq_len], sin[:seq_len]

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        return (x * cos + _rotate_half(x) * sin).to(dtype)


class Block(nn.Module):
    def __init__(self, cfg: ArchConfig):
        super().__init__()
        hd = cfg.head_dim
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_heads * hd, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * hd, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * hd, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.num_heads * hd, cfg.hidden_size, bias=False)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: object | None = None,
        layer_idx: int = 0,
    ) -> torch.Tensor:
        """``cache``: an object with ``update(key, value, layer_idx) -> (keys, values)`` (see the module
        docstring); the queries attend over the keys it returns, ``mask`` is over those keys."""
        b, n, _ = x.shape
        cfg = self.cfg
        hd = cfg.head_dim
        h = self.attn_norm(x)
        q = self.q_proj(h).view(b, n, cfg.num_heads, hd).transpose(1, 2)
        k = self.k_proj(h).view(b, n, cfg.num_kv_heads, hd).transpose(1, 2)
        v = self.v_proj(h).view(b, n, cfg.num_kv_heads, hd).transpose(1, 2)
        q, k = Rotary.apply(q, cos, sin), Rotary.apply(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, layer_idx)
        if cfg.num_kv_heads != cfg.num_heads:
            rep = cfg.num_heads // cfg.num_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        x = x + self.o_proj(att.transpose(1, 2).reshape(b, n, cfg.num_heads * hd))
        h = self.mlp_norm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class BidirectionalLM(nn.Module):
    """A Llama-style decoder stack with full (bidirectional) attention, as used by LLaDA and Dream."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        position_ids: torch.Tensor | None = None,
        past_key_values: object | None = None,
        use_cache: bool = False,
        **_: object,
    ) -> LMOutput:
        """Logits [B, L', V]; ``logits_to_keep`` as in transformers: 0 = every position, an int n = the last
        n positions, a 1-D index tensor = those positions (the hidden states are computed for all).

        ``attention_mask``: [B, K] key-padding mask (1 = attend) over the keys attended (the input's, or with
        a cache the keys the cache returns), or a 4-D boolean mask [B, 1, L, K] (query x key, True = attend;
        Dream's sampler builds one for left-padded batches) used as given.
        ``position_ids``: optional [B, L] (or [1, L]) rotary positions (default 0..L-1, after a cache's
        ``get_seq_length()`` positions when one is passed), as Dream's sampler passes them.
        ``past_key_values``: a key/value cache (see the module docstring); ``use_cache=True`` without one
        starts a :class:`KVCache`. The cache is returned as ``past_key_values`` of the output."""
        _, n = input_ids.shape
        x = self.embed(input_ids)
        if past_key_values is None and use_cache:
            past_key_values = KVCache()
        offset = 0
        if position_ids is None and past_key_values is not None and hasattr(past_key_values, "get_seq_length"):
            offset = int(past_key_values.get_seq_length())
        if position_ids is None and offset:
            cos, sin = self.rotary.cos_sin(offset + n, input_ids.device)
            cos, sin = cos[offset:], sin[offset:]
        elif position_ids is None:
            cos, sin = self.rotary.cos_sin(n, input_ids.device)
        else:
            cos, sin = self.rotary.cos_sin(int(position_ids.max()) + 1, input_ids.device)
            cos, sin = cos[position_ids].unsqueeze(1), sin[position_ids].unsqueeze(1)  # [B, 1, L, head_dim]
        mask = None
        if attention_mask is not None and attention_mask.dim() == 4:
            if attention_mask.dtype != torch.bool:
                raise SrilabError("a 4-D attention mask must be boolean (True = attend)")
            mask = None if bool(attention_mask.all()) else attention_mask
        elif attention_mask is not None and not bool(attention_mask.all()):
            # Key-padding mask, broadcast over heads and queries (True = attend).
            mask = attention_mask.bool()[:, None, None, :]
        for idx, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, past_key_values, idx)
        h = self.norm(x)
        if isinstance(logits_to_keep, torch.Tensor):
            h = h[:, logits_to_keep]
        elif logits_to_keep:
            h = h[:, -logits_to_keep:]
        return LMOutput(logits=self.lm_head(h), past_key_values=past_key_values)


# ---------------------------------------------------------------------------------------------- formats


def _llada_config(raw: dict) -> ArchConfig:
    if raw.get("block_type", "llama") != "llama":
        raise SrilabError(f"LLaDA block_type {raw.get('block_type')!r} is not supported; only 'llama' blocks are")
    if raw.get("activation_type", "silu") not in ("silu", "swiglu"):
        raise SrilabError(f"LLaDA activation_type {raw.get('activation_type')!r} is not supported (expected silu)")
    if raw.get("layer_norm_type", "rms") != "rms" or raw.get("alibi") or not raw.get("rope", True):
        raise SrilabError("this LLaDA config uses a norm or position scheme other than RMSNorm + RoPE; not supported")
    d = raw["d_model"]
    n_heads = raw["n_heads"]
    mlp = raw.get("mlp_hidden_size") or raw["mlp_ratio"] * d
    return ArchConfig(
        vocab_size=raw.get("embedding_size") or raw["vocab_size"],
        hidden_size=d,
        num_layers=raw["n_layers"],
        num_heads=n_heads,
        num_kv_heads=raw.get("n_kv_heads") or n_heads,
        intermediate_size=mlp,
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        qkv_bias=bool(raw.get("include_qkv_bias") or raw.get("include_bias")),
        tie_embeddings=bool(raw.get("weight_tying", False)),
        max_position_embeddings=int(raw.get("max_sequence_length", 4096)),
    )


def _llada_name(name: str) -> str | None:
    name = name.removeprefix("model.").removeprefix("transformer.")
    table = {
        "wte.weight": "embed.weight",
        "ln_f.weight": "norm.weight",
        "ff_out.weight": "lm_head.weight",
    }
    if name in table:
        return table[name]
    if name.startswith("blocks."):
        _, idx, rest = name.split(".", 2)
        sub = {
            "attn_norm.weight": "attn_norm.weight",
            "ff_norm.weight": "mlp_norm.weight",
            "q_proj.weight": "q_proj.weight",
            "k_proj.weight": "k_proj.weight",
            "v_proj.weight": "v_proj.weight",
            "q_proj.bias": "q_proj.bias",
            "k_proj.bias": "k_proj.bias",
            "v_proj.bias": "v_proj.bias",
            "attn_out.weight": "o_proj.weight",
            "ff_proj.weight": "gate_proj.weight",
            "up_proj.weight": "up_proj.weight",
            "ff_out.weight": "down_proj.weight",
        }.get(rest)
        return f"layers.{idx}.{sub}" if sub else None
    return None


def _dream_config(raw: dict) -> ArchConfig:
    n_heads = raw["num_attention_heads"]
    return ArchConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        num_layers=raw["num_hidden_layers"],
        num_heads=n_heads,
        num_kv_heads=raw.get("num_key_value_heads") or n_heads,
        intermediate_size=raw["intermediate_size"],
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        qkv_bias=True,
        tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
        max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
    )


def _dream_name(name: str) -> str | None:
    if name == "lm_head.weight":
        return name
    name = name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "embed.weight"
    if name == "norm.weight":
        return "norm.weight"
    if name.startswith("layers."):
        _, idx, rest = name.split(".", 2)
        sub = {
            "input_layernorm.weight": "attn_norm.weight",
            "post_attention_layernorm.weight": "mlp_norm.weight",
            "self_attn.o_proj.weight": "o_proj.weight",
            "mlp.gate_proj.weight": "gate_proj.weight",
            "mlp.up_proj.weight": "up_proj.weight",
            "mlp.down_proj.weight": "down_proj.weight",
        }.get(rest)
        if sub is None and rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
            sub = rest.removeprefix("self_attn.")
        return f"layers.{idx}.{sub}" if sub else None
    return None


FORMATS = {
    "llada": (_llada_config, _llada_name, 0),
    "dream": (_dream_config, _dream_name, 1),
}


def native_format(model_type: str) -> str | None:
    """The native format name for a ``config.json`` ``model_type`` (case-insensitive), or None."""
    key = model_type.lower()
    return key if key in FORMATS else None


def arch_config_dict(module: BidirectionalLM) -> dict:
    return asdict(module.config)
