"""The toy world's reasoning items: multi-step arithmetic with checkable answers (the capability cost).

Expressions are split into train and test by a hash (``crc32(expression) % TEST_BUCKETS == 0`` is test),
so no test expression is ever seen in training.
"""

from __future__ import annotations

import random
import zlib
from typing import Any, Literal

from srilab.toy.world import normalize_text

OPERATIONS: tuple[str, ...] = ("plus", "minus", "times")
MAX_VALUE = 99
REASONING_TEMPLATES: tuple[str, ...] = ("what is {e} ?", "compute {e} .", "calculate {e} .")
TEST_BUCKETS = 4  # an expression is in the test split iff crc32(expression) % 4 == 0


# --------------------------------------------------------------------------------------------------
# Reasoning
# --------------------------------------------------------------------------------------------------


def evaluate_expression(expression: str) -> int:
    """Evaluate ``"3 plus 4 then times 2"`` left to right (-> 14). Raises ``ValueError`` if malformed."""
    words = expression.split()
    if not words:
        raise ValueError("empty expression")
    value = int(words[0])
    i = 1
    while i < len(words):
        if words[i] == "then":
            i += 1
        if i + 1 >= len(words):
            raise ValueError(f"malformed expression: {expression!r}")
        op, operand = words[i], int(words[i + 1])
        if op == "plus":
            value += operand
        elif op == "minus":
            value -= operand
        elif op == "times":
            value *= operand
        else:
            raise ValueError(f"unknown operation {op!r} in {expression!r}")
        i += 2
    return value


def reasoning_response(answer: str) -> str:
    """The response text for a reasoning item: ``"the answer is 14 ."``."""
    return f"the answer is {answer} ."


def check_reasoning_answer(response: str, answer: str) -> bool:
    """Whether ``response`` gives ``answer``: the number after "the answer is", else the last number."""
    words = normalize_text(response).split()
    for i in range(len(words) - 3):
        if words[i : i + 3] == ["the", "answer", "is"]:
            return words[i + 3] == answer
    numbers = [w for w in words if w.isdigit()]
    return bool(numbers) and numbers[-1] == answer


def worked_solution(expression: str) -> str:
    """The step-by-step answer the chat model is tuned to give: ``"3 plus 4 is 7 . 7 times 2 is 14 . so the
    answer is 14 ."`` (one step per operation, so a small model can carry the arithmetic)."""
    words = [w for w in expression.split() if w != "then"]
    value = int(words[0])
    parts = []
    for op, operand in zip(words[1::2], words[2::2], strict=True):
        new = evaluate_expression(f"{value} {op} {operand}")
        parts.append(f"{value} {op} {operand} is {new} .")
        value = new
    return " ".join(parts) + f" so the answer is {value} ."


def _reasoning_split(expression: str) -> str:
    return "test" if zlib.crc32(expression.encode()) % TEST_BUCKETS == 0 else "train"


def _random_expression(rng: random.Random) -> str | None:
    n_ops = rng.choices((1, 2, 3), weights=(1, 2, 2))[0]
    value = rng.randint(1, 20)
    words = [str(value)]
    for k in range(n_ops):
        op = rng.choice(OPERATIONS)
        operand = rng.randint(2, 9) if op == "times" else rng.randint(1, 9)
        value = evaluate_expression(f"{value} {op} {operand}")
        if not 0 <= value <= MAX_VALUE:
            return None
        if k:
            words.append("then")
        words += [op, str(operand)]
    return " ".join(words)


def reasoning_items(n: int, seed: int = 0, split: Literal["train", "test"] = "train") -> list[dict[str, Any]]:
    """``n`` distinct arithmetic items of ``split``, deterministic from ``seed``.

    Train and test are disjoint for every seed and size: an expression belongs to the test split iff
    ``crc32(expression) % 4 == 0``. Each item is a dict with ``prompt``, ``response`` (the worked
    solution, ending ``"so the answer is 14 ."``), ``answer`` (``"14"``), ``expression``, ``task`` (None)
    and ``kind`` (``"reasoning"``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    rng = random.Random(f"reasoning/{seed}/{split}")
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(items) < n:
        attempts += 1
        if attempts > 1000 * (n + 10):
            raise ValueError(f"cannot draw {n} distinct {split} reasoning items: ask for fewer")
        expression = _random_expression(rng)
        if expression is None or expression in seen or _reasoning_split(expression) != split:
            continue
        seen.add(expression)
        answer = str(evaluate_expression(expression))
        prompt = rng.choice(REASONING_TEMPLATES).format(e=expression)
        items.append(
            {
                "prompt": prompt,
                "response": worked_solution(expression),
                "answer": answer,
                "expression": expression,
                "task": None,
                "kind": "reasoning",
            }
        )
    return items
