"""The W&B / CSV mirror of a job. Never the source of truth: results.json is.

One logger per job; ``finish()`` always runs at job end (W&B otherwise reuses the run in
the next job of a sequential multirun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..utils.hashing import content_hash

LOGGER_KINDS = ("none", "csv", "wandb")


class JobLogger:
    """Metric, table and image logging for one job, plus the Lightning logger to hand a Trainer."""

    def __init__(self, kind: str, lightning_logger: Any = False, run: Any = None):
        self.kind, self.lightning, self.run = kind, lightning_logger, run

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.lightning and scalars:
            self.lightning.log_metrics(scalars, step=step)

    def log_images(self, images: dict[str, str | Path]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({name: wandb.Image(str(path)) for name, path in images.items()})

    def log_table(self, name: str, rows: list[dict]) -> None:
        if self.run is not None and rows:
            import wandb

            columns = list(rows[0])
            self.run.log({name: wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})

    def finish(self, exit_code: int = 0) -> None:
        if self.lightning and hasattr(self.lightning, "finalize"):
            self.lightning.finalize("success" if exit_code == 0 else "failed")
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def run_id(app: str, job_id: str, project: str, sweep: str) -> str:
    """W&B run id unique per (project, sweep, job), deterministic so a requeued job resumes.

    Two sweeps that compute the same job get two runs (never one merged history).
    """
    return f"{app}-{job_id}-{content_hash([project, sweep], length=6)}"


def open_logger(
    cfg: DictConfig,
    *,
    out_dir: Path,
    app: str,
    job_id: str,
    group: str,
    config: dict,
    name: str | None = None,
) -> JobLogger:
    """Open the logger that ``cfg.kind`` names (none | csv | wandb)."""
    kind = cfg.get("kind", "none")
    if kind not in LOGGER_KINDS:
        raise ValueError(f"unknown logger kind {kind!r}; valid: {', '.join(LOGGER_KINDS)}")
    if kind == "none":
        return JobLogger("none")
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return JobLogger("csv", CSVLogger(save_dir=str(out_dir), name="csv", version=""))
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    project = cfg.get("project", "stitchwork")
    run = wandb.init(
        project=project,
        entity=cfg.get("entity"),
        group=group,
        job_type=app,
        name=name or job_id,
        id=run_id(app, job_id, project, group),
        resume="allow",
        tags=[*cfg.get("tags", []), f"sweep:{group}"],
        config=config,
        dir=str(out_dir),
        mode=cfg.get("mode", "offline"),
        reinit="finish_previous",
    )
    return JobLogger("wandb", WandbLogger(experiment=run), run)
