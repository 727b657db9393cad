"""The evaluation plot and section: they say the synthetic arm's gain, paired by seed; the PNG decodes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augmentgen.recipes.report import _evaluation_section, _tiles, evaluation_title, plot_evaluation


def _evaluation(gains: dict[str, float] | None) -> dict:
    arms = {
        a: {"mean": m, "std": 0.01}
        for a, m in [("real", 0.73), ("real_classical", 0.731), ("real_classical_synthetic", 0.754)]
    }
    ev = {"n_per_class": 10, "settings": {"seeds": [0, 1, 2]}, "arms": arms}
    if gains is not None:
        ev["gains"] = gains
    return ev


def test_title_names_the_gain_in_points_with_its_sign() -> None:
    assert evaluation_title(_evaluation({"synthetic_over_classical": 0.0234})).endswith(
        "synthetic over classical +2.3 points"
    )
    assert "-0.7 points" in evaluation_title(_evaluation({"synthetic_over_classical": -0.0071}))


def test_title_without_a_synthetic_arm_has_no_gain() -> None:
    t = evaluation_title(_evaluation({"classical_over_real": 0.001}))
    assert t == "10 real images per class, 3 seed(s)"
    ev = _evaluation(None)
    ev["n_per_class"] = None
    assert evaluation_title(ev).startswith("all real images per class")


def test_plot_writes_the_png_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.png"
    data = plot_evaluation(_evaluation({"synthetic_over_classical": 0.023}), path)
    assert path.read_bytes() == data
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (650, 320)


def test_title_and_section_give_the_paired_gain_and_its_verdict(tmp_path: Path) -> None:
    import json

    from augmentgen.eval.protocol import ArmResult, Evaluation

    arms = {
        "real_classical": ArmResult("real_classical", [0, 1, 2], [0.9306, 0.9296, 0.9323], 180000, 1.0),
        "real_classical_synthetic": ArmResult(
            "real_classical_synthetic", [0, 1, 2], [0.9295, 0.9273, 0.9295], 183000, 1.0
        ),
    }
    ev = Evaluation(arms, {"seeds": [0, 1, 2], "real_images": 60000, "test_images": 10000,
                           "classical_copies": 2, "synthetic_per_class": 300, "generators": ["cgan"]}).to_dict()  # fmt: skip
    ev["n_per_class"] = None
    assert evaluation_title(ev).endswith("synthetic over classical -0.2 points ± 0.1 paired, within the seed noise")
    (tmp_path / "evaluation.json").write_text(json.dumps(ev))
    html = _evaluation_section(tmp_path)
    assert "synthetic over classical: -0.21 points (per seed -0.11, -0.23, -0.28; paired std 0.09" in html
    assert "95% interval -0.42 to +0.01: within the seed noise)" in html


@pytest.mark.parametrize(
    ("shape", "tile"),
    [((8, 8, 1), (56, 56, 1)), ((28, 28, 1), (56, 56, 1)), ((40, 30, 3), (40, 30, 3)), ((224, 112, 3), (56, 28, 3))],
)
def test_sample_tiles_are_enlarged_by_whole_pixels_or_shrunk_to_the_tile_size(
    shape: tuple[int, int, int], tile: tuple[int, int, int]
) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(3)]
    out = _tiles(images)
    assert out.shape == (3, *tile) and out.dtype == np.uint8
    if tile[0] >= shape[0]:  # enlarged (or kept): every source pixel is a k x k block
        k = tile[0] // shape[0]
        assert np.array_equal(out[:, ::k, ::k], np.stack(images))
