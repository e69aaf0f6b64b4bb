"""CKA: invariances, sensitivity, symmetry, forms, numerics, and independent numpy oracles."""

from itertools import permutations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from stitchwork.similarity import (
    LinearCKAAccumulator,
    MinibatchCKAAccumulator,
    choose_linear_form,
    linear_cka,
    rbf_cka,
)

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _related(n=60, dx=12, dy=9, seed=0):
    """X and a noisy nonlinear function of it: CKA strictly between 0 and 1."""
    g = _gen(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64)
    Y = torch.tanh(X @ torch.randn(dx, dy, generator=g, dtype=F64))
    return X, Y + 0.3 * torch.randn(n, dy, generator=g, dtype=F64)


def _streamed(X, Y, debiased):
    acc = LinearCKAAccumulator(debiased=debiased)
    for i in range(0, X.shape[0], 16):
        acc.update(X[i : i + 16], Y[i : i + 16])
    return acc.compute()


def _minibatch(X, Y):
    acc = MinibatchCKAAccumulator()
    for i in range(0, X.shape[0], 20):
        acc.update(X[i : i + 20], Y[i : i + 20])
    return acc.compute()


# every CKA variant as (X, Y) -> float
VARIANTS = {
    "linear": lambda X, Y: linear_cka(X, Y),
    "linear_gram": lambda X, Y: linear_cka(X, Y, form="gram"),
    "linear_feature": lambda X, Y: linear_cka(X, Y, form="feature"),
    "linear_debiased_gram": lambda X, Y: linear_cka(X, Y, debiased=True, form="gram"),
    "linear_debiased_feature": lambda X, Y: linear_cka(X, Y, debiased=True, form="feature"),
    "rbf": lambda X, Y: rbf_cka(X, Y),
    "rbf_threshold_0.5": lambda X, Y: rbf_cka(X, Y, threshold=0.5),
    "rbf_debiased": lambda X, Y: rbf_cka(X, Y, debiased=True),
    "streaming": lambda X, Y: _streamed(X, Y, False),
    "streaming_debiased": lambda X, Y: _streamed(X, Y, True),
    "minibatch": _minibatch,
}


# --- independent oracles, written from the definitions --------------------------------------


def np_hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def np_cka(K, L, hsic=np_hsic_biased):
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def np_hsic_ustat(K, L):
    """Song et al. (2012): mean over distinct ordered (i, j, q, r) of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq."""
    idx = np.array(list(permutations(range(K.shape[0]), 4)))
    i, j, q, r = idx.T
    return np.mean(K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q])


def np_rbf(X, threshold=1.0):
    D2 = squareform(pdist(X, "sqeuclidean"))
    return np.exp(-D2 / (2 * threshold**2 * np.median(D2)))


# --- invariances and sensitivity ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_invariant_to_orthogonal_maps_and_isotropic_affine(name):
    cka = VARIANTS[name]
    g = _gen(1)
    X = torch.randn(80, 10, generator=g, dtype=F64)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=F64))
    b = torch.randn(10, generator=g, dtype=F64) * 50
    assert cka(X, X @ Q) == pytest.approx(1.0, abs=1e-10)
    assert cka(X, 3.7 * X + b) == pytest.approx(1.0, abs=1e-10)
    assert cka(X, -0.2 * (X @ Q) + b) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_symmetric(name):
    X, Y = _related(seed=2)
    assert VARIANTS[name](X, Y) == pytest.approx(VARIANTS[name](Y, X), abs=1e-12)


def test_linear_cka_not_invariant_to_general_invertible_maps():
    g = _gen(3)
    X = torch.randn(200, 8, generator=g, dtype=F64)
    W = torch.diag(torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 0.1], dtype=F64))
    assert linear_cka(X, X @ W) < 0.9
    assert linear_cka(X, X @ W, debiased=True) < 0.9


# --- forms and oracles ----------------------------------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(40, 7, 13), (30, 90, 50)])
def test_gram_form_equals_feature_form(debiased, shape):
    n, dx, dy = shape
    g = _gen(4)
    X = torch.randn(n, dx, generator=g, dtype=F64) + 3
    Y = torch.randn(n, dy, generator=g, dtype=F64) + X[:, :1]
    gram = linear_cka(X, Y, debiased=debiased, form="gram")
    feature = linear_cka(X, Y, debiased=debiased, form="feature")
    assert gram == pytest.approx(feature, abs=1e-12)
    assert linear_cka(X, Y, debiased=debiased) == pytest.approx(gram, abs=1e-12)


def test_form_choice_follows_cost():
    assert choose_linear_form(1000, 100, 100) == "feature"
    assert choose_linear_form(1000, 5000, 5000) == "gram"
    assert choose_linear_form(10_000, 16_384, 16_384) == "gram"
    assert choose_linear_form(3000, 2000, 2000) == "feature"  # d <= 2n/3


def test_linear_cka_matches_straightforward_numpy_formula():
    X, Y = _related(n=50, dx=20, dy=7, seed=5)
    Xn, Yn = X.numpy() + 4.0, Y.numpy() - 2.0  # uncentred on purpose: H does the centring
    expected = np_cka(Xn @ Xn.T, Yn @ Yn.T)
    assert linear_cka(Xn, Yn) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("form", ["gram", "feature"])
def test_debiased_linear_cka_matches_u_statistic_definition(form):
    X, Y = _related(n=7, dx=3, dy=4, seed=6)
    Xn, Yn = X.numpy() + 1.0, Y.numpy()
    expected = np_cka(Xn @ Xn.T, Yn @ Yn.T, hsic=np_hsic_ustat)
    assert linear_cka(X, Y, debiased=True, form=form) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_cka_matches_numpy_oracle(threshold):
    X, Y = _related(n=40, dx=6, dy=5, seed=7)
    K, L = np_rbf(X.numpy(), threshold), np_rbf(Y.numpy(), threshold)
    assert rbf_cka(X, Y, threshold=threshold) == pytest.approx(np_cka(K, L), abs=1e-12)


def test_debiased_rbf_cka_matches_u_statistic_definition():
    X, Y = _related(n=8, dx=3, dy=2, seed=8)
    K, L = np_rbf(X.numpy()), np_rbf(Y.numpy())
    expected = np_cka(K, L, hsic=np_hsic_ustat)
    assert rbf_cka(X, Y, debiased=True) == pytest.approx(expected, abs=1e-12)


# --- numerics and estimator bias -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_float32_with_large_offset_equals_float64_on_same_values(name):
    g = _gen(9)
    X32 = (torch.relu(torch.randn(80, 30, generator=g)) + 1000.0).float()
    Y32 = (torch.relu(X32[:, :20] - 1000.5 + torch.randn(80, 20, generator=g)) + 1000.0).float()
    value32 = VARIANTS[name](X32, Y32)
    value64 = VARIANTS[name](X32.double(), Y32.double())  # the very same numbers
    assert abs(value32 - value64) < 1e-6
    assert 0.05 < value64 < 0.999  # a non-trivial value, not a degenerate 0 or 1


def test_offset_data_does_break_a_naive_uncentred_float32_computation():
    """Guards the test above: the data are hard enough to break the textbook float32 formula."""
    g = _gen(9)
    X = (torch.relu(torch.randn(80, 30, generator=g)) + 1000.0).float()
    Y = (torch.relu(X[:, :20] - 1000.5 + torch.randn(80, 20, generator=g)) + 1000.0).float()
    H = torch.eye(80) - 1.0 / 80
    K, L = X @ X.T, Y @ Y.T
    hs = lambda A, B: torch.trace(A @ H @ B @ H)  # noqa: E731
    naive = float(hs(K, L) / torch.sqrt(hs(K, K) * hs(L, L)))
    assert not abs(naive - linear_cka(X.double(), Y.double())) < 1e-3  # nan or far off


def test_independent_gaussians_biased_about_06_debiased_about_0():
    g = _gen(10)
    biased, debiased = [], []
    for _ in range(10):
        X = torch.randn(50, 80, generator=g, dtype=F64)
        Y = torch.randn(50, 80, generator=g, dtype=F64)
        biased.append(linear_cka(X, Y))
        debiased.append(linear_cka(X, Y, debiased=True))
    assert np.mean(biased) == pytest.approx(0.6, abs=0.05)
    assert min(biased) > 0.5
    assert abs(np.mean(debiased)) < 0.05
    assert abs(debiased[0]) < 0.1
