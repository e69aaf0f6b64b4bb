"""Weight matching per sweep: stitchwork (torch float64) vs a plain numpy reference.

Both run Git Re-Basin's coordinate ascent on the same two random ResNet-20s with the same
visiting order (drawn once from the same seeded torch generator) for the same number of
sweeps, and must return the same permutations (checked). Both are warmed up, and the
best of three runs is kept. The numpy reference is the textbook
version: numpy float64 arrays, ``np.take`` to apply the other permutations, ``@`` for the
similarity, scipy's ``linear_sum_assignment``.

    python benchmarks/bench_rebasin_weight_matching.py                  # widths 1, 4, 8; 2 sweeps
    python benchmarks/bench_rebasin_weight_matching.py --widths 1 2 --sweeps 3
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


def bench(width: int, sweeps: int, seed: int = 0, repeats: int = 3) -> dict:
    torch.manual_seed(0)
    model_a, model_b = ResNet20((3, 32, 32), 10, width=width), ResNet20((3, 32, 32), 10, width=width)
    spec = spec_for(model_a)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    orders = visiting_orders(spec, sweeps, seed)
    weight_matching(spec, state_a, state_b, max_sweeps=1, seed=seed)  # warm up both
    numpy_weight_matching(spec, state_a, state_b, orders[:1])
    t_ours = t_ref = float("inf")
    for _ in range(repeats):  # best of `repeats`: the machine may be shared
        start = time.perf_counter()
        ours = weight_matching(spec, state_a, state_b, max_sweeps=sweeps, seed=seed)
        t_ours = min(t_ours, time.perf_counter() - start)
        start = time.perf_counter()
        ref = numpy_weight_matching(spec, state_a, state_b, orders)
        t_ref = min(t_ref, time.perf_counter() - start)
    same = all(np.array_equal(ours[p].numpy(), ref[p]) for p in spec.perms)
    return {"width": width, "ours": t_ours / sweeps, "numpy": t_ref / sweeps, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--sweeps", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.sweeps} sweeps each")
    print("| ResNet-20 width | stitchwork s/sweep | numpy s/sweep | numpy / stitchwork | same permutations |")
    print("| --- | --- | --- | --- | --- |")
    for width in args.widths:
        r = bench(width, args.sweeps)
        print(f"| ×{width} | {r['ours']:.3f} | {r['numpy']:.3f} | {r['numpy'] / r['ours']:.2f}× | {r['same']} |")


if __name__ == "__main__":
    main()
