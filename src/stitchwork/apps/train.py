"""``stitchwork-train``: get (train or load) a base model from the zoo and report it.

    stitchwork-train model=resnet20 data=cifar10 seed=1
    stitchwork-train --multirun seed=0,1
"""

from __future__ import annotations

from omegaconf import DictConfig

from ..cut import cut_point_shapes
from .common import Job, build_data, get_base_model, run_job
from .config_check import check_config
from .entry import hydra_entry
from .tables import print_cut_points, print_table


def train_job(job: Job) -> dict:
    cfg = job.cfg
    check_config(cfg)
    data = build_data(cfg.data)
    model, entry = get_base_model(
        cfg.model, cfg.data, cfg.recipe, cfg.seed, cfg.zoo, cfg.trainer, data=data, logger=job.logger.lightning
    )
    metrics = dict(entry.metadata["metrics"])
    name = f"{cfg.model._target_.rsplit('.', 1)[-1]} seed={cfg.seed}"
    print_table(
        f"{name}: zoo entry {entry.key}",
        ("split", "accuracy", "loss"),
        [(s, metrics.get(f"{s}_acc", float("nan")), metrics.get(f"{s}_loss", float("nan"))) for s in ("train", "val", "test")],
    )
    print_cut_points(f"{name}: cut points for input {data.input_shape}", cut_point_shapes(model))
    return {**metrics, "zoo_key": entry.key, "zoo_path": str(entry.path)}


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "train", train_job)


main = hydra_entry("train", task)

if __name__ == "__main__":
    main()
