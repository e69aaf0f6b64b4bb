"""Normalisation layers chosen by name, so every conv model offers bn | ln | none."""

from __future__ import annotations

from torch import nn

NORMS = ("bn", "ln", "none")


def check_norm(norm: str) -> str:
    """Return ``norm`` or raise naming the valid choices."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    return norm


def conv_norm(norm: str, channels: int) -> nn.Module:
    """Norm for ``(n, c, h, w)`` maps.

    ``ln`` is LayerNorm over (c, h, w) with a per-channel affine, written as
    ``GroupNorm(1, c)``: the form used by Git Re-Basin and REPAIR for ResNets, and one
    whose parameters permute with the channels.
    """
    check_norm(norm)
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "ln":
        return nn.GroupNorm(1, channels)
    return nn.Identity()
