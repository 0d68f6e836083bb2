"""Pydantic errors of a YAML config as one-line messages: file, line, field path, problem, fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

__all__ = ["Loc", "dotted", "explain", "index_lines", "locate"]

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def locate(path: Path | None, lines: dict[Loc, int], loc: Loc) -> str:
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    head = f"{path}:{line}" if path and line else (str(path) if path else "config")
    return f"{head}: {dotted(loc)}" if loc else head


def index_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    """Map every YAML path to its 1-based line."""
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            index_lines(value, child, out)
            out[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index_lines(item, (*loc, i), out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a type annotation (through unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(loc: Loc, root: type[BaseModel], tags: frozenset[str]) -> type[BaseModel] | None:
    """The pydantic model that a location's parent is validated with (for key suggestions)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or part in tags:
            continue
        field = model.model_fields.get(part) if model else None
        model = next(iter(_models_in(field.annotation)), None) if field else None
    return model


def explain(err: Mapping[str, Any], root: type[BaseModel], tags: frozenset[str]) -> tuple[Loc, str, str]:
    """The location, problem and fix of one pydantic error; ``tags`` are union tags to drop from paths."""
    loc = tuple(p for p in err["loc"] if p not in tags)
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        model = _model_at(loc, root, tags)
        allowed = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean {close[0]!r}?" if close else "remove it"
        if allowed:
            fix += f" (allowed here: {', '.join(allowed)})"
        return loc, f"unknown key {loc[-1]!r}", fix
    if kind == "missing":
        return loc, "is required", "add it (see configs/quickstart.yaml)"
    if ";" in msg:
        problem, _, fix = msg.partition(";")
        return loc, problem.strip(), fix.strip()
    return loc, msg, "fix the value"
