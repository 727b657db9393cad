"""Chunked Euclidean distances and nearest neighbours: the kernel under PRDC, memorization, duplicates.

Distances come from ``|x|^2 + |y|^2 - 2 x.y`` on features centred by a shared mean (centring
keeps the cancellation error small for near-identical points), computed in row chunks so a
10k x 10k problem never holds more than ``chunk x M`` values. Everything runs in the dtype
and on the device of the inputs; pass float64 when exactness matters more than speed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

DEFAULT_CHUNK = 2048


def _check_2d(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {tuple(x.shape)}")


def pairwise_distances(x: Tensor, y: Tensor | None = None, *, center: Tensor | None = None) -> Tensor:
    """Euclidean distances between every row of ``x`` and every row of ``y`` (``y=x`` when None).

    Args:
        x: ``[N, D]`` features.
        y: ``[M, D]`` features, or None for ``x`` against itself (the diagonal is then exactly 0).
        center: ``[D]`` subtracted from both before the expansion; defaults to the mean of ``x``.

    Shape:
        returns ``[N, M]`` in the dtype of ``x``.

    Example:
        >>> pairwise_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
        tensor([[0., 5.],
                [5., 0.]])
    """
    _check_2d(x, "x")
    same = y is None
    y = x if y is None else y
    _check_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} feature dims, y has {y.shape[1]}")
    c = x.mean(0) if center is None else center
    xc, yc = x - c, y - c
    sq = (xc * xc).sum(1, keepdim=True) + (yc * yc).sum(1)[None, :] - 2.0 * (xc @ yc.T)
    d = sq.clamp_min_(0).sqrt_()
    if same:
        d.fill_diagonal_(0.0)
    return d


def iter_sq_distance_chunks(
    x: Tensor, y: Tensor | None = None, *, chunk: int = DEFAULT_CHUNK
) -> Iterator[tuple[int, Tensor]]:
    """Like ``iter_distance_chunks`` but yields *squared* distances (no square roots: cheaper, same order)."""
    _check_2d(x, "x")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    self_mode = y is None
    ref = x if y is None else y
    _check_2d(ref, "y")
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"x has {x.shape[1]} feature dims, y has {ref.shape[1]}")
    center = torch.cat([x, ref]).mean(0) if not self_mode else x.mean(0)
    xc, rc = x - center, ref - center
    sq_x, sq_r = (xc * xc).sum(1), (rc * rc).sum(1)
    for s in range(0, x.shape[0], chunk):
        e = min(s + chunk, x.shape[0])
        d2 = torch.addmm(sq_r[None, :], xc[s:e], rc.T, alpha=-2.0).add_(sq_x[s:e, None]).clamp_min_(0)
        if self_mode:
            idx = torch.arange(e - s, device=d2.device)
            d2[idx, idx + s] = float("inf")
        yield s, d2


def iter_distance_chunks(
    x: Tensor, y: Tensor | None = None, *, chunk: int = DEFAULT_CHUNK
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, D[start:start+chunk])`` row blocks of ``pairwise_distances(x, y)``.

    When ``y`` is None the self-distances on the diagonal are set to ``+inf`` so that a row's
    minimum is its nearest *other* point.

    Example:
        >>> [d.shape for _, d in iter_distance_chunks(torch.zeros(5, 2), chunk=2)]
        [torch.Size([2, 5]), torch.Size([2, 5]), torch.Size([1, 5])]
    """
    for s, d2 in iter_sq_distance_chunks(x, y, chunk=chunk):
        yield s, d2.sqrt_()


def kth_neighbour_distances(x: Tensor, k: int, *, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Distance from each row of ``x`` to its ``k``-th nearest other row (Naeem et al. radii).

    Args:
        x: ``[N, D]`` features, N > k.
        k: neighbour rank, 1 = nearest other point.

    Shape:
        returns ``[N]``.

    Example:
        >>> kth_neighbour_distances(torch.tensor([[0.0], [1.0], [3.0]]), 1)
        tensor([1., 1., 2.])
    """
    _check_2d(x, "x")
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in [1, N-1] = [1, {x.shape[0] - 1}], got {k}")
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s, d2 in iter_sq_distance_chunks(x, chunk=chunk):
        out[s : s + d2.shape[0]] = d2.topk(k, dim=1, largest=False, sorted=True).values[:, -1]
    return out.sqrt_()


def nearest_neighbours(
    query: Tensor, ref: Tensor | None = None, *, k: int = 1, chunk: int = DEFAULT_CHUNK
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest rows of ``ref`` for every row of ``query`` (``ref=None``: within ``query``, self excluded).

    Shape:
        returns distances ``[N, k]`` ascending and indices ``[N, k]`` into ``ref``.

    Example:
        >>> d, i = nearest_neighbours(torch.tensor([[0.1]]), torch.tensor([[0.0], [1.0]]))
        >>> i.tolist()
        [[0]]
    """
    _check_2d(query, "query")
    n_ref = query.shape[0] - 1 if ref is None else ref.shape[0]
    if not 1 <= k <= n_ref:
        raise ValueError(f"k must be in [1, {n_ref}] (reference rows), got {k}")
    dist = torch.empty(query.shape[0], k, dtype=query.dtype, device=query.device)
    idx = torch.empty(query.shape[0], k, dtype=torch.int64, device=query.device)
    for s, d2 in iter_sq_distance_chunks(query, ref, chunk=chunk):
        v, i = d2.topk(k, dim=1, largest=False, sorted=True)
        dist[s : s + d2.shape[0]], idx[s : s + d2.shape[0]] = v, i
    return dist.sqrt_(), idx


def pairs_within(x: Tensor, radius: float, *, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """All pairs ``(i, j)``, ``i < j``, of rows of ``x`` closer than ``radius``.

    Shape:
        returns ``[P, 2]`` int64.

    Example:
        >>> pairs_within(torch.tensor([[0.0], [0.05], [2.0]]), 0.1).tolist()
        [[0, 1]]
    """
    out = []
    for s, d2 in iter_sq_distance_chunks(x, chunk=chunk):
        i, j = (d2 < radius * radius).nonzero(as_tuple=True)
        i = i + s
        keep = i < j
        out.append(torch.stack([i[keep], j[keep]], 1))
    if not out:
        return torch.zeros(0, 2, dtype=torch.int64, device=x.device)
    return torch.cat(out)
