"""Bad input, spatial policies, numpy input and the measure registry."""

import warnings

import numpy as np
import pytest
import torch

from stitchwork.similarity import (
    DISTANCES,
    MEASURES,
    SPATIAL_POLICIES,
    DegenerateCCAWarning,
    SimilarityInputError,
    cca,
    get_measure,
    linear_cka,
    rbf_cka,
    spatial_features,
)

F64 = torch.float64


def _pair(n=20, dx=5, dy=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64)
    return X, torch.tanh(X[:, :dy]) + 0.5 * torch.randn(n, dy, generator=g, dtype=F64)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_every_measure_rejects_mismatched_n_and_non_finite_values(name):
    f = get_measure(name)
    X, Y = _pair()
    with pytest.raises(SimilarityInputError, match=r"same number of samples.*\(20, 5\).*\(19, 4\)"):
        f(X, Y[:19])
    for bad in (float("nan"), float("inf"), -float("inf")):
        Z = Y.clone()
        Z[3, 1] = bad
        with pytest.raises(SimilarityInputError, match="Y holds 1 non-finite"):
            f(X, Z)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_every_measure_refuses_conv_maps_without_a_policy(name):
    X = torch.randn(20, 3, 4, 4)
    with pytest.raises(SimilarityInputError, match="flatten, samples, avgpool"):
        get_measure(name)(X, X)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_every_measure_accepts_numpy_and_spatial(name):
    X, Y = _pair(n=30, dx=12)
    f = get_measure(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateCCAWarning)
        value = f(X.numpy(), Y.numpy())
        assert value == pytest.approx(f(X, Y), abs=1e-12)
        assert value == pytest.approx(f(X.reshape(30, 3, 2, 2), Y, spatial="flatten"), abs=1e-12)
    assert isinstance(value, float)
    if name not in DISTANCES:
        assert f(X, X) == pytest.approx(1.0, abs=1e-8)
    else:
        assert f(X, X) == pytest.approx(0.0, abs=1e-6)


def test_unknown_measure_lists_valid_names():
    with pytest.raises(SimilarityInputError, match="'cka'.*linear_cka.*rsa_spearman"):
        get_measure("cka")
    assert isinstance(SimilarityInputError("x"), ValueError)


def test_spatial_policies_reshape_as_documented():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 3, 2, 5, generator=g)
    assert SPATIAL_POLICIES == ("flatten", "samples", "avgpool", "mean_tokens", "cls")
    torch.testing.assert_close(spatial_features(X, "flatten"), X.reshape(6, 30))
    samples = spatial_features(X, "samples")
    assert samples.shape == (60, 3)
    torch.testing.assert_close(samples[1 * 10 + 1 * 5 + 3], X[1, :, 1, 3])  # image 1, h=1, w=3
    torch.testing.assert_close(spatial_features(X, "avgpool"), X.double().mean(dim=(2, 3)))
    Z = torch.randn(6, 4)
    assert spatial_features(Z, "samples") is Z  # 2-D input is already (n, d)


def test_spatial_policy_errors_name_the_values():
    X = torch.randn(8, 3, 2, 2)
    with pytest.raises(SimilarityInputError, match=r"'pool'.*flatten, samples, avgpool"):
        linear_cka(X, X, spatial="pool")
    with pytest.raises(SimilarityInputError, match=r"\(8, 3, 2, 2\).*spatial="):
        linear_cka(X, X)
    with pytest.raises(SimilarityInputError, match=r"shape \(8, 3, 4, 1, 1\)"):
        linear_cka(X.reshape(8, 3, 4, 1, 1), X.reshape(8, 3, 4, 1, 1), spatial="flatten")
    with pytest.raises(SimilarityInputError, match=r"'cls' is for token activations .* conv map of shape \(8, 3, 2, 2\)"):
        linear_cka(X, X, spatial="cls")
    with pytest.raises(SimilarityInputError, match="multiplies n by h\\*w"):
        linear_cka(X, torch.randn(8, 3, 4, 4), spatial="samples")


def test_debiased_estimators_need_four_samples():
    X, Y = _pair(n=3)
    for f in (linear_cka, rbf_cka):
        with pytest.raises(SimilarityInputError, match="n >= 4 samples, got n = 3"):
            f(X, Y, debiased=True)
        assert np.isfinite(f(X, Y))  # the biased estimator is defined


def test_cca_warns_when_d_reaches_n():
    X, Y = _pair(n=6, dx=6)
    with pytest.warns(DegenerateCCAWarning, match=r"n - 1 = 5"):
        cca(X, Y)


def test_other_bad_arguments():
    X, Y = _pair()
    with pytest.raises(TypeError, match="list"):
        linear_cka(X.tolist(), Y)
    with pytest.raises(TypeError, match="complex"):
        linear_cka(X.to(torch.complex64), Y)
    with pytest.raises(SimilarityInputError, match="'fast'.*auto, gram, feature"):
        linear_cka(X, Y, form="fast")
    with pytest.raises(SimilarityInputError, match="threshold must be > 0, got 0"):
        rbf_cka(X, Y, threshold=0)
    with pytest.raises(SimilarityInputError, match=r"shape \(20,\)"):
        linear_cka(X[:, 0], Y)
    with pytest.raises(SimilarityInputError, match=r"HSIC\(X, X\)"):
        linear_cka(torch.ones(20, 3), Y)  # constant features: CKA undefined


def test_integer_and_float16_inputs_are_reduced_in_float64():
    X, Y = _pair()
    Xi = (X * 100).round().to(torch.int64)
    assert linear_cka(Xi, Y) == pytest.approx(linear_cka(Xi.double(), Y), abs=1e-14)
    Xh = X.half()
    assert linear_cka(Xh, Y) == pytest.approx(linear_cka(Xh.double(), Y), abs=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_cpu_values():
    X, Y = _pair(n=50, dx=30, dy=20)
    for name, f in MEASURES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateCCAWarning)
            assert f(X.cuda(), Y.cuda()) == pytest.approx(f(X, Y), abs=1e-9), name
    with pytest.raises(SimilarityInputError, match="cuda"):
        linear_cka(X.cuda(), Y)
