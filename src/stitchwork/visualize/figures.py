"""Comparison grids: one column per model, one row per channel, written as a PNG.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so
nothing touches pyplot's global state or the interactive backend; the PNG's pixel size
is exactly the figure size times ``dpi`` (no tight cropping), which tests rely on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..utils.figures import new_figure, save_figure


@dataclass(frozen=True)
class GridLayout:
    """What a grid figure holds: its file, rows × columns, labels and pixel size."""

    path: Path
    n_rows: int
    n_cols: int
    column_labels: tuple[str, ...]
    row_labels: tuple[str, ...]
    size_px: tuple[int, int]  # (width, height)


def to_display(image: torch.Tensor) -> torch.Tensor:
    """``(c, h, w)`` in any units -> ``(h, w)`` or ``(h, w, 3)`` in [0, 1] (min-max per image)."""
    x = image.detach().float().cpu()
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)


def tile(images: torch.Tensor, n_cols: int | None = None, gap: int = 1) -> torch.Tensor:
    """Mosaic of ``(k, c, h, w)`` images -> ``(c, H, W)``, gaps filled with the maximum value."""
    k, c, h, w = images.shape
    n_cols = n_cols or math.ceil(math.sqrt(k))
    n_rows = math.ceil(k / n_cols)
    out = images.new_full((c, n_rows * (h + gap) - gap, n_cols * (w + gap) - gap), float(images.max()))
    for i, img in enumerate(images):
        r, q = divmod(i, n_cols)
        out[:, r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = img
    return out


def comparison_grid(
    columns: Mapping[str, torch.Tensor], path: str | Path, row_labels: Sequence[str],
    title: str | None = None, notes: Mapping[str, Sequence[str]] | None = None,
    cell_inches: float = 1.4, dpi: int = 100,
) -> GridLayout:
    """Write a grid PNG: column ``name`` shows ``columns[name][i]`` in row ``i``.

    Parameters
    ----------
    columns
        ``model name -> (n_rows, c, h, w)`` images (visualizations, or mosaics of dataset
        examples from :func:`tile`); each cell is min-max scaled on its own.
    row_labels
        One label per row, e.g. ``"ch 7"``.
    notes
        Optional ``model name -> one short string per row`` printed under each cell
        (e.g. the relative response).
    """
    names = list(columns)
    if not names:
        raise ValueError("comparison_grid needs at least one column")
    n_rows = len(row_labels)
    for name, imgs in columns.items():
        if imgs.dim() != 4 or len(imgs) != n_rows:
            raise ValueError(f"column {name!r} must be (n_rows={n_rows}, c, h, w), got {tuple(imgs.shape)}")
    notes = notes or {}
    head, left, foot = 0.5 + (0.3 if title else 0.0), 0.6, 0.25 if notes else 0.05
    width, height = left + cell_inches * len(names), head + foot + cell_inches * n_rows
    fig = new_figure((width, height), dpi=dpi)
    axes = fig.subplots(n_rows, len(names), squeeze=False)
    fig.subplots_adjust(
        left=left / width, right=1 - 0.05 / width, top=1 - head / height, bottom=foot / height,
        wspace=0.08, hspace=0.25 if notes else 0.08,
    )
    for j, name in enumerate(names):
        for i in range(n_rows):
            ax = axes[i][j]
            ax.imshow(to_display(columns[name][i]).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if name in notes:
                ax.set_xlabel(notes[name][i], fontsize=7, labelpad=1)
        axes[0][j].set_title(name, fontsize=9)
    for i, label in enumerate(row_labels):
        axes[i][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    path = save_figure(fig, path, dpi=dpi)
    size = (round(width * dpi), round(height * dpi))
    return GridLayout(path, n_rows, len(names), tuple(names), tuple(row_labels), size)
