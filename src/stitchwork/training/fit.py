"""Train a classifier on a data module with a recipe; the one entry point for base training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from ..data.base import ClassificationData
from ..utils.modules import model_device
from .classifier import Classifier
from .evaluate import evaluate
from .recipe import TrainRecipe
from .resume import PreemptionCheckpoint

#: Trainer options the recipe owns: refused, since training would silently overwrite them.
RECIPE_OWNED_TRAINER_KEYS = {"max_epochs": "recipe.epochs", "precision": "recipe.precision"}


def check_trainer_options(options: dict[str, Any] | None, prefix: str = "trainer.") -> None:
    """Refuse trainer options that training would silently replace with the recipe's.

    Raises ``ValueError`` naming the key as the user wrote it (``prefix`` + name) and the
    setting to use instead.
    """
    for key, instead in RECIPE_OWNED_TRAINER_KEYS.items():
        if key in (options or {}):
            raise ValueError(
                f"{prefix}{key}={options[key]!r} is not used: base-model training takes it from the "
                f"recipe. Set {instead} instead (task-loss stitches: matching.epochs)."
            )


def fit_classifier(
    net: nn.Module,
    data: ClassificationData,
    recipe: TrainRecipe,
    *,
    seed: int = 0,
    trainer_options: dict[str, Any] | None = None,
    logger: Any = False,
    checkpoint_dir: str | Path | None = None,
    corrupt_dir: str | Path | None = None,
) -> dict:
    """Train ``net`` in place and return its accuracy and loss on every split.

    ``trainer_options`` go to ``lightning.Trainer`` (accelerator, devices, progress bar,
    ...); epochs and precision come from the recipe. The split metrics are computed on the
    training device; ``net`` then ends on the device it came on. With ``checkpoint_dir``,
    training is preemption-safe: ``last.ckpt`` there is kept current (every epoch, and on
    SIGUSR2), a later call with the same folder resumes from it, and it is removed once
    training completes; one that does not load is moved into ``corrupt_dir`` (default: a
    ``.corrupt`` folder beside ``checkpoint_dir``) and training starts afresh.
    ``trainer_options`` may not hold ``max_epochs`` or ``precision`` (``ValueError``).
    Returns ``{"train_acc", "val_acc", "test_acc", "*_loss", "wall_time_s", "resumed"}``.
    """
    check_trainer_options(trainer_options, prefix="trainer option ")
    if recipe.epochs == 0:  # a loaded model (recipe=pretrained): measured as it is, never trained
        data.setup("fit")
        return {"wall_time_s": 0.0, "resumed": False, "trained": False, **split_metrics(net, data)}
    if recipe.ssl is not None:
        from .ssl import fit_ssl

        return fit_ssl(net, data, recipe, seed=seed, trainer_options=trainer_options,
                       checkpoint_dir=checkpoint_dir, corrupt_dir=corrupt_dir)
    L.seed_everything(seed, workers=True, verbose=False)
    preemption = None if checkpoint_dir is None else PreemptionCheckpoint(checkpoint_dir, corrupt_dir=corrupt_dir)
    options = _trainer_options(recipe, trainer_options, logger, preemption)
    data.setup("fit")
    home = model_device(net)
    start = time.perf_counter()
    trainer = L.Trainer(**options)
    resume = preemption.resume_path() if preemption is not None else None
    trainer.fit(
        Classifier(net, recipe, data.num_classes),
        train_dataloaders=data.loader("train", batch_size=recipe.batch_size),
        val_dataloaders=data.loader("val") if len(data.val_set) else None,
        ckpt_path=resume,
    )
    if preemption is not None:
        preemption.discard()
    metrics: dict[str, Any] = {"wall_time_s": time.perf_counter() - start, "resumed": resume is not None}
    # Lightning's teardown leaves the module on the CPU: measure on the training device, then
    # return the model to where it came from (trained in place, it stays put).
    net.to(trainer.strategy.root_device)
    try:
        metrics.update(split_metrics(net, data))
    finally:
        net.to(home)
    return metrics


def _trainer_options(
    recipe: TrainRecipe, trainer_options: dict[str, Any] | None, logger: Any,
    preemption: PreemptionCheckpoint | None,
) -> dict[str, Any]:
    """``lightning.Trainer`` arguments: quiet defaults, the caller's, then the recipe's."""
    options = {"enable_checkpointing": False, "enable_model_summary": False, "logger": logger}
    options.update(trainer_options or {})
    options.update(max_epochs=recipe.epochs, precision=recipe.precision)
    if preemption is not None:
        options["callbacks"] = [*options.get("callbacks", []), preemption]
    options.setdefault("plugins", slurm_plugins())
    return options


def split_metrics(net: nn.Module, data: ClassificationData) -> dict[str, float]:
    """``{split}_acc`` and ``{split}_loss`` of ``net`` on every non-empty split, unshuffled."""
    metrics = {}
    for split in ("train", "val", "test"):
        loader = data.loader(split, shuffle=False)
        if len(loader.dataset):
            result = evaluate(net, loader)
            metrics[f"{split}_acc"], metrics[f"{split}_loss"] = result["acc"], result["loss"]
    return metrics


def slurm_plugins() -> list:
    """Under SLURM, Lightning's environment without its own requeue (submitit requeues)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
