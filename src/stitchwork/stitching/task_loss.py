"""Task-loss matching: train only the stitch layer through the frozen back of B.

Losses: cross-entropy to the labels (Bansal et al.; Csiszárik et al.), or the soft task
loss ``T² · KL(softmax(z_B / T) ‖ softmax(z / T))`` to B's own logits, each optionally
plus ``l1 · mean|W|`` on the stitch's linear part (Csiszárik et al.'s sparse stitch).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ..training.classifier import NonFiniteLossError
from ..training.recipe import TrainRecipe, build_optimizer, build_scheduler
from .stitched import StitchedModel

LOSSES = ("hard", "soft")


class StitchingModule(L.LightningModule):
    """Lightning wrapper that fits ``stitched.stitch`` and records per-epoch curves.

    Parameters
    ----------
    stitched
        The stitched network; only :meth:`StitchedModel.trainable_parameters` are optimised.
    recipe
        Optimizer, schedule, epochs and batch size (default for stitching: Adam, lr 1e-3,
        ×0.1 at 1/3 and 2/3 of training).
    loss
        ``"hard"`` (cross-entropy to labels) or ``"soft"`` (KL to B's logits).
    temperature
        Softmax temperature of the soft loss.
    l1
        Weight λ of the ``mean|W|`` penalty (0: none).
    cached
        Training batches are ``(a, y[, z_B])`` of cached front activations instead of
        ``(x, y)`` images.
    """

    def __init__(
        self, stitched: StitchedModel, recipe: TrainRecipe, *, loss: str = "hard",
        temperature: float = 1.0, l1: float = 0.0, cached: bool = False,
    ):  # fmt: skip
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown task loss {loss!r}; valid: {', '.join(LOSSES)}")
        if not temperature > 0 or l1 < 0:
            raise ValueError(f"need temperature > 0 and l1 >= 0, got {temperature!r} and {l1!r}")
        self.stitched, self.recipe = stitched, recipe
        self.loss_kind, self.temperature, self.l1, self.cached = loss, float(temperature), float(l1), cached
        self.history: list[dict[str, float]] = []
        self._epoch_sums = [0.0, 0]  # loss sum, examples
        self._val_sums = [0, 0]  # correct, examples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stitched(x)

    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.stitched.back(self.stitched.target_front(x))

    def task_loss(self, batch: Any) -> torch.Tensor:
        """The loss of one batch (images or cached activations)."""
        inputs, y, *rest = batch
        logits = self.stitched.from_front(inputs) if self.cached else self.stitched(inputs)
        target = None
        if self.loss_kind == "soft":
            target = rest[0] if rest else self._teacher_logits(inputs)
        return stitch_loss(logits, y, target, self.stitched.stitch, self.loss_kind, self.temperature, self.l1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.task_loss(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"stitching loss is {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step} (lr {self.recipe.lr}, loss {self.loss_kind!r}, l1 {self.l1}); "
                "lower matching.lr or check the stitch initialisation"
            )
        n = len(batch[1])
        self._epoch_sums[0] += loss.item() * n
        self._epoch_sums[1] += n
        self.log("stitch/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        self._val_sums[0] += int((self.stitched(x).argmax(1) == y).sum())
        self._val_sums[1] += len(y)

    def on_train_epoch_end(self) -> None:
        loss_sum, n = self._epoch_sums
        entry = {"epoch": self.current_epoch, "train_loss": loss_sum / max(n, 1),
                 "lr": self.optimizers().param_groups[0]["lr"]}  # fmt: skip
        correct, seen = self._val_sums
        entry["val_acc"] = correct / seen if seen else math.nan
        self.history.append(entry)
        self._epoch_sums, self._val_sums = [0.0, 0], [0, 0]

    def configure_optimizers(self):
        optimizer = build_optimizer(self.stitched.trainable_parameters(), self.recipe)
        steps = max(1, int(self.trainer.estimated_stepping_batches // self.recipe.epochs))
        scheduler = build_scheduler(optimizer, self.recipe, steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def stitch_loss(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, stitch: torch.nn.Module,
    kind: str = "hard", temperature: float = 1.0, l1: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """The task loss of one batch: cross-entropy (``hard``) or ``T²·KL`` to ``target`` logits
    (``soft``), plus ``l1 · mean|W|`` of the stitch's linear part."""
    if kind == "hard":
        loss = F.cross_entropy(logits, y)
    else:
        t = temperature
        loss = F.kl_div(
            F.log_softmax(logits / t, dim=1), F.log_softmax(target / t, dim=1),
            reduction="batchmean", log_target=True,
        ) * t * t  # fmt: skip
    if l1:
        loss = loss + l1 * stitch.weight_matrix().abs().mean()
    return loss


def stitching_recipe(
    epochs: int = 30, lr: float = 1e-3, batch_size: int = 128, schedule: str = "step",
    weight_decay: float = 0.0,
) -> TrainRecipe:
    """Adam with the given rate and schedule (``"step"``: ×0.1 at 1/3 and 2/3 of training)."""
    return TrainRecipe(
        optimizer="adam", lr=lr, momentum=0.0, nesterov=False, weight_decay=weight_decay,
        schedule=schedule, epochs=epochs, batch_size=batch_size,
    )  # fmt: skip
