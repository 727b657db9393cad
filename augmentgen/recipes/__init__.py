"""Recipes: one YAML file from real data to shards, checks, a report and the downstream evaluation."""

from augmentgen.recipes.load import dump_recipe, load_recipe, recipe_from_text
from augmentgen.recipes.schema import Recipe, field_docs

__all__ = ["Recipe", "dump_recipe", "field_docs", "load_recipe", "recipe_from_text"]
