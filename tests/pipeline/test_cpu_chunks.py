"""A CPU batch applied a few rows at a time gives the whole batch's result: every per-row op, boxes and masks too."""

from __future__ import annotations

import pytest
import torch

import augmentgen.ops  # noqa: F401
import augmentgen.pipeline.plan as plan
from augmentgen.core.batch import Batch, Boxes
from augmentgen.core.registry import OPS
from augmentgen.pipeline import Pipeline

ROW_OPS = [n for n in OPS.names() if getattr(OPS.get(n), "kind", "") in ("geometric", "color", "pixel")]
SIZED = ("resize", "random_resized_crop", "center_crop", "random_crop")


def _batch(dtype: torch.dtype) -> Batch:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(10, 3, 20, 24, generator=g)
    img = (img * 255).round().to(torch.uint8) if dtype == torch.uint8 else img
    xy = torch.rand(10, 3, 2, generator=g) * 12
    boxes = Boxes(torch.cat([xy, xy + 6], -1), torch.ones(10, 3, dtype=torch.bool), torch.arange(30).reshape(10, 3))
    masks = torch.zeros(10, 1, 20, 24, dtype=torch.uint8)
    masks[:, :, 4:12, 5:15] = 1
    return Batch(img, label=torch.arange(10), boxes=boxes, masks=masks, meta={"key": [f"k{i}" for i in range(10)]})


def _run(pipe: Pipeline, b: Batch, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch) -> Batch:
    monkeypatch.setattr(plan, "CPU_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(plan, "CPU_WHOLE_BYTES", 0)  # these test batches are small: split them anyway
    out = pipe(b, rng=torch.Generator().manual_seed(7))
    assert isinstance(out, Batch)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("name", ROW_OPS)
def test_every_row_op_gives_the_same_batch_in_chunks(name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"size": (16, 18)} if name in SIZED else {}
    pipe = Pipeline([OPS.get(name)(**kw)])
    b = _batch(dtype)
    row = b.image[0].numel() * b.image.element_size()
    whole = _run(pipe, b, 1 << 40, monkeypatch)
    chunked = _run(pipe, b, 3 * row, monkeypatch)  # chunks of 3, 3, 3, 1 rows
    assert plan._chunk_rows(b, pipe.sample_trace(b, torch.Generator().manual_seed(7))) == 3
    tol = 1 if dtype == torch.uint8 else 1e-6  # a batch-size-dependent kernel may round one ulp apart
    assert (chunked.image.double() - whole.image.double()).abs().max() <= tol, name
    assert torch.equal(chunked.label, whole.label) and chunked.meta == whole.meta
    assert torch.allclose(chunked.boxes.xyxy, whole.boxes.xyxy, atol=1e-4)
    assert torch.equal(chunked.boxes.valid, whole.boxes.valid) and torch.equal(chunked.masks, whole.masks)


def test_a_fused_pipeline_and_a_policy_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipeline.from_dict([
        {"name": "rotate", "degrees": 15}, {"name": "scale", "scale": [0.9, 1.1]},
        {"name": "color_jitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
        {"name": "gaussian_noise", "sigma": 0.03}, {"name": "trivial_augment"},
    ])
    b = _batch(torch.float32)
    whole, chunked = _run(pipe, b, 1 << 40, monkeypatch), _run(pipe, b, 1, monkeypatch)  # one row a chunk
    assert (chunked.image - whole.image).abs().max() <= 1e-6
    assert torch.allclose(chunked.boxes.xyxy, whole.boxes.xyxy, atol=1e-4)


def test_a_batch_that_fits_the_cache_stays_whole() -> None:
    b = _batch(torch.float32)
    trace = Pipeline.from_dict([{"name": "solarize"}]).sample_trace(b, torch.Generator().manual_seed(0))
    assert plan._chunk_rows(b, trace) == 0  # 10 rows of 20x24: far below CPU_WHOLE_BYTES
    big = Batch(torch.zeros(64, 3, 224, 224))  # 38 MB
    assert plan._chunk_rows(big, Pipeline.from_dict([{"name": "solarize"}]).sample_trace(big, torch.Generator())) == 3


def test_mix_ops_and_opaque_stages_are_applied_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    b = _batch(torch.float32)
    for spec in ([{"name": "mosaic"}], [{"name": "rotate", "degrees": 10}, {"name": "mixup"}]):
        pipe = Pipeline.from_dict(spec)
        trace = pipe.sample_trace(b, torch.Generator().manual_seed(0))
        monkeypatch.setattr(plan, "CPU_CHUNK_BYTES", 1)
        monkeypatch.setattr(plan, "CPU_WHOLE_BYTES", 0)
        assert plan._chunk_rows(b, trace) == 0
        out = pipe.apply_trace(b, trace)
        assert out.boxes.xyxy.shape[1] in (12, 6)  # the mix ops' slot counts: rows were mixed, not chunked
