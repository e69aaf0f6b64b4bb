"""Collect the results.json files of one or more sweeps into one flat table."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .identity import is_runtime_key
from .records import RESULTS_FILE, ResultsError, read_results

log = logging.getLogger(__name__)


def flatten(obj: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested mappings to one level with dotted keys; lists become JSON-ish strings."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, sep))
        else:
            flat[name] = value
    return flat


def varying_columns(rows: Sequence[Mapping[str, Any]], prefix: str = "config.") -> list[str]:
    """The ``prefix`` columns whose values differ across ``rows`` (runtime keys left out)."""
    keys = sorted(
        {
            k
            for r in rows
            for k in r
            if k.startswith(prefix) and not is_runtime_key(k[len(prefix) :])
        }
    )
    return [k for k in keys if len({repr(r.get(k)) for r in rows}) > 1]


def collect_results(dirs: Iterable[str | Path]) -> tuple[list[dict], list[tuple[Path, str]]]:
    """One flat row per results.json under ``dirs``, plus the (path, reason) of unreadable ones.

    Row columns: ``path``, ``app``, ``identity``, ``status``, ``error``, ``config.*``,
    ``metrics.*`` (scalars only) and ``timings.*``.
    """
    rows, bad = [], []
    for root in dirs:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"sweep directory {str(root)!r} does not exist")
        for path in sorted(root.rglob(RESULTS_FILE)):
            try:
                record = read_results(path)
            except ResultsError as err:
                bad.append((path, str(err)))
                continue
            row = {"path": str(path.parent)}
            row.update({k: record.get(k) for k in ("app", "identity", "status", "error")})
            row.update(flatten(record.get("config", {}), "config"))
            metrics = {
                k: v
                for k, v in record.get("metrics", {}).items()
                if not isinstance(v, (list, dict))
            }
            row.update(flatten(metrics, "metrics"))
            row.update(flatten(record.get("timings", {}), "timings"))
            rows.extend(matrix_rows(record, row) if _is_matrix(record) else [row])
    return rows, bad


def _is_matrix(record: dict) -> bool:
    return isinstance(record.get("metrics", {}).get("pairs"), list)


def matrix_rows(record: dict, row: dict) -> list[dict]:
    """One row per pair of a matrix job, shaped like the row of a single-pair job.

    The job's row ``row`` is copied and given the pair's ``config.layer_pair.front`` /
    ``back``, its status (``ok``, ``skipped``, ``failed``; the reason goes to ``error``) and
    its scalar metrics, so tables and heatmaps treat a matrix job as a per-pair sweep; the job's
    own status stays in ``job_status``.
    """
    out = []
    for pair in record["metrics"]["pairs"]:
        pair_row = {k: v for k, v in row.items() if not k.startswith("metrics.")}
        pair_row.update({"config.layer_pair.front": pair["front"], "config.layer_pair.back": pair["back"],
                         "status": pair.get("status"), "error": pair.get("reason"), "matrix_job": row.get("identity"),
                         "job_status": row.get("status")})  # fmt: skip
        scalars = {
            k: v
            for k, v in pair.items()
            if not isinstance(v, (list, dict)) and k not in ("front", "back", "status", "reason")
        }
        pair_row.update(flatten(scalars, "metrics"))
        out.append(pair_row)
    return out


def write_table(rows: list[dict], path: str | Path) -> Path:
    """Write rows as CSV (union of columns, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return path


def _cell(value: Any) -> Any:
    return str(value) if isinstance(value, (list, tuple)) else value


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    """Write rows as JSON lines (one job per line; keeps numbers typed, unlike CSV)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, default=str) + "\n")
    return path
