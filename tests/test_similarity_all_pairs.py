"""All layer pairs in one pass: every matrix entry is the library's per-pair value."""

import copy
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from stitchwork.cut import UnknownCutPointError, front
from stitchwork.models import MLP, Tiny10
from stitchwork.similarity import SimilarityInputError, get_measure, linear_cka
from stitchwork.similarity.all_pairs import all_pairs

F64 = torch.float64


def _models():
    torch.manual_seed(0)
    a = Tiny10((1, 8, 8), 10, width=0.5)
    b = MLP((1, 8, 8), 10, depth=2, width=24)
    for m in (a, b):  # non-trivial BN statistics, so eval mode matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return a, b


def _loader(n=90, batch=32, offset=3.0, plain=False):
    X = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)) + offset
    data = TensorDataset(X, torch.zeros(n)) if not plain else X
    return DataLoader(data, batch_size=batch, shuffle=False)


@torch.no_grad()
def _acts(model, cut, loader):
    """Activations at ``cut`` computed directly with cut.front, batch by batch."""
    model.eval()
    f = front(model, cut)
    return torch.cat([f(b[0] if isinstance(b, list) else b) for b in loader])


def test_all_pairs_equals_per_pair_library_values():
    a, b = _models()
    loader = _loader()
    measures = [
        "linear_cka",
        "linear_cka_debiased",
        "rbf_cka",
        "pwcca",
        "procrustes",
        "rsa_spearman",
    ]
    cuts_a = ["conv1", "conv8", "pool"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CCA with d >= n warns; the values are still compared
        r = all_pairs(a, b, loader, cuts_a, None, measures, spatial="flatten", n_subset=40, seed=3)
        assert r.rows == tuple(cuts_a) and r.cols == ("fc1", "fc2")
        assert r.n_examples == {m: (90 if m.startswith("linear") else 40) for m in measures}
        assert len(r.subset) == 40 and bool((r.subset.diff() > 0).all())
        for i, u in enumerate(cuts_a):
            X = _acts(a, u, loader)
            for j, v in enumerate(r.cols):
                Y = _acts(b, v, loader)
                for debiased, name in [(False, "linear_cka"), (True, "linear_cka_debiased")]:
                    ref = linear_cka(X, Y, debiased=debiased, spatial="flatten")
                    assert float(r[name][i, j]) == pytest.approx(ref, abs=1e-10)
                for name in measures[2:]:  # the same library call on the subset rows
                    ref = get_measure(name)(X[r.subset], Y[r.subset], spatial="flatten")
                    assert float(r[name][i, j]) == ref


def test_self_comparison_has_unit_diagonal_and_matches_two_pass_path():
    a, _ = _models()
    loader = _loader(plain=True)
    measures = ["linear_cka", "linear_cka_debiased", "rbf_cka", "pwcca"]
    cuts = ["conv1", "conv3", "conv6", "pool"]
    opts = {"measures": measures, "spatial": "avgpool", "n_subset": 50, "cut_points_a": cuts}
    opts["cut_points_b"] = cuts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same = all_pairs(a, None, loader, **opts)  # one forward pass, shared sums
        twin = all_pairs(a, copy.deepcopy(a), loader, **opts)  # two models, cross sums
    for name in ("linear_cka", "linear_cka_debiased", "rbf_cka"):
        M = same[name]
        assert torch.allclose(M.diagonal(), torch.ones(len(M), dtype=F64), atol=1e-12)
        assert torch.equal(M, M.T)
        assert torch.allclose(M, twin[name], atol=1e-10)
    assert torch.allclose(same["pwcca"], twin["pwcca"], atol=1e-10)
    assert not torch.equal(same["pwcca"], same["pwcca"].T)  # not mirrored: pwcca is asymmetric


def test_streamed_values_keep_digits_with_large_offsets():
    """Float32 post-ReLU-like activations with a big common offset: sums are shifted first."""
    a = MLP((6,), 3, depth=2, width=16)
    torch.manual_seed(2)
    X = torch.randn(200, 6) * 0.01 + 1000.0
    loader = DataLoader(TensorDataset(X), batch_size=64)
    r = all_pairs(a, None, loader, measures=["linear_cka", "linear_cka_debiased"])
    for i, u in enumerate(r.rows):
        for j, v in enumerate(r.cols):
            A, B = _acts(a, u, loader).to(F64), _acts(a, v, loader).to(F64)
            assert float(r["linear_cka"][i, j]) == pytest.approx(linear_cka(A, B), abs=1e-9)
            ref = linear_cka(A, B, debiased=True)
            assert float(r["linear_cka_debiased"][i, j]) == pytest.approx(ref, abs=1e-9)


def test_linear_auto_falls_back_to_subset_when_sums_do_not_fit():
    a, b = _models()
    loader = _loader()
    r = all_pairs(a, b, loader, ["conv1"], ["fc1"], ["linear_cka"], spatial="flatten",
                  n_subset=30, max_moment_bytes=10_000)  # fmt: skip
    assert r.n_examples == {"linear_cka": 30}
    X, Y = _acts(a, "conv1", loader)[r.subset], _acts(b, "fc1", loader)[r.subset]
    assert float(r["linear_cka"][0, 0]) == linear_cka(X, Y, spatial="flatten")
    with pytest.raises(SimilarityInputError, match="GiB of float64 sums"):
        all_pairs(a, b, loader, ["conv1"], ["fc1"], ["linear_cka"], spatial="flatten",
                  linear="stream", max_moment_bytes=10_000)  # fmt: skip


def test_subset_is_seeded_and_covers_everything_when_large():
    a, b = _models()
    loader = _loader()
    args = (a, b, loader, ["pool"], ["fc2"], ["procrustes"])
    r1, r2 = all_pairs(*args, n_subset=20, seed=5), all_pairs(*args, n_subset=20, seed=5)
    r3 = all_pairs(*args, n_subset=20, seed=6)
    assert torch.equal(r1.subset, r2.subset) and not torch.equal(r1.subset, r3.subset)
    assert torch.equal(all_pairs(*args, n_subset=500).subset, torch.arange(90))


def test_models_are_run_in_eval_mode_and_left_as_found():
    a, b = _models()
    a.train()
    b.eval()
    before = copy.deepcopy(a.state_dict())
    all_pairs(a, b, _loader(), measures=["linear_cka"], spatial="avgpool")
    assert a.training and not b.training
    for k, v in a.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running statistics untouched


def test_samples_policy_needs_matching_positions():
    a, _ = _models()
    with pytest.raises(SimilarityInputError, match="different h\\*w: conv1×conv3"):
        all_pairs(a, None, _loader(), ["conv1"], ["conv3"], spatial="samples")
    r = all_pairs(a, None, _loader(), ["conv1", "conv2"], ["conv2"], spatial="samples")
    X, Y = _acts(a, "conv1", _loader()), _acts(a, "conv2", _loader())
    assert float(r["linear_cka"][0, 0]) == pytest.approx(
        linear_cka(X, Y, spatial="samples"), abs=1e-10
    )
    assert float(r["linear_cka"][1, 0]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"measures": ["cka"]},
            SimilarityInputError,
            "unknown similarity measure 'cka'; valid names",
        ),
        ({"spatial": "mean"}, SimilarityInputError, "unknown spatial policy 'mean'"),
        ({"spatial": None}, SimilarityInputError, "conv map .* pass spatial="),
        ({"cut_points_a": ["conv9"]}, UnknownCutPointError, "'conv9'.*valid cut points: conv1"),
        ({"linear": "fast"}, SimilarityInputError, "unknown linear mode 'fast'"),
        ({"options": {"svcca": {"keep": 3}}}, SimilarityInputError, "measures not asked for"),
        ({"n_subset": 2}, SimilarityInputError, "n_subset must be an int >= 4"),
    ],
)
def test_bad_input_is_named(kwargs, error, match):
    a, b = _models()
    args = {"measures": ["linear_cka"], "spatial": "avgpool", **kwargs}
    with pytest.raises(error, match=match):
        all_pairs(a, b, _loader(), **args)


def test_non_finite_activations_are_an_error():
    a, b = _models()
    X = torch.randn(20, 1, 8, 8)
    X[3, 0, 0, 0] = float("nan")
    with pytest.raises(SimilarityInputError, match="NaN or inf"):
        all_pairs(a, b, DataLoader(X, batch_size=8), measures=["linear_cka"], spatial="avgpool")
