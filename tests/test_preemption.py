"""A training job that receives the preemption signal checkpoints, and its rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, time
    import lightning as L
    import torch
    from stitchwork.data import Digits
    from stitchwork.models import MLP
    from stitchwork.training import TrainRecipe, fit_classifier

    class Slow(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            print("EPOCH", trainer.current_epoch, flush=True)
        def on_train_batch_end(self, *args):
            time.sleep(0.02)

    torch.manual_seed(0)
    data = Digits()
    model = MLP(data.input_shape, 10, depth=1, width=32)
    metrics = fit_classifier(model, data, TrainRecipe(epochs=12, lr=0.05), seed=0, checkpoint_dir=sys.argv[1],
                             trainer_options={"enable_progress_bar": False, "callbacks": [Slow()]})
    print("DONE resumed=%s acc=%.4f" % (metrics["resumed"], metrics["test_acc"]), flush=True)
""")


def _signal_once_saved(proc: subprocess.Popen, checkpoint: Path) -> str:
    """Send SIGUSR2 once ``checkpoint`` exists; the stdout of ``proc``, which must end by the signal."""
    deadline = time.time() + 120
    while not checkpoint.exists():
        assert proc.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGUSR2  # the default action ran after the checkpoint
    assert "DONE" not in out
    return out


def test_signal_checkpoints_and_rerun_resumes(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    first = subprocess.Popen([sys.executable, "-c", SCRIPT, str(ckpt_dir)], stdout=subprocess.PIPE, text=True)
    out = _signal_once_saved(first, ckpt_dir / "last.ckpt")
    epochs_before = [int(line.split()[1]) for line in out.splitlines() if line.startswith("EPOCH")]
    saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] > 0 and len(epochs_before) < 12

    second = subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt_dir)], capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    epochs_after = [int(line.split()[1]) for line in second.stdout.splitlines() if line.startswith("EPOCH")]
    assert epochs_after[0] >= 1 and epochs_after[-1] == 11  # started where the first run stopped
    assert epochs_after[0] <= max(epochs_before) + 1
    assert "DONE resumed=True" in second.stdout
    assert not (ckpt_dir / "last.ckpt").exists()  # removed once training completed


SSL_SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    from omegaconf import OmegaConf
    import stitchwork.training.ssl as ssl
    from stitchwork.data import Digits
    from stitchwork.models import MLP
    from stitchwork.training import TrainRecipe, fit_classifier
    from stitchwork.training.resume import EpochCheckpoint

    step, save = ssl._step, EpochCheckpoint.save
    def slow_step(optimizer, loss):
        time.sleep(0.02)
        return step(optimizer, loss)
    def noisy_save(self, state):
        save(self, state)
        print("SAVED", state["epoch"], flush=True)
    ssl._step, EpochCheckpoint.save = slow_step, noisy_save

    cfg = OmegaConf.to_container(OmegaConf.load("conf/recipe/simclr.yaml"))
    cfg.update(epochs=8, batch_size=64)
    cfg["ssl"]["probe_epochs"] = 3
    torch.manual_seed(0)
    data = Digits(train_subset=256)
    net = MLP(data.input_shape, 10, depth=1, width=32)
    ckpt = sys.argv[1] if sys.argv[1] != "-" else None
    metrics = fit_classifier(net, data, TrainRecipe.from_dict(cfg), seed=0, checkpoint_dir=ckpt)
    torch.save(net.state_dict(), sys.argv[2])
    print("DONE resumed=%s" % metrics["resumed"], flush=True)
""")


def test_ssl_donor_resumes_after_the_signal_exactly_where_an_uninterrupted_run_would_be(tmp_path):
    ckpt_dir, cwd = tmp_path / "ckpt", Path(__file__).resolve().parents[1]  # the script reads conf/
    run = [sys.executable, "-c", SSL_SCRIPT]
    first = subprocess.Popen([*run, str(ckpt_dir), str(tmp_path / "a.pt")], stdout=subprocess.PIPE, text=True, cwd=cwd)
    out = _signal_once_saved(first, ckpt_dir / "ssl_epoch.pt")
    saved = [int(line.split()[1]) for line in out.splitlines() if line.startswith("SAVED")]
    assert 1 <= max(saved) < 8

    second = subprocess.run([*run, str(ckpt_dir), str(tmp_path / "b.pt")], capture_output=True, text=True,
                            timeout=300, cwd=cwd)  # fmt: skip
    assert second.returncode == 0, second.stderr
    resumed_at = [int(line.split()[1]) for line in second.stdout.splitlines() if line.startswith("SAVED")]
    assert resumed_at[0] == max(saved) + 1 and resumed_at[-1] == 8 and "DONE resumed=True" in second.stdout
    assert not ckpt_dir.exists()  # removed once the donor is complete

    whole = subprocess.run([*run, "-", str(tmp_path / "c.pt")], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert whole.returncode == 0 and "DONE resumed=False" in whole.stdout, whole.stderr
    resumed, uninterrupted = (torch.load(tmp_path / f, weights_only=True) for f in ("b.pt", "c.pt"))
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name  # bit for bit: the epoch is redone from its saved state


@pytest.mark.parametrize("content", [b"", b"\x00garbage", "wrong_dict"])
@pytest.mark.parametrize("kind", ["lightning", "epoch"])
def test_a_checkpoint_that_does_not_load_is_moved_aside_and_training_starts_afresh(tmp_path, caplog, kind, content):
    from stitchwork.training.resume import EpochCheckpoint, PreemptionCheckpoint

    folder = tmp_path / "run"
    checkpoint = PreemptionCheckpoint(folder) if kind == "lightning" else EpochCheckpoint(folder)
    folder.mkdir()
    if content == "wrong_dict":
        torch.save({"something": 1}, checkpoint.path)
    else:
        checkpoint.path.write_bytes(content)
    with caplog.at_level("WARNING"):
        loaded = checkpoint.resume_path() if kind == "lightning" else checkpoint.load()
    assert loaded is None and not folder.exists()
    (aside,) = (tmp_path / ".corrupt").iterdir()
    assert (aside / checkpoint.path.name).is_file()  # kept, never deleted
    assert f"partial checkpoint {checkpoint.path} does not load" in caplog.text
    if kind == "epoch":
        assert checkpoint.resumed is False
        good = EpochCheckpoint(tmp_path / "good")
        good.save({"epoch": 3})
        assert good.load() == {"epoch": 3} and good.resumed
