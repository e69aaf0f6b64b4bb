"""Stitching matrices in one job vs one job per pair, and the matrix's own costs.

``jobs``: tiny10 seed 0 -> seed 1 on digits, every pair of conv cut points (8 x 8), affine
stitch with resize, through the real app (``stitchwork-stitch``) in a fresh folder and zoo.
The base models are trained first (one single-pair job, not counted); then the 64 per-pair
jobs run as one ``--multirun`` and the matrix as one ``layer_pair=matrix`` job. Reported:
each side's job wall time from its ``results.json`` (``timings.wall_time_s``, summed over
the 64 jobs), the heatmaps' share of the matrix job's time (``metrics.figures_wall_s``; the
per-pair sweep draws them in its report, outside its jobs), the two whole commands (process start-up included), their ratios, 64 times the
mean command of a pair run in its own process (as a SLURM array runs per-pair jobs), and the
largest difference between a matrix entry and its per-pair job over every shared metric.

``resnet``: two ResNet-20 (width 1, BN, random init: cost does not depend on the weights) on
CIFAR-10-sized synthetic data (``--n-train`` x 3 x 32 x 32 train, ``--n-test`` test), direct
matching of every pair of cut points, in process: wall and CPU time per phase, peak RSS, and
the streamed accumulation as a fraction of the machine's float64 GEMM throughput (measured
here on ``(rows, d)ᵀ (rows, d)`` products; the accumulation's flops are ``2·rows·d_x²`` per
input key and ``2·rows·d_x·Σd_y`` for its cross products).

    python benchmarks/bench_stitching_matrix.py jobs --matching direct
    python benchmarks/bench_stitching_matrix.py jobs --matching task_loss --epochs 10
    python benchmarks/bench_stitching_matrix.py resnet --n-train 50000 --n-test 10000
    python benchmarks/bench_stitching_matrix.py resnet --device cuda    # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONV = [f"conv{i}" for i in range(1, 9)]
SHARED = ("stitched_acc", "relative_acc", "penalty", "dm_residual_fit", "dm_residual_test",
          "dm_residual_centered_fit", "dm_residual_centered_test",
          "cka_stitched_target", "agreement_b", "kl_b", "ood_score")  # fmt: skip


def _cli(folder: Path, *args: str) -> float:
    env = {**os.environ, "STITCHWORK_ZOO": str(folder / "zoo"), "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stitchwork.apps.stitch", *args, "trainer.enable_progress_bar=false",
                    "device=cpu"], cwd=folder, env=env, check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def jobs(matching: str, epochs: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench_matrix_"))
    method = [f"matching={matching}", "stitch.resize=true"]
    if matching != "direct":
        method += [f"matching.epochs={epochs}", "matching.batch_size=32"]
    _cli(folder, "layer_pair.front=conv1", "sweep_name=warmup")  # base models into the zoo
    # One process per pair, as a SLURM array or any one-process-per-job launcher runs them.
    own_process = [_cli(folder, f"layer_pair.front={f}", f"layer_pair.back={b}", "sweep_name=own_process", *method)
                   for f, b in (("conv2", "conv3"), ("conv5", "conv5"), ("conv8", "conv1"))]  # fmt: skip
    per_pair_cmd = _cli(folder, "--multirun", "layer_pair=default", f"layer_pair.front={','.join(CONV)}",
                        f"layer_pair.back={','.join(CONV)}", "sweep_name=pairs", *method)  # fmt: skip
    matrix_cmd = _cli(folder, "layer_pair=matrix", f"layer_pair.fronts=[{','.join(CONV)}]",
                      f"layer_pair.backs=[{','.join(CONV)}]", "sweep_name=matrix", *method)  # fmt: skip
    singles = {(r["metrics"]["layer_a"], r["metrics"]["layer_b"]): r for r in _records(folder / "multirun" / "stitch" / "pairs")}
    (matrix,) = _records(folder / "outputs" / "stitch" / "matrix")
    assert len(singles) == 64 and all(r["status"] == "ok" for r in singles.values())
    diff = max(abs(p[k] - singles[(p["front"], p["back"])]["metrics"][k]) for p in matrix["metrics"]["pairs"] for k in SHARED)
    pairs_s = sum(r["timings"]["wall_time_s"] for r in singles.values())
    matrix_s = matrix["timings"]["wall_time_s"]
    figures_s = matrix["metrics"]["figures_wall_s"]  # the heatmaps a per-pair sweep draws in its report
    return {"matching": matching, "epochs": epochs if matching != "direct" else None,
            "per_pair_jobs_wall_s": pairs_s, "matrix_job_wall_s": matrix_s, "job_ratio": pairs_s / matrix_s,
            "matrix_figures_s": figures_s, "job_ratio_without_figures": pairs_s / (matrix_s - figures_s),
            "per_pair_command_s": per_pair_cmd, "matrix_command_s": matrix_cmd,
            "command_ratio": per_pair_cmd / matrix_cmd, "max_entry_diff": diff,
            "one_process_per_pair_command_s": 64 * sum(own_process) / len(own_process),
            "one_process_per_pair_ratio": 64 * sum(own_process) / len(own_process) / matrix_cmd,
            "folder": str(folder)}  # fmt: skip


class _Synthetic:
    """A data module of random CIFAR-sized images (what the matrix code needs of one)."""

    augment = False

    def __init__(self, n_train: int, n_test: int) -> None:
        from torch.utils.data import TensorDataset

        g = torch.Generator().manual_seed(0)
        make = lambda n: TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
        self.train_set, self.test_set, self.val_set = make(n_train), make(n_test), make(0)

    def setup(self) -> None:
        pass

    def loader(self, split: str, batch_size: int = 512, shuffle: bool = False):
        from torch.utils.data import DataLoader

        return DataLoader({"train": self.train_set, "test": self.test_set, "val": self.val_set}[split],
                          batch_size=batch_size, shuffle=False)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(rows: int = 262_144, d: int = 64, repeats: int = 3, device: str = "cpu") -> float:
    """Best float64 ``XᵀX`` throughput (GFLOP/s) on ``device``, as the accumulation calls it."""
    device = torch.device(device)
    x = torch.randn(rows, d, dtype=torch.float64, device=device)
    out = torch.zeros(d, d, dtype=torch.float64, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up the device's kernels
        _sync(device)
        start = time.perf_counter()
        out.addmm_(x.T, x)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * d * d / best / 1e9


def resnet(n_train: int, n_test: int, device: str = "cpu") -> dict:
    from stitchwork.cut import cut_outputs
    from stitchwork.models import ResNet20
    from stitchwork.stitching import AffineStitch
    from stitchwork.stitching.matrix_direct import fit_direct
    from stitchwork.stitching.matrix_metrics import matrix_metrics
    from stitchwork.stitching.matrix_plan import group_by, plan_pairs

    data = _Synthetic(n_train, n_test)
    torch.manual_seed(0)
    dev = torch.device(device)
    a, b = ResNet20((3, 32, 32), 10).eval().to(dev), ResNet20((3, 32, 32), 10).eval().to(dev)
    factory = lambda i, o: AffineStitch(i, o, resize=True)  # noqa: E731
    pairs = [p for p in plan_pairs(a, a.cut_points, b, b.cut_points, factory) if p.status == "pending"]

    def clock() -> tuple[float, float]:
        _sync(dev)
        return time.perf_counter(), time.process_time()

    t0 = clock()
    with torch.no_grad():  # the two fronts alone, as fit_direct runs them
        for x, _ in data.loader("train"):
            x = x.to(dev)
            cut_outputs(a, x, a.cut_points), cut_outputs(b, x, b.cut_points)
    t1 = clock()
    figures = fit_direct(pairs, a, b, data.loader("train"), ridge=1e-6)
    t2 = clock()
    matrix_metrics(pairs, a, b, data, fit_figures=figures)  # training-split figures from the fit's sums
    t3 = clock()
    groups = group_by(pairs, "input_key")
    flops = 0
    for group in groups.values():
        layer = group[0].layer
        rows_per = (layer.out_shape[1] * layer.out_shape[2]) if len(layer.out_shape) == 3 else 1
        d_x, d_y = layer.in_shape[0], sum(p.layer.out_shape[0] for p in group)
        flops += 2 * n_train * rows_per * d_x * (d_x + d_y)
    for target in {p.target_key: p.layer for p in pairs}.values():  # Σyyᵀ per target (B's Gaussian)
        shape = target.out_shape
        flops += 2 * n_train * (shape[1] * shape[2] if len(shape) == 3 else 1) * shape[0] ** 2
    accumulate_s = (t2[0] - t1[0]) - (t1[0] - t0[0])
    bound = gemm_gflops(device=device)
    return {"n_train": n_train, "n_test": n_test, "cut_points": len(a.cut_points), "pairs_fitted": len(pairs),
            "input_keys": len(groups), "pairs_with_fit_sum_figures": len(figures), "threads": torch.get_num_threads(),
            "device": str(dev), "peak_device_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
            "fronts_only_s": t1[0] - t0[0], "fit_direct_wall_s": t2[0] - t1[0], "fit_direct_cpu_s": t2[1] - t1[1],
            "metrics_wall_s": t3[0] - t2[0], "metrics_cpu_s": t3[1] - t2[1],
            "matrix_wall_s": t3[0] - t1[0], "matrix_cpu_s": t3[1] - t1[1],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "accumulation_gflop": flops / 1e9, "accumulation_s_estimate": accumulate_s,
            "accumulation_gflops": flops / 1e9 / max(accumulate_s, 1e-9), "gemm_f64_gflops": bound,
            "fraction_of_gemm_bound": flops / 1e9 / max(accumulate_s, 1e-9) / bound}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    p_jobs = sub.add_parser("jobs")
    p_jobs.add_argument("--matching", default="direct")
    p_jobs.add_argument("--epochs", type=int, default=10)
    p_res = sub.add_parser("resnet")
    p_res.add_argument("--n-train", type=int, default=50_000)
    p_res.add_argument("--n-test", type=int, default=10_000)
    p_res.add_argument("--device", default="cpu", help="cpu or cuda (the whole matrix, fit and metrics, there)")
    args = parser.parse_args()
    out = jobs(args.matching, args.epochs) if args.what == "jobs" else resnet(args.n_train, args.n_test, args.device)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
