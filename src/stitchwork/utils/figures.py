"""One way to make and save figures: a bare Agg Figure, never pyplot.

No global backend switch, no figure registry to leak, the same on a laptop, a headless
cluster node or inside a notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(figsize: tuple[float, float], **kwargs: Any):
    """A ``matplotlib.figure.Figure`` with an Agg canvas attached (``dpi``, ``layout`` ... pass through)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path, dpi: float = 120) -> Path:
    """Save ``fig`` as ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
