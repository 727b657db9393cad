"""Read a recipe YAML, apply typed ``--set`` overrides, validate; errors name the field and its line
(``core.config_errors``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from augmentgen.core.config_errors import format_validation_error
from augmentgen.generators.config import apply_overrides
from augmentgen.recipes.schema import Recipe


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
        raise ValueError(format_validation_error(e, where, Recipe, root, overrides)) from None


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
