"""CCA, SVCCA and PWCCA: invariance to invertible maps, degenerate regimes, numpy oracles."""

import warnings

import numpy as np
import pytest
import torch

from stitchwork.similarity import (
    CCAResult,
    DegenerateCCAWarning,
    SimilarityInputError,
    cca,
    linear_cka,
    pwcca,
    svcca,
)

F64 = torch.float64


def _data(n=300, dx=10, dy=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64)
    Y = X[:, :dy] @ torch.randn(dy, dy, generator=g, dtype=F64)
    return X, Y + torch.randn(n, dy, generator=g, dtype=F64), g


def _inv_sqrt(C):
    w, V = np.linalg.eigh(C)
    return V @ np.diag(w**-0.5) @ V.T


def np_cca(X, Y, ridge=0.0):
    """Whitened cross-covariance, straight from the definition: (rho, U, Cxx^-1/2, Xc)."""
    n = X.shape[0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Wx = _inv_sqrt(Xc.T @ Xc / (n - 1) + ridge * np.eye(X.shape[1]))
    Wy = _inv_sqrt(Yc.T @ Yc / (n - 1) + ridge * np.eye(Y.shape[1]))
    U, rho, _ = np.linalg.svd(Wx @ (Xc.T @ Yc / (n - 1)) @ Wy)
    return rho, U, Wx, Xc


def test_cca_of_invertible_affine_map_is_all_ones_while_linear_cka_is_not():
    X, _, g = _data(dx=12)
    W = torch.randn(12, 12, generator=g, dtype=F64)
    assert torch.linalg.cond(W) < 1e4
    Y = X @ W + torch.randn(12, generator=g, dtype=F64) * 100
    res = cca(X, Y)
    assert isinstance(res, CCAResult)
    assert res.rho.shape == (12,)
    torch.testing.assert_close(res.rho, torch.ones(12, dtype=F64), atol=1e-10, rtol=0)
    assert res.mean_rho == pytest.approx(1.0, abs=1e-10)
    assert svcca(X, Y, keep=12).mean_rho == pytest.approx(1.0, abs=1e-10)
    assert pwcca(X, Y) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(X, Y) < 0.95


def test_cca_symmetric_and_summaries():
    X, Y, _ = _data()
    a, b = cca(X, Y), cca(Y, X)
    torch.testing.assert_close(a.rho, b.rho, atol=1e-12, rtol=0)
    assert a.mean_rho == pytest.approx(float(a.rho.mean()))
    assert a.mean_rho_sq == pytest.approx(float((a.rho**2).mean()))
    assert bool((a.rho[:-1] >= a.rho[1:]).all())
    assert svcca(X, Y).mean_rho == pytest.approx(svcca(Y, X).mean_rho, abs=1e-12)


@pytest.mark.parametrize("ridge", [0.0, 0.5])
def test_cca_matches_whitening_oracle(ridge):
    X, Y, _ = _data()
    rho, *_ = np_cca(X.numpy() + 7, Y.numpy(), ridge)
    np.testing.assert_allclose(cca(X + 7, Y, ridge=ridge).rho.numpy(), rho, atol=1e-12)


def test_ridge_matters_when_data_outnumber_samples():
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(20, 40, generator=g), torch.randn(20, 30, generator=g)
    with pytest.warns(DegenerateCCAWarning, match="19 of the 19 canonical correlations are forced to 1"):
        plain = cca(X, Y)
    torch.testing.assert_close(plain.rho, torch.ones(19, dtype=F64), atol=1e-8, rtol=0)
    assert plain.trivial == 19  # rank 19 + rank 19 - (n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cca(X, Y, ridge=1.0).mean_rho < 0.9


def test_d_equal_n_warns_and_small_d_does_not():
    g = torch.Generator().manual_seed(2)
    with pytest.warns(DegenerateCCAWarning):
        cca(torch.randn(10, 10, generator=g), torch.randn(10, 2, generator=g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cca(torch.randn(50, 5, generator=g), torch.randn(50, 4, generator=g))


def test_svcca_keeps_dims_by_count_and_by_variance_fraction():
    g = torch.Generator().manual_seed(3)
    # X has 3 strong directions and 5 weak ones: variance fractions are known
    scales = torch.tensor([10.0, 8, 6, 0.1, 0.1, 0.1, 0.1, 0.1], dtype=F64)
    X = torch.randn(500, 8, generator=g, dtype=F64) * scales
    Y = X[:, :3] @ torch.randn(3, 5, generator=g, dtype=F64) + torch.randn(
        500, 5, generator=g, dtype=F64
    )
    assert svcca(X, Y, keep=2).rho.shape == (2,)
    assert svcca(X, Y, keep=0.99).rho.shape == (3,)  # 3 strong dims carry > 99% of s^2 of X
    full = svcca(X, Y, keep=1.0)
    assert full.rho.shape == (5,)  # min(8, 5)
    torch.testing.assert_close(full.rho, cca(X, Y).rho, atol=1e-12, rtol=0)


def test_svcca_equals_cca_on_explicit_svd_projections():
    X, Y, _ = _data(seed=4)
    k = 4
    proj = []
    for M in (X, Y):
        Mc = M - M.mean(0)
        U, s, _ = torch.linalg.svd(Mc, full_matrices=False)
        proj.append(U[:, :k] * s[:k])
    torch.testing.assert_close(svcca(X, Y, keep=k).rho, cca(*proj).rho, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_pwcca_matches_morcos_definition(ridge):
    X, Y, _ = _data(dx=9, dy=6, seed=5)
    rho, U, Wx, Xc = np_cca(X.numpy(), Y.numpy(), ridge)
    k = rho.size
    H = Xc @ (Wx @ U[:, :k])  # canonical variates of X, one per column
    H /= np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ Xc).sum(axis=1)
    expected = (alpha * rho).sum() / alpha.sum()
    assert pwcca(X, Y, ridge=ridge) == pytest.approx(expected, abs=1e-12)
    assert pwcca(X, Y) != pytest.approx(pwcca(Y, X), abs=1e-6)  # weights come from X


def test_cca_bad_arguments():
    X, Y, _ = _data()
    with pytest.raises(SimilarityInputError, match="ridge"):
        cca(X, Y, ridge=-1.0)
    with pytest.raises(SimilarityInputError, match="keep"):
        svcca(X, Y, keep=0)
    with pytest.raises(SimilarityInputError, match="X has rank 10"):
        svcca(X, Y, keep=20)
    with pytest.raises(SimilarityInputError, match=r"\(0, 1\]"):
        svcca(X, Y, keep=1.5)
    with pytest.raises(SimilarityInputError, match="Y has zero variance"):
        cca(X[:10], torch.ones(10, 3))
