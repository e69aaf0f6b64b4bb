"""Direct matching: streamed float64 moments + one solve vs materialise-everything ``pinv``.

Part 1 (``--rows``): the same float32 activations ``X (N, d)`` and ``Y (N, d)`` are fitted by
(a) :class:`MomentAccumulator` over 16k-row chunks + :func:`least_squares_fit` and (b) the
baseline that concatenates everything to float64 ``[X, 1]`` and computes ``pinv([X, 1]) @ Y``.
Reports both times, the ratio and the largest weight difference.

Part 2 (``--memory``): extra peak RSS (Linux VmHWM, reset at the start of the child) of
each method in fresh subprocesses at several N; the
streamed child generates its chunks on the fly (as a data loader would), the baseline child
must hold all rows.

Part 3 (``--overhead``): ``stitching.matching.direct`` on two ResNet-20 at ``layer2_1`` on
digits upsampled to 32×32, vs running the two fronts over the same loader alone.

``--device cuda`` runs all three on the GPU: the chunks are drawn on the CPU (the same values as
on the CPU) and moved there one by one, the clock is read after ``torch.cuda.synchronize()``,
and part 2 measures the extra peak of ``torch.cuda.max_memory_allocated`` instead of the RSS.

    python benchmarks/bench_stitching_direct.py              # all three parts
    python benchmarks/bench_stitching_direct.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from stitchwork.stitching import MomentAccumulator, least_squares_fit

CHUNK = 16384  # rows per batch, e.g. 256 images x 8x8 positions


def chunks(n: int, d: int, seed: int = 0, device: str = "cpu"):
    """Deterministic float32 (X, Y) chunks: Y = relu-ish linear map of X plus noise."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, d, generator=g) / d**0.5
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        x = torch.relu(torch.randn(m, d, generator=g) + 0.5)
        y = x @ w + 0.1 * torch.randn(m, d, generator=g) + 2.0
        yield x.to(device), y.to(device)  # no-op on the CPU


def _sync(device: str) -> None:
    """Wait for queued GPU work, so that the clock reads finished work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def streamed(parts) -> tuple[torch.Tensor, torch.Tensor]:
    acc = MomentAccumulator()
    for x, y in parts:
        acc.update(x, y)
    fit = least_squares_fit(acc.moments(), ridge=0.0)
    return fit.weight, fit.bias


def pinv_fit(parts) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*parts, strict=True)
    x = torch.cat(xs).double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)  # (N, d + 1)
    sol = torch.linalg.pinv(design) @ torch.cat(ys).double()  # (d + 1, d)
    return sol[:-1].T, sol[-1]


def compare(n: int, d: int, device: str = "cpu") -> dict:
    parts = list(chunks(n, d, device=device))
    if device != "cpu":  # warm up the GPU's context and solver handles
        streamed(parts[:1]), pinv_fit(parts[:1])
    _sync(device)
    t0 = time.perf_counter()
    w_s, b_s = streamed(parts)
    _sync(device)
    t1 = time.perf_counter()
    w_p, b_p = pinv_fit(parts)
    _sync(device)
    t2 = time.perf_counter()
    diff = max(float((w_s - w_p).abs().max()), float((b_s - b_p).abs().max()))
    return {"rows": n, "d": d, "streamed_s": t1 - t0, "pinv_s": t2 - t1,
            "speedup": (t2 - t1) / (t1 - t0), "max_abs_weight_diff": diff}  # fmt: skip


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM); ru_maxrss would include the parent's peak."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def child(method: str, n: int, d: int, device: str = "cpu") -> None:
    if device.startswith("cuda"):
        child_cuda(method, n, d, device)
        return
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak to the current RSS
    base = peak_rss_kib()
    if method == "streamed":
        streamed(chunks(n, d))
    else:
        pinv_fit(list(chunks(n, d)))
    print(json.dumps({"method": method, "rows": n, "extra_peak_mib": (peak_rss_kib() - base) / 1024}))


def child_cuda(method: str, n: int, d: int, device: str) -> None:
    """As :func:`child`, with the extra peak of torch's CUDA allocations instead of the RSS."""
    fit = streamed if method == "streamed" else lambda parts: pinv_fit(list(parts))
    fit(chunks(2 * d, d, device=device))  # warm up: context and solver handles (workspaces)
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.max_memory_allocated(device)
    fit(chunks(n, d, device=device))
    _sync(device)
    extra = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    print(json.dumps({"method": method, "rows": n, "extra_peak_mib": extra}))


def memory(sizes: list[int], d: int, device: str = "cpu") -> list[dict]:
    out = []
    for method in ("streamed", "pinv"):
        for n in sizes:
            proc = subprocess.run([sys.executable, __file__, "--child", method, str(n), str(d),
                                   "--threads", str(torch.get_num_threads()), "--device", device],
                                  stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def overhead(device: str = "cpu", repeats: int = 3) -> dict:
    from stitchwork.data import Digits
    from stitchwork.models import ResNet20
    from stitchwork.stitching import AffineStitch, MatchContext, build_stitched
    from stitchwork.stitching.matching import direct

    data = Digits(image_size=32)
    data.setup()
    torch.manual_seed(0)
    a, b = ResNet20(data.input_shape, 10).to(device), ResNet20(data.input_shape, 10).to(device)
    stitched = build_stitched(a, "layer2_1", b, "layer2_1", AffineStitch)
    loader = data.loader("train", batch_size=512, shuffle=False)
    fronts, fits = [], []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for x, _ in loader:
                x = x.to(device)  # as direct does
                stitched.front(x), stitched.target_front(x)
        _sync(device)
        t1 = time.perf_counter()
        report = direct(MatchContext(stitched, data), ridge=1e-6, batch_size=512)
        _sync(device)
        t2 = time.perf_counter()
        fronts.append(t1 - t0)
        fits.append(t2 - t1)
    return {"images": len(data.train_set), "rows": report["fit_rows"], "fronts_s": min(fronts),
            "direct_s": min(fits), "ratio": min(fits) / min(fronts)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_048_576, 2_097_152])
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--memory", type=int, nargs="+", default=[262_144, 1_048_576, 2_097_152])
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no oversubscription)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "memory", "overhead"])
    parser.add_argument("--device", default="cpu", help="where the fits run (cpu, cuda)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), dev)
        return
    cuda = dev.startswith("cuda")
    memory_note = ", extra_peak_mib: torch.cuda.max_memory_allocated" if cuda else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, on {dev}{memory_note}")
    if "speed" not in args.skip:
        for n in args.rows:
            print(json.dumps(compare(n, args.d, dev)))
    if "memory" not in args.skip:
        for row in memory(args.memory, args.d, dev):
            print(json.dumps(row))
    if "overhead" not in args.skip:
        print(json.dumps(overhead(dev)))


if __name__ == "__main__":
    main()
