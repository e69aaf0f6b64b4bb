"""Task-loss matching of many stitching pairs in one data loop.

Every pair keeps its own stitch, Adam optimiser and schedule, built from the job's
hyper-parameters exactly as a single-pair job builds them (:func:`~.task_loss.stitching_recipe`,
:func:`~.task_loss.stitch_loss`), and trains on the same stream of batches: the seeded
shuffle of :func:`~.cache.cached_loader` over A's cached activations (or, when caching is
off, the data module's own training loader, seeded per round). So a pair's result does not
depend on which other pairs share its loop. What is shared is the work: A's fronts run once
per batch for all pairs (or once in all, when cached), and the stitched inputs of up to
``max_pairs_per_step`` pairs into one back go through B's frozen back together, stacked along
the batch; the gradients stay separate because each pair's loss only reaches its own stitch. The pairs'
Adam states live in one optimiser, one parameter group per pair: Adam updates every parameter
on its own, so this is the same arithmetic as one optimiser per pair, with one ``step()`` call
per batch instead of one per pair (each call costs a fixed overhead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..cut import cut_outputs, split
from ..models.base import CutModel
from ..training.recipe import build_optimizer, build_scheduler
from ..utils.modules import model_device
from .cache import should_cache
from .matrix_direct import fit_direct
from .matrix_plan import MatrixPair, chunks, group_by
from .task_loss import stitch_loss, stitching_recipe


@dataclass(eq=False)
class _Trainer:
    """One pair's parameter group (in the shared optimiser) and running sums."""

    pair: MatrixPair
    group: dict
    history: list[dict] = field(default_factory=list)
    sums: list = field(default_factory=lambda: [0.0, 0, 0, 0])  # loss sum, examples, correct, val examples

    @property
    def back_name(self) -> str:
        return self.pair.back


def fit_task(
    pairs: Sequence[MatrixPair], model_a: CutModel, model_b: CutModel, data, *, seed: int = 0,
    epochs: int = 30, lr: float = 1e-3, batch_size: int = 128, schedule: str = "step",
    weight_decay: float = 0.0, cache: bool | None = None, loss: str = "hard",
    temperature: float = 1.0, l1: float = 0.0, ridge: float = 1e-6, direct_init: bool | None = None,
    max_pairs_per_step: int = 16,
) -> None:  # fmt: skip
    """Train the stitches of ``pairs`` together; sets each ``pair.report`` as
    :func:`~.matching.task_loss` reports it. A pair whose loss turns non-finite is marked
    ``failed`` (with the reason) and drops out; the others go on."""
    needs = [p for p in pairs if (p.layer.needs_direct_init if direct_init is None else direct_init)]
    fit_direct(needs, model_a, model_b, data.loader("train", batch_size=512, shuffle=False), ridge)
    for pair in pairs:
        if pair not in needs:
            pair.report = {}
        if not pair.stitched.trainable_parameters():
            pair.report.update(epochs=0, history=[], cached=False)
    live = [p for p in pairs if p.stitched.trainable_parameters()]
    if not live:
        return
    recipe = stitching_recipe(epochs, lr, batch_size, schedule, weight_decay)
    cached = all(should_cache(cache, data.augment, len(data.train_set), p.layer.in_shape) for p in live)
    L.seed_everything(seed, verbose=False)
    stream = _CachedStream(model_a, model_b, live, data, batch_size, seed, loss == "soft") if cached else None
    steps = len(stream) if cached else math.ceil(len(data.train_set) / batch_size)
    optimizer = build_optimizer([{"params": list(p.stitched.trainable_parameters())} for p in live], recipe)
    scheduler = build_scheduler(optimizer, recipe, steps)  # the same factor for every group
    trainers = [_Trainer(p, group) for p, group in zip(live, optimizer.param_groups, strict=True)]
    backs = {b: split(model_b, b)[1] for b in {p.back for p in live}}
    images = None if cached else data.loader("train", batch_size=batch_size)  # one loader: fresh order each epoch
    for epoch in range(epochs):
        for p in live:
            p.layer.train()  # donors stay in eval mode (StitchedModel.train would re-walk them)
        batches = stream if cached else _image_batches(model_a, model_b, live, images, loss == "soft")
        for acts, y, teacher in batches:
            optimizer.zero_grad(set_to_none=True)  # a pair that failed keeps no gradient: Adam skips it
            _step([t for t in trainers if t.pair.status == "pending"], acts, y, teacher, backs, max_pairs_per_step,
                  dict(kind=loss, temperature=temperature, l1=l1), epoch)  # fmt: skip
            optimizer.step()
            scheduler.step()
        _validate(trainers, model_a, data, backs, max_pairs_per_step)
        for t in trainers:
            _end_epoch(t, epoch)
    for t in trainers:
        t.pair.stitched.eval()
        t.pair.report.update(epochs=epochs, cached=cached, history=t.history)


class _CachedStream:
    """A's activations at every front, labels (and B's logits), cached once; batches in the
    seeded order that :func:`~.cache.cached_loader` gives a single-pair job."""

    def __init__(self, model_a, model_b, pairs, data, batch_size: int, seed: int, teacher: bool) -> None:
        fronts, acts, labels, logits = sorted({p.front for p in pairs}), {}, [], []
        device = model_device(model_a)
        with torch.no_grad():
            for x, y, *_ in data.loader("train", batch_size=512, shuffle=False):
                x = x.to(device)
                for name, a in cut_outputs(model_a, x, fronts).items():
                    acts.setdefault(name, []).append(a.float().cpu())  # (b, *shape_a)
                labels.append(y.cpu())
                if teacher:
                    logits.append(model_b(x).float().cpu())  # (b, classes)
        self.device = device
        self.acts = {name: torch.cat(parts) for name, parts in acts.items()}
        self.labels, self.logits = torch.cat(labels), torch.cat(logits) if teacher else None
        index = TensorDataset(torch.arange(len(self.labels)))
        self.order = DataLoader(index, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        for (idx,) in self.order:
            acts = {name: a[idx].to(self.device) for name, a in self.acts.items()}
            teacher = self.logits[idx].to(self.device) if self.logits is not None else None
            yield acts, self.labels[idx].to(self.device), teacher


def _image_batches(model_a, model_b, pairs, loader, teacher: bool):
    """Batches of the training loader with A's fronts (and B's logits) computed once each."""
    fronts, device = {p.front for p in pairs}, model_device(model_a)
    for x, y, *_ in loader:
        x = x.to(device)
        with torch.no_grad():
            acts = cut_outputs(model_a, x, fronts)
            logits = model_b(x) if teacher else None
        yield acts, y.to(device), logits


def _prepared(trainers, acts) -> dict[tuple, torch.Tensor]:
    """A's batch resized once per input key (``layer(a) = layer.map(layer.prepare(a))``)."""
    out = {}
    for t in trainers:
        if t.pair.input_key not in out:
            out[t.pair.input_key] = t.pair.layer.prepare(acts[t.pair.front])
    return out


def _stitched_logits(chunk, inputs, back) -> tuple[torch.Tensor, ...]:
    """Logits of every pair in ``chunk`` (one back), from one stacked pass through the back."""
    t_maps = [t.pair.layer.map(inputs[t.pair.input_key]) for t in chunk]
    return back(torch.cat(t_maps)).split(len(t_maps[0]))


def _step(trainers, acts, y, teacher, backs, max_pairs_per_step, loss_options, epoch) -> None:
    """Every live pair's loss and gradient on one batch (the caller steps the optimiser)."""
    inputs = _prepared(trainers, acts)
    for back, group in group_by(trainers, "back_name").items():
        for chunk in chunks(group, max_pairs_per_step):
            logits = _stitched_logits(chunk, inputs, backs[back])
            values = [stitch_loss(z, y, teacher, t.pair.layer, **loss_options) for t, z in zip(chunk, logits, strict=True)]
            stacked = torch.stack(values)
            numbers = stacked.detach().tolist()  # one read of all the chunk's losses, not one per pair
            finite = [math.isfinite(v) for v in numbers]
            if all(finite):
                stacked.sum().backward()
            elif any(finite):
                torch.stack([v for v, ok in zip(values, finite, strict=True) if ok]).sum().backward()
            for t, number, ok in zip(chunk, numbers, finite, strict=True):
                if ok:
                    t.sums[0] += number * len(y)
                    t.sums[1] += len(y)
                else:
                    t.pair.status = "failed"
                    t.pair.reason = (f"NonFiniteLossError: stitching loss is {number} at epoch {epoch} "
                                     f"(lr {t.group['lr']}); lower matching.lr or check "
                                     "the stitch initialisation")  # fmt: skip


@torch.no_grad()
def _validate(trainers, model_a, data, backs, max_pairs_per_step) -> None:
    """Validation accuracy of every pair (stitches in eval mode), as Lightning's epoch-end pass."""
    live = [t for t in trainers if t.pair.status == "pending"]
    if not len(data.val_set) or not live:
        return
    for t in live:
        t.pair.layer.eval()
    fronts, device = {t.pair.front for t in live}, model_device(model_a)
    for x, y, *_ in data.loader("val", batch_size=512):
        x, y = x.to(device), y.to(device)
        inputs = _prepared(live, cut_outputs(model_a, x, fronts))
        for back, group in group_by(live, "back_name").items():
            for chunk in chunks(group, max_pairs_per_step):
                logits = _stitched_logits(chunk, inputs, backs[back])
                for t, z in zip(chunk, logits, strict=True):
                    t.sums[2] += int((z.argmax(1) == y).sum())
                    t.sums[3] += len(y)
    for t in live:
        t.pair.layer.train()


def _end_epoch(t: _Trainer, epoch: int) -> None:
    loss_sum, n, correct, seen = t.sums
    if t.pair.status == "pending":
        t.history.append({"epoch": epoch, "train_loss": loss_sum / max(n, 1),
                          "lr": t.group["lr"], "val_acc": correct / seen if seen else math.nan})  # fmt: skip
    t.sums = [0.0, 0, 0, 0]
