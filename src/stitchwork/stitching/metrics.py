"""How good a stitch is: accuracies, direct-matching residuals, CKA, agreement, KL, OOD score.

Two passes: over the (unshuffled) training split for ``dm_residual_fit`` and the Gaussian
of B_j's activations, then over the test split for everything else. Activations are
compared as the rows that the stitch layer fits (:meth:`StitchLayer.rows`): for channel
maps every spatial position of every image is a sample ``(n*h*w, c)``; for flatten maps and
flat layers every example is a sample. Reductions are in float64.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..similarity import LinearCKAAccumulator
from ..training.evaluate import evaluate
from ..utils.modules import eval_mode, model_device
from ..utils.moments import Moments
from .stitched import StitchedModel

_F64 = torch.float64


class RowStats(Moments):
    """Streaming mean, covariance and total squared deviation of rows ``(m, d)`` (float64)."""

    def __init__(self) -> None:
        super().__init__(xx="full")

    def mean(self) -> torch.Tensor:
        return self.mean_x

    def cov(self) -> torch.Tensor:
        return self.cov_x()

    def total_variation(self) -> float:
        """``‖Y − mean‖²_F`` over all rows seen."""
        return float(self.cov().trace() * self.n)


class Mahalanobis:
    """Distance to a Gaussian ``N(mean, cov + ridge · mean variance · I)``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, ridge: float = 1e-3):
        reg = ridge * float(cov.diagonal().mean().clamp_min(1e-12))
        self.mean = mean
        self.chol = torch.linalg.cholesky(cov + reg * torch.eye(len(cov), dtype=_F64, device=cov.device))

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        z = torch.linalg.solve_triangular(self.chol, (rows.to(_F64) - self.mean).T, upper=False)
        return z.square().sum(0).sqrt()  # (m,)


@torch.no_grad()
def _fit_pass(stitched: StitchedModel, loader: Iterable) -> tuple[float, RowStats]:
    """Sum of ``‖T(A)−B‖²`` over the training rows, and the row statistics of B_j."""
    device, layer, stats, residual = model_device(stitched), stitched.stitch, RowStats(), 0.0
    for x, *_ in loader:
        x = x.to(device)
        t, b = layer.rows(layer(stitched.front(x))), layer.rows(stitched.target_front(x))
        residual += float((t.to(_F64) - b.to(_F64)).square().sum())
        stats.update(b)
    return residual, stats


@torch.no_grad()
def _test_pass(stitched: StitchedModel, loader: Iterable, gauss: Mahalanobis) -> dict:
    device, layer = model_device(stitched), stitched.stitch
    stats, cka = RowStats(), LinearCKAAccumulator()
    sums = dict(residual=0.0, correct=0, agree=0, kl=0.0, n=0, d_t=0.0, d_b=0.0, rows=0)
    for x, y, *_ in loader:
        x, y = x.to(device), y.to(device)
        t_map, b_map = layer(stitched.front(x)), stitched.target_front(x)
        z, z_b = stitched.back(t_map), stitched.back(b_map)  # stitched and B's logits
        t, b = layer.rows(t_map), layer.rows(b_map)
        sums["residual"] += float((t.to(_F64) - b.to(_F64)).square().sum())
        stats.update(b)
        cka.update(t, b)
        sums["d_t"] += float(gauss(t).sum())
        sums["d_b"] += float(gauss(b).sum())
        sums["rows"] += t.shape[0]
        sums["correct"] += int((z.argmax(1) == y).sum())
        sums["agree"] += int((z.argmax(1) == z_b.argmax(1)).sum())
        log_p, log_q = F.log_softmax(z_b.to(_F64), 1), F.log_softmax(z.to(_F64), 1)
        sums["kl"] += float((log_p.exp() * (log_p - log_q)).sum())
        sums["n"] += len(y)
    n = sums["n"]
    return {
        "stitched_acc": sums["correct"] / n,
        "dm_residual_test": sums["residual"] / max(stats.total_variation(), 1e-300),
        "cka_stitched_target": cka.compute(),
        "agreement_b": sums["agree"] / n,
        "kl_b": sums["kl"] / n,
        "ood_mahalanobis_stitched": sums["d_t"] / sums["rows"],
        "ood_mahalanobis_target": sums["d_b"] / sums["rows"],
    }


def stitch_metrics(
    stitched: StitchedModel, model_a: nn.Module, model_b: nn.Module, data, *,
    batch_size: int = 512, ood_ridge: float = 1e-3,
) -> dict:  # fmt: skip
    """Every metric of a fitted stitch, on the test split unless the name says ``fit``.

    Returns ``acc_a``, ``acc_b``, ``stitched_acc``, ``relative_acc`` (stitched / B),
    ``penalty`` (B − stitched, in points), ``dm_residual_fit`` / ``dm_residual_test``
    (``‖T(A_i) − B_j‖²_F / ‖B_j − mean‖²_F`` on the training / test split, mean per feature
    over all rows), ``cka_stitched_target`` (exact linear CKA over all rows), ``agreement_b``
    (fraction of equal predictions), ``kl_b`` (mean ``KL(p_B ‖ p_stitched)``, nats) and
    ``ood_score``: the mean Mahalanobis distance of ``T(A_i)`` rows under a Gaussian fitted
    to B_j's training rows (ridge ``ood_ridge`` · mean variance), divided by the same for B_j's
    own test rows (about 1: in distribution; larger: out of distribution).
    """
    device = model_device(stitched)
    model_a, model_b = model_a.to(device), model_b.to(device)
    train = data.loader("train", batch_size=batch_size, shuffle=False)
    test = data.loader("test", batch_size=batch_size, shuffle=False)
    with eval_mode(stitched):
        residual_fit, b_stats = _fit_pass(stitched, train)
        gauss = Mahalanobis(b_stats.mean(), b_stats.cov(), ood_ridge)
        out = _test_pass(stitched, test, gauss)
    acc_a, acc_b = evaluate(model_a, test)["acc"], evaluate(model_b, test)["acc"]
    out.update(
        acc_a=acc_a, acc_b=acc_b, relative_acc=out["stitched_acc"] / acc_b if acc_b else float("nan"),
        penalty=100.0 * (acc_b - out["stitched_acc"]),
        dm_residual_fit=residual_fit / max(b_stats.total_variation(), 1e-300),
        ood_score=out["ood_mahalanobis_stitched"] / out["ood_mahalanobis_target"],
        sample_policy="examples" if stitched.stitch.flattens or len(stitched.stitch.out_shape) == 1 else "positions",
    )  # fmt: skip
    return out
