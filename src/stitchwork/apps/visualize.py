"""``stitchwork-visualize``: feature visualization of A, B, B permuted to A, and their merge.

    stitchwork-visualize                                    # tiny10 on digits, layer conv6
    stitchwork-visualize layer=conv4 channels=[0,3,7] visualize=quick merge=repair

Gets both endpoints from the zoo (trained if missing), aligns B to A with the configured
matcher, merges at ``lam`` with BN reset or REPAIR, visualizes the chosen channels of the
layer in all four models, and writes ``visualizations.png``, ``examples.png``,
``visualizations.pt`` and ``results.json`` (images also go to W&B when logging there).
"""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..models.base import CutModel
from ..rebasin import align, merge
from ..training import evaluate
from ..utils.atomic import atomic_torch_save
from ..visualize import (
    Augment,
    MaximizeSettings,
    check_target,
    compare_models,
    comparison_figures,
    data_statistics,
    top_variance_channels,
)
from .common import Job, build_data, build_model, get_base_model, run_job
from .config_check import check_config
from .endpoints import build_post
from .entry import hydra_entry
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")


def settings_from(cfg: DictConfig) -> MaximizeSettings:
    """``conf/visualize`` as :class:`MaximizeSettings`."""
    values = OmegaConf.to_container(cfg, resolve=True)
    aug = values.pop("augment", None)
    if aug is not None:
        aug = Augment(**{**aug, "scale": tuple(aug.get("scale", (0.9, 1.1)))})
    return MaximizeSettings(augment=aug, **values)


def check_request(cfg: DictConfig, model: CutModel, position) -> None:
    """Refuse a bad layer, channel list, position or merge before any model is trained."""
    build_post(cfg.merge)  # an unknown name fails here, naming the valid ones
    if cfg.channels == "top_variance":
        n = check_target(model, cfg.layer, [0], position)[0]
        if not 0 < int(cfg.num_channels) <= n:
            raise ValueError(f"num_channels must be in 1..{n} for layer {cfg.layer!r}, got {cfg.num_channels!r}")
    elif isinstance(cfg.channels, str) or not OmegaConf.is_list(cfg.channels):
        raise ValueError(f"channels must be a list of indices or 'top_variance', got {cfg.channels!r}")
    else:
        check_target(model, cfg.layer, list(cfg.channels), position)


def choose_channels(cfg: DictConfig, model: CutModel, position, test_loader) -> list[int]:
    """The configured channel list, or A's ``num_channels`` most variable channels."""
    if cfg.channels == "top_variance":
        return top_variance_channels(model, cfg.layer, test_loader, int(cfg.num_channels), position)
    return [int(c) for c in cfg.channels]


def endpoints_and_merge(
    cfg: DictConfig, data, device: torch.device
) -> tuple[dict[str, CutModel], dict]:
    """A, B, B permuted to A and the merge (column order, on ``device``); B's matched units."""

    def get(seed: int) -> CutModel:
        return get_base_model(cfg.model, cfg.data, cfg.recipe, seed, cfg.zoo, cfg.trainer, data=data,
                              device=device)[0]  # fmt: skip

    model_a, model_b = get(cfg.seed_a).eval(), get(cfg.seed_b).eval()
    train = data.loader("train", shuffle=False)
    alignment = align(model_a, model_b, instantiate(cfg.matcher), train)
    aligned, perm = alignment.aligned.eval(), alignment.perm
    merged = merge(model_a, alignment, float(cfg.lam), build_post(cfg.merge), train)
    models = {"A": model_a, "B": model_b, "B→A": aligned, f"merged ({cfg.merge})": merged.eval()}
    return models, {"permutation": perm.get(cfg.layer)}


def visualize_job(job: Job) -> dict:
    cfg = job.cfg
    check_config(cfg)
    data = build_data(cfg.data)
    data.setup()
    position = tuple(cfg.position) if cfg.position is not None else None
    model = build_model(cfg.model, data)
    with user_errors():
        check_request(cfg, model, position)
    models, matched = endpoints_and_merge(cfg, data, job.device)
    test = data.loader("test", shuffle=False)
    channels = choose_channels(cfg, models["A"], position, test)
    pixel_range, colour = data_statistics(data.loader("train", shuffle=False))
    comparison = compare_models(
        models, cfg.layer, channels, settings_from(cfg.visualize), position=position,
        pixel_range=pixel_range, colour=colour, batches=test if cfg.examples > 0 else None, k=int(cfg.examples or 1),
    )
    name = cfg.model._target_.rsplit(".", 1)[-1]
    layouts = comparison_figures(comparison, job.out_dir, title=name)
    atomic_torch_save(job.out_dir / "visualizations.pt", {
        "channels": channels, "layer": cfg.layer,
        "images": {n: v.images for n, v in comparison.visualizations.items()},
    })
    rows = comparison.responses.rows()
    if matched["permutation"] is not None:
        for row in rows:
            row["B_unit_matched"] = int(matched["permutation"][row["channel"]])
    job.logger.log_images({k: layout.path for k, layout in layouts.items()})
    job.logger.log_table("responses", rows)
    acc = {n: evaluate(m, test)["acc"] for n, m in models.items()}
    mean_rel = comparison.responses.mean_relative()
    print_table(f"{name} {cfg.layer}: response to A's visualizations (relative to A)",
                ("model", "test acc", "mean relative response"),
                [(n, acc[n], mean_rel[n]) for n in models])
    return {
        "channels": channels,
        "responses": rows,
        **{f"acc/{n}": a for n, a in acc.items()},
        **{f"mean_relative_response/{n}": r for n, r in mean_rel.items()},
        "activations": {n: v.activations.tolist() for n, v in comparison.visualizations.items()},
        "figures": {k: str(layout.path) for k, layout in layouts.items()},
    }


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "visualize", visualize_job)


main = hydra_entry("visualize", task)

if __name__ == "__main__":
    main()
