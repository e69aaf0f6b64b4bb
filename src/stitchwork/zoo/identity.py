"""Which settings make up a base model's identity (and which do not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Data settings that change where or how fast data is read, never the trained weights.
RUNTIME_DATA_KEYS = frozenset(
    {"num_workers", "root", "download", "batch_size", "pin_memory", "persistent_workers"}
)


def model_identity(
    model: Mapping[str, Any], data: Mapping[str, Any], recipe: Mapping[str, Any], seed: int
) -> dict:
    """The identity of a base model: model, data (less runtime keys), recipe and seed.

    Device, workers, loggers and paths are not part of it, so the same model trained on
    a laptop or a cluster shares one zoo entry.
    """
    return {
        "model": dict(model),
        "data": {k: v for k, v in data.items() if k not in RUNTIME_DATA_KEYS},
        "recipe": dict(recipe),
        "seed": int(seed),
    }
