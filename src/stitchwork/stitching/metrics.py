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
from .base import StitchLayer
from .stitched import StitchedModel

_F64 = torch.float64


class RowFigures:
    """Total squared deviation and total squares of rows, from their count, mean and covariance."""

    n: int

    def mean(self) -> torch.Tensor:
        raise NotImplementedError

    def cov(self) -> torch.Tensor:
        raise NotImplementedError

    def total_variation(self) -> float:
        """``‖Y − mean‖²_F`` over all rows seen."""
        return float(self.cov().trace() * self.n)

    def total_squares(self) -> float:
        """``‖Y‖²_F`` over all rows seen (uncentred: total variation plus ``n · ‖mean‖²``)."""
        return self.total_variation() + float(self.mean().square().sum()) * self.n


class RowStats(Moments, RowFigures):
    """Streaming mean, covariance and total squared deviation of rows ``(m, d)`` (float64)."""

    def __init__(self) -> None:
        super().__init__(xx="full")

    def mean(self) -> torch.Tensor:
        return self.mean_x

    def cov(self) -> torch.Tensor:
        return self.cov_x()


class RowSummary(RowFigures):
    """The figures of rows already reduced elsewhere (a matrix fit's float64 sums)."""

    def __init__(self, n: int, mean: torch.Tensor, cov: torch.Tensor) -> None:
        self.n, self._mean, self._cov = n, mean, cov

    def mean(self) -> torch.Tensor:
        return self._mean

    def cov(self) -> torch.Tensor:
        return self._cov


def residuals(residual: float, stats: RowFigures, split: str) -> dict[str, float]:
    """``dm_residual_<split>`` (Balogh & Jelasity: ``‖T(A)−B‖² / ‖B‖²``) and its centred variant
    ``dm_residual_centered_<split>`` (``‖T(A)−B‖² / ‖B − mean‖²``) from one residual sum."""
    return {
        f"dm_residual_{split}": residual / max(stats.total_squares(), 1e-300),
        f"dm_residual_centered_{split}": residual / max(stats.total_variation(), 1e-300),
    }


class Mahalanobis:
    """Distance to a Gaussian ``N(mean, cov + ridge · mean variance · I)``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, ridge: float = 1e-3):
        reg = ridge * float(cov.diagonal().mean().clamp_min(1e-12))
        self.mean = mean
        self.chol = torch.linalg.cholesky(cov + reg * torch.eye(len(cov), dtype=_F64, device=cov.device))

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        z = torch.linalg.solve_triangular(self.chol, (rows.to(_F64) - self.mean).T, upper=False)
        return z.square().sum(0).sqrt()  # (m,)


def residual_sum(t: torch.Tensor, b: torch.Tensor) -> float:
    """``‖t − b‖²_F`` of two row matrices, reduced in float64."""
    return float((t.to(_F64) - b.to(_F64)).square().sum())


@torch.no_grad()
def _fit_pass(stitched: StitchedModel, loader: Iterable) -> tuple[float, RowStats]:
    """Sum of ``‖T(A)−B‖²`` over the training rows, and the row statistics of B_j."""
    device, layer, stats, residual = model_device(stitched), stitched.stitch, RowStats(), 0.0
    for x, *_ in loader:
        x = x.to(device)
        t, b = layer.rows(layer(stitched.front(x))), layer.rows(stitched.target_front(x))
        residual += residual_sum(t, b)
        stats.update(b)
    return residual, stats


class TargetSums:
    """Test-split sums of one target ``B_j`` that every stitch into it shares."""

    def __init__(self, gauss: Mahalanobis) -> None:
        self.gauss, self.stats, self.d_b, self.rows = gauss, RowStats(), 0.0, 0

    def update(self, b: torch.Tensor) -> None:
        self.stats.update(b)
        self.d_b += float(self.gauss(b).sum())
        self.rows += b.shape[0]


class PairSums:
    """Test-split sums of one stitch: residual, CKA, OOD distance, accuracy, agreement, KL."""

    def __init__(self) -> None:
        self.cka = LinearCKAAccumulator()
        self.residual, self.d_t, self.kl, self.correct, self.agree, self.n = 0.0, 0.0, 0.0, 0, 0, 0

    def update(self, t, b, z, z_b, y, gauss: Mahalanobis) -> None:
        """Rows ``t`` (stitched) and ``b`` (target), logits ``z`` (stitched) and ``z_b`` (B's)."""
        t = t.to(_F64)  # once: the three float64 reductions below would each cast it again
        self.residual += residual_sum(t, b)
        self.cka.update(t, b)
        self.d_t += float(gauss(t).sum())
        self.correct += int((z.argmax(1) == y).sum())
        self.agree += int((z.argmax(1) == z_b.argmax(1)).sum())
        log_p, log_q = F.log_softmax(z_b.to(_F64), 1), F.log_softmax(z.to(_F64), 1)
        self.kl += float((log_p.exp() * (log_p - log_q)).sum())
        self.n += len(y)

    def compute(self, target: TargetSums) -> dict:
        n = self.n
        return {
            "stitched_acc": self.correct / n,
            **residuals(self.residual, target.stats, "test"),
            "cka_stitched_target": self.cka.compute(),
            "agreement_b": self.agree / n,
            "kl_b": self.kl / n,
            "ood_mahalanobis_stitched": self.d_t / target.rows,
            "ood_mahalanobis_target": target.d_b / target.rows,
        }


@torch.no_grad()
def _test_pass(stitched: StitchedModel, loader: Iterable, gauss: Mahalanobis) -> dict:
    device, layer = model_device(stitched), stitched.stitch
    target, pair = TargetSums(gauss), PairSums()
    for x, y, *_ in loader:
        x, y = x.to(device), y.to(device)
        t_map, b_map = layer(stitched.front(x)), stitched.target_front(x)
        z, z_b = stitched.back(t_map), stitched.back(b_map)  # stitched and B's logits
        t, b = layer.rows(t_map), layer.rows(b_map)
        target.update(b)
        pair.update(t, b, z, z_b, y, gauss)
    return pair.compute(target)


def finish_metrics(
    out: dict, layer: StitchLayer, acc_a: float, acc_b: float, residual_fit: float, b_train: RowFigures
) -> dict:
    """Add the accuracies and the train-split figures to a test pass's ``out`` (in place)."""
    out.update(
        acc_a=acc_a, acc_b=acc_b, relative_acc=out["stitched_acc"] / acc_b if acc_b else float("nan"),
        penalty=100.0 * (acc_b - out["stitched_acc"]),
        **residuals(residual_fit, b_train, "fit"),
        ood_score=out["ood_mahalanobis_stitched"] / out["ood_mahalanobis_target"],
        sample_policy="examples" if layer.flattens or len(layer.out_shape) == 1 else "positions",
    )  # fmt: skip
    return out


def stitch_metrics(
    stitched: StitchedModel, model_a: nn.Module, model_b: nn.Module, data, *,
    batch_size: int = 512, ood_ridge: float = 1e-3,
) -> dict:  # fmt: skip
    """Every metric of a fitted stitch, on the test split unless the name says ``fit``.

    Returns ``acc_a``, ``acc_b``, ``stitched_acc``, ``relative_acc`` (stitched / B),
    ``penalty`` (B − stitched, in points), ``dm_residual_fit`` / ``dm_residual_test``
    (Balogh & Jelasity's ``‖T(A_i) − B_j‖²_F / ‖B_j‖²_F`` over the rows the stitch fits, on
    the training / test split), ``dm_residual_centered_fit`` / ``_test`` (the same over
    ``‖B_j − mean‖²_F``, mean per feature over all rows: above 1 is further from B_j than its
    mean is), ``cka_stitched_target`` (exact linear CKA over all rows), ``agreement_b``
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
    return finish_metrics(out, stitched.stitch, acc_a, acc_b, residual_fit, b_stats)
