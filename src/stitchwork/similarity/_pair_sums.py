"""Streamed float64 sums for exact linear CKA between many layers at once.

The sums are those of :class:`~stitchwork.similarity.LinearCKAAccumulator` (rows shifted by
their layer's first-batch mean, so large common offsets keep their digits), but shared: a
layer's own sums ``sum z``, ``sum z z^T``, ``sum a``, ``sum a^2``, ``sum a z`` (``a = |z|^2``)
serve every pair it is in, and each pair only adds its cross sums ``sum z w^T``, ``sum a b``,
``sum a w`` and ``sum b z``. Centring happens once at the end, in ``O(d_u d_v)`` per pair.
"""

from __future__ import annotations

from typing import Any

import torch

from ._checks import SimilarityInputError
from .cka import cka_ratio, unbiased_hsic_from_sums

Key = tuple[str, str]  # (model tag, cut point)
_F64 = torch.float64


class StreamedSums:
    """float64 sums of shifted rows per layer and per cross pair (those of LinearCKAAccumulator)."""

    def __init__(self, cross: list[tuple[Key, Key]]) -> None:
        self.cross = cross
        self.layer: dict[Key, dict[str, Any]] = {}
        self.pair: dict[tuple[Key, Key], dict[str, torch.Tensor]] = {}

    def update(self, feats: dict[Key, torch.Tensor]) -> None:
        z, a = {}, {}
        for k, f in feats.items():
            f = f.to(_F64)
            if k not in self.layer:
                self.layer[k] = _zeros(f.shape[1], f.device, shift=f.mean(dim=0))
            s = self.layer[k]
            z[k] = f - s["shift"]  # (rows, d) shifted
            a[k] = z[k].square().sum(dim=1)  # (rows,)
            s["n"] += f.shape[0]
            s["sx"] += z[k].sum(dim=0)
            s["sxx"].addmm_(z[k].T, z[k])
            s["sa"] += a[k].sum()
            s["saa"] += a[k] @ a[k]
            s["ax"].addmv_(z[k].T, a[k])
        for u, v in self.cross:
            if (u, v) not in self.pair:
                self.pair[(u, v)] = _zeros_pair(z[u].shape[1], z[v].shape[1], z[u].device)
            p = self.pair[(u, v)]
            p["sxy"].addmm_(z[u].T, z[v])
            p["sab"] += a[u] @ a[v]
            p["ay"].addmv_(z[v].T, a[u])
            p["bx"].addmv_(z[u].T, a[v])

    def cka(self, u: Key, v: Key, debiased: bool) -> float:
        """Linear CKA of layers ``u`` and ``v`` over every row seen (as LinearCKAAccumulator)."""
        x, y, n = self._centred_self(u), self._centred_self(v), self.layer[u]["n"]
        if n < (4 if debiased else 2):
            raise SimilarityInputError(f"need at least {4 if debiased else 2} rows, have seen {n}")
        if u == v:
            kl, sab = x["kk"], x["saa"]
        elif (u, v) in self.pair:
            kl, sab = _centred_cross(n, self.layer[u], self.layer[v], **self.pair[(u, v)])
        else:  # stored the other way round
            kl, sab = _centred_cross(n, self.layer[v], self.layer[u], **self.pair[(v, u)])
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
            n = s["n"]
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


def _zeros(d: int, device: torch.device, shift: torch.Tensor) -> dict[str, Any]:
    z = {"dtype": _F64, "device": device}
    sums = {"sx": torch.zeros(d, **z), "sxx": torch.zeros(d, d, **z), "ax": torch.zeros(d, **z)}
    return {"n": 0, "shift": shift, "sa": torch.zeros((), **z), "saa": torch.zeros((), **z), **sums}


def _zeros_pair(dx: int, dy: int, device: torch.device) -> dict[str, torch.Tensor]:
    z = {"dtype": _F64, "device": device}
    return {"sxy": torch.zeros(dx, dy, **z), "sab": torch.zeros((), **z),
            "ay": torch.zeros(dy, **z), "bx": torch.zeros(dx, **z)}  # fmt: skip
