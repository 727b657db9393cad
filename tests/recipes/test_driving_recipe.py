"""The driving-weather recipe: loads, validates, runs end to end (shards, box checks, grids, COCO export)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from augmentgen.cli import app
from augmentgen.data.detection import load_coco
from augmentgen.recipes.detection import (
    is_detection_recipe,
    load_detection_recipe,
    run_detection_recipe,
)
from augmentgen.recipes.detection_checks import box_validity
from augmentgen.shards.reader import decode_sample, iter_raw_samples, shard_paths

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "driving-weather.yaml"


@pytest.fixture(autouse=True)
def _cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)  # the recipe's paths are relative to the repository root


def test_recipe_loads_and_validates() -> None:
    assert is_detection_recipe(RECIPE) and not is_detection_recipe(ROOT / "recipes" / "digits-tiny.yaml")
    r = load_detection_recipe(RECIPE, ["shards.count=1"])
    assert r.shards.count == 1 and r.source.format == "coco" and not r.generator.enabled
    names = json.dumps(r.pipeline)
    for op in ("fog", "rain", "snow", "sun_flare", "shadow", "night", "mosaic", "copy_paste"):
        assert f'"{op}"' in names


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("source.format=voc", "source.format"),
        ("checks.per_grid=0", "checks.per_grid"),
        ("pipeline.transforms=[{name: fogg}]", "unknown op 'fogg'"),
        ("shards.bogus=1", "shards.bogus"),
        ("shards.cuont=1", r"shards.cuont \(--set shards.cuont=1\): unknown key, .*\(did you mean 'count'\?\)"),
    ],
)
def test_recipe_errors_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_detection_recipe(RECIPE, [override])


def test_recipe_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    r = load_detection_recipe(RECIPE, ["shards.size=6", "shards.batch_size=3", "export.yolo=true"])
    res = run_detection_recipe(r, tmp_path / "run")
    assert res.passed
    report = json.loads(res.report.read_text())
    assert report["samples"] == 12 and report["boxes"]["invalid"] == 0 and report["boxes"]["boxes"] > 0
    # every shard sample has an image, boxes.json rows and a mask whose ids match the rows
    n = 0
    for p in shard_paths(tmp_path / "run" / "shards"):
        for raw in iter_raw_samples(p):
            s = decode_sample(raw)
            assert s["image"].shape == (192, 320, 3) and "mask" in s
            assert int(s["mask"].max()) <= len(s["boxes"])
            assert s["meta"]["source"].startswith("coco:") and "ops" in s["meta"]
            n += 1
    assert n == 12
    grids = report["grids"]
    assert grids and all(Path(g["file"]).is_file() for g in grids.values())
    assert sum(g["total"] for g in grids.values()) >= 12  # every sample is in at least one grid
    coco = load_coco(tmp_path / "run" / "export" / "coco" / "annotations.json")
    assert len(coco) == 12 and coco.category_names[80] == "rocket"
    assert (tmp_path / "run" / "export" / "yolo" / "data.yaml").is_file()
    # a second run resumes: nothing is rewritten, same report
    before = {p.name: p.read_bytes() for p in (tmp_path / "run" / "shards").glob("*.tar")}
    again = run_detection_recipe(r, tmp_path / "run")
    assert (
        again.passed
        and {p.name: p.read_bytes() for p in (tmp_path / "run" / "shards").glob("*.tar")} == before
    )


def test_box_validity_counts_bad_boxes(tmp_path: Path) -> None:
    import io
    import tarfile

    import cv2

    ok, png = cv2.imencode(".png", np.zeros((10, 20, 3), np.uint8))
    members = {
        "a.image.png": png.tobytes(),
        "a.boxes.json": json.dumps(
            [[1, 1, 5, 5, 3], [15, 2, 25, 8, 3], [4, 4, 4, 9, 3], [1, 1, 2, 2, 99]]
        ).encode(),
    }
    with tarfile.open(tmp_path / "x.tar", "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    res = box_validity(tmp_path / "x.tar", {3})
    assert (res["samples"], res["boxes"], res["invalid"]) == (1, 4, 3)
    assert any("outside the 20x10 canvas" in f for f in res["faults"])
    assert any("empty" in f for f in res["faults"]) and any("unknown category 99" in f for f in res["faults"])


@pytest.mark.slow  # ~35 s on 2 shared cores: a tiny SD pipeline still runs a VAE and UNet per row
def test_weather_edit_generator_runs_inside_the_recipe(tmp_path: Path) -> None:
    """The real diffusers weather editor (a tiny SD pipeline built from config) as the recipe's generator."""
    pytest.importorskip("diffusers")
    from tiny_hf import save_tiny_sd_pipeline

    pipe_dir = save_tiny_sd_pipeline(tmp_path / "tiny-sd")
    r = load_detection_recipe(
        RECIPE,
        [
            "shards.count=1", "shards.size=3", "shards.batch_size=3", "source.size=[32, 48]",
            "checks.per_grid=2", "export.coco=false", "generator.enabled=true", f"generator.path={pipe_dir}",
            "generator.edit={conditions: [rain, night], strength: 0.5, p: 1.0}",
            "generator.options={steps: 2, guidance_scale: 1.0, device: cpu}",
        ],
    )  # fmt: skip
    res = run_detection_recipe(r, tmp_path / "run")
    assert res.passed
    samples = [
        decode_sample(raw) for p in shard_paths(tmp_path / "run" / "shards") for raw in iter_raw_samples(p)
    ]
    assert len(samples) == 3
    for s in samples:
        first, params = next(iter(s["meta"]["ops"].items()))
        assert first == "0:weather_edit"  # generator.at=0: the edit runs first, before the geometry
        assert {"condition", "prompt", "seed"} <= set(params)  # replayable per-sample params in provenance
        assert s["image"].shape == (32, 48, 3) and int(s["mask"].max()) <= len(s["boxes"])
    report = json.loads(res.report.read_text())
    assert report["grids"]["weather_edit"]["total"] == 3


def test_generator_needs_a_path(tmp_path: Path) -> None:
    r = load_detection_recipe(RECIPE, ["generator.enabled=true"])
    with pytest.raises(ValueError, match="generator.enabled needs generator.path"):
        run_detection_recipe(r, tmp_path / "run")


def test_cli_run_dispatches_detection_recipes(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        ["run", str(RECIPE), "--out", str(out), "-q", "--set", "shards.count=1", "--set", "shards.size=3"],
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.json").is_file() and (out / "export" / "coco" / "annotations.json").is_file()
    shutil.rmtree(out)


def test_cli_show_prints_the_resolved_detection_recipe() -> None:
    res = CliRunner().invoke(app, ["show", str(RECIPE), "--set", "shards.count=5"])
    assert res.exit_code == 0, res.output
    assert (
        "kind: detection" in res.output and "count: 5" in res.output and "min_visibility: 0.3" in res.output
    )
    res = CliRunner().invoke(app, ["show", str(RECIPE), "--set", "source.format=voc"])
    assert res.exit_code == 2 and "source.format" in res.output
