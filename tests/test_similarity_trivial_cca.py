"""Canonical correlations forced to 1 by rank X + rank Y > n - 1: warned, counted, recorded."""

import json
import warnings

import numpy as np
import pytest
import torch

from stitchwork.cut import front
from stitchwork.similarity import DegenerateCCAWarning, cca, pwcca, svcca
from stitchwork.similarity.all_pairs import all_pairs
from stitchwork.similarity.cca import pwcca_result


def _numpy_forced(X: np.ndarray, Y: np.ndarray) -> int:
    """Correlations equal to 1, by numpy alone: cosines of the principal angles of the centred
    column spaces (QR bases, then the singular values of Qx^T Qy)."""
    qx, _ = np.linalg.qr(X - X.mean(0))
    qy, _ = np.linalg.qr(Y - Y.mean(0))
    return int((np.linalg.svd(qx.T @ qy, compute_uv=False) > 1 - 1e-9).sum())


@pytest.mark.parametrize(("n", "dx", "dy"), [(20, 12, 12), (30, 25, 9), (40, 20, 20)])
def test_forced_count_is_exact_and_warned(n, dx, dy):
    rng = np.random.default_rng(n + dx)
    X, Y = rng.standard_normal((n, dx)), rng.standard_normal((n, dy))
    expected = max(0, dx + dy - (n - 1))  # max(dx, dy) < n - 1: the old check stayed silent
    assert _numpy_forced(X, Y) == expected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cca(X, Y)
    assert result.trivial == expected and int((result.rho > 1 - 1e-9).sum()) == expected
    messages = [str(w.message) for w in caught if issubclass(w.category, DegenerateCCAWarning)]
    if expected:
        assert len(messages) == 1 and f"{expected} of the {min(dx, dy)} canonical" in messages[0]
    else:
        assert messages == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pwcca_result(X, Y) == (pwcca(X, Y), expected)
        assert cca(X, Y, ridge=0.1).trivial == 0  # a ridge shrinks every direction: none forced
        kept = svcca(X, Y, keep=5)  # an SVD cut to 5 + 5 dims <= n - 1: nothing forced
    assert kept.trivial == 0


def test_all_pairs_records_counts_and_a_measure_may_pool_on_its_own(tiny10_probe):
    model, X, loader = tiny10_probe(60)
    cuts = ["conv1", "conv8"]
    opts = {"svcca": {"keep": 0.99}, "pwcca": {"spatial": "avgpool"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = all_pairs(model, None, loader, cuts, cuts, ["cca_mean_rho", "svcca", "pwcca", "linear_cka"],
                      spatial="flatten", n_subset=60, options=opts)  # fmt: skip
    with torch.no_grad():
        acts = {c: front(model, c)(X).double().numpy() for c in cuts}
    for i, u in enumerate(cuts):
        for j, v in enumerate(cuts):
            flat_u, flat_v = acts[u].reshape(60, -1), acts[v].reshape(60, -1)
            ranks = np.linalg.matrix_rank(flat_u - flat_u.mean(0)) + np.linalg.matrix_rank(flat_v - flat_v.mean(0))
            assert r.facts["cca_mean_rho"]["trivial_correlations"][i, j] == max(0, ranks - 59)
            pooled_u, pooled_v = acts[u].mean((2, 3)), acts[v].mean((2, 3))  # (60, c): pwcca's own policy
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert float(r["pwcca"][i, j]) == pytest.approx(pwcca(pooled_u, pooled_v), abs=1e-12)
            pooled = np.linalg.matrix_rank(pooled_u - pooled_u.mean(0)) + np.linalg.matrix_rank(pooled_v - pooled_v.mean(0))
            assert r.facts["pwcca"]["trivial_correlations"][i, j] == max(0, pooled - 59)
    assert r.facts["cca_mean_rho"]["trivial_correlations"].max() > 0  # conv1 flattened: 8x8 maps
    assert (r.facts["pwcca"]["trivial_correlations"] < r.facts["cca_mean_rho"]["trivial_correlations"]).all()
    assert "linear_cka" not in r.facts and set(r.to_dict()["facts"]) == {"cca_mean_rho", "svcca", "pwcca"}


def test_compare_app_pools_the_cca_family_by_default_and_records_counts(run_cli, tmp_path):
    measures = "similarity.measures=[linear_cka,pwcca]"
    run_cli("compare", "tiny=two_models", "similarity.n_subset=120", measures, "cut_points_a=[conv1,conv8]",
            "cut_points_b=[conv1,conv8]")  # fmt: skip
    (path,) = sorted((tmp_path / "outputs" / "compare").rglob("results.json"))
    m = json.loads(path.read_text())["metrics"]
    assert m["trivial_correlations"] == {"pwcca": [[0, 0], [0, 0]]}  # avgpool: c + c <= n - 1
    run_cli("compare", "tiny=two_models", "similarity.n_subset=120", measures, "cut_points_a=[conv1,conv8]",
            "cut_points_b=[conv1,conv8]", "similarity.cca_spatial=null")  # fmt: skip
    # cca_spatial changes results, so it changes the job id: a second job folder, not a cache hit
    (flat,) = [p for p in (tmp_path / "outputs" / "compare").rglob("results.json") if p != path]
    m = json.loads(flat.read_text())["metrics"]
    forced = m["trivial_correlations"]["pwcca"]
    assert forced[0][0] > 0  # conv1 flattened on 120 examples: forced correlations, and said so
    assert any("forced to 1" in note for note in m["warnings"])
