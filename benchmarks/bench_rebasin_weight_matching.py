"""Weight matching per sweep: stitchwork (torch float64) vs a plain numpy reference.

Both run Git Re-Basin's coordinate ascent on the same two random ResNet-20s with the same
visiting order (drawn once from the same seeded torch generator) for the same number of
sweeps, and must return the same permutations (checked). Two settings: a fixed number of
sweeps (``--sweeps``, setup included), and a whole matching run to convergence (as many
sweeps as stitchwork needed, at most 100; the reference is given that many). Both are
warmed up, and the best of three runs is kept. The numpy reference is the textbook
version: numpy float64 arrays, ``np.take`` to apply the other permutations, ``@`` for the
similarity, scipy's ``linear_sum_assignment``. ``--device cuda`` runs stitchwork on the GPU
(the reference stays on the CPU).

    python benchmarks/bench_rebasin_weight_matching.py                  # widths 1, 4, 8; 2 sweeps
    python benchmarks/bench_rebasin_weight_matching.py --widths 1 2 --sweeps 3 --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from stitchwork.models import ResNet20
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.weight_matching import weight_matching


def numpy_weight_matching(spec, state_a, state_b, orders):
    """Reference: one sweep per entry of ``orders`` (lists of permutation names)."""
    a = {k: v.double().numpy() for k, v in state_a.items() if k not in spec.buffers}
    b = {k: v.double().numpy() for k, v in state_b.items() if k not in spec.buffers}
    perm = {p: np.arange(n) for p, n in spec.perm_sizes.items()}
    for order in orders:
        for p in order:
            n = spec.perm_sizes[p]
            sim = np.zeros((n, n))
            for key, axis in spec.perm_to_axes[p]:
                if key in spec.buffers:
                    continue
                w_b = b[key]
                for other_axis, q in enumerate(spec.axes_to_perm[key]):
                    if q is not None and other_axis != axis:
                        w_b = np.take(w_b, perm[q], axis=other_axis)
                w_a = np.moveaxis(a[key], axis, 0).reshape(n, -1)
                sim += w_a @ np.moveaxis(w_b, axis, 0).reshape(n, -1).T
            _, cols = linear_sum_assignment(sim, maximize=True)
            old = sim[np.arange(n), perm[p]].sum()
            if sim[np.arange(n), cols].sum() - old > 1e-12 * (1.0 + abs(old)):
                perm[p] = cols
    return perm


def visiting_orders(spec, sweeps: int, seed: int) -> list[list[str]]:
    """The orders stitchwork's weight_matching draws for ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    names = spec.perms
    return [[names[i] for i in torch.randperm(len(names), generator=gen).tolist()] for _ in range(sweeps)]


def bench(width: int, sweeps: int | None, device: str, seed: int = 0, repeats: int = 3) -> dict:
    """Seconds per sweep of both; ``sweeps=None``: run to convergence."""
    torch.manual_seed(0)
    model_a, model_b = ResNet20((3, 32, 32), 10, width=width), ResNet20((3, 32, 32), 10, width=width)
    spec = spec_for(model_a)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    on_device = [{k: v.to(device) for k, v in s.items()} for s in (state_a, state_b)]
    history: list[float] = []
    weight_matching(spec, *on_device, max_sweeps=sweeps or 100, seed=seed, history=history)  # warm up
    sweeps = len(history)
    orders = visiting_orders(spec, sweeps, seed)
    numpy_weight_matching(spec, state_a, state_b, orders[:1])
    t_ours = t_ref = float("inf")
    for _ in range(repeats):  # best of `repeats`: the machine may be shared
        _sync(device)
        start = time.perf_counter()
        ours = weight_matching(spec, *on_device, max_sweeps=sweeps, seed=seed)
        _sync(device)
        t_ours = min(t_ours, time.perf_counter() - start)
        start = time.perf_counter()
        ref = numpy_weight_matching(spec, state_a, state_b, orders)
        t_ref = min(t_ref, time.perf_counter() - start)
    same = all(np.array_equal(ours[p].numpy(), ref[p]) for p in spec.perms)
    return {"width": width, "sweeps": sweeps, "ours": t_ours / sweeps, "numpy": t_ref / sweeps, "same": same}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--sweeps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, stitchwork on {args.device}")
    print("| ResNet-20 width | sweeps | stitchwork s/sweep | numpy s/sweep | numpy / stitchwork | same permutations |")
    print("| --- | --- | --- | --- | --- | --- |")
    for width in args.widths:
        for sweeps in (args.sweeps, None):
            r = bench(width, sweeps, args.device)
            label = f"{r['sweeps']}" if sweeps else f"{r['sweeps']} (to convergence)"
            print(f"| ×{width} | {label} | {r['ours']:.4f} | {r['numpy']:.4f} | {r['numpy'] / r['ours']:.2f}× "
                  f"| {r['same']} |", flush=True)


if __name__ == "__main__":
    main()
