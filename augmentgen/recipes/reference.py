"""The recipe reference as Markdown, generated from the schema so the README cannot drift from it."""

from __future__ import annotations

from augmentgen.recipes.schema import field_docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """One table row per recipe field (dotted path, type, default, description); sections as bold rows.

    Example:
        >>> reference_markdown().splitlines()[0]
        '| field | type | default | what it does |'
    """
    lines = ["| field | type | default | what it does |", "|---|---|---|---|"]
    for key, tname, default, doc in field_docs():
        if tname == "section":
            lines.append(f"| **`{key}`** | section | | {_cell(doc)} |")
        else:
            lines.append(f"| `{key}` | `{_cell(tname)}` | `{_cell(default)}` | {_cell(doc)} |")
    return "\n".join(lines) + "\n"
