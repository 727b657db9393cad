"""Validation errors of YAML configs (recipes) that name the field, its line and the likely fix.

Line numbers come from walking the composed YAML node tree (``yaml.compose``) along each
pydantic error's location; a field set with ``--set`` is named with its override instead; an
unknown key gets the closest field name of its section (``did you mean``).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from augmentgen.core.registry import did_you_mean


def node_line(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (a key's line for a mapping entry)."""
    node, line = root, None if root is None else root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not hit:
                break
            key, node = hit[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _override_for(loc: Sequence[str | int], overrides: Sequence[str]) -> str | None:
    """The last ``--set`` whose path is ``loc`` or a prefix/extension of it."""
    dotted = ".".join(str(p) for p in loc)
    for item in reversed(overrides):
        path = item.split("=", 1)[0].strip()
        if dotted == path or dotted.startswith(path + ".") or path.startswith(dotted + "."):
            return item
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(annotation)
        return [m for a in (args[:1] if typing.get_origin(annotation) is typing.Annotated else args)
                for m in _models_in(a)]  # fmt: skip
    return []


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> set[str]:
    """Field names of the section of ``model`` at ``loc`` (every model a union there allows), or none if unknown."""
    models: list[type[BaseModel]] = [model]
    for part in loc:
        nxt: list[type[BaseModel]] = []
        for m in models:
            if isinstance(part, int) or part not in m.model_fields:
                continue
            ann = m.model_fields[part].annotation
            for a in [ann, *typing.get_args(ann)]:  # list[X] / dict[str, X] / X | None: step into X
                nxt += _models_in(a) + [x for b in typing.get_args(a) for x in _models_in(b)]
        if isinstance(part, int):
            continue  # a list's item: the models stay those of the list
        models = list(dict.fromkeys(nxt))
        if not models:
            return set()
    return {f for m in models for f in m.model_fields}


def _unknown_key(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """"unknown key ...", with the closest field name of its section when one is close."""
    hint = did_you_mean([str(loc[-1])], _fields_at(model, loc[:-1])) if loc else ""
    return f"unknown key, not a field of this section{hint}"


def _named_loc(msg: str, loc: Sequence[str | int]) -> list[str | int] | None:
    """The deeper place a section's own check names (``pipeline.transforms[2]...``), if under ``loc``."""
    m = re.match(r"Value error, ([A-Za-z_][\w.\[\]]*)", msg)
    if m is None:
        return None
    parts: list[str | int] = [int(t[1:-1]) if t[0] == "[" else t for t in re.findall(r"[A-Za-z_]\w*|\[\d+\]", m.group(1))]
    return parts if len(parts) > len(loc) and parts[: len(loc)] == list(loc) else None


def format_validation_error(
    e: ValidationError,
    where: str,
    model: type[BaseModel],
    root: yaml.Node | None = None,
    overrides: Sequence[str] = (),
    title: str = "invalid recipe",
) -> str:
    """``where: title`` and one line per problem: the dotted field, its YAML line (or the ``--set``
    that gave it), the message, and for an unknown key the field it was likely meant to be."""
    lines = []
    for err in e.errors():
        loc = [p for p in err["loc"] if isinstance(p, (str, int))]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(model, loc)
        deeper = _named_loc(msg, loc)  # the message names the item: no need to repeat the whole section
        given = f" (got {err['input']!r})" if err["type"] not in ("extra_forbidden", "missing") and not deeper else ""
        if isinstance(err["input"], dict):
            given = ""  # a section's own check: its message names the field, the whole section is noise
        msg = msg.removeprefix("Value error, ")
        if len(given) > 80:
            given = given[:77] + "...)"
        if deeper:
            dotted = ".".join(str(p) for p in deeper)
        ov = _override_for(deeper or loc, overrides)
        line = node_line(root, deeper or loc)
        place = f" (--set {ov})" if ov is not None else f" (line {line})" if line is not None else ""
        lines.append(f"  {dotted}{place}: {msg}{given}")
    return f"{where}: {title}\n" + "\n".join(lines)
