"""Mode combinability (Csiszárik et al. 2023): element-wise convex combinations of two models.

A combination is ``θ = θ_A + λ ⊙ (θ_B − θ_A)`` with one λ per weight, so λ = 0 is A and
λ = 1 is B (the paper writes the weight of A; only the label differs). A *sampler* draws
λ for every floating state_dict entry; samplers differ in how λ is shared:

``constant``   one λ for the whole network (the linear path of LMC)
``uniform``    i.i.d. U[0, 1] per weight
``bernoulli``  each weight from B with probability ``p``, else from A
``per_neuron`` one U[0, 1] per output unit of each layer, shared by its incoming weights
``per_layer``  one U[0, 1] per layer (module)
``vicinity``   i.i.d. U[−ε, 1 + ε] per weight (slightly outside the hypercube)

Integer buffers (``num_batches_tracked``) always come from A.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch

State = Mapping[str, torch.Tensor]
Lambdas = dict[str, torch.Tensor]


@runtime_checkable
class LambdaSampler(Protocol):
    """Draw λ for every floating entry of ``state`` (each broadcastable to its entry)."""

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas: ...


def _floating(state: State) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if v.is_floating_point()}


def _module_of(key: str) -> str:
    return key.rsplit(".", 1)[0]


class Constant:
    """One λ for every weight: ``value``, or U[0, 1] per sample when ``value`` is None."""

    def __init__(self, value: float | None = 0.5):
        self.value = value

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        lam = self.value if self.value is not None else torch.rand((), generator=generator).item()
        return {k: torch.tensor(float(lam)) for k in _floating(state)}


class Uniform:
    """I.i.d. U[0, 1] per weight."""

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        return {k: torch.rand(v.shape, generator=generator) for k, v in _floating(state).items()}


class Bernoulli:
    """Each weight taken from B with probability ``p``, else from A."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"bernoulli p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        return {
            k: (torch.rand(v.shape, generator=generator) < self.p).float()
            for k, v in _floating(state).items()
        }


class PerNeuron:
    """One U[0, 1] per output unit of each module, shared by all its entries along axis 0.

    A unit's incoming weights, its bias and (for norm layers) its affine and running
    statistics share one λ; scalar entries get their own.
    """

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        per_module: dict[tuple[str, int], torch.Tensor] = {}
        out: Lambdas = {}
        for k, v in _floating(state).items():
            if v.dim() == 0:
                out[k] = torch.rand((), generator=generator)
                continue
            unit = per_module.setdefault((_module_of(k), v.shape[0]), torch.rand(v.shape[0], generator=generator))
            out[k] = unit.view(-1, *([1] * (v.dim() - 1)))  # (out, 1, ...) broadcasts over inputs
        return out


class PerLayer:
    """One U[0, 1] per module, shared by all its entries."""

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        per_module: dict[str, torch.Tensor] = {}
        return {
            k: per_module.setdefault(_module_of(k), torch.rand((), generator=generator))
            for k in _floating(state)
        }


class Vicinity:
    """I.i.d. U[−eps, 1 + eps] per weight: the hypercube and a margin around it."""

    def __init__(self, eps: float = 0.1):
        if not eps >= 0:
            raise ValueError(f"vicinity eps must be >= 0, got {eps!r}")
        self.eps = float(eps)

    def __call__(self, state: State, generator: torch.Generator) -> Lambdas:
        width = 1.0 + 2.0 * self.eps
        return {
            k: torch.rand(v.shape, generator=generator) * width - self.eps
            for k, v in _floating(state).items()
        }


def sample_lambdas(sampler: LambdaSampler, state: State, k: int, seed: int = 0) -> list[Lambdas]:
    """``k`` λ draws from ``sampler``, reproducible by ``seed``."""
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"the number of combinations k must be a positive integer, got {k!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return [sampler(state, generator) for _ in range(k)]


def combine_states(state_a: State, state_b: State, lam: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``A + λ ⊙ (B − A)`` for floating entries (λ from ``lam``); others copied from A.

    Exact at the corners: λ = 0 gives A's and λ = 1 gives B's value bit for bit.
    """
    out: dict[str, torch.Tensor] = {}
    for k, a in state_a.items():
        if a.is_floating_point():
            weight = torch.broadcast_to(lam[k].to(a.device, a.dtype), a.shape)
            out[k] = torch.lerp(a, state_b[k].to(a.device), weight)
        else:
            out[k] = a.clone()
    return out


def mean_lambda(lam: Mapping[str, torch.Tensor], state: State) -> float:
    """The weight-count-weighted mean λ of a draw (used to pick REPAIR's goal)."""
    total = sum(torch.broadcast_to(lam[k], v.shape).sum().item() for k, v in _floating(state).items())
    return total / sum(v.numel() for v in _floating(state).values())
