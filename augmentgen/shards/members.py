"""The members of a batch's samples, as tar bytes: image, cls, provenance json, boxes.json, mask.

Built column by column (every image, then every cls, ...) and interleaved with slice
assignments, with all tar headers of a chunk made in one array operation: at 32 px a PNG
costs about 100 us to encode, so the work around it has to stay a few microseconds per sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from augmentgen.core.batch import Batch
from augmentgen.shards.encoders import EncodeSpec, encode_image
from augmentgen.shards.sources import jsonable
from augmentgen.shards.tario import BLOCK, tar_headers

# _PADS[n % 512]: the zeros that pad a member of n bytes to a whole block
_PADS = [bytes(-r % BLOCK) for r in range(BLOCK)]


@dataclass
class Rows:
    """The samples of one batch on their way to the tar, column by column.

    Args:
        keys: sample keys (``b"000003-000017"``).
        images: ``[H, W, C]`` uint8 arrays, or bytes already encoded (on the GPU).
        labels: class ids, or None when the batch has none.
        metas: provenance dicts (the ``json`` member).
        boxes: per sample ``[[x0, y0, x1, y1, label], ...]``, or None.
        masks: ``[N, K, H, W]`` uint8 (K = 1: ``mask.png``, else ``masks.npy``), or None.
    """

    keys: list[bytes]
    images: list[np.ndarray | bytes]
    labels: list[int] | None
    metas: list[dict[str, Any]]
    boxes: list[list[list[float]]] | None = None
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, a: int, b: int) -> Rows:
        return Rows(
            self.keys[a:b],
            self.images[a:b],
            None if self.labels is None else self.labels[a:b],
            self.metas[a:b],
            None if self.boxes is None else self.boxes[a:b],
            None if self.masks is None else self.masks[a:b],
        )


def _json_default(obj: Any) -> Any:
    v = jsonable(obj)
    if v is None:
        raise TypeError(f"provenance value of type {type(obj).__name__} has no JSON form")
    return v


# The stdlib encoder, for what orjson refuses (integers beyond 64 bits); built once, as json.dumps
# with non-default options builds a new encoder each call.
_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)
_ORJSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def json_bytes(obj: Any) -> bytes:
    """Compact JSON with sorted keys (orjson: about 8x faster than the stdlib for a provenance row).

    Non-finite floats are written as ``null``; a value with no JSON form is a TypeError naming its type.

    Example:
        >>> json_bytes({"b": 1, "a": [0.5, "x"]})
        b'{"a":[0.5,"x"],"b":1}'
    """
    try:
        return orjson.dumps(obj, default=_json_default, option=_ORJSON_OPTS)
    except TypeError:  # orjson.JSONEncodeError: a 65-bit int, or a type neither knows (raised again below)
        return _JSON.encode(obj).encode()


def _mask_column(masks: np.ndarray) -> tuple[bytes, list[bytes]]:
    if masks.shape[1] == 1:
        spec, name = EncodeSpec("png"), b".mask.png"
    else:
        spec, name = EncodeSpec("npy"), b".masks.npy"
    return name, [encode_image(m.transpose(1, 2, 0), spec) for m in masks]


def encode_rows(rows: Rows, spec: EncodeSpec) -> bytes:
    """Tar bytes of ``rows``, the members of each sample in name order (runs in a pool thread or inline).

    Members: ``boxes.json``, ``cls``, ``image.{ext}``, ``json``, ``mask.png`` / ``masks.npy``,
    the optional ones present for every sample of a batch or for none.

    Example:
        >>> from augmentgen.shards.tario import iter_tar
        >>> import io
        >>> rows = Rows([b"k0"], [np.zeros((2, 2, 3), np.uint8)], [3], [{"seed": 1}])
        >>> [n for n, _ in iter_tar(io.BytesIO(encode_rows(rows, EncodeSpec("png")) + bytes(1024)))]
        ['k0.cls', 'k0.image.png', 'k0.json']
    """
    n = len(rows)
    if n == 0:
        return b""
    columns: list[tuple[bytes, list[bytes]]] = []  # (name suffix, one member per sample), in name order
    if rows.boxes is not None:
        columns.append((b".boxes.json", [json_bytes(b) for b in rows.boxes]))
    if rows.labels is not None:
        columns.append((b".cls", [b"%d" % label for label in rows.labels]))
    images = [im if isinstance(im, bytes) else encode_image(im, spec) for im in rows.images]
    columns.append((b".image." + spec.extension.encode(), images))
    columns.append((b".json", [json_bytes(m) for m in rows.metas]))
    if rows.masks is not None:
        columns.append(_mask_column(rows.masks))
    k = len(columns)
    names: list[bytes] = [b""] * (n * k)
    datas: list[bytes] = [b""] * (n * k)
    for c, (suffix, column) in enumerate(columns):
        names[c::k] = [key + suffix for key in rows.keys]
        datas[c::k] = column
    m = n * k
    # bytes slices, not memoryviews: a memoryview is a container the garbage collector tracks, and
    # 750 of them a batch pushed enough survivors into the old generation to set off a full
    # collection (of torch's 200k objects) every 20 batches (12 us a sample at 32 px, timed in a loop of encode_rows)
    headers = tar_headers(names, [len(d) for d in datas])
    parts: list[bytes] = [b""] * (3 * m)
    parts[0::3] = [headers[o : o + BLOCK] for o in range(0, m * BLOCK, BLOCK)]
    parts[1::3] = datas
    parts[2::3] = [_PADS[len(d) % BLOCK] for d in datas]
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
