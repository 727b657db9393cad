from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import augmentgen
from augmentgen.cli import app

runner = CliRunner()


def test_version_and_list_ops() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and augmentgen.__version__ in r.output
    r = runner.invoke(app, ["list", "ops"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for name in ("rotate", "random_resized_crop", "color_jitter", "gaussian_noise", "motion_blur", "invert"):
        assert name in r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") >= 3}
    assert "policy" in rows["rand_augment"] and "num_ops=2, magnitude=9.0" in rows["rand_augment"]
    assert "policy='imagenet'" in rows["auto_augment"] and "policy" in rows["trivial_augment"]


def test_preview_writes_a_seeded_grid(tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "default-pipeline.yaml"
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        r = runner.invoke(app, ["preview", str(recipe), "--out", str(out), "--n", "3", "--size", "64", "--images", "astronaut,coffee"])
        assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(a))
    # the default pipeline crops back to 224 px, so every cell is 224 px whatever the input
    assert grid.shape == (2 * 226 + 2, 4 * 226 + 2, 3)
    assert np.array_equal(grid, np.asarray(Image.open(b)))
    # the first column is the untouched photo, the draws differ from it and from each other
    cells = [grid[2:66, 2 + k * 226 : 66 + k * 226] for k in range(4)]
    assert all(not np.array_equal(cells[0], c) for c in cells[1:])
    assert not np.array_equal(cells[1], cells[2])


def test_preview_reports_a_bad_pipeline_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  transforms:\n    - {name: rotate, degres: 3}\n")
    r = runner.invoke(app, ["preview", str(bad), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "degres" in r.output


def test_preview_takes_your_own_image_files_and_folders(tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "default-pipeline.yaml"
    rng = np.random.default_rng(0)
    for i, (cls, hw) in enumerate([("a", (30, 40)), ("a", (50, 20)), ("b", (64, 64)), ("b", (20, 20))]):
        (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    gray = tmp_path / "gray.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(gray)
    out = tmp_path / "grid.png"
    args = ["preview", str(recipe), "--out", str(out), "--n", "2", "--size", "48", "--per-folder", "3"]
    r = runner.invoke(app, [*args, "--images", f"{tmp_path / 'imgs'},{gray},coffee"])
    assert r.exit_code == 0, r.output
    assert "5 images x 2 draws" in r.output  # 3 of the folder's 4 (name order through subfolders), the file, a photo
    grid = np.asarray(Image.open(out))
    assert grid.shape[0] == 5 * 226 + 2  # the pipeline's crop makes every draw 224 px
    from augmentgen.data.photos import load_image_file

    first = load_image_file(tmp_path / "imgs" / "a" / "0.png", 48)
    assert np.array_equal(grid[2:50, 2:50], first)  # row 1 starts with a/0.png at 48 px
    r = runner.invoke(app, [*args, "--images", "no_such_photo"])
    assert r.exit_code == 2 and "neither an image file, a folder nor a sample photo" in " ".join(r.output.split())
