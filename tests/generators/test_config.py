"""Train recipe models: strict keys, overrides, YAML round trip, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from augmentgen.generators.config import TrainRecipe, TrainSpec, apply_overrides, load_train_recipe

RECIPE = """
name: t
output_dir: out
data: {source: digits}
classifier: {steps: 10}
generators:
  - name: g
    kind: cgan
    model: {g_width: 8}
    train: {steps: 5, lr: {g: 0.001}}
"""


def test_load_and_override(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    r = load_train_recipe(p, ["generators.0.train.steps=7", "classifier.width=8", "eval.cas=false"])
    assert r.generators[0].train.steps == 7 and r.generators[0].train.lr == {"g": 0.001}
    assert r.classifier is not None and r.classifier.width == 8 and r.eval.cas is False
    assert r.generators[0].model == {"g_width": 8}


def test_round_trip_through_yaml() -> None:
    r = TrainRecipe.model_validate(yaml.safe_load(RECIPE))
    again = TrainRecipe.model_validate(yaml.safe_load(yaml.safe_dump(r.model_dump(mode="json"))))
    assert again == r


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("generators: [{name: g, kind: cgan, trian: {}}]", "trian"),
        ("data: {source: cifar}", "source"),
        ("data: {source: image_folder}", "data.root is required"),
        ("data: {source: digits, test_root: x}", "data.test_root is for data.source 'image_folder'"),
        ("data: {source: webdataset}", "data.root is required when data.source is 'webdataset'"),
        ("data: {source: digits, classes: [a, b]}", "data.classes is for data.source 'webdataset'"),
        ("data: {source: digits, image_size: 30}", "data.image_size must be a multiple of 4"),
        ("data: {source: digits, mode: CMYK}", "mode"),
        ("generators: [{name: g, kind: cgan, train: {steps: 0}}]", "steps"),
        ("- 1", "mapping"),
    ],
)
def test_bad_recipes_name_the_field(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        load_train_recipe(p)
    assert str(p) in str(e.value)


def test_bad_train_recipe_names_line_override_and_likely_field(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("classifier:\n  stesp: 10\ngenerators: [{name: g, kind: cgan}]\n")
    with pytest.raises(ValueError) as e:
        load_train_recipe(p, ["generators.0.train.setps=3"])
    msg = " ".join(str(e.value).split())
    assert msg.startswith(f"{p}: invalid recipe")
    assert "classifier.stesp (line 2): unknown key, not a field of this section (did you mean 'steps'?)" in msg
    assert "generators.0.train.setps (--set generators.0.train.setps=3)" in msg and "did you mean 'steps'" in msg


def test_overrides_errors() -> None:
    with pytest.raises(ValueError, match="a.b.c=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ValueError, match="not an index"):
        apply_overrides({"g": [1]}, ["g.3=2"])
    assert apply_overrides({"a": [{"b": 1}]}, ["a.0.b=x", "c.d=[1, 2]"]) == {
        "a": [{"b": "x"}],
        "c": {"d": [1, 2]},
    }


def test_train_spec_forbids_extra() -> None:
    with pytest.raises(ValueError, match="epochs"):
        TrainSpec.model_validate({"epochs": 3})
