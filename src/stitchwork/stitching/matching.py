"""Matching methods: how a stitch layer gets its weights. One function per method.

Every method has the :class:`MatchingMethod` signature ``(ctx) -> report``: it fits
``ctx.stitched.stitch`` in place and returns a dict of what it did (rows fitted, per-epoch
curves, sparsity, ...). Hyper-parameters are keyword-only, so a config
(``conf/matching/<name>.yaml`` with ``_partial_: true``) binds them and the app calls the
result with a context.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightning as L
import torch

from ..data.base import ClassificationData
from ..utils.modules import model_device
from .cache import cache_activations, cached_loader, should_cache
from .direct import MomentAccumulator
from .stitched import StitchedModel
from .task_loss import StitchingModule, stitching_recipe


@dataclass
class MatchContext:
    """What a matching method works on: the stitched model, the data, seed and trainer options."""

    stitched: StitchedModel
    data: ClassificationData
    seed: int = 0
    trainer_options: dict[str, Any] = field(default_factory=dict)


class MatchingMethod(Protocol):
    """Fit ``ctx.stitched.stitch`` in place; return a report dict."""

    def __call__(self, ctx: MatchContext) -> dict: ...


@torch.no_grad()
def accumulate_moments(stitched: StitchedModel, loader: Iterable) -> MomentAccumulator:
    """One pass: rows of the (resized) ``A_i`` against rows of ``B_j``, streamed in float64."""
    device, acc, layer = model_device(stitched), MomentAccumulator(), stitched.stitch
    stitched.eval()
    for x, *_ in loader:
        x = x.to(device)
        a = layer.prepare(stitched.front(x))  # (b, c_a, h_b, w_b) or (b, d_a)
        acc.update(layer.rows(a), layer.rows(stitched.target_front(x)))  # (rows, c_a), (rows, c_b)
    return acc


def direct(ctx: MatchContext, *, ridge: float = 1e-6, batch_size: int = 512) -> dict:
    """Direct matching: the closed-form fit of ``T(A_i) ≈ B_j`` on the training split.

    No gradient steps; one pass over the data (see :mod:`.direct`). ``ridge`` is relative to
    the mean input variance.
    """
    layer = ctx.stitched.stitch
    fitter = layer.fitter()
    if fitter is None:
        return {"fit_rows": 0, "ridge": ridge}
    acc = accumulate_moments(ctx.stitched, ctx.data.loader("train", batch_size=batch_size, shuffle=False))
    layer.load_weights(fitter(acc.moments(), ridge))
    return {"fit_rows": acc.n, "ridge": ridge}


def task_loss(
    ctx: MatchContext, *, epochs: int = 30, lr: float = 1e-3, batch_size: int = 128,
    schedule: str = "step", weight_decay: float = 0.0, cache: bool | None = None,
    loss: str = "hard", temperature: float = 1.0, l1: float = 0.0, ridge: float = 1e-6,
    direct_init: bool | None = None,
) -> dict:  # fmt: skip
    """Task-loss matching: train the stitch with Adam through the frozen back of B.

    ``cache=None`` caches A's front activations when the training data is not augmented
    and the cache fits in memory. ``direct_init`` runs :func:`direct` first (``None``: only for
    stitches that need it, e.g. permutation, with ``ridge``). Raises :class:`~stitchwork.training.NonFiniteLossError` on a NaN loss.
    """
    stitched, data = ctx.stitched, ctx.data
    report: dict[str, Any] = {}
    if direct_init is None:
        direct_init = stitched.stitch.needs_direct_init
    if direct_init:
        report.update(direct(ctx, ridge=ridge))
    if not stitched.trainable_parameters():
        return {**report, "epochs": 0, "history": [], "cached": False}
    recipe = stitching_recipe(epochs, lr, batch_size, schedule, weight_decay)
    L.seed_everything(ctx.seed, verbose=False)
    train_set = data.train_set
    cached = should_cache(cache, data.augment, len(train_set), stitched.stitch.in_shape)
    if cached:
        teacher = torch.nn.Sequential(stitched.target_front, stitched.back) if loss == "soft" else None
        plain = data.loader("train", batch_size=512, shuffle=False)
        train_loader = cached_loader(cache_activations(stitched.front, plain, teacher), batch_size, ctx.seed)
    else:
        train_loader = data.loader("train", batch_size=batch_size)
    val_loader = data.loader("val", batch_size=512) if len(data.val_set) else None
    module = StitchingModule(stitched, recipe, loss=loss, temperature=temperature, l1=l1, cached=cached)
    options = {"enable_checkpointing": False, "enable_model_summary": False, "logger": False,
               "num_sanity_val_steps": 0, "enable_progress_bar": False}  # fmt: skip
    options.update(ctx.trainer_options or {})
    options.update(max_epochs=epochs)
    home, start = model_device(stitched), time.perf_counter()
    with warnings.catch_warnings():  # the frozen donors are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        L.Trainer(**options).fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    stitched.to(home).eval()  # Lightning's teardown moved it (and so parts of the donors) to the CPU
    return {**report, "epochs": epochs, "cached": cached, "train_time_s": time.perf_counter() - start,
            "history": module.history}  # fmt: skip


def soft_task_loss(ctx: MatchContext, *, temperature: float = 4.0, **options: Any) -> dict:
    """Task loss against B's own logits: ``T² · KL(softmax(z_B/T) ‖ softmax(z/T))``."""
    return task_loss(ctx, loss="soft", temperature=temperature, **options)


def direct_then_task(ctx: MatchContext, *, ridge: float = 1e-6, **options: Any) -> dict:
    """Initialise with :func:`direct`, then train with :func:`task_loss`."""
    return task_loss(ctx, ridge=ridge, direct_init=True, **options)


def l1(ctx: MatchContext, *, l1_lambda: float = 1e-3, sparsity_tol: float = 1e-3, **options: Any) -> dict:
    """Task loss plus ``l1_lambda · mean|W|``; reports the sparsity of the stitch.

    ``sparsity`` is the fraction of entries of the linear part with ``|w| <= sparsity_tol ·
    max|w|`` (Adam does not produce exact zeros, hence a relative tolerance).
    """
    report = task_loss(ctx, l1=l1_lambda, **options)
    w = ctx.stitched.stitch.weight_matrix().detach().abs()
    report.update(l1_lambda=l1_lambda, sparsity=float((w <= sparsity_tol * w.max()).float().mean()))
    return report
