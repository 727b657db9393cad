"""The docs cannot drift: generated parts equal what the code generates, and the README's commands are the CI's."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[2]


def make_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "docs" / "make_docs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recipe_reference_in_docs_is_the_schema_reference() -> None:
    m = make_docs()
    current = m.RECIPES_MD.read_text()
    assert current == m.recipes_md(current), (
        "docs/recipes.md is stale: run .venv/bin/python docs/make_docs.py"
    )
    # every field of the schema has its row
    from augmentgen.recipes.schema import field_docs

    for key, *_ in field_docs():
        assert f"`{key}`" in current, key


def test_recipes_md_without_markers_is_an_error(tmp_path: Path) -> None:
    m = make_docs()
    try:
        m.recipes_md("# no markers here\n")
    except ValueError as e:
        assert "markers" in str(e)
    else:
        raise AssertionError("recipes_md accepted a file without markers")


def test_cli_reference_in_docs_is_what_typer_generates() -> None:
    m = make_docs()
    assert m.CLI_MD.read_text() == m.cli_md(), "docs/cli.md is stale: run .venv/bin/python docs/make_docs.py"
    for command in ("run", "show", "evaluate", "generate", "verify", "check", "train"):
        assert f"## `augmentgen {command}`" in m.CLI_MD.read_text()


def test_readme_starts_with_two_commands_and_ci_runs_the_second_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None, "README has no bash block"
    commands = block.group(1).strip().splitlines()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "augmentgen run recipes/fashion-mnist.yaml" in main_job
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [x for x in links if not x.startswith(("http://", "https://"))]
    assert local, "README links no local file"
    missing = [x for x in local if not (ROOT / x).exists()]
    assert not missing, missing


class Inner(BaseModel):
    """An optional inner section."""

    depth: int = Field(default=3, description="how deep")


class Outer(BaseModel):
    """A model with optional sections."""

    one: Inner | None = Field(default=None, description="one optional inner")
    many: list[Inner] | None = None
    plain: int | None = None


def test_reference_expands_optional_sections_and_lists_of_them() -> None:
    from augmentgen.recipes.reference import reference_rows

    rows = {key: (tname, default, doc) for key, tname, default, doc in reference_rows(Outer)}
    assert rows["one"] == ("optional section", "null", "one optional inner")
    assert rows["one.depth"] == ("int", "3", "how deep")
    assert rows["many[]"][0] == "optional section" and rows["many[]"][2] == "An optional inner section."
    assert rows["many[].depth"][:2] == ("int", "3")
    assert rows["plain"][0] == "int | None"  # not a section
