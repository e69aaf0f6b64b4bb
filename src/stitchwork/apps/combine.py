"""``stitchwork-combine``: mode combinability, transitivity and robustness of aligned models.

    stitchwork-combine combine/sampler@sampler=bernoulli sampler.p=0.3 k=64
    stitchwork-combine mode=transitivity
    stitchwork-combine mode=robustness 'qs=[0,0.25,0.5,1]'
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from ..rebasin.apply import permute_model
from ..rebasin.combine import combine_states, mean_lambda, sample_lambdas
from ..rebasin.combine_eval import evaluate_combinations, post_process_states, summarize
from ..rebasin.robustness import fraction_grid, robustness_sweep
from ..rebasin.transitivity import transitivity
from ..sweep.rebasin_figures import plot_curves, plot_histograms
from ..sweep.titles import config_title
from .common import Job, run_job
from .config_check import check_config
from .endpoints import Endpoints, load_endpoints, match, post_process
from .entry import hydra_entry
from .tables import print_table
from .validate import user_errors

MODES = ("combinability", "transitivity", "robustness")


def _combinations(cfg: DictConfig, ends: Endpoints, a: nn.Module, b: nn.Module) -> dict:
    """Evaluate the K seeded combinations of A and ``b`` on the configured split."""
    sampler = instantiate(cfg.sampler)
    state_a, state_b = a.state_dict(), b.state_dict()
    lams = sample_lambdas(sampler, state_a, int(cfg.k), cfg.sample_seed)
    states = [combine_states(state_a, state_b, lam) for lam in lams]
    post = post_process(cfg, ends, a, b)
    if post is not None:
        states = post_process_states(a, states, post, [mean_lambda(lam, state_a) for lam in lams])
    loader = ends.data.loader(cfg.split, shuffle=False)
    return evaluate_combinations(a, states, loader, a, b, cfg.get("chunk_size"))


def combinability(job: Job, ends: Endpoints) -> dict:
    cfg = job.cfg
    a, b = ends.models["a"], ends.models["b"]
    aligned = permute_model(b, ends.spec, match(cfg, ends, a, b))
    metrics: dict = {"per_sample": {}}
    rows = []
    for label, other in (("aligned", aligned), ("naive", b)):
        result = _combinations(cfg, ends, a, other)
        per = result["per_sample"]
        metrics["per_sample"][label] = {m: v.tolist() for m, v in per.items()}
        metrics[f"{label}_pairwise_agreement"] = result["pairwise_agreement"]
        for m, v in per.items():
            for stat, value in summarize(v).items():
                metrics[f"{label}_{m}_{stat}"] = value
        rows.append((label, *(summarize(per[m])["mean"] for m in ("loss", "acc", "agree_a", "agree_b", "kl_a"))))
    print_table(f"{cfg.k} combinations ({cfg.sampler._target_.rsplit('.', 1)[-1]}), means on {cfg.split}",
                ("B", "loss", "acc", "agree A", "agree B", "KL(A‖θ)"), rows)
    samples = {label: v["loss"] for label, v in metrics["per_sample"].items()}
    path = plot_histograms(samples, job.out_dir / "combination_loss.png", "loss", config_title(job.record.config))
    job.logger.log_images({"combination_loss": str(path)})
    return metrics


def transitivity_mode(job: Job, ends: Endpoints) -> dict:
    cfg = job.cfg
    models = ends.models
    out = transitivity(
        models["a"], models["b"], models["c"], ends.spec, instantiate(cfg.matcher),
        {cfg.split: ends.data.loader(cfg.split, shuffle=False)}, ends.data.loader("train", shuffle=False),
        cfg.num_points, post_process(cfg, ends, models["a"], models["b"]),
    )
    out.pop("perms")
    metrics: dict = {"curves": {path: v["curve"] for path, v in out.items()}}
    for path, v in out.items():
        for quantity, kinds in v["barriers"].items():
            for kind, value in kinds.items():
                metrics[f"{path}_barrier_{quantity}_{kind}"] = value
    print_table("transitivity: loss barriers (max)", ("path", "barrier"),
                [(p, v["barriers"][f"{cfg.split}_loss"]["max"]) for p, v in out.items()])
    path = plot_curves(metrics["curves"], job.out_dir / "transitivity.png", config_title(job.record.config))
    job.logger.log_images({"transitivity": str(path)})
    return metrics


def robustness_mode(job: Job, ends: Endpoints) -> dict:
    cfg = job.cfg
    a, b = ends.models["a"], ends.models["b"]
    perm = match(cfg, ends, a, b)
    rows = robustness_sweep(
        a, b, ends.spec, perm, fraction_grid(cfg.qs), {cfg.split: ends.data.loader(cfg.split, shuffle=False)},
        instantiate(cfg.sampler), int(cfg.k), cfg.sample_seed, cfg.num_points,
        post_process(cfg, ends, a, b),
    )
    metrics: dict = {"rows": rows}
    for row in rows:
        metrics[f"q{row['q']:g}_barrier_{cfg.split}_loss_max"] = row["barriers"][f"{cfg.split}_loss"]["max"]
        metrics[f"q{row['q']:g}_combination_loss_mean"] = row["combination"]["loss"]["mean"]
    print_table("robustness to perturbed matchings", ("q", "moved", "loss barrier", "combination loss"),
                [(r["q"], r["moved"], r["barriers"][f"{cfg.split}_loss"]["max"], r["combination"]["loss"]["mean"])
                 for r in rows])
    return metrics


def check_settings(cfg: DictConfig) -> None:
    """Fail on bad settings before any model is trained or loaded."""
    check_config(cfg)
    with user_errors():
        _check_combine(cfg)


def _check_combine(cfg: DictConfig) -> None:
    instantiate(cfg.matcher)
    if cfg.mode not in MODES:
        raise ValueError(f"unknown mode {cfg.mode!r}; valid: {', '.join(MODES)}")
    if int(cfg.k) <= 0:
        raise ValueError(f"k (number of combinations) must be positive, got {cfg.k}")
    fraction_grid(cfg.qs)
    instantiate(cfg.sampler)


def combine_job(job: Job) -> dict:
    cfg = job.cfg
    check_settings(cfg)
    seeds = {"a": cfg.seed_a, "b": cfg.seed_b} | ({"c": cfg.seed_c} if cfg.mode == "transitivity" else {})
    ends = load_endpoints(cfg, seeds, job.device)
    body = {"combinability": combinability, "transitivity": transitivity_mode, "robustness": robustness_mode}
    return body[cfg.mode](job, ends)


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "combine", combine_job)


main = hydra_entry("combine", task)

if __name__ == "__main__":
    main()
