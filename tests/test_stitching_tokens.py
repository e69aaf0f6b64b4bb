"""Transformers: token activations (n, tokens, d) stitched token by token and compared."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stitchwork.cut import cut_outputs
from stitchwork.models import Tiny10, vit_tiny
from stitchwork.similarity.all_pairs import all_pairs
from stitchwork.stitching import stitch
from stitchwork.stitching.base import StitchShapeError
from stitchwork.stitching.tokens import TokenLinearStitch

BLOCK = "encoder_layers_encoder_layer_{}"


@pytest.fixture(scope="module")
def vits(digits):
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(vit_tiny(digits.input_shape, 10).eval())
    return nets


def test_direct_token_self_stitch_is_the_identity(digits, vits):
    a = vits[0]
    stitched, rec = stitch(a, BLOCK.format(1), a, BLOCK.format(1), digits, stitch=TokenLinearStitch,
                           matching_options={"ridge": 0.0})  # fmt: skip
    torch.testing.assert_close(stitched.stitch.weight, torch.eye(64), atol=1e-8, rtol=0)
    assert rec["dm_residual_fit"] < 1e-12 and rec["stitched_acc"] == rec["acc_a"]


def test_direct_token_fit_is_least_squares_over_every_token(digits, vits):
    """The fitted map equals numpy's affine least squares over the n · tokens rows."""
    a, b = vits
    stitched, _ = stitch(a, BLOCK.format(1), b, BLOCK.format(2), digits, stitch=TokenLinearStitch,
                         matching_options={"ridge": 0.0})  # fmt: skip
    x = torch.stack([digits.train_set[i][0] for i in range(len(digits.train_set))])
    with torch.no_grad():
        acts = cut_outputs(a, x, [BLOCK.format(1)])[BLOCK.format(1)]
        target = cut_outputs(b, x, [BLOCK.format(2)])[BLOCK.format(2)]
    X = acts.reshape(-1, 64).double().numpy()  # (n*t, d)
    Y = target.reshape(-1, 64).double().numpy()
    coef, *_ = np.linalg.lstsq(np.hstack([X, np.ones((len(X), 1))]), Y, rcond=None)
    np.testing.assert_allclose(stitched.stitch.weight.detach().double().numpy(), coef[:-1].T, atol=1e-4)
    np.testing.assert_allclose(stitched.stitch.bias.detach().double().numpy(), coef[-1], atol=1e-4)


def test_a_channel_stitch_on_tokens_names_the_stitch_to_use(digits, vits):
    with pytest.raises(StitchShapeError, match=r"\(5, 64\) -> \(5, 64\) holds token activations.*stitch=token_linear"):
        stitch(vits[0], BLOCK.format(1), vits[1], BLOCK.format(2), digits)
    with pytest.raises(StitchShapeError, match=r"token_linear' maps token activations .*\(32, 4, 4\).*flatten_linear"):
        stitch(Tiny10(digits.input_shape, 10), "conv4", vits[1], BLOCK.format(2), digits, stitch=TokenLinearStitch)


def _linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return float(np.linalg.norm(X.T @ Y) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


@pytest.mark.parametrize("spatial", ["cls", "mean_tokens", "flatten"])
def test_all_pairs_on_tokens_equals_numpy_cka_of_the_policy(digits, vits, spatial):
    a, b = vits
    loader = digits.loader("test", batch_size=128, shuffle=False)
    result = all_pairs(a, b, loader, cut_points_a=[BLOCK.format(0), BLOCK.format(3)],
                       cut_points_b=[BLOCK.format(2)], measures=["linear_cka"], spatial=spatial)  # fmt: skip
    x = torch.cat([batch[0] for batch in loader])
    with torch.no_grad():
        outs_a = cut_outputs(a, x, [BLOCK.format(0), BLOCK.format(3)])
        y = cut_outputs(b, x, [BLOCK.format(2)])[BLOCK.format(2)]
    policy = {"cls": lambda t: t[:, 0], "mean_tokens": lambda t: t.double().mean(1), "flatten": lambda t: t.reshape(len(t), -1)}[spatial]  # fmt: skip
    for i, name in enumerate([BLOCK.format(0), BLOCK.format(3)]):
        expected = _linear_cka(policy(outs_a[name]).double().numpy(), policy(y).double().numpy())
        assert result["linear_cka"][i, 0].item() == pytest.approx(expected, abs=1e-9)
