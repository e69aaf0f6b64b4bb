"""One layer, several models: visualize the same channels in each, measure, and draw.

The models are typically A, B, B permuted to A and the merge of A and B-permuted; the
first model is the reference whose visualizations every model's response is measured on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.base import CutModel
from .examples import TopExamples, top_examples
from .figures import GridLayout, comparison_grid, tile
from .maximize import MaximizeSettings, Visualization, maximize
from .param import PixelRange
from .response import ResponseTable, channel_responses
from .target import Position


@dataclass
class Comparison:
    """Per-model visualizations and dataset examples of one layer's channels, and responses."""

    cut_point: str
    channels: list[int]
    visualizations: dict[str, Visualization]
    responses: ResponseTable
    examples: dict[str, TopExamples] | None = None


def compare_models(
    models: Mapping[str, CutModel], cut_point: str, channels: Sequence[int],
    settings: MaximizeSettings | None = None, *, position: Position = None,
    pixel_range: PixelRange | None = None, colour: torch.Tensor | None = None,
    batches: Iterable | None = None, k: int = 9,
) -> Comparison:
    """Visualize ``channels`` at ``cut_point`` in every model (same seed for each).

    ``batches`` (e.g. the unshuffled test loader) adds the top-``k`` dataset examples per
    model and channel; it is iterated once per model, so pass a loader, not a generator.
    """
    if not models:
        raise ValueError("compare_models needs at least one model")
    vis = {
        name: maximize(m, cut_point, channels, settings, position=position, pixel_range=pixel_range, colour=colour)
        for name, m in models.items()
    }
    reference = next(iter(models))
    responses = channel_responses(models, cut_point, vis[reference].images, channels, position, reference)
    examples = None
    if batches is not None:
        examples = {name: top_examples(m, cut_point, channels, batches, k, position) for name, m in models.items()}
    return Comparison(cut_point, [int(c) for c in channels], vis, responses, examples)


def comparison_figures(comparison: Comparison, out_dir: str | Path, title: str = "") -> dict[str, GridLayout]:
    """Write ``visualizations.png`` (and ``examples.png``) into ``out_dir``; return their layouts.

    Under every model but the reference, each cell notes the model's response to the
    reference's image of that channel, relative to the reference's own.
    """
    out_dir = Path(out_dir)
    rows = [f"ch {c}" for c in comparison.channels]
    table = comparison.responses
    notes = {
        name: [f"resp {r:.2f}" for r in table.relative(name).tolist()]
        for name in comparison.visualizations if name != table.reference
    }
    layouts = {
        "visualizations": comparison_grid(
            {name: v.images for name, v in comparison.visualizations.items()},
            out_dir / "visualizations.png", rows, title=f"{title} {comparison.cut_point}".strip(), notes=notes,
        )
    }
    if comparison.examples is not None:
        mosaics = {name: torch.stack([tile(imgs) for imgs in ex.images]) for name, ex in comparison.examples.items()}
        layouts["examples"] = comparison_grid(
            mosaics, out_dir / "examples.png", rows,
            title=f"top test images, {title} {comparison.cut_point}".strip(),
        )
    return layouts
