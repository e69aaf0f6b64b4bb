"""All-pairs linear CKA of two ResNet-20s in one pass vs a per-pair loop that re-runs the models.

Models: two ResNet-20s (width 1, BatchNorm, different seeds, BN statistics randomised so eval
mode is not the identity), every cut point of each (11 x 11 = 121 pairs). Data: random
``(3, s, s)`` images in a fixed-order DataLoader. Measure: exact streamed linear CKA over all
examples (float64 sums).

- ``all_pairs``: :func:`stitchwork.similarity.all_pairs.all_pairs`, one forward pass per model.
- ``loop (full models)``: for each pair, run both whole models over the data, take the two
  cut points' outputs and feed a :class:`LinearCKAAccumulator` (what hook-based peer code does).
- ``loop (fronts)``: the same, but each pair runs only ``front(A, u)`` and ``front(B, v)``
  (``stitchwork.cut.front``), the cheapest per-pair loop.

Every entry of the all-pairs matrix is checked against the loop's value. Times are wall clock
of one run each after a warm-up batch; the ratios are the figures to read. ``--device cuda``
puts the models and the images on the GPU (the loops and all_pairs run there; the clock is
read after ``torch.cuda.synchronize()``).

    python benchmarks/bench_similarity_all_pairs.py                          # 256 images 16x16, avgpool
    python benchmarks/bench_similarity_all_pairs.py --spatial flatten --size 8
    python benchmarks/bench_similarity_all_pairs.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from stitchwork.cut import front
from stitchwork.models import ResNet20
from stitchwork.similarity import LinearCKAAccumulator
from stitchwork.similarity.all_pairs import all_pairs


def _model(seed: int, size: int) -> ResNet20:
    torch.manual_seed(seed)
    model = ResNet20((3, size, size), 10)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    return model.eval()


@torch.no_grad()
def _full_output(model: ResNet20, x: torch.Tensor, cut: str) -> torch.Tensor:
    """Run every stage (the whole model) and return the output of ``cut``."""
    out = None
    for name, stage in model.stages.items():
        x = stage(x)
        if name == cut:
            out = x
    return out


@torch.no_grad()
def per_pair_loop(a, b, loader, spatial: str, fronts: bool) -> torch.Tensor:
    M = torch.zeros(len(a.cut_points), len(b.cut_points), dtype=torch.float64)
    for i, u in enumerate(a.cut_points):
        for j, v in enumerate(b.cut_points):
            acc = LinearCKAAccumulator(spatial=spatial)
            fa, fb = (front(a, u), front(b, v)) if fronts else (None, None)
            for (x,) in loader:
                if fronts:
                    acc.update(fa(x), fb(x))
                else:
                    acc.update(_full_output(a, x, u), _full_output(b, x, v))
            M[i, j] = acc.compute()
    return M


def _sync(device: str) -> None:
    """Wait for queued GPU work, so that the clock reads finished work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str):
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of images")
    parser.add_argument("--size", type=int, default=16, help="image side")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--spatial", default="avgpool", choices=("avgpool", "flatten", "samples"))
    parser.add_argument("--skip-full", action="store_true", help="skip the full-model loop")
    parser.add_argument("--device", default="cpu", help="where models and images live (cpu, cuda)")
    args = parser.parse_args()
    dev = args.device
    a, b = _model(0, args.size).to(dev), _model(1, args.size).to(dev)
    X = torch.randn(args.n, 3, args.size, args.size, generator=torch.Generator().manual_seed(2))
    X = X.to(dev)  # drawn on the CPU: the same images on every device
    loader = DataLoader(TensorDataset(X), batch_size=args.batch, shuffle=False)
    with torch.no_grad():  # warm-up: thread pools, conv algorithms
        a(X[:8]), b(X[:8])
    pairs = len(a.cut_points) * len(b.cut_points)
    linear = "stream"

    def one_pass():
        return all_pairs(a, b, loader, measures=["linear_cka"], spatial=args.spatial, linear=linear)

    # all_pairs is timed before, between and after the loops (the machine's load drifts); the
    # ratios use the mean of the three
    one, t1 = _timed(lambda: one_pass()["linear_cka"], dev)
    fronts, t_fronts = _timed(lambda: per_pair_loop(a, b, loader, args.spatial, fronts=True), dev)
    _, t2 = _timed(one_pass, dev)
    diffs = [float((fronts - one).abs().max())]
    full, t_full = None, None
    if not args.skip_full:
        full, t_full = _timed(lambda: per_pair_loop(a, b, loader, args.spatial, fronts=False), dev)
        diffs.append(float((full - one).abs().max()))
    _, t3 = _timed(one_pass, dev)
    t_one = (t1 + t2 + t3) / 3
    rows = [(f"all_pairs (one pass; {t1:.2f} / {t2:.2f} / {t3:.2f})", t_one, 1.0),
            ("loop (fronts)", t_fronts, t_fronts / t_one)]  # fmt: skip
    if t_full is not None:
        rows.append(("loop (full models)", t_full, t_full / t_one))
    print(f"resnet20 vs resnet20, {pairs} pairs, {args.n} images 3x{args.size}x{args.size}, "
          f"batch {args.batch}, spatial={args.spatial}, threads={torch.get_num_threads()}, on {dev}")  # fmt: skip
    print("| method | time (s) | ratio to all_pairs |")
    print("|---|---|---|")
    for name, t, r in rows:
        print(f"| {name} | {t:.2f} | {r:.1f} |")
    print(f"pairs / 2 = {pairs / 2:.1f}; max |all_pairs - loop| = {max(diffs):.2e}; "
          f"CKA range {float(one.min()):.3f}..{float(one.max()):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
