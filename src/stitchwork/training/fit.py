"""Train a classifier on a data module with a recipe; the one entry point for base training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from ..data.base import ClassificationData
from .classifier import Classifier
from .evaluate import evaluate, model_device
from .recipe import TrainRecipe
from .resume import PreemptionCheckpoint


def fit_classifier(
    net: nn.Module,
    data: ClassificationData,
    recipe: TrainRecipe,
    *,
    seed: int = 0,
    trainer_options: dict[str, Any] | None = None,
    logger: Any = False,
    checkpoint_dir: str | Path | None = None,
) -> dict:
    """Train ``net`` in place and return its accuracy and loss on every split.

    ``trainer_options`` go to ``lightning.Trainer`` (accelerator, devices, progress bar,
    ...); epochs and precision come from the recipe. The split metrics are computed on the
    training device; ``net`` then ends on the device it came on. With ``checkpoint_dir``,
    training is preemption-safe: ``last.ckpt`` there is kept current (every epoch, and on
    SIGUSR2), a later call with the same folder resumes from it, and it is removed once
    training completes. Returns ``{"train_acc", "val_acc", "test_acc", "*_loss",
    "wall_time_s", "resumed"}``.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    options = {"enable_checkpointing": False, "enable_model_summary": False, "logger": logger}
    options.update(trainer_options or {})
    options.update(max_epochs=recipe.epochs, precision=recipe.precision)
    preemption = PreemptionCheckpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if preemption is not None:
        options["callbacks"] = [*options.get("callbacks", []), preemption]
    options.setdefault("plugins", slurm_plugins())
    data.setup("fit")
    home = model_device(net)
    start = time.perf_counter()
    trainer = L.Trainer(**options)
    module = Classifier(net, recipe, data.num_classes)
    resume = preemption.resume_path() if preemption is not None else None
    trainer.fit(
        module,
        train_dataloaders=data.loader("train", batch_size=recipe.batch_size),
        val_dataloaders=data.loader("val") if len(data.val_set) else None,
        ckpt_path=resume,
    )
    if preemption is not None:
        preemption.discard()
    wall = time.perf_counter() - start
    metrics: dict[str, Any] = {"wall_time_s": wall, "resumed": resume is not None}
    # Lightning's teardown leaves the module on the CPU: measure on the training device, then
    # return the model to where it came from (trained in place, it stays put).
    net.to(trainer.strategy.root_device)
    try:
        for split in ("train", "val", "test"):
            loader = data.loader(split, shuffle=False)
            if len(loader.dataset):
                result = evaluate(net, loader)
                metrics[f"{split}_acc"], metrics[f"{split}_loss"] = result["acc"], result["loss"]
    finally:
        net.to(home)
    return metrics


def slurm_plugins() -> list:
    """Under SLURM, Lightning's environment without its own requeue (submitit requeues)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
