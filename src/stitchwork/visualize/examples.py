"""Dataset examples: the real inputs that most excite each channel, and channel selection.

The synthetic image says what a channel *could* respond to; the top-k test images say
what it does respond to in the data. Both stream over a loader once in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from ..cut import front as front_of
from ..models.base import CutModel
from ..utils.modules import eval_mode, model_device
from .target import Position, channel_values, check_target


@dataclass
class TopExamples:
    """The ``k`` inputs scoring highest on each channel, best first.

    Attributes
    ----------
    indices
        ``(n_channels, k)`` positions of the examples in the loader's order.
    scores
        ``(n_channels, k)`` the channel's score on each example.
    images
        ``(n_channels, k, c, h, w)`` the examples themselves.
    """

    cut_point: str
    channels: list[int]
    indices: torch.Tensor
    scores: torch.Tensor
    images: torch.Tensor


def _batches(model: CutModel, cut_point: str, batches: Iterable, position: Position):
    """Yield ``(x, (n, C) channel scores)`` for every batch, in eval mode (restored)."""
    net = front_of(model, cut_point)
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield x, channel_values(net(x.to(device)), position).cpu()


def top_examples(
    model: CutModel, cut_point: str, channels: Sequence[int], batches: Iterable, k: int = 9,
    position: Position = None,
) -> TopExamples:
    """The ``k`` examples of ``batches`` (e.g. the test loader, unshuffled) that most excite each channel."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k!r}")
    check_target(model, cut_point, channels, position)
    chans = torch.tensor(list(channels))
    best_s = best_i = best_x = None
    seen = 0
    for x, values in _batches(model, cut_point, batches, position):
        s = values[:, chans].T  # (n_channels, n)
        idx = torch.arange(seen, seen + len(x)).expand_as(s)
        imgs = x.unsqueeze(0).expand(len(chans), *x.shape)  # (n_channels, n, c, h, w)
        if best_s is not None:
            s, idx = torch.cat([best_s, s], 1), torch.cat([best_i, idx], 1)
            imgs = torch.cat([best_x, imgs], 1)
        top = s.topk(min(k, s.shape[1]), dim=1).indices  # (n_channels, k)
        best_s, best_i = s.gather(1, top), idx.gather(1, top)
        best_x = imgs[torch.arange(len(chans))[:, None], top]
        seen += len(x)
    if best_s is None:
        raise ValueError("top_examples got no data: the iterable of batches is empty")
    if best_s.shape[1] < k:
        raise ValueError(f"asked for the top {k} examples but the data holds only {seen}")
    return TopExamples(cut_point, chans.tolist(), best_i, best_s, best_x)


def top_variance_channels(
    model: CutModel, cut_point: str, batches: Iterable, k: int, position: Position = None
) -> list[int]:
    """The ``k`` channels whose score varies most over the data, highest variance first.

    Dead or constant channels make blank visualizations; high-variance channels are the
    ones the data actually drives.
    """
    shape = check_target(model, cut_point, [0], position)
    if not 0 < k <= shape[0]:
        raise ValueError(f"k must be in 1..{shape[0]} for cut point {cut_point!r}, got {k!r}")
    s1 = s2 = None
    n = 0
    for _, values in _batches(model, cut_point, batches, position):
        v = values.double()  # (n, C)
        s1 = v.sum(0) if s1 is None else s1 + v.sum(0)
        s2 = (v**2).sum(0) if s2 is None else s2 + (v**2).sum(0)
        n += len(v)
    if n == 0:
        raise ValueError("top_variance_channels got no data: the iterable of batches is empty")
    var = s2 / n - (s1 / n) ** 2
    return var.topk(k).indices.tolist()
