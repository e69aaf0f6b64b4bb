"""Similarity accumulators fed batch by batch: ``update(X, Y)``, ``compute()``, ``merge(other)``.

Two different quantities, labelled as such:

- :class:`LinearCKAAccumulator` is *exact*: it equals :func:`linear_cka` on all rows seen
  (biased, or debiased with ``debiased=True``), from running float64 moments. Memory is
  ``O(dx^2 + dy^2 + dx dy)`` whatever the number of samples.
- :class:`MinibatchCKAAccumulator` is Nguyen et al. (2021)'s minibatch CKA: the unbiased HSIC of
  each batch, averaged over batches, then normalised. It *estimates debiased CKA* (not the
  biased full-data value) and depends on the batch size; averaging per-batch biased CKA instead
  would be biased upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from ..utils.moments import RowShift
from ._checks import SimilarityInputError, as_pair
from .cka import cka_ratio, linear_stats, sq_norm, unbiased_hsic, unbiased_hsic_from_sums

_F64 = torch.float64


@runtime_checkable
class SimilarityAccumulator(Protocol):
    """A similarity index computed from paired batches without keeping them."""

    def update(self, X: Any, Y: Any) -> None:
        """Add one batch of paired rows."""
        ...

    def compute(self) -> float:
        """The index over every batch seen so far."""
        ...

    def merge(self, other: Any) -> Any:
        """Fold in an accumulator of the same kind fed with other rows; returns ``self``."""
        ...


@dataclass
class _Moments:
    """Sums over rows of ``x = X - shift_x``, ``y = Y - shift_y``, ``a = |x|^2``, ``b = |y|^2``."""

    n: int
    sx: torch.Tensor  # (dx,)  sum x
    sy: torch.Tensor  # (dy,)
    sxx: torch.Tensor  # (dx, dx) sum x x^T
    syy: torch.Tensor  # (dy, dy)
    sxy: torch.Tensor  # (dx, dy)
    sa: torch.Tensor  # ()  sum a
    sb: torch.Tensor
    saa: torch.Tensor  # sum a^2
    sbb: torch.Tensor
    sab: torch.Tensor  # sum a b
    ax: torch.Tensor  # (dx,) sum a x
    by: torch.Tensor  # (dy,) sum b y
    ay: torch.Tensor  # (dy,) sum a y
    bx: torch.Tensor  # (dx,) sum b x

    @staticmethod
    def zeros(dx: int, dy: int, device: torch.device) -> _Moments:
        z = {"dtype": _F64, "device": device}
        scalars = {f: torch.zeros((), **z) for f in ("sa", "sb", "saa", "sbb", "sab")}
        return _Moments(
            n=0, sx=torch.zeros(dx, **z), sy=torch.zeros(dy, **z),
            sxx=torch.zeros(dx, dx, **z), syy=torch.zeros(dy, dy, **z), sxy=torch.zeros(dx, dy, **z),
            ax=torch.zeros(dx, **z), by=torch.zeros(dy, **z), ay=torch.zeros(dy, **z),
            bx=torch.zeros(dx, **z), **scalars,
        )  # fmt: skip

    def add_rows_(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the sums of shifted float64 rows in place (no ``d x d`` temporaries)."""
        a, b = x.square().sum(dim=1), y.square().sum(dim=1)  # (n,)
        self.n += x.shape[0]
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.sxx.addmm_(x.T, x)
        self.syy.addmm_(y.T, y)
        self.sxy.addmm_(x.T, y)
        self.sa += a.sum()
        self.sb += b.sum()
        self.saa += a @ a
        self.sbb += b @ b
        self.sab += a @ b
        self.ax.addmv_(x.T, a)
        self.by.addmv_(y.T, b)
        self.ay.addmv_(y.T, a)
        self.bx.addmv_(x.T, b)

    def add_(self, o: _Moments) -> None:
        """Add another set of sums taken around the same shift, in place."""
        self.n += o.n
        for f in self.__dataclass_fields__:
            if f != "n":
                getattr(self, f).add_(getattr(o, f))

    def shifted(self, dx: torch.Tensor, dy: torch.Tensor) -> _Moments:
        """The same sums for rows ``x + dx``, ``y + dy`` (exact algebra, no data needed)."""
        n, kx, ky = self.n, dx @ dx, dy @ dy
        sa = self.sa + 2 * dx @ self.sx + n * kx
        sb = self.sb + 2 * dy @ self.sy + n * ky
        sxx_dx, syy_dy = self.sxx @ dx, self.syy @ dy
        saa = self.saa + 4 * dx @ self.ax + 4 * dx @ sxx_dx + 2 * kx * self.sa
        saa = saa + 4 * kx * dx @ self.sx + n * kx * kx
        sbb = self.sbb + 4 * dy @ self.by + 4 * dy @ syy_dy + 2 * ky * self.sb
        sbb = sbb + 4 * ky * dy @ self.sy + n * ky * ky
        sab = self.sab + 2 * dy @ self.ay + ky * self.sa + 2 * dx @ self.bx
        sab = sab + 4 * dx @ self.sxy @ dy + 2 * ky * dx @ self.sx + kx * self.sb
        sab = sab + 2 * kx * dy @ self.sy + n * kx * ky
        return _Moments(
            n=n,
            sx=self.sx + n * dx,
            sy=self.sy + n * dy,
            sxx=self.sxx + torch.outer(dx, self.sx) + torch.outer(self.sx, dx) + n * torch.outer(dx, dx),
            syy=self.syy + torch.outer(dy, self.sy) + torch.outer(self.sy, dy) + n * torch.outer(dy, dy),
            sxy=self.sxy + torch.outer(dx, self.sy) + torch.outer(self.sx, dy) + n * torch.outer(dx, dy),
            sa=sa, sb=sb, saa=saa, sbb=sbb, sab=sab,
            ax=self.ax + 2 * sxx_dx + kx * self.sx + dx * sa,
            by=self.by + 2 * syy_dy + ky * self.sy + dy * sb,
            ay=self.ay + 2 * self.sxy.T @ dx + kx * self.sy + dy * sa,
            bx=self.bx + 2 * self.sxy @ dy + ky * self.sx + dx * sb,
        )  # fmt: skip


class LinearCKAAccumulator:
    """Exact streaming linear CKA over every row passed to :meth:`update`.

    Keeps float64 sums of ``x``, ``x x^T``, ``y y^T``, ``x y^T`` (and, for the debiased value,
    fourth-moment sums of the row norms) with rows shifted by the first batch's mean, so large
    common offsets do not cancel digits. :meth:`compute` recentres the sums at the full-data
    mean algebraically. Memory ``O(dx^2 + dy^2 + dx dy)``.

    Parameters
    ----------
    debiased
        Return debiased CKA (unbiased HSIC over all rows; needs n >= 4) instead of biased CKA.
    spatial
        Policy applied to conv-map batches: ``"flatten"``, ``"samples"`` or ``"avgpool"``.
    """

    def __init__(self, debiased: bool = False, spatial: str | None = None) -> None:
        self.debiased = debiased
        self.spatial = spatial
        self._rows = (RowShift("X"), RowShift("Y"))  # the shared first-batch-mean shift
        self._m: _Moments | None = None

    @property
    def _shift(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        sx, sy = (r.shift for r in self._rows)
        return None if sx is None else (sx, sy)

    def update(self, X: Any, Y: Any) -> None:
        """Add a batch of paired rows ``(b, dx)`` and ``(b, dy)`` (any b >= 1)."""
        X, Y = as_pair(X, Y, self.spatial, min_samples=1)
        held = (self._rows[0].width, self._rows[1].width)
        if held[0] is not None and (X.shape[1], Y.shape[1]) != held:
            raise SimilarityInputError(
                f"batch has {X.shape[1]} and {Y.shape[1]} features but the accumulator holds "
                f"{held[0]} and {held[1]}"
            )
        x, y = self._rows[0](X), self._rows[1](Y)  # float64, shifted
        if self._m is None:
            self._m = _Moments.zeros(x.shape[1], y.shape[1], x.device)
        self._m.add_rows_(x, y)

    def merge(self, other: LinearCKAAccumulator) -> LinearCKAAccumulator:
        """Fold in ``other``'s rows (its sums are re-expressed around this shift); returns self."""
        if not isinstance(other, LinearCKAAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into LinearCKAAccumulator")
        if other._m is None:
            return self
        if self._m is None:  # adopt a copy of other's sums and shift
            zx, zy = torch.zeros_like(other._shift[0]), torch.zeros_like(other._shift[1])
            self._rows[0].shift, self._rows[1].shift = other._shift
            self._m = other._m.shifted(zx, zy)
            return self
        (sx, sy), (ox, oy) = self._shift, other._shift
        if (sx.numel(), sy.numel()) != (ox.numel(), oy.numel()):
            raise SimilarityInputError("cannot merge accumulators with different feature counts")
        self._m.add_(other._m.shifted(ox - sx, oy - sy))
        return self

    @property
    def n(self) -> int:
        """Number of rows seen."""
        return 0 if self._m is None else self._m.n

    def compute(self) -> float:
        """Linear CKA (biased or debiased) of all rows seen so far."""
        need = 4 if self.debiased else 2
        if self.n < need:
            raise SimilarityInputError(f"need at least {need} rows, have seen {self.n}")
        m = self._m
        c = m.shifted(-m.sx / m.n, -m.sy / m.n)  # sums of centred rows
        kl, kk, ll = sq_norm(c.sxy), sq_norm(c.sxx), sq_norm(c.syy)
        if not self.debiased:
            return cka_ratio(kl, kk, ll)
        # centred linear kernels: diag K = a, K 1 = 0, so K~ 1 = -a
        n = m.n
        return cka_ratio(
            unbiased_hsic_from_sums(n, kl, c.sab, -c.sa, -c.sb, c.sab),
            unbiased_hsic_from_sums(n, kk, c.saa, -c.sa, -c.sa, c.saa),
            unbiased_hsic_from_sums(n, ll, c.sbb, -c.sb, -c.sb, c.sbb),
        )


class MinibatchCKAAccumulator:
    """Minibatch CKA (Nguyen et al. 2021): per-batch unbiased HSIC, averaged, then normalised.

    ``CKA_mb = mean_k HSIC_u(K_k, L_k) / sqrt(mean_k HSIC_u(K_k, K_k) * mean_k HSIC_u(L_k, L_k))``
    over batches k with linear kernels. This estimates *debiased* CKA, not the biased
    full-data value. Each batch needs at least 4 rows.
    """

    def __init__(self, spatial: str | None = None) -> None:
        self.spatial = spatial
        self.batches = 0
        self._sums = torch.zeros(3, dtype=_F64)  # kl, kk, ll

    def update(self, X: Any, Y: Any) -> None:
        """Add the unbiased HSIC terms of one batch of ``b >= 4`` paired rows."""
        X, Y = as_pair(X, Y, self.spatial)
        b = X.shape[0]
        if b < 4:
            raise SimilarityInputError(f"unbiased HSIC needs batches of n >= 4 rows, got {b}")
        s = linear_stats(X, Y)
        dk, dl = s["dk"], s["dl"]
        terms = torch.stack(
            [
                unbiased_hsic(b, s["kl"], dk, dl),
                unbiased_hsic(b, s["kk"], dk, dk),
                unbiased_hsic(b, s["ll"], dl, dl),
            ]
        )
        self._sums += terms.cpu()
        self.batches += 1

    def merge(self, other: MinibatchCKAAccumulator) -> MinibatchCKAAccumulator:
        """Fold in another accumulator's batches; returns self."""
        if not isinstance(other, MinibatchCKAAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into MinibatchCKAAccumulator")
        self._sums += other._sums
        self.batches += other.batches
        return self

    def compute(self) -> float:
        """Minibatch CKA over the batches seen (raises if a mean self-HSIC is not positive)."""
        if self.batches == 0:
            raise SimilarityInputError("no batches seen; call update(X, Y) first")
        kl, kk, ll = self._sums / self.batches
        return cka_ratio(kl, kk, ll)
