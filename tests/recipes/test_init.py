"""`augmentgen init`: a recipe drafted from your own data loads, names the data right, and runs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image
from typer.testing import CliRunner

from augmentgen.cli import app
from augmentgen.recipes import load_recipe
from augmentgen.recipes.init import SIDE_CAP, draft_recipe, survey

runner = CliRunner()


def _folder(root: Path, classes: dict[str, int], hw: list[tuple[int, int]], gray: bool = False) -> None:
    rng = np.random.default_rng(0)
    for c, n in classes.items():
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = hw[i % len(hw)]
            arr = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.png")


def test_a_train_test_pair_of_mixed_sizes(tmp_path: Path) -> None:
    _folder(tmp_path / "d" / "train", {"cat": 12, "dog": 9}, [(30, 40), (50, 36), (44, 44)])
    _folder(tmp_path / "d" / "test", {"cat": 3, "dog": 3}, [(30, 40)])
    s = survey(tmp_path / "d")
    assert s.source == "image_folder" and s.root == tmp_path / "d" / "train" and s.test_root == tmp_path / "d" / "test"
    assert s.classes == ["cat", "dog"] and s.counts == [12, 9] and s.color
    assert s.image_size() == 36  # median short side of 30, 36, 44 ... rounded to a multiple of 4
    p = tmp_path / "r.yaml"
    p.write_text(draft_recipe(s, name="pets"))
    r = load_recipe(p)
    assert r.name == "pets" and r.data.source == "image_folder" and r.data.image_size == 36
    assert r.data.root == str(tmp_path / "d" / "train") and r.data.test_root == str(tmp_path / "d" / "test")
    assert [g.kind for g in r.generators] == ["cvae", "cgan"]
    from augmentgen.eval.train_job import load_data

    train, test = load_data(r.data)
    assert train.image_shape == (3, 36, 36) and len(train) == 21 and len(test) == 6


@pytest.mark.parametrize(("hw", "want"), [((28, 28), None), ((128, 128), SIDE_CAP), ((30, 30), 32)])
def test_the_image_size_is_kept_when_it_suits_the_models(tmp_path: Path, hw: tuple[int, int], want: int | None) -> None:
    _folder(tmp_path / "d", {"a": 3, "b": 3}, [hw], gray=True)
    s = survey(tmp_path / "d")
    assert not s.color and s.test_root is None and s.image_size() == want
    p = tmp_path / "r.yaml"
    p.write_text(draft_recipe(s, name="x"))
    assert load_recipe(p).data.image_size == want


def test_an_empty_class_folder_is_refused_as_the_loader_would(tmp_path: Path) -> None:
    _folder(tmp_path / "d", {"a": 3, "b": 3}, [(8, 8)])
    (tmp_path / "d" / "c").mkdir()
    with pytest.raises(ValueError, match=r"init: class folder\(s\) \['c'\] under .* hold no images"):
        survey(tmp_path / "d")
    from augmentgen.data.sources import load_image_folder

    with pytest.raises(ValueError, match=r"class folder\(s\) \['c'\]"):
        load_image_folder(tmp_path / "d")


def test_tars_and_the_command(tmp_path: Path) -> None:
    (tmp_path / "tars").mkdir()
    rng = np.random.default_rng(0)
    with wds.TarWriter(str(tmp_path / "tars" / "a.tar")) as w:
        for i in range(12):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
            w.write({"__key__": f"k{i}", "png": buf.getvalue(), "cls": i % 3})
    out = tmp_path / "r.yaml"
    res = runner.invoke(app, ["init", str(tmp_path / "tars"), "--out", str(out), "--name", "shapes"])
    assert res.exit_code == 0, res.output
    assert "3 classes, 12 images" in " ".join(res.output.split())
    r = load_recipe(out)
    assert r.data.source == "webdataset" and r.data.classes == ["0", "1", "2"] and r.data.image_size is None
    again = runner.invoke(app, ["init", str(tmp_path / "tars"), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["init", str(tmp_path / "tars"), "--out", str(out), "--force"]).exit_code == 0
    (tmp_path / "empty").mkdir()
    bad = runner.invoke(app, ["init", str(tmp_path / "empty"), "--out", str(tmp_path / "e.yaml")])
    assert bad.exit_code == 2 and "neither *.tar shards nor class subfolders" in " ".join(bad.output.split())


def test_the_drafted_recipe_runs_end_to_end(tmp_path: Path) -> None:
    from augmentgen.recipes.run import run_recipe

    _folder(tmp_path / "d", {"a": 20, "b": 20}, [(20, 24), (24, 20)])
    p = tmp_path / "r.yaml"
    p.write_text(draft_recipe(survey(tmp_path / "d"), name="tiny"))
    quick = ["generators.0.train.steps=30", "generators.1.train.steps=30", "classifier.steps=30",
             "evaluate.steps=30", "evaluate.seeds=[0]", "shards.count=1", "shards.size=100",
             "checks.n_real=50", "checks.n_generated=50"]
    res = run_recipe(load_recipe(p, quick), tmp_path / "run")
    assert res.gates_passed and (tmp_path / "run" / "report.html").is_file()
