"""The diffusers backend on a tiny Stable Diffusion pipeline built from config, saved and loaded from a folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from tiny_hf import save_tiny_sd_pipeline  # noqa: E402

from augmentgen.core import Batch  # noqa: E402
from augmentgen.core.registry import GENERATORS  # noqa: E402
from augmentgen.core.rng import torch_rng  # noqa: E402
from augmentgen.generators.diffusers_backend import DiffusersConfig, DiffusersGenerator  # noqa: E402

PROMPTS = {0: ["a red shirt", "a crimson shirt"], 1: "a blue shoe"}


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def gen(pipe_dir: Path) -> DiffusersGenerator:
    # the path users take: a hub id or a folder given to from_pretrained
    return DiffusersGenerator.from_pretrained(
        str(pipe_dir), class_prompts=PROMPTS, steps=2, guidance_scale=3.0, height=16, width=16, device="cpu"
    )


def test_registered_and_loaded_from_folder(gen: DiffusersGenerator) -> None:
    assert GENERATORS.get("diffusers") is DiffusersGenerator
    assert type(gen.pipe).__name__ == "StableDiffusionPipeline"


def test_generate_labels_shape_range_and_provenance(gen: DiffusersGenerator) -> None:
    out = gen.generate(torch.tensor([0, 1, 0]), 3, torch.Generator().manual_seed(0))
    assert out.image.shape == (3, 3, 16, 16) and out.image.dtype == torch.float32
    assert float(out.image.min()) >= 0 and float(out.image.max()) <= 1
    assert out.label is not None and out.label.tolist() == [0, 1, 0]
    assert out.meta["prompt"][1] == "a blue shoe"
    assert out.meta["prompt"][0] in PROMPTS[0] and out.meta["prompt"][2] in PROMPTS[0]
    assert len(set(out.meta["sample_seed"])) == 3
    assert out.meta["steps"] == [2, 2, 2] and out.meta["guidance_scale"] == [3.0] * 3
    json.dumps(out.meta)  # provenance must be JSON for the shard writer


def test_same_seed_same_image_alone_or_in_a_batch(gen: DiffusersGenerator) -> None:
    seeds = [11, 12, 13, 14, 15]
    prompts = ["a red shirt", "a blue shoe", "a red shirt", "a bag", "a blue shoe"]
    batch = gen.render(prompts, seeds)  # batch_size 4: two pipeline calls
    for i in (0, 3, 4):
        alone = gen.render([prompts[i]], [seeds[i]])
        torch.testing.assert_close(alone[0], batch[i], atol=1e-4, rtol=0)
    # different seed, same prompt: a different image
    assert (batch[0] - batch[2]).abs().max() > 1e-3
    again = gen.generate(["a red shirt"], 1, torch.Generator(), seeds=[11])
    torch.testing.assert_close(again.image[0], batch[0], atol=1e-4, rtol=0)


def test_rng_state_decides_the_images(gen: DiffusersGenerator) -> None:
    a = gen.generate([0, 1], 2, torch_rng(5, "x"))
    b = gen.generate([0, 1], 2, torch_rng(5, "x"))
    c = gen.generate([0, 1], 2, torch_rng(6, "x"))
    assert torch.equal(a.image, b.image) and a.meta == b.meta
    assert a.meta["sample_seed"] != c.meta["sample_seed"]


def test_negative_prompt_and_guidance_change_the_image(gen: DiffusersGenerator) -> None:
    base = gen.render(["a red shirt"], [3])
    neg = gen.render(["a red shirt"], [3], negative_prompt="blurry, dark")
    assert (base - neg).abs().max() > 1e-4


def test_prompt_condition_maps_back_to_labels(gen: DiffusersGenerator) -> None:
    out = gen.generate(["a blue shoe", "a crimson shirt"], 2, torch.Generator().manual_seed(1))
    assert out.label is not None and out.label.tolist() == [1, 0]
    free = gen.generate(["a green hat"], 1, torch.Generator().manual_seed(1))
    assert free.label is None and free.meta["prompt"] == ["a green hat"]


def test_bad_conditions_are_named(gen: DiffusersGenerator) -> None:
    with pytest.raises(ValueError, match="no prompt for class 7"):
        gen.generate([7], 1, torch.Generator())
    with pytest.raises(ValueError, match="condition has 2 entries but n=3"):
        gen.generate([0, 1], 3, torch.Generator())
    with pytest.raises(TypeError, match="mixes prompts and class ids"):
        gen.generate([0, "a red shirt"], 2, torch.Generator())


def test_img2img_keeps_size_label_boxes_and_masks(gen: DiffusersGenerator) -> None:
    from augmentgen.core.batch import Boxes

    img = torch.rand(2, 3, 20, 22)  # not a multiple of the VAE factor on purpose
    boxes = Boxes.from_list(
        [torch.tensor([[1.0, 2.0, 9.0, 12.0]]), torch.zeros(0, 4)], [torch.tensor([3]), torch.zeros(0)]
    )
    masks = torch.zeros(2, 1, 20, 22, dtype=torch.uint8)
    masks[0, 0, 2:12, 1:9] = 1
    b = Batch(image=img, label=torch.tensor([0, 1]), boxes=boxes, masks=masks)
    out = gen.edit(b, torch.Generator().manual_seed(0), strength=0.5)
    assert out.image.shape == img.shape
    assert out.label is not None and out.label.tolist() == [0, 1]
    assert out.boxes is boxes and out.masks is masks
    assert out.meta["strength"] == [0.5, 0.5] and out.meta["prompt"][1] == "a blue shoe"
    assert (out.image - img).abs().mean() > 1e-3
    same = gen.edit(b, torch.Generator().manual_seed(0), strength=0.5)
    assert torch.equal(out.image, same.image)


def test_img2img_strength_zero_is_identity_and_strength_orders_change(gen: DiffusersGenerator) -> None:
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    b = Batch(image=img, label=torch.tensor([1]))
    zero = gen.edit(b, torch.Generator(), strength=0.0, seeds=[1])
    torch.testing.assert_close(zero.image, img)
    gen10 = DiffusersGenerator(
        DiffusersConfig(pipeline="unused", class_prompts=PROMPTS, steps=10, guidance_scale=1.0), pipe=gen.pipe
    )
    low = gen10.edit(b, torch.Generator(), strength=0.1, seeds=[1])
    high = gen10.edit(b, torch.Generator(), strength=1.0, seeds=[1])
    # the tiny VAE is random, so compare with the input's VAE round trip: low strength stays near it
    vae = gen.pipe.vae
    with torch.no_grad():
        recon = (vae.decode(vae.encode(img * 2 - 1).latent_dist.mode()).sample / 2 + 0.5).clamp(0, 1)
    assert (low.image - recon).abs().mean() + 0.01 < (high.image - recon).abs().mean()


def test_img2img_uint8_and_grayscale_keep_their_form(gen: DiffusersGenerator) -> None:
    img = (torch.rand(2, 1, 16, 16) * 255).to(torch.uint8)
    out = gen.edit(Batch(image=img, label=torch.tensor([0, 0])), torch.Generator().manual_seed(2))
    assert out.image.dtype == torch.uint8 and out.image.shape == img.shape


def test_save_pretrained_round_trip_with_references(gen: DiffusersGenerator, tmp_path: Path) -> None:
    cfg = DiffusersConfig(
        pipeline="unused", mode="img2img", class_prompts=PROMPTS, steps=4, strength=0.5,
        output_size=(12, 12), channels=1,
    )  # fmt: skip
    refs = Batch(image=torch.rand(4, 3, 16, 16), label=torch.tensor([0, 1, 0, 1]))
    g = DiffusersGenerator(cfg, pipe=gen.pipe, references=refs)
    out = g.generate([1, 0], 2, torch.Generator().manual_seed(3))
    assert out.image.shape == (2, 1, 12, 12)
    assert [int(refs.label[i]) for i in out.meta["reference_index"]] == [1, 0]  # type: ignore[index]
    g.save_pretrained(tmp_path / "gen")
    body = json.loads((tmp_path / "gen" / "config.json").read_text())
    assert body["kind"] == "diffusers" and body["config"]["pipeline"] == "pipeline"
    from augmentgen.generators.checkpoint import load_generator

    loaded = load_generator(tmp_path / "gen", device="cpu")
    assert isinstance(loaded, DiffusersGenerator)
    assert loaded.config.pipeline == str(tmp_path / "gen" / "pipeline")  # the saved copy, not the source
    assert dataclasses.replace(loaded.config, pipeline="unused", device="auto") == g.config
    again = loaded.generate([1, 0], 2, torch.Generator().manual_seed(3))
    torch.testing.assert_close(again.image, out.image, atol=1e-5, rtol=0)


def test_img2img_generate_without_references_says_what_to_do(gen: DiffusersGenerator) -> None:
    g = DiffusersGenerator(
        DiffusersConfig(pipeline="x", mode="img2img", class_prompts=PROMPTS), pipe=gen.pipe
    )
    with pytest.raises(ValueError, match="set_references"):
        g.generate([0], 1, torch.Generator())


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="strength"):
        DiffusersConfig(pipeline="x", strength=1.5)
    with pytest.raises(ValueError, match="class_prompts\\[2\\]"):
        DiffusersConfig(pipeline="x", class_prompts={2: []})
    with pytest.raises(ValueError, match=r"height must be a multiple of 8 \(the VAE's scale\), got 0"):
        DiffusersConfig(pipeline="x", height=0)
    with pytest.raises(ValueError, match=r"output_size must be \[height, width\], two integers >= 1, got \(32,\)"):
        DiffusersConfig(pipeline="x", output_size=(32,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"from_pretrained: steps: Input should be a valid integer"):
        DiffusersGenerator.from_pretrained(str(tmp_path), steps="many")
    with pytest.raises(ValueError, match="float16 needs CUDA"):
        DiffusersGenerator.from_pretrained(str(tmp_path), dtype="float16", device="cpu")
    with pytest.raises(ValueError, match="cannot load diffusers pipeline"):
        DiffusersGenerator.from_pretrained(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(ValueError, match="unknown key"):
        DiffusersGenerator.from_pretrained(str(tmp_path), stepz=3)
    from augmentgen.generators.diffusers_backend import write_diffusers_folder

    write_diffusers_folder(tmp_path / "named", {"pipeline": "pipeline"})  # says pipeline/, but has none
    with pytest.raises(ValueError, match="pipeline/, which is missing"):
        DiffusersGenerator.from_pretrained(tmp_path / "named")
    (tmp_path / "named" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        DiffusersGenerator.from_pretrained(tmp_path / "named")

    with pytest.raises(ValueError, match="gens.model: an img2img diffusers generator needs reference images"):
        write_diffusers_folder(tmp_path / "g", {"pipeline": "x", "mode": "img2img"}, where="gens.model")


def test_class_names_template(gen: DiffusersGenerator) -> None:
    g = DiffusersGenerator(DiffusersConfig(pipeline="x", class_names=["coat", "bag"], steps=1), pipe=gen.pipe)
    out = g.generate([1], 1, torch.Generator().manual_seed(0))
    assert out.meta["prompt"] == ["a photo of a bag"] and out.label is not None and out.label.tolist() == [1]


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_recipe_renders_filters_and_records_provenance(pipe_dir: Path, tmp_path: Path) -> None:
    """The user path: a recipe names the pipeline; shards carry prompts, seeds and scores; drops per class in the manifest."""
    import tarfile

    from tiny_hf import save_tiny_clip

    from augmentgen.recipes import Recipe
    from augmentgen.recipes.run import run_recipe

    clip_dir = save_tiny_clip(tmp_path / "clip")
    model = {
        "pipeline": str(pipe_dir), "class_names": DIGITS, "prompt_template": "a handwritten digit {name}",
        "steps": 2, "guidance_scale": 2.0, "height": 16, "width": 16, "output_size": [8, 8], "channels": 1,
        "device": "cpu",
    }  # fmt: skip
    recipe = Recipe.model_validate(
        {
            "name": "dtiny",
            "data": {"source": "digits", "n_per_class": 10},
            "classifier": {"steps": 30, "batch_size": 32, "width": 8},
            "generators": [{"name": "sd", "kind": "diffusers", "model": model}],
            "filters": {
                "blank_std": None,
                "min_confidence": 0.12,
                "clip": {"model": str(clip_dir), "min_score": 0.0},
            },
            "shards": {"name": "d", "count": 1, "size": 20, "batch_size": 10},
            "checks": {"enabled": False},
            "evaluate": {"enabled": False},
        }
    )
    out = tmp_path / "run"
    run_recipe(recipe, out, stages=("train", "generate", "verify"))
    cfg = json.loads((out / "generators" / "sd" / "model" / "config.json").read_text())
    assert cfg["kind"] == "diffusers" and cfg["config"]["pipeline"] == str(pipe_dir)  # named, not copied
    manifest = json.loads((out / "shards" / "sd" / "manifest.json").read_text())
    (entry,) = manifest["shards"].values()
    rejected = entry["rejected"]
    dropped = rejected.get("low_confidence", 0)
    assert dropped > 0 and entry["samples"] + dropped == 20  # the classifier rejects some tiny-SD renders
    per_class = {k: v for k, v in rejected.items() if k.startswith("low_confidence:")}
    assert sum(per_class.values()) == dropped
    kept = {int(k): v for k, v in entry["classes"].items()}
    for c in range(10):  # labels cycle: two of each class were rendered, kept + dropped == 2
        assert kept.get(c, 0) + per_class.get(f"low_confidence:{c}", 0) == 2
    with tarfile.open(out / "shards" / "sd" / "d-sd-000000.tar") as tar:
        metas = [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]  # type: ignore[arg-type]
    assert len(metas) == entry["samples"]
    for m in metas:
        assert m["prompt"] == f"a handwritten digit {DIGITS[m['label']]}"
        assert isinstance(m["sample_seed"], int) and m["steps"] == 2 and m["guidance_scale"] == 2.0
        assert m["confidence"] >= 0.12 and 0.0 <= m["clip_score"] <= 100.0


def test_recipe_errors_name_the_diffusers_field() -> None:
    from augmentgen.recipes.load import recipe_from_text

    base = "shards: {count: 1}\nevaluate: {enabled: false}\ngenerators:\n"
    with pytest.raises(ValueError, match="model.pipeline"):
        recipe_from_text(base + "  - {name: sd, kind: diffusers}\n", "r.yaml")
    with pytest.raises(ValueError, match="unknown key"):
        recipe_from_text(base + "  - {name: sd, kind: diffusers, model: {pipeline: x, stepz: 2}}\n", "r.yaml")
    with pytest.raises(ValueError, match="strength"):
        recipe_from_text(
            base + "  - {name: sd, kind: diffusers, model: {pipeline: x, strength: 2}}\n", "r.yaml"
        )
    with pytest.raises(ValueError, match="filters.clip.min_score"):
        recipe_from_text("shards: {count: 1}\nfilters: {clip: {model: x, min_score: 300}}\n", "r.yaml")


def test_recipe_img2img_edits_real_images_of_the_label(pipe_dir: Path, tmp_path: Path) -> None:
    """DA-Fusion path: the run stores the real subset as references; each shard sample edits one of its class."""
    import tarfile

    from augmentgen.generators.checkpoint import load_generator
    from augmentgen.recipes import Recipe
    from augmentgen.recipes.run import run_recipe

    model = {
        "pipeline": str(pipe_dir), "mode": "img2img", "class_names": DIGITS, "steps": 4, "strength": 0.5,
        "guidance_scale": 1.0, "channels": 1, "device": "cpu",
    }  # fmt: skip
    recipe = Recipe.model_validate(
        {
            "name": "dfusion",
            "data": {"source": "digits", "n_per_class": 3},
            "classifier": {"steps": 5, "batch_size": 16, "width": 4},
            "generators": [{"name": "sd", "kind": "diffusers", "model": model}],
            "shards": {"name": "e", "count": 1, "size": 10, "batch_size": 10},
            "checks": {"enabled": False},
            "evaluate": {"enabled": False},
        }
    )
    out = tmp_path / "run"
    run_recipe(recipe, out, stages=("train", "generate", "verify"))
    gen = load_generator(out / "generators" / "sd" / "model", device="cpu")
    assert gen.references is not None and gen.references.image.shape == (30, 1, 8, 8)
    with tarfile.open(out / "shards" / "sd" / "e-sd-000000.tar") as tar:
        metas = [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]  # type: ignore[arg-type]
    assert sorted(m["label"] for m in metas) == list(range(10))
    for m in metas:
        assert int(gen.references.label[m["reference_index"]]) == m["label"]  # type: ignore[index]
        assert m["strength"] == 0.5 and isinstance(m["sample_seed"], int)


def test_cuda_memory_options_are_ignored_on_cpu_with_a_log(
    pipe_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="augmentgen.generators.diffusers_pipeline"):
        g = DiffusersGenerator.from_pretrained(
            str(pipe_dir), class_prompts=PROMPTS, steps=2, height=16, width=16, device="cpu",
            attention_slicing=True, vae_slicing=True, vae_tiling=True, cpu_offload=True,
        )  # fmt: skip
    assert "apply on CUDA only" in caplog.text and "cpu_offload" in caplog.text
    plain = DiffusersGenerator.from_pretrained(
        str(pipe_dir), class_prompts=PROMPTS, steps=2, height=16, width=16, device="cpu"
    )
    torch.testing.assert_close(g.render(["a bag"], [1]), plain.render(["a bag"], [1]))


FM_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "fashion-mnist-diffusers.yaml"


def test_fashion_mnist_diffusers_recipe_validates() -> None:
    from augmentgen.generators.diffusers_pipeline import DiffusersConfig
    from augmentgen.recipes import load_recipe

    recipe = load_recipe(FM_RECIPE)  # names hub ids; nothing is loaded yet
    cfg = DiffusersConfig(**recipe.generators[0].model)
    assert cfg.pipeline == "stabilityai/sd-turbo" and sorted(cfg.class_prompts) == list(range(10))
    assert recipe.filters.clip is not None and recipe.filters.min_confidence == 0.5


@pytest.mark.slow  # loads Fashion-MNIST and trains a few classifier steps: ~25 s wall on the loaded dev machine
def test_fashion_mnist_diffusers_recipe_runs_with_tiny_models(pipe_dir: Path, tmp_path: Path) -> None:
    """The shipped recipe, with the hub models swapped for tiny local ones and the sizes cut down."""
    from tiny_hf import save_tiny_clip

    from augmentgen.recipes import load_recipe
    from augmentgen.recipes.run import run_recipe

    path = FM_RECIPE
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST is not installed (Debian dataset-fashion-mnist)")
    small = load_recipe(
        path,
        [
            f"generators.0.model.pipeline={pipe_dir}", "generators.0.model.height=16", "generators.0.model.width=16",
            "generators.0.model.device=cpu", f"filters.clip.model={save_tiny_clip(tmp_path / 'clip')}",
            "filters.clip.min_score=0", "filters.min_confidence=0.05", "data.n_per_class=5", "classifier.steps=5",
            "shards.count=1", "shards.size=10", "shards.batch_size=10", "checks.enabled=false", "evaluate.enabled=false",
        ],
    )  # fmt: skip
    out = tmp_path / "run"
    run_recipe(small, out, stages=("train", "generate", "verify"))
    manifest = json.loads((out / "shards" / "sd" / "manifest.json").read_text())
    (entry,) = manifest["shards"].values()
    assert entry["samples"] + entry["rejected"].get("low_confidence", 0) == 10
