"""Lightning module that trains a plain classifier with a :class:`TrainRecipe`."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from .recipe import TrainRecipe, build_optimizer, build_scheduler


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class Classifier(L.LightningModule):
    """Cross-entropy training of ``net`` with the optimizer and schedule of ``recipe``."""

    def __init__(self, net: nn.Module, recipe: TrainRecipe, num_classes: int):
        super().__init__()
        self.net, self.recipe = net, recipe
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step} (lr {self.recipe.lr}); lower recipe.lr or check the data"
            )
        self.train_acc(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.net.parameters(), self.recipe)
        steps = max(1, int(self.trainer.estimated_stepping_batches // self.recipe.epochs))
        scheduler = build_scheduler(optimizer, self.recipe, steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
