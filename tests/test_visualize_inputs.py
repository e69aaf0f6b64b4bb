"""Bad input is refused by name; parameterisation, transforms and ReLU redirection are exact."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from stitchwork.cut import UnknownCutPointError
from stitchwork.models import MLP, CutModel, Tiny10
from stitchwork.visualize import (
    Augment,
    ChannelError,
    FourierImage,
    MaximizeSettings,
    PixelRange,
    augment,
    data_statistics,
    maximize,
    top_examples,
)
from stitchwork.visualize.param import colour_sqrt
from stitchwork.visualize.redirect import redirected_relu


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Tiny10((1, 8, 8), 10, width=0.5).eval()


class Tokens(nn.Module):
    def forward(self, x):  # (n, c, h, w) -> (n, h*w, c): a sequence, no channel axis we know
        return x.flatten(2).transpose(1, 2)


def token_model() -> CutModel:
    stages = OrderedDict(tokens=Tokens(), head=nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    return CutModel(stages, (1, 8, 8))


@pytest.mark.parametrize("channels", [[8], [-1], [0, 99]])
def test_channel_out_of_range_is_refused_with_the_valid_range(tiny, channels):
    with pytest.raises(ChannelError, match=r"out of range .* valid 0\.\.7"):
        maximize(tiny, "conv1", channels, MaximizeSettings(steps=1))


def test_empty_channel_list_is_refused(tiny):
    with pytest.raises(ChannelError, match="no channels"):
        maximize(tiny, "conv1", [], MaximizeSettings(steps=1))


def test_cut_point_without_channel_axis_is_refused():
    with pytest.raises(ChannelError, match="no channel axis"):
        maximize(token_model(), "tokens", [0], MaximizeSettings(steps=1))


def test_position_on_a_flat_cut_point_is_refused(tiny):
    with pytest.raises(ChannelError, match="flat .* no spatial positions"):
        maximize(tiny, "pool", [0], MaximizeSettings(steps=1), position=(0, 0))
    with pytest.raises(ChannelError, match="off the 8×8 map"):
        maximize(tiny, "conv1", [0], MaximizeSettings(steps=1), position=(8, 0))


def test_unknown_cut_point_lists_the_valid_ones(tiny):
    with pytest.raises(UnknownCutPointError, match="valid cut points: conv1"):
        maximize(tiny, "head", [0], MaximizeSettings(steps=1))


def test_flat_input_model_is_refused():
    with pytest.raises(ChannelError, match="image input"):
        maximize(MLP((40,), 10, depth=2, width=8), "fc1", [0], MaximizeSettings(steps=1))


@pytest.mark.parametrize("bad", [{"steps": 0}, {"steps": -3}, {"steps": 2.5}, {"lr": 0.0}, {"decay": -1.0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        MaximizeSettings(**bad)


def test_top_examples_refuses_bad_k(tiny):
    batches = [(torch.zeros(3, 1, 8, 8), torch.zeros(3))]
    with pytest.raises(ValueError, match="k must be positive"):
        top_examples(tiny, "conv1", [0], batches, k=0)
    with pytest.raises(ValueError, match="holds only 3"):
        top_examples(tiny, "conv1", [0], batches, k=4)


def test_fourier_image_stays_in_range_and_is_seeded():
    rng = PixelRange((-1.0, 0.0, 2.0), (1.0, 5.0, 3.0))
    make = lambda seed: FourierImage(2, (3, 9, 12), rng, init_std=3.0,  # noqa: E731
                                     generator=torch.Generator().manual_seed(seed))()
    img = make(0)
    assert img.shape == (2, 3, 9, 12)
    for c in range(3):
        assert rng.low[c] <= img[:, c].min() and img[:, c].max() <= rng.high[c]
    assert torch.equal(img, make(0)) and not torch.equal(img, make(1))


def test_plain_parameterisation_is_pixels_through_the_sigmoid():
    # decay 0: flat spectrum, so the image is the orthonormal inverse FFT of the parameters
    image = FourierImage(1, (1, 6, 6), PixelRange((0.0,), (1.0,)), decay=0.0, init_std=1.0,
                         generator=torch.Generator().manual_seed(0))
    spec = torch.view_as_complex(image.spectrum.detach())
    want = torch.sigmoid(torch.fft.irfft2(spec, s=(6, 6), norm="ortho"))
    assert torch.allclose(image().detach(), want, atol=1e-6)


def test_colour_sqrt_squares_to_the_covariance_up_to_scale():
    a = torch.randn(3, 3, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(3, dtype=torch.float64)
    root = colour_sqrt(cov).double()
    ratio = (root @ root) / cov
    assert torch.allclose(ratio, ratio[0, 0].expand(3, 3), rtol=1e-4)
    assert root.norm(dim=0).max() == pytest.approx(1.0, abs=1e-6)


def test_data_statistics_range_is_the_data_min_and_max():
    x = torch.randn(20, 3, 4, 4)
    rng, colour = data_statistics([(x[:7], None), (x[7:], None)])
    assert rng.low == pytest.approx(x.amin(dim=(0, 2, 3)).tolist())
    assert rng.high == pytest.approx(x.amax(dim=(0, 2, 3)).tolist())
    pix = x.transpose(0, 1).reshape(3, -1).double()
    assert torch.allclose(colour, colour_sqrt(torch.cov(pix, correction=0)), atol=1e-5)


def test_augment_none_is_the_identity_and_others_keep_the_size():
    x = torch.randn(4, 3, 10, 10)
    assert torch.allclose(augment(x, Augment.none(), torch.Generator().manual_seed(0)), x, atol=1e-5)
    y = augment(x, Augment.for_size(10), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_redirected_relu_changes_only_dead_examples_gradients():
    x = torch.tensor([[-1.0, 2.0], [-3.0, -1.0]], requires_grad=True)
    with redirected_relu():
        y = nn.ReLU()(x) + torch.relu(x)
    assert torch.equal(y, 2 * x.detach().clamp_min(0))
    (-y.sum()).backward()
    # example 0 has a live unit: the usual gradient; example 1 is dead: gradient redirected
    assert torch.equal(x.grad, torch.tensor([[0.0, -2.0], [-2.0, -2.0]]))


def test_rgb_model_optimises_in_a_decorrelated_colour_space(tiny):
    torch.manual_seed(0)
    model = Tiny10((3, 8, 8), 10, width=0.5).eval()
    base = torch.randn(64, 1, 8, 8)
    x = torch.cat([base, base + 0.3 * torch.randn_like(base), -base], 1)  # strongly correlated colours
    rng, colour = data_statistics([(x, None)])
    assert colour[0, 2] < 0 < colour[0, 1]  # the square root keeps the correlations' signs
    vis = maximize(model, "conv3", [0, 1], MaximizeSettings(steps=30), pixel_range=rng, colour=colour)
    assert vis.images.shape == (2, 3, 8, 8)
    assert (vis.activations > torch.tensor(vis.history[0])).all()
