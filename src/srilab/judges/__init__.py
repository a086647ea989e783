"""Judges: one protocol (``judge(requests, responses) -> list[Verdict]``) and one registry, :data:`JUDGES`.

The learned refusal judge ``refusal_probe`` (the default for studies of real models), the refusal keyword
judge, XSTest's string classifier, the LLM-as-judge, harm classifiers from the hub
(HarmBench, Llama Guard), agreement between judges and their validation on hand-labelled real answers
(:mod:`srilab.judges.validation`) live here; the toy world's oracle (:mod:`srilab.toy.oracle`) registers
itself as ``oracle``.
"""

from srilab.judges import classifiers, llm_judge, refusal, refusal_probe, xstest  # noqa: F401  (each registers its judges)
from srilab.judges.agreement import agreement, cohen_kappa, fleiss_kappa
from srilab.judges.base import JUDGES, Judge, Verdict, decides, make_judge
from srilab.judges.classifiers import HarmBenchClassifier, LlamaGuard, parse_llama_guard_output
from srilab.judges.harm import HarmJudge, HarmVerdict
from srilab.judges.llm_judge import LLMJudge
from srilab.judges.refusal import RefusalJudge
from srilab.judges.refusal_probe import RefusalProbeJudge
from srilab.judges.xstest import XSTestStringJudge

__all__ = [
    "JUDGES",
    "HarmBenchClassifier",
    "HarmJudge",
    "HarmVerdict",
    "Judge",
    "LLMJudge",
    "LlamaGuard",
    "RefusalJudge",
    "RefusalProbeJudge",
    "Verdict",
    "XSTestStringJudge",
    "agreement",
    "cohen_kappa",
    "decides",
    "fleiss_kappa",
    "make_judge",
    "parse_llama_guard_output",
]
