"""Task-loss matching throughput: cut networks + cached fronts vs a hook-based design.

Ours: :func:`stitchwork.stitching.matching.task_loss` (Lightning, Adam) with ``cache=True``:
A's front runs once over the training split, then every step is ``back_B(stitch(a))``.
Baseline (what hook-based stitching code does): a forward hook on A's cut stage captures
its output while the *whole* of A runs (under ``no_grad``, which favours the baseline), and a
hook on B's cut stage replaces its output by ``stitch(captured)`` while the *whole* of B runs;
a plain PyTorch loop with the same optimizer, no Lightning overhead.

Two ResNet-20 (width 1, BN) on digits upsampled to 32×32 (1,437 training images, batch 128),
1×1 affine stitch at ``layer2_1`` (32×16×16). Reported: seconds per epoch for each, the time to
build the cache (one front pass), and the throughput ratio per epoch and amortised over
``--epochs`` epochs including the cache.

    python benchmarks/bench_stitching_task_loss.py --epochs 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from stitchwork.data import Digits
from stitchwork.models import ResNet20
from stitchwork.stitching import AffineStitch, MatchContext, build_stitched
from stitchwork.stitching.cache import cache_activations
from stitchwork.stitching.matching import task_loss


def hook_epochs(a, b, cut, loader, epochs: int) -> float:
    """Seconds for ``epochs`` epochs of the hook-based design (both full networks per step)."""
    stitch = AffineStitch((32, 16, 16), (32, 16, 16))
    opt = torch.optim.Adam(stitch.parameters(), lr=1e-3)
    captured: dict[str, torch.Tensor] = {}
    h_a = a.stages[cut].register_forward_hook(lambda m, i, o: captured.__setitem__("a", o))
    h_b = b.stages[cut].register_forward_hook(lambda m, i, o: stitch(captured["a"]))
    start = time.perf_counter()
    try:
        for _ in range(epochs):
            for x, y in loader:
                with torch.no_grad():
                    a(x)  # whole of A, for one activation
                loss = F.cross_entropy(b(x), y)  # whole of B, front included
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        h_a.remove(), h_b.remove()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Digits(image_size=32, val_size=0, batch_size=128)
    data.setup()
    torch.manual_seed(0)
    a, b = ResNet20(data.input_shape, 10), ResNet20(data.input_shape, 10)
    cut = "layer2_1"
    stitched = build_stitched(a, cut, b, cut, AffineStitch)  # freezes A and B (eval mode)
    t0 = time.perf_counter()
    cache_activations(stitched.front, data.loader("train", batch_size=512, shuffle=False))
    cache_s = time.perf_counter() - t0
    ours = task_loss(MatchContext(stitched, data, trainer_options={"accelerator": "cpu"}),
                     epochs=args.epochs, batch_size=128, cache=True)  # fmt: skip
    ours_total = ours["train_time_s"] + cache_s
    hook_s = hook_epochs(a, b, cut, data.loader("train", batch_size=128), args.epochs)
    per_epoch_ours, per_epoch_hook = ours["train_time_s"] / args.epochs, hook_s / args.epochs
    print(json.dumps({
        "threads": torch.get_num_threads(), "epochs": args.epochs, "images": len(data.train_set),
        "cache_build_s": cache_s, "ours_epoch_s": per_epoch_ours, "hook_epoch_s": per_epoch_hook,
        "epoch_speedup": per_epoch_hook / per_epoch_ours, "amortised_speedup": hook_s / ours_total,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
