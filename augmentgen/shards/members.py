"""The members of one sample, as tar bytes: image, cls, provenance json, boxes.json, mask (runs in the encode pool)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from augmentgen.core.batch import Batch
from augmentgen.shards.encoders import EncodeSpec, encode_image
from augmentgen.shards.sources import jsonable
from augmentgen.shards.tario import BLOCK, tar_header

_ZEROS = bytes(BLOCK)


@dataclass
class Item:
    """One sample on its way to the tar: the image (array, or bytes when encoded on the GPU) and its members."""

    key: str
    image: np.ndarray | bytes
    label: int | None
    meta: dict[str, Any]
    boxes: list[list[float]] | None = None
    mask: np.ndarray | None = None


def _json_default(obj: Any) -> Any:
    v = jsonable(obj)
    if v is None:
        raise TypeError(f"provenance value of type {type(obj).__name__} has no JSON form")
    return v


# One encoder for every call: json.dumps with non-default options builds a new encoder each time.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_bytes(obj: Any) -> bytes:
    return _JSON.encode(obj).encode()


def _sample_members(it: Item, img_name: str, img: bytes) -> list[tuple[str, bytes]]:
    """Members of one sample in name order: boxes.json, cls, image.*, json, mask.png / masks.npy."""
    members: list[tuple[str, bytes]] = []
    if it.boxes is not None:
        members.append(("boxes.json", _json_bytes(it.boxes)))
    if it.label is not None:
        members.append(("cls", b"%d" % it.label))
    members.append((img_name, img))
    members.append(("json", _json_bytes(it.meta)))
    if it.mask is not None:
        if it.mask.shape[0] == 1:
            members.append(("mask.png", encode_image(it.mask.transpose(1, 2, 0), EncodeSpec("png"))))
        else:
            members.append(("masks.npy", encode_image(it.mask.transpose(1, 2, 0), EncodeSpec("npy"))))
    return members


def encode_chunk(items: list[Item], spec: EncodeSpec) -> bytes:
    """Tar bytes of ``items``, members of each sample sorted by name (runs in a pool thread)."""
    parts: list[bytes] = []
    img_name = "image." + spec.extension
    for it in items:
        img = it.image if isinstance(it.image, bytes) else encode_image(it.image, spec)
        prefix = it.key + "."
        for name, data in _sample_members(it, img_name, img):
            parts.append(tar_header(prefix + name, len(data)))
            parts.append(data)
            pad = -len(data) % BLOCK
            if pad:
                parts.append(_ZEROS[:pad])
    return b"".join(parts)


def chunk_size(h: int, w: int) -> int:
    # About 64k pixels per pool task: small images share a task so the per-task overhead stays small.
    return max(1, min(64, 65536 // max(1, h * w)))


def boxes_rows(batch: Batch) -> list[list[list[float]]] | None:
    if batch.boxes is None:
        return None
    xyxy, valid, labels = (
        t.detach().cpu() for t in (batch.boxes.xyxy, batch.boxes.valid, batch.boxes.labels)
    )
    return [
        [
            [*map(float, xyxy[r, k].tolist()), int(labels[r, k])]
            for k in range(xyxy.shape[1])
            if bool(valid[r, k])
        ]
        for r in range(xyxy.shape[0])
    ]
