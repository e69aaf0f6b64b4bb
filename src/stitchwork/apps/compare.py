"""``stitchwork-compare``: similarity of every layer pair of two base models, in one pass.

    stitchwork-compare                                   # tiny10 seed 0 vs seed 1 on digits
    stitchwork-compare seed_b=0                          # A against itself
    stitchwork-compare model@model_b=resnet20 similarity=all cut_points_b=[layer1_2,layer3_2]

Both models come from the zoo (trained there on first use), each with its own recipe and
seed; identical identities are one model run once. Measures, cut points and the spatial
policy are checked on untrained copies first, so a bad request fails in seconds. Writes one
matrix per measure (rows: A's cut points, columns: B's) to results.json and one heatmap PNG
per measure beside it, and mirrors both to the logger.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..similarity import DISTANCES
from ..similarity.all_pairs import SimilarityMatrices, all_pairs, check_all_pairs
from .common import Job, build_data, build_model, get_base_model, run_job
from .entry import hydra_entry
from .tables import print_table

log = logging.getLogger("stitchwork")


def similarity_options(cfg: DictConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`all_pairs` from ``conf/similarity`` and the cut-point lists."""
    sim = OmegaConf.to_container(cfg.similarity, resolve=True)
    sim["max_moment_bytes"] = int(float(sim.pop("max_moment_gib", 2.0)) * 2**30)
    for side in ("a", "b"):
        cuts = cfg.get(f"cut_points_{side}")
        sim[f"cut_points_{side}"] = None if cuts is None else list(cuts)
    return sim


def compare_job(job: Job) -> dict:
    cfg = job.cfg
    data = build_data(cfg.data)
    opts = similarity_options(cfg)
    # fail fast on untrained copies: unknown measure, policy or cut point, memory
    modes = check_all_pairs(build_model(cfg.model_a, data), build_model(cfg.model_b, data), **opts)
    model_a, entry_a = get_base_model(cfg.model_a, cfg.data, cfg.recipe_a, int(cfg.seed_a), cfg.zoo,
                                      cfg.trainer, data=data)  # fmt: skip
    model_b, entry_b = get_base_model(cfg.model_b, cfg.data, cfg.recipe_b, int(cfg.seed_b), cfg.zoo,
                                      cfg.trainer, data=data)  # fmt: skip
    same = entry_a.key == entry_b.key
    loader = data.loader(cfg.split, batch_size=int(cfg.batch_size), shuffle=False)
    log.info("comparing %s: %s", "A with itself" if same else "A with B", modes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = all_pairs(model_a, None if same else model_b, loader, **opts)
    notes = sorted({str(w.message) for w in caught})
    for note in notes:
        log.warning("%s", note)
    figures = {
        m: str(write_heatmap(result, m, job.out_dir / f"heatmap_{m}.png")) for m in result.values
    }
    job.logger.log_images({f"heatmap/{m}": p for m, p in figures.items()})
    job.logger.log_table("similarity", _long_rows(result))
    _print_summary(result)
    return {
        **result.to_dict(),
        **_diagonal_means(result),
        "modes": modes,
        "figures": figures,
        "self_comparison": same,
        "zoo_key_a": entry_a.key,
        "zoo_key_b": entry_b.key,
        "warnings": notes,
    }


def write_heatmap(result: SimilarityMatrices, measure: str, path: Path) -> Path:
    """One heatmap PNG of ``result[measure]``: rows A's cut points, columns B's, values printed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    M = result[measure].numpy()
    rows, cols = len(result.rows), len(result.cols)
    fig = Figure(figsize=(1.2 + 0.55 * cols, 1.0 + 0.45 * rows))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    distance = measure in DISTANCES
    image = ax.imshow(M, cmap="magma_r" if distance else "magma", aspect="auto")
    ax.set_xticks(range(cols), result.cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(rows), result.rows, fontsize=7)
    ax.set_xlabel("model B cut point")
    ax.set_ylabel("model A cut point")
    ax.set_title(f"{measure} ({'distance' if distance else 'similarity'}, n={result.n_examples[measure]})",
                 fontsize=9)  # fmt: skip
    if rows * cols <= 400:
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=5, color="grey")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


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
