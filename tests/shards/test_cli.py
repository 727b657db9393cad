"""`augmentgen generate` and `augmentgen verify`: exit codes and messages users see."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from augmentgen.cli import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    """Exit code and output with rich's line wrapping undone."""
    res = runner.invoke(app, list(args))
    return res.exit_code, " ".join(res.output.split())


RECIPE = {
    "shards": {"name": "cli", "count": 3, "size": 6, "batch_size": 4},
    "source": {"kind": "dataset", "target": "shards.toy:noise_dataset", "options": {"n": 12, "size": 8}},
    "run": {"threads": 1},
}


def _recipe(tmp_path: Path, data: dict[str, object] = RECIPE) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_generate_verify_and_refuse_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(out))
    assert code == 0, text
    assert "wrote 3 shard(s), 18 samples" in text
    code, text = _invoke("verify", str(out))
    assert code == 0 and "3 shard(s), 18 samples checked: ok" in text
    before = (out / "cli-000000.tar").stat().st_mtime_ns
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(out))
    assert code == 2 and "pass --resume" in text
    assert (out / "cli-000000.tar").stat().st_mtime_ns == before
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(out), "--resume")
    assert code == 0 and "wrote 0 shard(s)" in text and "3 already done" in text


def test_verify_names_the_damaged_shard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _invoke("generate", str(_recipe(tmp_path)), "--out", str(out))[0] == 0
    data = (out / "cli-000001.tar").read_bytes()
    (out / "cli-000001.tar").write_bytes(data[:2000])
    code, text = _invoke("verify", str(out), "--json")
    assert code == 1
    assert "cli-000001.tar" in text and "truncated" in text


def test_bad_recipe_and_other_recipe_are_clear_errors(tmp_path: Path) -> None:
    bad = {**RECIPE, "shards": {**RECIPE["shards"], "formt": "png"}}  # type: ignore[dict-item]
    code, text = _invoke("generate", str(_recipe(tmp_path, bad)), "--out", str(tmp_path / "o"))
    assert code == 2 and "shards.formt" in text
    out = tmp_path / "out"
    assert _invoke("generate", str(_recipe(tmp_path)), "--out", str(out))[0] == 0
    other = {**RECIPE, "shards": {**RECIPE["shards"], "seed": 5}}  # type: ignore[dict-item]
    code, text = _invoke("generate", str(_recipe(tmp_path, other)), "--out", str(out), "--resume")
    assert code == 2 and "another recipe" in text and "shards.seed: 0 -> 5" in text


def test_an_output_that_cannot_be_written_exits_3_naming_the_path(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file where the output folder should go")
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(taken))
    assert code == 3, text
    assert text.startswith("error:") and str(taken) in text.replace(" ", "")  # rich may wrap inside the path
    assert taken.read_text() == "a file where the output folder should go"
    missing = tmp_path / "no-such.yaml"
    code, text = _invoke("generate", str(missing), "--out", str(tmp_path / "o"))
    assert code == 2 and "recipe file not found" in text and str(missing) in text.replace(" ", "")  # bad input, not a write


def test_set_overrides_a_generate_recipe_field_typed_and_names_a_bad_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(out), "--set", "shards.count=2",
                         "--set", "shards.size=5")
    assert code == 0 and "wrote 2 shard(s), 10 samples" in text, text
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["recipe"]["shards"]["count"] == 2  # the manifest records the recipe as run
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(tmp_path / "o"), "--set", "shards.count=two")
    assert code == 2 and "shards.count (--set shards.count=two)" in text and "valid integer" in text
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(tmp_path / "o"), "--set", "shards.coutn=2")
    assert code == 2 and "did you mean 'count'" in text
    code, text = _invoke("generate", str(_recipe(tmp_path)), "--out", str(tmp_path / "o"), "--set", "shards")
    assert code == 2 and "bad --set" in text and "a.b.c=value" in text
    assert not (tmp_path / "o").exists()  # nothing is written for a recipe that does not validate
