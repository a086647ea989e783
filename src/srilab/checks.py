"""Checks of user-supplied values that several layers share: numbers, text, nesting, seeds, and the argument
types of the public Python API. Each problem is one :class:`~srilab.errors.SrilabError` line.

- Numbers: a float a user writes (a temperature, a share, an option) must be finite and representable in
  float32 -- the samplers compute in float32 or narrower, so ``1e-320`` rounds to 0 there and ``1e39`` to
  infinity; both are refused where they are written, not where they would divide by zero.
- Text: a string must encode as UTF-8 (a JSON ``"\\ud800"`` escape makes a lone surrogate, which every file
  write of a run would then fail on).
- Nesting: data nested deeper than :data:`MAX_DEPTH` levels is refused (Python's recursion limit would end a
  recursive reader in ``RecursionError``).
- :class:`CheckedModel`: a pydantic model whose direct construction (``ARSamplerConfig(temperature=-1)``)
  raises one SrilabError instead of pydantic's multi-line ``ValidationError``; validation nested in another
  model (a study config's samplers) keeps pydantic's errors, so the study config names the field's path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator

from srilab.errors import SrilabError

#: The largest finite float32 and the smallest normal one: the range every float a user writes must keep.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38
#: Nesting deeper than this (mappings and lists) in a config, option or data row is refused.
MAX_DEPTH = 32
#: Seeds are per item (``seed`` + the item's index) and feed numpy and torch generators: keep them in 31 bits.
MAX_SEED = 2**31 - 1


def number_problem(value: float) -> str | None:
    """Why the float ``value`` cannot be used (not finite, beyond float32, or so small that it underflows)."""
    if math.isnan(value):
        return "is not a number (NaN): write a finite number"
    if math.isinf(value):
        return f"is {'-' if value < 0 else ''}infinite: write a finite number"
    if abs(value) > FLOAT32_MAX:
        return f"{value!r} overflows float32 (largest {FLOAT32_MAX:.4g}): write a smaller number"
    if value != 0 and abs(value) < FLOAT32_TINY:
        return f"{value!r} underflows float32 (rounds to 0 below {FLOAT32_TINY:.4g}): write 0 or a larger number"
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        return (f"holds {bad!r} at character {err.start + 1}, a lone surrogate that is not valid Unicode text "
                "(a broken \\u escape?)")
    return None


def check_text(text: str, what: str) -> str:
    if problem := text_problem(text):
        raise SrilabError(f"{what} {problem}: fix or remove it")
    return text


def check_seed(v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEED - 10**6:
        raise ValueError(f"seed {v!r} is out of range: use a whole number 0 <= seed <= {MAX_SEED - 10**6}")
    return v


def _path(parts: Sequence[Any]) -> str:
    text = ".".join(str(p) for p in parts) or "(top level)"
    return text if len(text) <= 80 else f"{text[:60]}...{text[-16:]}"


def walk(data: Any, *, max_depth: int = MAX_DEPTH) -> Iterator[tuple[str, Any]]:
    """Every value of nested mappings and lists with its dotted path, depth first and without recursion;
    nesting deeper than ``max_depth`` is one SrilabError."""
    stack: list[tuple[tuple, Any, int]] = [((), data, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield _path(path), value
        if isinstance(value, dict | list | tuple):
            if depth >= max_depth:
                raise SrilabError(f"{_path(path)}: nested more than {max_depth} levels deep: flatten it")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((path + (k,), v, depth + 1) for k, v in reversed(list(items)))


def data_problem(data: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """The first problem of plain data a user wrote (a config, an option mapping), as ``path: problem``:
    a float that is not finite or not float32, text that is not valid Unicode, a key that is not text, a
    value that is not JSON data, or nesting deeper than ``max_depth``. None when it is fine."""
    try:
        for path, value in walk(data, max_depth=max_depth):
            if isinstance(value, bool) or value is None or isinstance(value, int):
                continue
            if isinstance(value, float):
                problem = number_problem(value)
            elif isinstance(value, str):
                problem = text_problem(value) or ("holds a NUL character (\\x00): remove it" if "\x00" in value
                                                  else None)
            elif isinstance(value, dict):
                bad = next((k for k in value if not isinstance(k, str)), None)
                if bad is not None:
                    return f"{path}: the key {bad!r} is not text: quote it"
                problem = next((f"key {k[:40]!r} {p}" for k in value if (p := text_problem(k))), None)
            elif isinstance(value, list | tuple | BaseModel | os.PathLike):
                continue  # containers are walked; models were validated; a path is checked where it is used
            else:
                problem = f"holds a {type(value).__name__} value: use text, numbers, lists or mappings"
            if problem:
                return f"{path}: {problem}" + (": fix or remove it" if "surrogate" in problem else "")
    except SrilabError as err:
        return str(err)
    return None


# ------------------------------------------------------------------------------------------------ pydantic
def pydantic_problems(err: ValidationError, *, skip: Sequence[str] = ()) -> str:
    """A ValidationError as ``field.path: message; ...`` (one line). ``skip``: loc parts that are pydantic's
    own (a discriminated union's tag), not keys the user wrote."""
    problems = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        loc = [p for i, p in enumerate(e["loc"]) if not (p in skip and i and isinstance(e["loc"][i - 1], int))]
        where = _path(loc)
        problems.append(msg if where == "(top level)" else f"{where}: {msg}")
    return "; ".join(dict.fromkeys(problems))


class InvalidValue(SrilabError, ValueError):
    """A config class built with a bad value: a SrilabError (one line, exit 2) that is also a ValueError, as
    pydantic's ValidationError was, so code catching that still catches it."""


class _CheckedMeta(type(BaseModel)):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as err:
            raise InvalidValue(f"{cls.__name__}: {pydantic_problems(err)}") from None


class CheckedModel(BaseModel, metaclass=_CheckedMeta):
    """A pydantic model whose direct construction and :meth:`model_validate` raise one SrilabError line, whose
    input is plain data (:func:`data_problem`) and whose float fields hold finite float32 values however they
    were given (``"1e-320"`` as text too)."""

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data: Any) -> Any:
        """Every value is plain data: finite float32 numbers, valid Unicode text, at most MAX_DEPTH deep."""
        if isinstance(data, dict) and (problem := data_problem(data)):
            raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _finite_float32(self) -> Any:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, float) and (problem := number_problem(value)):
                raise ValueError(f"{name}: {problem}")
        return self

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as err:
            raise InvalidValue(f"{cls.__name__}: {pydantic_problems(err)}") from None


# ------------------------------------------------------------------------------------------------ Python API
def type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def expect(value: Any, types: type | tuple[type, ...], what: str, *, hint: str = "") -> Any:
    """``value`` when it is an instance of ``types`` (a bool is not an int), else one SrilabError."""
    wanted = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted and int in wanted)
    if not ok:
        names = " or ".join(t.__name__ for t in wanted)
        raise SrilabError(f"{what} must be {names}, got {type_name(value)}{': ' + hint if hint else ''}")
    return value


def expect_text(value: Any, what: str, *, empty: bool = False) -> str:
    """A str (non-empty unless ``empty``) that encodes as UTF-8."""
    expect(value, str, what)
    if not empty and not value.strip():
        raise SrilabError(f"{what} is empty: pass some text")
    return check_text(value, what)


def expect_texts(value: Any, what: str, *, empty: bool = True, optional_items: bool = False) -> list:
    """A list or tuple of str (not a single str, which would be read character by character); ``optional_items``
    allows None entries."""
    if isinstance(value, str):
        raise SrilabError(f"{what} must be a list of str, got a single str: wrap it in a list")
    if not isinstance(value, list | tuple):
        raise SrilabError(f"{what} must be a list of str, got {type_name(value)}")
    for i, item in enumerate(value):
        if not (item is None and optional_items):
            expect_text(item, f"{what}[{i}]", empty=empty)
    return list(value)


def expect_int(value: Any, what: str, *, minimum: int | None = None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    expect(value, int, what)
    if minimum is not None and value < minimum:
        raise SrilabError(f"{what} must be at least {minimum}, got {value}")
    return value


__all__ = [
    "FLOAT32_MAX", "FLOAT32_TINY", "MAX_DEPTH", "MAX_SEED", "CheckedModel", "InvalidValue", "check_seed", "check_text",
    "data_problem", "expect", "expect_int", "expect_text", "expect_texts", "number_problem", "pydantic_problems",
    "text_problem", "type_name", "walk",
]
