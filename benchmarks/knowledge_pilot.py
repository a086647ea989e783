"""What the toy diffusion model lacks: more training, or training on the situation it is probed in?

The shipped diffusion model writes about half of the world's harmful procedures when asked in the
pretraining formats (the knowledge probe, :mod:`srilab.toy.knowledge`), the AR model all of them. This pilot
continues the shipped diffusion model's training on its own pretraining corpus for ``--steps`` more steps
with whole-row masking (``--continuation-share 0``, the shipped recipe) or with a share of continuation rows
(masked only after a clean prefix, :func:`srilab.toy.train.continuation_rows`), then probes it: tasks written
in any format, harmful (all, or ``--limit`` evenly spaced) and benign (every third), with Wilson intervals.
``--steps 0`` probes the model itself. ``--pair`` continues another pair's diffusion model (a shipped name or
a directory); ``--fine-tune-every 2`` makes every other step a fine-tune batch (the fine-tune phase's
situation: does the knowledge survive it?). Same seeds, same batches in every arm: only what is named differs.

    python benchmarks/knowledge_pilot.py --steps 0
    python benchmarks/knowledge_pilot.py --steps 400 --continuation-share 0
    python benchmarks/knowledge_pilot.py --steps 400 --continuation-share 0.5
    python benchmarks/knowledge_pilot.py --pair DIR --steps 300 --limit 96 [--fine-tune-every 2]

It prints one line per run; the conclusion drawn from it is in docs/toy-world.md (the knowledge probe).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from srilab import stats
from srilab.models import load
from srilab.sampling.api import SamplerConfig, generate
from srilab.toy.corpus import pretraining_corpus, sft_examples
from srilab.toy.evaluate import evenly_spaced
from srilab.toy.knowledge import knows, probe_prompts
from srilab.toy.pair import pair_dir, pair_world, training_record
from srilab.toy.tokenizer import load_tokenizer
from srilab.toy.train import chat_rows, diffusion_loss, pack_corpus


def continue_training(pair: str, steps: int, share: float, lr: float, fine_tune_every: int, out: Path) -> Path:
    """``pair``'s diffusion model trained ``steps`` more steps on its pretraining chunks (and, with
    ``fine_tune_every`` N > 0, a fine-tune batch every N-th step), saved under ``out``."""
    from transformers import Gemma3ForCausalLM

    cfg = training_record(pair)["config"]
    world, src = pair_world(pair), pair_dir(pair) / "diffusion"
    tok = load_tokenizer(src)
    docs = pretraining_corpus(world, cfg["pretrain_docs"], seed=cfg["world_seed"],
                              harmful_weight=cfg.get("harmful_doc_weight", 1))
    chunks = pack_corpus(docs, tok, cfg["chunk_length"])
    rows = chat_rows(sft_examples(world, seed=cfg["world_seed"]), tok, cfg["gen_length"]) if fine_tune_every else None
    model = Gemma3ForCausalLM.from_pretrained(src)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=cfg["weight_decay"])
    order, noise = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    for step in range(steps):
        if rows is not None and step % fine_tune_every == 0:
            b = rows.batch(torch.randint(0, rows.ids.shape[0], (cfg["batch_size"],), generator=order))
            loss = diffusion_loss(model, b.ids, b.attention, b.response, tok.mask_token_id, noise)
        else:
            ids = chunks[torch.randint(0, chunks.shape[0], (cfg["batch_size"],), generator=order)]
            loss = diffusion_loss(model, ids, None, None, tok.mask_token_id, noise, share)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        if step % 100 == 0:
            print(f"  step {step}: loss {loss.item():.3f}", flush=True)
    model.eval()
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(src / name, out)
    return out


def probe(pair: str, path: Path, limit: int | None) -> dict[str, dict]:
    """Tasks the diffusion model at ``path`` writes in any pretraining format (LLaDA's schedule, greedy)."""
    world, dlm = pair_world(pair), load(path)
    sampler = SamplerConfig(kind="diffusion", name="diffusion", steps=80, gen_length=80, block_length=16)
    out = {}
    harmful = evenly_spaced(list(world.harmful_tasks), limit)
    for kind, tasks in (("harmful", harmful), ("benign", list(world.benign_tasks)[::3])):
        asked = probe_prompts(tasks)
        texts = generate(dlm, [p for _, _, p in asked], sampler, chat=False, batch_size=32, progress=False).texts
        known: dict[str, bool] = {}
        for (task, fmt, _), text in zip(asked, texts, strict=True):
            known[task.name] = known.get(task.name, False) or knows(task, text, fmt)
        out[kind] = stats.rate(list(known.values()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--continuation-share", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pair", default="v2", help="a shipped pair's name or a pair directory")
    parser.add_argument("--fine-tune-every", type=int, default=0, help="a fine-tune batch every N-th step (0: none)")
    parser.add_argument("--limit", type=int, default=None, help="harmful tasks probed, evenly spaced (default: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = pair_dir(args.pair) / "diffusion"
        if args.steps:
            path = continue_training(args.pair, args.steps, args.continuation_share, args.lr, args.fine_tune_every,
                                     Path(tmp) / "diffusion")
        got = probe(args.pair, path, args.limit)
    cells = "  ".join(f"{k} {r['k']}/{r['n']} ({r['ci'][0]:.0%}-{r['ci'][1]:.0%})" for k, r in got.items())
    print(f"pair {args.pair} steps {args.steps} continuation_share {args.continuation_share} fine_tune_every "
          f"{args.fine_tune_every}: known {cells}")


if __name__ == "__main__":
    main()
