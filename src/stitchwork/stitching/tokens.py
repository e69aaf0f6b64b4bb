"""Stitching transformers: one affine map applied to every token.

Token activations ``(n, tokens, d)`` (a ViT's encoder blocks: CLS, registers and patches
alike) are stitched by ``W x_t + b`` for each token ``t``; direct matching fits it over the
``n · tokens`` rows, as a 1×1 convolution is fitted over ``n · h · w`` positions.
"""

from __future__ import annotations

from .layers import AffineStitch


class TokenLinearStitch(AffineStitch):
    """``W x_t + b`` on every token of ``(n, tokens, d_a) -> (n, tokens, d_b)``."""

    kind = "token_linear"
    tokens = True
