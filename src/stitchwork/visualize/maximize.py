"""Activation maximisation: the input that most excites a channel at a named cut point.

Several channels are optimised together, one image per channel in one batch. Only the
image parameters are optimised (Adam); the model runs in eval mode, its parameters get no
gradient and its train/eval mode is restored. Everything is drawn from one seeded
generator, so the same seed gives the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from ..cut import front as front_of
from ..models.base import CutModel
from ..utils.modules import eval_mode, model_device
from .param import FourierImage, PixelRange
from .redirect import redirected_relu
from .target import ChannelError, Position, check_target, paired_values
from .transforms import Augment, augment


@dataclass(frozen=True)
class MaximizeSettings:
    """How to optimise: steps, Adam rate, seed, transforms and parameterisation.

    ``augment=None`` picks :meth:`Augment.for_size` for the image; ``decay=0`` is a plain
    pixel parameterisation; ``redirect_relu`` lets gradient wake channels that start dead
(see :mod:`.redirect`). Defaults follow the Lucid recipe (Adam 0.05, 512 steps).
    """

    steps: int = 512
    lr: float = 0.05
    seed: int = 0
    augment: Augment | None = None
    decay: float = 1.0
    init_std: float = 0.01
    redirect_relu: bool = True

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.decay < 0 or self.init_std < 0:
            raise ValueError(f"decay and init_std must be >= 0, got {self.decay!r}, {self.init_std!r}")


@dataclass
class Visualization:
    """Optimised images and what they achieved.

    Attributes
    ----------
    images
        ``(k, c, h, w)``: image ``i`` maximises ``channels[i]``, in model input units.
    channels
        The channel index of each image.
    activations
        ``(k,)``: the target channel's score on its untransformed image.
    history
        Mean target score over the batch at every step (on transformed images).
    """

    cut_point: str
    channels: list[int]
    position: Position
    images: torch.Tensor
    activations: torch.Tensor
    history: list[float] = field(default_factory=list)


def maximize(
    model: CutModel, cut_point: str, channels: Sequence[int], settings: MaximizeSettings | None = None,
    *, position: Position = None, pixel_range: PixelRange | None = None, colour: torch.Tensor | None = None,
) -> Visualization:
    """Optimise one image per channel to maximise that channel's score at ``cut_point``.

    Parameters
    ----------
    model
        Any :class:`CutModel` with image input ``(c, h, w)``; images have exactly that shape.
    channels
        Channels (conv cut points) or units (flat cut points) to visualise.
    position
        ``(y, x)`` to maximise one position of a conv channel instead of its mean.
    pixel_range, colour
        Input range and colour decorrelation matrix, e.g. from :func:`data_statistics`.
    """
    settings = settings or MaximizeSettings()
    if len(model.input_shape) != 3:
        raise ChannelError(
            f"feature visualization needs image input (c, h, w); this model takes {model.input_shape}"
        )
    check_target(model, cut_point, channels, position)
    device = model_device(model)
    gen = torch.Generator().manual_seed(int(settings.seed))
    aug = settings.augment or Augment.for_size(min(model.input_shape[1:]))
    image = FourierImage(
        len(channels), model.input_shape, pixel_range, colour, settings.decay, settings.init_std, gen
    ).to(device)
    target = torch.tensor([int(c) for c in channels], device=device)
    net = front_of(model, cut_point)
    history: list[float] = []
    with eval_mode(model):
        opt = torch.optim.Adam(image.parameters(), lr=settings.lr)
        for _ in range(settings.steps):
            with redirected_relu() if settings.redirect_relu else nullcontext():
                score = paired_values(net(augment(image(), aug, gen)), target, position)  # (k,)
            (grad,) = torch.autograd.grad(-score.sum(), [image.spectrum])
            image.spectrum.grad = grad
            opt.step()
            history.append(score.mean().item())
        with torch.no_grad():
            final = image()
            reached = paired_values(net(final), target, position)
    return Visualization(cut_point, [int(c) for c in channels], position, final.cpu(), reached.cpu(), history)


@torch.no_grad()
def score_images(
    model: CutModel, cut_point: str, images: torch.Tensor, channels: Sequence[int], position: Position = None
) -> torch.Tensor:
    """``(k,)`` score of ``channels[i]`` at ``cut_point`` on ``images[i]`` (eval mode, restored)."""
    check_target(model, cut_point, channels, position)
    if len(images) != len(channels):
        raise ValueError(f"{len(images)} images for {len(channels)} channels; need one per channel")
    with eval_mode(model):
        acts = front_of(model, cut_point)(images.to(model_device(model)))
        return paired_values(acts, torch.tensor(list(channels)), position).cpu()
