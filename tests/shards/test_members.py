"""A batch's members, built column by column: the same tar as member by member; provenance JSON rules."""

from __future__ import annotations

import gc
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.shards.encoders import EncodeSpec, encode_image
from augmentgen.shards.members import Rows, encode_rows, json_bytes
from augmentgen.shards.tario import iter_tar, tar_end, tar_member


def _dump(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _one_by_one(rows: Rows, spec: EncodeSpec) -> bytes:
    """The same members through ``tar_member`` and the stdlib json, one sample at a time."""
    out = []
    for r, key in enumerate(rows.keys):
        k = key.decode()
        if rows.boxes is not None:
            out.append(tar_member(f"{k}.boxes.json", _dump(rows.boxes[r]).encode()))
        if rows.labels is not None:
            out.append(tar_member(f"{k}.cls", str(rows.labels[r]).encode()))
        image = rows.images[r]
        data = image if isinstance(image, bytes) else encode_image(image, spec)
        out.append(tar_member(f"{k}.image.{spec.extension}", data))
        out.append(tar_member(f"{k}.json", _dump(rows.metas[r]).encode()))
        if rows.masks is not None:
            out.append(tar_member(f"{k}.mask.png", encode_image(rows.masks[r].transpose(1, 2, 0), EncodeSpec("png"))))
    return b"".join(out)


@given(
    n=st.integers(0, 9),
    labels=st.booleans(),
    boxes=st.booleans(),
    masks=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_columns_give_the_tar_of_one_member_at_a_time(
    n: int, labels: bool, boxes: bool, masks: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = Rows(
        keys=[b"%06d-%06d" % (3, i) for i in range(n)],
        images=[rng.integers(0, 256, (int(rng.integers(1, 9)), 5, 3), dtype=np.uint8) for _ in range(n)],
        labels=[int(x) for x in rng.integers(0, 10, n)] if labels else None,
        metas=[{"seed": int(rng.integers(0, 2**62)), "row": i, "source": "s\u00e9", "score": 0.25} for i in range(n)],
        boxes=[[[0.5, 1.0, 2.0, 3.5, 1]] * int(rng.integers(0, 3)) for _ in range(n)] if boxes else None,
        masks=rng.integers(0, 2, (n, 1, 4, 4), dtype=np.uint8) if masks else None,
    )
    spec = EncodeSpec("png")
    assert encode_rows(rows, spec) == _one_by_one(rows, spec)
    body = encode_rows(rows, spec)
    names = [name for name, _ in iter_tar(io.BytesIO(body + tar_end(len(body))))]
    per_sample = 2 + labels + boxes + masks
    assert len(names) == n * per_sample and names == sorted(names)


def test_pre_encoded_images_are_written_as_they_are() -> None:
    rows = Rows([b"k"], [b"\xff\xd8jpeg bytes"], [1], [{}])
    members = dict(iter_tar(io.BytesIO(encode_rows(rows, EncodeSpec("jpg")) + bytes(1024))))
    assert members == {"k.cls": b"1", "k.image.jpg": b"\xff\xd8jpeg bytes", "k.json": b"{}"}


def test_provenance_json_is_compact_sorted_and_says_what_it_cannot_write() -> None:
    assert json_bytes({"b": 1, "a": [0.5, "x"], 3: None}) == b'{"3":null,"a":[0.5,"x"],"b":1}'
    assert json_bytes({"score": float("nan"), "inf": float("inf")}) == b'{"inf":null,"score":null}'
    big = {"seed": 2**70}  # beyond orjson's 64 bits: the stdlib writes it
    assert json.loads(json_bytes(big)) == big
    assert json.loads(json_bytes({"t": torch.tensor([1, 2]), "v": np.float32(0.5)})) == {"t": [1, 2], "v": 0.5}
    with pytest.raises(TypeError, match="value of type object has no JSON form"):
        json_bytes({"x": object()})


def test_a_batch_allocates_no_collector_tracked_object_per_member() -> None:
    # Per-member containers (memoryviews, tuples) alive at once push survivors into the old
    # generation and set off full collections of every object torch created: 5-10% of the CPU at
    # 32 px. Counted with a small threshold, a batch of 3000 members starts no collection.
    n = 1000
    rows = Rows([b"%06d" % i for i in range(n)], [b"x" * 50] * n, list(range(n)), [{"i": i} for i in range(n)])
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    threshold = gc.get_threshold()
    gc.callbacks.append(count)
    gc.set_threshold(200, 10, 10)
    try:
        gc.collect()
        started.clear()
        body = encode_rows(rows, EncodeSpec("png"))
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(count)
    assert len(body) == n * 3 * 1024
    assert started == []
