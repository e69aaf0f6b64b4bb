"""``stitchwork-rebasin``: align B to A, interpolate, report barriers, save permutation and merge.

    stitchwork-rebasin model=resnet20 data=cifar10 rebasin/matcher@matcher=activation post=bn_reset
    stitchwork-rebasin -m experiment=lmc_width
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hydra.utils import instantiate
from omegaconf import DictConfig

from ..rebasin import Alignment, merge
from ..rebasin.apply import permute_model, save_permutation
from ..rebasin.interpolate import curve_barriers, interpolation_curve
from ..rebasin.weight_matching import best_candidate
from ..sweep.titles import config_title
from ..training import evaluate
from ..utils.atomic import atomic_torch_save
from .common import Job, run_job
from .config_check import check_config
from .endpoints import Endpoints, align_endpoints, build_post, load_endpoints, post_process
from .entry import hydra_entry
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")


def check_settings(cfg: DictConfig) -> None:
    """Refuse bad settings (any key, the post-process, the matcher) before any model is trained."""
    check_config(cfg)
    with user_errors():
        instantiate(cfg.matcher)


def _runs(cfg: DictConfig, ends: Endpoints, loaders: dict) -> list[dict]:
    """One aligned run per matching restart: alignment, curve, barriers (and seed, objective).

    Matchers without restarts give one run. Each run's post-process is built for its own π(B).
    """
    a, b = ends.models["a"], ends.models["b"]
    matcher = instantiate(cfg.matcher)
    if hasattr(matcher, "restart_candidates"):
        found = matcher.restart_candidates(a, b, ends.spec)
        for c in found:
            perm = c.pop("perm")
            c["alignment"] = Alignment(ends.spec, perm, permute_model(b, ends.spec, perm))
    else:
        found = [{"alignment": align_endpoints(cfg, ends, a, b)}]
    for run in found:
        post = post_process(cfg, ends, a, run["alignment"].aligned)
        run["curve"] = interpolation_curve(a, run["alignment"].aligned, loaders, cfg.num_points, post)
        run["barriers"] = curve_barriers(run["curve"])
    return found


def _flat(barriers: dict) -> dict:
    return {f"barrier_{q}_{kind}": v for q, kinds in barriers.items() for kind, v in kinds.items()}


def _endpoint_metrics(curve: dict) -> dict:
    """A's and B's loss and accuracy per split: original (``a_test_acc``) and post-processed (``..._post``)."""
    out: dict = {"barrier_endpoints": "original"}
    for split, values in ((s, v) for s, v in curve.items() if s != "lambda"):
        for q in ("loss", "acc"):
            for i, name in ((0, "a"), (-1, "b")):
                out[f"{name}_{split}_{q}"] = values["original_ends"][q][i]
                out[f"{name}_{split}_{q}_post"] = values[q][i]
    return out


def rebasin_job(job: Job) -> dict:
    cfg = job.cfg
    check_settings(cfg)
    ends = load_endpoints(cfg, {"a": cfg.seed_a, "b": cfg.seed_b}, job.device)
    a = ends.models["a"]
    loaders = {s: ends.data.loader(s, shuffle=False) for s in cfg.splits}
    runs = _runs(cfg, ends, loaders)
    best = best_candidate(runs) if "objective" in runs[0] else runs[0]  # the matcher's own choice
    alignment, curve, barriers = best["alignment"], best["curve"], best["barriers"]
    save_permutation(alignment.perm, job.out_dir / "permutation.pt")
    merged = merge(a, alignment, cfg.merge_lam, build_post(cfg.post, cfg.get("post_batches")),
                   ends.data.loader("train", shuffle=False))  # fmt: skip
    merged_state = {k: v.cpu() for k, v in merged.state_dict().items()}  # loadable without a GPU
    atomic_torch_save(job.out_dir / "merged.pt", merged_state)
    metrics: dict = _flat(barriers) | _endpoint_metrics(curve)
    for split, loader in loaders.items():
        metrics[f"merged_{split}_acc"] = evaluate(merged, loader)["acc"]
    if "objective" in best:
        metrics["restarts"] = [{"seed": r["seed"], "objective": r["objective"], **_flat(r["barriers"])} for r in runs]
    metrics |= {"num_perms": len(ends.spec.perms), "curve": curve}
    print_table(
        f"re-basin ({cfg.matcher._target_.rsplit('.', 1)[-1]}, post={cfg.post}): barriers "
        "(against the original endpoints)",
        ("quantity", "max", "midpoint", "linear"),
        [(q, v["max"], v["midpoint"], v["linear"]) for q, v in barriers.items()],
    )
    job.logger.log_images({"interpolation": _plot(curve, job.out_dir, config_title(job.record.config))})
    return metrics


def _plot(curve: dict, out_dir, title: str) -> str:
    from ..sweep.rebasin_figures import plot_curves

    return str(plot_curves({"aligned": curve}, out_dir / "interpolation.png", title))


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "rebasin", rebasin_job)


main: Callable[[], object] = hydra_entry("rebasin", task)

if __name__ == "__main__":
    main()
