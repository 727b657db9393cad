"""The evaluation plot: its title says the synthetic arm's gain; the PNG it writes decodes."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from augmentgen.recipes.report import evaluation_title, plot_evaluation


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
