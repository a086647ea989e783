import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one torch thread each, or the workers fight over the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden vectors not found at {GOLDEN}: the shared/ folder must sit beside the clone")
    return GOLDEN


def _leaves(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


@pytest.fixture(scope="session")
def walk():
    """``walk(obj)`` yields ``(path, value)`` for every leaf of nested dicts and lists (summary checks)."""
    return _leaves


# ------------------------------------------------------------------------------------------------ tiny pair
WORDS = [f"w{i}" for i in range(120)] + ["how", "do", "i", "sure", "no", "cannot", "help", ".", "?", ","]
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<user>", "<assistant>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %} <user> {{ m['content'] }}"
    "{% else %} <assistant> {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} <assistant>{% endif %}"
)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        mask_token="<mask>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_tiny(path: Path, bidirectional: bool, seed: int = 0) -> Path:
    from srilab.toy.arch import build_model, toy_config

    tok = make_tokenizer()
    cfg = toy_config(
        len(tok), pad_id=tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id,
        mask_id=tok.mask_token_id, bidirectional=bidirectional, size="micro",
    )
    build_model(cfg, seed).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> dict[str, Path]:
    """A random-weight matched pair (AR and bidirectional) of micro Gemma-3 models with a word tokenizer."""
    root = tmp_path_factory.mktemp("tiny")
    return {"ar": save_tiny(root / "ar", False), "diffusion": save_tiny(root / "diffusion", True)}


# ------------------------------------------------------------------------------------------------ micro toy pair
MICRO_TRAIN = dict(size="micro", pretrain_docs=400, pretrain_steps=40, sft_steps=40, batch_size=8, warmup_steps=5)


@pytest.fixture(scope="session")
def micro_train() -> dict:
    return dict(MICRO_TRAIN)


@pytest.fixture(scope="session")
def micro_pair(tmp_path_factory) -> Path:
    """A matched toy pair trained for a few steps (micro architecture): fast, real, not good."""
    from srilab.toy.train import TrainConfig, train_pair

    root = tmp_path_factory.mktemp("micro_pair") / "pair"
    train_pair(root, TrainConfig(**MICRO_TRAIN), progress=False)
    return root


@pytest.fixture(scope="session")
def small_run(micro_pair, tmp_path_factory) -> Path:
    """A finished study on the micro pair: the demo's datasets and protocol, two arms (AR, diffusion), two attacks,
    no defenses, short answers (ablations and estimates read it)."""
    from srilab.pipeline.run import run_config
    from srilab.study.config import parse_config
    from srilab.study.demo import demo_config
    from srilab.study.store import RunDir

    root = tmp_path_factory.mktemp("ablate")
    data = demo_config(out=root / "run", limit=6, pair=micro_pair).canonical()
    data["models"][1]["samplers"] = data["models"][1]["samplers"][:1]
    data["models"][0]["samplers"][0]["max_new_tokens"] = 16  # short answers: the test is about the plumbing
    data["models"][1]["samplers"][0].update(steps=16, gen_length=16)
    data["attacks"] = ["direct", "prefill"]
    data["defenses"] = []
    data["analysis"]["dynamics_every"] = 0
    data["n_boot"] = 100
    cfg = parse_config(data)
    run_config(cfg, RunDir(root / "run"), progress=False, echo=lambda _: None)
    return root / "run"
