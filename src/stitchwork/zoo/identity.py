"""Which settings make up a base model's identity (and which do not).

The rule: every model, data, recipe and trainer setting is part of the identity, unless it
is on one of the two short lists below of runtime keys that cannot change the weights.
Unknown keys (``+trainer.limit_train_batches=1``) therefore enter the identity by
themselves. Values are canonicalised with their type where the type carries meaning: a
count (``train_subset=1``, one example) is never a fraction (``train_subset=1.0``, the
whole split).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from ..utils.hashing import file_sha256, typed_fractions

#: Data settings that change where or how fast data is read, never the trained weights
#: (``batch_size`` is the evaluation batch; training batches come from ``recipe.batch_size``).
RUNTIME_DATA_KEYS = frozenset(
    {"num_workers", "root", "download", "batch_size", "pin_memory", "persistent_workers"}
)

#: Trainer settings that change how training is shown, logged or where it runs, never what
#: it computes. ``accelerator`` is here because training is device-independent by design
#: (CPU and GPU differ in rounding only); ``devices``, ``strategy``, ``num_nodes`` and
#: ``sync_batchnorm`` are not: under DDP they change the effective batch and the data order.
RUNTIME_TRAINER_KEYS = frozenset(
    {"accelerator", "enable_progress_bar", "log_every_n_steps", "enable_model_summary",
     "enable_checkpointing", "default_root_dir", "logger"}
)  # fmt: skip

#: Trainer values that mean what an absent key means (one process, all the data, no limits),
#: each with its equivalent spellings (compared with their type: ``1`` is not ``1.0``). They
#: are dropped from the identity, so the default trainer adds nothing to it.
TRAINER_DEFAULTS: dict[str, tuple] = {
    "devices": (1,), "num_nodes": (1,), "strategy": ("auto",), "sync_batchnorm": (False,),
    "deterministic": (None, False), "benchmark": (None, False), "limit_train_batches": (1.0,),
    "limit_val_batches": (1.0,), "limit_test_batches": (1.0,), "limit_predict_batches": (1.0,),
    "overfit_batches": (0, 0.0), "fast_dev_run": (False, 0), "max_steps": (-1,), "max_time": (None,),
    "val_check_interval": (1.0, None), "accumulate_grad_batches": (1,),
}  # fmt: skip

#: Trainer options that only make sense for debugging: a model trained with any of them is
#: flagged ``debug`` in its metadata (its identity already keeps it from normal requests).
DEBUG_TRAINER_KEYS = (
    "fast_dev_run", "limit_train_batches", "limit_val_batches", "limit_test_batches",
    "limit_predict_batches", "overfit_batches", "max_steps", "max_time",
)  # fmt: skip

#: Settings that are a count when an int and a fraction when a float.
COUNT_OR_FRACTION_KEYS = frozenset(
    {"train_subset", "val_size", "limit_train_batches", "limit_val_batches", "limit_test_batches",
     "limit_predict_batches", "overfit_batches", "val_check_interval"}
)  # fmt: skip


def data_identity(data: Mapping[str, Any], target: str | None = None) -> dict:
    """Data settings less runtime keys; ``train_subset=1.0`` (the whole split) is ``None``.

    A float ``train_subset`` or ``val_size`` is kept as its repr, so a count and a fraction
    never share a key (``0`` and ``0.0`` validation examples are both none). Runtime keys
    that a data set's class names in ``content_keys`` stay (``ImageFolderData``'s ``root``
    *is* its data); ``target`` is the class path when ``data`` has no ``_target_``.
    """
    runtime = RUNTIME_DATA_KEYS - _content_keys(data.get("_target_", target))
    out = {k: v for k, v in data.items() if k not in runtime}
    if out.get("train_subset") == 1.0 and isinstance(out["train_subset"], float):
        out["train_subset"] = None
    if out.get("val_size") == 0:
        out["val_size"] = 0
    return typed_fractions(out, COUNT_OR_FRACTION_KEYS)


def _content_keys(target: Any) -> frozenset[str]:
    """The ``content_keys`` of the data class at the import path ``target`` (none if unknown)."""
    module, _, name = str(target or "").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return frozenset()
    return frozenset(getattr(cls, "content_keys", ()))


def trainer_identity(trainer: Mapping[str, Any] | None) -> dict:
    """Trainer settings that can change the weights, canonicalised; ``{}`` for the default.

    Runtime keys and values equal to :data:`TRAINER_DEFAULTS` are dropped; a device list
    (``devices=[1]``) counts as its length (which device is runtime, how many is not).
    """
    out = {}
    for key, value in (trainer or {}).items():
        if key in RUNTIME_TRAINER_KEYS:
            continue
        if key == "devices" and isinstance(value, (list, tuple)):
            value = len(value)
        if _is_default(key, value):
            continue
        out[key] = value
    return typed_fractions(out, COUNT_OR_FRACTION_KEYS)


def _is_default(key: str, value: Any) -> bool:
    return any(value == d and type(value) is type(d) for d in TRAINER_DEFAULTS.get(key, ()))


def debug_options(trainer: Mapping[str, Any] | None) -> dict:
    """The debug-only options (:data:`DEBUG_TRAINER_KEYS`) that ``trainer`` sets, off defaults."""
    identity = trainer_identity(trainer)
    return {k: identity[k] for k in DEBUG_TRAINER_KEYS if k in identity}


#: Model settings that name a weights file: the identity holds the file's sha256, not its path,
#: so two copies of one file share a key and a changed byte makes a new one.
WEIGHTS_KEYS = ("weights_path", "weights")


def weights_identity(model: Mapping[str, Any]) -> dict:
    """``model`` with each weights file path replaced by ``{"sha256": ...}`` of its content."""
    out = dict(model)
    for key in WEIGHTS_KEYS:
        if isinstance(out.get(key), str):
            if not os.path.isfile(out[key]):
                raise FileNotFoundError(f"model.{key} {out[key]!r} does not exist")
            out[key] = {"sha256": file_sha256(out[key])}
    return out


def model_identity(
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    recipe: Mapping[str, Any],
    seed: int,
    trainer: Mapping[str, Any] | None = None,
) -> dict:
    """The identity of a base model: model, data, recipe, seed and weight-changing trainer options.

    Workers, data paths, loggers, progress bars and the accelerator are not part of it, so
    the same model trained on a laptop or a cluster shares one zoo entry. The trainer part
    appears only when it differs from :data:`TRAINER_DEFAULTS`, so default runs keep their key.
    """
    identity = {
        "model": weights_identity(model),
        "data": data_identity(data),
        "recipe": dict(recipe),
        "seed": int(seed),
    }
    trainer_part = trainer_identity(trainer)
    if trainer_part:
        identity["trainer"] = trainer_part
    return identity
