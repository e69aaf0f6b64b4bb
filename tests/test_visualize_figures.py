"""Grid figures: PNG on disk with the expected rows × columns and pixel size."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest
import torch

from stitchwork.visualize import comparison_grid, tile

MODELS = ("A", "B", "B→A", "merged")


def expected_px(n_rows, n_cols, cell, dpi, title, notes):
    # the layout formula of comparison_grid, written out independently
    head, left, foot = 0.5 + (0.3 if title else 0.0), 0.6, 0.25 if notes else 0.05
    return round((head + foot + cell * n_rows) * dpi), round((left + cell * n_cols) * dpi)


@pytest.mark.parametrize(("n_rows", "channels"), [(3, 1), (5, 3)])
def test_grid_png_has_rows_times_columns(tmp_path, n_rows, channels):
    columns = {m: torch.randn(n_rows, channels, 8, 8) for m in MODELS}
    notes = {m: [f"{0.1 * i:.2f}" for i in range(n_rows)] for m in MODELS[1:]}
    layout = comparison_grid(columns, tmp_path / "sub" / "grid.png", [f"ch {i}" for i in range(n_rows)],
                             title="conv3", notes=notes, cell_inches=1.0, dpi=50)
    assert (layout.n_rows, layout.n_cols) == (n_rows, 4)
    assert layout.column_labels == MODELS
    png = mpimg.imread(layout.path)
    assert png.shape[:2] == expected_px(n_rows, 4, 1.0, 50, True, True)
    assert png.shape[:2] == layout.size_px[::-1]
    # a 3×4 and a 4×3 grid differ in pixel size, so the size pins down rows and columns
    assert expected_px(3, 4, 1.0, 50, True, True) != expected_px(4, 3, 1.0, 50, True, True)


def test_grid_refuses_ragged_columns(tmp_path):
    with pytest.raises(ValueError, match=r"column 'B' must be \(n_rows=2"):
        comparison_grid({"A": torch.zeros(2, 1, 4, 4), "B": torch.zeros(3, 1, 4, 4)}, tmp_path / "g.png",
                        ["a", "b"])


def test_tile_places_every_image():
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    mosaic = tile(images, n_cols=3, gap=1)  # 2 rows × 3 columns of 2×2 tiles
    assert mosaic.shape == (1, 5, 8)
    assert torch.equal(mosaic[0, 3:5, 3:5], torch.full((2, 2), 4.0))
    assert torch.equal(mosaic[0, 0:2, 6:8], torch.full((2, 2), 2.0))
    assert mosaic[0, 2].eq(4.0).all()  # gaps carry the maximum value
