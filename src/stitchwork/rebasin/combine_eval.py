"""Evaluate K weight combinations at once, and how they differ from their endpoints.

All K state dicts are stacked and evaluated in one pass over the data (models in eval
mode, so BatchNorm uses each combination's own running statistics), each batch either
*batched* (``torch.func.functional_call`` under ``torch.func.vmap``: one kernel per layer
for all K, which wins where per-call overhead dominates: small models, GPUs) or
*sequential* (one ``functional_call`` per combination: plain kernels, which win where the
arithmetic dominates: batched convolutions become grouped ones, slower per flop). By
default the faster of the two is measured on the second batch and kept. Per combination:
loss, accuracy, agreement of predictions with A and with B, ``KL(p_A ‖ p_θ)`` and
``KL(p_B ‖ p_θ)`` (mean over examples), and weight distance to A and to B; across
combinations, the mean pairwise agreement between samples.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..utils.modules import common_device, eval_mode

State = Mapping[str, torch.Tensor]


def stack_states(states: Sequence[State], device: torch.device) -> dict[str, torch.Tensor]:
    """``K`` state dicts -> one dict of ``(K, *shape)`` tensors on ``device``."""
    if not states:
        raise ValueError("need at least one combination to evaluate")
    return {k: torch.stack([s[k].to(device) for s in states]) for k in states[0]}


def batched_logits(
    model: nn.Module, stacked: Mapping[str, torch.Tensor], x: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Logits of every stacked state on ``x``: ``(K, n, classes)``."""

    def run(state: Mapping[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(model, state, (inputs,))

    return vmap(run, in_dims=(0, None), chunk_size=chunk_size)(dict(stacked), x)


def sequential_logits(model: nn.Module, stacked: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of every stacked state on ``x``, one ``functional_call`` each: ``(K, n, classes)``."""
    k = len(next(iter(stacked.values())))
    return torch.stack([functional_call(model, {n: v[i] for n, v in stacked.items()}, (x,)) for i in range(k)])


STRATEGIES = ("auto", "batched", "sequential")


def _timed(fn, device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall time, with the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def _faster(model: nn.Module, stacked: Mapping[str, torch.Tensor], x: torch.Tensor,
            chunk_size: int | None) -> tuple[str, torch.Tensor]:
    """Time both strategies on ``x`` (all K batched vs one combination × K); the winner and the logits."""
    k = len(next(iter(stacked.values())))
    logits, t_batched = _timed(lambda: batched_logits(model, stacked, x, chunk_size), x.device)
    first = {n: v[:1] for n, v in stacked.items()}
    _, t_one = _timed(lambda: sequential_logits(model, first, x), x.device)
    return ("sequential" if k * t_one < t_batched else "batched"), logits


class _Totals:
    """Running sums of the per-combination metrics over batches."""

    def __init__(self, k: int, device: torch.device):
        zeros = lambda: torch.zeros(k, dtype=torch.float64, device=device)  # noqa: E731
        self.n = 0
        self.loss, self.correct, self.agree_a, self.agree_b, self.kl_a, self.kl_b = (zeros() for _ in range(6))
        self.pairs = torch.zeros(k, k, dtype=torch.float64, device=device)

    def update(self, logits: torch.Tensor, y: torch.Tensor, ref_a: torch.Tensor, ref_b: torch.Tensor) -> None:
        logp = logits.double().log_softmax(-1)  # (K, n, c)
        pred = logp.argmax(-1)  # (K, n)
        self.loss -= logp.gather(-1, y.expand(len(logp), -1).unsqueeze(-1)).squeeze(-1).sum(1)
        self.correct += (pred == y).sum(1)
        for ref, agree, kl in ((ref_a, self.agree_a, self.kl_a), (ref_b, self.agree_b, self.kl_b)):
            ref_logp = ref.double().log_softmax(-1)  # (n, c)
            agree += (pred == ref_logp.argmax(-1)).sum(1)
            kl += (ref_logp.exp() * (ref_logp - logp)).sum((1, 2))
        onehot = F.one_hot(pred, logits.shape[-1]).double()  # (K, n, c)
        self.pairs += torch.einsum("knc,jnc->kj", onehot, onehot)
        self.n += len(y)

    def result(self) -> dict[str, Any]:
        if self.n == 0:
            raise ValueError("cannot evaluate combinations on an empty loader")
        per = {
            name: (getattr(self, name) / self.n).cpu().numpy()
            for name in ("loss", "agree_a", "agree_b", "kl_a", "kl_b")
        }
        per["acc"] = (self.correct / self.n).cpu().numpy()
        k = len(self.pairs)
        off = ~torch.eye(k, dtype=torch.bool, device=self.pairs.device)
        pairwise = float((self.pairs[off] / self.n).mean()) if k > 1 else float("nan")
        return {"per_sample": per, "pairwise_agreement": pairwise}


@torch.no_grad()
def evaluate_combinations(
    model: nn.Module, states: Sequence[State], loader: Iterable, model_a: nn.Module,
    model_b: nn.Module, chunk_size: int | None = None, strategy: str = "auto",
) -> dict[str, Any]:
    """Metrics of every combination in ``states`` on ``loader``, in one pass over the data.

    ``model`` supplies the architecture (its own weights are not used). ``strategy``:
    ``batched``, ``sequential`` or ``auto`` (batched on the first batch, then whichever
    was faster on the second; see the module docstring). ``chunk_size`` bounds how many
    combinations one batched call holds (memory). Returns ``{"per_sample": {metric:
    array (K,)}, "pairwise_agreement": float, "strategy": the one used last}`` with
    metrics ``loss acc agree_a agree_b kl_a kl_b dist_a dist_b``; distances are L2 norms
    over the parameters (not buffers).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    device = common_device("combination evaluation", model=model, model_a=model_a, model_b=model_b)
    with eval_mode(model, model_a, model_b):
        stacked = stack_states(states, device)
        totals = _Totals(len(states), device)
        chosen = "batched" if strategy == "auto" else strategy
        for i, (x, y) in enumerate(loader):
            x, y = x.to(device), y.to(device)
            if strategy == "auto" and i == 1:  # the first batch paid for warm-up
                chosen, logits = _faster(model, stacked, x, chunk_size)
            elif chosen == "batched":
                logits = batched_logits(model, stacked, x, chunk_size)
            else:
                logits = sequential_logits(model, stacked, x)
            totals.update(logits, y, model_a(x), model_b(x))
    out = totals.result()
    out["per_sample"] |= stacked_distances(model, stacked, model_a, model_b)
    out["strategy"] = chosen
    return out


def stacked_distances(
    model: nn.Module, stacked: Mapping[str, torch.Tensor], model_a: nn.Module, model_b: nn.Module
) -> dict[str, np.ndarray]:
    """L2 distance of each stacked state to A and to B over the parameters: ``dist_a``, ``dist_b``."""
    names = [n for n, _ in model.named_parameters()]
    out = {}
    for tag, ref in (("dist_a", model_a.state_dict()), ("dist_b", model_b.state_dict())):
        squares = sum(
            (stacked[n].double() - ref[n].to(stacked[n].device, torch.float64)).square().flatten(1).sum(1)
            for n in names
        )
        out[tag] = squares.sqrt().cpu().numpy()
    return out


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, std, min, quartiles and max of a distribution of per-sample values."""
    v = np.asarray(values, dtype=np.float64)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "mean": float(v.mean()), "std": float(v.std()), "min": float(q[0]), "q25": float(q[1]),
        "median": float(q[2]), "q75": float(q[3]), "max": float(q[4]),
    }


def post_process_states(
    model: nn.Module, states: Sequence[State], post: Any, lams: Sequence[float]
) -> list[dict[str, torch.Tensor]]:
    """Run ``post(model, lam)`` (BN reset, REPAIR, …) on each combination; new state dicts.

    ``lams`` gives each combination's scalar λ (e.g. :func:`~.combine.mean_lambda`).
    This loops over the combinations, as each needs its own pass over data.
    """
    import copy

    out = []
    work = copy.deepcopy(model)
    for state, lam in zip(states, lams, strict=True):
        work.load_state_dict(state)
        out.append({k: v.clone() for k, v in post(work, lam).state_dict().items()})
    return out
