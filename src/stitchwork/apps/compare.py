"""``stitchwork-compare``: similarity of every layer pair of two base models, in one pass.

    stitchwork-compare                                   # tiny10 seed 0 vs seed 1 on digits
    stitchwork-compare seed_b=0                          # A against itself
    stitchwork-compare model@model_b=resnet20 similarity=all cut_points_b=[layer1_2,layer3_2]

Both models come from the zoo (trained there on first use), each with its own recipe and
seed; identical identities are one model run once. Measures, cut points and the spatial
policy are checked on untrained copies first, so a bad request fails in seconds. Writes one
matrix per measure (rows: A's cut points, columns: B's) to results.json and one heatmap PNG
per measure beside it (drawn by ``stitchwork.sweep.heatmaps``), with Kornblith et al.'s sanity
check (is A's layer i most similar to B's layer i?), and mirrors them to the logger.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..similarity import Measure, SimilarityInputError
from ..similarity.all_pairs import SimilarityMatrices, all_pairs, check_all_pairs
from ..sweep.heatmaps import LayerMatrix, draw_matrices, sanity_ranks
from ..sweep.titles import config_title
from .common import Job, build_data, build_model, get_base_model, run_job
from .config import instantiate_named
from .config_check import check_config
from .entry import hydra_entry
from .tables import print_table
from .validate import user_errors

log = logging.getLogger("stitchwork")


def similarity_options(cfg: DictConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`all_pairs` from ``conf/similarity`` and the cut-point lists."""
    sim = OmegaConf.to_container(cfg.similarity, resolve=True)
    sim["measures"] = build_measures(sim.get("measures"))
    _pool_canonical(sim, sim.pop("cca_spatial", None))
    sim["max_moment_bytes"] = int(float(sim.pop("max_moment_gib", 2.0)) * 2**30)
    for side in ("a", "b"):
        cuts = cfg.get(f"cut_points_{side}")
        sim[f"cut_points_{side}"] = None if cuts is None else list(cuts)
    return sim


def _pool_canonical(sim: dict, policy: str | None) -> None:
    """Give the CCA-family measures ``policy`` as their own spatial policy (unless their options
    name one): flattened conv maps have ``rank X + rank Y > n - 1`` and correlations forced to 1."""
    if policy is None or not isinstance(sim["measures"], list):
        return
    options = sim.get("options") or {}
    for measure in sim["measures"]:
        if measure.canonical:
            options.setdefault(measure.name, {}).setdefault("spatial", policy)
    sim["options"] = options


def build_measures(names: Any) -> Any:
    """Measure objects for ``similarity.measures``: each name is ``conf/similarity/measure/<name>.yaml``.

    Anything but a list of names is passed on unchanged for :func:`all_pairs` to refuse.
    """
    if not isinstance(names, list):
        return names
    measures = [instantiate_named("similarity/measure", n, "similarity measure", SimilarityInputError)
                for n in names]  # fmt: skip
    for name, measure in zip(names, measures, strict=True):
        if not isinstance(measure, Measure):
            raise TypeError(f"similarity/measure/{name}.yaml builds a {type(measure).__name__}, not a Measure")
    return measures


def compare_job(job: Job) -> dict:
    cfg = job.cfg
    check_config(cfg)
    data = build_data(cfg.data)
    opts = similarity_options(cfg)
    # fail fast on untrained copies: unknown measure, policy or cut point, memory
    models = build_model(cfg.model_a, data), build_model(cfg.model_b, data)
    with user_errors():
        modes = check_all_pairs(*models, **opts)
    model_a, entry_a = get_base_model(cfg.model_a, cfg.data, cfg.recipe_a, int(cfg.seed_a), cfg.zoo,
                                      cfg.trainer, data=data, device=job.device)  # fmt: skip
    model_b, entry_b = get_base_model(cfg.model_b, cfg.data, cfg.recipe_b, int(cfg.seed_b), cfg.zoo,
                                      cfg.trainer, data=data, device=job.device)  # fmt: skip
    same = entry_a.key == entry_b.key
    loader = data.loader(cfg.split, batch_size=int(cfg.batch_size), shuffle=False)
    log.info("comparing %s: %s", "A with itself" if same else "A with B", modes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = all_pairs(model_a, None if same else model_b, loader, **opts)
    notes = sorted({str(w.message) for w in caught})
    for note in notes:
        log.warning("%s", note)
    title = config_title(job.record.config)  # tiny10/digits seed 0 → seed 1 (sweep ...)
    figures = {
        m: str(draw_matrices([layer_matrix(result, m)], job.out_dir / f"heatmap_{m}.png", title))
        for m in result.values
    }
    job.logger.log_images({f"heatmap/{m}": p for m, p in figures.items()})
    job.logger.log_table("similarity", _long_rows(result))
    _print_summary(result)
    return {
        **result.to_dict(),
        **_diagonal_means(result),
        "modes": modes,
        "trivial_correlations": {m: f["trivial_correlations"].tolist() for m, f in result.facts.items()
                                 if "trivial_correlations" in f},  # fmt: skip
        "sanity": sanity(result),
        "figures": figures,
        "self_comparison": same,
        "zoo_key_a": entry_a.key,
        "zoo_key_b": entry_b.key,
        "warnings": notes,
    }


def layer_matrix(result: SimilarityMatrices, measure: str) -> LayerMatrix:
    """``result[measure]`` as the sweep room's layer × layer matrix (A's cut points as rows)."""
    kind = "distance" if measure in result.distances else "similarity"
    title = f"{measure} ({kind}, n={result.n_examples[measure]})"
    return LayerMatrix(title, measure, list(result.rows), list(result.cols), result[measure].numpy(),
                       row_axis="model A cut point", col_axis="model B cut point",
                       higher_is_better=kind == "similarity")  # fmt: skip


def sanity(result: SimilarityMatrices) -> dict[str, list[dict]]:
    """Per measure: does A's layer i find B's layer i most similar? (Kornblith et al.'s check.)"""
    if not set(result.rows) & set(result.cols):
        return {}
    return {m: sanity_ranks(layer_matrix(result, m), m not in result.distances) for m in result.values}


def _diagonal_means(result: SimilarityMatrices) -> dict[str, float]:
    """``<measure>_diag_mean`` when A and B list the same cut points (a sweep-friendly scalar)."""
    if result.rows != result.cols:
        return {}
    return {f"{m}_diag_mean": float(M.diagonal().mean()) for m, M in result.values.items()}


def _long_rows(result: SimilarityMatrices) -> list[dict]:
    return [
        {"measure": m, "cut_point_a": a, "cut_point_b": b, "value": float(M[i, j])}
        for m, M in result.values.items()
        for i, a in enumerate(result.rows)
        for j, b in enumerate(result.cols)
    ]


def _print_summary(result: SimilarityMatrices) -> None:
    rows = [(m, f"{len(result.rows)}×{len(result.cols)}", result.n_examples[m], float(M.min()), float(M.max()))
            for m, M in result.values.items()]  # fmt: skip
    print_table(
        "similarity matrices (A rows × B columns)", ("measure", "shape", "n", "min", "max"), rows
    )


def task(cfg: DictConfig) -> dict:
    return run_job(cfg, "compare", compare_job)


main = hydra_entry("compare", task)

if __name__ == "__main__":
    main()
