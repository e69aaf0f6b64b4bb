"""Procrustes distance and RSA against scipy oracles, with their invariances."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from stitchwork.similarity import SimilarityInputError, procrustes, rsa

F64 = torch.float64


def _data(n=60, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), g


def _unit(M):
    Mc = M - M.mean(0)
    return Mc / np.linalg.norm(Mc)


def test_procrustes_zero_for_rotated_scaled_shifted_copy():
    X, g = _data()
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=F64))
    Y = 2.5 * X @ Q + 9.0
    assert procrustes(X, Y) == pytest.approx(0.0, abs=1e-12)
    assert procrustes(X, Y, angular=True) == pytest.approx(0.0, abs=1e-6)  # arccos near 1


def test_procrustes_positive_for_non_orthogonal_linear_map():
    X, g = _data()
    W = torch.diag(torch.linspace(0.2, 3.0, 8, dtype=F64))
    assert procrustes(X, X @ W) > 0.05
    assert procrustes(X, X @ W, angular=True) > 0.1


@pytest.mark.parametrize("dims", [(8, 8), (30, 70)])  # d < n and d > n (Gram route)
def test_procrustes_matches_scipy_orthogonal_procrustes(dims):
    X, g = _data(n=40, d=dims[0], seed=1)
    Y = torch.tanh(X @ torch.randn(dims[0], dims[1], generator=g, dtype=F64))
    Xn, Yn = _unit(X.numpy()), _unit(Y.numpy())
    # zero-pad the narrower side so that Q is square, as in Ding et al. 2021
    Xp = np.pad(Xn, ((0, 0), (0, max(dims) - dims[0])))
    Yp = np.pad(Yn, ((0, 0), (0, max(dims) - dims[1])))
    R, _ = orthogonal_procrustes(Yp, Xp)
    expected = np.linalg.norm(Xp - Yp @ R) ** 2
    assert procrustes(X, Y) == pytest.approx(expected, abs=1e-10)
    nuc = 1.0 - expected / 2.0
    assert procrustes(X, Y, angular=True) == pytest.approx(math.acos(nuc), abs=1e-8)
    assert procrustes(Y, X) == pytest.approx(procrustes(X, Y), abs=1e-12)


def test_rsa_identical_data_is_one():
    X, _ = _data(n=30, d=12, seed=2)
    for method in ("pearson", "spearman"):
        for kind in ("correlation", "euclidean"):
            assert rsa(X, X.clone(), method=method, rdm_kind=kind) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["correlation", "euclidean"])
def test_rsa_matches_scipy(kind):
    X, g = _data(n=30, d=12, seed=3)
    Y = torch.relu(X @ torch.randn(12, 9, generator=g, dtype=F64)) + 0.5
    a, b = pdist(X.numpy(), kind), pdist(Y.numpy(), kind)
    assert rsa(X, Y, "pearson", kind) == pytest.approx(pearsonr(a, b)[0], abs=1e-12)
    assert rsa(X, Y, "spearman", kind) == pytest.approx(spearmanr(a, b)[0], abs=1e-12)
    assert rsa(Y, X, "spearman", kind) == pytest.approx(rsa(X, Y, "spearman", kind), abs=1e-12)


def test_spearman_rsa_handles_tied_dissimilarities():
    # integer-valued points give many equal Euclidean distances
    X = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [0, 2]], dtype=F64)
    Y = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1], [2, 1], [1, 2]], dtype=F64)
    expected = spearmanr(pdist(X.numpy()), pdist(Y.numpy()))[0]
    assert rsa(X, Y, "spearman", "euclidean") == pytest.approx(expected, abs=1e-12)


def test_rsa_and_procrustes_bad_arguments():
    X, _ = _data(n=10, d=4)
    with pytest.raises(SimilarityInputError, match="'kendall'.*pearson, spearman"):
        rsa(X, X, method="kendall")
    with pytest.raises(SimilarityInputError, match="'cosine'.*correlation, euclidean"):
        rsa(X, X, rdm_kind="cosine")
    with pytest.raises(SimilarityInputError, match="constant patterns"):
        rsa(torch.ones(10, 4), X)
    with pytest.raises(SimilarityInputError, match="zero variance"):
        procrustes(X, torch.ones(10, 3))
