"""Mirror finished jobs to W&B from their results.json: one run per job, the same id on re-sync.

Jobs skipped as done (or run with ``logger=none``) never reached W&B; ``stitchwork-report
'dirs=[...]' logger=wandb`` logs each ``ok`` job from its record (config, summary metrics,
curves, the PNG figures of its folder) under the id :func:`~.logging.run_id` gives a live
run of the same job, so a re-sync resumes that run instead of adding one.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..sweep.report import flatten, varying_columns
from .logging import open_logger
from .multirun import job_records


def sync_jobs(logger_cfg: DictConfig, dirs: list[Path], out: Path) -> list[str]:
    """Log every ``ok`` job under ``dirs`` to W&B; return the run ids (offline files in ``out``)."""
    jobs = [job for d in dirs for job in job_records(d).values() if job[1].get("status") == "ok"]
    names = varying_names([record.get("config", {}) for _, record in jobs])
    ids = []
    for (folder, record), name in zip(jobs, names, strict=True):
        config = record.get("config", {})
        logger = open_logger(
            logger_cfg, out_dir=out / "wandb_sync" / record["identity"], app=record["app"],
            job_id=record["identity"], group=config.get("sweep_name", "default"), config=config,
            name=name,
        )  # fmt: skip
        try:
            _log_record(logger, folder, record)
            ids.append(logger.run.id)
        finally:
            logger.finish()
    return ids


def _log_record(logger, folder: Path, record: dict) -> None:
    metrics = record.get("metrics", {})
    for entry in metrics.get("history", []):
        logger.run.log({f"curve/{k}": v for k, v in entry.items() if k != "epoch"})
    scalars = {k: v for k, v in flatten({k: v for k, v in metrics.items() if not isinstance(v, list)}).items()
               if isinstance(v, (int, float, str, bool)) or v is None}  # fmt: skip
    logger.run.summary.update(scalars)
    logger.log_images({p.stem: p for p in sorted(folder.glob("*.png"))})


def varying_names(configs: list[dict]) -> list[str]:
    """Run names: each config's settings that differ across ``configs`` (runtime keys left out)."""
    flat = [flatten(c) for c in configs]
    varying = varying_columns(flat, prefix="")
    return [",".join(f"{k}={f.get(k)}" for k in varying) or "job" for f in flat]
