"""``stitchwork-report``: collect the results.json files of sweeps into one table and figures.

stitchwork-report 'dirs=[multirun/stitch/default]'
stitchwork-report 'dirs=[multirun/stitch/a,multirun/stitch/b]' logger=wandb   # also to W&B
# logger=wandb also logs one run per finished job from its results.json (sync_jobs=false: not)
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..sweep.heatmaps import layer_matrix, slug, split_groups, stitch_rows
from ..sweep.html_report import write_html_report
from ..sweep.report import collect_results, write_jsonl, write_table
from ..utils.hashing import content_hash
from ..utils.text import count
from .config import to_plain
from .config_check import check_config
from .entry import hydra_entry
from .logging import open_logger
from .sync import sync_jobs
from .validate import UserError

log = logging.getLogger("stitchwork")
#: Metrics whose layer x layer matrices the W&B report run gets as tables.
MATRIX_METRICS = ("stitched_acc", "relative_acc", "dm_residual_test")


def task(cfg: DictConfig) -> dict:
    check_config(cfg)
    if not OmegaConf.is_list(cfg.dirs) or not cfg.dirs:
        raise UserError(
            f"dirs must be a list of one or more sweep folders, dirs=[path,...]; got {cfg.dirs!r}"
        )
    dirs = [Path(d) for d in cfg.dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise UserError(
            f"dirs: no such folder {', '.join(missing)}; give sweep folders, dirs=[multirun/<app>/<sweep>]"
        )
    out = Path(cfg.out) if cfg.out else dirs[0] / "report"
    rows, bad = collect_results(dirs)
    for path, reason in bad:
        log.warning("not counted as done: %s (%s)", path, reason)
    table = write_table(rows, out / "results.csv")
    write_jsonl(rows, out / "results.jsonl")
    figures: list[str] = []
    for figure in cfg.get("figures", []):
        figures += [str(p) for p in instantiate(figure)(rows, out)]
    page = write_html_report(rows, figures, out)
    counts = {
        s: sum(r["status"] == s for r in rows)
        for s in ("ok", "failed", "interrupted", "preempted", "running")
    }
    _export(cfg, out, rows, figures)
    states = (f"{counts['ok']} ok, {counts['failed']} failed, "
              f"{counts['interrupted'] + counts['preempted']} interrupted, {counts['running']} unfinished")  # fmt: skip
    jobs = len({r["path"] for r in rows})
    head = f"{count(jobs, 'job')} ({states})" if jobs == len(rows) else (
        f"{count(jobs, 'job')}, {count(len(rows), 'row')} (one per layer pair of a matrix job; {states})")
    print(f"{head} -> {table}; {len(bad)} unreadable; {len(figures)} figures in {out}; page {page}")
    return {
        "table": str(table),
        "rows": len(rows),
        "unreadable": len(bad),
        "figures": figures,
        **counts,
    }


def _export(cfg: DictConfig, out: Path, rows: list[dict], figures: list[str]) -> None:
    """Mirror the table and figures to the configured logger (W&B: one ``report`` run)."""
    if cfg.logger.get("kind", "none") != "wandb":
        return
    if cfg.get("sync_jobs", True):
        ids = sync_jobs(cfg.logger, [Path(d) for d in cfg.dirs], out)
        log.info(
            "synced %d finished jobs to W&B (offline files under %s/wandb_sync)", len(ids), out
        )
    name = "report-" + content_hash(sorted(str(d) for d in cfg.dirs), length=8)
    sweeps = sorted({str(r["config.sweep_name"]) for r in rows if r.get("config.sweep_name")})
    group = sweeps[0] if len(sweeps) == 1 else cfg.get("sweep_name", "report")  # the sweep's group
    logger = open_logger(
        cfg.logger,
        out_dir=out,
        app="report",
        job_id=name,
        group=group,
        config=to_plain(cfg, skip=("hydra",)),
    )
    try:
        logger.log_table("results", rows)
        for table, matrix_rows in matrix_tables(rows).items():
            logger.log_table(table, matrix_rows)
        logger.log_images({Path(f).stem: f for f in figures})
    finally:
        logger.finish()


def matrix_tables(
    rows: list[dict], metrics: tuple[str, ...] = MATRIX_METRICS
) -> dict[str, list[dict]]:
    """W&B tables of the front × back matrices: per sweep group and metric, one row per front."""
    tables = {}
    for label, group in split_groups(stitch_rows(rows)).items():
        for metric in metrics:
            m = layer_matrix(group, metric)
            tables[f"matrix/{metric}/{slug(label)}"] = [
                {"front (A)": front, **{f"back {b}": _cell(v) for b, v in zip(m.col_labels, values, strict=True)}}
                for front, values in zip(m.row_labels, m.values, strict=True)
            ]  # fmt: skip
    return tables


def _cell(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (no ok job) -> empty cell


main = hydra_entry("report", task)

if __name__ == "__main__":
    main()
