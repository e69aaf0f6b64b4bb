"""``stitchwork-rebasin``: align B to A, interpolate, report barriers, save permutation and merge.

    stitchwork-rebasin model=resnet20 data=cifar10 rebasin/matcher@matcher=activation post=bn_reset
    stitchwork-rebasin -m experiment=lmc_width
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hydra.utils import instantiate
from omegaconf import DictConfig

from ..rebasin import merge
from ..rebasin.apply import save_permutation
from ..rebasin.interpolate import curve_barriers, interpolation_curve
from ..training import evaluate
from ..utils.atomic import atomic_torch_save
from .common import Job, run_job
from .config_check import check_config
from .endpoints import align_endpoints, build_post, load_endpoints, post_process
from .entry import hydra_entry
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")


def check_settings(cfg: DictConfig) -> None:
    """Refuse bad settings (any key, the post-process, the matcher) before any model is trained."""
    check_config(cfg)
    with user_errors():
        instantiate(cfg.matcher)


def rebasin_job(job: Job) -> dict:
    cfg = job.cfg
    check_settings(cfg)
    ends = load_endpoints(cfg, {"a": cfg.seed_a, "b": cfg.seed_b}, job.device)
    a, b = ends.models["a"], ends.models["b"]
    alignment = align_endpoints(cfg, ends, a, b)
    save_permutation(alignment.perm, job.out_dir / "permutation.pt")
    aligned = alignment.aligned
    post = post_process(cfg, ends, a, aligned)
    loaders = {s: ends.data.loader(s, shuffle=False) for s in cfg.splits}
    curve = interpolation_curve(a, aligned, loaders, cfg.num_points, post)
    barriers = curve_barriers(curve)
    merged = merge(a, alignment, cfg.merge_lam, build_post(cfg.post, cfg.get("post_batches")),
                   ends.data.loader("train", shuffle=False))  # fmt: skip
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
