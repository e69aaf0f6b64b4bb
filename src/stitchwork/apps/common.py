"""What every app does: build data and models from config, get base models, run one job."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..data.base import ClassificationData, TrainSubsetError
from ..models.base import CutModel
from ..sweep.lock import JobLock, describe
from ..sweep.records import JobRecord, ResultsError, read_results, write_results
from ..sweep.signals import JobInterrupted, interruptible
from ..training import TrainRecipe, check_trainer_options, fit_classifier
from ..utils.distributed import is_main_process
from ..zoo import ModelZoo, ZooEntry, debug_options, model_identity
from .config import effective_config, job_id
from .config_tree import SweepTrees, wants_config_tree
from .failures import log_job_failure
from .logging import JobLogger, open_logger
from .multirun import sweep_run_name
from .quiet import quiet_console
from .validate import as_user_error, constructor_errors, user_errors

log = logging.getLogger("stitchwork")


def build_data(data_cfg: DictConfig) -> ClassificationData:
    """Instantiate a data module from its config (its constructor's ValueErrors name ``data.*``)."""
    with constructor_errors(data_cfg, "data"):
        return instantiate(data_cfg)


def build_model(model_cfg: DictConfig, data: ClassificationData) -> CutModel:
    """Instantiate a model for ``data``'s input shape and class count (ValueErrors name its key)."""
    with constructor_errors(model_cfg, "model"):
        return instantiate(model_cfg, input_shape=list(data.input_shape), num_classes=data.num_classes)


def trainer_options(trainer_cfg: DictConfig | None) -> dict[str, Any]:
    """Plain Lightning Trainer keyword arguments from ``conf/trainer``.

    ``devices`` defaults to 1 (Lightning's own default, ``auto``, depends on the machine) and
    ``trainer.max_epochs`` / ``trainer.precision`` are refused: the recipe sets them.
    """
    options = OmegaConf.to_container(trainer_cfg, resolve=True) if trainer_cfg is not None else {}
    with user_errors():
        check_trainer_options(options)
    return {"devices": 1, **options}


#: What the top-level ``device`` setting accepts (``N``: a CUDA device index).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(name: Any) -> torch.device:
    """The torch device that a job's ``device`` setting names.

    ``auto`` is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; ``cuda`` is the
    current CUDA device, with its index (so the record says which). Raises ``ValueError``
    for any other value or a CUDA index this machine lacks, and ``RuntimeError`` when CUDA
    is asked for but unavailable (both marked as the user's error: one paragraph, no traceback).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name) if isinstance(name, str) else None
    if match is None:
        raise as_user_error(ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICE_CHOICES)}"))
    if not torch.cuda.is_available():
        raise as_user_error(RuntimeError(
            f"device={name} asks for CUDA, but torch.cuda.is_available() is false here (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}); use device=cpu, or device=auto"
        ))
    index = int(match[1]) if match[1] is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise as_user_error(ValueError(
            f"device={name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        ))
    return torch.device("cuda", index)


def single_device_trainer_options(
    trainer_cfg: DictConfig | None, device: torch.device
) -> dict[str, Any]:
    """``conf/trainer`` options for a Lightning fit that is part of a job's own work, on ``device``.

    Task-loss stitch training is such a fit: it runs where the job runs (one device, no data
    parallelism), whatever ``trainer`` says for base-model training.
    """
    options = trainer_options(trainer_cfg)
    for key in ("strategy", "num_nodes", "sync_batchnorm"):
        options.pop(key, None)
    if device.type == "cuda":
        return {**options, "accelerator": "gpu", "devices": [device.index]}
    return {**options, "accelerator": "cpu", "devices": 1}


def get_base_model(
    model_cfg: DictConfig,
    data_cfg: DictConfig,
    recipe_cfg: DictConfig,
    seed: int,
    zoo_cfg: DictConfig,
    trainer_cfg: DictConfig | None = None,
    data: ClassificationData | None = None,
    logger: Any = False,
    device: torch.device | None = None,
) -> tuple[CutModel, ZooEntry]:
    """The trained base model that (model, data, recipe, seed, trainer) names, from the zoo or trained now.

    The trainer options that can change weights are part of the zoo key
    (:func:`stitchwork.zoo.model_identity`); all of them are recorded in ``metadata.json``.
    ``logger`` (a Lightning logger) receives the training curves when training happens.
    Training runs where ``trainer_cfg`` says; the model is returned on ``device`` (None: the
    CPU, where the zoo loads it). ``<zoo>/.partial/<key>/`` is removed once the model is stored.
    """
    data = data if data is not None else build_data(data_cfg)
    recipe = TrainRecipe.from_dict(OmegaConf.to_container(recipe_cfg, resolve=True))
    settings = trainer_options(trainer_cfg)
    try:  # a subset smaller than the class count is the user's error, found before the zoo is asked
        data.setup()
    except TrainSubsetError as err:
        as_user_error(err)
        raise
    identity = model_identity(
        OmegaConf.to_container(model_cfg, resolve=True),
        OmegaConf.to_container(data_cfg, resolve=True),
        recipe.to_dict(),
        seed,
        settings,
    )
    zoo = ModelZoo(zoo_cfg.get("root"))
    debug = debug_options(settings)

    def build() -> CutModel:
        import lightning as L

        L.seed_everything(seed, verbose=False)
        return build_model(model_cfg, data)

    partial = zoo.root / ".partial" / zoo.key(identity)  # resumable after preemption

    def train(net: CutModel) -> dict:
        log.info("training base model %s (seed %d) into zoo %s", model_cfg._target_, seed, zoo.root)
        if debug:
            log.warning("debug trainer options %s: this model gets its own zoo key, never served "
                        "to a request without them", debug)  # fmt: skip
        return fit_classifier(
            net, data, recipe, seed=seed, trainer_options=settings, checkpoint_dir=partial,
            logger=logger, corrupt_dir=zoo.root / ".corrupt",
        )

    on_corrupt = zoo_cfg.get("on_corrupt", "retrain")
    record = {"trainer": settings, "debug": bool(debug)}
    model, entry = zoo.get_or_train(identity, build, train, on_corrupt=on_corrupt, record=record)
    if is_main_process():
        shutil.rmtree(partial, ignore_errors=True)  # stored: nothing left to resume
    return (model.to(device) if device is not None else model), entry


def output_dir() -> Path:
    """This job's Hydra output folder (Hydra 1.3 does not chdir into it)."""
    return Path(HydraConfig.get().runtime.output_dir)


@dataclass
class Job:
    """What a job body receives: its folder, identity, logger, record and device.

    ``device`` is the resolved top-level ``device`` setting (None for apps without one).
    """

    cfg: DictConfig
    out_dir: Path
    identity: str
    logger: JobLogger
    record: JobRecord
    device: torch.device | None = None


def job_device(cfg: DictConfig) -> torch.device | None:
    """The device a job works on: its resolved ``device`` setting (None when it has none)."""
    return resolve_device(cfg.device) if "device" in cfg else None


def run_job(cfg: DictConfig, app: str, body: Callable[[Job], dict]) -> dict:
    """Run ``body`` as one recorded job and return its results record.

    The job holds the exclusive lock of its folder while it runs: a second process asking
    for the same job waits for the first, then skips it if it ended ``ok``. Skips (returning
    the stored record) when ``results.json`` says ``ok`` and ``force`` is false; a stale
    ``running`` record (its process is gone, since the lock was free) is redone. Otherwise
    writes ``running``, then ``ok`` with the metrics ``body`` returns, ``failed`` with the
    error (re-raised so Hydra reports it; sibling jobs of a multirun still run), or
    ``interrupted`` / ``preempted`` with the signal when SIGTERM, SIGINT or SIGUSR2 stops it
    (:class:`JobInterrupted` is re-raised: the app exits with 128 + the signal number). The
    logger always finishes. The resolved ``device`` is recorded as the metric ``device``.
    """
    quiet_console()  # again: a launcher may run this job in a fresh process
    out = output_dir()
    identity = job_id(cfg)
    if not is_main_process():  # other ranks of a data-parallel job compute, rank 0 records
        record = JobRecord(app, identity, {})
        return {"metrics": body(Job(cfg, out, identity, JobLogger("none"), record, job_device(cfg)))}
    with JobLock(out, on_wait=lambda holder: log.warning(
            "%s job %s is running in %s; waiting for it to end", app, identity, describe(holder))):
        previous = _previous_record(out)
        if previous is not None and previous["status"] == "ok" and not cfg.get("force", False):
            log.info("skipping %s job %s: %s/results.json is ok (force=true reruns)", app, identity, out)
            return previous
        if previous is not None and previous["status"] == "running":
            log.warning("%s job %s: the earlier run (%s) ended without a result; redoing it", app,
                        identity, describe(previous.get("process")))
        return _run_locked(cfg, app, identity, out, body)


def _previous_record(out: Path) -> dict | None:
    try:
        return read_results(out)
    except ResultsError:
        return None


def _run_locked(cfg: DictConfig, app: str, identity: str, out: Path, body: Callable[[Job], dict]) -> dict:
    config = effective_config(cfg)
    record = JobRecord(app=app, identity=identity, config=config)
    write_results(out, record)
    logger = open_logger(
        cfg.logger, out_dir=out, app=app, job_id=identity, group=cfg.get("sweep_name", "default"),
        config=config, name=_run_name(),
    )
    stop: JobInterrupted | None = None
    try:
        with interruptible():
            if wants_config_tree(cfg):
                SweepTrees.print(config, f"{app} job {identity}", _sweep_dir())
            device = job_device(cfg)
            if device is not None:
                log.info("%s job %s runs on %s", app, identity, device)
                record.metrics["device"] = str(device)
                write_results(out, record)
            metrics = body(Job(cfg, out, identity, logger, record, device))
            record.succeed(metrics)
            logger.log_metrics(metrics)
    except JobInterrupted as err:
        stop = err
        record.interrupt(err.name, requeued=err.will_requeue)
        log.error("%s job %s %s by %s", app, identity, record.status, err.name)
        raise
    except Exception as err:
        record.fail(err)
        log_job_failure(f"{app} job {identity} failed", err, record.error, _in_sweep(), log)
        raise
    finally:
        write_results(out, record)
        logger.finish(exit_code=0 if record.status == "ok" else 1)
        if stop is not None and stop.will_requeue:
            stop.hand_on()  # submitit requeues the job and exits
    return record.__dict__


def _in_sweep() -> bool:
    """Whether this job is part of a multirun (its failures are listed in the closing summary)."""
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _sweep_dir() -> str | None:
    """The sweep folder of a multirun job, else None."""
    return HydraConfig.get().sweep.dir if _in_sweep() else None


def _run_name() -> str | None:
    """The job's overrides that vary within its sweep, else its whole override string."""
    try:
        hydra = HydraConfig.get()
    except ValueError:
        return None
    sweep_dir = hydra.sweep.dir if hydra.mode == RunMode.MULTIRUN else None
    return sweep_run_name(list(hydra.overrides.task), sweep_dir) or hydra.job.override_dirname or None
