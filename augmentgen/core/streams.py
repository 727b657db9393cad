"""``StreamRNG``: many per-sample random streams drawn in one vectorized call.

The per-sample path gives sample ``i`` of epoch ``e`` its own stream ``(seed, e, i)``, so an
augmented epoch does not depend on worker count or batch composition. Drawing from 64
separate Generators costs 64 calls per parameter; ``StreamRNG`` draws the parameters of all
64 samples in one numpy call instead, and row ``b`` of every draw is still a pure function of
stream ``b``'s key and the draw's position in the call sequence (a counter-based generator,
as Philox and JAX keys are): the same sample gets the same values alone or in any batch.

It subclasses ``numpy.random.Generator`` so ops take their numpy path, and overrides the
draws ops use (``random``, ``uniform``, ``integers``, ``standard_normal``, ``normal``). Every
other Generator method raises, so nothing silently falls back to one shared stream.

Rules for callers: the leading axis of every draw is the stream axis (``size=n`` or
``(n, ...)``); ``size=None`` is allowed only for a single stream.

Example:
    >>> a = StreamRNG.for_samples(0, 0, [5, 6, 7]).random((3, 2))
    >>> b = StreamRNG.for_samples(0, 0, [6]).random((1, 2))
    >>> bool((a[1] == b[0]).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from augmentgen.core.rng import _splitmix64, derive_seed

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_U = np.uint64
_PLACEHOLDER = np.random.PCG64(0)  # shared: building a bit generator per batch costs ~20 us


def _mix_np(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic; same values as ``_splitmix64``)."""
    x = x + _U(_GOLDEN)  # a new array; the rest works in place on it
    t = x >> _U(30)
    x ^= t
    x *= _U(_C1)
    np.right_shift(x, _U(27), out=t)
    x ^= t
    x *= _U(_C2)
    np.right_shift(x, _U(31), out=t)
    x ^= t
    return x


def _shape(size: Any) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(s) for s in size)


class StreamRNG(np.random.Generator):
    """``n`` independent streams; row ``b`` of each draw comes from stream ``b``.

    Args:
        keys: one 63-bit key per stream (e.g. ``derive_seed(seed, epoch, index)``).
    """

    def __init__(self, keys: Sequence[int] | np.ndarray) -> None:
        super().__init__(_PLACEHOLDER)  # never drawn from: every draw ops use is overridden
        self.keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        self.n = int(self.keys.shape[0])
        self._keys_int = [int(k) for k in self.keys] if self.n == 1 else None
        self._calls = 0

    @classmethod
    def for_samples(
        cls, seed: int, epoch: int, indices: Sequence[int] | np.ndarray, *keys: int | str
    ) -> StreamRNG:
        """Streams keyed ``derive_seed(seed, epoch, i, *keys)`` for each ``i`` in ``indices``."""
        idx = [int(i) for i in indices]
        if keys or len(idx) < 4:
            return cls([derive_seed(seed, epoch, i, *keys) for i in idx])
        return cls(_derive_many(seed, epoch, idx))

    # ---- raw bits ----------------------------------------------------------------------
    def _bits(self, per: int) -> np.ndarray:
        """``[n, per]`` uint64: element ``(b, j)`` of call ``c`` is ``mix(key_b ^ mix(c << 32 | j))``."""
        c = self._calls
        self._calls += 1
        return _mix_np(self.keys[:, None] ^ _counter_np(c, per)[None, :])

    def _bits_one(self, per: int) -> list[int]:
        """The single-stream ``_bits`` in Python ints (a few times cheaper than numpy for one row)."""
        c = self._calls
        self._calls += 1
        assert self._keys_int is not None
        k = self._keys_int[0]
        return [_splitmix64(k ^ m) for m in _counter_int(c, per)]

    def _check(self, shape: tuple[int, ...], what: str) -> int:
        if shape == ():
            if self.n != 1:
                raise ValueError(f"StreamRNG.{what}: size=None needs a single stream, this one has {self.n}")
            return 1
        if shape[0] != self.n:
            raise ValueError(
                f"StreamRNG.{what}: the leading axis of size {shape} must be the {self.n} streams"
            )
        return math.prod(shape[1:])

    def _uniform01(self, shape: tuple[int, ...], dtype: Any, what: str) -> Any:
        per = self._check(shape, what)
        f32 = np.dtype(dtype) == np.float32
        if self.n == 1:
            bits = self._bits_one(per)
            vals = [(b >> 40) * 2.0**-24 for b in bits] if f32 else [(b >> 11) * 2.0**-53 for b in bits]
            if shape == ():
                return np.float32(vals[0]) if f32 else float(vals[0])
            return np.array(vals, dtype=np.float32 if f32 else np.float64).reshape(shape)
        raw = self._bits(per)
        if f32:
            return ((raw >> _U(40)).astype(np.float32) * np.float32(2.0**-24)).reshape(shape)
        return ((raw >> _U(11)).astype(np.float64) * 2.0**-53).reshape(shape)

    # ---- the draws ops use -------------------------------------------------------------
    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        if out is not None:
            raise ValueError("StreamRNG.random does not fill 'out'")
        return self._uniform01(_shape(size), dtype, "random")

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> Any:
        u = self._uniform01(_shape(size), np.float64, "uniform")
        return low + (np.asarray(high) - low) * u if not np.isscalar(u) else float(low + (high - low) * u)

    def integers(
        self, low: Any, high: Any = None, size: Any = None, dtype: Any = np.int64, endpoint: bool = False
    ) -> Any:
        if high is None:
            low, high = 0, low
        span = int(high) - int(low) + (1 if endpoint else 0)
        if span <= 0:
            raise ValueError(f"StreamRNG.integers: empty range [{low}, {high})")
        shape = _shape(size)
        per = self._check(shape, "integers")
        if self.n == 1:
            vals = [int(low) + _scale_int(b, span) for b in self._bits_one(per)]
            if shape == ():
                return vals[0]
            return np.array(vals, dtype=dtype).reshape(shape)
        raw = self._bits(per)
        # multiply-shift on the top 32 bits (spans up to 2**32 exactly; larger spans use float)
        if span <= 1 << 32:
            v = ((raw >> _U(32)) * _U(span)) >> _U(32)
            return (v.astype(np.int64) + int(low)).astype(dtype).reshape(shape)
        vals2 = [[int(low) + _scale_int(int(b), span) for b in row] for row in raw.tolist()]
        return np.array(vals2, dtype=dtype).reshape(shape)

    def standard_normal(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        """Box-Muller on two uniforms per value (float64 math, cast to ``dtype``)."""
        if out is not None:
            raise ValueError("StreamRNG.standard_normal does not fill 'out'")
        shape = _shape(size)
        per = self._check(shape, "standard_normal")
        if self.n == 1:
            bits = self._bits_one(2 * per)
            vals = [
                math.sqrt(-2.0 * math.log(((bits[2 * j] >> 11) + 1) * 2.0**-53))
                * math.cos(2.0 * math.pi * ((bits[2 * j + 1] >> 11) * 2.0**-53))
                for j in range(per)
            ]
            if shape == ():
                return np.dtype(dtype).type(vals[0])
            return np.array(vals, dtype=np.float64).astype(dtype).reshape(shape)
        raw = self._bits(2 * per)
        u1 = ((raw[:, 0::2] >> _U(11)) + _U(1)).astype(np.float64) * 2.0**-53
        u2 = (raw[:, 1::2] >> _U(11)).astype(np.float64) * 2.0**-53
        # math.* per value keeps results bit-identical to the one-stream path (numpy's SIMD log/cos
        # may round differently from libm)
        z = [
            math.sqrt(-2.0 * math.log(a)) * math.cos(2.0 * math.pi * b)
            for a, b in zip(u1.ravel().tolist(), u2.ravel().tolist())
        ]
        return np.array(z, dtype=np.float64).astype(dtype).reshape(shape)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        return loc + scale * self.standard_normal(size)

    def spawn_for(self, rows: np.ndarray) -> StreamRNG:
        """The streams of ``rows`` only, continuing at this call count (a sub-batch view)."""
        sub = StreamRNG(self.keys[rows])
        sub._calls = self._calls
        return sub


@lru_cache(maxsize=4096)
def _counter_int(c: int, per: int) -> tuple[int, ...]:
    """The mixed counters of call ``c`` (the same for every stream, so computed once)."""
    return tuple(_splitmix64((c << 32) + j) for j in range(per))


@lru_cache(maxsize=4096)
def _counter_np(c: int, per: int) -> np.ndarray:
    out = np.array(_counter_int(c, per), dtype=np.uint64)
    out.flags.writeable = False
    return out


def _scale_int(b: int, span: int) -> int:
    """Lemire's multiply-shift: ``b`` (64 random bits) to ``[0, span)``; top 32 bits when the span fits."""
    if span <= 1 << 32:
        return ((b >> 32) * span) >> 32
    return (b * span) >> 64


def _derive_many(seed: int, epoch: int, indices: list[int]) -> np.ndarray:
    """``derive_seed(seed, epoch, i)`` for many ``i`` in numpy (equal to the Python loop)."""
    h = _splitmix64(int(seed) & _M64)
    h = _splitmix64(h ^ _splitmix64(int(epoch) & _M64))
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    out: np.ndarray = _mix_np(_U(h) ^ _mix_np(idx)) >> _U(1)
    return out


def _refuse(name: str) -> Any:
    def method(self: StreamRNG, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"StreamRNG.{name} is not a per-stream draw; use random/uniform/integers/normal (leading axis = streams)"
        )

    method.__name__ = name
    return method


for _name in (
    "choice",
    "permutation",
    "permuted",
    "shuffle",
    "bytes",
    "exponential",
    "standard_exponential",
    "poisson",
    "binomial",
    "beta",
    "gamma",
    "standard_gamma",
    "lognormal",
    "laplace",
    "logistic",
    "multinomial",
    "multivariate_normal",
    "dirichlet",
    "geometric",
    "triangular",
    "vonmises",
    "weibull",
    "rayleigh",
    "pareto",
    "power",
    "chisquare",
    "f",
    "standard_t",
    "standard_cauchy",
    "gumbel",
    "hypergeometric",
    "logseries",
    "negative_binomial",
    "noncentral_chisquare",
    "noncentral_f",
    "wald",
    "zipf",
    "multivariate_hypergeometric",
    "spawn",
):
    setattr(StreamRNG, _name, _refuse(_name))
