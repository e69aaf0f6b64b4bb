"""Random pad / jitter / scale / rotate, drawn afresh at every optimisation step.

Robustness to small geometric changes is what turns an adversarial pattern into a
readable feature (Olah et al. 2017). Everything happens at the model's own resolution:
pad the image, apply one random affine map per example (scale, rotation, translation by
up to ``jitter`` pixels) with bilinear resampling, and crop the centre back to ``h × w``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Strength of the random transforms; :meth:`for_size` scales them to an image size.

    Attributes
    ----------
    pad
        Pixels of reflection padding before the affine map (cropped away after it).
    jitter
        Largest translation in pixels, per axis.
    scale
        ``(low, high)`` range of the random zoom factor.
    degrees
        Largest rotation in degrees, either way.
    """

    pad: int = 2
    jitter: int = 2
    scale: tuple[float, float] = (0.9, 1.1)
    degrees: float = 10.0

    def __post_init__(self):
        if self.pad < 0 or self.jitter < 0 or self.degrees < 0:
            raise ValueError(f"pad, jitter and degrees must be >= 0, got {self}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {self.scale}")

    @classmethod
    def for_size(cls, size: int) -> Augment:
        """Defaults for ``size``-pixel images: pad and jitter ``size/16`` (at least 1 px)."""
        px = max(1, round(size / 16))
        return cls(pad=px, jitter=px)

    @classmethod
    def none(cls) -> Augment:
        """No transform at all (the identity)."""
        return cls(pad=0, jitter=0, scale=(1.0, 1.0), degrees=0.0)


def augment(images: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """One random transform per image: ``(n, c, h, w)`` -> ``(n, c, h, w)``, differentiable."""
    n, _, h, w = images.shape
    p = aug.pad
    x = F.pad(images, (p, p, p, p), mode="reflect") if p else images  # (n, c, h+2p, w+2p)
    H, W = h + 2 * p, w + 2 * p
    draw = torch.rand((n, 4), generator=generator, dtype=images.dtype).to(images.device)
    lo, hi = aug.scale
    s = lo + (hi - lo) * draw[:, 0]
    angle = math.radians(aug.degrees) * (2 * draw[:, 1] - 1)
    shift = aug.jitter * (2 * draw[:, 2:] - 1)  # (n, 2) pixels, (x, y)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    tx, ty = 2 * shift[:, 0] / W, 2 * shift[:, 1] / H  # pixels -> normalised coordinates
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (n, 2, 3)
    grid = F.affine_grid(theta, (n, images.shape[1], H, W), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return x[:, :, p : p + h, p : p + w]
