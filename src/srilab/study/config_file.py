"""Reading a study config file: YAML (or JSON) text to plain data, before :func:`srilab.study.config.parse_config`
validates it.

- YAML anchors and aliases (``&a`` / ``*a``) are refused: a study config does not need them, and nested aliases
  expand exponentially (a "billion laughs" file would exhaust the memory);
- a key written twice in one mapping is refused (PyYAML would keep the last silently, so a second ``seed:`` would
  override the first without a word);
- nesting deeper than :data:`srilab.checks.MAX_DEPTH` is refused while the text is scanned as events (PyYAML's
  composer is recursive: 60,000 nested brackets would end in ``RecursionError``);
- relative input paths that exist beside the config file are made absolute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from srilab.checks import MAX_DEPTH
from srilab.errors import SrilabError

MAX_CONFIG_BYTES = 1 << 20  # a study config is a few kilobytes; anything much larger is the wrong file


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, line, seen[key])
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the base class names it
        return super().construct_mapping(node, deep=deep)


def _scan(text: str, path: Path) -> None:
    """Aliases and deep nesting, found on the event stream (no recursion, however deep the text)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise SrilabError(
                f"{path}:{event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in a study "
                "config: write the values out"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise SrilabError(
                    f"{path}:{event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep: a study config "
                    "is a few levels deep; is it the right file?"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def read_config_file(path: str | Path) -> Any:
    """The plain data of a study config file (see the module docstring); every problem is one SrilabError."""
    from srilab.io import read_text

    if isinstance(path, bool) or not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise SrilabError(f"a study config is the path of a YAML file (str or Path), got {path!r:.40}")
    path = Path(path)
    if path.is_dir():
        raise SrilabError(f"study config {path} is a directory: pass the study YAML file")
    text = read_text(path, "study config", max_bytes=MAX_CONFIG_BYTES)
    try:
        _scan(text, path)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as dup:
        raise SrilabError(
            f"{path}:{dup.line}: the key {dup.key!r} is written twice in one mapping (first on line {dup.first}): "
            "keep one"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise SrilabError(f"{path}{where}: not valid YAML ({problem})") from None
    return _resolve_inputs(data, path.resolve().parent) if isinstance(data, dict) else data


def _resolve_inputs(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative input paths that exist beside the config file are made absolute (see the module docstring)."""

    def fix(value: Any) -> Any:
        if not isinstance(value, str) or not value or Path(value).is_absolute() or ":" in value.split("/")[0]:
            return value  # toy:..., package:..., hub ids with a scheme, absolute paths
        candidate = base / value
        return str(candidate.resolve()) if candidate.exists() else value

    data = json.loads(json.dumps(data, default=str))
    if "toy_pair" in data:
        data["toy_pair"] = fix(data["toy_pair"])
    for key in ("models", "datasets", "judges"):
        for entry in data.get(key) or []:
            if isinstance(entry, dict) and "path" in entry:
                entry["path"] = fix(entry["path"])
    return data
