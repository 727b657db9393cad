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
    for name in ("rotate", "random_resized_crop", "color_jitter", "gaussian_noise", "motion_blur"):
        assert name in r.output


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
