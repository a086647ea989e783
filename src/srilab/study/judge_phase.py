"""The judge phase of a run: every judge reads every record it has not judged yet (``judgements.jsonl``), and
the attack-success judge also reads the intermediate canvases of diffusion records (``dynamics.jsonl``).
Both are appended in chunks, so a killed run resumes where it stopped."""

from __future__ import annotations

import gc
from collections.abc import Callable

from tqdm.auto import tqdm

from srilab.judges import make_judge
from srilab.study.config import JudgeSpec, StudyConfig
from srilab.study.store import RunDir
from srilab.toy.pair import pair_world


def build_judge(spec: JudgeSpec, cfg: StudyConfig):
    """The judge of ``spec`` as the study runs it (the toy world's oracle gets the study's world)."""
    return make_judge(
        spec.name, path=spec.path, device=spec.device, dtype=spec.dtype, batch_size=spec.batch_size,
        trust_remote_code=spec.trust_remote_code, world=pair_world(cfg.toy_pair) if spec.name == "oracle" else None,
    )


def judge_all(cfg: StudyConfig, run: RunDir, *, progress: bool, echo: Callable[[str], None]) -> dict[str, int]:
    """Run every judge over every record it has not judged yet (appended in chunks: resumable). A judge reads
    the original request and the full response (prefill included: what a reader of the answer sees)."""
    records = list(run.records().rows())
    journal = run.judgements()
    done = journal.done()
    dyn_key, dyn_done = dynamics_judge(cfg), run.dynamics().done()
    counts = {}
    for spec in cfg.judges:
        pending = [r for r in records if (r["key"], spec.key) not in done]
        counts[spec.key] = len(pending)
        dyn_pending = spec.key == dyn_key and any(
            r.get("intermediate") and (r["key"], dyn_key) not in dyn_done for r in records
        )
        if not pending and not dyn_pending:
            continue
        judge = build_judge(spec, cfg)
        chunk = max(spec.batch_size, 64)
        bar = tqdm(total=len(pending), desc=f"judge {spec.key}", disable=not progress, unit="gen")
        for lo in range(0, len(pending), chunk):
            part = pending[lo : lo + chunk]
            verdicts = judge([r["request"] for r in part], [r["response"] for r in part])
            journal.append(
                {"key": r["key"], "judge": spec.key, **v.to_dict()} for r, v in zip(part, verdicts, strict=True)
            )
            bar.update(len(part))
        bar.close()
        if spec.key == dyn_key:
            judge_intermediates(judge, spec.key, records, run, progress=progress)
        del judge
        gc.collect()
    return counts


def dynamics_judge(cfg: StudyConfig) -> str:
    """The judge that reads intermediate canvases: the attack-success judge (else the refusal judge)."""
    return cfg.harm_judge() or cfg.refusal_key()


def judge_intermediates(judge, key: str, records: list[dict], run: RunDir, *, progress: bool) -> int:
    """Judge the intermediate decodes of diffusion records (``dynamics.jsonl``, one row per record)."""
    journal = run.dynamics()
    done = journal.done()
    pending = [r for r in records if r.get("intermediate") and (r["key"], key) not in done]
    bar = tqdm(total=len(pending), desc=f"judge {key} (intermediate)", disable=not progress, unit="gen")
    added = 0
    for lo in range(0, len(pending), 16):
        part = pending[lo : lo + 16]
        rows: list[dict] = [{"key": r["key"], "judge": key, "steps": r["intermediate"]["steps"]} for r in part]
        for field in ("texts", "x0_texts"):
            flat = [(r, t) for r in part for t in r["intermediate"].get(field, [])]
            if not flat:
                continue
            verdicts = iter(judge([r["request"] for r, _ in flat], [t for _, t in flat]))
            for row, r in zip(rows, part, strict=True):
                if field not in r["intermediate"]:
                    continue
                flags = [_harmful(next(verdicts)) for _ in r["intermediate"][field]]
                if field == "texts":
                    row["harmful"] = flags
                else:
                    row.update(x0_steps=r["intermediate"]["x0_steps"], x0_harmful=flags)
        added += journal.append(rows)
        bar.update(len(part))
    bar.close()
    return added


def _harmful(v) -> bool:
    """A verdict's harm flag (a refusal judge's "answered" when it decides no harm)."""
    return bool(v.harmful) if v.harmful is not None else not v.refused
