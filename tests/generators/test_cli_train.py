"""``augmentgen train RECIPE.yaml`` end to end on digits with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from augmentgen.cli import app
from augmentgen.generators import ConditionalGAN, load_generator

RECIPE = """
name: tiny
output_dir: {out}
num_threads: 1
data: {{source: digits}}
classifier: {{steps: 30, batch_size: 64, width: 8}}
generators:
  - name: gan
    kind: cgan
    model: {{g_width: 4, d_width: 4, latent_dim: 8, embed_dim: 4}}
    train: {{steps: 4, batch_size: 16, log_every: 2, sample_every: 0, checkpoint_every: 2, monitor: {{collapse_every: 2, warn_after: 0.75}}}}
eval: {{cas_per_class: 10, agreement_per_class: 10}}
"""


def test_train_command(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(out=tmp_path / "out"))
    res = CliRunner().invoke(app, ["train", str(recipe), "--no-progress", "--set", "classifier.steps=20"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    g = report["generators"]["gan"]
    assert g["steps"] == 4 and 0.0 <= g["cas"] <= 1.0 and 0.0 <= g["label_agreement"] <= 1.0
    assert g["parameters"] > 0 and g["checkpoint_mib"] > 0 and g["sample_images_per_s"] > 0
    assert "| gan (cgan) |" in (tmp_path / "out" / "report.md").read_text()
    assert isinstance(load_generator(tmp_path / "out" / "gan" / "model"), ConditionalGAN)
    recs = [json.loads(x) for x in (tmp_path / "out" / "gan" / "metrics.jsonl").read_text().splitlines()]
    judged = {r["step"]: "collapse/alarm" in r for r in recs if "collapse/label_coverage" in r}
    assert judged == {2: False, 4: True}  # measured from the start, judged from step 0.75 x 4 = 3


def test_train_command_bad_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generators: [{name: g, kind: cgan, epochs: 3}]")
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 2
    assert "epochs" in res.output


def test_train_command_unknown_generator_kind(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'o'}\ndata: {{source: digits}}\nclassifier: null\n"
        "generators: [{name: g, kind: gann}]\n"
    )
    res = CliRunner().invoke(app, ["train", str(recipe), "--no-progress"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "generators.0 (line 4)" in out and "unknown generator kind 'gann' (did you mean 'cgan'?)" in out
    assert not (tmp_path / "o").exists()  # refused when the recipe is read, before anything is written


def test_a_generator_model_field_of_the_wrong_type_is_named_when_the_recipe_is_read(tmp_path: Path) -> None:
    from augmentgen.generators.config import load_train_recipe
    from augmentgen.recipes import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: digits}\ngenerators: [{name: g, kind: cvae, model: {latent_dim: '', width: 8}}]\n")
    with pytest.raises(ValueError, match=r"generators.g.model: latent_dim: Input should be a valid integer"):
        load_train_recipe(recipe)
    with pytest.raises(ValueError, match=r"generators.0 \(--set generators.0.model.width=\{\}\): generators.cvae.model: "
                       r"width: Input should be a valid integer \(got \{\}\)$"):
        load_recipe("recipes/digits-tiny.yaml", ["generators.0.model.width={}"])
    with pytest.raises(ValueError, match=r"generators.g.model: latent_dim: Input should be a valid integer"):
        load_train_recipe(recipe, ["generators.0.model.latent_dim=null"])
    r = load_train_recipe(recipe, ["generators.0.model.latent_dim='12'"])  # a number in quotes is still the number
    assert r.generators[0].model["latent_dim"] == "12"
    from augmentgen.generators.cvae import ConditionalVAE

    assert ConditionalVAE.from_config(r.generators[0].model).config.latent_dim == 12
