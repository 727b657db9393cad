from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from augmentgen.core.batch import Batch, Boxes, Sample
from augmentgen.core.rng import sample_rng, torch_rng
from augmentgen.pipeline import OneOf, Pipeline, RandomApply, SomeOf
from augmentgen.pipeline.plan import Trace

SPEC = [
    {"name": "rotate", "degrees": [-20, 20]},
    {"name": "horizontal_flip", "p": 0.5},
    {"name": "brightness", "p": 0.8},
    {"name": "gaussian_noise", "p": 0.5},
]


def make() -> Pipeline:
    return Pipeline.from_dict(SPEC, seed=3)


@pytest.mark.parametrize("kind", ["pil", "pil_gray", "hwc", "hw", "chw", "bchw", "dict_np", "dict_t", "sample", "batch"])
def test_every_input_kind_comes_back_as_itself(kind: str, photo32: np.ndarray) -> None:
    pipe = make()
    x: object
    if kind == "pil":
        x = Image.fromarray(photo32)
    elif kind == "pil_gray":
        x = Image.fromarray(photo32[:, :, 0])
    elif kind == "hwc":
        x = photo32
    elif kind == "hw":
        x = photo32[:, :, 0]
    elif kind == "chw":
        x = torch.from_numpy(photo32).permute(2, 0, 1).float() / 255
    elif kind == "bchw":
        x = torch.from_numpy(photo32).permute(2, 0, 1).float().unsqueeze(0).repeat(3, 1, 1, 1) / 255
    elif kind == "dict_np":
        x = {"image": photo32, "label": 4, "boxes": np.array([[2.0, 3.0, 12.0, 10.0]]), "box_labels": [1], "mask": np.zeros((32, 32), np.uint8)}
    elif kind == "dict_t":
        x = {"image": torch.from_numpy(photo32).permute(2, 0, 1).float() / 255, "label": 4, "boxes": torch.tensor([[2.0, 3.0, 12.0, 10.0]])}
    elif kind == "sample":
        x = Sample(photo32, label=1)
    else:
        x = Batch(torch.rand(2, 3, 32, 32), label=torch.tensor([0, 1]))
    out = pipe(x, index=0)
    assert type(out) is type(x)
    if isinstance(x, Image.Image):
        assert isinstance(out, Image.Image) and out.size == x.size and out.mode == x.mode
    elif isinstance(x, (np.ndarray, torch.Tensor)):
        assert out.shape == x.shape and out.dtype == x.dtype
    elif isinstance(x, dict):
        assert set(out) >= set(x) and out["image"].shape == x["image"].shape
        assert out["label"] == 4
        if "mask" in x:
            assert out["mask"].shape == x["mask"].shape
        assert len(out["boxes"]) <= 1
    elif isinstance(x, Sample):
        assert out.image.shape == x.image.shape and out.label == 1
    else:
        assert out.image.shape == x.image.shape and torch.equal(out.label, x.label)


def test_same_index_same_output_and_different_index_differs(photo32: np.ndarray) -> None:
    pipe = make()
    a = pipe(photo32, index=7, epoch=1)
    b = make()(photo32, index=7, epoch=1)
    c = pipe(photo32, index=8, epoch=1)
    d = pipe(photo32, index=7, epoch=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


def test_calls_without_index_draw_fresh_streams(photo32: np.ndarray) -> None:
    pipe = make()
    outs = [pipe(photo32) for _ in range(4)]
    assert len({o.tobytes() for o in outs}) == 4


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_replay_reproduces_exactly(backend: str, photo32: np.ndarray) -> None:
    pipe = make()
    if backend == "numpy":
        out, trace = pipe(photo32, rng=sample_rng(0, 0, 1), return_trace=True)
        assert np.array_equal(pipe.replay(photo32, trace), out)
    else:
        x = Batch(torch.from_numpy(photo32).permute(2, 0, 1).float().unsqueeze(0).repeat(4, 1, 1, 1) / 255)
        out, trace = pipe(x, rng=torch_rng(0, 1), return_trace=True)
        assert torch.equal(pipe.replay(x, trace).image, out.image)
    rows = trace.per_sample()
    assert len(rows) == (1 if backend == "numpy" else 4)
    assert any(k.endswith(":rotate") for k in rows[0])


def test_p_zero_everywhere_is_exact_identity(photo32: np.ndarray, batch_images: torch.Tensor) -> None:
    pipe = Pipeline.from_dict([dict(s, p=0.0) for s in SPEC], seed=0)
    assert np.array_equal(pipe(photo32, index=0), photo32)
    assert torch.equal(pipe(Batch(batch_images), rng=torch_rng(0)).image, batch_images)


def test_rng_kind_must_match_input(photo32: np.ndarray) -> None:
    with pytest.raises(TypeError, match="torch.Generator"):
        make()(photo32, rng=torch_rng(0))


def _asym_batch(n: int = 32) -> torch.Tensor:
    x = torch.zeros(n, 1, 8, 8)
    x[:, :, 0, :3] = 1.0  # a bar in the top-left: flips move it to distinct places
    return x


def test_one_of_applies_exactly_one_choice_per_sample() -> None:
    from augmentgen.core.registry import OPS

    pipe = Pipeline([OneOf([OPS.get("horizontal_flip")(p=1.0), OPS.get("vertical_flip")(p=1.0)])], seed=0)
    x = _asym_batch()
    out = pipe(Batch(x), rng=torch_rng(0)).image
    h, v = torch.flip(x, dims=[-1]), torch.flip(x, dims=[-2])
    is_h = (out - h).abs().amax(dim=(1, 2, 3)) < 1e-5
    is_v = (out - v).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((is_h ^ is_v).all())
    assert 0 < int(is_h.sum()) < x.shape[0]


def test_some_of_and_random_apply_gate_children() -> None:
    from augmentgen.core.registry import OPS

    hf, vf = OPS.get("horizontal_flip"), OPS.get("vertical_flip")
    x = _asym_batch(64)
    both = torch.flip(x, dims=[-1, -2])
    out = Pipeline([SomeOf([hf(p=1.0), vf(p=1.0)], n=2)])(Batch(x), rng=torch_rng(1)).image
    assert torch.allclose(out, both, atol=1e-5)
    out0 = Pipeline([RandomApply([hf(p=1.0), vf(p=1.0)], p=0.0)])(Batch(x), rng=torch_rng(1)).image
    assert torch.equal(out0, x)
    out_half = Pipeline([RandomApply([hf(p=1.0), vf(p=1.0)], p=0.5)])(Batch(x), rng=torch_rng(2)).image
    done = (out_half - both).abs().amax(dim=(1, 2, 3)) < 1e-5
    same = (out_half - x).abs().amax(dim=(1, 2, 3)) == 0
    assert bool((done | same).all()) and 10 < int(done.sum()) < 54


def test_one_of_with_different_output_sizes_is_an_error() -> None:
    pipe = Pipeline.from_dict([{"name": "one_of", "transforms": [
        {"name": "resize", "size": [16, 16]}, {"name": "resize", "size": [8, 8]}]}])
    with pytest.raises(ValueError, match="different output sizes"):
        pipe(np.zeros((32, 32, 3), np.uint8), index=0)


def test_one_of_with_different_output_sizes_is_an_error_whichever_is_drawn() -> None:
    pipe = Pipeline.from_dict([{"name": "one_of", "transforms": [
        {"name": "horizontal_flip"}, {"name": "resize", "size": [8, 8]}, {"name": "vertical_flip"}]}])
    for i in range(12):  # a flip drawn or not, the resize's size is still checked against it
        with pytest.raises(ValueError, match="different output sizes"):
            pipe(np.zeros((32, 32, 3), np.uint8), index=i)


def test_per_sample_composites_draw_only_for_the_leaves_they_apply(photo32: np.ndarray) -> None:
    """One image, a numpy Generator: a one_of's unchosen leaves (and gated-off ones) draw nothing."""
    from augmentgen.pipeline.policies import TrivialAugment

    ta = TrivialAugment()
    pipe = Pipeline([ta, RandomApply([Pipeline.from_dict(SPEC[:1]).transforms[0]], p=0.5)], seed=0)
    chosen, gated = set(), 0
    for i in range(300):
        out, trace = pipe(photo32, index=i, return_trace=True)
        ta_steps = [s for s in trace.steps if s.path.startswith("0.")]
        assert len(ta_steps) <= 1 and all(bool(np.asarray(s.params.applied).all()) for s in trace.steps)
        chosen.update(s.path for s in ta_steps)
        gated += not any(s.path.startswith("1.") for s in trace.steps)
        assert np.array_equal(pipe.replay(photo32, trace), out)
        if ta_steps and len(trace.steps) == 1:  # the drawn leaf alone, with its drawn params, is the output
            assert np.array_equal(Pipeline([]).replay(photo32, Trace((ta_steps[0],))), out)
    assert chosen == {f"0.{k}" for k in range(len(ta.transforms))}  # every choice is reached
    assert 100 < gated < 200  # random_apply(p=0.5) gates the op off about half the time


def test_one_of_in_a_batched_per_sample_fetch_is_the_same_alone_and_in_a_batch(photo32: np.ndarray) -> None:
    """The StreamRNG path keeps drawing for every choice, so a row's draws do not depend on the others."""
    from augmentgen.pipeline.many import map_samples
    from augmentgen.pipeline.policies import TrivialAugment

    pipe = Pipeline([TrivialAugment()])
    xs = [np.roll(photo32, k, axis=1) for k in range(16)]
    idx = list(range(40, 56))
    many = map_samples(pipe, xs, seed=2, epoch=1, indices=idx)
    for k, i in enumerate(idx):
        assert np.array_equal(many[k], map_samples(pipe, [xs[k]], seed=2, epoch=1, indices=[i])[0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fused_equals_unfused_within_interpolation_tolerance(backend: str, photo32: np.ndarray) -> None:
    spec = [{"name": "rotate", "degrees": [10, 10]}, {"name": "scale", "scale": [1.2, 1.2]},
            {"name": "brightness", "brightness": [1.1, 1.1]}, {"name": "saturation", "saturation": [0.8, 0.8]}]
    fused, unfused = Pipeline.from_dict(spec), Pipeline.from_dict(dict(fuse=False, transforms=spec))
    if backend == "numpy":
        a = fused(photo32, index=0).astype(np.float32)
        b = unfused(photo32, index=0).astype(np.float32)
        inner = np.abs(a - b)[8:-8, 8:-8]
    else:
        x = Batch(torch.from_numpy(photo32).permute(2, 0, 1).float().unsqueeze(0) / 255)
        a = fused(x, rng=torch_rng(0)).image[0] * 255
        b = unfused(x, rng=torch_rng(0)).image[0] * 255
        inner = (a - b).abs().permute(1, 2, 0).numpy()[8:-8, 8:-8]
    assert inner.mean() < 4.0  # one warp vs two: one extra bilinear resampling
    assert np.percentile(inner, 99) < 30


def test_dict_yaml_round_trip_gives_identical_output(photo32: np.ndarray) -> None:
    pipe = Pipeline.from_dict({"seed": 5, "transforms": [*SPEC, {"name": "one_of", "p": 0.7, "transforms": [
        {"name": "vertical_flip"}, {"name": "random_apply", "p": 0.5, "transforms": [{"name": "grayscale"}]}]}]})
    again = Pipeline.from_yaml(pipe.to_yaml())
    assert again.to_dict() == pipe.to_dict()
    assert np.array_equal(again(photo32, index=3), pipe(photo32, index=3))
    clone = pickle.loads(pickle.dumps(pipe))
    assert np.array_equal(clone(photo32, index=3), pipe(photo32, index=3))


def test_unknown_keys_name_their_path() -> None:
    with pytest.raises(ValueError, match=r"pipeline\.transforms\[1\]\(rotate\).*degres"):
        Pipeline.from_dict([{"name": "horizontal_flip"}, {"name": "rotate", "degres": 3}])
    with pytest.raises(ValueError, match=r"transforms\[0\]\(one_of\)\.transforms\[0\]"):
        Pipeline.from_dict([{"name": "one_of", "transforms": [{"name": "no_such_op"}]}])
    with pytest.raises(ValueError, match="unknown key"):
        Pipeline.from_dict({"transforms": [], "sed": 1})


def test_boxes_follow_a_flip_through_the_pipeline() -> None:
    from augmentgen.core.registry import OPS

    pipe = Pipeline([OPS.get("horizontal_flip")(p=1.0), OPS.get("brightness")(p=1.0)])
    boxes = Boxes.from_list([torch.tensor([[2.0, 3.0, 10.0, 7.0]])], [torch.tensor([5])])
    out = pipe(Batch(torch.rand(1, 3, 16, 20), boxes=boxes), rng=torch_rng(0))
    assert torch.allclose(out.boxes.xyxy[0, 0], torch.tensor([10.0, 3.0, 18.0, 7.0]), atol=1e-4)
    assert int(out.boxes.labels[0, 0]) == 5 and bool(out.boxes.valid[0, 0])


def test_an_op_that_refuses_the_input_is_named_with_its_stage() -> None:
    """An RGBA image reaches color ops that need 1 or 3 channels: the error says which stage, on both backends."""
    pipe = Pipeline.from_dict(
        [
            {"name": "affine", "degrees": [-10, 10]},
            {"name": "color_jitter", "brightness": 0.2},
            {"name": "grayscale"},
            {"name": "horizontal_flip"},
        ]
    )
    with pytest.raises(ValueError, match=r"^stages 1, 2 \(color_jitter, grayscale\): .*1 or 3 channels"):
        pipe(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"^stages 1, 2 \(color_jitter, grayscale\): .*1 or 3 channels"):
        pipe(torch.rand(2, 4, 8, 8))
    nested = Pipeline.from_dict([{"name": "one_of", "transforms": [{"name": "brightness", "brightness": 0.2}]}])
    with pytest.raises(ValueError, match=r"^stage 0\.0 \(brightness\): .*1 or 3 channels"):
        nested(np.zeros((8, 8, 4), np.uint8))
    assert pipe(np.zeros((8, 8, 3), np.uint8)).shape == (8, 8, 3)  # what the ops take passes


def test_an_unseeded_pipeline_draws_anew_per_call_and_per_forked_process() -> None:
    """seed=None: OS entropy taken once per process, so calls differ and forked workers do not repeat each other."""
    import multiprocessing as mp

    pipe = Pipeline.from_dict([{"name": "affine", "degrees": [-30, 30], "translate": [0.2, 0.2]}])
    img = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    pipe(img)  # the parent has drawn its generator before the fork, as a DataLoader's main process may
    first, second = pipe(img), pipe(img)
    assert not np.array_equal(first, second)
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        outs = pool.map(_one_draw, [pipe, pipe])
    assert not np.array_equal(outs[0], outs[1]) and not any(np.array_equal(o, first) for o in outs)


def _one_draw(pipe: Pipeline) -> np.ndarray:
    import os
    import time

    time.sleep(0.05 * (os.getpid() % 2))  # both workers alive at once: two processes, not one reused
    return pipe(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_a_run_of_ops_that_draws_nothing_is_skipped_and_changes_nothing(dtype: str) -> None:
    """Per sample, an idle geometric run (bare image) or colour run is skipped: the same as warping with identity."""
    from augmentgen.core.rng import sample_rng
    from augmentgen.pipeline.plan import apply_trace_sample

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    img = img if dtype == "uint8" else img.astype(np.float32) / 255
    pipe = Pipeline.from_dict([
        {"name": "rotate", "degrees": 20, "p": 0.0}, {"name": "scale", "scale": [0.8, 1.2], "p": 0.0},
        {"name": "brightness", "brightness": 0.3, "p": 0.0}, {"name": "contrast", "contrast": 0.3, "p": 0.0},
    ])
    out, trace = pipe(img, rng=sample_rng(0, 0, 0), return_trace=True)
    assert np.array_equal(out, img)
    from augmentgen.core.batch import Sample

    warped = img
    for step in trace.steps:  # each op applied on its own, unskipped: the identity warp and colour pass
        warped = step.leaf.apply_sample(Sample(warped), step.params).image
    assert np.array_equal(warped, img) and warped.dtype == img.dtype
    # with boxes too: an identity warp leaves the sample as it is, so skipping it changes nothing
    s = Sample(img, boxes=np.array([[-3.0, 2.0, 10.0, 30.0]], np.float32), box_labels=np.array([1]))
    kept = apply_trace_sample(s, trace)
    assert kept.boxes[0].tolist() == [-3.0, 2.0, 10.0, 30.0] and np.array_equal(kept.image, img)
    unskipped = s
    for step in trace.steps:
        unskipped = step.leaf.apply_sample(unskipped, step.params)
    assert np.array_equal(unskipped.boxes, kept.boxes)
