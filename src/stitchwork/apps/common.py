"""What every app does: build data and models from config, get base models, run one job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..data.base import ClassificationData
from ..models.base import CutModel
from ..sweep.records import JobRecord, is_done, read_results, write_results
from ..training import TrainRecipe, fit_classifier
from ..utils.distributed import is_main_process
from ..zoo import ModelZoo, ZooEntry, model_identity
from .config import job_id, to_plain
from .logging import JobLogger, open_logger

log = logging.getLogger("stitchwork")


def build_data(data_cfg: DictConfig) -> ClassificationData:
    """Instantiate a data module from its config."""
    return instantiate(data_cfg)


def build_model(model_cfg: DictConfig, data: ClassificationData) -> CutModel:
    """Instantiate a model for ``data``'s input shape and class count."""
    return instantiate(model_cfg, input_shape=list(data.input_shape), num_classes=data.num_classes)


def trainer_options(trainer_cfg: DictConfig | None) -> dict[str, Any]:
    """Plain Lightning Trainer keyword arguments from ``conf/trainer``."""
    return OmegaConf.to_container(trainer_cfg, resolve=True) if trainer_cfg is not None else {}


def get_base_model(
    model_cfg: DictConfig,
    data_cfg: DictConfig,
    recipe_cfg: DictConfig,
    seed: int,
    zoo_cfg: DictConfig,
    trainer_cfg: DictConfig | None = None,
    data: ClassificationData | None = None,
    logger: Any = False,
) -> tuple[CutModel, ZooEntry]:
    """The trained base model that (model, data, recipe, seed) names, from the zoo or trained now.

    ``logger`` (a Lightning logger) receives the training curves when training happens.
    """
    data = data if data is not None else build_data(data_cfg)
    recipe = TrainRecipe.from_dict(OmegaConf.to_container(recipe_cfg, resolve=True))
    identity = model_identity(
        OmegaConf.to_container(model_cfg, resolve=True),
        OmegaConf.to_container(data_cfg, resolve=True),
        recipe.to_dict(),
        seed,
    )
    zoo = ModelZoo(zoo_cfg.get("root"))

    def build() -> CutModel:
        import lightning as L

        L.seed_everything(seed, verbose=False)
        return build_model(model_cfg, data)

    partial = zoo.root / ".partial" / zoo.key(identity)  # resumable after preemption

    def train(net: CutModel) -> dict:
        log.info("training base model %s (seed %d) into zoo %s", model_cfg._target_, seed, zoo.root)
        return fit_classifier(
            net, data, recipe, seed=seed, trainer_options=trainer_options(trainer_cfg), checkpoint_dir=partial,
            logger=logger,
        )

    return zoo.get_or_train(identity, build, train, on_corrupt=zoo_cfg.get("on_corrupt", "retrain"))


def output_dir() -> Path:
    """This job's Hydra output folder (Hydra 1.3 does not chdir into it)."""
    return Path(HydraConfig.get().runtime.output_dir)


@dataclass
class Job:
    """What a job body receives: its folder, identity, logger and record."""

    cfg: DictConfig
    out_dir: Path
    identity: str
    logger: JobLogger
    record: JobRecord


def run_job(cfg: DictConfig, app: str, body: Callable[[Job], dict]) -> dict:
    """Run ``body`` as one recorded job and return its results record.

    Skips (returning the stored record) when ``results.json`` in the output folder says
    ``ok`` and ``force`` is false. Otherwise writes ``running``, then ``ok`` with the
    metrics ``body`` returns, or ``failed`` with the error (which is then re-raised so
    Hydra reports it; sibling jobs of a multirun still run). The logger always finishes.
    """
    out = output_dir()
    identity = job_id(cfg)
    if not is_main_process():  # other ranks of a data-parallel job compute, rank 0 records
        return {"metrics": body(Job(cfg, out, identity, JobLogger("none"), JobRecord(app, identity, {})))}
    if is_done(out) and not cfg.get("force", False):
        log.info("skipping %s job %s: %s/results.json is ok (force=true reruns)", app, identity, out)
        return read_results(out)
    config = to_plain(cfg, skip=("hydra",))
    record = JobRecord(app=app, identity=identity, config=config)
    write_results(out, record)
    logger = open_logger(
        cfg.logger, out_dir=out, app=app, job_id=identity, group=cfg.get("sweep_name", "default"),
        config=config, name=_run_name(),
    )
    try:
        metrics = body(Job(cfg, out, identity, logger, record))
        record.succeed(metrics)
        logger.log_metrics(metrics)
    except Exception as err:
        record.fail(err)
        log.error("%s job %s failed: %s", app, identity, record.error)
        raise
    finally:
        write_results(out, record)
        logger.finish(exit_code=0 if record.status == "ok" else 1)
    return record.__dict__


def _run_name() -> str | None:
    try:
        return HydraConfig.get().job.override_dirname or None
    except ValueError:
        return None
