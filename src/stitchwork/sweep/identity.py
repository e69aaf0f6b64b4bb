"""A job's identity: the settings that name its results folder, and the few that do not.

The rule is the model identity's (:mod:`stitchwork.zoo.identity`) one level up: every
config key is part of a job's identity unless it is on :data:`RUNTIME_KEYS` (or, inside
``data*`` and ``trainer``, on the model identity's runtime lists). The base models' own
identities are therefore in it (their model, data, recipe, seed and trainer sections), and
so is everything the job's own computation reads. Takes plain dicts (the apps convert
their configs), so it is usable without Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..utils.hashing import content_hash, typed_fractions
from ..zoo.identity import COUNT_OR_FRACTION_KEYS as MODEL_COUNT_OR_FRACTION_KEYS
from ..zoo.identity import (
    RUNTIME_DATA_KEYS,
    RUNTIME_TRAINER_KEYS,
    data_identity,
    trainer_identity,
)

#: Top-level config keys that never change a job's result: Hydra's own settings, the W&B /
#: CSV logger, the zoo's location and corrupt-entry policy, ``force``, the sweep's name,
#: ``device`` (where it runs: a job finished on a GPU node is not redone on a laptop) and
#: ``objective`` (which metric a job returns to an optimising sweeper) and ``extras``
#: (console conveniences such as the config tree).
RUNTIME_KEYS = frozenset({"hydra", "logger", "zoo", "force", "sweep_name", "device", "objective", "extras"})

#: Count-or-fraction settings of jobs: the model ones plus SVCCA's ``keep`` (``1`` direction
#: vs ``1.0`` of the variance).
COUNT_OR_FRACTION_KEYS = MODEL_COUNT_OR_FRACTION_KEYS | {"keep"}


def identity_config(plain: Mapping[str, Any]) -> dict:
    """The parts of a plain job config that determine its result, canonicalised.

    Runtime keys are dropped; ``data*`` sections lose their runtime keys, ``trainer`` keeps
    only what can change weights (and disappears when that is nothing); the
    ``matching_overrides`` entry that applies is folded into ``matching``.
    """
    plain = apply_matching_overrides(plain)
    out: dict[str, Any] = {}
    for key, value in plain.items():
        if key in RUNTIME_KEYS:
            continue
        if key == "trainer" and isinstance(value, Mapping):
            value = trainer_identity(value)
            if not value:
                continue
        elif key.startswith("data") and isinstance(value, Mapping):
            value = data_identity(value, target=(plain.get("data") or {}).get("_target_"))
        out[key] = value
    return typed_fractions(out, COUNT_OR_FRACTION_KEYS)


def apply_matching_overrides(plain: Mapping[str, Any]) -> dict:
    """Fold the ``matching_overrides`` entry that applies into ``matching`` and drop the rest.

    A sweep over methods with per-method settings then gives each job the identity of the
    settings it actually ran with (changing task-loss epochs does not rename direct jobs).
    """
    plain = dict(plain)
    if "matching_overrides" not in plain:
        return plain
    overrides = plain.pop("matching_overrides") or {}
    matching = plain.get("matching")
    if isinstance(matching, Mapping):
        method = str(matching.get("_target_", "")).rsplit(".", 1)[-1]
        plain["matching"] = {**matching, **(overrides.get(method) or {})}
    return plain


def job_id(plain: Mapping[str, Any]) -> str:
    """Identity hash of a job (plain dict config): its output folder name and ``identity``."""
    return content_hash(identity_config(plain))


#: ``layer_pair`` keys that list a matrix job's pairs: the only ones a matrix's pairs can
#: share across jobs (each pair's result does not depend on which other pairs share its job).
MATRIX_LIST_KEYS = ("fronts", "backs")


def matrix_family_id(plain: Mapping[str, Any]) -> str:
    """Identity hash of a matrix job without its pair lists: the same for a 3 x 3 and an 8 x 8.

    Two matrix jobs of one family compute every shared pair from the same settings, so a
    pair one of them finished can stand in for the other's (see ``sweep.pair_records``).
    """
    config = identity_config(plain)
    layer_pair = {k: v for k, v in (config.get("layer_pair") or {}).items() if k not in MATRIX_LIST_KEYS}
    return content_hash({**config, "layer_pair": layer_pair})


def is_runtime_key(path: str) -> bool:
    """Whether the dotted config path (``trainer.enable_progress_bar``) is outside job identity.

    Used to leave runtime settings out of report groupings.
    """
    head, _, rest = path.partition(".")
    if head in RUNTIME_KEYS:
        return True
    leaf = rest.split(".", 1)[0]
    if head == "trainer":
        return leaf in RUNTIME_TRAINER_KEYS
    return head.startswith("data") and leaf in RUNTIME_DATA_KEYS
