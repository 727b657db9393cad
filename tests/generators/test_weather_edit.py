"""Learned weather edits on a tiny diffusers pipeline: geometry and targets kept, seeded, replayable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("diffusers")

from tiny_hf import save_tiny_sd_pipeline  # noqa: E402

from augmentgen.core.batch import Batch, Boxes, Sample  # noqa: E402
from augmentgen.generators.prompts import TemplatePrompts  # noqa: E402
from augmentgen.generators.weather_edit import (  # noqa: E402
    WEATHER_TEMPLATES,
    WeatherEdit,
    WeatherEditConfig,
    weather_vocab,
)


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def edit(pipe_dir: Path) -> WeatherEdit:
    return WeatherEdit.from_pretrained(
        str(pipe_dir), steps=4, guidance_scale=2.0, device="cpu",
        edit={"conditions": ["rain", "night", "fog"], "strength": 0.5},
    )  # fmt: skip


def _scene(b: int = 3, h: int = 20, w: int = 30, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(b, 3, h, w, generator=g)
    boxes = Boxes.from_list(
        [torch.tensor([[1.0, 2.0, 10.0, 12.0], [5.0, 5.0, 25.0, 18.0]])] * b, [torch.tensor([1, 2])] * b
    )
    masks = torch.zeros(b, 2, h, w, dtype=torch.uint8)
    masks[:, 0, 2:12, 1:10] = 1
    masks[:, 1, 5:18, 5:25] = 1
    kp = torch.rand(b, 3, 2, generator=g) * torch.tensor([w, h])
    return Batch(image=img, label=torch.arange(b), boxes=boxes, masks=masks, keypoints=kp)


def test_edit_keeps_size_and_every_target(edit: WeatherEdit) -> None:
    b = _scene()
    out = edit(b, torch.Generator().manual_seed(0))
    assert out.image.shape == b.image.shape and out.image.dtype == b.image.dtype
    assert (
        out.boxes is b.boxes
        and out.masks is b.masks
        and out.keypoints is b.keypoints
        and out.label is b.label
    )
    assert float(out.image.min()) >= 0 and float(out.image.max()) <= 1
    assert ((out.image - b.image).abs().flatten(1).mean(1) > 1e-3).all()  # every row was edited
    assert all(w in ("rain", "night", "fog") for w in out.meta["weather"])
    for w, p in zip(out.meta["weather"], out.meta["prompt"], strict=True):
        assert p in [t.format(scene="street") for t in WEATHER_TEMPLATES[w]]
    assert out.meta["strength"] == [0.5] * 3 and len(set(out.meta["sample_seed"])) == 3


def test_same_rng_same_edit_and_replay(edit: WeatherEdit) -> None:
    b = _scene()
    a = edit(b, torch.Generator().manual_seed(3))
    again = edit(b, torch.Generator().manual_seed(3))
    assert torch.equal(a.image, again.image) and a.meta == again.meta
    params = edit.sample_params(b, torch.Generator().manual_seed(3))
    replay = edit.apply(b, params)
    assert torch.equal(replay.image, a.image)
    # one row alone with its own params gives the same picture as inside the batch
    one = edit.apply(b.index(torch.tensor([2])), params.select(slice(2, 3)))
    torch.testing.assert_close(one.image[0], a.image[2], atol=1e-4, rtol=0)
    other = edit(b, torch.Generator().manual_seed(4))
    assert other.meta["sample_seed"] != a.meta["sample_seed"]


def test_rows_not_drawn_pass_through_exactly(pipe_dir: Path, edit: WeatherEdit) -> None:
    half = WeatherEdit(edit.generator, WeatherEditConfig(conditions=["snow"], p=0.5))
    b = _scene(b=8)
    params = half.sample_params(b, torch.Generator().manual_seed(1))
    applied = params.applied.tolist()  # type: ignore[union-attr]
    assert 0 < sum(applied) < 8
    out = half.apply(b, params)
    for i, on in enumerate(applied):
        assert torch.equal(out.image[i], b.image[i]) != on
        assert (out.meta["weather"][i] == "snow") == on and (out.meta["prompt"][i] is None) != on


def test_strength_zero_is_identity_and_uint8_stays_uint8(edit: WeatherEdit) -> None:
    zero = WeatherEdit(edit.generator, WeatherEditConfig(strength=0.0))
    b = _scene()
    torch.testing.assert_close(zero(b, torch.Generator()).image, b.image)
    u8 = b.replace(image=(b.image * 255).round().to(torch.uint8))
    out = edit(u8, torch.Generator().manual_seed(0))
    assert out.image.dtype == torch.uint8 and out.image.shape == u8.image.shape


def test_numpy_rng_and_the_per_sample_path(edit: WeatherEdit) -> None:
    b = _scene(b=1)
    s = Sample.from_batch(b)
    params = edit.sample_params(s, np.random.default_rng(0))
    out = edit.apply_sample(s, params)
    assert out.image.shape == s.image.shape and out.image.dtype == s.image.dtype
    assert np.array_equal(out.boxes, s.boxes) and np.array_equal(out.masks, s.masks)  # type: ignore[arg-type]
    assert out.meta is not None and out.meta["weather"] in ("rain", "night", "fog")
    batched = edit.apply(b, params)
    np.testing.assert_allclose(out.image, batched.image[0].permute(1, 2, 0).numpy(), atol=1e-6)


def test_prompts_from_a_prompt_source_and_config_overrides(edit: WeatherEdit) -> None:
    source = TemplatePrompts(weather_vocab(["fog", "rain"]), templates=("{noun} over the street {ctx}",))
    cfg = WeatherEditConfig(
        conditions=["fog", "rain"], prompts={"rain": ["a rainy street"]}, prompts_per_condition=3
    )
    w = WeatherEdit(edit.generator, cfg, prompt_source=source)
    assert w.prompt_table[0] == source.prompts("fog", 3, seed=0)
    assert w.prompt_table[1] == ["a rainy street"]
    out = w(_scene(b=4), torch.Generator().manual_seed(0))
    for cond, p in zip(out.meta["weather"], out.meta["prompt"], strict=True):
        assert p in w.prompt_table[cfg.conditions.index(cond)]


def test_bad_config_is_named(edit: WeatherEdit) -> None:
    with pytest.raises(ValueError, match="condition 'hail' has no template"):
        WeatherEdit(edit.generator, WeatherEditConfig(conditions=["hail"]))
    with pytest.raises(ValueError, match="strength must be in"):
        WeatherEditConfig(strength=2.0)
    with pytest.raises(ValueError, match="prompts\\['rain'\\]"):
        WeatherEditConfig(prompts={"rain": "not a list"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unknown condition 'hail'"):
        weather_vocab(["hail"])
    with pytest.raises(ValueError, match="params are for 3 samples, the batch has 2"):
        edit.apply(_scene(b=2), edit.sample_params(_scene(b=3), torch.Generator()))


@settings(max_examples=6, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(6, 24),
    w=st.integers(6, 24),
    n=st.integers(0, 4),
    seed=st.integers(0, 99),
)
def test_property_targets_untouched_and_size_kept(
    edit: WeatherEdit, b: int, h: int, w: int, n: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(b, n, 2, generator=g) * torch.tensor([w / 2, h / 2])
    boxes = Boxes(torch.cat([xy, xy + torch.tensor([w / 2, h / 2])], -1), torch.ones(b, n, dtype=torch.bool),
                  torch.zeros(b, n, dtype=torch.int64))  # fmt: skip
    masks = (torch.rand(b, 1, h, w, generator=g) > 0.5).to(torch.uint8)
    batch = Batch(image=torch.rand(b, 3, h, w, generator=g), boxes=boxes, masks=masks)
    out = edit(batch, torch.Generator().manual_seed(seed))
    assert out.image.shape == batch.image.shape
    assert out.boxes is not None and torch.equal(out.boxes.xyxy, boxes.xyxy) and torch.equal(out.masks, masks)  # type: ignore[arg-type]


def test_inside_a_pipeline_after_geometry(edit: WeatherEdit) -> None:
    from augmentgen.ops.geometric import HorizontalFlip
    from augmentgen.pipeline import Pipeline

    pipe = Pipeline([HorizontalFlip(p=1.0), edit])
    b = _scene(b=2)
    out = pipe(b, rng=torch.Generator().manual_seed(0))
    assert out.image.shape == b.image.shape and out.boxes is not None
    w = b.image.shape[-1]
    expect = b.boxes.xyxy[..., [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1]) + torch.tensor([w, 0.0, w, 0])  # type: ignore[union-attr]
    torch.testing.assert_close(out.boxes.xyxy, expect)  # the flip moved the boxes; the edit left them there
    assert torch.equal(out.masks, b.masks.flip(-1))  # type: ignore[union-attr, arg-type]
    assert out.meta["weather"][0] in ("rain", "night", "fog")


@pytest.mark.slow  # loads and samples the real SmolLM2-135M (~1 min of CPU)
def test_llm_written_weather_prompts(edit: WeatherEdit, tmp_path: Path) -> None:
    from augmentgen.generators.prompts_llm import LLMPrompts

    llm = LLMPrompts(
        weather_vocab(["fog"]),
        instruction="Describe the same street scene in {name}: {description}.",
        cache=tmp_path / "weather.jsonl",
    )
    w = WeatherEdit(
        edit.generator, WeatherEditConfig(conditions=["fog"], prompts_per_condition=2), prompt_source=llm
    )
    assert w.prompt_table[0] == llm.prompts("fog", 2, seed=0)  # the second request is read from the cache
    assert len(w.prompt_table[0]) >= 1 and (tmp_path / "weather.jsonl").is_file()
    out = w(_scene(b=2), torch.Generator().manual_seed(0))
    assert all(p in w.prompt_table[0] for p in out.meta["prompt"])


def test_driving_recipe_with_the_weather_editor(pipe_dir: Path, tmp_path: Path) -> None:
    """The driving recipe's optional editor hook, enabled on the tiny pipeline: boxes still valid, provenance kept."""
    import json
    import tarfile

    from augmentgen.recipes.detection import load_detection_recipe, run_detection_recipe

    root = Path(__file__).resolve().parents[2]
    recipe = root / "recipes" / "driving-weather.yaml"
    if not (root / "examples" / "data" / "driving-coco" / "annotations.json").is_file():
        pytest.skip("the driving COCO fixture is not in this checkout")
    r = load_detection_recipe(
        recipe,
        [
            f"source.path={root / 'examples/data/driving-coco/annotations.json'}",
            "generator.enabled=true", f"generator.path={pipe_dir}", "generator.at=0",
            "generator.options={steps: 2, guidance_scale: 1.0, device: cpu}",
            "generator.edit={conditions: [rain, night], strength: 0.5, p: 1.0}",
            "shards.count=1", "shards.size=4", "shards.batch_size=4", "export.coco=false",
        ],
    )  # fmt: skip
    res = run_detection_recipe(r, tmp_path / "run")
    assert res.passed  # box-validity gate: every box inside its image, non-empty, known category
    with tarfile.open(next((tmp_path / "run" / "shards").glob("*.tar"))) as tar:
        metas = [
            json.load(tar.extractfile(m))
            for m in tar.getmembers()
            if m.name.endswith(".json") and not m.name.endswith("boxes.json")
        ]  # type: ignore[arg-type]
    assert len(metas) == 4
    assert all(
        m["weather"] in ("rain", "night") and m["prompt"] and isinstance(m["sample_seed"], int) for m in metas
    )
