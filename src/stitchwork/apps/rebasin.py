"""``stitchwork-rebasin``: align B to A, interpolate, report barriers, save permutation and merge.

    stitchwork-rebasin model=resnet20 data=cifar10 rebasin/matcher@matcher=activation post=bn_reset
    stitchwork-rebasin -m experiment=lmc_width
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from ..data.base import ClassificationData
from ..rebasin.apply import permute_model, save_permutation
from ..rebasin.builders import spec_for
from ..rebasin.interpolate import (
    curve_barriers,
    interpolate_models,
    interpolation_curve,
)
from ..rebasin.post import post_processor
from ..rebasin.spec import Permutation, PermutationSpec
from ..training import evaluate
from ..utils.atomic import atomic_torch_save
from .common import Job, build_data, get_base_model, run_job
from .entry import hydra_entry
from .tables import print_table

log = logging.getLogger("stitchwork")


@dataclass
class Endpoints:
    """Data, the base models by seed, and the spec they share."""

    data: ClassificationData
    models: dict[str, nn.Module]
    spec: PermutationSpec


def load_endpoints(cfg: DictConfig, seeds: dict[str, int], device: torch.device) -> Endpoints:
    """Set up the data; get each named base model (same model/data/recipe) from the zoo, on ``device``."""
    data = build_data(cfg.data)
    data.setup()
    models = {}
    for name, seed in seeds.items():
        model, _ = get_base_model(cfg.model, cfg.data, cfg.recipe, seed, cfg.zoo, cfg.trainer, data=data,
                                  device=device)  # fmt: skip
        models[name] = model.eval()
    return Endpoints(data, models, spec_for(models[next(iter(models))]))


def match(cfg: DictConfig, ends: Endpoints, fixed: nn.Module, permutee: nn.Module) -> Permutation:
    """Run the configured matcher (activation matchers read unshuffled training data)."""
    matcher = instantiate(cfg.matcher)
    return matcher(fixed, permutee, ends.spec, ends.data.loader("train", shuffle=False))


def post_process(cfg: DictConfig, ends: Endpoints, model_a: nn.Module, model_b: nn.Module):
    """The ``post`` option as a callable ``(model, lam) -> model`` (None for ``none``)."""
    loader = ends.data.loader("train", shuffle=False)
    return post_processor(cfg.post, model_a, model_b, ends.spec, loader, cfg.get("post_batches"))


def rebasin_job(job: Job) -> dict:
    cfg = job.cfg
    ends = load_endpoints(cfg, {"a": cfg.seed_a, "b": cfg.seed_b}, job.device)
    a, b = ends.models["a"], ends.models["b"]
    perm = match(cfg, ends, a, b)
    save_permutation(perm, job.out_dir / "permutation.pt")
    aligned = permute_model(b, ends.spec, perm)
    post = post_process(cfg, ends, a, aligned)
    loaders = {s: ends.data.loader(s, shuffle=False) for s in cfg.splits}
    curve = interpolation_curve(a, aligned, loaders, cfg.num_points, post)
    barriers = curve_barriers(curve)
    merged = interpolate_models(a, aligned, cfg.merge_lam)
    merged = post(merged, cfg.merge_lam) if post is not None else merged
    merged_state = {k: v.cpu() for k, v in merged.state_dict().items()}  # loadable without a GPU
    atomic_torch_save(job.out_dir / "merged.pt", merged_state)
    metrics: dict = {
        f"barrier_{quantity}_{kind}": value
        for quantity, kinds in barriers.items() for kind, value in kinds.items()
    }
    for split, loader in loaders.items():
        metrics[f"merged_{split}_acc"] = evaluate(merged, loader)["acc"]
        metrics[f"a_{split}_acc"], metrics[f"b_{split}_acc"] = curve[split]["acc"][0], curve[split]["acc"][-1]
    metrics |= {"num_perms": len(ends.spec.perms), "curve": curve}
    print_table(
        f"re-basin ({cfg.matcher._target_.rsplit('.', 1)[-1]}, post={cfg.post}): barriers",
        ("quantity", "max", "midpoint", "linear"),
        [(q, v["max"], v["midpoint"], v["linear"]) for q, v in barriers.items()],
    )
    job.logger.log_images({"interpolation": _plot(curve, job.out_dir)})
    return metrics


def _plot(curve: dict, out_dir) -> str:
    from ..rebasin.figures import plot_curves

    return str(plot_curves({"aligned": curve}, out_dir / "interpolation.png"))


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "rebasin", rebasin_job)


main: Callable[[], object] = hydra_entry("rebasin", task)

if __name__ == "__main__":
    main()
