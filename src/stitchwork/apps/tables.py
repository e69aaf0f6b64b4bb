"""Console tables (rich) shared by the apps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a table with ``columns`` to stdout."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)


def print_cut_points(title: str, shapes: dict[str, tuple]) -> None:
    """Print a model's cut points with their activation shapes and sizes."""
    rows = []
    for i, (name, shape) in enumerate(shapes.items()):
        size = 1
        for s in shape:
            size *= s
        rows.append((i if name != "logits" else "-", name, "×".join(map(str, shape)), size))
    print_table(title, ("#", "cut point", "shape", "features"), rows)
