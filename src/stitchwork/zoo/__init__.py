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

__all__ = [
    "RUNTIME_DATA_KEYS",
    "RUNTIME_TRAINER_KEYS",
    "CorruptCheckpointError",
    "ModelZoo",
    "ZooEntry",
    "data_identity",
    "debug_options",
    "default_zoo_root",
    "model_identity",
    "trainer_identity",
]
