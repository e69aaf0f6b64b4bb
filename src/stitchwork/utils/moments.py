"""Float64 streaming moments of row batches, shifted by the first batch's mean.

Every streamed statistic in stitchwork (direct-matching least squares, stitch metrics,
activation matching, REPAIR's channel statistics, streaming CKA) sums products of rows over
many batches. Summing raw float32 rows and centring at the end, ``Σx²/n − (Σx/n)²``,
cancels catastrophically when the features have a large common offset (post-ReLU maps,
unnormalised inputs). Rows are therefore promoted to float64 and shifted by the *first*
batch's mean before any product; the sums are recentred at the full-data mean exactly at
the end, so the result equals the two-pass value up to float64 rounding.

:class:`RowShift` is that shift alone (for accumulators that keep sums of their own, such as
the fourth-moment sums of debiased CKA); :class:`Moments` builds the usual first and
second moments on it, for one stream ``x`` or paired streams ``x``, ``y``.
"""

from __future__ import annotations

import torch

_F64 = torch.float64
SECOND = ("full", "diag", None)


def column_squares(rows: torch.Tensor) -> torch.Tensor:
    """``Σ_i r_ij²`` per column of ``(m, d)`` rows (the diagonal of ``RᵀR``); ``(r * r).sum(0)``
    is about three times faster on CPU than ``vector_norm(r, dim=0).square()`` or ``square()``."""
    return (rows * rows).sum(0)


class RowShift:
    """Float64 rows minus the first batch's per-feature mean (``shift``).

    Calling it on ``(m, d)`` rows returns the shifted float64 rows; a later batch with a
    different ``d`` is an error (``ValueError``, naming ``what``).
    """

    def __init__(self, what: str = "rows") -> None:
        self.what = what
        self.shift: torch.Tensor | None = None  # (d,) float64

    @property
    def width(self) -> int | None:
        """Features per row, fixed by the first batch (``None`` before it)."""
        return None if self.shift is None else self.shift.numel()

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.detach()
        if rows.ndim != 2:
            raise ValueError(f"{self.what} must be (m, d) rows, got shape {tuple(rows.shape)}")
        if self.shift is None:
            self.shift = rows.to(_F64).mean(0)
        elif rows.shape[1] != self.shift.numel():
            raise ValueError(
                f"{self.what}: batch has {rows.shape[1]} features, the first batch had {self.shift.numel()}"
            )
        shift = self.shift.to(rows.device)
        if rows.dtype == _F64:
            return rows - shift
        # cast, then subtract in place: the values of a mixed-dtype sub in about half its time on CPU
        return rows.to(_F64).sub_(shift)


class Moments:
    """Streaming float64 moments of rows ``x (m, dx)`` and optionally paired rows ``y (m, dy)``.

    Parameters
    ----------
    xx, yy
        Which second moments of ``x`` / ``y`` to keep: ``"full"`` (``d x d``), ``"diag"``
        (per-feature variance only, ``O(d)`` memory) or ``None``.
    cross
        Keep the ``dx x dy`` cross moment of ``x`` and ``y``.

    Results are centred at the full-data mean and divided by ``n`` (population moments):
    :attr:`mean_x`, :meth:`cov_x` (full matrix or its diagonal, as kept), and the same for
    ``y``, plus :meth:`cov_xy`. ``y`` is moved to ``x``'s device, where the sums live.
    """

    def __init__(self, xx: str | None = "full", yy: str | None = None, cross: bool = False) -> None:
        if xx not in SECOND or yy not in SECOND:
            raise ValueError(f"second moments must be one of {SECOND}, got xx={xx!r}, yy={yy!r}")
        self.kinds = {"x": xx, "y": yy}
        self.cross = cross
        self.paired = yy is not None or cross
        self.n = 0
        self._shift = {"x": RowShift("x"), "y": RowShift("y")}
        self._sums: dict[str, torch.Tensor] = {}

    def update(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Add one batch of rows (paired rows when ``y`` is kept); any device and dtype."""
        if not self.paired and x.ndim != 2:
            raise ValueError(f"need rows (m, d), got shape {tuple(x.shape)}")
        if self.paired and (y is None or y.ndim != 2 or x.ndim != 2 or y.shape[0] != x.shape[0]):
            got = None if y is None else tuple(y.shape)
            raise ValueError(f"need paired rows (m, dx) and (m, dy), got {tuple(x.shape)} and {got}")
        self._check_widths(x, y)
        rows = {"x": self._shift["x"](x)}
        if self.paired:
            rows["y"] = self._shift["y"](y.to(x.device))
        if not self._sums:
            self._sums = _zeros(rows, self.kinds, self.cross)
        s = self._sums
        for t, r in rows.items():  # r: (m, d) shifted float64 rows
            s["s" + t] += r.sum(0)
            if self.kinds[t] == "full":
                s[t + t].addmm_(r.T, r)
            elif self.kinds[t] == "diag":
                s[t + t] += column_squares(r)
        if self.cross:
            s["xy"].addmm_(rows["x"].T, rows["y"])
        self.n += x.shape[0]

    def _check_widths(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Later batches must have the first batch's feature counts (one message for both)."""
        first = [self._shift[t].width for t in ("xy" if self.paired else "x")]
        if first[0] is None:
            return
        got = [x.shape[1]] + ([y.shape[1]] if self.paired else [])
        if got != first:
            raise ValueError(
                f"batch has {' and '.join(map(str, got))} features, the first batch had "
                f"{' and '.join(map(str, first))}"
            )

    def _check(self, least: int = 1) -> None:
        if self.n < least:
            raise ValueError(f"need at least {least} rows, got {self.n}")

    def _mean_shifted(self, t: str) -> torch.Tensor:
        self._check()
        return self._sums["s" + t] / self.n

    @property
    def mean_x(self) -> torch.Tensor:
        """``(dx,)`` mean of every row seen."""
        return self._mean_shifted("x") + self._shift["x"].shift

    @property
    def mean_y(self) -> torch.Tensor:
        """``(dy,)`` mean of every ``y`` row seen."""
        return self._mean_shifted("y") + self._shift["y"].shift

    def _cov(self, t: str) -> torch.Tensor:
        m = self._mean_shifted(t)
        if self.kinds[t] == "full":
            return self._sums[t + t] / self.n - torch.outer(m, m)
        if self.kinds[t] == "diag":
            return self._sums[t + t] / self.n - m.square()
        raise ValueError(f"second moments of {t} were not kept (pass {t}{t}='full' or 'diag')")

    def cov_x(self) -> torch.Tensor:
        """Centred second moment of ``x``: ``(dx, dx)`` if kept full, else ``(dx,)`` variances."""
        return self._cov("x")

    def cov_y(self) -> torch.Tensor:
        """Centred second moment of ``y``: ``(dy, dy)`` if kept full, else ``(dy,)`` variances."""
        return self._cov("y")

    def cov_xy(self) -> torch.Tensor:
        """``(dx, dy)`` centred cross moment ``E[(x − mean_x)(y − mean_y)ᵀ]``."""
        if not self.cross:
            raise ValueError("the cross moment was not kept (pass cross=True)")
        return self._sums["xy"] / self.n - torch.outer(self._mean_shifted("x"), self._mean_shifted("y"))


def _zeros(rows: dict[str, torch.Tensor], kinds: dict, cross: bool) -> dict[str, torch.Tensor]:
    """Zero sums shaped for the first batch's rows, on their device."""
    z = {"dtype": _F64, "device": rows["x"].device}
    d = {t: r.shape[1] for t, r in rows.items()}
    sums = {"s" + t: torch.zeros(d[t], **z) for t in rows}
    for t in rows:
        if kinds[t] is not None:
            sums[t + t] = torch.zeros((d[t], d[t]) if kinds[t] == "full" else d[t], **z)
    if cross:
        sums["xy"] = torch.zeros(d["x"], d["y"], **z)
    return sums
