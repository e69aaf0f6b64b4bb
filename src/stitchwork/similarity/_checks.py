"""Input validation and the spatial policy shared by every similarity index.

Every public measure calls :func:`as_pair` first: it turns numpy arrays into tensors, applies
an explicit spatial policy to conv maps, and rejects shapes, values and devices that would
give a silently wrong number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SPATIAL_POLICIES = ("flatten", "samples", "avgpool", "mean_tokens", "cls")
#: Policies that only token activations ``(n, tokens, d)`` take.
TOKEN_POLICIES = ("mean_tokens", "cls")


class SimilarityInputError(ValueError):
    """Raised for inputs a similarity index cannot be computed on (names the bad value)."""


def as_tensor(X: Any, name: str = "X") -> torch.Tensor:
    """Return ``X`` as a real floating or integer torch tensor (numpy arrays are wrapped, not copied).

    Raises
    ------
    TypeError
        If ``X`` is neither a tensor nor a numpy array, or holds complex or boolean values.
    """
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(np.ascontiguousarray(X))
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(X).__name__}")
    if X.is_complex() or X.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    return X


def spatial_features(X: torch.Tensor, spatial: str | None, name: str = "X") -> torch.Tensor:
    """Turn activations into an ``(n_samples, n_features)`` matrix under an explicit policy.

    A 2-D input is returned unchanged whatever the policy. A conv map ``(n, c, h, w)`` needs a
    policy, because the choice changes the number that comes out:

    - ``"flatten"``: every channel at every position is a feature, ``(n, c*h*w)``;
    - ``"samples"``: every position of every image is a sample, ``(n*h*w, c)`` (both inputs
      then need the same ``h*w`` so that rows pair up);
    - ``"avgpool"``: global average over positions, ``(n, c)``.

    Token activations ``(n, t, d)`` (transformer blocks) take the same policies, tokens being
    the positions (``"flatten"``: ``(n, t*d)``; ``"samples"``: ``(n*t, d)``; ``"avgpool"`` or
    ``"mean_tokens"``: the mean token ``(n, d)``), and ``"cls"``: the first (CLS) token ``(n, d)``.

    Raises
    ------
    SimilarityInputError
        For a 4-D input without a policy, an unknown policy, or any other number of dims.
    """
    if spatial is not None and spatial not in SPATIAL_POLICIES:
        raise SimilarityInputError(
            f"unknown spatial policy {spatial!r}; valid policies: {', '.join(SPATIAL_POLICIES)}"
        )
    if X.ndim == 2:
        return X
    if X.ndim == 3:
        return _token_features(X, spatial, name)
    if X.ndim != 4:
        raise SimilarityInputError(
            f"{name} must be (n, d), tokens (n, t, d) or a conv map (n, c, h, w), got shape {tuple(X.shape)}"
        )
    if spatial in TOKEN_POLICIES:
        raise SimilarityInputError(
            f"spatial={spatial!r} is for token activations (n, t, d), but {name} is a conv map of shape "
            f"{tuple(X.shape)}; use one of flatten, samples, avgpool"
        )
    if spatial is None:
        raise SimilarityInputError(
            f"{name} is a conv map of shape {tuple(X.shape)}; pass spatial= one of "
            f"{', '.join(SPATIAL_POLICIES)} (no implicit reshape)"
        )
    n, c, h, w = X.shape
    if spatial == "flatten":
        return X.reshape(n, c * h * w)  # (n, c, h, w) -> (n, c*h*w)
    if spatial == "samples":
        return X.permute(0, 2, 3, 1).reshape(n * h * w, c)  # (n, c, h, w) -> (n*h*w, c)
    return X.mean(dim=(2, 3), dtype=torch.float64)  # (n, c, h, w) -> (n, c)


def _token_features(X: torch.Tensor, spatial: str | None, name: str) -> torch.Tensor:
    """``(n, t, d)`` token activations as a matrix under ``spatial``."""
    if spatial is None:
        raise SimilarityInputError(
            f"{name} holds token activations of shape {tuple(X.shape)}; pass spatial= one of "
            f"{', '.join(SPATIAL_POLICIES)} (no implicit reshape)"
        )
    n, t, d = X.shape
    if spatial == "flatten":
        return X.reshape(n, t * d)  # (n, t, d) -> (n, t*d)
    if spatial == "samples":
        return X.reshape(n * t, d)  # (n, t, d) -> (n*t, d)
    if spatial == "cls":
        return X[:, 0]  # (n, t, d) -> (n, d)
    return X.mean(dim=1, dtype=torch.float64)  # (n, t, d) -> (n, d)


def check_finite(X: torch.Tensor, name: str = "X") -> None:
    """Raise if ``X`` holds NaN or infinity (they would poison every reduction silently)."""
    if X.is_floating_point():
        bad = ~torch.isfinite(X)
        if bool(bad.any()):
            raise SimilarityInputError(
                f"{name} holds {int(bad.sum())} non-finite values (NaN or inf) out of {X.numel()}"
            )


def as_matrix(X: Any, spatial: str | None = None, name: str = "X") -> torch.Tensor:
    """Validate one input and return it as an ``(n, d)`` tensor in its original dtype."""
    X = spatial_features(as_tensor(X, name), spatial, name)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise SimilarityInputError(
            f"{name} needs at least 1 sample and 1 feature, got shape {tuple(X.shape)}"
        )
    check_finite(X, name)
    return X


def as_pair(
    X: Any, Y: Any, spatial: str | None = None, min_samples: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two inputs with paired rows and return them as ``(n, dx)`` and ``(n, dy)``.

    Raises
    ------
    SimilarityInputError
        If the sample counts differ, the tensors live on different devices, there are fewer
        than ``min_samples`` rows, or any value is NaN or inf.
    """
    X = as_matrix(X, spatial, "X")
    Y = as_matrix(Y, spatial, "Y")
    if X.shape[0] != Y.shape[0]:
        hint = " (spatial='samples' multiplies n by h*w)" if spatial == "samples" else ""
        raise SimilarityInputError(
            f"X and Y must have the same number of samples (rows), got X {tuple(X.shape)} "
            f"and Y {tuple(Y.shape)}{hint}"
        )
    if X.device != Y.device:
        raise SimilarityInputError(f"X is on {X.device} but Y is on {Y.device}; move one of them")
    if X.shape[0] < min_samples:
        raise SimilarityInputError(
            f"this estimator needs n >= {min_samples} samples, got n = {X.shape[0]}"
        )
    return X, Y


def centred64(X: torch.Tensor) -> torch.Tensor:
    """Return a float64 copy of ``X`` with every feature (column) centred."""
    X = X.to(torch.float64)  # cast before subtracting: the mean of float32 data loses digits
    return X - X.mean(dim=0, keepdim=True)


def check_nonneg_self(value: float, what: str) -> None:
    """Guard the square root of a self-similarity (unbiased HSIC can go negative)."""
    if not value > 0.0:
        raise SimilarityInputError(
            f"{what} = {value:.3e} is not positive, so the index cannot be normalised; the "
            "input is constant or the unbiased estimate is too noisy (use more samples)"
        )
