"""``stitchwork-stitch``: stitch the front of model A to the back of model B, fit, measure.

    stitchwork-stitch layer_pair.front=conv4 layer_pair.back=conv5 matching=task_loss
    stitchwork-stitch model@model_b=resnet20 layer_pair.back=layer2_0 stitch.resize=true
    stitchwork-stitch --multirun experiment=dm_vs_tlm

Both donors come from the zoo (trained there on first use), each with its own recipe, seed
and optional data overrides (``data_a``, ``data_b``); ``random_a=true`` uses an untrained A
(Bansal et al.'s control). Cut points and shapes are checked on untrained copies before any
base model is trained, so a bad layer pair fails in seconds with the valid names.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..data.base import ClassificationData
from ..models.base import CutModel
from ..stitching import build_stitched, resolve_stitch, stitch
from .common import (
    Job,
    build_data,
    build_model,
    get_base_model,
    run_job,
    single_device_trainer_options,
)
from .config_check import check_config
from .entry import hydra_entry
from .objective import check_objective
from .stitch_matrix import is_matrix, matrix_job
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")

#: Headline metrics printed at the end of a job.
SUMMARY = ("acc_a", "acc_b", "stitched_acc", "relative_acc", "penalty", "dm_residual_fit",
           "dm_residual_test", "dm_residual_centered_fit", "dm_residual_centered_test",
           "cka_stitched_target", "agreement_b", "kl_b", "ood_score")  # fmt: skip
#: What ``objective`` may name: the scalar metrics of a single-pair job worth optimising.
OBJECTIVES = (*SUMMARY, "ood_mahalanobis_stitched", "ood_mahalanobis_target")


def side_data_config(cfg: DictConfig, side: str) -> DictConfig:
    """``cfg.data`` with ``cfg.data_<side>`` merged in: the data that donor ``side`` trains on."""
    extra = cfg.get(f"data_{side}") or {}
    return OmegaConf.merge(cfg.data, extra) if extra else cfg.data


def donor(
    cfg: DictConfig, side: str, data: ClassificationData, device: torch.device
) -> tuple[CutModel, dict[str, Any]]:
    """Trained donor ``side`` (``a`` or ``b``) from the zoo, or an untrained A when ``random_a``.

    Either way on ``device``.
    """
    model_cfg, seed = cfg[f"model_{side}"], int(cfg[f"seed_{side}"])
    if side == "a" and cfg.get("random_a", False):
        L.seed_everything(seed, verbose=False)
        return build_model(model_cfg, data).to(device), {"zoo_key_a": None}
    data_cfg = side_data_config(cfg, side)
    own_data = data if data_cfg is cfg.data else None  # a subset etc. trains on its own module
    model, entry = get_base_model(
        model_cfg, data_cfg, cfg[f"recipe_{side}"], seed, cfg.zoo, cfg.trainer, data=own_data,
        device=device,
    )  # fmt: skip
    return model, {f"zoo_key_{side}": entry.key}


def matching_config(cfg: DictConfig) -> DictConfig:
    """``cfg.matching`` with ``cfg.matching_overrides[<method>]`` merged in.

    ``<method>`` is the last part of the matching ``_target_`` (``direct``, ``task_loss``, ...).
    One sweep over several methods can so give only the task-loss ones short epochs, e.g.
    ``matching_overrides: {task_loss: {epochs: 5}}``, without passing ``epochs`` to ``direct``.
    """
    method = str(cfg.matching.get("_target_", "")).rsplit(".", 1)[-1]
    extra = (cfg.get("matching_overrides") or {}).get(method)
    return OmegaConf.merge(cfg.matching, extra) if extra else cfg.matching


def check_pair(cfg: DictConfig, data: ClassificationData, stitch_factory: Any) -> None:
    """Fail fast on an unknown cut point or shapes the stitch cannot join (untrained copies)."""
    model_a, model_b = build_model(cfg.model_a, data), build_model(cfg.model_b, data)
    with user_errors():
        build_stitched(model_a, cfg.layer_pair.front, model_b, cfg.layer_pair.back, stitch_factory)


def stitch_job(job: Job) -> dict:
    cfg = job.cfg
    check_config(cfg)
    if is_matrix(cfg):
        check_objective(cfg, (), hint=" (a stitching matrix records matrices; sweep single pairs, "
                                      "layer_pair=same or default, to optimise one)")  # fmt: skip
        return matrix_job(job, donor, matching_config)
    check_objective(cfg, OBJECTIVES)
    data = build_data(cfg.data)
    with user_errors():
        stitch_factory = resolve_stitch(instantiate(cfg.stitch))
    check_pair(cfg, data, stitch_factory)
    model_a, keys_a = donor(cfg, "a", data, job.device)
    model_b, keys_b = donor(cfg, "b", data, job.device)
    front, back = cfg.layer_pair.front, cfg.layer_pair.back
    _, record = stitch(
        model_a, front, model_b, back, data, stitch=stitch_factory,
        matching=instantiate(matching_config(cfg)), seed=int(cfg.seed),
        trainer_options=single_device_trainer_options(cfg.trainer, job.device),
    )  # fmt: skip
    record.update(keys_a, **keys_b, index_a=model_a.cut_points.index(front),
                  index_b=model_b.cut_points.index(back), random_a=bool(cfg.get("random_a", False)))  # fmt: skip
    for entry in record.get("history", []):
        job.logger.log_metrics({f"curve/{k}": v for k, v in entry.items() if k != "epoch"},
                               step=int(entry.get("epoch", 0)))  # fmt: skip
    title = f"A {front} -> B {back}: {record['stitch']} stitch, {record['matching']} matching"
    print_table(title, ("metric", "value"), [(k, record[k]) for k in SUMMARY if k in record])
    return record


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "stitch", stitch_job)


main = hydra_entry("stitch", task)

if __name__ == "__main__":
    main()
