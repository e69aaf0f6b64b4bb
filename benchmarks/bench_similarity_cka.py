"""Time and peak memory of linear CKA in its Gram form vs its feature form.

Each (size, form) runs in a fresh subprocess so that peak resident memory is that form's own:
the child builds float32 X and Y in place (no temporaries), reads ``ru_maxrss`` (the process's
peak RSS so far), runs ``linear_cka(X, Y, form=...)`` once, and reads ``ru_maxrss`` again. The
difference is the extra peak memory the computation needed on top of its inputs (torch's CPU
allocator returns large blocks to the OS, so RSS is an honest measure; tracemalloc would see
nothing). Time is wall clock of that one call. Ratios are taken within one run of this script.

``--device cuda``: X and Y are drawn on the CPU (the same values as on the CPU) and moved to the
GPU, where the CKA runs; the clock is read after ``torch.cuda.synchronize()``, and the memory
column is then the extra peak of ``torch.cuda.max_memory_allocated`` (reset after the inputs
are in place) instead of the process RSS; the header line says which one is printed.

    python benchmarks/bench_similarity_cka.py                      # stated smaller sizes
    python benchmarks/bench_similarity_cka.py --sizes 10000x16384  # the issue's size (slow)
    python benchmarks/bench_similarity_cka.py --device cuda --sizes 10000x16384
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

GIB = 2**30


def _sync(device: str) -> None:
    """Wait for queued GPU work, so that the clock reads finished work."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _peak_bytes(device: str) -> int:
    """Peak memory so far: the process's peak RSS on the CPU, torch's peak allocation on CUDA."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(n: int, d: int, form: str, device: str) -> None:
    import torch

    from stitchwork.similarity import linear_cka

    g = torch.Generator().manual_seed(0)
    X = torch.empty(n, d).normal_(generator=g)  # float32, filled in place
    Y = torch.empty(n, d).normal_(generator=g)
    Y.add_(X, alpha=0.5).relu_().add_(1000.0)  # related, post-ReLU-like, large offset
    X, Y = X.to(device), Y.to(device)  # no-op on the CPU
    linear_cka(X[:64, :64], Y[:64, :64], form=form)  # warm up thread pools and kernels
    if device.startswith("cuda"):
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)  # the peak from here on, inputs included
    before = _peak_bytes(device)
    start = time.perf_counter()
    value = linear_cka(X, Y, form=form)
    _sync(device)
    seconds = time.perf_counter() - start
    after = _peak_bytes(device)
    print(
        json.dumps(
            {"seconds": seconds, "extra_peak": after - before, "base": before, "value": value}
        )
    )


def _run(n: int, d: int, form: str, device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", f"{n}x{d}", form, "--device", device]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout  # stderr shown
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2500x4096", "10000x2048"])
    parser.add_argument("--forms", nargs="+", default=["gram", "feature"])
    parser.add_argument("--device", default="cpu", help="where X, Y and the CKA live (cpu, cuda)")
    parser.add_argument("--child", nargs=2, metavar=("NxD", "FORM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, d = map(int, args.child[0].split("x"))
        _child(n, d, args.child[1], args.device)
        return

    import torch

    from stitchwork.similarity import choose_linear_form

    cuda = args.device.startswith("cuda")
    memory = "extra peak torch.cuda.max_memory_allocated" if cuda else "extra peak RSS"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 input, float64 reductions"
        f", on {args.device}" + (f", memory column: {memory}" if cuda else "")
    )
    print(f"| n | d | form | chosen | time (s) | {memory} (GiB) | inputs (GiB) | CKA |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, d = map(int, size.split("x"))
        chosen = choose_linear_form(n, d, d)
        rows = {}
        for form in args.forms:  # print each row as soon as it is measured
            r = rows[form] = _run(n, d, form, args.device)
            mark = "yes" if form == chosen else ""
            print(
                f"| {n} | {d} | {form} | {mark} | {r['seconds']:.2f} | "
                f"{r['extra_peak'] / GIB:.2f} | {2 * n * d * 4 / GIB:.2f} | {r['value']:.10f} |",
                flush=True,
            )
        if len(rows) == 2:
            other = next(f for f in rows if f != chosen)
            t = rows[other]["seconds"] / rows[chosen]["seconds"]
            m = rows[other]["extra_peak"] / max(rows[chosen]["extra_peak"], 1)
            diff = abs(rows[other]["value"] - rows[chosen]["value"])
            print(
                f"\n{size}: {other}/{chosen} time x{t:.2f}, extra peak memory x{m:.2f}, |dCKA| {diff:.1e}\n"
            )


if __name__ == "__main__":
    main()
