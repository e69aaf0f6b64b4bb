"""A training recipe as plain data, and the optimizer and schedule it describes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class TrainRecipe:
    """How to train: optimizer, learning-rate schedule, epochs, batch size, precision.

    With ``ssl`` (a mapping of :class:`~stitchwork.training.ssl.SSLOptions`) the model is a
    self-supervised donor: the other settings drive its contrastive phase, then a linear
    probe fits its head (:func:`~stitchwork.training.ssl.fit_ssl`).

    ``schedule="step"`` multiplies the rate by 0.1 at 1/3 and 2/3 of training (the
    recipe of Csiszárik et al. 2021); ``"cosine"`` anneals to zero. Both follow a linear
    warm-up of ``warmup_epochs`` when it is positive. Schedules step every batch.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "step"
    warmup_epochs: float = 0.0
    epochs: int = 30
    batch_size: int = 128
    precision: str = "32-true"
    label_smoothing: float = 0.0
    ssl: dict | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        for name in ("lr", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"recipe.{name} must be positive, got {getattr(self, name)!r}")
        if not self.epochs >= 0:  # 0: used as built or loaded (recipe=pretrained), never trained
            raise ValueError(f"recipe.epochs must be >= 0 (0: never trained), got {self.epochs!r}")
        if self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ValueError(
                f"recipe.warmup_epochs and recipe.weight_decay must be >= 0, got "
                f"{self.warmup_epochs!r} and {self.weight_decay!r}"
            )
        if self.ssl is not None:
            from .ssl import SSLOptions

            SSLOptions.from_dict(dict(self.ssl))

    @classmethod
    def from_dict(cls, values: dict) -> TrainRecipe:
        """Build from a mapping, rejecting unknown keys by name."""
        return build_checked(cls, values, "recipe")

    def to_dict(self) -> dict:
        """The recipe as data; ``ssl`` appears only when set, so supervised keys never change.

        A set ``ssl`` block is completed with its defaults, so spelling out a default value
        and leaving it out name the same model.
        """
        out = asdict(self)
        if self.ssl is None:
            del out["ssl"]
        else:
            from .ssl import SSLOptions

            out["ssl"] = SSLOptions.from_dict(dict(self.ssl)).to_dict()
        return out


def build_checked(cls: type, values: dict, label: str):
    """``cls(**values)`` for a dataclass, refusing unknown keys by name (``label`` in the message)."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {label} keys {unknown}; valid: {', '.join(sorted(known))}")
    return cls(**values)


def build_optimizer(params: Iterable[torch.nn.Parameter], recipe: TrainRecipe) -> torch.optim.Optimizer:
    """The optimizer that ``recipe`` names, over ``params``."""
    params = list(params)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0,
            weight_decay=recipe.weight_decay,
        )
    cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def lr_factor(step: int, total_steps: int, recipe: TrainRecipe, steps_per_epoch: int) -> float:
    """Multiplier of the base rate at optimizer step ``step`` (0-based)."""
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if recipe.schedule == "step":
        return 0.1 ** sum(progress >= m for m in (1 / 3, 2 / 3))
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: TrainRecipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR implementing :func:`lr_factor`."""
    total = recipe.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, recipe, steps_per_epoch)
    )
