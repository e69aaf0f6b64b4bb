"""The body of a matrix stitch job (``layer_pair=matrix``): every (front, back) pair in one job.

    stitchwork-stitch layer_pair=matrix                                  # every cut point of A x B
    stitchwork-stitch layer_pair=matrix 'layer_pair.fronts=[conv2,conv4]' matching=task_loss

Cut points are checked on untrained copies before any base model is trained. Pair records
go to ``pairs/`` in the job folder as they complete, so a killed job resumes where it
stopped, and a larger matrix of the same settings in the same sweep folder reuses the pairs
a smaller one finished (a pair's result does not depend on the other pairs of its job:
tests/test_stitching_matrix.py); ``results.json`` gets ``metrics.pairs`` (one record per pair) and
``metrics.matrices.<metric>`` (rows: fronts, columns: backs), and the job folder the
heatmaps that ``stitchwork-report`` draws for per-pair sweeps (also logged to W&B).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from ..stitching import resolve_stitch
from ..stitching.matrix import matrices, stitch_matrix
from ..stitching.matrix_plan import check_cut_list
from ..sweep.heatmaps import stitching_heatmaps
from ..sweep.identity import matrix_family_id
from ..sweep.pair_records import clear_pair_records, read_pair_records, sibling_pair_records, write_pair_records
from ..sweep.records import write_results
from ..sweep.report import flatten, matrix_rows
from .common import Job, build_data, build_model
from .config import to_plain
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")


def is_matrix(cfg: DictConfig) -> bool:
    """Whether the job's layer pair is a matrix (``fronts`` and ``backs``)."""
    return "fronts" in cfg.layer_pair


def cut_names(value: Any, key: str) -> list[str]:
    """A list of cut point names from a list or a comma-separated string (``${sw_cut_points:...}``)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value]
    raise ValueError(f"{key} must be a list of cut point names (or a comma-separated string), got {value!r}")


def check_matrix(cfg: DictConfig, data) -> tuple[list[str], list[str], int]:
    """Fronts, backs and ``max_pairs_per_step``, checked on untrained copies of A and B."""
    model_a, model_b = build_model(cfg.model_a, data), build_model(cfg.model_b, data)
    fronts = check_cut_list(model_a, cut_names(cfg.layer_pair.fronts, "layer_pair.fronts"), "layer_pair.fronts")
    backs = check_cut_list(model_b, cut_names(cfg.layer_pair.backs, "layer_pair.backs"), "layer_pair.backs")
    step = cfg.layer_pair.get("max_pairs_per_step", 16)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise ValueError(f"layer_pair.max_pairs_per_step must be a positive integer, got {step!r}")
    return fronts, backs, step


def matrix_job(job: Job, donor, matching_config) -> dict:
    """Run the matrix; ``donor`` and ``matching_config`` are the stitch app's own helpers."""
    cfg = job.cfg
    data = build_data(cfg.data)
    with user_errors():
        factory = resolve_stitch(instantiate(cfg.stitch))
        fronts, backs, step = check_matrix(cfg, data)
    model_a, keys_a = donor(cfg, "a", data, job.device)
    model_b, keys_b = donor(cfg, "b", data, job.device)
    family = matrix_family_id(to_plain(cfg, skip=("hydra",)))
    done = _finished_pairs(job, family, fronts, backs)
    extra = {**keys_a, **keys_b, "random_a": bool(cfg.get("random_a", False))}

    def on_records(new: list[dict]) -> None:
        for record in new:
            record.update(extra)
        write_pair_records(job.out_dir, job.identity, new, family)
        job.record.metrics["pairs_done"] = job.record.metrics.get("pairs_done", len(done)) + len(new)
        write_results(job.out_dir, job.record)

    records = stitch_matrix(
        model_a, fronts, model_b, backs, data, stitch=factory, matching=instantiate(matching_config(cfg)),
        seed=int(cfg.seed), max_pairs_per_step=step, done=done, on_records=on_records,
    )  # fmt: skip
    metrics = {"fronts": fronts, "backs": backs, "pairs": records, "matrices": matrices(records, fronts, backs),
               "pairs_done": len(records), **extra}  # fmt: skip
    metrics.update({f"pairs_{s}": sum(r["status"] == s for r in records) for s in ("ok", "skipped", "failed")})
    start = time.perf_counter()
    _figures(job, cfg, metrics)
    metrics["figures_wall_s"] = time.perf_counter() - start  # inside the job's wall time, stated apart
    _print_summary(metrics, fronts, backs)
    return metrics


def _finished_pairs(job: Job, family: str, fronts: list[str], backs: list[str]) -> dict:
    """Pairs this job need not compute: its own finished ones, then those of its family's jobs."""
    if job.cfg.get("force", False):
        clear_pair_records(job.out_dir)
        return {}
    done = read_pair_records(job.out_dir, job.identity)
    total = len(fronts) * len(backs)
    if done:
        log.info("matrix job %s: %d of %d pairs already done, resuming", job.identity, len(done), total)
    borrowed = sibling_pair_records(job.out_dir, family, [(f, b) for f in fronts for b in backs if (f, b) not in done])
    if borrowed:
        write_pair_records(job.out_dir, job.identity, borrowed.values(), family)
        sources = ", ".join(sorted({r["reused_from"] for r in borrowed.values()}))
        log.info("matrix job %s: %d of %d pairs reused from job(s) %s of the same settings", job.identity,
                 len(borrowed), total, sources)  # fmt: skip
    return {**done, **borrowed}


def _figures(job: Job, cfg: DictConfig, metrics: dict) -> None:
    """The report's heatmaps of this job alone, in its folder and on its logger."""
    record = {"app": "stitch", "identity": job.identity, "status": "ok", "metrics": metrics}
    row = {"app": "stitch", "status": "ok", **flatten(job.record.config, "config")}  # titles read the config
    paths = stitching_heatmaps(matrix_rows(record, row), job.out_dir)
    job.logger.log_images({p.stem: p for p in paths})


def _print_summary(metrics: dict, fronts: list[str], backs: list[str]) -> None:
    counts = ", ".join(f"{metrics[f'pairs_{s}']} {s}" for s in ("ok", "skipped", "failed"))
    grid = metrics["matrices"]["stitched_acc"]
    rows = [(f, *("-" if v is None else f"{v:.3f}" for v in row)) for f, row in zip(fronts, grid, strict=True)]
    print_table(f"stitched accuracy, front (rows) x back (columns): {counts}", ("front", *backs), rows)
