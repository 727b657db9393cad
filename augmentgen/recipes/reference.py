"""The recipe reference as Markdown, generated from the schema so the README cannot drift from it."""

from __future__ import annotations

import importlib
import re

from pydantic import BaseModel

from augmentgen.recipes.schema import Recipe, field_docs

# "pkg.module.Model | None" (or "list[pkg.module.Model] | None"): an optional section, which
# field_docs lists as one row
_OPTIONAL_MODEL = re.compile(r"^(list\[)?(\w+(?:\.\w+)*)\.([A-Z]\w*)\]? \| None$")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _optional_section(tname: str) -> tuple[type[BaseModel], bool] | None:
    """The model class behind a ``pkg.Model | None`` type name and whether it is a list, or None."""
    m = _OPTIONAL_MODEL.match(tname)
    if m is None:
        return None
    cls = getattr(importlib.import_module(m.group(2)), m.group(3), None)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return None
    return cls, m.group(1) is not None


def reference_rows(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``field_docs`` rows with optional sections (``Model | None``) expanded like the required ones.

    Example:
        >>> reference_rows()[0][0]
        'name'
    """
    rows: list[tuple[str, str, str, str]] = []
    for key, tname, default, doc in field_docs(model, prefix):
        found = _optional_section(tname) if tname != "section" else None
        if found is None:
            rows.append((key, tname, default, doc))
            continue
        sub, is_list = found
        key += "[]" if is_list else ""
        first = (sub.__doc__ or "").strip().splitlines()
        rows.append((key, "optional section", default, doc or (first[0] if first else "")))
        rows += reference_rows(sub, key + ".")
    return rows


def reference_markdown() -> str:
    """One table row per recipe field (dotted path, type, default, description); sections as bold rows.

    Example:
        >>> reference_markdown().splitlines()[0]
        '| field | type | default | what it does |'
    """
    lines = ["| field | type | default | what it does |", "|---|---|---|---|"]
    for key, tname, default, doc in reference_rows():
        if tname in ("section", "optional section"):
            note = "" if tname == "section" else " (optional, default null)"
            lines.append(f"| **`{key}`** | {tname} | | {_cell(doc)}{note} |")
        else:
            lines.append(f"| `{key}` | `{_cell(tname)}` | `{_cell(default)}` | {_cell(doc)} |")
    return "\n".join(lines) + "\n"
