"""``Pipeline`` and the composites ``OneOf``, ``SomeOf``, ``RandomApply``.

Composites gate their children per sample: they draw a mask and AND it into the
``applied`` of every leaf below them, so a batch keeps one shape and fusion still works
across composite boundaries (see ``pipeline.plan``).

Example:
    >>> from augmentgen.ops.geometric import Rotate
    >>> pipe = Pipeline([Rotate(degrees=(-15, 15))], seed=0)
    >>> out = pipe(np.zeros((32, 32, 3), np.uint8))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import yaml

import augmentgen.ops  # noqa: F401  (fills the op registry: every Pipeline.from_dict caller may rely on it)
from augmentgen.core.batch import Batch, Sample
from augmentgen.core.registry import OPS, did_you_mean
from augmentgen.core.rng import RNG, Array, bernoulli, derive_seed, randint, sample_rng, torch_rng
from augmentgen.ops.base import op_from_dict
from augmentgen.ops.box_policy import BoxPolicy
from augmentgen.pipeline.convert import from_input
from augmentgen.pipeline.plan import Leaf, Step, Trace, and_applied, apply_trace_batch, apply_trace_sample

Stage = Union["Composite", Leaf]


@dataclass(frozen=True)
class _Shape:
    """What sampling needs to know of the data: batch size, current (H, W), device."""

    batch_size: int
    size: tuple[int, int]
    device: torch.device | None


def _check_stages(stages: Sequence[Any], where: str) -> list[Stage]:
    out: list[Stage] = []
    for i, s in enumerate(stages):
        if not (isinstance(s, Composite) or isinstance(s, Leaf)):
            raise TypeError(f"{where}[{i}]: {type(s).__name__} is not an op, composite, adapter or Synthesize")
        out.append(s)
    return out


class Composite:
    """Base of stage containers; children are leaves or composites."""

    registry_name = "composite"
    transforms: list[Stage]

    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def _sample_child(
    child: Stage, path: str, shape: _Shape, rng: RNG, mask: Array | None
) -> tuple[list[Step], _Shape]:
    if _unused(child, shape, rng, mask):
        return [], shape
    if isinstance(child, Composite):
        return child.sample_steps(shape, rng, path, mask)
    params = child.sample_params(shape, rng)  # type: ignore[arg-type]
    if mask is not None:
        params = and_applied(params, mask)
    size = child.output_size(shape.size)
    return [Step(path, child, params)], (shape if size == shape.size else _Shape(shape.batch_size, size, shape.device))


def _unused(stage: Stage, shape: _Shape, rng: RNG, mask: Array | None) -> bool:
    """A stage a composite gates off for every row, keeping the size: drawing for it is skipped.

    Only with a plain numpy Generator (the per-sample path): its draws are one stream, so leaving
    a stage out moves the later draws of the same call, and nothing else. A ``StreamRNG`` must
    draw for every leaf (a row's draws may not depend on the other rows' choices), and a torch
    mask would cost a device sync. A one_of of n stages then draws for one of them, not n, and a
    composite it did not choose (an AutoAugment sub-policy) draws none of its gates.
    """
    return (
        type(rng) is np.random.Generator
        and isinstance(mask, np.ndarray)
        and not mask.any()
        and _keeps_size(stage, shape.size)
    )


def _keeps_size(stage: Stage, size: tuple[int, int]) -> bool:
    """True when the stage (every leaf below a composite) leaves an image of ``size`` at that size.

    A composite's answer is kept per size (a few dozen sizes at most): an AutoAugment call asks it
    of the 24 sub-policies it did not choose, which walked 150 leaves a call uncached.
    """
    if isinstance(stage, Composite):
        cache: dict[tuple[tuple[int, int], int], bool] = stage.__dict__.setdefault("_keeps_size", {})
        key = (size, len(stage.transforms))
        known = cache.get(key)
        if known is None:
            if len(cache) >= 64:
                cache.clear()
            known = cache[key] = all(_keeps_size(c, size) for c in stage.transforms)
        return known
    return stage.output_size(size) == size


def _sample_children(
    children: Sequence[Stage], shape: _Shape, rng: RNG, path: str, mask: Array | None
) -> tuple[list[Step], _Shape]:
    steps: list[Step] = []
    for i, child in enumerate(children):
        sub, shape = _sample_child(child, f"{path}.{i}" if path else str(i), shape, rng, mask)
        steps.extend(sub)
    return steps, shape


def _combine(a: Array | None, b: Array) -> Array:
    if a is None:
        return b
    if isinstance(b, torch.Tensor):
        out: Array = torch.as_tensor(a, device=b.device, dtype=torch.bool) & b
        return out
    out_np: np.ndarray = np.asarray(a, dtype=bool) & np.asarray(b, dtype=bool)
    return out_np


class OneOf(Composite):
    """Per sample, apply exactly one of ``transforms`` (chosen with ``weights``) with probability ``p``."""

    registry_name = "one_of"

    def __init__(self, transforms: Sequence[Any], *, p: float = 1.0, weights: Sequence[float] | None = None) -> None:
        self.transforms = _check_stages(transforms, "one_of")
        if not self.transforms:
            raise ValueError("one_of needs at least one transform")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"one_of.p must be in [0, 1], got {p}")
        self.p = float(p)
        w = np.ones(len(self.transforms)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.transforms),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"one_of.weights must be {len(self.transforms)} non-negative numbers, got {weights}")
        self.weights = [float(x) for x in w / w.sum()]

    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        n = shape.batch_size
        gate = _combine(mask, bernoulli(rng, self.p, n))
        cdf = np.cumsum(self.weights)
        if isinstance(rng, torch.Generator):
            u = torch.rand(n, generator=rng, device=rng.device)
            choice: Array = torch.bucketize(u, torch.as_tensor(cdf[:-1], dtype=u.dtype, device=u.device), right=True)
            masks: list[Array | None] = [_combine(gate, choice == k) for k in range(len(self.transforms))]
        else:
            uc = rng.random(n)
            choice = np.searchsorted(cdf[:-1], uc, side="right")
            if type(rng) is np.random.Generator:  # see _unused: only the choices some row took draw
                taken = set(choice[np.asarray(gate, dtype=bool)].tolist())
                if _keeps_size(self, shape.size):  # the others leave no step: visit the taken ones alone
                    chosen: list[Step] = []
                    for k in sorted(taken):
                        key = f"{path}.{k}" if path else str(k)
                        chosen += _sample_child(self.transforms[k], key, shape, rng, _combine(gate, choice == k))[0]
                    return chosen, shape
                masks = [_combine(gate, choice == k) if k in taken else None for k in range(len(self.transforms))]
            else:
                masks = [_combine(gate, choice == k) for k in range(len(self.transforms))]
        steps: list[Step] = []
        end: _Shape | None = None
        for k, child in enumerate(self.transforms):
            m = masks[k]
            sub: list[Step]
            if m is None and _keeps_size(child, shape.size):
                sub, child_shape = [], shape  # no row took it and it keeps the size: nothing to draw
            else:
                m = _combine(gate, choice == k) if m is None else m
                sub, child_shape = _sample_child(child, f"{path}.{k}" if path else str(k), shape, rng, m)
            if end is not None and child_shape.size != end.size:
                raise ValueError(
                    f"one_of at '{path}': its choices give different output sizes {end.size} and {child_shape.size}"
                )
            steps.extend(sub)
            end = child_shape
        return steps, end or shape

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "p": self.p, "weights": self.weights, "transforms": [t.to_dict() for t in self.transforms]}  # type: ignore[union-attr]


class SomeOf(Composite):
    """Per sample, apply ``n`` of ``transforms`` chosen without replacement (in list order)."""

    registry_name = "some_of"

    def __init__(self, transforms: Sequence[Any], *, n: int | tuple[int, int] = 1, p: float = 1.0) -> None:
        self.transforms = _check_stages(transforms, "some_of")
        lo, hi = (n, n) if isinstance(n, int) else (int(n[0]), int(n[1]))
        if not 0 <= lo <= hi <= len(self.transforms):
            raise ValueError(f"some_of.n must lie in [0, {len(self.transforms)}], got {n}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"some_of.p must be in [0, 1], got {p}")
        self.n = (lo, hi)
        self.p = float(p)

    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        b, k = shape.batch_size, len(self.transforms)
        gate = _combine(mask, bernoulli(rng, self.p, b))
        count = randint(rng, self.n[0], self.n[1] + 1, b)
        if isinstance(rng, torch.Generator):
            rank = torch.rand(b, k, generator=rng, device=rng.device).argsort(dim=1).argsort(dim=1)
            chosen: Any = rank < torch.as_tensor(count).reshape(-1, 1)
        else:
            rank_np = rng.random((b, k)).argsort(axis=1).argsort(axis=1)
            chosen = rank_np < np.asarray(count).reshape(-1, 1)
        masks = [_combine(gate, chosen[:, j]) for j in range(k)]
        steps: list[Step] = []
        for j, child in enumerate(self.transforms):
            sub, shape = _sample_child(child, f"{path}.{j}" if path else str(j), shape, rng, masks[j])
            steps.extend(sub)
        return steps, shape

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "n": list(self.n), "p": self.p, "transforms": [t.to_dict() for t in self.transforms]}  # type: ignore[union-attr]


class RandomApply(Composite):
    """Apply all of ``transforms`` to a sample with probability ``p``, or none of them."""

    registry_name = "random_apply"

    def __init__(self, transforms: Sequence[Any], *, p: float = 0.5) -> None:
        self.transforms = _check_stages(transforms, "random_apply")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random_apply.p must be in [0, 1], got {p}")
        self.p = float(p)

    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        gate = _combine(mask, bernoulli(rng, self.p, shape.batch_size))
        return _sample_children(self.transforms, shape, rng, path, gate)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "p": self.p, "transforms": [t.to_dict() for t in self.transforms]}  # type: ignore[union-attr]


class Pipeline(Composite):
    """A sequence of stages, callable on a PIL image, HWC array, CHW tensor, dict, Sample or Batch.

    Args:
        transforms: ops, composites, adapters or ``Synthesize`` stages, applied in order.
        seed: base seed. Call ``k`` without ``rng``/``index`` uses the stream ``(seed, worker, k)``;
            with ``index`` it uses ``(seed, epoch, index)``, the same in any worker. ``None``
            draws from OS entropy (taken once per process) per call: non-reproducible, like torchvision.
        fuse: fuse consecutive geometric ops into one warp and color ops into one pass.
        box_policy: a ``BoxPolicy`` (or its dict) every warp of the call applies to boxes
            (clip, then drop below ``min_visibility`` / ``min_area`` / ``min_size``); None keeps
            each op's defaults.

    Example:
        >>> pipe = Pipeline.from_dict({"transforms": [{"name": "horizontal_flip", "p": 0.5}]}, seed=1)
        >>> img, trace = pipe(np.zeros((8, 8, 3), np.uint8), return_trace=True)
        >>> np.array_equal(pipe.replay(np.zeros((8, 8, 3), np.uint8), trace), img)
        True
    """

    registry_name = "pipeline"

    def __init__(
        self,
        transforms: Sequence[Any],
        *,
        seed: int | None = None,
        fuse: bool = True,
        box_policy: BoxPolicy | dict[str, Any] | None = None,
    ) -> None:
        self.transforms = _check_stages(transforms, "pipeline")
        self.seed = seed
        self.fuse = fuse
        self.box_policy = None if box_policy is None else BoxPolicy.from_dict(box_policy, "pipeline.box_policy")
        self._calls = 0  # counts calls without rng/index, so each draws a fresh stream
        self._entropy: tuple[int, np.random.Generator] | None = None  # (pid, OS-seeded generator) for seed=None

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = ", ".join(type(t).__name__ for t in self.transforms)
        return f"Pipeline([{inner}], seed={self.seed})"

    # ---- sampling and applying --------------------------------------------------------
    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        return _sample_children(self.transforms, shape, rng, path, mask)

    def sample_trace(self, x: Batch | Sample, rng: RNG) -> Trace:
        """Draw the parameters of every leaf for ``x`` (nothing is applied)."""
        dev = x.device if isinstance(x, Batch) else None
        steps, _ = self.sample_steps(_Shape(x.batch_size, x.size, dev), rng, "", None)
        return Trace(tuple(steps))

    def apply_trace(self, x: Batch | Sample, trace: Trace) -> Batch | Sample:
        if isinstance(x, Batch):
            return apply_trace_batch(x, trace, self.fuse, self.box_policy)
        return apply_trace_sample(x, trace, self.fuse, self.box_policy)

    def default_rng(self, x: Batch | Sample, *, index: int | None = None, epoch: int = 0) -> RNG:
        """The rng a call uses when none is given (see ``seed``)."""
        if self.seed is None:
            # OS entropy once per process (a forked DataLoader worker takes its own), then a draw a
            # call: SeedSequence() per call cost ~20 us, most of a one-op call on a small image
            pid = os.getpid()
            ent = getattr(self, "_entropy", None)
            if ent is None or ent[0] != pid:
                ent = self._entropy = (pid, np.random.default_rng())
            if not isinstance(x, Batch):
                return ent[1]  # one stream per process: each call continues it
            seed = int(ent[1].integers(0, 1 << 63))
            keys: tuple[int, ...] = ()
        elif index is not None:
            seed, keys = self.seed, (epoch, index)
        else:
            info = torch.utils.data.get_worker_info()
            worker = -1 if info is None else int(info.seed)
            self._calls += 1
            seed, keys = self.seed, (worker, self._calls, 1 << 40)
        if isinstance(x, Batch):
            return torch_rng(seed, *keys, device=x.device)
        return sample_rng(seed, *keys) if len(keys) >= 2 else np.random.Generator(np.random.PCG64(derive_seed(seed, *keys)))

    def __call__(
        self,
        x: Any,
        *,
        rng: RNG | None = None,
        index: int | None = None,
        epoch: int = 0,
        return_trace: bool = False,
    ) -> Any:
        inner, restore = from_input(x)
        if rng is None:
            rng = self.default_rng(inner, index=index, epoch=epoch)
        elif isinstance(inner, Batch) != isinstance(rng, torch.Generator):
            raise TypeError(
                "rng must be a torch.Generator for tensor/Batch input and a numpy Generator for numpy/PIL input, "
                f"got {type(rng).__name__} for {type(inner).__name__}"
            )
        trace = self.sample_trace(inner, rng)
        out = restore(self.apply_trace(inner, trace))
        return (out, trace) if return_trace else out

    def map_samples(
        self, xs: Sequence[Any], *, seed: int, epoch: int | Sequence[int], indices: Sequence[int]
    ) -> list[Any]:
        """Augment many per-sample inputs at once; ``xs[k]`` uses the stream ``(seed, epoch, indices[k])``.

        Parameters and matrices are drawn for all samples in one vectorized pass (see
        ``pipeline.many``); each sample's result does not depend on the others.
        """
        from augmentgen.pipeline.many import map_samples

        return map_samples(self, xs, seed=seed, epoch=epoch, indices=indices)

    def replay(self, x: Any, trace: Trace) -> Any:
        """Apply the parameters of an earlier call (``return_trace=True``) to ``x``."""
        inner, restore = from_input(x)
        return restore(self.apply_trace(inner, trace))

    # ---- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"transforms": [t.to_dict() for t in self.transforms]}  # type: ignore[union-attr]
        if self.seed is not None:
            d["seed"] = self.seed
        if not self.fuse:
            d["fuse"] = False
        if self.box_policy is not None:
            d["box_policy"] = self.box_policy.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any] | list[Any], *, seed: int | None = None, where: str = "pipeline") -> Pipeline:
        """Build from ``to_dict`` output (or a bare list of stage dicts); unknown keys name their path."""
        if isinstance(data, list):
            data = {"transforms": data}
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping or a list of stages, got {type(data).__name__}")
        unknown = sorted(set(data) - _PIPELINE_KEYS - {"name"})
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {unknown}{did_you_mean(unknown, _PIPELINE_KEYS)}; allowed: {sorted(_PIPELINE_KEYS)}"
            )
        stages = [stage_from_dict(s, f"{where}.transforms[{i}]") for i, s in enumerate(_stage_list(data, where))]
        s = data.get("seed", seed) if seed is None else seed
        policy = data.get("box_policy")
        box_policy = None if policy is None else BoxPolicy.from_dict(policy, f"{where}.box_policy")
        return cls(stages, seed=s, fuse=bool(data.get("fuse", True)), box_policy=box_policy)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path, *, seed: int | None = None) -> Pipeline:
        """Load from YAML text or a file; a recipe file's ``pipeline:`` section is used if present."""
        where = "pipeline"
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
            path = Path(text_or_path)
            if not path.is_file():
                raise ValueError(f"pipeline file not found: {path}")
            text, where = path.read_text(), str(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{where}: not valid YAML: {e}") from e
        if isinstance(data, dict) and "pipeline" in data:
            data, where = data["pipeline"], f"{where}: pipeline"
        return cls.from_dict(data, seed=seed, where=where)


_PIPELINE_KEYS = {"box_policy", "fuse", "seed", "transforms"}
_COMPOSITES: dict[str, type[Composite]] = {"one_of": OneOf, "some_of": SomeOf, "random_apply": RandomApply, "pipeline": Pipeline}
# The policies of ``pipeline.policies`` (which imports this module), by their stage names.
_POLICY_NAMES = ("augmix", "auto_augment", "rand_augment", "trivial_augment")


def _stage_list(data: dict[str, Any], where: str) -> list[Any]:
    """``data['transforms']``: a list of stages (absent or null: none), else a ValueError naming ``where``."""
    stages = data.get("transforms")
    if stages is None:
        return []
    if not isinstance(stages, list):
        raise ValueError(f"{where}.transforms: must be a list of stages, got {type(stages).__name__} {stages!r}")
    return stages


def stage_from_dict(data: Any, where: str) -> Stage:
    """Build a leaf or composite from its dict; errors name ``where``."""
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"{where}: a stage must be a mapping with a 'name' key, got {data!r}")
    name = str(data["name"])
    if name in _POLICY_NAMES:  # a policy: a composite it builds itself
        from augmentgen.pipeline.policies import POLICIES

        return POLICIES[name].from_dict(data, where)  # type: ignore[no-any-return]
    if name in _COMPOSITES:
        kids = [
            stage_from_dict(s, f"{where}({name}).transforms[{i}]")
            for i, s in enumerate(_stage_list(data, f"{where}({name})"))
        ]
        allowed = {"one_of": {"p", "weights"}, "some_of": {"n", "p"}, "random_apply": {"p"}, "pipeline": {"seed", "fuse"}}[name]
        extra = sorted(set(data) - allowed - {"name", "transforms"})
        if extra:
            ok = allowed | {"transforms"}
            raise ValueError(f"{where}({name}): unknown key(s) {extra}{did_you_mean(extra, ok)}; allowed: {sorted(ok)}")
        kwargs: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) and k == "n" else v) for k, v in data.items() if k in allowed
        }
        ctor: Any = _COMPOSITES[name]
        try:
            return ctor(kids, **kwargs)  # type: ignore[no-any-return]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}({name}): {e}") from e
    if name not in OPS:  # the composites and the policy are stages too: name them among the choices
        stages = sorted([*OPS.names(), *_COMPOSITES, *_POLICY_NAMES])
        raise ValueError(f"{where}: unknown op {name!r}{did_you_mean([name], stages)}; known: {', '.join(stages)}")
    return op_from_dict(data, where)  # type: ignore[return-value]
