"""Minibatch CKA (torch_cka, Nguyen et al. 2021) as a measure, against numpy in float64."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from stitchwork.apps.config import conf_dir, job_id
from stitchwork.cut import front
from stitchwork.similarity import SimilarityInputError, get_measure
from stitchwork.similarity.all_pairs import all_pairs


def _hsic_u(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, written out from the paper's formula."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    trace = np.trace(K @ L)
    middle = (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (one @ K @ L @ one)
    return (trace + middle - last) / (n * (n - 3))


def _numpy_minibatch_cka(X: np.ndarray, Y: np.ndarray, batch: int) -> float:
    xy, xx, yy = [], [], []
    for s in range(0, len(X), batch):
        K, L = X[s : s + batch] @ X[s : s + batch].T, Y[s : s + batch] @ Y[s : s + batch].T
        xy.append(_hsic_u(K, L)), xx.append(_hsic_u(K, K)), yy.append(_hsic_u(L, L))
    return float(np.mean(xy) / np.sqrt(np.mean(xx) * np.mean(yy)))


@pytest.mark.parametrize(("n", "batch"), [(200, 50), (203, 64), (90, 256)])  # 203: short last batch
def test_minibatch_cka_equals_numpy_float64(n, batch):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 12)) + 3.0
    Y = X @ rng.standard_normal((12, 7)) + 0.5 * rng.standard_normal((n, 7))
    X, Y = X.astype(np.float32), Y.astype(np.float32)  # float32 activations, as models give
    got = get_measure("minibatch_cka")(X, Y, batch_size=batch)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    want = _numpy_minibatch_cka(X, Y, batch)
    assert got == pytest.approx(want, abs=1e-11, rel=0)
    exact = _hsic_u(X @ X.T, Y @ Y.T) / np.sqrt(_hsic_u(X @ X.T, X @ X.T) * _hsic_u(Y @ Y.T, Y @ Y.T))
    if batch >= n:  # one batch: the full-data debiased CKA
        assert got == pytest.approx(exact, abs=1e-10)
    else:  # an estimator: not debiased CKA of all rows
        assert abs(got - exact) > 1e-6


def test_all_pairs_serves_minibatch_cka_in_loader_order(tiny10_probe):
    model, X, loader = tiny10_probe(100, batch=30)
    cuts = ["conv2", "conv8"]
    r = all_pairs(model, None, loader, cuts, cuts, ["minibatch_cka"], spatial="flatten", n_subset=100,
                  options={"minibatch_cka": {"batch_size": 32}})  # fmt: skip
    with torch.no_grad():
        acts = {c: front(model, c)(X).flatten(1).double().numpy() for c in cuts}  # (n, c*h*w)
    for i, u in enumerate(cuts):
        for j, v in enumerate(cuts):
            assert float(r["minibatch_cka"][i, j]) == pytest.approx(_numpy_minibatch_cka(acts[u], acts[v], 32), abs=1e-11)


@pytest.mark.parametrize("bad", [3, 0, 2.5, True])
def test_bad_batch_size_is_named(bad):
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(SimilarityInputError, match=f"batch_size must be an int >= 4, got {bad!r}"):
        get_measure("minibatch_cka")(X, X, batch_size=bad)


def test_batch_size_is_in_the_job_identity():
    base = ["similarity.measures=[linear_cka,minibatch_cka]"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        ids = {b: job_id(compose("compare", overrides=[*base, f"+similarity.options.minibatch_cka.batch_size={b}"]))
               for b in (64, 256)}  # fmt: skip
        default = job_id(compose("compare", overrides=base))
    assert ids[64] != ids[256] and default not in ids.values()
