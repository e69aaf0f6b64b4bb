"""Streamed float64 sums for exact linear CKA between many layers at once.

The sums are those of :class:`~stitchwork.similarity.LinearCKAAccumulator` (rows shifted by
their layer's first-batch mean, so large common offsets keep their digits), but shared: a
layer's own sums ``sum z``, ``sum z z^T``, ``sum a``, ``sum a^2``, ``sum a z`` (``a = |z|^2``)
serve every pair it is in, and the pairs' cross sums ``sum z w^T``, ``sum a b``, ``sum a w``
and ``sum b z`` are taken for all pairs at once by GEMMs over the layers stacked side by side.
Centring happens once at the end, in ``O(d_u d_v)`` per pair.
"""

from __future__ import annotations

from typing import Any

import torch

from ..utils.moments import RowShift
from ._checks import SimilarityInputError
from .cka import cka_ratio, unbiased_hsic_from_sums

Key = tuple[str, str]  # (model tag, cut point)
_F64 = torch.float64


class StreamedSums:
    """float64 sums of shifted rows for every (row layer, column layer) pair, in a few GEMMs.

    The rows' layers are stacked side by side into ``Z_r`` (``m x D_r``) and the columns' into
    ``Z_c``; one batch then adds ``Z_r^T Z_c`` (every pair's ``sum z w^T`` at once), the
    row-norm products and each layer's own sums. When rows and columns are the same layers
    (a model against itself) ``Z_r^T Z_r`` also holds every layer's ``sum z z^T``.
    """

    def __init__(self, rows: list[Key], cols: list[Key]) -> None:
        self.rows, self.cols, self.same = rows, cols, rows == cols
        self.layer: dict[Key, dict[str, Any]] = {}
        self.joint: dict[str, torch.Tensor] = {}
        self.n = 0

    @staticmethod
    def bytes_needed(dims: dict[Key, int], rows: list[Key], cols: list[Key]) -> int:
        """float64 bytes of the sums (and of one batch's largest GEMM output)."""
        d_r, d_c = sum(dims[k] for k in rows), sum(dims[k] for k in cols)
        own = 0 if rows == cols else sum(d * d for d in dims.values())
        return 8 * (d_r * d_c + own + (len(rows) + 2) * (d_r + d_c))

    def _offsets(self, keys: list[Key]) -> dict[Key, slice]:
        out, start = {}, 0
        for k in keys:
            d = self.layer[k]["sx"].numel()
            out[k], start = slice(start, start + d), start + d
        return out

    def update(self, feats: dict[Key, torch.Tensor]) -> None:
        """Add one batch: ``feats[k]`` is layer ``k``'s ``(m, d_k)`` rows (same m for all)."""
        z, a = {}, {}
        for k, f in feats.items():
            if k not in self.layer:
                self.layer[k] = _zeros(f.shape[1], f.device, RowShift(k[1]), own_sxx=not self.same)
            s = self.layer[k]
            z[k] = s["shift"](f)  # (m, d) float64, shifted by the layer's first-batch mean
            a[k] = z[k].square().sum(dim=1)  # (m,)
            s["sx"] += z[k].sum(dim=0)
            s["sa"] += a[k].sum()
            s["saa"] += a[k] @ a[k]
            s["ax"].addmv_(z[k].T, a[k])
            if not self.same:
                s["sxx"].addmm_(z[k].T, z[k])
        Zr = torch.cat([z[k] for k in self.rows], dim=1)  # (m, D_r)
        Ar = torch.stack([a[k] for k in self.rows], dim=1)  # (m, L_r)
        Zc = Zr if self.same else torch.cat([z[k] for k in self.cols], dim=1)
        Ac = Ar if self.same else torch.stack([a[k] for k in self.cols], dim=1)
        if not self.joint:
            dev, dr, dc = Zr.device, Zr.shape[1], Zc.shape[1]
            self.joint = {"sxy": torch.zeros(dr, dc, dtype=_F64, device=dev),
                          "sab": torch.zeros(Ar.shape[1], Ac.shape[1], dtype=_F64, device=dev),
                          "ay": torch.zeros(Ar.shape[1], dc, dtype=_F64, device=dev),
                          "bx": torch.zeros(Ac.shape[1], dr, dtype=_F64, device=dev)}  # fmt: skip
        self.joint["sxy"].addmm_(Zr.T, Zc)  # (D_r, D_c): sum z w^T of every pair
        self.joint["sab"].addmm_(Ar.T, Ac)  # (L_r, L_c): sum a b
        self.joint["ay"].addmm_(Ar.T, Zc)  # (L_r, D_c): sum a w
        self.joint["bx"].addmm_(Ac.T, Zr)  # (L_c, D_r): sum b z
        self.n += Zr.shape[0]

    def cka(self, u: Key, v: Key, debiased: bool) -> float:
        """Linear CKA of row layer ``u`` and column layer ``v`` (as LinearCKAAccumulator)."""
        n = self.n
        if n < (4 if debiased else 2):
            raise SimilarityInputError(f"need at least {4 if debiased else 2} rows, have seen {n}")
        x, y = self._centred_self(u), self._centred_self(v)
        if u == v:
            kl, sab = x["kk"], x["saa"]
        else:
            r, c = self._offsets(self.rows), self._offsets(self.cols)
            i, j = self.rows.index(u), self.cols.index(v)
            J = self.joint
            kl, sab = _centred_cross(n, self.layer[u], self.layer[v], J["sxy"][r[u], c[v]],
                                     J["sab"][i, j], J["ay"][i, c[v]], J["bx"][j, r[u]])  # fmt: skip
        if not debiased:
            return cka_ratio(kl, x["kk"], y["kk"])
        # centred linear kernels: diag K = a, K 1 = 0, so K~ 1 = -a (as in LinearCKAAccumulator)
        return cka_ratio(
            unbiased_hsic_from_sums(n, kl, sab, -x["sa"], -y["sa"], sab),
            unbiased_hsic_from_sums(n, x["kk"], x["saa"], -x["sa"], -x["sa"], x["saa"]),
            unbiased_hsic_from_sums(n, y["kk"], y["saa"], -y["sa"], -y["sa"], y["saa"]),
        )

    def _centred_self(self, k: Key) -> dict[str, torch.Tensor]:
        """``<K, K>``, ``sum a`` and ``sum a^2`` of layer ``k``'s centred rows (cached)."""
        s = self.layer[k]
        if "kk" not in s:
            if not torch.isfinite(s["saa"]):
                raise SimilarityInputError(f"activations of cut point {k[1]!r} hold NaN or inf")
            n = self.n
            if self.same:  # the layer's diagonal block of the joint sum z w^T
                r = self._offsets(self.rows)[k]
                s["sxx"] = self.joint["sxy"][r, r]
            s["kk"], s["saa_c"] = _centred_cross(n, s, s, s["sxx"], s["saa"], s["ax"], s["ax"])
            s["sa_c"] = s["sa"] - s["sx"] @ s["sx"] / n
        return {"kk": s["kk"], "sa": s["sa_c"], "saa": s["saa_c"]}


def _centred_cross(n: int, x: dict, y: dict, sxy, sab, ay, bx) -> tuple[torch.Tensor, torch.Tensor]:
    """``||Xc^T Yc||_F^2`` and ``sum_k a_k b_k`` of centred rows, from sums of shifted rows.

    With shifted rows ``z`` (``x`` side) and ``w`` (``y`` side), means ``m = sum z / n`` and
    ``p = sum w / n``, ``a_k = |z_k|^2``, ``b_k = |w_k|^2``: the centred norms are
    ``a_k - 2 m.z_k + |m|^2`` and ``b_k - 2 p.w_k + |p|^2``; expanding their product gives the
    sum below from ``sab``, ``ay = sum a w``, ``bx = sum b z`` and ``sxy = sum z w^T``.
    """
    m, p = x["sx"] / n, y["sx"] / n
    kl = (sxy - torch.outer(x["sx"], p)).square().sum()  # sum (z - m)(w - p)^T, squared
    mm, pp = m @ m, p @ p
    sab_c = sab - 2 * p @ ay + pp * x["sa"] - 2 * m @ bx + 4 * m @ sxy @ p
    sab_c = sab_c - 2 * pp * (m @ x["sx"]) + mm * y["sa"] - 2 * mm * (p @ y["sx"]) + n * mm * pp
    return kl, sab_c


def _zeros(d: int, device: torch.device, shift: RowShift, own_sxx: bool) -> dict[str, Any]:
    z = {"dtype": _F64, "device": device}
    sums = {"sx": torch.zeros(d, **z), "ax": torch.zeros(d, **z)}
    if own_sxx:
        sums["sxx"] = torch.zeros(d, d, **z)
    return {"shift": shift, "sa": torch.zeros((), **z), "saa": torch.zeros((), **z), **sums}
