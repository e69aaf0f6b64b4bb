"""Image parameterisation for feature visualization: a scaled Fourier spectrum, colour
decorrelation for RGB, and a squash into the range of the model's own (normalised) inputs.

Optimising pixels directly gives high-frequency noise that excites a channel without
showing anything. Optimising the spectrum with each frequency scaled by ``1/f^decay``
equalises the gradient across frequencies (natural images have a ~``1/f`` spectrum), and
optimising in a decorrelated colour basis stops one colour axis from dominating (Olah et
al. 2017, Lucid). The image is finally squashed with a sigmoid into ``[low, high]`` per
channel: the range the model saw in training, in its own normalisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PixelRange:
    """Per-channel lowest and highest input value the model expects (normalised units)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if len(self.low) != len(self.high) or any(h <= lo for lo, h in zip(self.low, self.high, strict=True)):
            raise ValueError(f"pixel range needs low < high per channel, got low={self.low}, high={self.high}")

    @classmethod
    def symmetric(cls, channels: int, bound: float = 3.0) -> PixelRange:
        """``[-bound, bound]`` on every channel: a default for standardised inputs."""
        return cls((-float(bound),) * channels, (float(bound),) * channels)


@torch.no_grad()
def data_statistics(batches: Iterable) -> tuple[PixelRange, torch.Tensor]:
    """Pixel range and colour square root of a data set's inputs, in one pass.

    Returns
    -------
    PixelRange
        Per-channel min and max of the inputs.
    torch.Tensor
        ``(c, c)`` symmetric square root of the channel covariance, scaled so its largest
        column norm is 1 (identity for one channel): the colour decorrelation matrix.
    """
    lo = hi = None
    s1 = s2 = None
    n = 0
    for batch in batches:
        x = (batch[0] if isinstance(batch, (tuple, list)) else batch).double()
        pix = x.transpose(0, 1).reshape(x.shape[1], -1)  # (n, c, h, w) -> (c, n*h*w)
        lo = pix.min(1).values if lo is None else torch.minimum(lo, pix.min(1).values)
        hi = pix.max(1).values if hi is None else torch.maximum(hi, pix.max(1).values)
        s1 = pix.sum(1) if s1 is None else s1 + pix.sum(1)
        s2 = pix @ pix.T if s2 is None else s2 + pix @ pix.T
        n += pix.shape[1]
    if n == 0:
        raise ValueError("data_statistics got no data: the iterable of batches is empty")
    mean = s1 / n
    cov = s2 / n - torch.outer(mean, mean)
    return PixelRange(tuple(lo.tolist()), tuple(hi.tolist())), colour_sqrt(cov)


def colour_sqrt(cov: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a ``(c, c)`` colour covariance, largest column norm 1."""
    vals, vecs = torch.linalg.eigh(cov.double())
    root = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    return (root / root.norm(dim=0).max().clamp_min(1e-12)).float()


def spectrum_scale(h: int, w: int, decay: float) -> torch.Tensor:
    """``(h, w//2+1)`` weights ``1/max(f, 1/max(h,w))^decay``, mean square 1."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = (fy**2 + fx**2).sqrt().clamp_min(1.0 / max(h, w))
    scale = f.pow(-decay)
    return scale / scale.pow(2).mean().sqrt()


class FourierImage(nn.Module):
    """A batch of ``n`` images of shape ``(c, h, w)`` parameterised by their spectra.

    Parameters
    ----------
    n, shape
        Batch size and one image's ``(c, h, w)``.
    pixel_range
        Per-channel output range (default ``[-3, 3]``, for standardised inputs).
    colour
        ``(c, c)`` colour decorrelation matrix (see :func:`data_statistics`); identity
        when ``None``. Ignored-equivalent for one channel.
    decay
        Spectrum decay power; 0 gives a plain (white) pixel parameterisation.
    init_std
        Standard deviation of the initial spectrum coefficients.
    generator
        Seeds the initial spectrum.
    """

    def __init__(
        self, n: int, shape: Sequence[int], pixel_range: PixelRange | None = None,
        colour: torch.Tensor | None = None, decay: float = 1.0, init_std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        c, h, w = (int(s) for s in shape)
        pixel_range = pixel_range or PixelRange.symmetric(c)
        if len(pixel_range.low) != c:
            raise ValueError(f"pixel range has {len(pixel_range.low)} channels, the image {c}")
        colour = torch.eye(c) if colour is None else colour.float()
        if colour.shape != (c, c):
            raise ValueError(f"colour matrix must be ({c}, {c}), got {tuple(colour.shape)}")
        self.size = (h, w)
        spec = torch.randn((n, c, h, w // 2 + 1, 2), generator=generator) * init_std
        self.spectrum = nn.Parameter(spec)
        self.register_buffer("scale", spectrum_scale(h, w, decay))
        self.register_buffer("colour", colour)
        self.register_buffer("low", torch.tensor(pixel_range.low).view(1, c, 1, 1))
        self.register_buffer("high", torch.tensor(pixel_range.high).view(1, c, 1, 1))

    def forward(self) -> torch.Tensor:
        """The images, ``(n, c, h, w)``, in the model's input units."""
        spec = torch.view_as_complex(self.spectrum) * self.scale  # (n, c, h, w//2+1)
        x = torch.fft.irfft2(spec, s=self.size, norm="ortho")  # (n, c, h, w), decorrelated colours
        x = torch.einsum("dc,nchw->ndhw", self.colour, x)
        return self.low + (self.high - self.low) * torch.sigmoid(x)
