"""stitchwork-compare end to end, as a user runs it (subprocesses on digits, tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stitchwork.apps.common import resolve_device

FAST = ["tiny=two_models", "similarity.n_subset=120"]  # conf/tiny/: one-epoch base models on the CPU
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(root: Path) -> dict:
    (path,) = sorted(root.rglob("results.json"))
    return json.loads(path.read_text())


def test_compare_writes_matrices_and_heatmaps(run_cli, tmp_path):
    run_cli("compare", *FAST, "model@model_a=mlp", "model_a.depth=2", "model@model_b=tiny10",
            "model_b.width=0.25", "cut_points_b=[conv1,conv5,pool]", "logger=wandb", "device=cpu",
            env={"WANDB_MODE": "offline"})  # fmt: skip
    record = _record(tmp_path / "outputs" / "compare")
    assert record["status"] == "ok"
    m = record["metrics"]
    assert m["device"] == "cpu"
    assert m["rows"] == ["fc1", "fc2"] and m["cols"] == ["conv1", "conv5", "pool"]
    measures = ["linear_cka", "linear_cka_debiased", "rbf_cka", "procrustes", "rsa_spearman"]
    assert sorted(m["matrices"]) == sorted(measures)
    for name in measures:
        M = torch.tensor(m["matrices"][name])
        assert M.shape == (2, 3) and bool(torch.isfinite(M).all())
        png = Path(m["figures"][name])
        assert png.parent == Path(tmp_path, "outputs", "compare", "default", record["identity"])
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert m["modes"]["linear_cka"] == "streamed" and m["modes"]["rbf_cka"] == "subset"
    n_test = m["n_examples"]["linear_cka"]
    assert n_test > 120 and m["n_examples"]["rbf_cka"] == 120  # digits test split vs subset
    assert 0.0 <= min(min(r) for r in m["matrices"]["linear_cka"]) <= 1.0
    assert m["self_comparison"] is False and m["zoo_key_a"] != m["zoo_key_b"]
    (run,) = Path(m["figures"]["linear_cka"]).parent.glob("wandb/offline-run-*")
    assert len(list(run.rglob("media/images/heatmap/*.png"))) == len(measures)  # mirrored to W&B


def test_self_comparison_has_unit_linear_cka_diagonal(run_cli, tmp_path):
    run_cli("compare", *FAST, "model@model_a=mlp", "model@model_b=mlp", "seed_b=0",
            "similarity.measures=[linear_cka,linear_cka_debiased,procrustes]")  # fmt: skip
    m = _record(tmp_path / "outputs" / "compare")["metrics"]
    assert m["device"] == str(resolve_device("auto"))  # the default
    assert m["self_comparison"] is True and m["rows"] == m["cols"] == ["fc1", "fc2", "fc3"]
    for name in ("linear_cka", "linear_cka_debiased"):
        M = torch.tensor(m["matrices"][name], dtype=torch.float64)
        assert torch.allclose(M.diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-12)
        assert torch.equal(M, M.T)
        assert m[f"{name}_diag_mean"] == pytest.approx(1.0, abs=1e-12)
        assert [r["self_rank"] for r in m["sanity"][name]] == [1, 1, 1]
    P = torch.tensor(m["matrices"]["procrustes"], dtype=torch.float64)
    assert torch.allclose(P.diagonal(), torch.zeros(3, dtype=torch.float64), atol=1e-6)


def test_bad_requests_fail_fast_and_are_recorded(run_cli, tmp_path):
    """One multirun, four jobs, each rejected before any base model is trained."""
    proc = run_cli("compare", "--multirun", *FAST, "similarity.measures=[linear_cka,cka],[linear_cka]",
                   "similarity.spatial=mean,avgpool", "cut_points_a=[conv1,conv99]", check=False)  # fmt: skip
    assert proc.returncode != 0 and "training base model" not in proc.stderr
    records = [
        json.loads(p.read_text()) for p in (tmp_path / "multirun" / "compare").rglob("results.json")
    ]
    assert len(records) == 4 and {r["status"] for r in records} == {"failed"}
    errors = sorted(r["error"] for r in records)
    assert sum("unknown similarity measure 'cka'; valid names: " in e for e in errors) == 2
    assert (
        sum(
            "unknown spatial policy 'mean'; valid policies: flatten, samples, avgpool" in e
            for e in errors
        )
        == 1
    )
    assert (
        sum(e.startswith("UnknownCutPointError: unknown cut point 'conv99'") for e in errors) == 1
    )
    assert "valid cut points: conv1, conv2" in proc.stderr
