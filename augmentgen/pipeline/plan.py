"""Sampling a pipeline into a flat trace of (leaf, params), and applying a trace with fusion.

A pipeline runs in two phases, as torchvision v2 splits ``make_params`` from ``transform``:

1. ``sample_trace``: walk the stage tree, draw every leaf's parameters in order, and let
   composites (``OneOf``, ``SomeOf``, ``RandomApply``) gate their children by AND-ing a
   per-sample mask into the children's ``applied``. The result is a flat ``Trace``.
2. ``apply_trace``: run the leaves in order, fusing consecutive geometric leaves into one
   matrix and one warp, and consecutive color-affine leaves into one ``[B, 3, 4]`` pass.

Replay is ``apply_trace(x, trace)``: the same trace gives the same output, exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array
from augmentgen.ops.base import Op
from augmentgen.ops.box_policy import BoxPolicy
from augmentgen.ops.functional import color as fcolor
from augmentgen.ops.functional import warp as fwarp


@runtime_checkable
class Leaf(Protocol):
    """A stage that is not a composite: an ``Op``, an adapter, or ``Synthesize``."""

    kind: str

    def sample_params(self, batch: Batch | Sample, rng: RNG) -> Params: ...

    def apply(self, batch: Batch, params: Params) -> Batch: ...

    def apply_sample(self, sample: Sample, params: Params) -> Sample: ...

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]: ...


class Step(NamedTuple):
    """One leaf call: the leaf's position in the tree (for provenance) and its params."""

    path: str
    leaf: Leaf
    params: Params


@dataclass(frozen=True)
class Trace:
    """Everything a pipeline call drew; ``Pipeline.replay(x, trace)`` reproduces the call."""

    steps: tuple[Step, ...]

    def per_sample(self) -> list[dict[str, Any]]:
        """Per-sample provenance: for each sample, the params of every leaf that acted on it."""
        if not self.steps:
            return []
        rows: list[dict[str, Any]] | None = None
        for step in self.steps:
            ps = step.params.per_sample()
            if rows is None:
                rows = [{} for _ in ps]
            for r, p in zip(rows, ps):
                if p.get("applied", True):
                    name = getattr(step.leaf, "registry_name", type(step.leaf).__name__)
                    r[f"{step.path}:{name}"] = {k: v for k, v in p.items() if k != "applied"}
        return rows or []

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"path": s.path, "params": s.params.to_dict()} for s in self.steps]}


def and_applied(params: Params, mask: Array) -> Params:
    """``params`` with ``applied`` AND ``mask`` (same backend as ``params.applied``)."""
    a = params.applied
    if isinstance(a, Tensor):
        m = torch.as_tensor(mask, device=a.device, dtype=torch.bool)
        return dataclasses.replace(params, applied=a & m)
    return dataclasses.replace(params, applied=np.asarray(a, dtype=bool) & np.asarray(mask, dtype=bool))


def _kind(leaf: Leaf) -> str:
    return getattr(leaf, "kind", "opaque")


def _border_free(leaf: Leaf) -> bool:
    return bool(getattr(leaf, "border_free", False))


def _joins(group: list[Step], s: Step) -> bool:
    """Whether geometric step ``s`` can fuse onto ``group`` without changing the result.

    A border-free op (its source region stays inside its input) can follow anything with
    the same interpolation and box policy. A border-sensitive op sees the border of its
    input, which after a crop is not the border of the original image, so it only joins
    groups of border-sensitive ops with the same spec.
    """
    a, b = _spec(group), _spec([s])
    if (a.interpolation, a.min_box_size, a.min_visibility, a.min_area) != (
        b.interpolation, b.min_box_size, b.min_visibility, b.min_area
    ):
        return False
    if _border_free(s.leaf):
        return True
    return not any(_border_free(x.leaf) for x in group) and a == b


# Grouping depends only on the leaves, so it is computed once per leaf sequence. A batch's trace
# has every leaf (composites gate with masks); a per-sample call leaves out the leaves no
# composite chose, so a pipeline has a few sequences (one per one_of choice). The leaves are
# kept in the value so their ids cannot be reused.
_GROUP_CACHE: dict[tuple[int, ...], tuple[tuple[Leaf, ...], list[int]]] = {}


def _group(steps: tuple[Step, ...]) -> list[list[Step]]:
    """Runs of consecutive steps that fuse: geometric ones that ``_joins`` allows, or color ones."""
    key = tuple(id(s.leaf) for s in steps)
    hit = _GROUP_CACHE.get(key)
    if hit is None:
        sizes = [len(g) for g in _group_uncached(steps)]
        if len(_GROUP_CACHE) > 256:
            _GROUP_CACHE.clear()
        hit = (tuple(s.leaf for s in steps), sizes)
        _GROUP_CACHE[key] = hit
    out, i = [], 0
    for n in hit[1]:
        out.append(list(steps[i : i + n]))
        i += n
    return out


def _group_uncached(steps: tuple[Step, ...]) -> list[list[Step]]:
    groups: list[list[Step]] = []
    for s in steps:
        k = _kind(s.leaf)
        if groups and k in ("geometric", "color"):
            g = groups[-1]
            if _kind(g[0].leaf) == k and (k == "color" or _joins(g, s)):
                g.append(s)
                continue
        groups.append([s])
    return groups


def _spec(group: list[Step]) -> fwarp.WarpSpec:
    """The spec a fused group warps with: that of its first border-sensitive op."""
    for s in group:
        if not _border_free(s.leaf):
            assert isinstance(s.leaf, Op)
            return s.leaf.warp_spec()
    leaf = group[0].leaf
    assert isinstance(leaf, Op)  # only geometric Ops reach here
    return leaf.warp_spec()


def _matmul3(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """3x3 product in plain floats: cheaper than numpy for one matrix on the per-sample path."""
    return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3)] for i in range(3)]


def _fused_matrix(
    group: list[Step], size: tuple[int, int], backend: str, device: torch.device | None
) -> tuple[Array, tuple[int, int]]:
    cur = size
    if backend == "numpy":
        acc: list[list[float]] | None = None
        for s in group:
            op = s.leaf
            assert isinstance(op, Op)
            p = s.params if isinstance(s.params.applied, np.ndarray) else s.params.to_numpy()
            m = np.asarray(op.full_matrix(p, cur), dtype=np.float64)[0].tolist()
            acc = m if acc is None else _matmul3(m, acc)
            cur = op.output_size(cur)
        assert acc is not None
        return np.array(acc, dtype=np.float64).reshape(1, 3, 3), cur
    total: Tensor | None = None
    for s in group:
        op = s.leaf
        assert isinstance(op, Op)
        mt = torch.as_tensor(op.full_matrix(s.params.to_torch(device or "cpu"), cur), device=device, dtype=torch.float64)
        total = mt if total is None else torch.bmm(mt, total)
        cur = op.output_size(cur)
    assert total is not None
    return total, cur


def _fused_color_torch(group: list[Step], image: Tensor) -> Tensor:
    """One affine colour pass for a run of colour steps; on the CPU only over the rows some step acts on."""
    if image.device.type == "cpu":
        acting = torch.zeros(image.shape[0], dtype=torch.bool)
        for s in group:
            acting |= torch.as_tensor(s.params.applied, dtype=torch.bool)
        rows = int(acting.sum())
        if rows == 0:
            return image
        if 2 * rows <= image.shape[0]:  # a one_of's choice: the pass over those rows alone
            idx = acting.nonzero().squeeze(1)
            sub = [Step(s.path, s.leaf, s.params.to_torch(image.device).select(idx)) for s in group]
            return image.index_copy(0, idx, _fused_color_rows(sub, image.index_select(0, idx)).to(image.dtype))
    return _fused_color_rows(group, image)


def _fused_color_rows(group: list[Step], image: Tensor) -> Tensor:
    mean = fcolor.mean_rgb(image).to(torch.float64)  # [B, 3]
    total: Tensor | None = None
    for s in group:
        op = s.leaf
        assert isinstance(op, Op)
        p = s.params.to_torch(image.device)
        m = torch.as_tensor(op.color_matrix(p, mean.to(torch.float32)), device=image.device).to(torch.float64)
        applied = torch.as_tensor(p.applied, device=image.device).reshape(-1, 1, 1)
        m = torch.where(applied, m, fcolor.identity_color_matrix(m))
        mean = torch.einsum("bij,bj->bi", m[:, :, :3], mean) + m[:, :, 3]
        if total is None:
            total = m
        else:  # compose affine maps: m ∘ total
            lin = torch.bmm(m[:, :, :3], total[:, :, :3])
            off = torch.einsum("bij,bj->bi", m[:, :, :3], total[:, :, 3]) + m[:, :, 3]
            total = torch.cat([lin, off.unsqueeze(-1)], dim=-1)
    assert total is not None
    return fcolor.color_affine(image, total.to(torch.float32))


def _fused_color_np(group: list[Step], image: np.ndarray) -> np.ndarray:
    mean = fcolor.mean_rgb_np(image).astype(np.float64)
    total: np.ndarray | None = None
    for s in group:
        op = s.leaf
        assert isinstance(op, Op)
        p = s.params
        if not bool(np.asarray(p.applied)[0]):
            continue
        m = np.asarray(op.color_matrix(p.to_numpy(), mean[None].astype(np.float32)), np.float64)[0]
        mean = m[:, :3] @ mean + m[:, 3]
        if total is None:
            total = m
        else:
            total = np.concatenate([m[:, :3] @ total[:, :3], (m[:, :3] @ total[:, 3] + m[:, 3])[:, None]], axis=1)
    if total is None:
        return image
    return fcolor.color_affine_np(image, total.astype(np.float32))


def _policy_spec(group: list[Step], policy: BoxPolicy | None) -> fwarp.WarpSpec:
    return _spec(group) if policy is None else policy.spec(_spec(group))


def _named(e: ValueError | TypeError, group: list[Step]) -> Exception:
    """``e`` with the stages it came from in front ("stage 2 (color_jitter): ..."; a fused run: "stages 1, 2"), once.

    Only plain ValueError / TypeError are rewritten (a subclass may carry fields of its own);
    an error already naming its stage, from a nested pipeline, is passed on as it is.
    """
    if type(e) not in (ValueError, TypeError) or str(e).startswith(("stage ", "stages ")):
        return e
    names = ", ".join(getattr(s.leaf, "registry_name", "") or type(s.leaf).__name__ for s in group)
    paths = ", ".join(s.path for s in group)
    return type(e)(f"{'stage' if len(group) == 1 else 'stages'} {paths} ({names}): {e}")


# A CPU batch goes through the ops a few rows at a time, so that each op's passes over the pixels
# find them in the cache: one elementwise pass over 256 images of 224 px (150 MB) is memory-bound.
# Only traces of per-row ops are split (never a mix op or an opaque stage); the result is the same.
CPU_CHUNK_BYTES = 2 << 20
CPU_WHOLE_BYTES = 16 << 20  # a batch this small stays whole: it fits the last-level cache already
_ROW_KINDS = frozenset({"geometric", "color", "pixel"})


def _chunk_rows(batch: Batch, trace: Trace) -> int:
    """Rows a chunk of ``batch`` takes on the CPU, or 0 when the batch is applied whole."""
    if batch.image.device.type != "cpu" or batch.batch_size < 2 or not trace.steps:
        return 0
    if not all(_kind(s.leaf) in _ROW_KINDS for s in trace.steps):
        return 0
    row = batch.image[0].numel() * batch.image.element_size()
    if row * batch.batch_size <= CPU_WHOLE_BYTES:
        return 0
    rows = max(1, CPU_CHUNK_BYTES // max(1, row))
    return rows if rows < batch.batch_size else 0


def apply_trace_batch(batch: Batch, trace: Trace, fuse: bool = True, box_policy: BoxPolicy | None = None) -> Batch:
    """Apply ``trace`` to a Batch (torch backend); ``box_policy`` overrides every warp's box thresholds."""
    rows = _chunk_rows(batch, trace)
    if rows:
        n = batch.batch_size
        parts = []
        for a in range(0, n, rows):
            idx = torch.arange(a, min(n, a + rows))
            sub = Trace(tuple(Step(s.path, s.leaf, s.params.select(slice(a, a + rows))) for s in trace.steps))
            parts.append(_apply_batch(batch.index(idx), sub, fuse, box_policy))
        return Batch.cat(parts)
    return _apply_batch(batch, trace, fuse, box_policy)


def _apply_batch(batch: Batch, trace: Trace, fuse: bool, box_policy: BoxPolicy | None) -> Batch:
    groups = _group(trace.steps) if fuse else [[s] for s in trace.steps]
    for g in groups:
        k = _kind(g[0].leaf)
        try:
            if k == "geometric" and (len(g) > 1 or box_policy is not None):
                mat, out = _fused_matrix(g, batch.size, "torch", batch.device)
                batch = fwarp.warp_batch(batch, torch.as_tensor(mat), out, _policy_spec(g, box_policy))
            elif len(g) > 1 and k == "color":
                if not any(bool(torch.as_tensor(s.params.applied).any()) for s in g):
                    continue
                batch = batch.replace(image=_fused_color_torch(g, batch.image))
            else:
                batch = g[0].leaf.apply(batch, g[0].params)
        except (ValueError, TypeError) as e:
            raise _named(e, g) from e
    return batch


def _idle(group: list[Step], size: tuple[int, int]) -> bool:
    """No step of ``group`` acts on the sample and none changes its size: the group is the identity."""
    for s in group:
        if bool(np.asarray(s.params.applied).any()) or s.leaf.output_size(size) != size:
            return False
    return True


def apply_trace_sample(sample: Sample, trace: Trace, fuse: bool = True, box_policy: BoxPolicy | None = None) -> Sample:
    """Apply ``trace`` to one Sample (numpy / OpenCV backend); ``box_policy`` as in ``apply_trace_batch``."""
    groups = _group(trace.steps) if fuse else [[s] for s in trace.steps]
    for g in groups:
        k = _kind(g[0].leaf)
        # a run that draws nothing for this sample is skipped (warp_sample returns its input for an
        # identity matrix; a colour pass is not free): a one_of's unchosen children are most of its steps
        if k in ("color", "geometric") and _idle(g, sample.size):
            continue
        try:
            if k == "geometric" and (len(g) > 1 or box_policy is not None):
                mat, out = _fused_matrix(g, sample.size, "numpy", None)
                sample = fwarp.warp_sample(sample, np.asarray(mat)[0], out, _policy_spec(g, box_policy))
            elif len(g) > 1 and k == "color":
                sample = sample.replace(image=_fused_color_np(g, sample.image))
            else:
                sample = g[0].leaf.apply_sample(sample, g[0].params)
        except (ValueError, TypeError) as e:
            raise _named(e, g) from e
    return sample
