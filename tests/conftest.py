"""Shared test set-up: quiet, offline, isolated from the user's zoo and W&B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """No W&B traffic, no writes to ~/.cache, non-interactive plots, few threads."""
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ["WANDB_SILENT"] = "true"
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    os.environ["STITCHWORK_ZOO"] = str(tmp_path_factory.mktemp("zoo"))
    yield


@pytest.fixture
def run_cli(tmp_path):
    """Run a stitchwork console script in a subprocess inside ``tmp_path``.

    ``run_cli("train", "seed=1", check=True)`` returns the CompletedProcess (stdout and
    stderr captured as text); a failing command with ``check=True`` fails the test and
    prints both streams.
    """

    def run(app: str, *overrides: str, cwd: Path | None = None, check: bool = True, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        cmd = [sys.executable, "-m", f"stitchwork.apps.{app}", *overrides]
        proc = subprocess.run(cmd, cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def tiny10_probe():
    """``make(n, batch)``: an untrained Tiny10 in eval mode, ``n`` random 8x8 images and an
    unshuffled loader over them (for all_pairs tests that recompute activations themselves)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from stitchwork.models import Tiny10

    def make(n: int, batch: int = 32):
        torch.manual_seed(0)
        model = Tiny10((1, 8, 8), 10, width=0.5).eval()
        X = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        return model, X, DataLoader(TensorDataset(X, torch.zeros(n)), batch_size=batch, shuffle=False)

    return make


@pytest.fixture(scope="module")
def digits():
    """The embedded digits data module, set up (one per test module)."""
    from stitchwork.data import Digits

    data = Digits()
    data.setup()
    return data
