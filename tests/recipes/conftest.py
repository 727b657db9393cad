"""Shared fixtures for recipe tests: one thread, and one finished digits-tiny run reused by several tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from augmentgen.recipes import load_recipe
from augmentgen.recipes.run import RunResult, run_recipe

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "recipes" / "digits-tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """digits-tiny run to the end, in this process."""
    return run_recipe(load_recipe(TINY), tmp_path_factory.mktemp("tiny") / "run")
