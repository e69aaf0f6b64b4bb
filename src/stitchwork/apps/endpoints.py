"""The endpoints of a re-basin job, shared by the rebasin and combine apps.

Loads the base models by seed from the zoo, and builds the configured matcher and
post-processor (``post``: a name in ``conf/rebasin/post/``) for :mod:`stitchwork.rebasin.api`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from ..data.base import ClassificationData
from ..rebasin import Alignment, PostProcessor, align, spec_for
from ..rebasin.api import post_process as api_post_process
from ..rebasin.bn_reset import running_norms
from ..rebasin.interpolate import PostProcess
from ..rebasin.spec import Permutation, PermutationSpec
from .common import build_data, get_base_model
from .config import instantiate_named

log = logging.getLogger("stitchwork")

#: Logged once per job when BatchNorm statistics are interpolated and never re-estimated.
BN_WARNING = (
    "post=none on a model with BatchNorm: every interpolated or combined model keeps the "
    "interpolated running statistics, which no longer fit its weights (variance collapse), so "
    "its barriers and losses are mostly that artefact (tiny10 on digits: midpoint accuracy "
    "barrier 0.90 with post=none, 0.27 with post=bn_reset). Use post=bn_reset (the default) or "
    "post=repair."
)


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
    first = models[next(iter(models))]
    if cfg.post == "none" and running_norms(first):
        log.warning(BN_WARNING)
    return Endpoints(data, models, spec_for(first))


def align_endpoints(cfg: DictConfig, ends: Endpoints, fixed: nn.Module, permutee: nn.Module) -> Alignment:
    """Run the configured matcher (activation matchers read unshuffled training data)."""
    return align(fixed, permutee, instantiate(cfg.matcher), ends.data.loader("train", shuffle=False), ends.spec)


def match(cfg: DictConfig, ends: Endpoints, fixed: nn.Module, permutee: nn.Module) -> Permutation:
    """The configured matcher's permutation of ``permutee`` onto ``fixed``."""
    return align_endpoints(cfg, ends, fixed, permutee).perm


def build_post(name: str, post_batches: int | None = None) -> PostProcessor:
    """The post-processor ``conf/rebasin/post/<name>.yaml``, reading ``post_batches`` batches."""
    return instantiate_named("rebasin/post", name, "post-process", max_batches=post_batches)


def post_process(cfg: DictConfig, ends: Endpoints, model_a: nn.Module, model_b: nn.Module) -> PostProcess | None:
    """The ``post`` option as a callable ``(model, lam) -> model`` (None for ``none``)."""
    post = build_post(cfg.post, cfg.get("post_batches"))
    return api_post_process(post, model_a, model_b, ends.spec, ends.data.loader("train", shuffle=False))
