"""Measures are objects that declare symmetry and distance; all_pairs trusts only what they declare."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from stitchwork.apps.config import conf_dir
from stitchwork.models import MLP
from stitchwork.similarity import MEASURES, Measure, SimilarityInputError, get_measure, pwcca
from stitchwork.similarity.all_pairs import all_pairs

F64 = torch.float64
MEASURE_DIR = conf_dir() / "similarity" / "measure"


def _pair(n=40, dx=6, dy=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=F64)
    return X, torch.tanh(X[:, :dy]) @ torch.randn(dy, dy, generator=g, dtype=F64) + torch.randn(
        n, dy, generator=g, dtype=F64
    )


def _from_yaml(name: str) -> Measure:
    return instantiate(OmegaConf.load(MEASURE_DIR / f"{name}.yaml"))


#: every measure a config can name (its yaml) and every registered one (same set, checked below)
NAMES = sorted({p.stem for p in MEASURE_DIR.glob("*.yaml")} | set(MEASURES))


@pytest.mark.parametrize("name", NAMES)
def test_every_measure_declared_symmetric_is_symmetric_on_random_data(name):
    measure = _from_yaml(name)
    for seed in range(3):
        X, Y = _pair(seed=seed)
        forward, backward = measure(X, Y), measure(Y, X)
        if measure.symmetric:
            assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)
        else:  # a measure declared asymmetric really is (else the declaration costs time only)
            assert abs(forward - backward) > 1e-3


def test_every_measure_has_one_yaml_naming_its_class():
    files = sorted(p.stem for p in MEASURE_DIR.glob("*.yaml"))
    assert set(MEASURES) <= set(files)  # every registered measure can be named in a config
    for name in files:
        measure = _from_yaml(name)
        assert isinstance(measure, Measure) and measure.name == name
    assert set(files) == set(MEASURES)  # instantiating a yaml registers its class by name


class _FirstColumnShare(Measure, register=False):
    """An asymmetric toy: the share of Y's variance explained by X's first feature."""

    name, symmetric = "first_column_share", False

    def __call__(self, X, Y, **options):
        x = (X[:, :1] - X[:, :1].mean()).double()
        y = (Y - Y.mean(0)).double()
        beta = torch.linalg.lstsq(x, y).solution
        return float(1 - (y - x @ beta).square().sum() / y.square().sum())


class _Halves(nn.Module):
    """A fixed two-stage model whose cut points carry different (random) features."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.stages = nn.ModuleDict({
            "h1": nn.Linear(5, 4), "h2": nn.Linear(4, 3), "out": nn.Linear(3, 2),
        })  # fmt: skip
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g)
        self.cut_points = ("h1", "h2")
        self.input_shape = (5,)


def test_an_asymmetric_measure_is_not_mirrored_in_a_self_comparison():
    model = _Halves()
    X = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=16)
    measure = _FirstColumnShare()
    got = all_pairs(model, None, loader, measures=[measure], n_subset=64)[measure.name]
    with torch.no_grad():
        h1 = model.stages["h1"](X)
        acts = {"h1": h1, "h2": model.stages["h2"](h1)}
    want = torch.tensor([[measure(acts[u], acts[v]) for v in ("h1", "h2")] for u in ("h1", "h2")], dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert abs(got[0, 1] - got[1, 0]) > 0.05  # the mirrored value would be wrong
    assert measure.name not in MEASURES  # register=False kept it out of the lookup


def test_pwcca_self_comparison_keeps_both_triangles():
    model = MLP(input_shape=(10,), num_classes=3, depth=3, width=8)
    X = torch.randn(200, 10, generator=torch.Generator().manual_seed(1))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=50)
    r = all_pairs(model, None, loader, measures=["pwcca", "cca_mean_rho"], n_subset=200)
    M = r["pwcca"]
    kept = {}
    with torch.no_grad():
        h = X
        for name, stage in model.stages.items():
            h = stage(h)
            kept[name] = h
    i, j = 0, len(r.rows) - 1
    assert M[i, j] == pytest.approx(pwcca(kept[r.rows[i]], kept[r.cols[j]]), rel=1e-9)
    assert M[j, i] == pytest.approx(pwcca(kept[r.rows[j]], kept[r.cols[i]]), rel=1e-9)
    assert not torch.allclose(M, M.T)
    torch.testing.assert_close(r["cca_mean_rho"], r["cca_mean_rho"].T)


def test_a_measure_must_declare_symmetry_and_names_are_unique():
    with pytest.raises(TypeError, match="must declare symmetric"):

        class _Forgot(Measure, register=False):
            name = "forgot"

            def __call__(self, X, Y, **options):
                return 0.0

    with pytest.raises(TypeError, match="'linear_cka' is taken by stitchwork.similarity.measures.LinearCKA"):

        class _Twin(Measure):
            name, symmetric = "linear_cka", True

            def __call__(self, X, Y, **options):
                return 0.0

    with pytest.raises(SimilarityInputError, match="unknown similarity measure 'cka'"):
        get_measure("cka")
    assert Path(MEASURE_DIR).is_dir()
