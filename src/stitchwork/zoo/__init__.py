"""Content-addressed, file-locked store of trained base models."""

from .identity import (
    RUNTIME_DATA_KEYS,
    RUNTIME_TRAINER_KEYS,
    data_identity,
    debug_options,
    model_identity,
    trainer_identity,
)
from .store import CorruptCheckpointError, ModelZoo, ZooEntry, default_zoo_root


def get_model(
    model: str = "tiny10", data: str = "digits", seed: int = 0, recipe: str = "sgd", **overrides
):
    """The zoo's trained ``model`` on ``data`` (from a notebook); see :func:`stitchwork.apps.notebook.get_model`.

    Composes the apps' configs, so the zoo key is the one ``stitchwork-train`` uses; Hydra is
    imported only here, when called (the library itself never imports it).
    """
    from ..apps.notebook import get_model as compose_and_get

    return compose_and_get(model=model, data=data, seed=seed, recipe=recipe, **overrides)

__all__ = [
    "RUNTIME_DATA_KEYS",
    "RUNTIME_TRAINER_KEYS",
    "CorruptCheckpointError",
    "ModelZoo",
    "ZooEntry",
    "data_identity",
    "debug_options",
    "default_zoo_root",
    "get_model",
    "model_identity",
    "trainer_identity",
]
