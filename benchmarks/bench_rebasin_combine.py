"""Evaluating K combinations: one vmap'ed functional_call pass vs a load_state_dict loop.

Both evaluate the same K seeded uniform combinations of two random models on the same
data. The loop is the plain way: for each combination, ``load_state_dict`` then
``stitchwork.training.evaluate`` over the loader. The batched path is
``stitchwork.rebasin.combine_eval.evaluate_combinations`` (which also computes agreement,
KL and distances) with each strategy: ``batched`` (vmap over all K), ``sequential`` (one
functional_call per combination) and ``auto`` (the default: whichever was faster on the
second batch). Losses must agree. All are warmed up; the best of three runs is kept.

    python benchmarks/bench_rebasin_combine.py                    # K = 32: MLP (mnist1d-shaped), Tiny-10
    python benchmarks/bench_rebasin_combine.py --device cuda --cases mlp tiny10 resnet20x4
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from stitchwork.models import MLP, ResNet20, Tiny10
from stitchwork.rebasin.combine import Uniform, combine_states, sample_lambdas
from stitchwork.rebasin.combine_eval import STRATEGIES, evaluate_combinations
from stitchwork.training import evaluate

#: name -> (label, model builder, input shape, examples, batch size)
CASES = {
    "mlp": ("MLP 40-128-128-128-10, 1000 examples, batch 250", lambda: MLP((40,), 10, 3, 128), (40,), 1000, 250),
    "tiny10": ("Tiny-10 ×1 BN, 8×8 images, 512 examples, batch 128",
               lambda: Tiny10((1, 8, 8), 10, width=1, norm="bn"), (1, 8, 8), 512, 128),
    "resnet20x4": ("ResNet-20 ×4 LN, 32×32 images, 2048 examples, batch 512 (compute-bound)",
                   lambda: ResNet20((3, 32, 32), 10, width=4, norm="ln"), (3, 32, 32), 2048, 512),
}  # fmt: skip


def bench(build, shape, n: int, batch: int, k: int, device: str, repeats: int = 3) -> dict:
    torch.manual_seed(0)
    model_a, model_b = build().eval().to(device), build().eval().to(device)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    loader = [(x[i : i + batch].to(device), y[i : i + batch].to(device)) for i in range(0, n, batch)]
    sa, sb = model_a.state_dict(), model_b.state_dict()
    states = [combine_states(sa, sb, lam) for lam in sample_lambdas(Uniform(), sa, k, seed=0)]
    work = copy.deepcopy(model_a)
    evaluate_combinations(work, states[:2], loader[:1], model_a, model_b)  # warm up both
    evaluate(work, loader[:1])
    t = dict.fromkeys(("loop", *STRATEGIES), float("inf"))
    diff, chosen = 0.0, None
    for _ in range(repeats):  # best of `repeats`: the machine may be shared (evaluate syncs via .item())
        start = time.perf_counter()
        loop = []
        for state in states:
            work.load_state_dict(state)
            loop.append(evaluate(work, loader)["loss"])
        t["loop"] = min(t["loop"], time.perf_counter() - start)
        for strategy in STRATEGIES:
            start = time.perf_counter()
            result = evaluate_combinations(work, states, loader, model_a, model_b, strategy=strategy)
            t[strategy] = min(t[strategy], time.perf_counter() - start)  # results come back as numpy: synced
            diff = max(diff, float(np.abs(np.array(loop) - result["per_sample"]["loss"]).max()))
            chosen = result["strategy"] if strategy == "auto" else chosen
    return t | {"max_loss_diff": diff, "auto_chose": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["mlp", "tiny10"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K = {args.k}, on {args.device}")
    print("| case | loop s | batched s | sequential s | auto s (chose) | loop / batched | loop / auto "
          "| max loss diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in args.cases:
        label, build, shape, n, batch = CASES[case]
        r = bench(build, shape, n, batch, args.k, args.device)
        print(f"| {label} | {r['loop']:.3f} | {r['batched']:.3f} | {r['sequential']:.3f} | {r['auto']:.3f} "
              f"({r['auto_chose']}) | {r['loop'] / r['batched']:.2f}× | {r['loop'] / r['auto']:.2f}× "
              f"| {r['max_loss_diff']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
