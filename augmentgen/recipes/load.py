"""Read a recipe YAML, apply typed ``--set`` overrides, validate; errors name the field and its line.

Line numbers come from walking the composed YAML node tree (``yaml.compose``) along each
pydantic error's location; a field set with ``--set`` is named with its override instead.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from augmentgen.generators.config import apply_overrides
from augmentgen.recipes.schema import Recipe


def _node_line(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
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


def _format_errors(e: ValidationError, where: str, root: yaml.Node | None, overrides: Sequence[str]) -> str:
    lines = []
    for err in e.errors():
        loc = [p for p in err["loc"] if isinstance(p, (str, int))]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a field of this section)"
        given = f" (got {err['input']!r})" if err["type"] not in ("extra_forbidden", "missing") else ""
        if len(given) > 80:
            given = given[:77] + "...)"
        ov = _override_for(loc, overrides)
        place = f"--set {ov}" if ov is not None else f"line {_node_line(root, loc)}"
        lines.append(f"  {dotted} ({place}): {msg}{given}")
    return f"{where}: invalid recipe\n" + "\n".join(lines)


def recipe_from_text(text: str, where: str = "recipe", overrides: Sequence[str] | None = None) -> Recipe:
    """Validate recipe YAML text; ``where`` names it in errors.

    Example:
        >>> recipe_from_text("shards: {count: 2}").shards.count
        2
    """
    overrides = list(overrides or [])
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a recipe is a mapping of sections, got {type(data).__name__}")
    try:
        data = apply_overrides(copy.deepcopy(data), overrides)
    except ValueError as e:
        raise ValueError(f"{where}: bad --set: {e}") from e
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise ValueError(_format_errors(e, where, root, overrides)) from None


def load_recipe(path: str | Path, overrides: Sequence[str] | None = None) -> Recipe:
    """Read and validate a recipe file, with ``--set a.b=value`` overrides (values parsed as YAML, then typed).

    Example:
        >>> load_recipe("recipes/digits-tiny.yaml", ["shards.count=3"]).shards.count  # doctest: +SKIP
        3
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"recipe file not found: {p}")
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"recipe {p}: cannot read: {e}") from e
    return recipe_from_text(text, where=str(p), overrides=overrides)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe (every default filled in) as YAML; ``recipe_from_text(dump_recipe(r)) == r``."""
    return yaml.safe_dump(recipe.resolved(), sort_keys=False, default_flow_style=None, width=100)
