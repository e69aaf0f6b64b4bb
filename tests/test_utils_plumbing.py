"""The shared torch plumbing: float64 moments shifted by the first batch, eval_mode, devices."""

import numpy as np
import pytest
import torch
from torch import nn

from stitchwork.utils.modules import DeviceMismatchError, common_device, eval_mode, model_device
from stitchwork.utils.moments import Moments, RowShift


def _post_relu(n=4000, d=6, offset=1e4, seed=0):
    """float32 rows like post-ReLU features with a huge common mean and a small spread."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g).relu() * torch.linspace(0.5, 2, d)
    return (base + offset).float(), (base @ torch.randn(d, 3, generator=g) + offset).float()


def _stream(acc, x, y=None, chunk=333):
    for s in range(0, len(x), chunk):
        acc.update(x[s : s + chunk], None if y is None else y[s : s + chunk])
    return acc


def test_moments_equal_numpy_on_large_mean_post_relu_rows_where_the_unshifted_form_cancels():
    x, y = _post_relu()
    acc = _stream(Moments(xx="full", yy="diag", cross=True), x, y)
    X, Y = x.double().numpy(), y.double().numpy()
    cxx = np.cov(X, rowvar=False, bias=True)
    cxy = (X - X.mean(0)).T @ (Y - Y.mean(0)) / len(X)
    assert acc.n == len(X)
    np.testing.assert_allclose(acc.mean_x.numpy(), X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc.mean_y.numpy(), Y.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov_x().numpy(), cxx, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(acc.cov_y().numpy(), Y.var(0), rtol=1e-8)
    np.testing.assert_allclose(acc.cov_xy().numpy(), cxy, rtol=1e-8, atol=1e-10)
    # the unshifted float64 form Σx²/n − mean² loses the spread at this offset: the test can fail
    naive = (X * X).sum(0) / len(X) - X.mean(0) ** 2
    assert np.abs(naive - X.var(0)).max() > 1e3 * np.abs(acc.cov_x().diagonal().numpy() - X.var(0)).max()


def test_single_stream_diag_and_full_agree_and_widths_are_checked():
    x, _ = _post_relu(offset=300.0)
    full, diag = _stream(Moments(xx="full"), x), _stream(Moments(xx="diag"), x)
    torch.testing.assert_close(full.cov_x().diagonal(), diag.cov_x(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="batch has 5 features, the first batch had 6"):
        full.update(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="cross moment was not kept"):
        full.cov_xy()
    paired = Moments(xx="full", cross=True)
    paired.update(x, x)
    with pytest.raises(ValueError, match="second moments of y were not kept"):
        paired.cov_y()
    with pytest.raises(ValueError, match="need at least 1 rows, got 0"):
        _ = Moments().mean_x


def test_row_shift_is_the_first_batch_mean_in_float64():
    shift = RowShift("feats")
    first = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = shift(first)
    assert out.dtype == torch.float64 and torch.equal(shift.shift, torch.tensor([2.0, 20.0], dtype=torch.float64))
    assert torch.equal(shift(torch.tensor([[2.0, 20.0]])), torch.zeros(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="feats: batch has 3 features, the first batch had 2"):
        shift(torch.zeros(1, 3))


def test_eval_mode_restores_each_models_flag_even_on_error():
    a, b = nn.Sequential(nn.Linear(2, 2), nn.Dropout()), nn.BatchNorm1d(2)
    a.train(), b.eval()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(a, None, b):
        assert not a.training and not a[1].training and not b.training
        raise RuntimeError("boom")
    assert a.training and a[1].training and not b.training


def test_model_device_and_common_device():
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.ReLU(), default="meta") == torch.device("meta")
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    assert common_device("x", a=nn.Linear(1, 1)) == torch.device("cpu")
    with pytest.raises(DeviceMismatchError, match="pairing needs its models on one device, got a on cpu, b on meta"):
        common_device("pairing", a=nn.Linear(1, 1), b=nn.Linear(1, 1, device="meta"))


def test_counts_take_the_noun_in_the_number_they_need():
    from stitchwork.utils.text import count

    assert [count(n, "job") for n in (0, 1, 2)] == ["0 jobs", "1 job", "2 jobs"]
    assert count(1, "matrix", "matrices") == "1 matrix" and count(3, "matrix", "matrices") == "3 matrices"
