"""Every single-pair metric for every pair of a stitching matrix, with shared passes.

The same quantities as :func:`~.metrics.stitch_metrics`, from the same sums
(:class:`~.metrics.PairSums`, :class:`~.metrics.TargetSums`, :func:`~.metrics.finish_metrics`),
over the same unshuffled batches: ``dm_residual_fit`` and every target's Gaussian from a
direct fit's own sums where the map is affine in the rows (else from one pass over the
training split), then one pass over the test split. In
each, A and B run once per batch (every cut point taken on the way), A's maps are resized
once per input key, and in the test pass the stitched inputs of up to
``max_pairs_per_step`` fronts into one back go through B's back together (stacked along the
batch). Stacking only changes which rows share a kernel call: values agree with the
single-pair metrics to float rounding (bit for bit in the tests on CPU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..cut import cut_outputs, split
from ..models.base import CutModel
from ..utils.modules import model_device
from .matrix_plan import MatrixPair, chunks, group_by
from .metrics import (
    Mahalanobis,
    PairSums,
    RowFigures,
    RowStats,
    TargetSums,
    finish_metrics,
    residual_sum,
)

_F64 = torch.float64


@torch.no_grad()
def matrix_metrics(
    pairs: Sequence[MatrixPair], model_a: CutModel, model_b: CutModel, data, *,
    batch_size: int = 512, ood_ridge: float = 1e-3, max_pairs_per_step: int = 16,
    train_batches: Sequence[tuple[dict, dict]] | None = None,
    fit_figures: Mapping[int, tuple[float, RowFigures]] | None = None,
) -> None:  # fmt: skip
    """Set ``pair.metrics`` of every (fitted) pair, as :func:`~.metrics.stitch_metrics` would.

    ``fit_figures``: ``id(pair) -> (Σ‖T(A_i) − B_j‖², B_j's training rows)`` already known
    (from a direct fit's sums, :func:`~.matrix_direct.fit_direct`); the other pairs get them
    from a pass over the training split: over ``train_batches``, the split's ``(inputs,
    rows_b)`` per batch of ``batch_size`` (from :class:`~.matrix_direct.ActivationStore`)
    when they hold every input and target key of those pairs, else by running A and B again.
    """
    if not pairs:
        return
    for pair in pairs:
        pair.stitched.eval()
    test = data.loader("test", batch_size=batch_size, shuffle=False)
    known = dict(fit_figures or {})
    residuals = {i: r for i, (r, _) in known.items()}
    b_train = {p.target_key: known[id(p)][1] for p in pairs if id(p) in known}
    rest = [p for p in pairs if id(p) not in known]
    if rest:
        if not _covers(train_batches, rest):
            train = data.loader("train", batch_size=batch_size, shuffle=False)
            train_batches = (_activations(rest, model_a, model_b, x.to(model_device(model_a))) for x, *_ in train)
        more, stats = _train_pass(rest, train_batches)
        residuals.update(more)
        b_train = {**stats, **b_train}
    gauss = {k: Mahalanobis(s.mean(), s.cov(), ood_ridge) for k, s in b_train.items()}
    out, acc_a, acc_b = _test_pass(pairs, model_a, model_b, test, gauss, max_pairs_per_step)
    for pair in pairs:
        pair.metrics = finish_metrics(out[id(pair)], pair.layer, acc_a, acc_b, residuals[id(pair)],
                                      b_train[pair.target_key])  # fmt: skip


def _activations(pairs, model_a, model_b, x) -> tuple[dict, dict]:
    """A's inputs to every stitch (resized once per input key) and B's rows per target key."""
    acts_a = cut_outputs(model_a, x, {p.front for p in pairs})
    acts_b = cut_outputs(model_b, x, {p.back for p in pairs})
    inputs, rows_b = {}, {}
    for pair in pairs:
        if pair.input_key not in inputs:
            inputs[pair.input_key] = pair.layer.prepare(acts_a[pair.front])
        if pair.target_key not in rows_b:
            rows_b[pair.target_key] = pair.layer.rows(acts_b[pair.back])
    return inputs, rows_b


def _covers(batches, pairs) -> bool:
    """Whether stored batches hold every input and target key that ``pairs`` read."""
    if not batches:
        return False
    inputs, rows_b = batches[0]
    return all(p.input_key in inputs and p.target_key in rows_b for p in pairs)


def _train_pass(pairs, batches) -> tuple[dict[int, float], dict[tuple, RowStats]]:
    """``Σ‖T(A_i) − B_j‖²`` per pair and the row statistics per target, on the fit split."""
    residuals, stats = {id(p): 0.0 for p in pairs}, {p.target_key: RowStats() for p in pairs}
    keys = {p.target_key for p in pairs}
    for inputs, rows_b in batches:
        rows64 = {key: rows_b[key].to(_F64) for key in keys}  # promoted once for all fronts
        for key in keys:
            stats[key].update(rows_b[key])
        for pair in pairs:
            t = pair.layer.rows(pair.layer.map(inputs[pair.input_key]))
            residuals[id(pair)] += residual_sum(t, rows64[pair.target_key])
    return residuals, stats


def _test_pass(pairs, model_a, model_b, loader, gauss, max_pairs_per_step) -> tuple[dict[int, dict], float, float]:
    """Test-split metrics of every pair, and A's and B's accuracies, from one pass: A and B run
    once per batch, and the stitched inputs of up to ``max_pairs_per_step`` pairs into one
    back go through it together."""
    backs = {b: split(model_b, b)[1] for b in {p.back for p in pairs}}
    targets = {p.target_key: TargetSums(gauss[p.target_key]) for p in pairs}
    sums, device = {id(p): PairSums() for p in pairs}, model_device(model_a)
    correct, n = [0, 0], 0  # A's and B's own predictions, as training.evaluate counts them
    for x, y, *_ in loader:
        x, y = x.to(device), y.to(device)
        inputs, rows_b = _activations(pairs, model_a, model_b, x)
        z_b = model_b(x)  # B's own logits (= back_j(B_j(x)) for every j)
        for i, z in enumerate((model_a(x), z_b)):
            correct[i] += int((z.argmax(1) == y).sum())
        n += len(y)
        for key, rows in rows_b.items():
            targets[key].update(rows)
        rows_b = {key: rows.to(_F64) for key, rows in rows_b.items()}  # promoted once for all fronts
        for back, group in group_by(pairs, "back").items():
            for chunk in chunks(group, max_pairs_per_step):
                t_maps = [p.layer.map(inputs[p.input_key]) for p in chunk]
                logits = backs[back](torch.cat(t_maps)).split(len(x))  # stitched logits, pair by pair
                for pair, t_map, z in zip(chunk, t_maps, logits, strict=True):
                    key = pair.target_key
                    sums[id(pair)].update(pair.layer.rows(t_map), rows_b[key], z, z_b, y, gauss[key])
    if n == 0:
        raise ValueError("cannot evaluate on an empty loader")
    out = {id(p): sums[id(p)].compute(targets[p.target_key]) for p in pairs}
    return out, correct[0] / n, correct[1] / n
