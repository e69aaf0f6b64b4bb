"""Content-addressed, file-locked store of trained base models."""

from .identity import RUNTIME_DATA_KEYS, model_identity
from .store import CorruptCheckpointError, ModelZoo, ZooEntry, default_zoo_root

__all__ = [
    "RUNTIME_DATA_KEYS",
    "CorruptCheckpointError",
    "ModelZoo",
    "ZooEntry",
    "default_zoo_root",
    "model_identity",
]
