"""``stitchwork-layers``: list a model's cut points with activation shapes for a data config.

    stitchwork-layers model=resnet20 data=cifar10
"""

from __future__ import annotations

from omegaconf import DictConfig

from ..cut import cut_point_shapes
from .common import build_data, build_model
from .config_check import check_config
from .entry import hydra_entry
from .tables import print_cut_points


def task(cfg: DictConfig) -> dict:
    check_config(cfg)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data)
    shapes = cut_point_shapes(model)
    print_cut_points(f"{cfg.model._target_} on input {data.input_shape}", shapes)
    return shapes


main = hydra_entry("layers", task)

if __name__ == "__main__":
    main()
