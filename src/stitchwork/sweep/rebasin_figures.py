"""Report figures of re-basin results: interpolation curves and combination histograms.

``plot_curves`` / ``plot_histograms`` draw one job's results; ``interpolation_figures``
and ``combination_histograms`` are ``stitchwork-report`` figure callables
``(rows, out_dir) -> paths`` that read each row's results.json.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..utils.figures import new_figure, save_figure
from .titles import comparison_title, flat_config


def plot_curves(curves: Mapping[str, Mapping], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy against λ, one line per (label, split), ``title`` above; saved to ``path``."""
    fig = new_figure((9, 3.5))
    axes = fig.subplots(1, 2)
    for label, curve in curves.items():
        for split in (s for s in curve if s != "lambda"):
            for ax, quantity in zip(axes, ("loss", "acc"), strict=True):
                ax.plot(curve["lambda"], curve[split][quantity], marker=".", label=f"{label} {split}")
    for ax, quantity in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("λ (0 = A, 1 = B)")
        ax.set_ylabel(quantity)
    axes[1].legend(fontsize="small")
    _title(fig, title)
    return save_figure(fig, path)


def plot_histograms(samples: Mapping[str, Sequence[float]], path: str | Path, xlabel: str, title: str = "") -> Path:
    """Overlaid histograms of per-combination values, one per label, ``title`` above; saved to ``path``."""
    fig = new_figure((5, 3.5))
    ax = fig.subplots()
    values = [np.asarray(v, dtype=float) for v in samples.values()]
    bins = np.histogram_bin_edges(np.concatenate(values), bins=20)
    for label, v in zip(samples, values, strict=True):
        ax.hist(v, bins=bins, alpha=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("combinations")
    ax.legend(fontsize="small")
    _title(fig, title)
    return save_figure(fig, path)


def _title(fig, title: str) -> None:
    """``title`` above the axes (wrapped to the figure's width), then a tight layout."""
    if title:
        width = int(fig.get_figwidth() * 14)  # characters of 9-pt text per line
        fig.suptitle(textwrap.fill(title, width), fontsize=9)
    fig.tight_layout()


def _records(rows: Sequence[Mapping], app: str) -> list[tuple[str, dict, str]]:
    """(job folder name, metrics, title) of each finished ``app`` job among ``rows``."""
    out = []
    for row in rows:
        if row.get("app") == app and row.get("status") == "ok":
            record = json.loads((Path(row["path"]) / "results.json").read_text())
            out.append((Path(row["path"]).name, record["metrics"], comparison_title([flat_config(record)])))
    return out


def interpolation_figures(rows: Sequence[Mapping], out_dir: str | Path) -> list[Path]:
    """One interpolation figure per finished ``stitchwork-rebasin`` job of a sweep."""
    return [
        plot_curves({name: metrics["curve"]}, Path(out_dir) / f"interpolation_{name}.png", title)
        for name, metrics, title in _records(rows, "rebasin")
    ]


def combination_histograms(rows: Sequence[Mapping], out_dir: str | Path, metric: str = "loss") -> list[Path]:
    """Aligned vs naive histograms of ``metric`` per finished combinability job."""
    paths = []
    for name, metrics, title in _records(rows, "combine"):
        if "per_sample" in metrics:
            samples = {label: v[metric] for label, v in metrics["per_sample"].items()}
            path = Path(out_dir) / f"combination_{metric}_{name}.png"
            paths.append(plot_histograms(samples, path, metric, title))
    return paths
