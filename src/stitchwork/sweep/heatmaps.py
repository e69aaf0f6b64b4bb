"""Layer × layer pictures of stitching sweeps, from the flat rows of :func:`.report.collect_results`.

A sweep whose jobs stitch *different* layers (front ≠ back somewhere) gives one front ×
back matrix per group of jobs; a sweep that only stitches a layer to the same layer gives
one group × layer matrix (a "profile"). Groups are the config values that vary across the
sweep besides the layer pair (matching method, seed of B, random front, ...). Failed jobs
are empty (grey) cells. :func:`stitching_heatmaps` and :func:`sanity_summary` are
``stitchwork-report`` figure entries ``(rows, out_dir) -> [png paths]``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.figures import new_figure, save_figure
from .identity import is_runtime_key
from .titles import DESCRIBED, comparison_title, flat_config

FRONT, BACK = "config.layer_pair.front", "config.layer_pair.back"
#: Row columns that never define a group (the layer pair itself; settings outside the job
#: identity are left out too, by :func:`.identity.is_runtime_key`).
NOT_GROUPING = (FRONT, BACK)
#: metric -> (colour map, higher is better)
METRICS = {"stitched_acc": ("viridis", True), "relative_acc": ("viridis", True),
           "dm_residual_test": ("magma_r", False), "dm_residual_fit": ("magma_r", False),
           "penalty": ("magma_r", False), "cka_stitched_target": ("viridis", True),
           "self_rank": ("viridis_r", False)}  # fmt: skip

#: metric -> human label with units (titles and colour bars)
LABELS = {"stitched_acc": "stitched accuracy (fraction)", "relative_acc": "relative accuracy (stitched / B)",
          "dm_residual_test": "DM residual, test (‖T(A)−B‖² / ‖B‖²)",
          "dm_residual_fit": "DM residual, fit (‖T(A)−B‖² / ‖B‖²)",
          "penalty": "stitching penalty (accuracy points)", "cka_stitched_target": "CKA(stitched, B)",
          "self_rank": "rank of the layer itself (1 = best)"}  # fmt: skip


@dataclass(frozen=True)
class LayerMatrix:
    """Values of one metric over (row label, column label) cells; NaN where no ok job."""

    title: str
    metric: str
    row_labels: list[str]
    col_labels: list[str]
    values: np.ndarray  # (rows, cols)
    row_axis: str = "front (A)"
    col_axis: str = "back (B)"
    higher_is_better: bool | None = None  # None: as METRICS says for ``metric`` (else higher)

    @property
    def better_higher(self) -> bool:
        """Whether a higher value is the better cell (for the best-cell markers)."""
        return METRICS.get(self.metric, ("", True))[1] if self.higher_is_better is None else self.higher_is_better


def stitch_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows of stitching jobs (``app == "stitch"`` with a layer pair)."""
    return [r for r in rows if r.get("app") == "stitch" and r.get(FRONT) is not None]


def group_keys(rows: Sequence[dict]) -> list[str]:
    """Config columns that vary across ``rows`` (layer pair excluded), redundant ones dropped.

    A key is redundant when a kept key determines it (``matching.epochs`` is fixed by
    ``matching._target_``); ``_target_`` keys and short names are kept first.
    """
    columns = sorted({k for r in rows for k in r if _groups(k)})
    varying = [k for k in columns if len({_key(r.get(k)) for r in rows}) > 1]
    varying.sort(key=lambda k: (-len({_key(r.get(k)) for r in rows}), not k.endswith("_target_"), len(k), k))
    kept: list[str] = []
    for key in varying:
        if not any(_determines(rows, other, key) for other in kept):
            kept.append(key)
    return sorted(kept)


def _groups(column: str) -> bool:
    """Whether a row column may define a group: a config key of the job identity, not the pair."""
    return column.startswith("config.") and not column.startswith(NOT_GROUPING) and not is_runtime_key(
        column.removeprefix("config.")
    )


def _determines(rows: Sequence[dict], a: str, b: str) -> bool:
    seen: dict = {}
    return all(seen.setdefault(_key(r.get(a)), _key(r.get(b))) == _key(r.get(b)) for r in rows)


def _key(value: object) -> object:
    return repr(value) if isinstance(value, (list, dict)) else value


def group_label(row: dict, keys: Sequence[str]) -> str:
    """``matching=task_loss, seed_b=1`` (``_target_`` values shortened to their last part)."""
    parts = []
    for key in keys:
        name, value = key.removeprefix("config."), row.get(key)
        if name.endswith("._target_"):
            name, value = name.removesuffix("._target_"), str(value).rsplit(".", 1)[-1]
        parts.append(f"{name}={value}")
    return ", ".join(parts) or "all jobs"


def split_groups(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Rows by :func:`group_label` over :func:`group_keys`, sorted by label."""
    keys, groups = group_keys(rows), {}
    for row in rows:
        groups.setdefault(group_label(row, keys), []).append(row)
    return dict(sorted(groups.items()))


def layer_order(rows: Sequence[dict], side: str) -> list[str]:
    """Cut points of side ``a`` (front) or ``b`` (back) in network order (``metrics.index_*``)."""
    column = FRONT if side == "a" else BACK
    index: dict[str, float] = {}
    for row in rows:
        position = row.get(f"metrics.index_{side}")
        known = index.get(row[column], math.inf)
        index[row[column]] = min(known, position if isinstance(position, (int, float)) else math.inf)
    first_seen = {name: i for i, name in enumerate(dict.fromkeys(r[column] for r in rows))}
    return sorted(index, key=lambda name: (index[name], first_seen[name]))


def _value(row: dict, metric: str) -> float:
    value = row.get(f"metrics.{metric}")
    return float(value) if row.get("status") == "ok" and isinstance(value, (int, float)) else math.nan


def layer_matrix(rows: Sequence[dict], metric: str, title: str = "") -> LayerMatrix:
    """Front layer × back layer matrix of ``metric`` (the last ok job wins a repeated cell)."""
    fronts, backs = layer_order(rows, "a"), layer_order(rows, "b")
    values = np.full((len(fronts), len(backs)), math.nan)
    for row in rows:
        value = _value(row, metric)
        if not math.isnan(value):
            values[fronts.index(row[FRONT]), backs.index(row[BACK])] = value
    return LayerMatrix(title, metric, fronts, backs, values)


def profile_matrix(groups: dict[str, list[dict]], metric: str, title: str = "") -> LayerMatrix:
    """Group × layer matrix of ``metric`` for same-layer sweeps (front = back)."""
    layers = layer_order([r for g in groups.values() for r in g], "a")
    values = np.full((len(groups), len(layers)), math.nan)
    for i, rows in enumerate(groups.values()):
        for row in rows:
            value = _value(row, metric)
            if not math.isnan(value):
                values[i, layers.index(row[FRONT])] = value
    return LayerMatrix(title, metric, list(groups), layers, values, row_axis="", col_axis="cut point (A = B)")


def is_same_layer(rows: Iterable[dict]) -> bool:
    """Whether every job stitches a cut point to the same-named cut point."""
    return all(r[FRONT] == r[BACK] for r in rows)


def sanity_ranks(matrix: LayerMatrix, higher_is_better: bool) -> list[dict]:
    """For each front layer i that B also has: the rank of B's layer i among the candidates j.

    Kornblith et al.'s sanity check as Balogh & Jelasity apply it to stitching: the layer
    corresponding to i should be the most similar one. ``self_rank`` is 1 + the number of
    candidates strictly better than i itself (ties do not push i down); NaN cells are no
    candidates, and a layer whose own cell is NaN gets ``self_rank`` None.
    """
    sign = 1.0 if higher_is_better else -1.0
    out = []
    for r, layer in enumerate(matrix.row_labels):
        if layer not in matrix.col_labels:
            continue
        row = sign * matrix.values[r]  # (cols,), higher is better now
        own = row[matrix.col_labels.index(layer)]
        finite = np.flatnonzero(~np.isnan(row))
        best = int(finite[np.argmax(row[finite])]) if len(finite) else None
        rank = None if math.isnan(own) else 1 + int((row[finite] > own).sum())
        out.append({"layer": layer, "metric": matrix.metric, "self_value": sign * own,
                    "best_layer": None if best is None else matrix.col_labels[best],
                    "best_value": None if best is None else sign * row[best],
                    "self_rank": rank, "self_first": rank == 1, "candidates": len(finite)})  # fmt: skip
    return out


def slug(text: str) -> str:
    """A file-name-safe version of a group label."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "all"


#: grids with more cells than this get no cell values (and smaller cells): text would be unreadable
MAX_VALUE_CELLS = 256


def draw_matrices(matrices: Sequence[LayerMatrix], path: Path, title: str = "", mark_best: bool = True) -> Path:
    """One PNG with a heatmap panel per matrix, ``title`` above them (what was compared).

    Empty cells are grey; cell values are written in 7-pt type on grids of up to
    :data:`MAX_VALUE_CELLS` cells and left out on larger ones (the axis label says so);
    ``mark_best`` marks each row's and column's best cell.
    """
    import matplotlib

    rows, cols = matrices[0].values.shape
    show_values = rows * cols <= MAX_VALUE_CELLS
    fig, places = _panel_grid(matrices[0], len(matrices), title, show_values, mark_best)
    for (ax_box, bar_box), m in zip(places, matrices, strict=True):
        ax, bar = fig.add_axes(ax_box), fig.add_axes(bar_box)
        cmap_name, _ = METRICS.get(m.metric, ("viridis", True))
        cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="0.85")
        data = np.ma.masked_invalid(m.values)
        # accuracies on [0, 1]; everything else (DM residuals: task-loss ones reach 1.4-2.7)
        # on the data's own range, so no cell saturates
        bounded = m.metric.endswith("acc") and np.nanmax(m.values, initial=0) <= 1
        vmin, vmax = (0.0, 1.0) if bounded else (None, None)
        image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        if mark_best:
            _mark_best(ax, m.values, m.better_higher)
        ax.set_xticks(range(len(m.col_labels)), m.col_labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(m.row_labels)), m.row_labels, fontsize=7)
        hidden = "" if show_values else f" ({rows}×{cols}: values in results.csv)"
        ax.set_xlabel(m.col_axis + hidden, fontsize=8)
        ax.set_ylabel(m.row_axis, fontsize=8)
        ax.set_title(LABELS.get(m.title, m.title) or LABELS.get(m.metric, m.metric), fontsize=9)
        if show_values:
            _write_values(ax, image, m.values)
        fig.colorbar(image, cax=bar).set_label(LABELS.get(m.metric, m.metric), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if mark_best:
        fig.supxlabel("red square: best cell of its row; blue dot: best cell of its column", fontsize=7)
    return save_figure(fig, path)


def _write_values(ax, image, values: np.ndarray) -> None:
    """Each finite cell's value (integers without decimals), white on dark cells."""
    finite = values[~np.isnan(values)]
    form = "{:.0f}" if np.array_equal(finite, np.round(finite)) else "{:.2f}"
    for (i, j), v in np.ndenumerate(values):
        if not math.isnan(v):
            ax.text(j, i, form.format(v), ha="center", va="center", fontsize=7, color="w" if _dark(image, v) else "k")


def _panel_grid(matrix: LayerMatrix, panels: int, title: str, show_values: bool = True,
                footnote: bool = False) -> tuple[object, list[tuple[list, list]]]:  # fmt: skip
    """A figure sized for ``panels`` heatmaps like ``matrix`` and each panel's heatmap and
    colour-bar boxes (figure fractions). Margins come from the label lengths, so the figure
    is drawn once (a layout engine would draw it twice to measure the text). Cells are
    smaller when their values are not written; ``footnote`` leaves room for a line below."""
    rows, cols = matrix.values.shape
    cell = 0.45 if show_values else 0.25  # inches per cell
    left = 0.45 + 0.07 * max(len(label) for label in matrix.row_labels)  # y label + tick text, inches
    bottom = 0.45 + 0.06 * max(len(label) for label in matrix.col_labels) + (0.25 if footnote else 0.0)
    top = 0.4 + (0.35 if title else 0.0)
    cell_w, cell_h = cell * max(cols, 4), 0.9 * cell * max(rows, 3)
    panel_w = left + cell_w + 1.0  # colour bar and its label to the right
    width = max(panel_w * panels, 0.065 * len(title))
    height = bottom + cell_h + top
    boxes = []
    for k in range(panels):
        x0 = k * panel_w + left
        boxes.append(([x0 / width, bottom / height, cell_w / width, cell_h / height],
                      [(x0 + cell_w + 0.12) / width, bottom / height, 0.12 / width, cell_h / height]))  # fmt: skip
    return new_figure((width, height)), boxes


def _mark_best(ax, values: np.ndarray, higher_is_better: bool) -> None:
    """A red square on the best cell of each row and a blue dot in the corner of the best cell
    of each column (for sanity: a layer should prefer itself, from either side)."""
    import matplotlib.patches
    best = np.nanargmax if higher_is_better else np.nanargmin
    for i, row in enumerate(values):
        if np.isfinite(row).any():
            j = int(best(row))
            ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.2))
    for j, column in enumerate(values.T):
        if np.isfinite(column).any():
            ax.plot([j + 0.32], [int(best(column)) - 0.32], marker="o", markersize=3, color="tab:blue", ls="")


def _dark(image, value: float) -> bool:
    r, g, b, _ = image.cmap(image.norm(value))
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def stitching_heatmaps(
    rows: Sequence[dict], out_dir: str | Path,
    metrics: Sequence[str] = ("stitched_acc", "relative_acc", "dm_residual_test"),
) -> list[Path]:  # fmt: skip
    """Report figure: per group a front × back heatmap PNG (panels: ``metrics``), or for
    same-layer sweeps one group × layer PNG, titled by what was compared
    (:func:`heatmap_title`). Returns the PNG paths ([] without stitch jobs)."""
    jobs, out = stitch_rows(rows), Path(out_dir)
    if not jobs:
        return []
    groups, keys = split_groups(jobs), group_keys(jobs)
    same = {label: g for label, g in groups.items() if is_same_layer(g)}
    paths = []
    if same:
        panels = [profile_matrix(same, m, title=m) for m in metrics]
        title = "same cut point in A and B — " + heatmap_title([r for g in same.values() for r in g], [])
        paths.append(draw_matrices(panels, out / "heatmap_same_layer.png", title))
    for label, group in groups.items():
        if label not in same:
            panels = [layer_matrix(group, m, title=m) for m in metrics]
            paths.append(draw_matrices(panels, out / f"heatmap_{slug(label)}.png", heatmap_title(group, keys)))
    return paths


def heatmap_title(rows: Sequence[dict], keys: Sequence[str]) -> str:
    """What a group of stitch rows compared (:func:`.titles.comparison_title`), plus the group's
    other varying settings ``keys`` that the comparison does not name (``stitch=bn_affine``)."""
    title = comparison_title([flat_config(r) for r in rows])
    rest = [k for k in keys if k.removeprefix("config.").split(".", 1)[0] not in DESCRIBED]
    return title + (f"; {group_label(rows[0], rest)}" if rest else "")


def sanity_summary(
    rows: Sequence[dict], out_dir: str | Path,
    metrics: Sequence[str] = ("stitched_acc", "dm_residual_test"),
) -> list[Path]:  # fmt: skip
    """Report figure: does front layer i rank B's layer i first, per group and metric?

    Writes ``sanity.csv`` (one line per group, metric and layer) and ``sanity.png`` (self rank
    per layer; 1 = the layer itself is the best candidate). Needs front × back sweeps; returns
    [] when there are none.
    """
    jobs, out = stitch_rows(rows), Path(out_dir)
    groups = {k: g for k, g in split_groups(jobs).items() if not is_same_layer(g)} if jobs else {}
    lines, records = [], []
    for label, group in groups.items():
        for metric in metrics:
            ranks = sanity_ranks(layer_matrix(group, metric), METRICS.get(metric, ("", True))[1])
            if ranks:
                lines.append((f"{label} | {metric}", ranks))
                records += [{"group": label, **r} for r in ranks]
    if not lines:
        return []
    _write_csv(records, out / "sanity.csv")
    layers = list(dict.fromkeys(r["layer"] for _, ranks in lines for r in ranks))
    values = np.full((len(lines), len(layers)), math.nan)
    for i, (_, ranks) in enumerate(lines):
        for r in ranks:
            values[i, layers.index(r["layer"])] = math.nan if r["self_rank"] is None else r["self_rank"]
    labels = [f"{name}: {sum(r['self_first'] for r in ranks)}/{len(ranks)} first" for name, ranks in lines]
    matrix = LayerMatrix("rank of B's layer i for A's layer i (1: best match)", "self_rank",
                         labels, layers, values, row_axis="", col_axis="layer i")  # fmt: skip
    compared = heatmap_title([r for g in groups.values() for r in g], [])
    return [draw_matrices([matrix], out / "sanity.png", f"sanity check — {compared}", mark_best=False)]


def _write_csv(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path
