"""Direct fitters: the streamed solution is the global least-squares (and RRR, Procrustes) optimum."""

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch

from stitchwork.stitching import (
    MomentAccumulator,
    diagonal_fit,
    least_squares_fit,
    moments_of,
    permutation_fit,
    procrustes_fit,
    reduced_rank_fit,
)

F64 = torch.float64


def _data(n=3000, dx=12, dy=7, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64) * torch.linspace(0.2, 4, dx, dtype=F64) + offset
    Y = X @ torch.randn(dx, dy, generator=g, dtype=F64) + torch.randn(n, dy, generator=g, dtype=F64)
    return X, Y + 3.0


def _streamed(X, Y, chunk=257):
    acc = MomentAccumulator()
    for start in range(0, len(X), chunk):
        acc.update(X[start : start + chunk].float(), Y[start : start + chunk].float())
    return acc


@pytest.mark.parametrize("offset", [0.0, 500.0])
def test_streamed_least_squares_equals_numpy_lstsq(offset):
    X, Y = _data(offset=offset)
    X, Y = X.float().double(), Y.float().double()  # the accumulator sees float32 batches
    acc = _streamed(X, Y)
    fit = least_squares_fit(acc.moments(), ridge=0.0)
    design = np.c_[X.numpy(), np.ones(len(X))]
    solution = np.linalg.lstsq(design, Y.numpy(), rcond=None)[0]  # (dx + 1, dy)
    assert acc.n == len(X)
    np.testing.assert_allclose(fit.weight.T.numpy(), solution[:-1], atol=1e-6, rtol=0)
    np.testing.assert_allclose(fit.bias.numpy(), solution[-1], atol=1e-6 * (1 + offset), rtol=0)


def test_averaging_per_chunk_solutions_is_not_the_global_solution():
    """The trap of one peer: the mean of per-chunk fits differs from the streamed fit."""
    X, Y = _data(n=600)
    Y = Y + torch.where(torch.arange(600)[:, None] < 300, 5 * X[:, :7], 0)  # chunks disagree
    global_fit = least_squares_fit(_streamed(X, Y, chunk=600).moments()).weight
    chunked = _streamed(X, Y, chunk=300).moments()
    halves = [least_squares_fit(moments_of(X[s : s + 300], Y[s : s + 300])).weight for s in (0, 300)]
    assert torch.allclose(least_squares_fit(chunked).weight, global_fit, atol=1e-10)
    assert not torch.allclose((halves[0] + halves[1]) / 2, global_fit, atol=1e-2)


def test_ridge_is_relative_to_the_mean_input_variance():
    X, Y = _data()
    m = moments_of(X, Y)
    lam = 0.1 * float(m.cxx.diagonal().mean())
    expected = torch.linalg.solve(m.cxx + lam * torch.eye(12, dtype=F64), m.cxy).T
    assert torch.allclose(least_squares_fit(m, ridge=0.1).weight, expected, atol=1e-10)
    with pytest.raises(ValueError, match="ridge must be >= 0, got -1"):
        least_squares_fit(m, ridge=-1)


def test_singular_inputs_give_the_minimum_norm_solution():
    X, Y = _data(dx=6)
    X = torch.cat([X, torch.zeros(len(X), 2, dtype=F64)], 1)  # two dead channels
    fit = least_squares_fit(moments_of(X, Y), ridge=0.0)
    assert torch.isfinite(fit.weight).all() and fit.weight[:, 6:].abs().max() < 1e-12
    expected = np.linalg.lstsq(np.c_[X[:, :6].numpy(), np.ones(len(X))], Y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(fit.weight[:, :6].T.numpy(), expected[:-1], atol=1e-8)


def _sse(X, Y, fit):
    return float((X @ fit.weight.T + fit.bias - Y).square().sum())


def test_reduced_rank_regression_is_the_best_rank_r_map():
    X, Y = _data(dy=7)
    m = moments_of(X, Y)
    fit = reduced_rank_fit(m, rank=3)
    assert torch.linalg.matrix_rank(fit.weight).item() == 3
    full = least_squares_fit(m)
    # RRR = projection of the full fit's fitted values onto their top-3 principal axes
    fitted = (X - m.mean_x) @ full.weight.T  # (n, dy)
    _, _, vh = torch.linalg.svd(fitted, full_matrices=False)
    projector = vh[:3].T @ vh[:3]
    assert torch.allclose(fit.weight, (full.weight.T @ projector).T, atol=1e-8)
    g = torch.Generator().manual_seed(1)
    u, s, vh = torch.linalg.svd(fit.weight)
    for _ in range(5):  # no other rank-3 map (with its least-squares bias) does better
        u3 = u[:, :3] + 0.05 * torch.randn(7, 3, generator=g, dtype=F64)
        v3 = vh[:3] + 0.05 * torch.randn(3, 12, generator=g, dtype=F64)
        other = u3 @ torch.diag(s[:3]) @ v3
        alt = dataclasses.replace(fit, weight=other, bias=m.mean_y - other @ m.mean_x)
        assert _sse(X, Y, alt) > _sse(X, Y, fit)
    assert torch.allclose(reduced_rank_fit(m, rank=7).weight, full.weight, atol=1e-8)


@pytest.mark.parametrize("rank", [0, 8, 2.5])
def test_rank_out_of_range_is_an_error(rank):
    m = moments_of(*_data(dy=7))
    with pytest.raises(ValueError, match=rf"rank {rank!r} .* 12 -> 7 .*min\(12, 7\) = 7"):
        reduced_rank_fit(m, rank=rank)


def test_procrustes_equals_scipy_and_recovers_a_rotation():
    X, _ = _data(dx=8)
    q = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(2), dtype=F64))[0]
    Y = 2.5 * X @ q + 1.0
    fit = procrustes_fit(moments_of(X, Y), scale=True)
    assert torch.allclose(fit.weight, 2.5 * q.T, atol=1e-10)
    assert torch.allclose(fit.bias, torch.ones(8, dtype=F64), atol=1e-8)
    Xn, Yn = _data(dx=8, dy=8, seed=3)
    Xc, Yc = Xn - Xn.mean(0), Yn - Yn.mean(0)
    r, _ = scipy.linalg.orthogonal_procrustes(Xc.numpy(), Yc.numpy())  # argmin ||Xc R - Yc||
    unscaled = procrustes_fit(moments_of(Xn, Yn), scale=False)
    np.testing.assert_allclose(unscaled.weight.T.numpy(), r, atol=1e-10)


def test_permutation_recovers_a_planted_matching():
    X, _ = _data(dx=10, dy=10)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(4))
    scale = torch.linspace(0.5, 2.0, 10, dtype=F64)
    Y = X[:, perm] * scale - 4.0
    fit = permutation_fit(moments_of(X, Y))
    assert torch.equal(fit.index, perm)
    assert torch.allclose(fit.weight[torch.arange(10), perm], scale, atol=1e-10)
    assert torch.allclose(fit.bias, torch.full((10,), -4.0, dtype=F64), atol=1e-8)
    bare = permutation_fit(moments_of(X, Y), affine=False)
    assert torch.equal(bare.weight, torch.eye(10, dtype=F64)[perm]) and bare.bias.abs().max() == 0


def test_one_to_one_fitters_need_equal_widths():
    m = moments_of(*_data(dx=12, dy=7))
    for fitter in (permutation_fit, diagonal_fit):
        with pytest.raises(ValueError, match="equal widths, got 12 -> 7"):
            fitter(m)


def test_accumulator_rejects_unpaired_and_changing_batches():
    acc = MomentAccumulator()
    with pytest.raises(ValueError, match=r"paired rows .* \(4, 3\) and \(5, 2\)"):
        acc.update(torch.zeros(4, 3), torch.zeros(5, 2))
    acc.update(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="first batch had 3 and 2"):
        acc.update(torch.randn(4, 5), torch.randn(4, 2))
