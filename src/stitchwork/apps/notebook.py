"""Notebook access to the zoo: compose the apps' own configs, so a key matches the app's.

The library never imports Hydra; :func:`stitchwork.zoo.get_model` imports this module lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ..models import CutModel
from .common import get_base_model
from .config import conf_dir, register_resolvers


def compose_app(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``stitchwork-<config_name> *overrides`` would run with (no Hydra job around it)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def _override(key: str, value: Any) -> str:
    text = (
        str(value).lower() if isinstance(value, bool) else "null" if value is None else str(value)
    )
    return f"{key.replace('__', '.')}={text}"


def get_model(
    model: str = "tiny10",
    data: str = "digits",
    seed: int = 0,
    recipe: str = "sgd",
    **overrides: Any,
) -> CutModel:
    """The trained base model ``stitchwork-train model=... data=... seed=... recipe=...`` names.

    ``overrides`` are further command-line overrides, ``recipe__epochs=2`` for
    ``recipe.epochs=2`` (or ``**{"recipe.epochs": 2}``). Same configs, same zoo key: a model
    the app trained is loaded, not trained again; a missing one is trained into the zoo.
    """
    args = [f"model={model}", f"data={data}", f"seed={seed}", f"recipe={recipe}"]
    cfg = compose_app("train", args + [_override(k, v) for k, v in overrides.items()])
    net, entry = get_base_model(cfg.model, cfg.data, cfg.recipe, cfg.seed, cfg.zoo, cfg.trainer)
    net.zoo_entry = entry  # where it came from: entry.key, entry.path, entry.metadata
    return net
