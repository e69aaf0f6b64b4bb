"""How strongly each model's channel responds to A's visualization of that channel.

"The merged channel keeps A's feature" becomes a number: feed A's optimised image for
channel ``c`` to every model, read channel ``c`` at the same cut point, and divide by A's
own response. 1 means the model's channel is driven by A's feature as strongly as A's;
about 0 means it ignores it. For B before alignment channel ``c`` is an arbitrary unit,
so its ratio is the baseline that alignment should beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..models.base import CutModel
from .maximize import score_images
from .target import Position


@dataclass
class ResponseTable:
    """Responses of every model to the reference model's visualizations, one row per channel.

    Attributes
    ----------
    channels
        The channel of each row.
    raw
        ``model name -> (n_channels,)`` score of the channel on its image.
    reference
        Name of the model whose images (and own response) everything is normalised to.
    """

    cut_point: str
    channels: list[int]
    raw: dict[str, torch.Tensor]
    reference: str

    def relative(self, name: str) -> torch.Tensor:
        """``(n_channels,)`` response of ``name`` divided by the reference's (NaN where that is <= 0)."""
        ref = self.raw[self.reference]
        return torch.where(ref > 0, self.raw[name] / ref.clamp_min(1e-30), torch.full_like(ref, math.nan))

    def rows(self) -> list[dict]:
        """One dict per channel: ``channel``, ``<model>`` (raw) and ``<model>_rel`` (relative)."""
        rel = {name: self.relative(name) for name in self.raw}
        out = []
        for i, c in enumerate(self.channels):
            row: dict = {"channel": c}
            for name in self.raw:
                row[name] = float(self.raw[name][i])
                row[f"{name}_rel"] = float(rel[name][i])
            out.append(row)
        return out

    def mean_relative(self) -> dict[str, float]:
        """Mean relative response of each model over channels (NaN rows skipped)."""
        return {name: float(self.relative(name).nanmean()) for name in self.raw}


def channel_responses(
    models: Mapping[str, CutModel], cut_point: str, images: torch.Tensor, channels: Sequence[int],
    position: Position = None, reference: str | None = None,
) -> ResponseTable:
    """Score ``channels[i]`` on ``images[i]`` in every model; normalise to ``reference``.

    Parameters
    ----------
    models
        ``name -> model``, all with the cut point and channel count; e.g. A, B, B permuted
        to A and the merged model.
    images
        ``(n_channels, c, h, w)``: usually the reference model's visualizations.
    reference
        Model to normalise to (default: the first in ``models``).
    """
    if not models:
        raise ValueError("channel_responses needs at least one model")
    reference = reference if reference is not None else next(iter(models))
    if reference not in models:
        raise ValueError(f"reference {reference!r} is not among the models {list(models)}")
    raw = {name: score_images(m, cut_point, images, channels, position) for name, m in models.items()}
    return ResponseTable(cut_point, [int(c) for c in channels], raw, reference)
