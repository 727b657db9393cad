"""The `augmentgen` command: parse, load recipe, call library functions, show progress.

One module per concern adds its commands to the app of ``_app``; keep command bodies thin.
They are imported in the order ``augmentgen --help`` lists them: the main job first.
"""

from __future__ import annotations

from augmentgen.cli._app import app, bench_app, console, list_app

# isort: off
from augmentgen.cli import recipes, shards, checks, ops  # noqa: F401  (register the commands, in this order)
# isort: on


def main() -> None:
    app()


__all__ = ["app", "bench_app", "console", "list_app", "main"]
