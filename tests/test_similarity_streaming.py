"""Accumulators: exact streaming CKA equals the full-batch value; minibatch CKA is Nguyen et al.'s."""

import numpy as np
import pytest
import torch

from stitchwork.similarity import (
    LinearCKAAccumulator,
    MinibatchCKAAccumulator,
    SimilarityAccumulator,
    SimilarityInputError,
    linear_cka,
)
from stitchwork.similarity.cka import cka_ratio

F64 = torch.float64


def _data(n=400, dx=24, dy=16, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64) * torch.linspace(0.1, 5, dx, dtype=F64)
    Y = torch.relu(X[:, :dy] @ torch.randn(dy, dy, generator=g, dtype=F64))
    return X + offset, Y + torch.randn(n, dy, generator=g, dtype=F64) + offset


def _feed(acc, X, Y, sizes):
    start = 0
    for size in sizes:
        acc.update(X[start : start + size], Y[start : start + size])
        start += size
    return acc


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_streaming_equals_full_batch(debiased, offset):
    X, Y = _data(offset=offset)
    acc = _feed(LinearCKAAccumulator(debiased=debiased), X, Y, [1, 7, 92, 100, 200])
    assert acc.n == 400
    assert acc.compute() == pytest.approx(linear_cka(X, Y, debiased=debiased), abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_merged_streams_equal_full_batch(debiased):
    X, Y = _data(offset=50.0)
    # three workers with very different first-batch means (so shifts differ), merged in a tree
    a = _feed(LinearCKAAccumulator(debiased), X[:100] * 1, Y[:100], [30, 70])
    b = _feed(LinearCKAAccumulator(debiased), X[100:250], Y[100:250], [150])
    c = _feed(LinearCKAAccumulator(debiased), X[250:], Y[250:], [5, 145])
    empty = LinearCKAAccumulator(debiased)
    merged = empty.merge(a).merge(b.merge(c)).merge(LinearCKAAccumulator(debiased))
    assert merged.n == 400
    assert merged.compute() == pytest.approx(linear_cka(X, Y, debiased=debiased), abs=1e-10)


def test_streaming_float32_large_offset_equals_float64_on_same_values():
    X, Y = _data(offset=1000.0)
    X32, Y32 = X.float(), Y.float()
    acc32 = _feed(LinearCKAAccumulator(), X32, Y32, [100] * 4)
    assert acc32.compute() == pytest.approx(linear_cka(X32.double(), Y32.double()), abs=1e-10)


def test_accumulators_follow_the_protocol_and_take_spatial_policies():
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(40, 3, 4, 4, generator=g), torch.randn(40, 5, 4, 4, generator=g)
    for acc in (
        LinearCKAAccumulator(spatial="avgpool"),
        MinibatchCKAAccumulator(spatial="avgpool"),
    ):
        assert isinstance(acc, SimilarityAccumulator)
        _feed(acc, X, Y, [20, 20])
    stream = _feed(LinearCKAAccumulator(spatial="samples"), X, Y, [10, 30])
    assert stream.compute() == pytest.approx(linear_cka(X, Y, spatial="samples"), abs=1e-10)


def test_minibatch_cka_is_mean_unbiased_hsic_ratio():
    X, Y = _data(n=120, seed=2)
    acc = _feed(MinibatchCKAAccumulator(), X, Y, [40, 40, 40])

    # oracle: unbiased HSIC per batch from Song et al.'s formula written out in numpy
    def hsic_u(K, L):
        n = K.shape[0]
        K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        one = np.ones(n)
        return (
            np.sum(K * L)
            + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ K @ L @ one)
        ) / (n * (n - 3))

    sums = np.zeros(3)
    for i in range(0, 120, 40):
        x, y = X[i : i + 40].numpy(), Y[i : i + 40].numpy()
        K, L = x @ x.T, y @ y.T  # uncentred: unbiased HSIC is translation invariant
        sums += [hsic_u(K, L), hsic_u(K, K), hsic_u(L, L)]
    assert acc.batches == 3
    assert acc.compute() == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), abs=1e-12)
    # merge equals feeding everything to one accumulator
    left = _feed(MinibatchCKAAccumulator(), X[:80], Y[:80], [40, 40])
    right = _feed(MinibatchCKAAccumulator(), X[80:], Y[80:], [40])
    assert left.merge(right).compute() == pytest.approx(acc.compute(), abs=1e-14)


def test_minibatch_cka_estimates_debiased_not_biased_cka():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(2000, 60, generator=g, dtype=F64)
    Y = torch.randn(2000, 60, generator=g, dtype=F64)  # independent: debiased CKA ~ 0
    mb = _feed(MinibatchCKAAccumulator(), X, Y, [50] * 40).compute()
    biased_batches = np.mean([linear_cka(X[i : i + 50], Y[i : i + 50]) for i in range(0, 2000, 50)])
    assert abs(mb) < 0.05
    assert biased_batches > 0.4  # averaging per-batch biased CKA is biased upward


def test_accumulator_guards():
    X, Y = _data(n=10)
    with pytest.raises(SimilarityInputError, match="n >= 4 rows, got 3"):
        MinibatchCKAAccumulator().update(X[:3], Y[:3])
    with pytest.raises(SimilarityInputError, match="no batches"):
        MinibatchCKAAccumulator().compute()
    acc = LinearCKAAccumulator(debiased=True)
    acc.update(X[:3], Y[:3])
    with pytest.raises(SimilarityInputError, match="at least 4 rows, have seen 3"):
        acc.compute()
    with pytest.raises(SimilarityInputError, match="features"):
        acc.update(X[:, :5], Y)
    with pytest.raises(TypeError, match="MinibatchCKAAccumulator"):
        acc.merge(MinibatchCKAAccumulator())
    const = LinearCKAAccumulator()
    const.update(torch.ones(10, 3), Y)
    with pytest.raises(SimilarityInputError, match=r"HSIC\(X, X\)"):
        const.compute()


def test_negative_self_hsic_is_refused_not_square_rooted():
    with pytest.raises(SimilarityInputError, match=r"HSIC\(Y, Y\) = -1.000e-03"):
        cka_ratio(torch.tensor(0.1), torch.tensor(1.0), torch.tensor(-1e-3))


def test_merge_copies_instead_of_aliasing():
    X, Y = _data(n=60)
    a = _feed(LinearCKAAccumulator(), X, Y, [30])
    before = a.compute()
    m = LinearCKAAccumulator().merge(a)
    m.update(X[30:], Y[30:])
    assert a.n == 30 and a.compute() == before
    assert m.compute() == pytest.approx(linear_cka(X, Y), abs=1e-10)
