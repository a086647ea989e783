"""``srilab info STUDY.yaml``: what a study will cost, before any model is loaded.

Per model: the parameter count, read from the safetensors headers or a GGUF file's header (no weight is read),
and the memory its weights take in the configured dtype (GGUF weights are dequantised when loaded). Per sampler:
the forward passes of one generation (diffusion: ``steps``, twice with classifier-free guidance; AR: one per new
token, with the KV cache), the tokens each pass computes, and so an estimate of the FLOPs (``2 x parameters x
tokens``, the usual rule that leaves attention's quadratic term out: a lower bound for long canvases), and the
trace one generation stores (steps x hidden size x 4 bytes). The matrix gives the number of generations (a query
attack -- PAIR, GCG, random search -- generates more per item while it searches: not counted). Time is the FLOPs
over a matrix-multiply throughput measured on the model's device now (float32 on a CPU, the dtype on a GPU): an
order of magnitude, not a promise -- a real forward pass reaches a fraction of it, which the estimate applies
(``EFFICIENCY``) and says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.study.config import TOY_PREFIX, ModelSpec, StudyConfig
from srilab.study.matrix import cell_items, cells, load_items, study_protocol

__all__ = ["EFFICIENCY", "estimate_study", "format_estimate", "matmul_flops", "parameter_count"]

EFFICIENCY = 0.3  # the share of the measured matmul throughput a whole forward pass reaches (rule of thumb)
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _gguf_count(path: Path) -> tuple[int, int | None, int]:
    """A GGUF file's parameters and hidden size from its header (``gguf`` reads tensor shapes, not weights);
    (0, None, size) without the ``gguf`` package."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return 0, None, path.stat().st_size
    reader = GGUFReader(str(path))
    n = sum(int(t.n_elements) for t in reader.tensors)
    hidden = None
    for name, field in reader.fields.items():
        if name.endswith(".embedding_length") and field.data:
            hidden = int(field.parts[field.data[0]][0])
    return n, hidden, path.stat().st_size


def parameter_count(path: Path) -> tuple[int, int | None, int]:
    """(parameters, hidden size, bytes on disk) of a checkpoint folder (safetensors headers, config.json) or a
    GGUF file (its header)."""
    from safetensors import safe_open

    if path.suffix == ".gguf":
        return _gguf_count(path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise SrilabError(f"{path}: no *.safetensors weights to count (pickled weights are not read here)")
    n = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118
                shape = f.get_slice(name).get_shape()
                size = 1
                for d in shape:
                    size *= int(d)
                n += size
    raw = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    hidden = raw.get("hidden_size") or raw.get("d_model") or raw.get("n_embd")
    return n, (int(hidden) if hidden else None), sum(f.stat().st_size for f in files)


def matmul_flops(device: str = "cpu", dtype: str | None = None, seconds: float = 0.3) -> float:
    """Multiply-add throughput (FLOP/s) of square matrix products on ``device``, measured for ~``seconds``."""
    import torch

    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype or "", torch.float32)
    if device == "cpu":
        dt = torch.float32  # CPU half-precision matmuls are emulated: float32 is what a CPU run does
    n = 512
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    (a @ b).sum().item()  # warm-up
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        (a @ b).sum().item()
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _model_path(spec: ModelSpec, cfg: StudyConfig) -> Path:
    from srilab.models.checkpoint import inspect_checkpoint
    from srilab.toy.pair import pair_dir

    if spec.is_toy:
        return pair_dir(cfg.toy_pair) / spec.path[len(TOY_PREFIX):]
    info = inspect_checkpoint(spec.path, allow_pickle=spec.allow_pickle, allow_partial=spec.allow_partial_checkpoint)
    if info["format"] == "hub":
        raise SrilabError(f"model {spec.name!r}: {spec.path} is not a local checkpoint; estimates read local files")
    return Path(info["path"])


def estimate_study(
    cfg: StudyConfig, *, throughput: Callable[[str, str | None], float] = matmul_flops, prompt_tokens: int = 64,
) -> dict[str, Any]:
    """Per model and sampler: generations, forward passes, FLOPs, trace bytes and estimated seconds; totals.
    Prompt lengths come from the checkpoint's tokenizer (the mean over the requests); ``prompt_tokens`` is
    assumed where there is none."""
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    protocol = study_protocol(cfg, items)
    matrix, _ = cells(cfg)
    out: dict[str, Any] = {"models": {}, "prompt_tokens": prompt_tokens, "efficiency": EFFICIENCY}
    measured: dict[tuple[str, str | None], float] = {}
    total_s = 0.0
    for spec in cfg.models:
        path = _model_path(spec, cfg)
        params, hidden, disk = parameter_count(path)
        n_prompt = _prompt_tokens(path, [it.prompt for its in items.values() for it in its]) or prompt_tokens
        dtype = spec.dtype or "float32"
        key = (spec.device, spec.dtype)
        if key not in measured:
            measured[key] = throughput(spec.device, spec.dtype)
        flops_s = measured[key] * EFFICIENCY
        entry: dict[str, Any] = {"parameters": params, "hidden_size": hidden, "disk_bytes": disk,
                                 # GGUF weights are dequantised when loaded: their memory is the dtype's too
                                 "weights_bytes": params * BYTES[dtype] if params else disk, "dtype": dtype,
                                 "device": spec.device, "matmul_flops": measured[key], "samplers": {}}
        for s in spec.samplers:
            n = sum(len(cell_items(c, items[c.dataset.name], protocol)) for c in matrix
                    if c.model.name == spec.name and c.sampler.label == s.label)
            if s.kind == "diffusion":
                forwards = s.steps * (2 if getattr(s, "cfg_scale", 0) else 1)
                tokens = n_prompt + s.gen_length  # every pass computes the whole canvas (no cache)
                flops = 2 * params * tokens * forwards
                steps = s.steps
            else:
                forwards = s.max_new_tokens
                flops = 2 * params * (n_prompt + s.max_new_tokens)  # the prefix once, then one token each
                steps = s.max_new_tokens
            seconds = n * flops / flops_s if params else None
            total_s += seconds or 0.0
            entry["samplers"][s.label] = {
                "generations": n, "prompt_tokens": n_prompt, "at_most": bool(getattr(s, "threshold", None)),
                "forwards_per_generation": forwards, "flops_per_generation": flops,
                "trace_bytes_per_generation": steps * (hidden or 0) * 4, "seconds": seconds,
            }
        out["models"][spec.name] = entry
    out["seconds"] = total_s
    return out


def _prompt_tokens(path: Path, prompts: list[str]) -> int | None:
    """The mean token count of the requests under the checkpoint's own tokenizer (None without one)."""
    from srilab.models.loading import load_tokenizer

    if path.suffix == ".gguf" or not prompts:
        return None
    try:
        tok = load_tokenizer(path, None, False)
    except Exception:  # noqa: BLE001 - no usable tokenizer: the assumed length is used and said
        return None
    if tok is None:
        return None
    sample = prompts[:: max(1, len(prompts) // 200)]
    return max(1, round(sum(len(tok(p, add_special_tokens=True)["input_ids"]) for p in sample) / len(sample)))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _duration(s: float | None) -> str:
    if s is None:
        return "unknown (quantised weights: parameter count not read)"
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


def format_estimate(est: dict[str, Any]) -> str:
    lines = [f"estimate (prompts without a tokenizer at hand taken as {est['prompt_tokens']} tokens; time at "
             f"{100 * est['efficiency']:.0f}% of "
             "the matmul throughput measured now; attention's quadratic cost left out: a lower bound)"]
    for name, m in est["models"].items():
        lines.append(f"{name}: {m['parameters'] / 1e6:,.1f}M parameters, weights {_size(m['weights_bytes'])} in "
                     f"{m['dtype']} on {m['device']} (matmul {m['matmul_flops'] / 1e9:,.0f} GFLOP/s)")
        for label, s in m["samplers"].items():
            most = "at most " if s["at_most"] else ""  # a confidence threshold commits several tokens per pass
            lines.append(f"  {label:<18} {s['generations']:>6} generations x {most}{s['forwards_per_generation']} "
                         f"forward passes ({s['prompt_tokens']}-token prompts), {s['flops_per_generation'] / 1e9:,.1f}"
                         f" GFLOP and a {_size(s['trace_bytes_per_generation'])} trace each: ~{most}"
                         f"{_duration(s['seconds'])}")
    lines.append(f"generation in all: ~{_duration(est['seconds'])} (judges, defenses and the report come on top)")
    return "\n".join(lines)
