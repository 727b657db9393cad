"""StreamRNG: row b of every draw is stream b's, alone or in any batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.core.rng import derive_seed
from augmentgen.core.streams import StreamRNG

DRAWS = [
    ("random", lambda r, n: r.random((n, 3))),
    ("random32", lambda r, n: r.random((n, 2), dtype=np.float32)),
    ("uniform", lambda r, n: r.uniform(-2.0, 5.0, n)),
    ("integers", lambda r, n: r.integers(3, 11, (n, 2))),
    ("integers_wide", lambda r, n: r.integers(0, 2**40, n)),
    ("normal", lambda r, n: r.standard_normal((n, 4), dtype=np.float32)),
]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**40),
    epoch=st.integers(0, 50),
    indices=st.lists(st.integers(0, 10**6), min_size=1, max_size=20, unique=True),
)
def test_rows_equal_the_stream_drawn_alone_for_every_draw_kind(
    seed: int, epoch: int, indices: list[int]
) -> None:
    many = StreamRNG.for_samples(seed, epoch, indices)
    outs = [fn(many, len(indices)) for _, fn in DRAWS]  # one call sequence over all streams
    for b, i in enumerate(indices):
        one = StreamRNG.for_samples(seed, epoch, [i])
        for (name, fn), out in zip(DRAWS, outs):
            alone = fn(one, 1)
            assert np.array_equal(out[b], alone[0]), (name, b)
            assert out.dtype == alone.dtype, name


def test_keys_are_derive_seed_of_seed_epoch_index() -> None:
    s = StreamRNG.for_samples(7, 2, list(range(10)))
    assert [int(k) for k in s.keys] == [derive_seed(7, 2, i) for i in range(10)]


def test_draws_have_the_right_distributions() -> None:
    r = StreamRNG.for_samples(0, 0, range(50_000))
    u = r.random(50_000)
    z = r.standard_normal(50_000)
    k = r.integers(0, 10, 50_000)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert np.all(np.bincount(k, minlength=10) > 4500)
    # successive calls and neighbouring streams are not correlated
    assert abs(np.corrcoef(u, r.random(50_000))[0, 1]) < 0.02
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02


def test_successive_calls_differ_and_a_fresh_object_replays() -> None:
    a = StreamRNG.for_samples(1, 0, [4, 5])
    x, y = a.random(2), a.random(2)
    assert not np.array_equal(x, y)
    assert np.array_equal(StreamRNG.for_samples(1, 0, [4, 5]).random(2), x)


def test_misuse_is_a_clear_error() -> None:
    r = StreamRNG.for_samples(0, 0, [1, 2, 3])
    with pytest.raises(ValueError, match="leading axis"):
        r.random((2, 3))
    with pytest.raises(ValueError, match="single stream"):
        r.random()
    with pytest.raises(NotImplementedError, match="permutation"):
        r.permutation(3)
    assert isinstance(StreamRNG.for_samples(0, 0, [1]).random(), float)
